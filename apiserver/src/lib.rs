//! kube-apiserver for kubesim: the only component that talks to the store.
//!
//! It holds authentication (bearer tokens) and authorization (the superuser group, the
//! Node authorizer and NodeRestriction, then RBAC) in [`authz`], Kubernetes' RBAC
//! authorizer and bootstrap policy in [`rbac`], the RBAC objects the authorizer decides
//! from (its own informers of them) and the bootstrap writes in [`rbac_cache`], validating admission in [`admission`], the
//! registry of Kubernetes objects over the store's transactions (optimistic concurrency,
//! lease fencing, NamespaceLifecycle) in [`registry`], the watch cache that serves long-poll
//! watches in [`watch_cache`], the compactor, the RPC server and its graceful shutdown
//! ([`Termination`]) in [`server`], Services' ClusterIP allocator over the store in
//! [`service_ips`] and its repair loop in [`service_ip_repair`], and what it needs of the store, with an in-memory
//! store for tests, in [`backend`].
//!
//! What it must not know: Raft, members, disks or the network path to the store (all behind
//! [`Backend`]); the nemesis, the checkers and the history recorder (it reports store writes
//! to an [`ApiServerObserver`] and never reads anything back). Time comes from the
//! simulator through [`api::Clock`], randomness from madsim's seeded RNG.
//!
//! Planted bugs (off by default) live in [`ApiServerBugs`].

pub mod admission;
pub mod authz;
pub mod backend;
pub mod config;
pub mod rbac;
pub mod rbac_cache;
pub mod registry;
pub mod server;
pub mod service_ip_repair;
pub mod service_ips;
pub mod ttl_leases;
pub mod watch_cache;

pub use authz::{authenticate, authorize, Attributes, Decision};
pub use backend::{Backend, InMemoryBackend};
pub use config::{ApiServerBugs, ApiServerConfig, ServicesConfig, UserInfo};
pub use registry::api_error_from_store;
pub use server::{serve, ApiServer, ApiServerObserver, AuthorizationDecision, BackgroundTasks, Termination};
