//! The store's request/response vocabulary: what a client may ask of a member and what it
//! gets back. It mirrors etcd's v3 KV API (`etcdserverpb`): Range, Put, DeleteRange, Txn,
//! Compact and Watch, each answered with a header carrying the store revision.
//!
//! These are plain data: the MVCC state machine executes them, the member server carries
//! them over the simulated network, the client builds them. Nothing here knows about Raft.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A store revision. etcd: starts at 1 on an empty store and every mutating request or
/// transaction adds exactly 1.
pub type Revision = i64;

/// Identity of a store member (etcd's `member_id`): who a member is, which a replacement or a
/// restore changes, as opposed to the place it runs in (the harness's slot, `store-N`) or
/// the simulated node that hosts it. It prints as `member N`.
///
/// The Raft core names its peers by the same number (`raft::NodeId`, a bare `u64` like
/// raft-rs's ids); the member server converts at the boundary. A `MemberId` serializes as
/// that bare number (serde transparent: the same bincode and JSON as the `u64` it was,
/// so the WAL, the wire and every trace hash are unchanged), and its `Debug` prints the
/// bare number too, since histories' descriptions format lists of members with `{:?}`.
///
/// The default, `member 0`, is no member: etcd never assigns id 0, and a response header
/// the MVCC state machine builds carries it until the member serving it sets its own.
///
/// ```
/// use store::api::MemberId;
/// assert_eq!(MemberId(3).to_string(), "member 3");
/// assert_eq!(format!("{:?}", [MemberId(1), MemberId(2)]), "[1, 2]");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u64);

impl MemberId {
    /// The bare number, as Raft and etcd's wire name the member.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "member {}", self.0)
    }
}

impl std::fmt::Debug for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

/// etcd's default `--max-request-bytes` (1.5 MiB). Larger requests are refused.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// Who is asking. Every request carries one; the member's access rule is that only the
/// `ApiServer` role may mutate (single-writer invariant 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub role: PrincipalRole,
}

/// What a [`Principal`] is allowed to be, and so to do (not a Raft member's role, which
/// is [`crate::raft::Role`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PrincipalRole {
    /// kube-apiserver: the only component allowed to write the store.
    ApiServer,
    /// Read-only tooling (backups, checkers, debugging).
    Reader,
    /// Anything else that managed to reach the store.
    Other,
    /// The cluster operator (etcdctl `member add/remove/list`, `snapshot save`): may change
    /// membership and take backups, but never mutate keys, so the single-writer checker
    /// still sees only apiserver key writes.
    Operator,
}

impl Principal {
    pub fn apiserver(name: impl Into<String>) -> Self {
        Self { name: name.into(), role: PrincipalRole::ApiServer }
    }
    pub fn reader(name: impl Into<String>) -> Self {
        Self { name: name.into(), role: PrincipalRole::Reader }
    }
    pub fn other(name: impl Into<String>) -> Self {
        Self { name: name.into(), role: PrincipalRole::Other }
    }
    pub fn operator(name: impl Into<String>) -> Self {
        Self { name: name.into(), role: PrincipalRole::Operator }
    }
    pub fn may_mutate(&self) -> bool {
        self.role == PrincipalRole::ApiServer
    }
    /// Membership changes and backups.
    pub fn may_operate(&self) -> bool {
        self.role == PrincipalRole::Operator
    }
}

/// etcd `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the last creation of this key.
    pub create_revision: Revision,
    /// Revision of the last modification of this key.
    pub mod_revision: Revision,
    /// 1 on create, +1 on each modification; the key is gone (version 0) after delete.
    pub version: i64,
    /// etcd `mvccpb.KeyValue.lease`: the lease this version of the key was put with, 0
    /// ([`crate::lease::NO_LEASE`]) for none. Each stored version keeps its own, as etcd
    /// stores `Lease: int64(leaseID)` in the KeyValue it writes (mvcc/kvstore_txn.go
    /// `put`): a leased put sets it, a plain put writes a version with 0 (the key leaves
    /// its lease), a delete's tombstone has 0, and a read at a past revision returns the
    /// lease of that revision's version even after the lease was revoked. So it is the
    /// lease of the version, not necessarily a lease that still exists; for the live
    /// version of a key it is the lease the key is attached to
    /// ([`crate::lease::LeaseTable::lease_of`]), the attachment etcd rebuilds from it on
    /// restart (mvcc/kvstore.go `restore`). It travels wherever a KeyValue does (ranges,
    /// txn responses, `prev_kv`, watch events), and in snapshots and backups in their
    /// lease section (see [`crate::mvcc::MvccSnapshot`]).
    pub lease: crate::lease::LeaseId,
}

/// The key range a request addresses. etcd encodes this as `key` + `range_end`; kubesim
/// names the four shapes that etcd's encoding allows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyRange {
    /// Exactly this key.
    Key(String),
    /// Every key starting with this prefix (etcd: `range_end = prefix + 1`).
    Prefix(String),
    /// `[start, end)` in byte order.
    Range { start: String, end: String },
    /// Every key at or after this one in byte order: etcd's `range_end = "\0"` (clientv3
    /// `WithFromKey`, `etcdctl get --from-key`), which etcdserver/apply.go `mkGteRange`
    /// turns into an open-ended range for Range and DeleteRange, and which a watch takes
    /// the same way (mvcc/watcher_group.go). Like etcd's, the key must not be empty;
    /// `FromKey("\0")` is every key.
    FromKey(String),
}

impl KeyRange {
    pub fn contains(&self, key: &str) -> bool {
        match self {
            KeyRange::Key(k) => k == key,
            KeyRange::Prefix(p) => key.starts_with(p.as_str()),
            KeyRange::Range { start, end } => key >= start.as_str() && key < end.as_str(),
            KeyRange::FromKey(start) => key >= start.as_str(),
        }
    }
}

/// etcd `ResponseHeader`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// The store's revision when the request was served.
    pub revision: Revision,
    pub member_id: MemberId,
    pub raft_term: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RangeRequestWire", from = "RangeRequestWire")]
pub struct RangeRequest {
    pub range: KeyRange,
    /// 0 (or below) means the current revision; otherwise read the keyspace as of this
    /// revision.
    pub revision: Revision,
    /// 0 means no limit.
    pub limit: usize,
    /// Serializable (local, possibly stale) read instead of a linearizable one.
    pub serializable: bool,
    /// etcd `RangeRequest.count_only`: answer only `count` (no kvs, `more` false).
    /// server/mvcc/kvstore_txn.go `rangeKeys` returns the count before building any
    /// key-value when `RangeOptions.Count` is set.
    pub count_only: bool,
    /// etcd `RangeRequest.keys_only`: the kvs come without their values; every other field
    /// (create and mod revision, version) is filled, and `count`/`more` are unchanged.
    /// etcd clears `Value` of each returned kv in etcdserver/apply.go `Range`.
    pub keys_only: bool,
}

impl RangeRequest {
    pub fn new(range: KeyRange) -> Self {
        Self { range, revision: 0, limit: 0, serializable: false, count_only: false, keys_only: false }
    }
}

/// How a [`RangeRequest`] is encoded (in Raft entries, inside a Txn): `count_only` and
/// `keys_only` share one flags byte (bit 0 and bit 1), so a request without `keys_only`
/// encodes exactly as it did before `keys_only` existed (a bool is one byte, 0 or 1).
/// Entry sizes feed the simulation (torn-write lengths, bit-rot offsets), so this keeps
/// every existing seed's run, and its trace hash, as it was.
#[derive(Serialize, Deserialize)]
struct RangeRequestWire {
    range: KeyRange,
    revision: Revision,
    limit: usize,
    serializable: bool,
    flags: u8,
}

const RANGE_COUNT_ONLY: u8 = 1;
const RANGE_KEYS_ONLY: u8 = 2;

impl From<RangeRequest> for RangeRequestWire {
    fn from(r: RangeRequest) -> Self {
        let flags = if r.count_only { RANGE_COUNT_ONLY } else { 0 } | if r.keys_only { RANGE_KEYS_ONLY } else { 0 };
        Self { range: r.range, revision: r.revision, limit: r.limit, serializable: r.serializable, flags }
    }
}

impl From<RangeRequestWire> for RangeRequest {
    fn from(w: RangeRequestWire) -> Self {
        Self {
            range: w.range,
            revision: w.revision,
            limit: w.limit,
            serializable: w.serializable,
            count_only: w.flags & RANGE_COUNT_ONLY != 0,
            keys_only: w.flags & RANGE_KEYS_ONLY != 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range (before `limit`).
    pub count: usize,
    /// True when `limit` cut the result.
    pub more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: String,
    pub value: Bytes,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub header: ResponseHeader,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub range: KeyRange,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    pub header: ResponseHeader,
    pub deleted: usize,
    pub prev_kvs: Vec<KeyValue>,
}

/// What a `Compare` looks at. etcd `Compare.target` + the matching union field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Value(Bytes),
    CreateRevision(Revision),
    ModRevision(Revision),
    Version(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// etcd `Compare`: a missing key compares as zero for revisions and version; a `Value`
/// compare on a missing key always fails, whatever the operator (etcd `applyCompare`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, revision: Revision) -> Self {
        Self { key: key.into(), op, target: CompareTarget::ModRevision(revision) }
    }
    pub fn create_revision(key: impl Into<String>, op: CompareOp, revision: Revision) -> Self {
        Self { key: key.into(), op, target: CompareTarget::CreateRevision(revision) }
    }
    pub fn version(key: impl Into<String>, op: CompareOp, version: i64) -> Self {
        Self { key: key.into(), op, target: CompareTarget::Version(version) }
    }
    pub fn value(key: impl Into<String>, op: CompareOp, value: impl Into<Bytes>) -> Self {
        Self { key: key.into(), op, target: CompareTarget::Value(value.into()) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    /// A put that attaches its key to a lease; answered by a `ResponseOp::Put`.
    LeasedPut(LeasedPutRequest),
}

/// etcd `PutRequest` with `lease` set: the key is attached to the lease (and leaves the
/// lease it was attached to), so the lease's revocation or expiry deletes it. A lease
/// that does not exist is refused ("requested lease not found") and nothing is written.
/// A plain [`PutRequest`] is etcd's `lease = 0`: it detaches the key from its lease.
///
/// etcd carries the lease as a field of `PutRequest`; kubesim keeps the lease-less
/// `PutRequest` as it was (every caller builds it field by field, and its encoding sits in
/// every Raft entry) and names the leased put as a request of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedPutRequest {
    pub put: PutRequest,
    pub lease: crate::lease::LeaseId,
}

/// etcd `LeaseGrantRequest`: a lease with `ttl_secs` (raised to the store's minimum TTL)
/// and the id given, or one chosen by the store when `id` is 0. Granting writes no key,
/// so it does not change the revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    pub id: crate::lease::LeaseId,
    pub ttl_secs: i64,
}

/// etcd `LeaseGrantResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    pub header: ResponseHeader,
    pub id: crate::lease::LeaseId,
    pub ttl_secs: i64,
}

/// etcd `LeaseRevokeRequest`: the lease goes, and every key attached to it is deleted in
/// one revision (the leader proposes the same request when a lease expires).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    pub id: crate::lease::LeaseId,
}

/// etcd `LeaseKeepAliveResponse`: the lease's TTL after the renewal, 0 for a lease that
/// does not exist (etcd's gRPC layer answers an unknown lease's keep-alive with TTL 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    pub header: ResponseHeader,
    pub id: crate::lease::LeaseId,
    pub ttl_secs: i64,
}

/// etcd `LeaseTimeToLiveResponse`: whole seconds left on the leader's clock, the TTL
/// granted, and the attached keys when asked for; an unknown lease answers TTL -1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    pub header: ResponseHeader,
    pub id: crate::lease::LeaseId,
    pub ttl_secs: i64,
    pub granted_ttl_secs: i64,
    pub keys: Vec<String>,
}

/// etcd `LeaseLeasesResponse`: every lease id the serving member knows, ascending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesResponse {
    pub header: ResponseHeader,
    pub leases: Vec<crate::lease::LeaseId>,
}

/// etcd `LeaseRevokeResponse`: the header carries the revision after the deletes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    pub header: ResponseHeader,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
}

/// etcd `TxnRequest`: if every compare holds, run `success`, else run `failure`. The whole
/// transaction is one revision (or none, if it only reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    pub header: ResponseHeader,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactRequest {
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactResponse {
    pub header: ResponseHeader,
}

/// A request that goes through Raft and changes the state machine. Reads normally do not
/// (they use ReadIndex), but a `Txn` may contain both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    /// Answered by a `MutationResponse::Put`.
    LeasedPut(LeasedPutRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MutationResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
}

impl MutationResponse {
    pub fn header(&self) -> &ResponseHeader {
        match self {
            MutationResponse::Put(r) => &r.header,
            MutationResponse::DeleteRange(r) => &r.header,
            MutationResponse::Txn(r) => &r.header,
            MutationResponse::Compact(r) => &r.header,
            MutationResponse::LeaseGrant(r) => &r.header,
            MutationResponse::LeaseRevoke(r) => &r.header,
        }
    }

    pub fn header_mut(&mut self) -> &mut ResponseHeader {
        match self {
            MutationResponse::Put(r) => &mut r.header,
            MutationResponse::DeleteRange(r) => &mut r.header,
            MutationResponse::Txn(r) => &mut r.header,
            MutationResponse::Compact(r) => &mut r.header,
            MutationResponse::LeaseGrant(r) => &mut r.header,
            MutationResponse::LeaseRevoke(r) => &mut r.header,
        }
    }

    /// The same response with its header's revision set.
    pub fn with_revision(mut self, revision: Revision) -> Self {
        self.header_mut().revision = revision;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// etcd `mvccpb.Event`. For a delete, `kv` holds the key with `mod_revision` set to the
/// deletion's revision and an empty value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// etcd clientv3 `Event.IsCreate`: a put whose key version is 1.
    pub fn is_create(&self) -> bool {
        self.kind == EventKind::Put && self.kv.version == 1
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub range: KeyRange,
    /// Inclusive; 0 means "from the next revision".
    pub start_revision: Revision,
    pub prev_kv: bool,
}

/// One batch delivered on a watch stream. etcd delivers all events of one revision in one
/// response (watch atomicity), in revision order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    pub watch_id: u64,
    pub events: Vec<Event>,
    /// Set when the watch was cancelled because its start revision is compacted.
    pub compact_revision: Option<Revision>,
    pub canceled: bool,
}

/// Errors the store returns. Each is an expected operational outcome, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// etcd `ErrCompacted`: "mvcc: required revision has been compacted".
    #[error("required revision {requested} has been compacted (compacted at {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// etcd `ErrFutureRev`: "mvcc: required revision is a future revision".
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: Revision, current: Revision },
    /// etcd `ErrRequestTooLarge`.
    #[error("request is too large: {size} bytes, limit {limit}")]
    RequestTooLarge { size: usize, limit: usize },
    /// etcd `ErrDuplicateKey`: "duplicate key given in txn request".
    #[error("duplicate key given in txn request: {key}")]
    DuplicateKeyInTxn { key: String },
    /// etcd `ErrTooManyOps`.
    #[error("too many operations in txn request: {n_ops}, limit {limit}")]
    TooManyOps { n_ops: usize, limit: usize },
    /// The principal may not do this (only the apiserver role may mutate).
    #[error("permission denied: principal {principal} may not {action}")]
    PermissionDenied { principal: String, action: String },
    /// This member is not the leader; `leader_hint` names the one it believes leads.
    #[error("not leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<MemberId> },
    /// The member cannot serve right now (no leader, stopping, disk failed).
    #[error("store unavailable: {reason}")]
    Unavailable { reason: String },
    /// The request may or may not have taken effect (etcd: "request timed out").
    #[error("request outcome unknown: {reason}")]
    UnknownOutcome { reason: String },
    /// The request is malformed.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// One of etcd's lease errors (`ErrLeaseNotFound`, `ErrLeaseExists`,
    /// `ErrLeaseTTLTooLarge`, `ErrNotPrimary`; lease/lessor.go). Last in the enum, so the
    /// encoding of every other variant is what it was before leases.
    #[error("lease: {error}")]
    Lease { error: crate::lease::LeaseError },
}
