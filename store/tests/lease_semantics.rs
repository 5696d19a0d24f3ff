//! etcd's lease rules (server/lease/lessor.go, mvcc/kvstore_txn.go), one behaviour per
//! test, on the pure lease table and the primary's expiry clock. The grant rules (minimum
//! TTL 2 s for a 1 s request, "lease already exists", "too large lease TTL") and a put or
//! revoke naming an unknown lease ("requested lease not found") were checked against etcd
//! 3.4.23's gateway.

use std::time::Duration;

use store::lease::*;

const MIN_TTL: i64 = 2;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// etcdserver/server.go `minTTL`: 1.5 election timeouts rounded up to seconds; 2 s with
/// the default 1 s election timeout.
#[test]
fn minimum_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
    assert_eq!(min_lease_ttl_secs(Duration::from_millis(1000)), 2);
    assert_eq!(min_lease_ttl_secs(Duration::from_millis(2000)), 3);
    assert_eq!(min_lease_ttl_secs(Duration::from_millis(5000)), 8);
}

/// lessor.Grant: a given id is used as is, a second grant of it is ErrLeaseExists, a TTL
/// above MaxLeaseTTL is ErrLeaseTTLTooLarge, a TTL below the minimum is raised to it;
/// id 0 gets a chosen id that no lease holds.
#[test]
fn grant_with_given_or_chosen_id() {
    let mut table = LeaseTable::new();
    assert!(table.is_empty());
    assert_eq!(table.grant(7, 60, MIN_TTL), Ok((7, 60)));
    assert_eq!(table.grant(7, 60, MIN_TTL), Err(LeaseError::Exists { id: 7 }));
    assert_eq!(
        table.grant(8, MAX_LEASE_TTL_SECS + 1, MIN_TTL),
        Err(LeaseError::TtlTooLarge { ttl_secs: MAX_LEASE_TTL_SECS + 1 })
    );
    assert_eq!(table.grant(9, 1, MIN_TTL), Ok((9, 2)));
    assert_eq!(table.grant(NO_LEASE, 30, MIN_TTL), Ok((1, 30)));
    table.grant(2, 30, MIN_TTL).unwrap();
    assert_eq!(table.grant(NO_LEASE, 30, MIN_TTL), Ok((3, 30)), "skips the id a lease holds");
    assert_eq!(table.ids(), [1, 2, 3, 7, 9]);
    assert_eq!(table.lookup(9).map(|l| l.ttl_secs), Some(2));
    assert!(!table.is_empty());
}

/// mvcc/kvstore_txn.go `put`: a put with a lease attaches the key; a later put with another
/// lease or none moves or detaches it; a delete detaches it; a put with an unknown lease
/// is ErrLeaseNotFound and changes nothing.
#[test]
fn puts_and_deletes_attach_and_detach_keys() {
    let mut table = LeaseTable::new();
    table.grant(1, 60, MIN_TTL).unwrap();
    table.grant(2, 60, MIN_TTL).unwrap();
    table.put("/a", 1).unwrap();
    table.put("/b", 1).unwrap();
    assert_eq!(table.lease_of("/a"), 1);
    assert_eq!(table.put("/c", 5), Err(LeaseError::NotFound { id: 5 }));
    assert_eq!(table.check_attachable(5), Err(LeaseError::NotFound { id: 5 }));
    assert_eq!(table.lease_of("/c"), NO_LEASE);
    table.put("/a", 2).unwrap();
    table.put("/b", NO_LEASE).unwrap();
    assert_eq!((table.lease_of("/a"), table.lease_of("/b")), (2, NO_LEASE));
    assert!(table.lookup(1).unwrap().keys.is_empty());
    table.detach("/a");
    assert!(table.lookup(2).unwrap().keys.is_empty());
    table.detach("/never-attached");
}

/// lessor.Revoke: the lease goes and its keys come back sorted, for one delete
/// transaction; an unknown lease is ErrLeaseNotFound.
#[test]
fn revoke_returns_the_keys_to_delete_sorted() {
    let mut table = LeaseTable::new();
    table.grant(1, 60, MIN_TTL).unwrap();
    for key in ["/z", "/a", "/m"] {
        table.put(key, 1).unwrap();
    }
    assert_eq!(table.revoke(1), Ok(vec!["/a".to_string(), "/m".to_string(), "/z".to_string()]));
    assert_eq!(table.lease_of("/a"), NO_LEASE);
    assert_eq!(table.revoke(1), Err(LeaseError::NotFound { id: 1 }));
    assert!(table.ids().is_empty());
    // The table round-trips through serde (it is replicated state).
    table.grant(4, 10, MIN_TTL).unwrap();
    table.put("/k", 4).unwrap();
    let decoded: LeaseTable = bincode::deserialize(&bincode::serialize(&table).unwrap()).unwrap();
    assert_eq!(decoded, table);
}

/// lessor.Grant on the primary: the lease expires one TTL later on the primary's clock;
/// on a follower it never expires. findExpiredLeases: expired leases come out earliest
/// first, at most `limit` at a time, and come out again after expiredLeaseRetryInterval
/// if their revoke has not been applied.
#[test]
fn only_the_primary_expires_leases() {
    let mut table = LeaseTable::new();
    let (id, _) = table.grant(1, 10, MIN_TTL).unwrap();
    let mut follower = LeaseExpiry::new();
    follower.granted(table.lookup(id).unwrap(), secs(0));
    assert!(follower.take_expired(secs(1000), 10).is_empty());
    assert_eq!(follower.renew(&table, id, secs(1)), Err(LeaseError::NotPrimary));
    assert_eq!(follower.remaining_secs(&table, id, secs(1)), Err(LeaseError::NotPrimary));

    let mut leader = LeaseExpiry::new();
    leader.promote(&table, secs(0), Duration::ZERO);
    table.grant(2, 5, MIN_TTL).unwrap();
    leader.granted(table.lookup(2).unwrap(), secs(0));
    assert!(leader.take_expired(secs(4), 10).is_empty());
    assert_eq!(leader.take_expired(secs(5), 10), [2]);
    assert!(leader.take_expired(secs(6), 10).is_empty(), "reported again only after the retry interval");
    assert_eq!(leader.take_expired(secs(10), 1), [2], "earliest first (2 due again at 8), at most the limit");
    assert_eq!(leader.take_expired(secs(10), 10), [1]);
    assert_eq!(leader.take_expired(secs(13), 10), [1, 2], "ties by id");
    table.revoke(2).unwrap();
    leader.revoked(2);
    assert_eq!(leader.take_expired(secs(100), 10), [1]);
}

/// lessor.Renew (LeaseKeepAlive) and TimeToLive on the primary: a renew pushes the expiry
/// one TTL from now and answers the TTL; TimeToLive counts whole seconds left, truncated;
/// an expired lease cannot be renewed (ErrLeaseNotFound while its revoke is pending).
#[test]
fn keep_alive_and_time_to_live_on_the_primary() {
    let mut table = LeaseTable::new();
    table.grant(1, 10, MIN_TTL).unwrap();
    let mut leader = LeaseExpiry::new();
    leader.promote(&table, secs(0), Duration::ZERO);
    assert_eq!(leader.remaining_secs(&table, 1, Duration::from_millis(2500)), Ok(7));
    assert_eq!(leader.renew(&table, 1, secs(8)), Ok(10));
    assert_eq!(leader.remaining_secs(&table, 1, secs(8)), Ok(10));
    assert!(leader.take_expired(secs(17), 10).is_empty());
    assert_eq!(leader.remaining_secs(&table, 1, secs(19)), Ok(0), "expired, waiting for its revoke");
    assert_eq!(leader.renew(&table, 1, secs(19)), Err(LeaseError::NotFound { id: 1 }));
    assert_eq!(leader.renew(&table, 9, secs(19)), Err(LeaseError::NotFound { id: 9 }));
    assert_eq!(leader.remaining_secs(&table, 9, secs(19)), Err(LeaseError::NotFound { id: 9 }));
}

/// lessor.Promote(extend) with extend = the election timeout: a new leader refreshes every
/// lease to its full TTL plus the election timeout from the promotion, so a leader change
/// never expires a lease early (the old leader's renewals are not known to it); Demote
/// holds every lease forever again.
#[test]
fn a_new_leader_extends_every_lease_on_promotion() {
    let mut table = LeaseTable::new();
    table.grant(1, 10, MIN_TTL).unwrap();
    table.grant(2, 60, MIN_TTL).unwrap();
    let mut old = LeaseExpiry::new();
    old.promote(&table, secs(0), Duration::ZERO);
    assert_eq!(old.take_expired(secs(10), 10), [1]);
    old.demote();
    assert!(!old.is_primary());
    assert!(old.take_expired(secs(1000), 10).is_empty());

    // Promoted at t=9 s on its own clock, with a 1 s election timeout.
    let mut new = LeaseExpiry::new();
    new.promote(&table, secs(9), secs(1));
    assert!(new.is_primary());
    assert_eq!(new.remaining_secs(&table, 1, secs(9)), Ok(11));
    assert!(new.take_expired(secs(19), 10).is_empty());
    assert_eq!(new.take_expired(secs(20), 10), [1]);
    table.revoke(1).unwrap();
    new.revoked(1);
    assert_eq!(new.remaining_secs(&table, 2, secs(20)), Ok(50));
    assert_eq!(new.take_expired(secs(70), 10), [2]);
}

// ---- leases in the MVCC state machine ----

mod mvcc {
    use bytes::Bytes;
    use store::api::*;
    use store::backup::{restore, Backup, BackupError, RestoreOptions};
    use store::lease::{LeaseId, NO_LEASE};
    use store::mvcc::{Mvcc, MvccSnapshot};
    use store::snapshot::MemberSnapshot;

    fn put_req(key: &str, value: &str) -> PutRequest {
        PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: false }
    }

    fn grant(store: &mut Mvcc, id: LeaseId, ttl_secs: i64) -> Result<LeaseGrantResponse, StoreError> {
        match store.apply(&Mutation::LeaseGrant(LeaseGrantRequest { id, ttl_secs }))? {
            (MutationResponse::LeaseGrant(r), events) => {
                assert!(events.is_empty());
                Ok(r)
            }
            other => panic!("{other:?}"),
        }
    }

    fn leased_put(store: &mut Mvcc, key: &str, lease: LeaseId) -> Result<PutResponse, StoreError> {
        match store.apply(&Mutation::LeasedPut(LeasedPutRequest { put: put_req(key, "v"), lease }))? {
            (MutationResponse::Put(r), _) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    fn revoke(store: &mut Mvcc, id: LeaseId) -> Result<(LeaseRevokeResponse, Vec<Event>), StoreError> {
        match store.apply(&Mutation::LeaseRevoke(LeaseRevokeRequest { id }))? {
            (MutationResponse::LeaseRevoke(r), events) => Ok((r, events)),
            other => panic!("{other:?}"),
        }
    }

    fn live_keys(store: &Mvcc) -> Vec<String> {
        store.keyspace_at(0).unwrap().into_iter().map(|kv| kv.key).collect()
    }

    /// etcd: a grant writes no key (the revision stays); a put with a granted lease is an
    /// ordinary write attached to it; a put naming an unknown lease is "requested lease not
    /// found" and writes nothing, alone or inside a txn (etcd `checkRequestPut`).
    #[test]
    fn grant_then_put_with_a_lease_and_refuse_an_unknown_lease() {
        let mut store = Mvcc::new();
        let granted = grant(&mut store, 0, 1).unwrap();
        assert_eq!((granted.id, granted.ttl_secs, granted.header.revision), (1, 2, 1));
        assert_eq!(leased_put(&mut store, "/e/1", 1).unwrap().header.revision, 2);
        assert_eq!(store.leases().lease_of("/e/1"), 1);
        let refused = leased_put(&mut store, "/e/2", 9).unwrap_err();
        assert!(refused.to_string().contains("requested lease 9 not found"), "{refused}");
        let txn = TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(put_req("/x", "1")),
                RequestOp::LeasedPut(LeasedPutRequest { put: put_req("/e/3", "v"), lease: 9 }),
            ],
            failure: vec![],
        };
        assert!(store.apply(&Mutation::Txn(txn)).is_err());
        assert_eq!((store.current_revision(), live_keys(&store)), (2, vec!["/e/1".to_string()]));
        assert!(grant(&mut store, 1, 10).unwrap_err().to_string().contains("already exists"));
    }

    /// etcd lessor.Revoke: every attached key is deleted in one revision (one DELETE
    /// event each, sorted by key); a key that was re-put without the lease, or deleted,
    /// is no longer attached and survives; revoking a lease with no key writes nothing.
    #[test]
    fn revoke_deletes_every_attached_key_in_one_revision() {
        let mut store = Mvcc::new();
        grant(&mut store, 5, 60).unwrap();
        for key in ["/e/c", "/e/a", "/e/b", "/e/d"] {
            leased_put(&mut store, key, 5).unwrap(); // 2..=5
        }
        store.apply(&Mutation::Put(put_req("/e/b", "detached"))).unwrap(); // 6
        store
            .apply(&Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::Key("/e/d".into()), prev_kv: false }))
            .unwrap(); // 7
        let (response, events) = revoke(&mut store, 5).unwrap();
        assert_eq!(response.header.revision, 8);
        let deleted: Vec<(EventKind, &str, Revision)> =
            events.iter().map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision)).collect();
        assert_eq!(deleted, [(EventKind::Delete, "/e/a", 8), (EventKind::Delete, "/e/c", 8)]);
        assert_eq!(live_keys(&store), ["/e/b"]);
        assert!(store.leases().ids().is_empty());
        assert!(revoke(&mut store, 5).unwrap_err().to_string().contains("not found"));
        grant(&mut store, 6, 60).unwrap();
        let (empty, events) = revoke(&mut store, 6).unwrap();
        assert_eq!((empty.header.revision, events.len(), store.current_revision()), (8, 0, 8));
        assert_eq!(store.leases().lease_of("/e/b"), NO_LEASE);
    }

    /// Leases are replicated state: they survive a member snapshot (Raft snapshot, restart
    /// from the snapshot file, InstallSnapshot) and a backup (`snapshot save`/`restore`),
    /// and count in the digest; a store that never had a lease encodes exactly as before
    /// leases existed.
    #[test]
    fn leases_survive_snapshots_and_backups_and_leave_lease_free_encodings_alone() {
        let mut store = Mvcc::new();
        store.apply(&Mutation::Put(put_req("/plain", "1"))).unwrap();
        let plain = store.to_snapshot();
        assert_eq!(plain.encode(), bincode::serialize(&plain).unwrap(), "no lease section without leases");
        let digest_before = store.digest();

        grant(&mut store, 3, 30).unwrap();
        leased_put(&mut store, "/e/1", 3).unwrap();
        assert_ne!(store.digest(), digest_before);
        let snapshot = store.to_snapshot();
        let decoded = MvccSnapshot::decode(&snapshot.encode()).unwrap();
        assert_eq!(decoded.leases(), store.leases());
        let restored = Mvcc::from_snapshot(decoded);
        assert_eq!((restored.digest(), restored.leases().lease_of("/e/1")), (store.digest(), 3));

        let member = MemberSnapshot {
            cluster_id: 1,
            mvcc: snapshot.clone(),
            members: Default::default(),
            removed: Default::default(),
        };
        let member_decoded = MemberSnapshot::decode(&member.encode()).unwrap();
        assert_eq!(member_decoded, member);
        assert_eq!(member_decoded.mvcc.leases().ids(), [3]);

        let backup = Backup::new(1, MemberId(1), &snapshot, store.current_revision());
        backup.verify().unwrap();
        let from_backup = backup.mvcc().unwrap();
        assert_eq!(from_backup.leases(), store.leases());
        // Revoking on the restored store deletes what the lease held.
        let mut from_backup = from_backup;
        let (_, events) = revoke(&mut from_backup, 3).unwrap();
        assert_eq!(events.len(), 1);
    }

    fn range(store: &Mvcc, prefix: &str, revision: Revision, keys_only: bool) -> Vec<(String, LeaseId)> {
        let mut request = RangeRequest::new(KeyRange::Prefix(prefix.into()));
        request.revision = revision;
        request.keys_only = keys_only;
        store.range(&request).unwrap().kvs.into_iter().map(|kv| (kv.key, kv.lease)).collect()
    }

    fn leases_of(kvs: &[KeyValue]) -> Vec<(&str, LeaseId)> {
        kvs.iter().map(|kv| (kv.key.as_str(), kv.lease)).collect()
    }

    /// etcd mvcc/kvstore_txn.go `put` stores `Lease: int64(leaseID)` in the KeyValue of
    /// each version, and every KeyValue etcd returns is a stored one: a range (keys-only
    /// too), a put's or delete's prev_kv, a txn's responses and a watch's events and
    /// prev_kvs carry the lease of that version. A plain put writes a version with lease
    /// 0; a delete's tombstone has lease 0; a read at a past revision sees that revision's
    /// lease, even after the lease was revoked.
    #[test]
    fn every_key_value_carries_the_lease_its_version_was_put_with() {
        let mut store = Mvcc::new();
        grant(&mut store, 7, 60).unwrap();
        grant(&mut store, 8, 60).unwrap();
        leased_put(&mut store, "/e/a", 7).unwrap(); // 2
        leased_put(&mut store, "/e/b", 7).unwrap(); // 3
        store.apply(&Mutation::Put(put_req("/e/plain", "1"))).unwrap(); // 4
        let expected = [("/e/a".to_string(), 7), ("/e/b".to_string(), 7), ("/e/plain".to_string(), NO_LEASE)];
        assert_eq!(range(&store, "/e/", 0, false), expected);
        assert_eq!(range(&store, "/e/", 0, true), expected, "keys_only drops the value, not the lease");

        // A plain put detaches: its version has lease 0, its prev_kv the old lease.
        let detach = PutRequest { prev_kv: true, ..put_req("/e/a", "2") };
        let (response, events) = store.apply(&Mutation::Put(detach)).unwrap(); // 5
        let MutationResponse::Put(response) = response else { panic!("{response:?}") };
        assert_eq!(response.prev_kv.map(|kv| kv.lease), Some(7));
        assert_eq!((events[0].kv.lease, events[0].prev_kv.as_ref().map(|kv| kv.lease)), (NO_LEASE, Some(7)));
        assert_eq!(store.leases().lease_of("/e/a"), NO_LEASE);

        // A txn moving a key to another lease answers and records the same.
        let moved = LeasedPutRequest { put: PutRequest { prev_kv: true, ..put_req("/e/b", "2") }, lease: 8 };
        let txn = TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::LeasedPut(moved),
                RequestOp::Range(RangeRequest::new(KeyRange::Prefix("/e/".into()))),
            ],
            failure: vec![],
        };
        let (response, events) = store.apply(&Mutation::Txn(txn)).unwrap(); // 6
        let MutationResponse::Txn(response) = response else { panic!("{response:?}") };
        let [ResponseOp::Put(put), ResponseOp::Range(read)] = &response.responses[..] else { panic!("{response:?}") };
        assert_eq!(put.prev_kv.as_ref().map(|kv| kv.lease), Some(7));
        assert_eq!(leases_of(&read.kvs), [("/e/a", NO_LEASE), ("/e/b", 8), ("/e/plain", NO_LEASE)]);
        assert_eq!((events[0].kv.lease, events[0].prev_kv.as_ref().map(|kv| kv.lease)), (8, Some(7)));

        // Revoking lease 8 deletes /e/b: the DELETE's tombstone has no lease, its prev_kv
        // has the deleted version's.
        let (_, events) = revoke(&mut store, 8).unwrap(); // 7
        assert_eq!((events[0].kv.lease, events[0].prev_kv.as_ref().map(|kv| kv.lease)), (NO_LEASE, Some(8)));
        let watched = store.events(&KeyRange::Prefix("/e/".into()), 2, 0).unwrap();
        let watched: Vec<(Revision, LeaseId, Option<LeaseId>)> =
            watched.iter().map(|e| (e.kv.mod_revision, e.kv.lease, e.prev_kv.as_ref().map(|kv| kv.lease))).collect();
        assert_eq!(
            watched,
            [(2, 7, None), (3, 7, None), (4, 0, None), (5, 0, Some(7)), (6, 8, Some(7)), (7, 0, Some(8))]
        );
        // The past is as it was: lease 8 is gone, the version put with it still names it.
        assert_eq!(range(&store, "/e/b", 6, false), [("/e/b".to_string(), 8)]);
        assert_eq!(range(&store, "/e/", 3, false), [("/e/a".to_string(), 7), ("/e/b".to_string(), 7)]);

        // A delete's prev_kvs carry the lease too.
        leased_put(&mut store, "/e/c", 7).unwrap(); // 8
        let delete = DeleteRangeRequest { range: KeyRange::Key("/e/c".into()), prev_kv: true };
        let (response, _) = store.apply(&Mutation::DeleteRange(delete)).unwrap();
        let MutationResponse::DeleteRange(response) = response else { panic!("{response:?}") };
        assert_eq!(leases_of(&response.prev_kvs), [("/e/c", 7)]);
    }

    /// The store of the test above, in miniature, with every kind of lease a snapshot must
    /// keep: a live leased key (5), a version whose lease was revoked (lease 6, granted with
    /// its own id, so the lease table is empty again) and events naming both.
    fn store_with_key_leases() -> Mvcc {
        let mut store = Mvcc::new();
        grant(&mut store, 6, 60).unwrap();
        leased_put(&mut store, "/e/gone", 6).unwrap(); // 2
        revoke(&mut store, 6).unwrap(); // 3
        assert!(store.leases().ids().is_empty());
        store.apply(&Mutation::Put(put_req("/plain", "1"))).unwrap(); // 4
        grant(&mut store, 5, 60).unwrap();
        leased_put(&mut store, "/e/live", 5).unwrap(); // 5
        store
    }

    fn all_events(store: &Mvcc) -> Vec<Event> {
        store.events(&KeyRange::Prefix(String::new()), store.compacted_revision().max(1), 0).unwrap()
    }

    /// Each version's lease survives a member snapshot (Raft snapshot, restart from the
    /// snapshot file, InstallSnapshot) and a backup: etcdutl `snapshot restore` copies the
    /// backend, whose key bucket holds every version's KeyValue with its lease
    /// (etcdutl/snapshot/v3_snapshot.go `saveDB` only trims membership). The revoked lease
    /// leaves no lease table, yet its version still names it, so the section is written.
    #[test]
    fn key_leases_survive_snapshots_and_backups() {
        let store = store_with_key_leases();
        let snapshot = store.to_snapshot();
        let decoded = MvccSnapshot::decode(&snapshot.encode()).unwrap();
        assert_eq!(decoded, snapshot, "versions and events keep their leases");
        let restored = Mvcc::from_snapshot(decoded);
        assert_eq!(range(&restored, "/e/", 0, false), [("/e/live".to_string(), 5)]);
        assert_eq!(range(&restored, "/e/", 2, false), [("/e/gone".to_string(), 6)]);
        assert_eq!(all_events(&restored), all_events(&store));

        let member = MemberSnapshot {
            cluster_id: 1,
            mvcc: snapshot.clone(),
            members: Default::default(),
            removed: Default::default(),
        };
        assert_eq!(MemberSnapshot::decode(&member.encode()).unwrap(), member);

        let backup = Backup::new(1, MemberId(1), &snapshot, store.current_revision());
        let members = [(MemberId(11), std::net::SocketAddr::from(([10, 0, 0, 11], 2379)))].into_iter().collect();
        let options = RestoreOptions {
            cluster_id: 2,
            members,
            bump_revision: 100,
            mark_compacted: true,
            bugs: Default::default(),
        };
        let restored_cluster = restore(&backup, &options).unwrap();
        let restored = Mvcc::from_snapshot(MemberSnapshot::decode(&restored_cluster.snapshot_data).unwrap().mvcc);
        assert_eq!(range(&restored, "/e/", 0, false), [("/e/live".to_string(), 5)]);
        assert_eq!(restored.leases().lease_of("/e/live"), 5, "the lease table is restored as it was saved");
    }

    /// A snapshot of a store whose lease table is its only record of leases (the encoding
    /// before key versions had a lease: the table, then nothing) still decodes: the live
    /// versions take the lease the table attaches them to, as etcd's attachments and live
    /// versions agree (mvcc/kvstore.go `restore`); older versions and events read lease 0.
    #[test]
    fn a_snapshot_from_before_key_leases_takes_the_live_leases_from_the_table() {
        let store = store_with_key_leases();
        let snapshot = store.to_snapshot();
        let mut old_encoding = bincode::serialize(&snapshot).unwrap();
        old_encoding.extend(bincode::serialize(snapshot.leases()).unwrap());
        let restored = Mvcc::from_snapshot(MvccSnapshot::decode(&old_encoding).unwrap());
        assert_eq!(range(&restored, "/", 0, false), [("/e/live".to_string(), 5), ("/plain".to_string(), NO_LEASE)]);
        assert_eq!(range(&restored, "/e/", 2, false), [("/e/gone".to_string(), NO_LEASE)]);
        assert!(all_events(&restored).iter().all(|e| e.kv.lease == NO_LEASE));
    }

    /// A damaged lease section is an error naming what is wrong, never a panic: every
    /// truncation of the encoding, trailing bytes, and key leases that name versions the
    /// snapshot does not hold (a section from another snapshot).
    #[test]
    fn a_damaged_key_lease_section_is_an_error_not_a_panic() {
        let store = store_with_key_leases();
        let snapshot = store.to_snapshot();
        let encoded = snapshot.encode();
        let serde_len = bincode::serialized_size(&snapshot).unwrap() as usize;
        for len in 0..encoded.len() {
            // Cut after the serde fields or after the table is a shorter valid encoding.
            let _ = MvccSnapshot::decode(&encoded[..len]);
        }
        let mut trailing = encoded.clone();
        trailing.push(0);
        let error = MvccSnapshot::decode(&trailing).unwrap_err();
        assert!(error.contains("unexpected bytes after"), "{error}");

        let mut other = Mvcc::new();
        other.apply(&Mutation::Put(put_req("/plain", "1"))).unwrap();
        let mut foreign = bincode::serialize(&other.to_snapshot()).unwrap();
        foreign.extend_from_slice(&encoded[serde_len..]);
        let error = MvccSnapshot::decode(&foreign).unwrap_err();
        assert!(error.contains("which the snapshot lacks"), "{error}");
        let backup = Backup { data: foreign.into(), ..Backup::new(1, MemberId(1), &other.to_snapshot(), 2) };
        assert!(matches!(backup.mvcc(), Err(BackupError::Undecodable { .. })), "{:?}", backup.mvcc());
    }

    /// Snapshot bytes feed the simulation (torn-write lengths, bit-rot offsets, a
    /// corrupted backup's size), so a store that never had a lease must encode exactly as
    /// it did before key-values had a lease: length and xxh3 of the MVCC and member
    /// snapshot of this store, as commit ee184ef encoded them.
    #[test]
    fn a_lease_free_snapshot_encodes_as_before_key_values_had_a_lease() {
        let mut store = Mvcc::new();
        store.apply(&Mutation::Put(put_req("/a", "1"))).unwrap();
        store.apply(&Mutation::Put(put_req("/b", "1"))).unwrap();
        store.apply(&Mutation::Put(put_req("/a", "2"))).unwrap();
        let delete = DeleteRangeRequest { range: KeyRange::Key("/b".into()), prev_kv: true };
        store.apply(&Mutation::DeleteRange(delete)).unwrap();
        store.apply(&Mutation::Put(put_req("/c", "1"))).unwrap();
        store.apply(&Mutation::Compact(CompactRequest { revision: 3 })).unwrap();
        store.apply(&Mutation::Put(put_req("/a", "3"))).unwrap();
        let mvcc = store.to_snapshot().encode();
        let member = MemberSnapshot {
            cluster_id: 7,
            mvcc: store.to_snapshot(),
            members: Default::default(),
            removed: Default::default(),
        }
        .encode();
        let fingerprint = |bytes: &[u8]| (bytes.len(), xxhash_rust::xxh3::xxh3_64(bytes));
        assert_eq!(fingerprint(&mvcc), (718, 0x595d_bc3b_c194_09e9));
        assert_eq!(fingerprint(&member), (742, 0xc585_93ce_5ec0_43fc));
    }
}
