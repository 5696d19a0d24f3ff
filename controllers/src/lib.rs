//! kubesim's control-plane clients: informers, work queues and leader election, and on
//! them the deployment, replicaset and node-lifecycle controllers (run by the
//! controller-manager), the scheduler and the kubelet; and [`runtime`], the public
//! controller runtime (kube-rs' `Controller`) on which a user runs a controller of their own.
//!
//! Every component reaches cluster state only through [`api::ApiClient`], as Kubernetes'
//! components reach it only through the apiserver.
//!
//! Architecture invariant: this crate does not depend on `store`. Only the apiserver writes
//! the store (docs/design.md §2); the compiler enforces it here.
//!
//! Each controller is a pure reconcile function (state in, actions out), tested without a
//! simulator, and a thin async driver that feeds it from informers and carries out its
//! actions. The deployment and replicaset controllers and the scheduler drive theirs on
//! [`runtime`], as a user's controller would; the node lifecycle controller (a periodic
//! pass over every node) and the kubelet (no primary resource) keep loops of their own. Time comes from madsim or from the node's [`api::Clock`], randomness from
//! `madsim::rand`, and every map whose order can reach behaviour is a `BTreeMap`.

pub mod controller_manager;
pub mod deployment;
pub mod driver;
pub mod endpoints;
pub mod events;
pub mod garbage_collector;
pub mod informer;
pub mod kubelet;
pub mod leader_election;
pub mod node_lifecycle;
pub mod notify;
pub mod observer;
pub mod replicaset;
pub mod rollout;
pub mod runtime;
pub mod scheduler;
pub mod workqueue;
