//! The apiserver's configuration: identity, address, who may authenticate, the watch
//! cache's bound, the compactor's interval, the custom kinds served, and the planted bugs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use api::{CustomResourceDefinition, DefinitionError};

/// Who a bearer token authenticates as (Kubernetes `user.Info`: name and groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        Self { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Defects that can be planted in the apiserver so that kubesim's checkers can be shown to
/// catch them (`kubesim bugs`). Every one is off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiServerBugs {
    /// PLANTED BUG. Answer a create, update or status update as successful *before* the
    /// store has committed it: the transaction is spawned in the background and the client
    /// gets its object back at once, with a guessed resourceVersion (the watch cache's
    /// revision + 1). When the transaction then fails (conflict, lost leader, timeout) the
    /// client was told a lie. Caught by the "no acknowledged write lost"
    /// (docs/design.md §4, invariant 11) and linearizability (invariant 9) checkers.
    pub ack_before_commit: bool,
    /// PLANTED BUG. The watch cache serves a watch from before its window (revisions it
    /// evicted) from the window's start instead of answering 410 Gone: see
    /// `WatchCache::with_planted_bug_serves_evicted`. Caught by the watch-guarantees checker
    /// (docs/design.md §4, invariant 10).
    pub watch_cache_serves_evicted: bool,
    /// PLANTED BUG. The ClusterIP allocator writes its bitmap with an unconditional put
    /// instead of a compare-and-swap on its mod_revision (see
    /// `service_ips::ServiceIpAllocator::compare_and_swap`): two apiservers that allocate at
    /// once both write, the last writer wins, and the IP the first handed out is free
    /// again in the store. Caught by service-ips-unique (docs/design.md §4, invariant 17).
    pub service_ips_unconditional_put: bool,
    /// PLANTED BUG. An Update or UpdateStatus whose resourceVersion is stale is not
    /// refused with 409 Conflict: the apiserver re-reads the object and re-applies the
    /// client's object over the newer version, as Kubernetes' `GuaranteedUpdate` does only
    /// for an update without a resourceVersion (`AllowUnconditionalUpdate`). The writes
    /// between the version the client read and the one it overwrote are lost. Caught by
    /// no-lost-update (docs/design.md §4.14) in the read-modify-write scenario.
    pub update_reapplies_on_conflict: bool,
    /// PLANTED BUG. The RBAC authorizer's cache ignores the Delete watch events of
    /// RoleBindings (see `rbac_cache::RbacCache::apply`): a revoked binding stays in effect
    /// while the cache reports, and decides as if, it had synced past the delete. In
    /// Kubernetes the RBAC authorizer reads listers of shared informers, whose reflector
    /// applies every watch event, deletes included (`client-go/tools/cache`
    /// `DeltaFIFO`/`Indexer.Delete`), so a `kubectl delete rolebinding` takes effect as soon
    /// as the apiserver's informer has seen it. Caught by permissions (docs/design.md §4.19)
    /// in the permissions scenario.
    pub rbac_cache_ignores_binding_deletes: bool,
}

/// Services: the ClusterIP range and what runs for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesConfig {
    /// kube-apiserver's `--service-cluster-ip-range` (kubesim's default is a /28, see
    /// [`crate::service_ips::ServiceIpRange::DEFAULT`]).
    pub cluster_ip_range: crate::service_ips::ServiceIpRange,
    /// Whether the cluster runs Services: the ClusterIP repair loop runs every
    /// `repair_interval`, and the bootstrap policy holds the endpoints controller's role.
    /// Off (the default), a Service can still be created and deleted, allocating and
    /// releasing its IP, but the apiserver writes and reads nothing for Services
    /// otherwise, so a cluster that creates none runs exactly as before Services existed.
    pub enabled: bool,
    /// How often the repair loop runs (kube-apiserver: 3 minutes).
    pub repair_interval: Duration,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            cluster_ip_range: crate::service_ips::ServiceIpRange::DEFAULT,
            enabled: false,
            repair_interval: Duration::from_secs(3 * 60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// This apiserver's name, reported to the observer with every store write.
    pub name: String,
    pub listen_addr: SocketAddr,
    /// Bearer token -> the user it authenticates (Kubernetes' static token file).
    pub tokens: BTreeMap<String, UserInfo>,
    /// How many store events the watch cache keeps (Kubernetes' watch cache size). A
    /// watch from before the oldest kept event gets 410 Gone.
    pub watch_cache_capacity: usize,
    /// kube-apiserver's `--etcd-compaction-interval` (default 5 min): every interval,
    /// compact the store to the revision seen at the previous interval. Zero switches the
    /// compactor off; one apiserver per cluster is enough to run it.
    pub compaction_interval: Duration,
    /// The most events one watch answer carries (see
    /// `WatchCache::with_max_events_per_response`): the bound on what the apiserver hands
    /// one watcher at once.
    pub watch_max_events_per_response: usize,
    /// kube-apiserver's `--event-ttl` (default one hour): how long an Event lives after its
    /// last write before the store's lease deletes it (see [`crate::ttl_leases`]).
    pub event_ttl: Duration,
    pub planted_bugs: ApiServerBugs,
    /// Whether the bootstrap policy includes the garbage collector's ClusterRole and its
    /// binding to `api::GARBAGE_COLLECTOR_USER` ([`crate::rbac::RbacPolicy::with_garbage_collector_role`]).
    /// Off by default, so that control planes that run no collector write the same
    /// bootstrap objects as before (and keep their trace hashes).
    pub garbage_collector_role: bool,
    /// Services' ClusterIP range, repair loop and controllers' policy.
    pub services: ServicesConfig,
    /// Whether the observer is told of every request the RBAC authorizer decides
    /// ([`crate::ApiServerObserver::authorized`]), with the revisions the RBAC cache had
    /// synced to: the permissions checker's evidence. Off by default, so that other runs'
    /// histories (and trace hashes) stay as they were.
    pub record_authorizations: bool,
    /// The custom kinds served, each validated and unique by group and plural (added only
    /// through [`ApiServerConfig::with_custom_resource`]).
    custom_resources: Vec<&'static CustomResourceDefinition>,
}

impl ApiServerConfig {
    pub const DEFAULT_WATCH_CACHE_CAPACITY: usize = 1000;
    pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(5 * 60);

    /// A configuration with Kubernetes' defaults and no tokens (nobody can authenticate
    /// until tokens are added).
    pub fn new(name: impl Into<String>, listen_addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            listen_addr,
            tokens: BTreeMap::new(),
            watch_cache_capacity: Self::DEFAULT_WATCH_CACHE_CAPACITY,
            compaction_interval: Self::DEFAULT_COMPACTION_INTERVAL,
            watch_max_events_per_response: crate::watch_cache::MAX_EVENTS_PER_RESPONSE,
            event_ttl: crate::ttl_leases::DEFAULT_EVENT_TTL,
            planted_bugs: ApiServerBugs::default(),
            garbage_collector_role: false,
            services: ServicesConfig::default(),
            record_authorizations: false,
            custom_resources: Vec::new(),
        }
    }

    /// Serves a custom kind (Kubernetes: creating its CustomResourceDefinition). Refuses an
    /// invalid definition and a second, different definition of the same group and plural;
    /// registering the same definition twice is harmless.
    ///
    /// ```
    /// use api::CustomResourceDefinition;
    /// use apiserver::ApiServerConfig;
    /// static DATABASES: CustomResourceDefinition =
    ///     CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
    /// let config = ApiServerConfig::new("apiserver-0", "10.0.0.1:6443".parse().unwrap())
    ///     .with_custom_resource(&DATABASES)
    ///     .expect("a valid definition");
    /// assert_eq!(config.custom_resources(), [&DATABASES]);
    /// ```
    pub fn with_custom_resource(
        mut self,
        definition: &'static CustomResourceDefinition,
    ) -> Result<Self, DefinitionError> {
        definition.validate()?;
        let same_name = |d: &&&CustomResourceDefinition| d.group == definition.group && d.plural == definition.plural;
        match self.custom_resources.iter().find(same_name) {
            Some(known) if *known == definition => {}
            Some(known) => {
                return Err(DefinitionError::Conflicting {
                    group: definition.group.to_string(),
                    plural: definition.plural.to_string(),
                    first: known.to_string(),
                    second: definition.to_string(),
                })
            }
            None => self.custom_resources.push(definition),
        }
        Ok(self)
    }

    /// The custom kinds this apiserver serves.
    pub fn custom_resources(&self) -> &[&'static CustomResourceDefinition] {
        &self.custom_resources
    }

    /// Whether this apiserver serves `resource`: every built-in, and the custom kinds
    /// registered with exactly this definition. 404 otherwise.
    pub fn check_served(&self, resource: api::Resource) -> Result<(), api::ApiError> {
        let Some(definition) = resource.custom_definition() else {
            return Ok(());
        };
        let reason =
            match self.custom_resources.iter().find(|d| d.group == definition.group && d.plural == definition.plural) {
                Some(known) if *known == definition => return Ok(()),
                Some(known) => format!("this apiserver serves {known}, not {definition}"),
                None => format!("no custom resource definition {definition} is registered"),
            };
        Err(api::ApiError::UnknownResource { resource, reason })
    }

    /// Adds a bearer token for a user.
    pub fn with_token(mut self, token: impl Into<String>, user: UserInfo) -> Self {
        self.tokens.insert(token.into(), user);
        self
    }
}
