//! The recorder of one seed's [`History`]: every component reports into it through its
//! observer trait (store members, the store client workload, apiservers, controllers, the
//! nemesis), and it stamps each record with simulated time and folds it into the trace
//! hash: a running xxh3 over each record's canonical (bincode) encoding.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use api::{ApiRequest, ApiResponse, ApiResult, Operation, Verb};
use store::api::{MemberId, Principal, Revision};
use store::raft::Role;
use store::server::{AppliedEntry, StoreObserver};
use verdict::history::{ApiOutcome, History, HistoryEvent, KeyState, LessorRecord, Record, WatchedEvent, MAX_RECORDS};
use xxhash_rust::xxh3::Xxh3;

use crate::cancel::SeedCancel;

/// Records a recorder makes room for up front: about what a default seed records, so that
/// most runs never grow (and copy) the record list.
const INITIAL_RECORDS_CAPACITY: usize = 4_096;

struct Inner {
    records: Vec<Record>,
    hasher: Xxh3,
    /// The encoding of the record being hashed, kept between records so that recording
    /// allocates no buffer of its own.
    encoded: Vec<u8>,
    overflowed: bool,
    /// The highest revision recorded as `Committed` in the current cluster epoch (reset
    /// by a restore, whose cluster may reuse revisions when a bug skips the bump).
    last_committed: Revision,
    /// Each controller component's current leader as the leases told it (component ->
    /// identity), for coverage only: it tells a deposed leader's fenced write from one
    /// that only raced its own renewal.
    leaders: std::collections::BTreeMap<String, String>,
    /// Checked at every record: the seed's thread learns here that it was cancelled.
    cancel: SeedCancel,
    /// Whether each Update's and UpdateStatus's resourceVersion is recorded
    /// ([`Recorder::record_update_preconditions`]).
    records_update_preconditions: bool,
    /// Whether each committed RBAC object is recorded ([`Recorder::record_rbac_objects`]).
    records_rbac_objects: bool,
}

/// Shared by every observer of one run. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::cancellable(SeedCancel::default())
    }

    /// A recorder that checks `cancel` at every record (see [`crate::cancel`]).
    pub fn cancellable(cancel: SeedCancel) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                records: Vec::with_capacity(INITIAL_RECORDS_CAPACITY),
                hasher: Xxh3::new(),
                encoded: Vec::new(),
                overflowed: false,
                last_committed: 0,
                leaders: Default::default(),
                cancel,
                records_update_preconditions: false,
                records_rbac_objects: false,
            })),
        }
    }

    /// Simulated time now, in ns since the run began.
    pub fn now_ns() -> u64 {
        madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
    }

    pub fn record(&self, event: HistoryEvent) {
        let record = Record { at_ns: Self::now_ns(), event };
        let mut inner = self.inner.lock().expect("recorder lock");
        Self::push(&mut inner, record);
    }

    fn push(inner: &mut Inner, record: Record) {
        inner.cancel.check();
        if let HistoryEvent::Restored { .. } = record.event {
            inner.last_committed = 0;
        }
        if inner.records.len() >= MAX_RECORDS {
            inner.overflowed = true;
            return;
        }
        // The same bytes as `bincode::serialize` (both use bincode's default options).
        inner.encoded.clear();
        bincode::serialize_into(&mut inner.encoded, &record).expect("history records always serialize");
        inner.hasher.update(&inner.encoded);
        inner.records.push(record);
    }

    /// From now on, records the resourceVersion every Update and UpdateStatus request
    /// carries (`HistoryEvent::UpdatePrecondition`, after its `ApiInvoked`): the evidence
    /// the no-lost-update checker judges. Only the read-modify-write scenario asks for it,
    /// so other runs' histories and trace hashes stay as they were.
    pub fn record_update_preconditions(&self) {
        self.inner.lock().expect("recorder lock").records_update_preconditions = true;
    }

    /// From now on, records every committed put or delete of an RBAC object
    /// (`HistoryEvent::RbacObjectCommitted`, with its revision's `Committed`): what the
    /// permissions checker rebuilds the authorizer's view from. Only a control plane that
    /// records authorizations asks for it (`ControlPlaneOptions::record_authorizations`),
    /// so other runs' histories and trace hashes stay as they were.
    pub fn record_rbac_objects(&self) {
        self.inner.lock().expect("recorder lock").records_rbac_objects = true;
    }

    pub fn note(&self, text: impl Into<String>) {
        self.record(HistoryEvent::Note { text: text.into() });
    }

    pub fn fault(&self, description: impl Into<String>) {
        self.record(HistoryEvent::Fault { description: description.into() });
    }

    /// The history so far (the recorder keeps recording).
    pub fn snapshot(&self) -> History {
        let inner = self.inner.lock().expect("recorder lock");
        History { records: inner.records.clone(), trace_hash: inner.hasher.digest(), overflowed: inner.overflowed }
    }

    /// Calls `f` on the records so far without copying them (a snapshot clones them all).
    pub fn with_records<R>(&self, f: impl FnOnce(&[Record]) -> R) -> R {
        let inner = self.inner.lock().expect("recorder lock");
        f(&inner.records)
    }

    /// Takes the history out, leaving the recorder empty.
    pub fn finish(&self) -> History {
        let mut inner = self.inner.lock().expect("recorder lock");
        let trace_hash = inner.hasher.digest();
        History { records: std::mem::take(&mut inner.records), trace_hash, overflowed: inner.overflowed }
    }
}

/// The Services an applied entry put or deleted, with their ClusterIPs as stored.
fn service_changes(entry: &AppliedEntry<'_>) -> Vec<HistoryEvent> {
    let prefix = verdict::history::SERVICES_KEY_PREFIX;
    entry
        .events
        .iter()
        .filter(|event| event.kv.key.starts_with(prefix))
        .map(|event| match event.kind {
            store::api::EventKind::Put => {
                let cluster_ip = apiserver::registry::decode(&event.kv)
                    .ok()
                    .and_then(api::Object::into_service)
                    .map(|service| service.spec.cluster_ip);
                HistoryEvent::ServiceClusterIp {
                    revision: entry.revision,
                    key: event.kv.key.clone(),
                    cluster_ip: Some(cluster_ip.unwrap_or_default()),
                    value_hash: KeyState::of(&event.kv).value_hash,
                }
            }
            store::api::EventKind::Delete => HistoryEvent::ServiceClusterIp {
                revision: entry.revision,
                key: event.kv.key.clone(),
                cluster_ip: None,
                value_hash: None,
            },
        })
        .collect()
}

/// The RBAC objects an applied entry put or deleted, with their rules or subjects as
/// stored.
fn rbac_changes(entry: &AppliedEntry<'_>) -> Vec<HistoryEvent> {
    use verdict::history::RbacObjectRecord;
    entry
        .events
        .iter()
        .filter_map(|event| {
            let resource = api::Resource::from_key(&event.kv.key).filter(|r| api::Resource::RBAC.contains(r))?;
            let (namespace, name) = match event.kv.key[resource.key_prefix().len()..].split_once('/') {
                Some((namespace, name)) if resource.namespaced() => (namespace.to_string(), name.to_string()),
                _ => (String::new(), event.kv.key[resource.key_prefix().len()..].to_string()),
            };
            let (object, value_hash) = match event.kind {
                store::api::EventKind::Put => {
                    let object = match apiserver::registry::decode(&event.kv).ok()? {
                        api::Object::Role(role) => RbacObjectRecord::Rules(role.rules),
                        api::Object::ClusterRole(role) => RbacObjectRecord::Rules(role.rules),
                        api::Object::RoleBinding(b) => {
                            RbacObjectRecord::Binding { subjects: b.subjects, role_ref: b.role_ref }
                        }
                        api::Object::ClusterRoleBinding(b) => {
                            RbacObjectRecord::Binding { subjects: b.subjects, role_ref: b.role_ref }
                        }
                        _ => return None,
                    };
                    (Some(object), KeyState::of(&event.kv).value_hash)
                }
                store::api::EventKind::Delete => (None, None),
            };
            Some(HistoryEvent::RbacObjectCommitted {
                revision: entry.revision,
                resource,
                namespace,
                name,
                object,
                value_hash,
            })
        })
        .collect()
}

impl StoreObserver for Recorder {
    fn role_changed(&self, member: MemberId, term: u64, role: Role, leader: Option<MemberId>) {
        self.record(HistoryEvent::RoleChanged { member, term, role, leader });
    }

    fn applied(&self, member: MemberId, entry: &AppliedEntry<'_>) {
        // Both records under one lock, at the same simulated instant.
        let at_ns = Self::now_ns();
        let mut inner = self.inner.lock().expect("recorder lock");
        if !entry.events.is_empty() && entry.revision > inner.last_committed {
            inner.last_committed = entry.revision;
            let changes = entry
                .events
                .iter()
                .map(|event| match event.kind {
                    store::api::EventKind::Put => KeyState::of(&event.kv),
                    store::api::EventKind::Delete => KeyState::deleted(&event.kv.key, event.kv.mod_revision),
                })
                .collect();
            let event = HistoryEvent::Committed { revision: entry.revision, changes };
            Self::push(&mut inner, Record { at_ns, event });
            for event in service_changes(entry) {
                Self::push(&mut inner, Record { at_ns, event });
            }
            if inner.records_rbac_objects {
                for event in rbac_changes(entry) {
                    Self::push(&mut inner, Record { at_ns, event });
                }
            }
        }
        let principal: &Principal = &entry.proposal.principal;
        let event = HistoryEvent::Applied {
            member,
            index: entry.index,
            term: entry.term,
            proposal_id: entry.proposal.id,
            principal: principal.name.clone(),
            principal_role: principal.role,
            source: entry.proposal.source.clone(),
            revision: entry.revision,
            succeeded: entry.result.is_ok(),
            n_events: entry.events.len(),
        };
        Self::push(&mut inner, Record { at_ns, event });
    }

    fn lessor(&self, member: MemberId, event: &store::lease::LessorEvent) {
        self.record(HistoryEvent::Lessor { member, event: LessorRecord::of(event) });
    }

    fn rejected(&self, member: MemberId, principal: &Principal, source: SocketAddr, error: &store::api::StoreError) {
        self.record(HistoryEvent::StoreRejected {
            member,
            principal: principal.name.clone(),
            source: source.to_string(),
            error: error.to_string(),
        });
    }

    fn disk_failed(&self, member: MemberId, reason: &str) {
        self.record(HistoryEvent::MemberFailed { member, reason: reason.to_string() });
    }

    fn started(&self, member: MemberId, recovered_entries: usize, torn_bytes: u64) {
        self.record(HistoryEvent::MemberStarted { member, recovered_entries, torn_bytes });
    }

    fn applied_empty(&self, member: MemberId, index: u64, term: u64, revision: i64) {
        self.record(HistoryEvent::AppliedEmpty { member, index, term, revision });
    }

    fn recovered_snapshot(&self, member: MemberId, index: u64, revision: i64) {
        self.record(HistoryEvent::SnapshotRecovered { member, index, revision });
    }

    fn snapshot_installed(&self, member: MemberId, index: u64, revision: i64) {
        self.record(HistoryEvent::SnapshotInstalled { member, index, revision });
    }
}

/// The history record of an RBAC decision.
fn authorized_event(apiserver: &str, decision: &apiserver::AuthorizationDecision<'_>) -> HistoryEvent {
    let synced = decision.synced;
    HistoryEvent::Authorized {
        apiserver: apiserver.into(),
        user: decision.user.name.clone(),
        groups: decision.user.groups.clone(),
        verb: decision.attributes.verb,
        resource: decision.attributes.resource,
        namespace: decision.attributes.namespace.to_string(),
        name: decision.attributes.name.to_string(),
        allowed: decision.allowed,
        rbac_revisions: verdict::history::RbacRevisions {
            roles: synced.roles,
            role_bindings: synced.role_bindings,
            cluster_roles: synced.cluster_roles,
            cluster_role_bindings: synced.cluster_role_bindings,
        },
    }
}

impl apiserver::ApiServerObserver for Recorder {
    fn authorized(&self, apiserver: &str, decision: &apiserver::AuthorizationDecision<'_>) {
        self.record(authorized_event(apiserver, decision));
    }

    fn store_write(&self, apiserver: &str, user: &str, verb: Verb, key: &str, revision: i64) {
        self.record(HistoryEvent::StoreWrite {
            apiserver: apiserver.into(),
            user: user.to_string(),
            verb,
            key: key.to_string(),
            revision,
        });
    }

    fn attached_to_lease(&self, apiserver: &str, key: &str, revision: i64, lease: i64) {
        self.record(HistoryEvent::LeaseAttached { apiserver: apiserver.into(), key: key.to_string(), revision, lease });
    }

    fn compacted(&self, apiserver: &str, revision: i64) {
        self.record(HistoryEvent::StoreCompacted { apiserver: apiserver.into(), revision });
    }

    fn watch_served_below_window(
        &self,
        apiserver: &str,
        resource: api::Resource,
        namespace: &str,
        since: i64,
        window_start: i64,
    ) {
        self.record(HistoryEvent::WatchServedBelowWindow {
            apiserver: apiserver.into(),
            resource,
            namespace: namespace.to_string(),
            since,
            window_start,
        });
    }
}

/// The apiserver observer of a control plane that runs the garbage collector: the
/// recorder, plus the metadata of each committed object write
/// ([`HistoryEvent::ObjectWritten`]), the garbage-collection checker's evidence. Only
/// such control planes record it, so other runs' histories and trace hashes stay as
/// they were.
pub struct ObjectMetadataRecorder(pub Recorder);

impl apiserver::ApiServerObserver for ObjectMetadataRecorder {
    fn authorized(&self, apiserver: &str, decision: &apiserver::AuthorizationDecision<'_>) {
        self.0.authorized(apiserver, decision);
    }

    fn store_write(&self, apiserver: &str, user: &str, verb: Verb, key: &str, revision: i64) {
        self.0.store_write(apiserver, user, verb, key, revision);
    }

    fn records_object_metadata(&self) -> bool {
        true
    }

    fn object_written(&self, _apiserver: &str, key: &str, revision: i64, meta: &api::ObjectMeta, removed: bool) {
        self.0.record(HistoryEvent::ObjectWritten {
            key: key.to_string(),
            revision,
            meta: crate::history::ObjectMetaRecord::of(meta),
            removed,
        });
    }

    fn attached_to_lease(&self, apiserver: &str, key: &str, revision: i64, lease: i64) {
        self.0.attached_to_lease(apiserver, key, revision, lease);
    }

    fn compacted(&self, apiserver: &str, revision: i64) {
        self.0.compacted(apiserver, revision);
    }

    fn watch_served_below_window(
        &self,
        apiserver: &str,
        resource: api::Resource,
        namespace: &str,
        since: i64,
        window_start: i64,
    ) {
        self.0.watch_served_below_window(apiserver, resource, namespace, since, window_start);
    }
}

fn operation_target(operation: &Operation) -> (String, String) {
    match operation {
        Operation::Get { namespace, name, .. } | Operation::Delete { namespace, name, .. } => {
            (namespace.clone(), name.clone())
        }
        Operation::List { namespace, .. } | Operation::Watch { namespace, .. } => (namespace.clone(), String::new()),
        Operation::Create { object, .. }
        | Operation::Update { object, .. }
        | Operation::UpdateStatus { object, .. } => {
            (object.metadata().namespace.clone(), object.metadata().name.clone())
        }
        Operation::Bind { namespace, pod, .. } => (namespace.clone(), pod.clone()),
    }
}

impl api::ApiObserver for Recorder {
    fn invoked(&self, client: &str, request: &ApiRequest) {
        if request.operation.verb() == Verb::Watch {
            return;
        }
        let (namespace, name) = operation_target(&request.operation);
        let at_ns = Self::now_ns();
        let mut inner = self.inner.lock().expect("recorder lock");
        let invoked = HistoryEvent::ApiInvoked {
            client: client.into(),
            request_id: request.request_id,
            verb: request.operation.verb(),
            resource: request.operation.resource(),
            namespace,
            name,
        };
        Self::push(&mut inner, Record { at_ns, event: invoked });
        if let (true, Operation::Update { object, .. } | Operation::UpdateStatus { object, .. }) =
            (inner.records_update_preconditions, &request.operation)
        {
            let event = HistoryEvent::UpdatePrecondition {
                client: client.into(),
                request_id: request.request_id,
                resource_version: object.metadata().resource_version,
            };
            Self::push(&mut inner, Record { at_ns, event });
        }
    }

    fn returned(&self, client: &str, request: &ApiRequest, result: &ApiResult) {
        if let (
            Operation::Watch { resource, namespace, since, .. },
            Ok(ApiResponse::Watch { events, resource_version }),
        ) = (&request.operation, result)
        {
            let events = events
                .iter()
                .map(|e| WatchedEvent { kind: e.kind, key: e.object.key(), resource_version: e.resource_version })
                .collect();
            self.record(HistoryEvent::WatchDelivered {
                client: client.into(),
                resource: *resource,
                namespace: namespace.clone(),
                since: *since,
                resource_version: *resource_version,
                events,
            });
            return;
        }
        if let (Operation::Watch { resource, namespace, since, .. }, Err(api::ApiError::Gone { compacted, .. })) =
            (&request.operation, result)
        {
            self.record(HistoryEvent::WatchGone {
                client: client.into(),
                resource: *resource,
                namespace: namespace.clone(),
                since: *since,
                compacted: *compacted,
            });
            return;
        }
        if request.operation.verb() == Verb::Watch {
            return;
        }
        let outcome = match result {
            Ok(ApiResponse::Object(o)) => ApiOutcome::Ok { resource_version: o.metadata().resource_version },
            Ok(ApiResponse::List { resource_version, .. }) | Ok(ApiResponse::Watch { resource_version, .. }) => {
                ApiOutcome::Ok { resource_version: *resource_version }
            }
            Err(e) => ApiOutcome::Error { status: e.status_code(), message: e.to_string() },
        };
        if let Err(api::ApiError::Fenced { .. }) = result {
            let leads = self.inner.lock().expect("recorder lock").leaders.values().any(|leader| leader == client);
            if leads {
                coverage::reached!("controllers.leader.fenced-by-own-renewal");
            } else {
                // Kubernetes' leader election has no fencing: this write would have been
                // accepted next to the new leader's (docs/design.md §4.3).
                coverage::reached!("controllers.leader.deposed-write-fenced");
            }
        }
        self.record(HistoryEvent::ApiReturned { client: client.into(), request_id: request.request_id, outcome });
    }
}

impl controllers::observer::ControllerObserver for Recorder {
    fn leader_acquired(&self, component: &str, identity: &str, transitions: u32, lease_rv: i64) {
        self.inner.lock().expect("recorder lock").leaders.insert(component.to_string(), identity.to_string());
        self.record(HistoryEvent::LeaderAcquired {
            component: component.to_string(),
            identity: identity.to_string(),
            transitions,
            lease_resource_version: lease_rv,
        });
    }

    fn leader_lost(&self, component: &str, identity: &str) {
        {
            let mut inner = self.inner.lock().expect("recorder lock");
            if inner.leaders.get(component).is_some_and(|leader| leader == identity) {
                inner.leaders.remove(component);
            }
        }
        self.record(HistoryEvent::LeaderLost { component: component.to_string(), identity: identity.to_string() });
    }

    fn pod_started(&self, node: &str, namespace: &str, name: &str, uid: &str) {
        self.record(HistoryEvent::PodStarted {
            node: node.into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        });
    }

    fn pod_stopped(&self, node: &str, namespace: &str, name: &str, uid: &str, reason: &str) {
        self.record(HistoryEvent::PodStopped {
            node: node.into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            reason: reason.to_string(),
        });
    }

    fn kubelet_registered(&self, node: &str) {
        self.record(HistoryEvent::KubeletRegistered { node: node.into() });
    }

    fn rollout_scaled(&self, scale: &controllers::observer::RolloutScale) {
        use controllers::rollout::ResolvedStrategy;
        use verdict::history::{ObservedReplicaSetRecord, RolloutStrategyRecord};
        self.record(HistoryEvent::RolloutScaled {
            controller: scale.controller.clone(),
            namespace: scale.namespace.clone(),
            deployment: scale.deployment.clone(),
            strategy: match scale.strategy {
                ResolvedStrategy::Recreate => RolloutStrategyRecord::Recreate,
                ResolvedStrategy::RollingUpdate { max_surge, max_unavailable } => {
                    RolloutStrategyRecord::RollingUpdate { max_surge, max_unavailable }
                }
            },
            replicas: scale.replicas,
            replica_set: scale.replica_set.clone(),
            from: scale.from,
            to: scale.to,
            observed: scale
                .observed
                .iter()
                .map(|o| ObservedReplicaSetRecord {
                    name: o.name.clone(),
                    replicas: o.replicas,
                    available: o.available,
                    pods: o.pods,
                })
                .collect(),
        });
    }

    fn relisted(&self, who: &str, resource: &str, resource_version: i64, n_objects: usize) {
        self.record(HistoryEvent::Relisted {
            who: who.into(),
            resource: resource.to_string(),
            resource_version,
            n_objects,
        });
    }
}
