//! The MVCC state machine: etcd's `mvcc` package (kvstore.go, kvstore_txn.go) plus the
//! apply logic of `etcdserver/apply.go` (Txn compares, prev_kv, the one-revision-per-request
//! rule). Pure: requests in, responses and watch events out.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::key_index::KeyHistory;
use super::kv_leases::{self, events_without_leases, KvLeases};
use super::validate;
use crate::api::{
    CompactRequest, CompactResponse, Compare, CompareOp, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, KeyRange, KeyValue, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    Mutation, MutationResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    ResponseOp, Revision, StoreError, TxnRequest, TxnResponse,
};
use crate::lease::{LeaseId, LeaseTable, NO_LEASE};

/// etcd: an empty store is at revision 1 (revision 0 is never a valid store revision).
const INITIAL_REVISION: Revision = 1;

/// An etcd-like multi-version key-value store.
///
/// Revisions: every request that writes at least one key adds exactly 1 to the store
/// revision (a Txn's writes share one revision); a request that writes nothing leaves it.
/// History since the last compaction is kept both per key (for reads at past revisions) and
/// per revision (for watch catch-up). History grows until the owner compacts: the bound is
/// the compaction policy of whoever drives this store.
#[derive(Debug)]
pub struct Mvcc {
    keys: BTreeMap<String, KeyHistory>,
    /// Every revision above `compacted_revision` that wrote something, with its events in
    /// execution order (etcd's sub-revision order).
    events: BTreeMap<Revision, Vec<Event>>,
    current_revision: Revision,
    /// 0 if never compacted.
    compacted_revision: Revision,
    /// etcd's leases: replicated state, applied like the keys (see [`crate::lease`]).
    leases: LeaseTable,
    /// etcd's minimum lease TTL (see [`crate::lease::min_lease_ttl_secs`]): member
    /// configuration, the same on every member, not part of a snapshot.
    min_lease_ttl_secs: i64,
}

/// etcd's minimum lease TTL with its default election timeout (1 s), which is also
/// kubesim's members' default.
pub const DEFAULT_MIN_LEASE_TTL_SECS: i64 = 2;

/// Everything an [`Mvcc`] holds, for `snapshot save` and Raft snapshots.
///
/// Encode it with [`MvccSnapshot::encode`], not serde alone: the leases travel in a
/// section after the rest, present only when the store ever had a lease, so that a
/// snapshot of a store without leases is byte for byte what it was before leases existed
/// (snapshot sizes feed the simulation: torn writes, bit-rot offsets). The section is the
/// lease table, then the lease of every key version and event that has one
/// ([`KeyValue::lease`]; the serde fields leave it out). A section that ends after the
/// table was written before key versions carried their lease: the table's attachments
/// then give the live versions theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MvccSnapshot {
    keys: BTreeMap<String, KeyHistory>,
    #[serde(with = "events_without_leases")]
    events: BTreeMap<Revision, Vec<Event>>,
    current_revision: Revision,
    compacted_revision: Revision,
    #[serde(skip)]
    leases: LeaseTable,
}

/// An [`MvccSnapshot`] borrowed from where it lives, a live [`Mvcc`] or a snapshot: it
/// encodes to the same bytes without cloning the keyspace first (a member may snapshot
/// every few dozen entries, and the clone cost more than the encoding).
#[derive(Clone, Copy, Serialize)]
pub struct MvccView<'a> {
    keys: &'a BTreeMap<String, KeyHistory>,
    #[serde(serialize_with = "events_without_leases::serialize")]
    events: &'a BTreeMap<Revision, Vec<Event>>,
    current_revision: Revision,
    compacted_revision: Revision,
    #[serde(skip)]
    leases: &'a LeaseTable,
}

impl MvccView<'_> {
    /// The snapshot's bytes: the serde fields, then the lease section if any.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_within(self)
    }

    /// The bytes of `outer`, a structure that embeds this view, followed by this view's
    /// lease section (nothing when the store never had a lease), in one allocation of the
    /// final size.
    pub fn encode_within(&self, outer: &impl Serialize) -> Vec<u8> {
        // A lease revoked after its keys were written leaves an empty table behind, while
        // the versions it deleted still name it until compaction: either one opens the
        // section.
        let kv_leases = KvLeases::of(self.keys, self.events);
        let section = !self.leases.is_empty() || !kv_leases.is_empty();
        let section_len = if section {
            let table_len = bincode::serialized_size(self.leases).expect("a lease table always serializes");
            let kv_leases_len = bincode::serialized_size(&kv_leases).expect("key leases always serialize");
            (table_len + kv_leases_len) as usize
        } else {
            0
        };
        let size = bincode::serialized_size(outer).expect("a snapshot always serializes") as usize;
        let mut out = Vec::with_capacity(size + section_len);
        bincode::serialize_into(&mut out, outer).expect("a snapshot always serializes");
        if section {
            bincode::serialize_into(&mut out, self.leases).expect("a lease table always serializes");
            bincode::serialize_into(&mut out, &kv_leases).expect("key leases always serialize");
        }
        out
    }
}

impl MvccSnapshot {
    /// The snapshot borrowed, for encoding.
    pub fn view(&self) -> MvccView<'_> {
        MvccView {
            keys: &self.keys,
            events: &self.events,
            current_revision: self.current_revision,
            compacted_revision: self.compacted_revision,
            leases: &self.leases,
        }
    }

    /// The snapshot's bytes: the serde fields, then the lease section if any.
    pub fn encode(&self) -> Vec<u8> {
        self.view().encode()
    }

    /// Reads what [`MvccSnapshot::encode`] wrote.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let (mut snapshot, rest): (MvccSnapshot, &[u8]) =
            crate::codec::decode_prefix(data).map_err(|e| format!("undecodable mvcc snapshot: {e}"))?;
        snapshot.decode_leases_from(rest)?;
        Ok(snapshot)
    }

    /// Reads the lease section from the bytes left after the serde fields (none: no lease)
    /// and gives the key versions and events their leases.
    pub fn decode_leases_from(&mut self, rest: &[u8]) -> Result<(), String> {
        if rest.is_empty() {
            self.leases = LeaseTable::new();
            return Ok(());
        }
        let (leases, rest): (LeaseTable, &[u8]) =
            crate::codec::decode_prefix(rest).map_err(|e| format!("undecodable lease table: {e}"))?;
        self.leases = leases;
        if rest.is_empty() {
            kv_leases::attach_live_versions(&mut self.keys, &self.leases);
            return Ok(());
        }
        let (kv_leases, rest): (KvLeases, &[u8]) =
            crate::codec::decode_prefix(rest).map_err(|e| format!("undecodable key leases: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} unexpected bytes after the snapshot's lease section", rest.len()));
        }
        kv_leases.apply_to(&mut self.keys, &mut self.events)
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    pub fn current_revision(&self) -> Revision {
        self.current_revision
    }

    pub fn compacted_revision(&self) -> Revision {
        self.compacted_revision
    }
}

/// The writes of one request, all at `revision` (= current + 1) until it commits.
struct WriteBatch {
    revision: Revision,
    events: Vec<Event>,
}

impl Default for Mvcc {
    fn default() -> Self {
        Self::new()
    }
}

impl Mvcc {
    pub fn new() -> Self {
        Self {
            keys: BTreeMap::new(),
            events: BTreeMap::new(),
            current_revision: INITIAL_REVISION,
            compacted_revision: 0,
            leases: LeaseTable::new(),
            min_lease_ttl_secs: DEFAULT_MIN_LEASE_TTL_SECS,
        }
    }

    /// Sets the minimum lease TTL from the member's election timeout (etcd's `minTTL`).
    pub fn set_min_lease_ttl_secs(&mut self, min_ttl_secs: i64) {
        self.min_lease_ttl_secs = min_ttl_secs;
    }

    /// The leases and the keys attached to them (etcd `LeaseLeases`, and `LeaseTimeToLive`
    /// with keys; the remaining time is the leader's, see [`crate::lease::LeaseExpiry`]).
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    pub fn current_revision(&self) -> Revision {
        self.current_revision
    }

    pub fn compacted_revision(&self) -> Revision {
        self.compacted_revision
    }

    /// etcd `Range`: the header carries the current revision whatever revision was read.
    /// A request without a key is refused first, as etcd's gRPC layer refuses it.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        validate::check_range_request(req)?;
        self.range_as_of(req, self.current_revision)
    }

    /// Static checks done before proposing; see `validate`.
    pub fn validate(m: &Mutation) -> Result<(), StoreError> {
        validate::validate(m)
    }

    /// Applies a committed mutation. Every check that can fail runs before the first write,
    /// so an `Err` leaves the store exactly as it was (and every member agrees on it, since
    /// the checks depend only on the request and the deterministic store state).
    pub fn apply(&mut self, m: &Mutation) -> Result<(MutationResponse, Vec<Event>), StoreError> {
        validate::validate(m)?;
        let mut batch = WriteBatch { revision: self.current_revision + 1, events: Vec::new() };
        let response = match m {
            Mutation::Put(put) => MutationResponse::Put(self.put(&mut batch, put, NO_LEASE)),
            Mutation::DeleteRange(delete) => MutationResponse::DeleteRange(self.delete_range(&mut batch, delete)),
            Mutation::Txn(txn) => MutationResponse::Txn(self.txn(&mut batch, txn)?),
            Mutation::Compact(compact) => MutationResponse::Compact(self.compact(compact)?),
            Mutation::LeaseGrant(grant) => MutationResponse::LeaseGrant(self.lease_grant(grant)?),
            Mutation::LeaseRevoke(revoke) => MutationResponse::LeaseRevoke(self.lease_revoke(&mut batch, revoke)?),
            Mutation::LeasedPut(leased) => {
                // etcd `applyPut`: an unknown lease is refused before anything is written.
                self.leases.check_attachable(leased.lease)?;
                MutationResponse::Put(self.put(&mut batch, &leased.put, leased.lease))
            }
        };
        let events = self.commit(batch);
        let response = response.with_revision(self.current_revision);
        Ok((response, events))
    }

    /// History for watch catch-up: every event with revision `>= start_revision` whose key is
    /// in `range`, in revision order, with `prev_kv` filled. Whole revisions only (watch
    /// atomicity): it stops before a revision that would take it past `max_events`, but
    /// always returns the first matching revision whole. `max_events == 0` means no limit.
    /// `start_revision <= 0` means "from the next revision" (nothing yet).
    ///
    /// Compaction and watches, as etcd does them:
    /// - A start below the compacted revision fails with `Compacted` (etcd
    ///   mvcc/watchable_store.go `syncWatchers` cancels a watcher whose `minRev <
    ///   compactRev`).
    /// - A start exactly at the compacted revision streams from it: compaction keeps the
    ///   compacted revision's own events (see `Mvcc::compact`). This follows etcd as fixed
    ///   after etcd-io/etcd#18089 (PR #18274 "keep tombstone if revision == compactAtRev",
    ///   in 3.4.34 and 3.5.15): a DELETE at exactly the compacted revision is delivered.
    ///   etcd 3.4.23, as Debian ships it, drops that tombstone in `keyIndex.compact`
    ///   (mvcc/key_index.go) and its watch silently misses the DELETE; kubesim does not
    ///   reproduce that bug.
    /// - An event at exactly the compacted revision has no `prev_kv`: etcd's watch server
    ///   reads `prev_kv` at the event's revision − 1 (etcdserver/api/v3rpc/watch.go
    ///   `sendLoop`), which is below the compacted revision, so the read fails and the
    ///   event goes out without it.
    pub fn events(
        &self,
        range: &KeyRange,
        start_revision: Revision,
        max_events: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let start_revision = if start_revision <= 0 { self.current_revision + 1 } else { start_revision };
        if start_revision < self.compacted_revision {
            return Err(StoreError::Compacted { requested: start_revision, compacted: self.compacted_revision });
        }
        if start_revision == self.compacted_revision && self.compacted_revision > 0 {
            coverage::reached!("store.watch.from-compacted-revision");
        }
        let mut out = Vec::new();
        for (&revision, revision_events) in self.events.range(start_revision..) {
            let matching: Vec<&Event> = revision_events.iter().filter(|e| range.contains(&e.kv.key)).collect();
            if matching.is_empty() {
                continue;
            }
            if max_events > 0 && !out.is_empty() && out.len() + matching.len() > max_events {
                break;
            }
            if revision == self.compacted_revision {
                out.extend(matching.into_iter().map(|e| Event { prev_kv: None, ..e.clone() }));
            } else {
                out.extend(matching.into_iter().cloned());
            }
        }
        Ok(out)
    }

    /// Every live key at `revision` (0 = current), sorted by key.
    pub fn keyspace_at(&self, revision: Revision) -> Result<Vec<KeyValue>, StoreError> {
        let revision = self.read_revision(revision, self.current_revision)?;
        Ok(self.keys.iter().filter_map(|(key, history)| history.get(key, revision)).collect())
    }

    /// 64-bit FNV-1a over the current revision and every live key-value (lengths prefixed so
    /// that different keyspaces cannot collide by concatenation). Deterministic across runs
    /// and platforms. A live key-value's lease counts through the lease table, which
    /// attaches each live key to the lease its version names (asserted in `put`), so the
    /// digest of a store without leases is what it was before key-values had one.
    pub fn digest(&self) -> u64 {
        let mut hasher = Fnv1a::new();
        hasher.write(&self.current_revision.to_le_bytes());
        // Leases count only once there are any, so a store without leases digests as it
        // did before leases existed.
        if !self.leases.is_empty() {
            hasher.write(&bincode::serialize(&self.leases).expect("a lease table always serializes"));
        }
        for (key, history) in &self.keys {
            let Some(kv) = history.latest(key) else {
                continue;
            };
            hasher.write(&(kv.key.len() as u64).to_le_bytes());
            hasher.write(kv.key.as_bytes());
            hasher.write(&(kv.value.len() as u64).to_le_bytes());
            hasher.write(&kv.value);
            hasher.write(&kv.create_revision.to_le_bytes());
            hasher.write(&kv.mod_revision.to_le_bytes());
            hasher.write(&kv.version.to_le_bytes());
        }
        hasher.finish()
    }

    /// The state borrowed, to encode as a snapshot without cloning it.
    pub fn view(&self) -> MvccView<'_> {
        MvccView {
            keys: &self.keys,
            events: &self.events,
            current_revision: self.current_revision,
            compacted_revision: self.compacted_revision,
            leases: &self.leases,
        }
    }

    pub fn to_snapshot(&self) -> MvccSnapshot {
        MvccSnapshot {
            keys: self.keys.clone(),
            events: self.events.clone(),
            current_revision: self.current_revision,
            compacted_revision: self.compacted_revision,
            leases: self.leases.clone(),
        }
    }

    /// Checks a snapshot that came from outside (a backup file) before it is used: the
    /// same invariants `from_snapshot` asserts, as an error instead of a panic.
    pub fn try_from_snapshot(s: MvccSnapshot) -> Result<Self, String> {
        if s.current_revision < INITIAL_REVISION {
            return Err(format!("snapshot revision {} below {INITIAL_REVISION}", s.current_revision));
        }
        if !(0..=s.current_revision).contains(&s.compacted_revision) {
            return Err(format!(
                "snapshot compacted revision {} outside [0, {}]",
                s.compacted_revision, s.current_revision
            ));
        }
        if let (Some((&first, _)), Some((&last, _))) = (s.events.first_key_value(), s.events.last_key_value()) {
            if first < s.compacted_revision || last > s.current_revision {
                return Err(format!(
                    "snapshot events span revisions {first}..={last}, outside [{}, {}]",
                    s.compacted_revision, s.current_revision
                ));
            }
        }
        Ok(Self::from_snapshot(s))
    }

    /// etcdutl `snapshot restore --bump-revision N`: the next write gets revision
    /// `current + n + 1`, so revisions clients saw before the restore (up to `n` of them
    /// after the backup) are never handed out again with different contents.
    pub fn bump_revision(&mut self, n: u64) {
        let n = Revision::try_from(n).unwrap_or(Revision::MAX / 2);
        self.current_revision = self.current_revision.saturating_add(n);
    }

    /// etcdutl `snapshot restore --mark-compacted`: compacts at the current revision, so a
    /// read or watch from any earlier revision fails with `Compacted` (Kubernetes watchers
    /// then get 410 Gone and relist). A no-op if already compacted there.
    pub fn mark_compacted(&mut self) {
        let revision = self.current_revision;
        if revision > self.compacted_revision {
            let compacted = self.compact(&CompactRequest { revision });
            debug_assert!(compacted.is_ok(), "compacting at the current revision cannot fail");
        }
    }

    /// The store as it was at `revision` (history after it forgotten), or None when
    /// `revision` is compacted or in the future. Used only by the `snapshot-omits-last-txn`
    /// and `raft-snapshot-omits-last-entry` planted bugs.
    pub fn rewound_to(&self, revision: Revision) -> Option<Mvcc> {
        if revision < self.compacted_revision.max(INITIAL_REVISION) || revision > self.current_revision {
            return None;
        }
        let mut keys = self.keys.clone();
        keys.retain(|_, history| !history.truncate_after(revision));
        let mut events = self.events.clone();
        let _after = events.split_off(&(revision + 1));
        Some(Mvcc {
            keys,
            events,
            current_revision: revision,
            compacted_revision: self.compacted_revision,
            leases: self.leases.clone(),
            min_lease_ttl_secs: self.min_lease_ttl_secs,
        })
    }

    pub fn from_snapshot(s: MvccSnapshot) -> Self {
        assert!(s.current_revision >= INITIAL_REVISION, "snapshot revision {}", s.current_revision);
        assert!(
            (0..=s.current_revision).contains(&s.compacted_revision),
            "snapshot compacted revision {} outside [0, {}]",
            s.compacted_revision,
            s.current_revision
        );
        if let (Some((&first, _)), Some((&last, _))) = (s.events.first_key_value(), s.events.last_key_value()) {
            assert!(first >= s.compacted_revision && last <= s.current_revision);
        }
        Self {
            keys: s.keys,
            events: s.events,
            current_revision: s.current_revision,
            compacted_revision: s.compacted_revision,
            leases: s.leases,
            min_lease_ttl_secs: DEFAULT_MIN_LEASE_TTL_SECS,
        }
    }

    // ---- reads ----

    /// etcd `rangeKeys`: `revision <= 0` reads at `view_revision`; above it is
    /// `ErrFutureRev`; below the compacted revision is `ErrCompacted` (reading exactly at the
    /// compacted revision is allowed: compaction keeps what that read needs).
    fn read_revision(&self, requested: Revision, view_revision: Revision) -> Result<Revision, StoreError> {
        if requested <= 0 {
            return Ok(view_revision);
        }
        if requested > view_revision {
            return Err(StoreError::FutureRevision { requested, current: view_revision });
        }
        if requested < self.compacted_revision {
            coverage::reached!("store.mvcc.read-below-compaction-refused");
            return Err(StoreError::Compacted { requested, compacted: self.compacted_revision });
        }
        Ok(requested)
    }

    /// A range as seen from `view_revision`, which is the current revision, or inside a Txn
    /// that already wrote, the Txn's own revision (etcd `storeTxnWrite.Range`: a txn's
    /// reads see its earlier writes).
    fn range_as_of(&self, req: &RangeRequest, view_revision: Revision) -> Result<RangeResponse, StoreError> {
        let revision = self.read_revision(req.revision, view_revision)?;
        let mut kvs = Vec::new();
        let mut count = 0;
        for (key, history) in self.keys_in(&req.range) {
            let Some(kv) = history.get(key, revision) else {
                continue;
            };
            assert!(kv.mod_revision <= revision, "{kv:?} read at {revision}");
            count += 1;
            if !req.count_only && (req.limit == 0 || kvs.len() < req.limit) {
                // etcd `keys_only`: the value is dropped, every revision field kept.
                kvs.push(if req.keys_only { KeyValue { value: Bytes::new(), ..kv } } else { kv });
            }
        }
        let more = !req.count_only && req.limit > 0 && count > req.limit;
        Ok(RangeResponse { header: header(view_revision), kvs, count, more })
    }

    fn keys_in<'a>(&'a self, range: &'a KeyRange) -> Box<dyn Iterator<Item = (&'a String, &'a KeyHistory)> + 'a> {
        match range {
            KeyRange::Key(key) => Box::new(self.keys.get_key_value(key.as_str()).into_iter()),
            KeyRange::Prefix(prefix) => Box::new(
                self.keys
                    .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                    .take_while(move |(key, _)| key.starts_with(prefix.as_str())),
            ),
            // An inverted or empty range matches nothing (BTreeMap::range would panic on it).
            KeyRange::Range { start, end } if start >= end => Box::new(std::iter::empty()),
            KeyRange::Range { start, end } => {
                Box::new(self.keys.range::<str, _>((Bound::Included(start.as_str()), Bound::Excluded(end.as_str()))))
            }
            KeyRange::FromKey(start) => {
                Box::new(self.keys.range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded)))
            }
        }
    }

    // ---- writes ----

    /// etcd mvcc/kvstore_txn.go `put`: the new version records `lease` (0: none), which
    /// the caller checked exists, and the key leaves the lease it was attached to and
    /// joins that one.
    fn put(&mut self, batch: &mut WriteBatch, req: &PutRequest, lease: LeaseId) -> PutResponse {
        self.leases.put(&req.key, lease).expect("the lease was checked before writing");
        let put_version = |history: &mut KeyHistory| {
            let prev_kv = history.get(&req.key, batch.revision);
            history.put(batch.revision, req.value.clone(), lease);
            (prev_kv, history.get(&req.key, batch.revision).expect("just written"))
        };
        // Most puts change a key that exists: only a new key pays for an owned copy.
        let (prev_kv, kv) = match self.keys.get_mut(&req.key) {
            Some(history) => put_version(history),
            None => put_version(self.keys.entry(req.key.clone()).or_default()),
        };
        assert_eq!(kv.lease, self.leases.lease_of(&req.key), "a live version names the lease its key is attached to");
        let response_prev_kv = if req.prev_kv { prev_kv.clone() } else { None };
        batch.events.push(Event { kind: EventKind::Put, kv, prev_kv });
        PutResponse { header: header(batch.revision), prev_kv: response_prev_kv }
    }

    fn delete_range(&mut self, batch: &mut WriteBatch, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let live: Vec<KeyValue> =
            self.keys_in(&req.range).filter_map(|(key, history)| history.get(key, batch.revision)).collect();
        for prev in &live {
            let deleted = self.keys.get_mut(&prev.key).expect("listed above").delete(batch.revision);
            assert!(deleted, "{} was live", prev.key);
            // etcd mvcc/kvstore_txn.go `delete`: a deleted key leaves its lease.
            self.leases.detach(&prev.key);
            batch.events.push(Event {
                kind: EventKind::Delete,
                kv: tombstone(&prev.key, batch.revision),
                prev_kv: Some(prev.clone()),
            });
        }
        let deleted = live.len();
        // etcd `storeTxnWrite.Rev`: once a write transaction has changed something its
        // revision is the one it will commit at, so a delete that removes nothing, run
        // after a write of the same txn, reports the txn's revision (etcd 3.4
        // `apply.go` `DeleteRange` fills the header from `txn.Rev()`); before any write it
        // reports the revision the txn started from.
        let wrote = deleted > 0 || !batch.events.is_empty();
        DeleteRangeResponse {
            header: header(if wrote { batch.revision } else { self.current_revision }),
            deleted,
            prev_kvs: if req.prev_kv { live } else { Vec::new() },
        }
    }

    /// etcd `applyTxn`: compares read the store before the txn; the chosen branch's ranges
    /// are checked for compacted/future revisions before anything is written
    /// (`checkRequests`), then its ops run in order, each seeing the writes before it.
    fn txn(&mut self, batch: &mut WriteBatch, req: &TxnRequest) -> Result<TxnResponse, StoreError> {
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded { &req.success } else { &req.failure };
        validate::check_intervals(ops)?;
        for op in ops {
            match op {
                RequestOp::Range(range) => {
                    self.read_revision(range.revision, self.current_revision)?;
                }
                // etcd `checkRequestPut`: a put naming an unknown lease fails the txn.
                RequestOp::LeasedPut(leased) => self.leases.check_attachable(leased.lease)?,
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => {}
            }
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                RequestOp::Range(range) => {
                    let view_revision = if batch.events.is_empty() { self.current_revision } else { batch.revision };
                    let response = self.range_as_of(range, view_revision);
                    ResponseOp::Range(response.expect("range revision checked before writing"))
                }
                RequestOp::Put(put) => ResponseOp::Put(self.put(batch, put, NO_LEASE)),
                RequestOp::LeasedPut(leased) => ResponseOp::Put(self.put(batch, &leased.put, leased.lease)),
                RequestOp::DeleteRange(delete) => ResponseOp::DeleteRange(self.delete_range(batch, delete)),
            };
            responses.push(response);
        }
        Ok(TxnResponse { header: header(batch.revision), succeeded, responses })
    }

    /// etcd `applyCompare`: a missing key compares as a zero `KeyValue` (version and both
    /// revisions 0), except that a `Value` compare on a missing key is always false ("nil ==
    /// empty string in grpc; no way to represent missing value"), whatever the operator.
    fn compare(&self, compare: &Compare) -> bool {
        let latest = self.keys.get(&compare.key).and_then(|history| history.find(Revision::MAX));
        let ordering = match (&compare.target, latest) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(target), Some((_, version))) => version.value.as_ref().cmp(target.as_ref()),
            (CompareTarget::CreateRevision(target), latest) => latest.map_or(0, |(create, _)| create).cmp(target),
            (CompareTarget::ModRevision(target), latest) => latest.map_or(0, |(_, v)| v.revision).cmp(target),
            (CompareTarget::Version(target), latest) => latest.map_or(0, |(_, v)| v.version).cmp(target),
        };
        match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        }
    }

    /// etcd `applyLeaseGrant` → `lessor.Grant` (server/lease/lessor.go): writes no key, so
    /// the header carries the current revision.
    fn lease_grant(&mut self, req: &LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        let (id, ttl_secs) = self.leases.grant(req.id, req.ttl_secs, self.min_lease_ttl_secs)?;
        Ok(LeaseGrantResponse { header: header(self.current_revision), id, ttl_secs })
    }

    /// etcd `lessor.Revoke` (server/lease/lessor.go): the lease's keys, sorted, are deleted
    /// in one write transaction, so a revoke is one revision (none if no key was
    /// attached), and watchers see one DELETE per key at that revision.
    fn lease_revoke(
        &mut self,
        batch: &mut WriteBatch,
        req: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, StoreError> {
        let keys = self.leases.revoke(req.id)?;
        for key in keys {
            let delete = DeleteRangeRequest { range: KeyRange::Key(key), prev_kv: false };
            self.delete_range(batch, &delete);
        }
        Ok(LeaseRevokeResponse { header: header(batch.revision) })
    }

    /// PLANTED BUG (`compaction-drops-kept-version`, see
    /// `StoreBugs::compaction_drops_kept_version`): applies a compaction as [`Mvcc::apply`]
    /// does, then also drops the newest version of each key at or below the compacted
    /// revision, which etcd keeps (`keyIndex.compact` keeps the largest revision at or
    /// below it: reads at the compacted revision and later must still see the key). A key
    /// not written since the compacted revision disappears.
    pub fn planted_compact_dropping_kept_versions(
        &mut self,
        req: &CompactRequest,
    ) -> Result<(MutationResponse, Vec<Event>), StoreError> {
        let applied = self.apply(&Mutation::Compact(req.clone()))?;
        self.keys.retain(|_, history| !history.drop_versions_through(req.revision));
        Ok(applied)
    }

    /// etcd `kvstore.updateCompactRev` + `compact`: a revision at or below the compacted one
    /// is `ErrCompacted`, above the current one `ErrFutureRev`. Compaction writes nothing, so
    /// it does not bump the revision. The events of the compacted revision itself are kept
    /// (etcd keeps that revision's keys and, since etcd-io/etcd#18274, its tombstones), so a
    /// watch may start exactly there (see [`Mvcc::events`]).
    fn compact(&mut self, req: &CompactRequest) -> Result<CompactResponse, StoreError> {
        let revision = req.revision;
        if revision > self.current_revision {
            return Err(StoreError::FutureRevision { requested: revision, current: self.current_revision });
        }
        if revision <= self.compacted_revision {
            return Err(StoreError::Compacted { requested: revision, compacted: self.compacted_revision });
        }
        self.keys.retain(|_, history| !history.compact(revision));
        self.events = self.events.split_off(&revision);
        self.compacted_revision = revision;
        coverage::reached!("store.mvcc.compacted");
        Ok(CompactResponse { header: header(self.current_revision) })
    }

    /// Makes a batch's writes the new current revision, if it wrote anything.
    fn commit(&mut self, batch: WriteBatch) -> Vec<Event> {
        if batch.events.is_empty() {
            return Vec::new();
        }
        assert_eq!(batch.revision, self.current_revision + 1, "revisions strictly increase by 1");
        for event in &batch.events {
            assert_eq!(event.kv.mod_revision, batch.revision, "{event:?}");
        }
        self.current_revision = batch.revision;
        let previous = self.events.insert(batch.revision, batch.events.clone());
        assert!(previous.is_none(), "revision {} written twice", batch.revision);
        batch.events
    }
}

// The response headers are filled as the store moves: a write that wrote nothing reports
// the (unchanged) current revision, like etcd (`MutationResponse::with_revision`).

fn header(revision: Revision) -> ResponseHeader {
    ResponseHeader { revision, ..ResponseHeader::default() }
}

/// etcd's delete event: the key with `mod_revision` = the delete's revision, everything
/// else zero/empty, the lease too (mvcc/kvstore_txn.go `delete` writes
/// `mvccpb.KeyValue{Key: key}`).
fn tombstone(key: &str, revision: Revision) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: revision,
        version: 0,
        lease: NO_LEASE,
    }
}

/// 64-bit FNV-1a, written out so the digest never depends on std's randomized hasher.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
