//! The history of one seed: every observable event, stamped with simulated time, and the
//! trace hash over it.
//!
//! The harness's recorder (`sim::recorder::Recorder`) takes these records from the
//! components' observer traits (store members, the store client workload, apiservers,
//! controllers, the nemesis). Checkers read the finished [`History`]; nothing in the
//! simulated system reads it back. The trace hash is a running
//! xxh3 over each record's canonical (bincode) encoding, so two runs hash equal exactly
//! when they recorded the same events at the same simulated instants.

use api::{Resource, Verb, WatchEventKind};
use serde::{Deserialize, Serialize};
use store::api::{MemberId, PrincipalRole, Revision};
use store::raft::Role;

/// The name of a node of the simulated world as the history names it: a component that
/// acts as a client (`store-client-0`, `apiserver-1`, `controller-manager-0`, `scheduler-0`,
/// `kubelet-2`, `kubectl`) or a Kubernetes node a kubelet runs (`kubelet-2`). One printed
/// form: the bare name. Serialized as the bare string (`serde(transparent)`), so a record
/// encodes, and the trace hash reads, exactly as when the field was a `String`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    pub fn new(name: impl Into<String>) -> Self {
        NodeName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// As the bare `String` printed (a record's debug form reads as before).
impl std::fmt::Debug for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for NodeName {
    fn from(name: String) -> Self {
        NodeName(name)
    }
}

impl From<&str> for NodeName {
    fn from(name: &str) -> Self {
        NodeName(name.to_string())
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for NodeName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// `api::Resource::Services.key_prefix()` as a constant, for code that tests every
/// committed key against it (the recorder, per applied entry).
pub const SERVICES_KEY_PREFIX: &str = "/registry/services/specs/";

/// Bound on records per seed; a run that exceeds it is stopped with an error rather than
/// growing without limit.
pub const MAX_RECORDS: usize = 4_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOpKind {
    Put {
        key: String,
        value: String,
    },
    /// Linearizable single-key read.
    Get {
        key: String,
    },
    /// Conditional write: put `value` if `key`'s mod_revision equals `expected_mod_revision`.
    CompareAndPut {
        key: String,
        expected_mod_revision: Revision,
        value: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOpOutcome {
    /// A write that committed at `revision`; `succeeded` is false for a failed compare.
    Written { revision: Revision, succeeded: bool },
    /// A read served at `revision` by member `served_by` (etcd's response header names the
    /// member that answered): the value and mod_revision it saw (None: absent).
    Read { revision: Revision, value: Option<String>, mod_revision: Revision, served_by: MemberId },
    /// Definitely not applied.
    Failed { error: String },
    /// May or may not have been applied.
    Unknown { error: String },
}

/// What a watcher was told about one object change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedEvent {
    pub kind: WatchEventKind,
    pub key: String,
    pub resource_version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiOutcome {
    Ok { resource_version: i64 },
    Error { status: u16, message: String },
}

/// What a store member's lessor did (`store::lease::LessorEvent`), times on that member's
/// clock in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LessorRecord {
    /// Became the lease primary, giving every lease (id, TTL in seconds) its TTL plus
    /// `extend_ms` from `now_ms`.
    Promoted {
        now_ms: u64,
        extend_ms: u64,
        leases: Vec<(i64, i64)>,
    },
    Demoted,
    /// Applied a grant; `primary` when it then ran the lease's expiry clock.
    Granted {
        lease: i64,
        ttl_secs: i64,
        now_ms: u64,
        primary: bool,
    },
    /// Acknowledged a keep-alive as the primary.
    Renewed {
        lease: i64,
        ttl_secs: i64,
        now_ms: u64,
    },
    /// Found the lease expired and proposed its revoke as `proposal_id`.
    ExpiryProposed {
        lease: i64,
        now_ms: u64,
        proposal_id: u64,
    },
}

impl LessorRecord {
    pub fn of(event: &store::lease::LessorEvent) -> Self {
        use store::lease::LessorEvent;
        let ms = |d: &std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match event {
            LessorEvent::Promoted { now, extend, leases } => {
                LessorRecord::Promoted { now_ms: ms(now), extend_ms: ms(extend), leases: leases.clone() }
            }
            LessorEvent::Demoted => LessorRecord::Demoted,
            LessorEvent::Granted { lease, ttl_secs, now, primary } => {
                LessorRecord::Granted { lease: *lease, ttl_secs: *ttl_secs, now_ms: ms(now), primary: *primary }
            }
            LessorEvent::Renewed { lease, ttl_secs, now } => {
                LessorRecord::Renewed { lease: *lease, ttl_secs: *ttl_secs, now_ms: ms(now) }
            }
            LessorEvent::ExpiryProposed { lease, now, proposal_id } => {
                LessorRecord::ExpiryProposed { lease: *lease, now_ms: ms(now), proposal_id: *proposal_id }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryEvent {
    /// A member recovered from its disk and started.
    MemberStarted {
        member: MemberId,
        recovered_entries: usize,
        torn_bytes: u64,
    },
    /// A member applied an entry that carries no proposal: a leader's no-op or a
    /// configuration change.
    AppliedEmpty {
        member: MemberId,
        index: u64,
        term: u64,
        revision: Revision,
    },
    /// A member refused to start or stopped serving because of its disk.
    MemberFailed {
        member: MemberId,
        reason: String,
    },
    RoleChanged {
        member: MemberId,
        term: u64,
        role: Role,
        leader: Option<MemberId>,
    },
    /// A member applied a committed entry.
    Applied {
        member: MemberId,
        index: u64,
        term: u64,
        proposal_id: u64,
        principal: String,
        principal_role: PrincipalRole,
        source: String,
        revision: Revision,
        succeeded: bool,
        n_events: usize,
    },
    /// An apiserver's committed write attached `key` to store lease `lease` at `revision`
    /// (an Event under its TTL lease).
    LeaseAttached {
        apiserver: NodeName,
        key: String,
        revision: Revision,
        lease: i64,
    },
    /// A member's lessor acted (see [`LessorRecord`]).
    Lessor {
        member: MemberId,
        event: LessorRecord,
    },
    /// The store's ACL refused a request at a member's door.
    StoreRejected {
        member: MemberId,
        principal: String,
        source: String,
        error: String,
    },
    /// A client operation on the store began.
    StoreOpInvoked {
        client: NodeName,
        op_id: u64,
        op: StoreOpKind,
    },
    /// A client operation on the store ended.
    StoreOpReturned {
        client: NodeName,
        op_id: u64,
        outcome: StoreOpOutcome,
    },
    /// An apiserver committed a store write on behalf of `user` (the stage timeline and
    /// the single-writer evidence at the Kubernetes level).
    StoreWrite {
        apiserver: NodeName,
        user: String,
        verb: Verb,
        key: String,
        revision: Revision,
    },
    /// A component's request to an apiserver began (watch polls are not recorded).
    ApiInvoked {
        client: NodeName,
        request_id: u64,
        verb: Verb,
        resource: Resource,
        namespace: String,
        name: String,
    },
    /// ... and ended: the resourceVersion of the object or list, or the HTTP status.
    ApiReturned {
        client: NodeName,
        request_id: u64,
        outcome: ApiOutcome,
    },
    /// One answer to a watch long-poll: events with resourceVersion > `since` for the
    /// resource in `namespace` (empty: all namespaces), complete up to `resource_version`.
    WatchDelivered {
        client: NodeName,
        resource: Resource,
        namespace: String,
        since: i64,
        resource_version: i64,
        events: Vec<WatchedEvent>,
    },
    LeaderAcquired {
        component: String,
        identity: String,
        transitions: u32,
        lease_resource_version: i64,
    },
    LeaderLost {
        component: String,
        identity: String,
    },
    KubeletRegistered {
        node: NodeName,
    },
    /// A kubelet started a pod's containers.
    PodStarted {
        node: NodeName,
        namespace: String,
        name: String,
        uid: String,
    },
    PodStopped {
        node: NodeName,
        namespace: String,
        name: String,
        uid: String,
        reason: String,
    },
    /// The nemesis or the operator did something to the world.
    Fault {
        description: String,
    },
    /// A free-form milestone of the scenario (shown in the timeline).
    Note {
        text: String,
    },
    /// (Last, so that adding it left the encoding of the older variants unchanged.)
    /// The user asked for `replicas` pods of a deployment (kubectl create or scale),
    /// recorded just before the request is sent: the evidence of desired state the
    /// convergence checker compares live pods with.
    DesiredReplicas {
        namespace: String,
        deployment: String,
        replicas: i32,
    },
    /// The key changes of one store revision, recorded once per revision of a cluster (by
    /// the first member that applied it): the history's own account of the keyspace at
    /// every revision, which backup checkers compare a backup's restore against (never
    /// the backup itself).
    Committed {
        revision: Revision,
        changes: Vec<KeyState>,
    },
    /// The operator's `snapshot save` produced backup number `backup` (numbered from 0 in
    /// the order taken), holding the keyspace of `revision` of cluster `cluster_id`.
    BackupTaken {
        backup: u32,
        member: MemberId,
        cluster_id: u64,
        revision: Revision,
        n_keys: usize,
        checksum_ok: bool,
    },
    BackupFailed {
        member: MemberId,
        error: String,
    },
    /// Backup number `backup` was damaged where it is kept (`snapshot-corruption`).
    BackupCorrupted {
        backup: u32,
        description: String,
    },
    /// A store member's disk was wiped and the member killed.
    DiskLost {
        member: MemberId,
    },
    /// The operator replaced a member whose disk was lost: `old` removed, `new` added on
    /// `addr` with an empty disk. `error` says which step failed, if one did.
    MemberReplaced {
        old: MemberId,
        new: MemberId,
        addr: String,
        error: Option<String>,
    },
    /// `snapshot restore` refused backup `backup` (checksum mismatch, undecodable).
    RestoreRefused {
        backup: u32,
        error: String,
    },
    /// The operator restored a new cluster from backup `backup` (taken at
    /// `backup_revision`): new cluster id and member ids, the store starting at
    /// `new_revision` (`backup_revision + bump` with `--bump-revision`), and the keyspace
    /// the restored members start from. From this record on, the history is the new
    /// cluster's epoch.
    Restored {
        backup: u32,
        backup_revision: Revision,
        bump: u64,
        new_revision: Revision,
        new_cluster_id: u64,
        members: Vec<MemberId>,
        keyspace: Vec<KeyState>,
    },
    /// Every disk was lost with no good backup: the cluster state is gone
    /// (docs/design.md §4, invariant 8), with the number of acknowledged objects it held.
    TotalLoss {
        acknowledged_objects_lost: usize,
        reason: String,
    },
    /// An informer of `who` relisted `resource` after 410 Gone (client-go's reflector:
    /// "watch ... too old resource version"; after a restore, every watcher does).
    Relisted {
        who: NodeName,
        resource: String,
        resource_version: i64,
        n_objects: usize,
    },
    /// A member that just started (its `MemberStarted`) recovered its state from its own
    /// snapshot, covering every index up to `index`: it re-applies its log after it.
    SnapshotRecovered {
        member: MemberId,
        index: u64,
        revision: Revision,
    },
    /// A member replaced its state with a snapshot the leader sent (InstallSnapshot),
    /// covering every index up to `index`: it applies no entry at or below it.
    SnapshotInstalled {
        member: MemberId,
        index: u64,
        revision: Revision,
    },
    /// An apiserver's compactor compacted the store's history up to `revision`
    /// (kube-apiserver's compaction loop): reads and watches from below it are refused
    /// (410 Gone at the apiserver) from then on.
    StoreCompacted {
        apiserver: NodeName,
        revision: Revision,
    },
    /// A watch of `client` from `since` was answered 410 Gone, its resourceVersion older
    /// than the apiserver still serves (`compacted`): client-go's reflector must relist
    /// (its `Relisted` follows when it does).
    WatchGone {
        client: NodeName,
        resource: Resource,
        namespace: String,
        since: i64,
        compacted: i64,
    },
    /// `apiserver`'s watch cache answered a watch of `resource` in `namespace` (all when
    /// empty) from `since` with events, although it had evicted every revision up to
    /// `window_start` > `since`: the answer lacks the changes in between. A correct cache
    /// answers 410 Gone ("too old resource version"); only the planted bug
    /// `watch-cache-serves-evicted` records this.
    WatchServedBelowWindow {
        apiserver: NodeName,
        resource: Resource,
        namespace: String,
        since: i64,
        window_start: i64,
    },
    /// A user began waiting for the cluster to reach a goal (docs/design.md §4.13): `goal`
    /// names it ("5 pods Running within 30s"); it is met by a look that sees `want` items
    /// (at least `want`, or exactly when `exactly`) and began by `deadline_ns` (simulated ns
    /// since the run began; `None`: the next look alone decides, as at rest). The
    /// convergence checker judges it from the [`HistoryEvent::Looked`] records of the same
    /// goal that follow; the scenario only records.
    Awaited {
        goal: String,
        want: u64,
        exactly: bool,
        deadline_ns: Option<u64>,
    },
    /// What a user saw of a goal it awaits: `have` items (`None`: it could not look),
    /// described by `seen` ("3 Running", "listing pods failed: ..."), from a look that began
    /// at `began_ns` (its answer is recorded when it came). Recorded only when `have` or
    /// `seen` differs from the previous look at the same goal.
    Looked {
        goal: String,
        have: Option<u64>,
        seen: String,
        began_ns: u64,
    },
    /// A user's request never succeeded within the user's patience (`kubectl create`
    /// retried until the bound ran out): the cluster could not even be asked, so nothing it
    /// was asked for can converge.
    GaveUp {
        request: String,
        error: String,
    },
    /// At the end of a run, `key` was read as of `revision` (a range read at that
    /// revision) to confirm the write acknowledged there: what the store returned
    /// (`Ok(None)`: no such key at that revision), or why the read failed. The durability
    /// checker compares it with the acknowledged write.
    ReadBack {
        key: String,
        revision: Revision,
        found: Result<Option<KeyState>, String>,
    },
    /// An apiserver's committed write left `key` holding an object with this metadata at
    /// `revision`, or (`removed`) removed the object that had it: recorded after the
    /// write's `StoreWrite`, for every kind but Leases and Events, and only when the
    /// control plane runs the garbage collector (`ControlPlaneOptions::garbage_collector`;
    /// other runs' histories, and trace hashes, stay as they were). The evidence of
    /// owners, uids, finalizers and deletion marks the garbage-collection checker judges.
    ObjectWritten {
        key: String,
        revision: Revision,
        meta: ObjectMetaRecord,
        removed: bool,
    },
    /// A committed revision put (`cluster_ip` set, with the value's hash as in
    /// [`KeyState::value_hash`]) or deleted (`None`) the Service at `key`: recorded with
    /// that revision's `Committed`, from the value the store applied. What the
    /// service-ips-unique checker reads; only a run with Services records it.
    ServiceClusterIp {
        revision: Revision,
        key: String,
        cluster_ip: Option<String>,
        value_hash: Option<u64>,
    },
    /// The resourceVersion an Update or UpdateStatus request carried as its precondition
    /// (the object's `metadata.resourceVersion`, which the apiserver compares with the
    /// stored object's mod_revision), recorded right after the request's `ApiInvoked`
    /// under the same client and request id. Only runs that ask for it record it
    /// (`sim::recorder::Recorder::record_update_preconditions`: the read-modify-write
    /// scenario), so other histories and trace hashes stay as they were. What the
    /// no-lost-update checker compares with the committed history.
    UpdatePrecondition {
        client: NodeName,
        request_id: u64,
        resource_version: i64,
    },
    /// A user read the counter of the object at `key`: `counter` in the version committed
    /// at `revision` (the object's resourceVersion). The read-modify-write scenario's
    /// contract, which no-lost-update relies on: the object is created with the counter at
    /// 0 and every Update of it adds exactly one.
    CounterRead {
        key: String,
        revision: Revision,
        counter: u64,
    },
    /// The deployment controller `controller` was about to write (the request follows) a
    /// scale of ReplicaSet `replica_set` of deployment `namespace/deployment` from `from`
    /// to `to` replicas (a create is from 0), for a deployment of `replicas` with
    /// `strategy`, having seen `observed`: every ReplicaSet of the deployment as its
    /// informer had them, with the scales it decided before in the same sync. Recorded
    /// only for a deployment that names a strategy; what the rollout-bound checker judges.
    RolloutScaled {
        controller: String,
        namespace: String,
        deployment: String,
        strategy: RolloutStrategyRecord,
        replicas: i32,
        replica_set: String,
        from: i32,
        to: i32,
        observed: Vec<ObservedReplicaSetRecord>,
    },
    /// A committed revision put (`object` set, with the value's hash as in
    /// [`KeyState::value_hash`]) or deleted (`None`) the RBAC object `resource`
    /// `namespace`/`name` (a Role, RoleBinding, ClusterRole or ClusterRoleBinding; the
    /// namespace is empty for the cluster-scoped two): recorded with that revision's
    /// `Committed`, from the value the store applied. Only a control plane that records
    /// authorizations records it (`ControlPlaneOptions::record_authorizations`), so other
    /// runs' histories and trace hashes stay as they were. The permissions checker rebuilds
    /// the RBAC objects of every revision from these.
    RbacObjectCommitted {
        revision: Revision,
        resource: Resource,
        namespace: String,
        name: String,
        object: Option<RbacObjectRecord>,
        value_hash: Option<u64>,
    },
    /// `apiserver`'s RBAC authorizer decided a request of `user` (with `groups`): `verb` on
    /// `resource` `namespace`/`name` (empty name: list or watch; empty namespace:
    /// cluster-scoped or all namespaces), `allowed` or denied, from the RBAC objects its
    /// informers had applied up to `rbac_revisions`. Recorded only for requests RBAC
    /// decided (not `system:masters`, not those the Node authorizer allowed), and only by
    /// a control plane that records authorizations. What the permissions checker judges.
    Authorized {
        apiserver: NodeName,
        user: String,
        groups: Vec<String>,
        verb: Verb,
        resource: Resource,
        namespace: String,
        name: String,
        allowed: bool,
        rbac_revisions: RbacRevisions,
    },
}

/// The store revision up to which an apiserver's informer of each RBAC kind had applied
/// the kind's changes when its authorizer decided ([`HistoryEvent::Authorized`]): the
/// cache held exactly the objects of that kind as of that revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacRevisions {
    pub roles: Revision,
    pub role_bindings: Revision,
    pub cluster_roles: Revision,
    pub cluster_role_bindings: Revision,
}

impl RbacRevisions {
    /// The revision of `resource`'s informer (0 for a kind that is not RBAC's).
    pub fn of(&self, resource: Resource) -> Revision {
        match resource {
            Resource::Roles => self.roles,
            Resource::RoleBindings => self.role_bindings,
            Resource::ClusterRoles => self.cluster_roles,
            Resource::ClusterRoleBindings => self.cluster_role_bindings,
            _ => 0,
        }
    }

    /// The lowest of the four.
    pub fn min(&self) -> Revision {
        self.roles.min(self.role_bindings).min(self.cluster_roles).min(self.cluster_role_bindings)
    }
}

/// What the history keeps of a committed RBAC object ([`HistoryEvent::RbacObjectCommitted`]):
/// the rules of a Role or ClusterRole, the subjects and role of a binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RbacObjectRecord {
    Rules(Vec<api::rbac::PolicyRule>),
    Binding { subjects: Vec<api::rbac::Subject>, role_ref: api::rbac::RoleRef },
}

/// A deployment's rollout strategy with its budget resolved against its replicas
/// ([`HistoryEvent::RolloutScaled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutStrategyRecord {
    Recreate,
    RollingUpdate { max_surge: i32, max_unavailable: i32 },
}

/// One ReplicaSet as the deployment controller saw it when it decided a rollout's scale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedReplicaSetRecord {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas` (kubesim: `readyReplicas`).
    pub available: i32,
    /// `status.replicas`.
    pub pods: i32,
}

/// What the history keeps of an object's metadata ([`HistoryEvent::ObjectWritten`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMetaRecord {
    pub uid: String,
    pub owners: Vec<OwnerRecord>,
    pub finalizers: Vec<String>,
    /// Marked for deletion (`deletionTimestamp` set).
    pub being_deleted: bool,
}

/// One owner reference as the history keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

impl ObjectMetaRecord {
    pub fn of(meta: &api::ObjectMeta) -> Self {
        ObjectMetaRecord {
            uid: meta.uid.clone(),
            owners: meta
                .owner_references
                .iter()
                .map(|o| OwnerRecord {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: o.uid.clone(),
                    block_owner_deletion: o.block_owner_deletion,
                })
                .collect(),
            finalizers: meta.finalizers.clone(),
            being_deleted: meta.is_being_deleted(),
        }
    }
}

/// One key's state as a checker needs it: enough to compare keyspaces key by key without
/// keeping every value (values are hashed; their length sizes the data-loss window).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyState {
    pub key: String,
    /// `None`: the key was deleted at this revision.
    pub value_hash: Option<u64>,
    pub value_len: u64,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
}

impl KeyState {
    pub fn of(kv: &store::api::KeyValue) -> Self {
        KeyState {
            key: kv.key.clone(),
            value_hash: Some(xxhash_rust::xxh3::xxh3_64(&kv.value)),
            value_len: kv.value.len() as u64,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }

    pub fn deleted(key: &str, mod_revision: Revision) -> Self {
        KeyState { key: key.to_string(), value_hash: None, value_len: 0, create_revision: 0, mod_revision, version: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Simulated nanoseconds since the run began.
    pub at_ns: u64,
    pub event: HistoryEvent,
}

/// A finished history.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub records: Vec<Record>,
    pub trace_hash: u64,
    /// Set if the recorder hit `MAX_RECORDS`.
    pub overflowed: bool,
}

impl History {
    pub fn events(&self) -> impl Iterator<Item = (u64, &HistoryEvent)> {
        self.records.iter().map(|r| (r.at_ns, &r.event))
    }
}

/// The timeline line of a backup, disk loss, replacement, restore or total loss.
pub fn describe_recovery(event: &HistoryEvent) -> Option<String> {
    Some(match event {
        HistoryEvent::BackupTaken { backup, member, cluster_id, revision, n_keys, checksum_ok } => format!(
            "backup {backup} taken from {member} of cluster {cluster_id:#x} at revision {revision} \
             ({n_keys} keys, checksum {})",
            if *checksum_ok { "ok" } else { "BAD" }
        ),
        HistoryEvent::BackupFailed { member, error } => format!("backup from {member} failed: {error}"),
        HistoryEvent::BackupCorrupted { backup, description } => format!("backup {backup} corrupted: {description}"),
        HistoryEvent::DiskLost { member } => format!("{member} lost its disk"),
        HistoryEvent::MemberReplaced { old, new, addr, error: None } => {
            format!("{old} replaced by {new} at {addr}")
        }
        HistoryEvent::MemberReplaced { old, new, addr, error: Some(error) } => {
            format!("replacing {old} by {new} at {addr} failed: {error}")
        }
        HistoryEvent::RestoreRefused { backup, error } => format!("restore refused backup {backup}: {error}"),
        HistoryEvent::Restored { backup, backup_revision, bump, new_revision, new_cluster_id, members, keyspace } => {
            format!(
                "restored backup {backup} (revision {backup_revision}, {} keys) into cluster {new_cluster_id:#x} \
                 members {members:?}: revision bumped by {bump} to {new_revision}, older revisions compacted",
                keyspace.len()
            )
        }
        HistoryEvent::TotalLoss { acknowledged_objects_lost, reason } => {
            format!("TOTAL LOSS: {acknowledged_objects_lost} acknowledged objects lost ({reason})")
        }
        HistoryEvent::Relisted { who, resource, resource_version, n_objects } => {
            format!(
                "{who} got 410 Gone and relisted {resource}: {n_objects} objects at resourceVersion {resource_version}"
            )
        }
        _ => return None,
    })
}
