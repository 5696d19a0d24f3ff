//! A seed is a promise: the same seed replays the same run, in a fresh runtime, bit for
//! bit (same trace hash); different seeds explore different runs.

use sim::runner::{run_seed, RunOptions};
use sim::scenario::Scenario;

fn same_seed_same_run(options: impl Fn(u64) -> RunOptions) {
    let first = run_seed(&options(7));
    let again = run_seed(&options(7));
    assert!(first.passed(), "{}", first.render());
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first, again, "the whole report replays, not just the hash");
    let other = run_seed(&options(8));
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn store_smoke_with_its_scripted_leader_crash_replays_exactly() {
    same_seed_same_run(|seed| RunOptions::without_faults(seed, Scenario::StoreSmoke));
}

#[test]
fn store_smoke_under_swarm_faults_replays_exactly() {
    same_seed_same_run(|seed| RunOptions::new(seed, Scenario::StoreSmoke));
}

#[test]
fn deploy_nginx_under_swarm_faults_replays_exactly() {
    same_seed_same_run(|seed| RunOptions::new(seed, Scenario::DeployNginx));
}

/// A campaign runs each seed on its own thread among several workers; its hash for a seed
/// must equal a fresh run's, whatever the number of workers.
#[test]
fn campaign_hashes_equal_fresh_runs_whatever_the_number_of_workers() {
    use kubesim::campaign::{run_campaign, CampaignOptions};
    let campaign = |jobs| {
        let options = CampaignOptions {
            seeds: 0..6,
            jobs,
            template: RunOptions::new(0, Scenario::DeployNginx),
            repro_flags: String::new(),
            wall_limit: std::time::Duration::from_secs(300),
        };
        run_campaign(&options, None, &|_, _| {}).unwrap()
    };
    let (one, two) = (campaign(1), campaign(2));
    for (a, b) in one.results.iter().zip(&two.results) {
        assert_eq!((a.seed, &a.trace_hash), (b.seed, &b.trace_hash));
        let fresh = run_seed(&RunOptions::new(a.seed, Scenario::DeployNginx));
        assert_eq!(a.trace_hash, fresh.trace_hash, "seed {}", a.seed);
    }
}
