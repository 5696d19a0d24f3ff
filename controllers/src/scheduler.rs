//! The scheduler: binds each Pending pod without a node to a Ready, schedulable node with
//! room for it, choosing the least allocated one (fewest requested CPU millicores, ties by
//! node name), through the pods/binding request.
//!
//! Like kube-scheduler it "assumes" a pod on its node as soon as the bind succeeds, so the
//! next decision counts it even before the pod informer has seen the binding. A bind
//! refused with 409 means someone else bound the pod (a node never changes once set):
//! the pod is dropped. The scheduler runs its own leader election on
//! `kube-system/kube-scheduler`; its binds carry that lease's fence.
//!
//! [`choose_node`] is the pure core; [`run`] is the entry point, which runs it on the
//! controller runtime ([`crate::runtime`]) with the primary resource filtered to the pods
//! that need scheduling.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api::{ApiClient, ApiError, Clock, Node, Object, Pod, Resource};

use crate::driver::{retry_unless_not_leader, SyncError, TaskGroup};
use crate::events::EventRecorder;
use crate::informer::{key_of, object_key, split_key, Informer, InformerConfig, InformerEvent};
use crate::leader_election::{run_while_leader, LeaderElectionConfig, LeaderHandle};
use crate::observer::ControllerObserver;
use crate::replicaset::is_active;
use crate::runtime::{Action, Context, Controller, ControllerConfig, ObjectRef};
use crate::workqueue::WorkQueueConfig;

pub const COMPONENT: &str = "kube-scheduler";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Lease `kube-system/kube-scheduler`; the simulator sets `identity` per instance.
    pub leader_election: LeaderElectionConfig,
    pub informer: InformerConfig,
    pub workqueue: WorkQueueConfig,
    /// How often every unbound pod is retried (kube-scheduler flushes unschedulable pods
    /// every 60 s, or at once on a node change; kubesim retries every 5 s).
    pub unschedulable_retry_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            leader_election: LeaderElectionConfig::for_lease("kube-system", "kube-scheduler", "kube-scheduler"),
            informer: InformerConfig::default(),
            workqueue: WorkQueueConfig::default(),
            unschedulable_retry_ms: 5_000,
        }
    }
}

/// The CPU a pod requests: the sum over its containers.
pub fn pod_cpu_millis(pod: &Pod) -> u64 {
    pod.spec.containers.iter().map(|c| u64::from(c.cpu_millis)).sum()
}

/// A pod the scheduler bound and the informer has not yet shown bound: (node, cpu).
pub type AssumedPods = BTreeMap<String, (String, u64)>;

/// CPU requested on each node by active pods bound to it, plus assumed pods.
pub fn requested_cpu_by_node<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    assumed: &AssumedPods,
) -> BTreeMap<String, u64> {
    let mut requested: BTreeMap<String, u64> = BTreeMap::new();
    let mut counted = std::collections::BTreeSet::new();
    for pod in pods.into_iter().filter(|p| is_active(p)) {
        if let Some(node) = &pod.spec.node_name {
            *requested.entry(node.clone()).or_default() += pod_cpu_millis(pod);
            counted.insert(object_key(&pod.metadata.namespace, &pod.metadata.name));
        }
    }
    for (pod_key, (node, cpu)) in assumed {
        if !counted.contains(pod_key) {
            *requested.entry(node.clone()).or_default() += cpu;
        }
    }
    requested
}

/// Whether a node may take new pods: Ready and not cordoned.
pub fn is_schedulable(node: &Node) -> bool {
    node.status.ready && !node.spec.unschedulable
}

/// The pure core: the least allocated schedulable node with room for `pod_cpu` millicores,
/// ties broken by name.
pub fn choose_node<'a>(
    pod_cpu: u64,
    nodes: impl IntoIterator<Item = &'a Node>,
    requested: &BTreeMap<String, u64>,
) -> Option<String> {
    nodes
        .into_iter()
        .filter(|n| is_schedulable(n))
        .map(|n| {
            let used = requested.get(&n.metadata.name).copied().unwrap_or(0);
            (used, n)
        })
        .filter(|(used, n)| used + pod_cpu <= u64::from(n.status.cpu_capacity_millis))
        .min_by(|(a_used, a), (b_used, b)| a_used.cmp(b_used).then_with(|| a.metadata.name.cmp(&b.metadata.name)))
        .map(|(_, n)| n.metadata.name.clone())
}

/// Whether the scheduler should try to place `pod`.
pub fn needs_scheduling(pod: &Pod) -> bool {
    pod.spec.node_name.is_none() && is_active(pod)
}

/// The scheduler's entry point: leader election, and while leading, the scheduling loop.
/// Runs until the node is killed.
pub async fn run(
    config: SchedulerConfig,
    client: ApiClient,
    clock: Clock,
    observer: Option<Arc<dyn ControllerObserver>>,
) {
    let election = config.leader_election.clone();
    let observer_for_informers = observer.clone();
    let events = EventRecorder::start(client.clone(), clock.clone(), "default-scheduler");
    run_while_leader(election, COMPONENT, client.clone(), clock, observer, |leader| {
        start_term(&config, &client, &events, leader, observer_for_informers.clone())
    })
    .await
}

/// What every scheduling attempt of a term shares.
struct Term {
    /// Records `Scheduled` and `FailedScheduling` on pods, as kube-scheduler does.
    events: EventRecorder,
    // Shared with the pods informer's handler. The handler must not hold the `Term`: the
    // term's context holds the informer, and the cycle would keep both (and the
    // informer's cache) alive after the term ends.
    assumed: Arc<Mutex<AssumedPods>>,
}

fn unbound_pod_keys(pods: &Informer) -> Vec<String> {
    pods.cache()
        .objects()
        .iter()
        .filter(|(_, o)| o.as_pod().is_some_and(needs_scheduling))
        .map(|(k, _)| k.clone())
        .collect()
}

/// One term: the scheduler on the controller runtime ([`crate::runtime`]), its primary
/// resource the pods that need scheduling ([`Controller::filter`]), watching nodes.
fn start_term(
    config: &SchedulerConfig,
    client: &ApiClient,
    events: &EventRecorder,
    leader: LeaderHandle,
    observer: Option<Arc<dyn ControllerObserver>>,
) -> TaskGroup {
    let mut tasks = TaskGroup::new();
    let who = config.leader_election.identity.as_str();
    let pods = Informer::new(Resource::Pods, "", config.informer.clone()).with_observer(who, observer.clone());
    let nodes = Informer::new(Resource::Nodes, "", config.informer.clone()).with_observer(who, observer);
    let assumed = Arc::new(Mutex::new(AssumedPods::new()));

    // Subscribed before the runtime's own handler, so that an event's scheduling attempt
    // sees the assumed pods it changes.
    let a = assumed.clone();
    pods.subscribe(Box::new(move |event: &InformerEvent| {
        let Some(pod) = event.object().as_pod() else {
            return;
        };
        let key = key_of(event.object());
        let deleted = matches!(event, InformerEvent::Deleted(_));
        // A pod seen bound and now unbound: only a restored store (an older state of the
        // pod, from before its binding) does that. The binding this scheduler assumed is
        // gone with it; forget it so the pod is scheduled again.
        let unbound_again = matches!(
            event,
            InformerEvent::Modified { old, .. } if old.as_pod().is_some_and(|p| p.spec.node_name.is_some())
        ) && pod.spec.node_name.is_none();
        if unbound_again || deleted || pod.spec.node_name.is_some() {
            a.lock().expect("assumed pods").remove(&key);
        }
    }));

    // The informers' tasks are spawned before the runtime's resync and worker, the order
    // the scheduler had before it ran on the runtime (madsim picks among ready tasks by
    // their queue position, so the order is part of every seed's trace). None of them
    // runs before this function returns, so the runtime still subscribes first.
    for informer in [pods.clone(), nodes.clone()] {
        let client = client.clone();
        tasks.spawn(async move { informer.run(client).await });
    }
    let runtime_config = ControllerConfig {
        workqueue: config.workqueue.clone(),
        informer: config.informer.clone(),
        resync_period_ms: Some(config.unschedulable_retry_ms),
        workers: 1,
    };
    let unbound = pods.clone();
    let informers = BTreeMap::from([(Resource::Pods, pods), (Resource::Nodes, nodes)]);
    Controller::new(Resource::Pods, "")
        .filter(|pod| pod.as_pod().is_some_and(needs_scheduling))
        // A node appeared, changed or left: pods that did not fit may fit now.
        .watches(Resource::Nodes, move |_| {
            unbound_pod_keys(&unbound)
                .iter()
                .map(|key| {
                    let (namespace, name) = split_key(key);
                    ObjectRef::new(namespace, name)
                })
                .collect()
        })
        .with_config(runtime_config)
        .start(
            &mut tasks,
            client,
            Some(leader),
            &informers,
            Arc::new(Term { events: events.clone(), assumed }),
            schedule,
            retry_unless_not_leader,
        )
        .expect("the scheduler is given the informers it names, one worker and a work queue with room");
    tasks
}

/// One attempt to bind an unbound pod, as cached, to the node [`choose_node`] picks.
async fn schedule(object: Arc<Object>, ctx: Arc<Context<Term>>) -> Result<Action, SyncError> {
    let Some(pod) = object.as_pod() else {
        return Ok(Action::AwaitChange);
    };
    let key = key_of(&object);
    let term = ctx.data();
    if !needs_scheduling(pod) || term.assumed.lock().expect("assumed pods").contains_key(&key) {
        return Ok(Action::AwaitChange);
    }
    let cpu = pod_cpu_millis(pod);
    // Straight from the informer caches, which stay locked only for this computation.
    let chosen = ctx.cache(Resource::Nodes).with_objects(|nodes| {
        ctx.cache(Resource::Pods).with_objects(|pods| {
            let requested =
                requested_cpu_by_node(pods.filter_map(Object::as_pod), &term.assumed.lock().expect("assumed pods"));
            choose_node(cpu, nodes.filter_map(Object::as_node), &requested)
        })
    });
    let Some(node) = chosen else {
        let reason = format!("no schedulable node fits {cpu}m cpu");
        term.events.warning(&object, "FailedScheduling", reason.clone());
        return Err(SyncError::Retry(format!("pod {key}: {reason}")));
    };
    let fence = ctx.write_fence()?;
    let (namespace, name) = split_key(&key);
    match ctx.client().bind(namespace, name, &node, fence).await {
        Ok(_) => {
            let message = format!("Successfully assigned {namespace}/{name} to {node}");
            term.events.normal(&object, "Scheduled", message);
            term.assumed.lock().expect("assumed pods").insert(key.clone(), (node, cpu));
            Ok(Action::AwaitChange)
        }
        // Bound by someone else, or gone: nothing left to do for this pod.
        Err(ApiError::Conflict { .. } | ApiError::AlreadyExists { .. } | ApiError::NotFound { .. }) => {
            Ok(Action::AwaitChange)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{Container, ObjectMeta};

    fn node(name: &str, ready: bool, capacity: u32) -> Node {
        let mut n = Node { metadata: ObjectMeta::named("", name), ..Node::default() };
        n.status.ready = ready;
        n.status.cpu_capacity_millis = capacity;
        n
    }

    fn pod(name: &str, node: Option<&str>, cpu: u32) -> Pod {
        let mut p = Pod { metadata: ObjectMeta::named("default", name), ..Pod::default() };
        p.spec.node_name = node.map(str::to_string);
        p.spec.containers = vec![Container { name: "c".into(), image: "nginx".into(), cpu_millis: cpu }];
        p
    }

    fn check(pods: &[Pod], assumed: &AssumedPods, nodes: &[Node], cpu: u64, expect: Option<&str>) {
        let requested = requested_cpu_by_node(pods, assumed);
        assert_eq!(choose_node(cpu, nodes, &requested).as_deref(), expect);
    }

    #[test]
    fn least_allocated_node_wins_ties_by_name() {
        let nodes = [node("n3", true, 4000), node("n1", true, 4000), node("n2", true, 4000)];
        check(&[], &AssumedPods::new(), &nodes, 100, Some("n1"));
        let pods = [pod("a", Some("n1"), 500), pod("b", Some("n2"), 200), pod("c", Some("n3"), 200)];
        check(&pods, &AssumedPods::new(), &nodes, 100, Some("n2"));
    }

    #[test]
    fn not_ready_cordoned_and_full_nodes_are_skipped() {
        let mut cordoned = node("n2", true, 4000);
        cordoned.spec.unschedulable = true;
        let nodes = [node("n1", false, 4000), cordoned, node("n3", true, 1000)];
        let pods = [pod("a", Some("n3"), 950)];
        check(&pods, &AssumedPods::new(), &nodes, 50, Some("n3"));
        check(&pods, &AssumedPods::new(), &nodes, 51, None);
    }

    #[test]
    fn assumed_binds_count_until_the_informer_shows_them() {
        let nodes = [node("n1", true, 4000), node("n2", true, 4000)];
        let mut assumed = AssumedPods::new();
        assumed.insert("default/a".into(), ("n1".into(), 100));
        check(&[pod("a", None, 100)], &assumed, &nodes, 100, Some("n2"));
        // Once the informer shows the binding, it is counted once, not twice.
        let pods = [pod("a", Some("n1"), 100), pod("b", Some("n2"), 150)];
        check(&pods, &assumed, &nodes, 100, Some("n1"));
    }

    #[test]
    fn finished_pods_free_their_cpu() {
        let nodes = [node("n1", true, 4000), node("n2", true, 4000)];
        let mut done = pod("a", Some("n1"), 1000);
        done.status.phase = api::PodPhase::Succeeded;
        check(&[done, pod("b", Some("n2"), 10)], &AssumedPods::new(), &nodes, 100, Some("n1"));
    }
}
