//! kube-controller-manager: leader election on `kube-system/kube-controller-manager` and,
//! while leading, the deployment, replicaset and node-lifecycle controllers (and the
//! endpoints controller, when [`EndpointsControllerConfig::enabled`]) over shared
//! informers, and the garbage collector when configured
//! ([`ControllerManagerConfig::garbage_collector`]). Every write of a term carries that
//! term's lease fence (when fencing is on).
//! Losing leadership aborts the term's informers and workers at once; winning it again
//! starts fresh ones (with empty caches and expectations, as a restarted Kubernetes
//! controller-manager would).

use std::collections::BTreeMap;
use std::sync::Arc;

use api::{ApiClient, Clock, Resource};

use crate::deployment::{DeploymentController, DeploymentControllerConfig};
use crate::driver::TaskGroup;
use crate::endpoints::{EndpointsController, EndpointsControllerConfig};
use crate::events::EventRecorder;
use crate::garbage_collector::{GarbageCollector, GarbageCollectorConfig};
use crate::informer::{Informer, InformerConfig};
use crate::leader_election::{run_while_leader, LeaderElectionConfig, LeaderHandle};
use crate::node_lifecycle::{NodeLifecycleConfig, NodeLifecycleController, NODE_LEASE_NAMESPACE};
use crate::observer::ControllerObserver;
use crate::replicaset::{ReplicaSetConfig, ReplicaSetController};

pub const COMPONENT: &str = "kube-controller-manager";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerManagerConfig {
    /// Lease `kube-system/kube-controller-manager`; the simulator sets `identity` per
    /// instance and may switch `fencing` off.
    pub leader_election: LeaderElectionConfig,
    pub informer: InformerConfig,
    pub deployment: DeploymentControllerConfig,
    pub replica_set: ReplicaSetConfig,
    pub node_lifecycle: NodeLifecycleConfig,
    /// The garbage collector ([`crate::garbage_collector`]), run only when set and given
    /// its own client ([`run_with_garbage_collector`]). `None` by default: kubesim's
    /// scenarios other than `garbage-collection` do not run it yet, so that their trace
    /// hashes stay as they were until the generated workload turns it on everywhere.
    pub garbage_collector: Option<GarbageCollectorConfig>,
    /// The endpoints controller, off unless the cluster runs Services.
    pub endpoints: EndpointsControllerConfig,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        Self {
            leader_election: LeaderElectionConfig::for_lease(
                "kube-system",
                "kube-controller-manager",
                "kube-controller-manager",
            ),
            informer: InformerConfig::default(),
            deployment: DeploymentControllerConfig::default(),
            replica_set: ReplicaSetConfig::default(),
            node_lifecycle: NodeLifecycleConfig::default(),
            garbage_collector: None,
            endpoints: EndpointsControllerConfig::default(),
        }
    }
}

/// The controller-manager's entry point. Runs until the node is killed.
pub async fn run(
    config: ControllerManagerConfig,
    client: ApiClient,
    clock: Clock,
    observer: Option<Arc<dyn ControllerObserver>>,
) {
    run_with_garbage_collector(config, client, None, clock, observer).await
}

/// [`run`], with the client the garbage collector writes with (its own identity,
/// `garbage_collector::GARBAGE_COLLECTOR_USER`); the collector runs when both it and
/// `config.garbage_collector` are given.
pub async fn run_with_garbage_collector(
    config: ControllerManagerConfig,
    client: ApiClient,
    gc_client: Option<ApiClient>,
    clock: Clock,
    observer: Option<Arc<dyn ControllerObserver>>,
) {
    let election = config.leader_election.clone();
    let observer_for_informers = observer.clone();
    // One recorder per controller, for the life of the process (client-go's broadcaster).
    let recorders = Recorders {
        deployment: EventRecorder::start(client.clone(), clock.clone(), "deployment-controller"),
        replica_set: EventRecorder::start(client.clone(), clock.clone(), "replicaset-controller"),
        node: EventRecorder::start(client.clone(), clock.clone(), "node-controller"),
    };
    run_while_leader(election, COMPONENT, client.clone(), clock.clone(), observer, |leader| {
        start_term(&config, &client, gc_client.as_ref(), &clock, &recorders, leader, observer_for_informers.clone())
    })
    .await
}

/// The event recorders of the controllers the controller-manager runs.
struct Recorders {
    deployment: EventRecorder,
    replica_set: EventRecorder,
    node: EventRecorder,
}

fn start_term(
    config: &ControllerManagerConfig,
    client: &ApiClient,
    gc_client: Option<&ApiClient>,
    clock: &Clock,
    recorders: &Recorders,
    leader: LeaderHandle,
    observer: Option<Arc<dyn ControllerObserver>>,
) -> TaskGroup {
    let mut tasks = TaskGroup::new();
    let who = config.leader_election.identity.clone();
    let informer = |resource, namespace| {
        Informer::new(resource, namespace, config.informer.clone()).with_observer(&who, observer.clone())
    };
    let deployments = informer(Resource::Deployments, "");
    let replica_sets = informer(Resource::ReplicaSets, "");
    let pods = informer(Resource::Pods, "");
    let nodes = informer(Resource::Nodes, "");
    let node_leases = informer(Resource::Leases, NODE_LEASE_NAMESPACE);

    // Controllers subscribe before the informers start, so they miss no event.
    DeploymentController {
        config: config.deployment.clone(),
        client: client.clone(),
        events: recorders.deployment.clone(),
        leader: leader.clone(),
        deployments: deployments.clone(),
        replica_sets: replica_sets.clone(),
        observer: observer.clone(),
        identity: who.clone(),
    }
    .start(&mut tasks);
    ReplicaSetController {
        config: config.replica_set.clone(),
        client: client.clone(),
        clock: clock.clone(),
        events: recorders.replica_set.clone(),
        leader: leader.clone(),
        replica_sets: replica_sets.clone(),
        pods: pods.clone(),
    }
    .start(&mut tasks);
    NodeLifecycleController {
        config: config.node_lifecycle.clone(),
        client: client.clone(),
        clock: clock.clone(),
        events: recorders.node.clone(),
        leader: leader.clone(),
        nodes: nodes.clone(),
        node_leases: node_leases.clone(),
        pods: pods.clone(),
    }
    .start(&mut tasks);
    let mut gc_informers = Vec::new();
    if let (Some(gc_config), Some(gc_client)) = (&config.garbage_collector, gc_client) {
        // The shared informers where the term has one, the collector's own otherwise.
        let shared = [&deployments, &replica_sets, &pods];
        let informers: BTreeMap<Resource, Informer> = gc_config
            .resources
            .iter()
            .map(|&resource| match shared.iter().find(|i| i.resource() == resource) {
                Some(informer) => (resource, (*informer).clone()),
                None => {
                    let own = informer(resource, "");
                    gc_informers.push(own.clone());
                    (resource, own)
                }
            })
            .collect();
        GarbageCollector { config: gc_config.clone(), client: gc_client.clone(), leader: leader.clone(), informers }
            .start(&mut tasks);
    }

    let mut informers = vec![deployments, replica_sets, pods.clone(), nodes, node_leases];
    if config.endpoints.enabled {
        let (services, endpoints) = (informer(Resource::Services, ""), informer(Resource::Endpoints, ""));
        EndpointsController {
            config: config.endpoints.clone(),
            client: client.clone(),
            leader,
            services: services.clone(),
            endpoints: endpoints.clone(),
            pods,
        }
        .start(&mut tasks);
        informers.extend([services, endpoints]);
    }

    for informer in informers.into_iter().chain(gc_informers) {
        let client = client.clone();
        tasks.spawn(async move { informer.run(client).await });
    }
    tasks
}
