//! The control plane end to end: the apiserver as the only writer, authorization and
//! binding rules, and convergence of `nginx-deployment` through controller-manager
//! failover, apiserver and kubelet restarts, and a kubelet that stops for good.

use std::future::Future;
use std::time::Duration;

use api::{ApiClient, ApiError, Object, PodPhase, Resource};
use madsim::runtime::{Handle, Runtime};
use sim::addresses;
use sim::control_plane::{ControlPlane, ControlPlaneOptions};
use sim::history::HistoryEvent;
use sim::nodes::SeedNodes;
use sim::recorder::Recorder;
use sim::report::CheckStatus;
use sim::runner::RunOptions;
use sim::scenario::deploy_nginx::{create_with_retries, list_pods, nginx_deployment, wait_for_running, NAMESPACE};
use sim::scenario::Scenario;
use store::api::PrincipalRole;

/// Runs `body` as the supervisor of a fresh simulation with the default control plane
/// started and `nginx-deployment` (3 replicas) created and Running.
fn with_deployment<F, Fut>(seed: u64, body: F)
where
    F: FnOnce(ControlPlane, ApiClient, madsim::runtime::NodeHandle, Recorder) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let recorder = Recorder::new();
        let plane = ControlPlane::start(&ControlPlaneOptions::default(), &recorder, &SeedNodes::new());
        let (node, kubectl) = plane.kubectl(&recorder).await;
        let ready = {
            let (kubectl, recorder) = (kubectl.clone(), recorder.clone());
            node.spawn(async move {
                let start = madsim::time::Instant::now();
                create_with_retries(&kubectl, nginx_deployment(3), Duration::from_secs(30))
                    .await
                    .expect("create the deployment");
                wait_for_running(&kubectl, 3, start, Duration::from_secs(30), &recorder).await
            })
            .await
            .unwrap()
        };
        assert!(ready, "3 pods Running within 30s");
        body(plane, kubectl, node, recorder).await;
    });
}

async fn running_pods(node: &madsim::runtime::NodeHandle, kubectl: &ApiClient) -> Vec<api::Pod> {
    let kubectl = kubectl.clone();
    node.spawn(async move { list_pods(&kubectl).await }).await.unwrap()
}

/// Waits (bounded) until `n` pods are Running on nodes other than `excluded`.
async fn converges_to(
    node: &madsim::runtime::NodeHandle,
    kubectl: &ApiClient,
    n: usize,
    excluded: Option<&str>,
    bound: Duration,
) {
    let start = madsim::time::Instant::now();
    loop {
        let pods = running_pods(node, kubectl).await;
        let running = pods
            .iter()
            .filter(|p| p.status.phase == PodPhase::Running && p.spec.node_name.as_deref() != excluded)
            .count();
        if running == n && pods.len() == n {
            return;
        }
        assert!(start.elapsed() < bound, "not converged to {n} Running pods within {bound:?}: {pods:#?}");
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn every_store_mutation_is_made_by_an_apiserver_principal() {
    let recorder_out = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = recorder_out.clone();
    with_deployment(11, move |_plane, _kubectl, _node, recorder| async move {
        *out.lock().unwrap() = Some(recorder.snapshot());
    });
    let history = recorder_out.lock().unwrap().take().unwrap();
    let mut n_mutations = 0;
    for (_, e) in history.events() {
        if let HistoryEvent::Applied { principal, principal_role, source, n_events, .. } = e {
            if *n_events > 0 {
                n_mutations += 1;
                assert_eq!(*principal_role, PrincipalRole::ApiServer, "{principal} from {source}");
                assert!(source.starts_with("10.0.2."), "store mutation from a non-apiserver node {source}");
            }
        }
    }
    assert!(n_mutations > 20, "the flow writes the store many times ({n_mutations})");
}

#[test]
fn a_kubelet_updating_another_nodes_pod_gets_403_and_nothing_changes() {
    with_deployment(12, |plane, kubectl, node, recorder| async move {
        let pods = running_pods(&node, &kubectl).await;
        let victim = pods.iter().find(|p| p.spec.node_name.as_deref() != Some("kubelet-0")).unwrap().clone();
        let (k0_node, kubelet0) =
            plane.client_as("system:node:kubelet-0", "impostor", addresses::client(2), &recorder).await;
        let mut tampered = victim.clone();
        tampered.status.phase = PodPhase::Failed;
        let result =
            k0_node.spawn(async move { kubelet0.update_status(Object::Pod(tampered), None).await }).await.unwrap();
        assert!(matches!(result, Err(ApiError::Forbidden { .. })), "{result:?}");
        let kubectl2 = kubectl.clone();
        let name = victim.metadata.name.clone();
        let after =
            node.spawn(async move { kubectl2.get(Resource::Pods, NAMESPACE, &name).await }).await.unwrap().unwrap();
        assert_eq!(after.metadata().resource_version, victim.metadata.resource_version, "nothing changed");
    });
}

#[test]
fn the_scheduler_rebinding_a_bound_pod_gets_409() {
    with_deployment(13, |plane, kubectl, node, recorder| async move {
        let pods = running_pods(&node, &kubectl).await;
        let bound = pods[0].clone();
        let other_node = if bound.spec.node_name.as_deref() == Some("kubelet-0") { "kubelet-1" } else { "kubelet-0" };
        let (s_node, scheduler) =
            plane.client_as("system:kube-scheduler", "scheduler-impostor", addresses::client(3), &recorder).await;
        let name = bound.metadata.name.clone();
        let result =
            s_node.spawn(async move { scheduler.bind(NAMESPACE, &name, other_node, None).await }).await.unwrap();
        assert!(matches!(result, Err(ApiError::Conflict { .. })), "{result:?}");
        let pods_after = running_pods(&node, &kubectl).await;
        let same = pods_after.iter().find(|p| p.metadata.name == bound.metadata.name).unwrap();
        assert_eq!(same.spec.node_name, bound.spec.node_name, "a pod's node never changes");
    });
}

#[test]
fn killing_the_leading_controller_manager_hands_over_and_the_deployment_still_converges() {
    with_deployment(14, |plane, kubectl, node, recorder| async move {
        let leader = recorder
            .snapshot()
            .events()
            .filter_map(|(_, e)| match e {
                HistoryEvent::LeaderAcquired { component, identity, .. }
                    if component.contains("controller-manager") =>
                {
                    Some(identity.clone())
                }
                _ => None,
            })
            .last()
            .expect("a controller-manager leads");
        let leading = plane.controller_managers.iter().find(|c| c.name == leader).unwrap();
        Handle::current().kill(leading.node.id());
        let kubectl2 = kubectl.clone();
        node.spawn(
            async move { sim::scenario::deploy_nginx::scale(&kubectl2, 5, Duration::from_secs(30)).await.unwrap() },
        )
        .await
        .unwrap();
        converges_to(&node, &kubectl, 5, None, Duration::from_secs(60)).await;
        let new_leader = recorder.snapshot().events().any(|(_, e)| {
            matches!(e, HistoryEvent::LeaderAcquired { component, identity, .. }
                if component.contains("controller-manager") && *identity != leader)
        });
        assert!(new_leader, "the standby controller-manager took over");
    });
}

#[test]
fn restarting_the_apiserver_and_one_kubelet_mid_flow_still_converges() {
    with_deployment(15, |plane, kubectl, node, _recorder| async move {
        let kubectl2 = kubectl.clone();
        node.spawn(
            async move { sim::scenario::deploy_nginx::scale(&kubectl2, 5, Duration::from_secs(30)).await.unwrap() },
        )
        .await
        .unwrap();
        sim::nodes::restart_node(plane.apiservers[0].node.id());
        sim::nodes::restart_node(plane.kubelets[1].0.node.id());
        converges_to(&node, &kubectl, 5, None, Duration::from_secs(60)).await;
    });
}

#[test]
fn a_stopped_kubelets_pods_are_evicted_and_rescheduled_on_the_remaining_nodes() {
    with_deployment(16, |plane, kubectl, node, recorder| async move {
        let pods = running_pods(&node, &kubectl).await;
        let victim = pods[0].spec.node_name.clone().unwrap();
        let (component, _) = plane.kubelets.iter().find(|(c, _)| c.name == victim).unwrap();
        Handle::current().kill(component.node.id());
        // NotReady after the 40 s grace period, eviction after the 5 min timeout.
        converges_to(&node, &kubectl, 3, Some(&victim), Duration::from_secs(7 * 60)).await;
        let evicted = recorder.snapshot().events().any(|(_, e)| {
            matches!(e, HistoryEvent::StoreWrite { user, verb: api::Verb::Delete, .. } if user.contains("controller-manager"))
        });
        assert!(evicted, "the node lifecycle controller evicted the stopped node's pods");
    });
}

#[test]
fn without_faults_every_seed_in_0_100_reaches_3_running_pods_within_30_simulated_seconds() {
    for seed in 0..100 {
        let (report, history) =
            sim::runner::run_seed_with_history(&RunOptions::without_faults(seed, Scenario::DeployNginx));
        assert!(report.passed(), "seed {seed}:\n{}", report.render());
        // The user waited for 3 Running pods, then 5, then for rest; the convergence
        // checker judged all three met.
        let goals: Vec<&str> = history
            .events()
            .filter_map(|(_, e)| match e {
                HistoryEvent::Awaited { goal, .. } => Some(goal.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(goals, ["3 pods Running within 30s", "5 pods Running within 30s", "at rest"], "seed {seed}");
        let convergence = report.checks.iter().find(|c| c.name == "convergence").expect("a convergence verdict");
        assert!(
            convergence.status == CheckStatus::Pass
                && convergence.detail.starts_with("3 of 3 awaited goals met in time"),
            "seed {seed}: {convergence:?}"
        );
    }
}

/// Events: the controllers, the scheduler and the kubelets record them (Kubernetes'
/// reasons), the apiserver stores them under leases of `--event-ttl`, and without faults
/// the store deletes each one on schedule: no earlier than the TTL after its lease was
/// granted (which is before the write that attached it: the apiserver takes the lease
/// first, as Kubernetes' lease manager does), and within the lease-reuse window (0 s of a
/// 10 s TTL), the lessor's 500 ms check and a commit after its last write.
#[test]
fn events_are_recorded_and_expire_on_schedule_without_faults() {
    let mut options = RunOptions { seed_picks_knobs: false, ..RunOptions::without_faults(0, Scenario::DeployNginx) };
    options.cluster.tuning.event_ttl_ms = 10_000;
    let (report, history) = sim::runner::run_seed_with_history(&options);
    assert!(report.failures().next().is_none(), "{:?}", report.failures().collect::<Vec<_>>());
    // key -> (last write, its lease, deletion), simulated ns; lease -> when the leader granted it.
    let mut events: std::collections::BTreeMap<String, (u64, i64, Option<u64>)> = Default::default();
    let mut granted: std::collections::BTreeMap<i64, u64> = Default::default();
    for (at_ns, event) in history.events() {
        match event {
            HistoryEvent::Committed { changes, .. } => {
                for change in changes.iter().filter(|c| c.key.starts_with("/registry/events/")) {
                    let entry = events.entry(change.key.clone()).or_insert((at_ns, 0, None));
                    match change.value_hash {
                        Some(_) => *entry = (at_ns, 0, None),
                        None => entry.2 = Some(at_ns),
                    }
                }
            }
            HistoryEvent::LeaseAttached { key, lease, .. } => {
                if let Some(entry) = events.get_mut(key) {
                    entry.1 = *lease;
                }
            }
            HistoryEvent::Lessor {
                event: sim::history::LessorRecord::Granted { lease, primary: true, .. }, ..
            } => {
                granted.insert(*lease, at_ns);
            }
            _ => {}
        }
    }
    // Five pods: one ScalingReplicaSet, then per pod SuccessfulCreate, Scheduled, Pulling
    // and Started.
    let recorded = events.keys().filter(|k| k.contains("nginx")).count();
    let expected = 1 + 5 * 4;
    assert!(recorded >= expected, "{recorded} nginx Events in {events:?}");
    let expired: Vec<_> = events.iter().filter_map(|(k, (w, l, d))| d.map(|d| (k, *w, *l, d))).collect();
    assert!(!expired.is_empty(), "no Event expired within the run: {events:?}");
    for (key, written, lease, deleted) in expired {
        let grant = granted.get(&lease).copied().unwrap_or_else(|| panic!("{key}: lease {lease} never granted"));
        let since_grant = Duration::from_nanos(deleted - grant);
        let since_write = Duration::from_nanos(deleted - written);
        assert!(since_grant >= Duration::from_secs(10), "{key} deleted {since_grant:?} after its lease's grant");
        assert!(since_write <= Duration::from_millis(12_000), "{key} lived {since_write:?} past a 10 s TTL");
    }
}
