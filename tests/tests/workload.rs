//! The generated workload (`--workload`, docs/design.md §4.18): each seed draws its users'
//! actions into its plan, deploy-nginx plays them beside its own user, the timeline shows
//! them, the plan replays them, and the cluster comes to rest at what the users asked.
//!
//! Release campaigns at the commit that added it (`kubesim campaign --seeds 0..1000
//! --workload all [--faults disks]`): see the figures in docs/design.md §4.18.

use std::collections::BTreeSet;

use faults::actions::{parse_menu, Action, ActionGroup};
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

fn with_workload(seed: u64, faults: Faults, menu: &str) -> RunOptions {
    RunOptions { faults, workload: parse_menu(menu).unwrap(), ..RunOptions::new(seed, Scenario::DeployNginx) }
}

fn swarm() -> Faults {
    Faults::Swarm(faults::FaultKind::all())
}

fn timeline(report: &RunReport) -> String {
    report.timeline.join("\n")
}

#[test]
fn deploy_nginx_draws_every_group_by_default_and_none_leaves_the_plan_as_it_was() {
    let default = RunOptions::new(7, Scenario::DeployNginx);
    assert_eq!(default.workload.len(), ActionGroup::ALL.len());
    assert!(!default.plan().unwrap().workload.is_empty());
    let plan = RunOptions { workload: BTreeSet::new(), ..default }.plan().expect("a swarm plan");
    assert!(plan.workload.is_empty());
    assert!(!plan.to_json_pretty().contains("workload"), "a plan without actions reads as it always did");
    assert!(RunOptions::new(7, Scenario::Rollout).workload.is_empty(), "only deploy-nginx runs one");
    assert!(RunOptions::without_faults(7, Scenario::DeployNginx).plan().is_none(), "the plain flow");
}

/// The actions are in the plan, in the timeline beside the faults, and the plan alone
/// replays the seed exactly.
#[test]
fn the_workload_is_saved_in_the_plan_shown_in_the_timeline_and_replays_from_it() {
    let options = with_workload(7, swarm(), "all");
    let plan = options.plan().expect("a plan");
    assert!(plan.workload.len() >= 4, "{:?}", plan.workload);
    let groups: BTreeSet<ActionGroup> = plan.workload.iter().map(|a| a.action.group()).collect();
    assert!(groups.len() >= 2, "seed 7 draws from several groups: {groups:?}");
    let report = run_seed(&options);
    assert!(report.passed(), "{}", report.render());
    let timeline = timeline(&report);
    for action in &plan.workload {
        let line = format!("--  {}: {}", action.user, action.action);
        assert!(timeline.contains(&line), "{line:?} not in the timeline:\n{timeline}");
    }
    assert!(timeline.contains("!!  fault:"), "faults beside the actions:\n{timeline}");
    assert!(timeline.contains("workload at rest after"), "{timeline}");
    let replayed = run_seed(&RunOptions { faults: Faults::Plan(plan.clone()), ..options.clone() });
    assert_eq!(replayed.trace_hash, report.trace_hash, "the plan replays the seed");
    let json = plan.to_json_pretty();
    assert_eq!(faults::FaultPlan::from_json(&json).unwrap(), plan, "the plan's JSON round-trips");
}

/// Without faults the users still act, and the namespace comes to rest as they asked.
#[test]
fn without_faults_every_group_comes_to_rest() {
    for (seed, menu) in
        [(1, "deployments"), (2, "config"), (3, "services"), (4, "nodes"), (6, "permissions,config"), (5, "all")]
    {
        let options = with_workload(seed, Faults::None, menu);
        let plan = options.plan().expect("a workload makes a plan even without faults");
        assert!(plan.events.is_empty());
        let report = run_seed(&options);
        assert!(report.passed(), "{menu}: {}", report.render());
        assert!(timeline(&report).contains("workload at rest after"), "{menu}: {}", report.render());
    }
}

/// The deployments the users ask for really roll out (rollout-bound judges their scales)
/// and deletes go through the garbage collector.
#[test]
fn deployment_actions_reach_the_controllers() {
    let options = with_workload(11, swarm(), "deployments");
    let plan = options.plan().unwrap();
    assert!(plan.workload.iter().any(|a| matches!(a.action, Action::CreateDeployment { .. })));
    let report = run_seed(&options);
    assert!(report.passed(), "{}", report.render());
    let verdict = |name: &str| report.checks.iter().find(|c| c.name == name).expect(name).detail.clone();
    assert!(!verdict("rollout-bound").contains("vacuous"), "{}", verdict("rollout-bound"));
    assert!(!verdict("no-lost-update").contains(" 0 acknowledged updates"), "{}", verdict("no-lost-update"));
}

/// Grants and revokes: users read-modify-write under their own names, every RBAC decision
/// is judged, a revoked grant is refused, and a restore that brings a revoked grant back is
/// a security window, counted, not a violation.
#[test]
fn grants_and_revokes_are_judged_by_permissions() {
    let report = run_seed(&with_workload(2, swarm(), "all"));
    assert!(report.passed(), "{}", report.render());
    let permissions = report.checks.iter().find(|c| c.name == "permissions").expect("a permissions verdict");
    assert!(!permissions.detail.contains("vacuous"), "{}", permissions.detail);
    assert!(timeline(&report).contains("forbidden: no grant"), "{}", report.render());

    let disks = Faults::Swarm(faults::menus::menu("disks").unwrap().kinds);
    let report = run_seed(&with_workload(20, disks, "all"));
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.stats.get("security-windows"), Some(&1), "{:?}", report.stats);
}

/// The generated workload catches planted bugs of the paths it drives: an RBAC cache that
/// keeps a revoked grant (permissions), and a ReplicaSet controller without expectations
/// (convergence).
#[test]
fn the_workload_catches_planted_bugs_of_the_paths_it_drives() {
    use sim::bugs::PlantedBug;
    for (seed, menu, bug) in [
        (2, "permissions,config", PlantedBug::RbacCacheIgnoresBindingDeletes),
        (14, "all", PlantedBug::ReplicasetNoExpectations),
    ] {
        let mut options = with_workload(seed, swarm(), menu);
        bug.plant(&mut options);
        let report = run_seed(&options);
        let broken: BTreeSet<String> = report.outcome.broken().iter().map(|p| p.name().to_string()).collect();
        assert!(broken.contains(bug.caught_by().name()), "{bug}: {}", report.render());
    }
}
