//! etcd's documented MVCC semantics, one behaviour per test. Each test's doc comment names the
//! etcd behaviour (doc or code) it reproduces.

use bytes::Bytes;
use store::api::*;
use store::mvcc::Mvcc;

fn put(store: &mut Mvcc, key: &str, value: &str) -> (PutResponse, Vec<Event>) {
    let m = Mutation::Put(PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: true });
    match store.apply(&m).expect("put") {
        (MutationResponse::Put(r), events) => (r, events),
        other => panic!("{other:?}"),
    }
}

fn delete(store: &mut Mvcc, range: KeyRange) -> (DeleteRangeResponse, Vec<Event>) {
    let m = Mutation::DeleteRange(DeleteRangeRequest { range, prev_kv: true });
    match store.apply(&m).expect("delete") {
        (MutationResponse::DeleteRange(r), events) => (r, events),
        other => panic!("{other:?}"),
    }
}

fn txn(store: &mut Mvcc, request: TxnRequest) -> Result<(TxnResponse, Vec<Event>), StoreError> {
    match store.apply(&Mutation::Txn(request))? {
        (MutationResponse::Txn(r), events) => Ok((r, events)),
        other => panic!("{other:?}"),
    }
}

fn get(store: &Mvcc, key: &str) -> Option<KeyValue> {
    store.range(&RangeRequest::new(KeyRange::Key(key.into()))).unwrap().kvs.into_iter().next()
}

fn get_at(store: &Mvcc, key: &str, revision: Revision) -> Result<Option<KeyValue>, StoreError> {
    let mut req = RangeRequest::new(KeyRange::Key(key.into()));
    req.revision = revision;
    Ok(store.range(&req)?.kvs.into_iter().next())
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: false })
}

fn kv(key: &str, value: &str, create_revision: Revision, mod_revision: Revision, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Bytes::from(value.to_string()),
        create_revision,
        mod_revision,
        version,
        lease: 0,
    }
}

/// etcd: an empty store is at revision 1, and every put adds exactly 1 (the put's header
/// carries its revision).
#[test]
fn revision_starts_at_one_and_each_put_adds_one() {
    let mut store = Mvcc::new();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.compacted_revision(), 0);
    assert_eq!(put(&mut store, "a", "1").0.header.revision, 2);
    assert_eq!(put(&mut store, "b", "1").0.header.revision, 3);
    assert_eq!(store.current_revision(), 3);
}

/// etcd mvccpb.KeyValue: version is 1 on create and +1 per change; create_revision stays;
/// mod_revision follows each change; after a delete a re-create starts at version 1 with a
/// new create_revision.
#[test]
fn versions_and_revisions_across_create_update_delete_recreate() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v1");
    put(&mut store, "k", "v2");
    assert_eq!(get(&store, "k"), Some(kv("k", "v2", 2, 3, 2)));
    delete(&mut store, KeyRange::Key("k".into()));
    assert_eq!(get(&store, "k"), None);
    put(&mut store, "k", "v3");
    assert_eq!(get(&store, "k"), Some(kv("k", "v3", 5, 5, 1)));
}

/// etcd: a request that writes nothing (DeleteRange matching no key, a read-only Txn)
/// does not change the revision; its header reports the current one.
#[test]
fn requests_that_write_nothing_do_not_bump_the_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "a", "1");
    let (response, events) = delete(&mut store, KeyRange::Key("missing".into()));
    assert_eq!((response.deleted, response.header.revision, events.len()), (0, 2, 0));
    let read_only = TxnRequest {
        compare: vec![],
        success: vec![RequestOp::Range(RangeRequest::new(KeyRange::Key("a".into())))],
        failure: vec![],
    };
    let (response, events) = txn(&mut store, read_only).unwrap();
    assert_eq!((response.header.revision, events.len()), (2, 0));
    assert_eq!(store.current_revision(), 2);
}

/// etcd Range: a single key, a prefix (`range_end = prefix + 1`) and `[key, range_end)`,
/// results sorted by key.
#[test]
fn range_single_key_prefix_and_interval() {
    let mut store = Mvcc::new();
    for key in ["/a/1", "/a/2", "/b/1", "/a"] {
        put(&mut store, key, "x");
    }
    let range = |r: KeyRange| store.range(&RangeRequest::new(r)).unwrap().kvs;
    assert_eq!(keys(&range(KeyRange::Key("/a/1".into()))), ["/a/1"]);
    assert_eq!(keys(&range(KeyRange::Prefix("/a/".into()))), ["/a/1", "/a/2"]);
    assert_eq!(keys(&range(KeyRange::Prefix("".into()))), ["/a", "/a/1", "/a/2", "/b/1"]);
    let interval = KeyRange::Range { start: "/a/2".into(), end: "/b/2".into() };
    assert_eq!(keys(&range(interval)), ["/a/2", "/b/1"]);
    let inverted = KeyRange::Range { start: "/z".into(), end: "/a".into() };
    assert!(range(inverted).is_empty());
}

/// etcd Range with `revision > 0` reads the keyspace as of that revision; the header still
/// carries the current revision.
#[test]
fn range_at_a_past_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v1"); // 2
    put(&mut store, "k", "v2"); // 3
    delete(&mut store, KeyRange::Key("k".into())); // 4
    assert_eq!(get_at(&store, "k", 2).unwrap(), Some(kv("k", "v1", 2, 2, 1)));
    assert_eq!(get_at(&store, "k", 3).unwrap(), Some(kv("k", "v2", 2, 3, 2)));
    assert_eq!(get_at(&store, "k", 4).unwrap(), None);
    assert_eq!(get_at(&store, "k", 1).unwrap(), None);
    let mut req = RangeRequest::new(KeyRange::Key("k".into()));
    req.revision = 2;
    assert_eq!(store.range(&req).unwrap().header.revision, 4);
}

/// etcd `rangeKeys`: a revision above the current one fails with ErrFutureRev.
#[test]
fn range_above_the_current_revision_is_future_rev() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v");
    assert_eq!(get_at(&store, "k", 3), Err(StoreError::FutureRevision { requested: 3, current: 2 }));
}

/// etcd `rangeKeys`: `if rev < compactMainRev { return ErrCompacted }` — below the compacted
/// revision fails, exactly at it succeeds (compaction keeps what that read needs).
#[test]
fn range_below_the_compacted_revision_fails_with_compacted() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v1"); // 2
    put(&mut store, "k", "v2"); // 3
    put(&mut store, "k", "v3"); // 4
    store.apply(&Mutation::Compact(CompactRequest { revision: 3 })).unwrap();
    assert_eq!(get_at(&store, "k", 2), Err(StoreError::Compacted { requested: 2, compacted: 3 }));
    assert_eq!(get_at(&store, "k", 3).unwrap(), Some(kv("k", "v2", 2, 3, 2)));
    assert_eq!(get_at(&store, "k", 4).unwrap(), Some(kv("k", "v3", 2, 4, 3)));
    assert_eq!(store.keyspace_at(2), Err(StoreError::Compacted { requested: 2, compacted: 3 }));
}

/// etcd `keyIndex.compact` keeps each key's newest version at or below the compacted
/// revision, so a key not written since still reads; the `compaction-drops-kept-version`
/// planted bug drops it, and the key is gone.
#[test]
fn compaction_keeps_the_newest_version_and_the_planted_bug_drops_it() {
    let build = || {
        let mut store = Mvcc::new();
        put(&mut store, "quiet", "v1"); // 2
        put(&mut store, "busy", "v1"); // 3
        put(&mut store, "busy", "v2"); // 4
        store
    };
    let mut store = build();
    store.apply(&Mutation::Compact(CompactRequest { revision: 3 })).unwrap();
    assert_eq!(get(&store, "quiet"), Some(kv("quiet", "v1", 2, 2, 1)));
    assert_eq!(get(&store, "busy"), Some(kv("busy", "v2", 3, 4, 2)));
    let mut planted = build();
    planted.planted_compact_dropping_kept_versions(&CompactRequest { revision: 3 }).unwrap();
    assert_eq!(get(&planted, "quiet"), None, "the key not written since the compaction is gone");
    assert_eq!(get(&planted, "busy"), Some(kv("busy", "v2", 3, 4, 2)));
}

/// etcd RangeRequest.limit / RangeResponse.count / more: count is the number of keys in
/// the range before the limit, `more` says the limit cut it; count_only returns no kvs.
#[test]
fn range_limit_count_more_and_count_only() {
    let mut store = Mvcc::new();
    for key in ["a", "b", "c"] {
        put(&mut store, key, "x");
    }
    let mut req = RangeRequest::new(KeyRange::Prefix("".into()));
    req.limit = 2;
    let response = store.range(&req).unwrap();
    assert_eq!((keys(&response.kvs), response.count, response.more), (vec!["a", "b"], 3, true));
    req.limit = 3;
    let response = store.range(&req).unwrap();
    assert_eq!((response.kvs.len(), response.count, response.more), (3, 3, false));
    req.limit = 0;
    req.count_only = true;
    let response = store.range(&req).unwrap();
    assert_eq!((response.kvs.len(), response.count, response.more), (0, 3, false));
    assert_eq!(response.header.revision, 4);
}

/// etcd Put with `prev_kv` returns the key-value before the put (none for a create).
#[test]
fn put_with_prev_kv() {
    let mut store = Mvcc::new();
    assert_eq!(put(&mut store, "k", "v1").0.prev_kv, None);
    assert_eq!(put(&mut store, "k", "v2").0.prev_kv, Some(kv("k", "v1", 2, 2, 1)));
}

/// etcd DeleteRange: `deleted` counts the keys removed, `prev_kvs` holds them when asked;
/// the whole range is one revision.
#[test]
fn delete_range_with_prev_kv_is_one_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "/p/a", "1");
    put(&mut store, "/p/b", "2");
    put(&mut store, "/q", "3");
    let (response, events) = delete(&mut store, KeyRange::Prefix("/p/".into()));
    assert_eq!(response.deleted, 2);
    assert_eq!(response.prev_kvs, vec![kv("/p/a", "1", 2, 2, 1), kv("/p/b", "2", 3, 3, 1)]);
    assert_eq!(response.header.revision, 5);
    assert_eq!(events.len(), 2);
    assert_eq!(store.current_revision(), 5);
    assert_eq!(keys(&store.keyspace_at(0).unwrap()), ["/q"]);
}

/// etcd watch events: a put carries the new kv and prev_kv; a delete carries the tombstone
/// kv (key, mod_revision = the delete's revision, empty value, version 0, create_revision 0)
/// and prev_kv; a create is a put with version 1 (clientv3 `IsCreate`).
#[test]
fn events_for_put_and_delete_carry_kv_and_prev_kv() {
    let mut store = Mvcc::new();
    let (_, created) = put(&mut store, "k", "v1");
    assert_eq!(created, vec![Event { kind: EventKind::Put, kv: kv("k", "v1", 2, 2, 1), prev_kv: None }]);
    assert!(created[0].is_create());
    let (_, updated) = put(&mut store, "k", "v2");
    assert_eq!(updated[0].prev_kv, Some(kv("k", "v1", 2, 2, 1)));
    assert!(!updated[0].is_create());
    let (_, deleted) = delete(&mut store, KeyRange::Key("k".into()));
    let tombstone =
        KeyValue { key: "k".into(), value: Bytes::new(), create_revision: 0, mod_revision: 4, version: 0, lease: 0 };
    assert_eq!(deleted, vec![Event { kind: EventKind::Delete, kv: tombstone, prev_kv: Some(kv("k", "v2", 2, 3, 2)) }]);
}

/// etcd watch catch-up from history: events with revision >= start, in revision order,
/// filtered by key range, whole revisions at a time (watch atomicity).
#[test]
fn event_history_from_a_start_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "/a", "1"); // 2
    put(&mut store, "/b", "1"); // 3
    txn(
        &mut store,
        TxnRequest { compare: vec![], success: vec![put_op("/a", "2"), put_op("/c", "1")], failure: vec![] },
    )
    .unwrap(); // 4
    let revisions =
        |events: Vec<Event>| events.iter().map(|e| (e.kv.key.clone(), e.kv.mod_revision)).collect::<Vec<_>>();
    let all = KeyRange::Prefix("/".into());
    assert_eq!(
        revisions(store.events(&all, 3, 0).unwrap()),
        [("/b".to_string(), 3), ("/a".to_string(), 4), ("/c".to_string(), 4)]
    );
    assert_eq!(
        revisions(store.events(&KeyRange::Key("/a".into()), 1, 0).unwrap()),
        [("/a".to_string(), 2), ("/a".to_string(), 4)]
    );
    // max_events never splits revision 4's two events.
    assert_eq!(revisions(store.events(&all, 3, 2).unwrap()), [("/b".to_string(), 3)]);
    assert_eq!(store.events(&all, 4, 1).unwrap().len(), 2);
    assert!(store.events(&all, 5, 0).unwrap().is_empty());
}

/// etcd mvcc/watchable_store.go `syncWatchers`: a watch whose start revision is below the
/// compacted revision is cancelled (ErrCompacted); one that starts exactly at it streams
/// from it, and the compacted revision's events come without prev_kv (etcd's watch server
/// reads prev_kv at revision − 1, which is compacted).
#[test]
fn event_history_from_a_compacted_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "1"); // 2
    put(&mut store, "k", "2"); // 3
    put(&mut store, "k", "3"); // 4
    store.apply(&Mutation::Compact(CompactRequest { revision: 3 })).unwrap();
    let all = KeyRange::Prefix("".into());
    assert_eq!(store.events(&all, 2, 0), Err(StoreError::Compacted { requested: 2, compacted: 3 }));
    assert_eq!(store.events(&all, 1, 0), Err(StoreError::Compacted { requested: 1, compacted: 3 }));
    let events = store.events(&all, 3, 0).unwrap();
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(events[0].prev_kv, None, "prev_kv at 2 is compacted");
    assert_eq!(events[1].prev_kv, Some(kv("k", "2", 2, 3, 2)));
}

/// etcd-io/etcd#18089, fixed by #18274 ("keep tombstone if revision == compactAtRev"): a
/// DELETE at exactly the compacted revision is still delivered to a watch that starts
/// there (etcd 3.4.23 drops it; kubesim follows the fixed releases), while reads at the
/// compacted revision no longer see the key.
#[test]
fn a_delete_at_the_compacted_revision_is_delivered_to_a_watch_from_it() {
    let mut store = Mvcc::new();
    put(&mut store, "gone", "1"); // 2
    put(&mut store, "kept", "1"); // 3
    delete(&mut store, KeyRange::Key("gone".into())); // 4
    put(&mut store, "kept", "2"); // 5
    store.apply(&Mutation::Compact(CompactRequest { revision: 4 })).unwrap();
    let events = store.events(&KeyRange::Prefix("".into()), 4, 0).unwrap();
    let tombstone =
        KeyValue { key: "gone".into(), value: Bytes::new(), create_revision: 0, mod_revision: 4, version: 0, lease: 0 };
    assert_eq!(events[0], Event { kind: EventKind::Delete, kv: tombstone, prev_kv: None });
    assert_eq!(events[1].kv, kv("kept", "2", 3, 5, 2));
    assert_eq!(get_at(&store, "gone", 4).unwrap(), None);
    assert_eq!(keys(&store.keyspace_at(4).unwrap()), ["kept"]);
    // The kept events survive a snapshot round trip.
    let restored = Mvcc::from_snapshot(store.to_snapshot());
    assert_eq!(restored.events(&KeyRange::Key("gone".into()), 4, 0).unwrap().len(), 1);
}

/// etcd Txn: all writes of a transaction share one revision (and one batch of events).
#[test]
fn txn_is_one_revision_for_all_its_writes() {
    let mut store = Mvcc::new();
    put(&mut store, "old", "x"); // 2
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            put_op("a", "1"),
            put_op("b", "1"),
            RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::Key("old".into()), prev_kv: false }),
        ],
        failure: vec![],
    };
    let (response, events) = txn(&mut store, request).unwrap();
    assert!(response.succeeded);
    assert_eq!(response.header.revision, 3);
    assert_eq!(store.current_revision(), 3);
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), [3, 3, 3]);
    assert_eq!(get(&store, "a").unwrap().mod_revision, get(&store, "b").unwrap().mod_revision);
}

/// etcd `applyCompare` on an existing key: Value/CreateRevision/ModRevision/Version with
/// Equal/NotEqual/Greater/Less, the key's field compared to the target.
#[test]
fn txn_compares_on_every_target_and_operator() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "b"); // create 2
    put(&mut store, "k", "b"); // mod 3, version 2
    let cases = [
        (Compare::value("k", CompareOp::Equal, "b"), true),
        (Compare::value("k", CompareOp::Greater, "a"), true),
        (Compare::value("k", CompareOp::Less, "a"), false),
        (Compare::value("k", CompareOp::NotEqual, "b"), false),
        (Compare::create_revision("k", CompareOp::Equal, 2), true),
        (Compare::create_revision("k", CompareOp::Less, 2), false),
        (Compare::mod_revision("k", CompareOp::Equal, 3), true),
        (Compare::mod_revision("k", CompareOp::Greater, 2), true),
        (Compare::mod_revision("k", CompareOp::NotEqual, 3), false),
        (Compare::version("k", CompareOp::Equal, 2), true),
        (Compare::version("k", CompareOp::Less, 3), true),
        (Compare::version("k", CompareOp::Greater, 2), false),
    ];
    for (compare, expected) in cases {
        let request = TxnRequest { compare: vec![compare.clone()], success: vec![], failure: vec![] };
        assert_eq!(txn(&mut store, request).unwrap().0.succeeded, expected, "{compare:?}");
    }
}

/// etcd `applyCompare` on a missing key: it compares as a zero KeyValue (version 0,
/// revisions 0) — so Kubernetes' create guard `mod_revision == 0` holds — but a Value
/// compare on a missing key always fails ("no way to represent missing value"), even with
/// NotEqual or against an empty value.
#[test]
fn txn_compare_on_a_missing_key() {
    let mut store = Mvcc::new();
    let cases = [
        (Compare::mod_revision("missing", CompareOp::Equal, 0), true),
        (Compare::create_revision("missing", CompareOp::Equal, 0), true),
        (Compare::version("missing", CompareOp::Equal, 0), true),
        (Compare::version("missing", CompareOp::Less, 1), true),
        (Compare::value("missing", CompareOp::Equal, ""), false),
        (Compare::value("missing", CompareOp::NotEqual, "x"), false),
    ];
    for (compare, expected) in cases {
        let request = TxnRequest { compare: vec![compare.clone()], success: vec![], failure: vec![] };
        assert_eq!(txn(&mut store, request).unwrap().0.succeeded, expected, "{compare:?}");
    }
}

/// etcd Txn: if every compare holds the success ops run, else the failure ops; the
/// Kubernetes create pattern (mod_revision == 0 → put, else get) returns the existing
/// object on the failure path without writing.
#[test]
fn txn_runs_success_or_failure_branch() {
    let mut store = Mvcc::new();
    let create = |value: &str| TxnRequest {
        compare: vec![Compare::mod_revision("/registry/pods/default/p", CompareOp::Equal, 0)],
        success: vec![put_op("/registry/pods/default/p", value)],
        failure: vec![RequestOp::Range(RangeRequest::new(KeyRange::Key("/registry/pods/default/p".into())))],
    };
    let (first, _) = txn(&mut store, create("one")).unwrap();
    assert!(first.succeeded);
    assert_eq!(first.header.revision, 2);
    let (second, events) = txn(&mut store, create("two")).unwrap();
    assert!(!second.succeeded);
    assert!(events.is_empty());
    assert_eq!(second.header.revision, 2);
    let ResponseOp::Range(existing) = &second.responses[0] else { panic!("{second:?}") };
    assert_eq!(existing.kvs, vec![kv("/registry/pods/default/p", "one", 2, 2, 1)]);
}

/// etcd `storeTxnWrite.Range`: within a txn, a range sees the txn's earlier writes (it reads
/// at the txn's revision once it has written), and compares see the store before the txn.
#[test]
fn txn_ranges_see_earlier_writes_of_the_same_txn() {
    let mut store = Mvcc::new();
    put(&mut store, "gone", "x"); // 2
    let request = TxnRequest {
        compare: vec![Compare::version("new", CompareOp::Equal, 0)],
        success: vec![
            RequestOp::Range(RangeRequest::new(KeyRange::Prefix("".into()))),
            put_op("new", "1"),
            RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::Key("gone".into()), prev_kv: false }),
            RequestOp::Range(RangeRequest::new(KeyRange::Prefix("".into()))),
        ],
        failure: vec![],
    };
    let (response, _) = txn(&mut store, request).unwrap();
    let ResponseOp::Range(before) = &response.responses[0] else { panic!() };
    let ResponseOp::Range(after) = &response.responses[3] else { panic!() };
    assert_eq!((keys(&before.kvs), before.header.revision), (vec!["gone"], 2));
    assert_eq!(after.kvs, vec![kv("new", "1", 3, 3, 1)]);
    assert_eq!(after.header.revision, 3);
}

/// etcd `checkIntervals` (ErrDuplicateKey): within one branch a key may be put once and a
/// put may not fall inside a delete range; overlapping deletes are allowed. Checked by
/// `validate` before proposing and again by `apply`, which then changes nothing.
#[test]
fn txn_modifying_the_same_key_twice_is_duplicate_key() {
    let mut store = Mvcc::new();
    put(&mut store, "a/1", "x");
    let twice = TxnRequest { compare: vec![], success: vec![put_op("k", "1"), put_op("k", "2")], failure: vec![] };
    let expected = Err(StoreError::DuplicateKeyInTxn { key: "k".into() });
    assert_eq!(Mvcc::validate(&Mutation::Txn(twice.clone())), expected);
    assert_eq!(txn(&mut store, twice).map(|_| ()), expected);
    let del = |range: KeyRange| RequestOp::DeleteRange(DeleteRangeRequest { range, prev_kv: false });
    let put_in_deleted = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![del(KeyRange::Prefix("a/".into())), put_op("a/2", "1")],
    };
    assert_eq!(
        Mvcc::validate(&Mutation::Txn(put_in_deleted)),
        Err(StoreError::DuplicateKeyInTxn { key: "a/2".into() })
    );
    let overlapping_deletes = TxnRequest {
        compare: vec![],
        success: vec![del(KeyRange::Prefix("a/".into())), del(KeyRange::Key("a/1".into()))],
        failure: vec![],
    };
    let (response, events) = txn(&mut store, overlapping_deletes).unwrap();
    let deleted: Vec<usize> = response
        .responses
        .iter()
        .map(|r| match r {
            ResponseOp::DeleteRange(d) => d.deleted,
            _ => panic!(),
        })
        .collect();
    assert_eq!((deleted, events.len(), store.current_revision()), (vec![1, 0], 1, 3));
    // etcd `storeTxnWrite.Rev`: the second delete removed nothing, but the txn had already
    // written, so it reports the txn's revision (3), not the one before it (2).
    let headers: Vec<Revision> = response
        .responses
        .iter()
        .map(|r| match r {
            ResponseOp::DeleteRange(d) => d.header.revision,
            _ => panic!(),
        })
        .collect();
    assert_eq!(headers, vec![3, 3]);
    // A no-op delete before any write of its txn reports the revision the txn started at.
    let noop_first = TxnRequest {
        compare: vec![],
        success: vec![del(KeyRange::Key("missing".into())), put_op("z", "1")],
        failure: vec![],
    };
    let (response, _) = txn(&mut store, noop_first).unwrap();
    match &response.responses[0] {
        ResponseOp::DeleteRange(d) => assert_eq!((d.deleted, d.header.revision), (0, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(response.header.revision, 4);
    // The same key in both branches is fine: only one branch runs.
    let both_branches =
        TxnRequest { compare: vec![], success: vec![put_op("k", "1")], failure: vec![put_op("k", "2")] };
    assert_eq!(Mvcc::validate(&Mutation::Txn(both_branches)), Ok(()));
}

/// etcd `--max-txn-ops` (default 128): more ops in a txn is ErrTooManyOps.
#[test]
fn txn_with_more_than_128_ops_is_too_many_ops() {
    let ops: Vec<RequestOp> = (0..=MAX_TXN_OPS).map(|i| put_op(&format!("k{i}"), "v")).collect();
    let request = Mutation::Txn(TxnRequest { compare: vec![], success: ops.clone(), failure: vec![] });
    assert_eq!(Mvcc::validate(&request), Err(StoreError::TooManyOps { n_ops: 129, limit: 128 }));
    let mut store = Mvcc::new();
    assert!(store.apply(&request).is_err());
    assert_eq!(store.current_revision(), 1);
    let at_limit = Mutation::Txn(TxnRequest { compare: vec![], success: ops[..MAX_TXN_OPS].to_vec(), failure: vec![] });
    assert_eq!(Mvcc::validate(&at_limit), Ok(()));
}

/// etcd `--max-request-bytes` (1.5 MiB): a larger request is ErrRequestTooLarge, refused
/// by validate and by apply.
#[test]
fn put_larger_than_max_request_bytes_is_refused() {
    let mut store = Mvcc::new();
    let request =
        Mutation::Put(PutRequest { key: "k".into(), value: Bytes::from(vec![0u8; MAX_REQUEST_BYTES]), prev_kv: false });
    assert!(matches!(Mvcc::validate(&request), Err(StoreError::RequestTooLarge { .. })));
    assert!(matches!(store.apply(&request), Err(StoreError::RequestTooLarge { .. })));
    assert_eq!((store.current_revision(), get(&store, "k")), (1, None));
    let fits = Mutation::Put(PutRequest {
        key: "k".into(),
        value: Bytes::from(vec![0u8; MAX_REQUEST_BYTES - 64]),
        prev_kv: false,
    });
    assert_eq!(Mvcc::validate(&fits), Ok(()));
}

/// etcd ErrGRPCEmptyKey: "key is not provided", for Put, DeleteRange and Range.
#[test]
fn empty_key_is_invalid() {
    let request = Mutation::Put(PutRequest { key: "".into(), value: Bytes::new(), prev_kv: false });
    assert!(matches!(Mvcc::validate(&request), Err(StoreError::InvalidRequest { .. })));
    let delete = Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::Key("".into()), prev_kv: false });
    assert!(matches!(Mvcc::validate(&delete), Err(StoreError::InvalidRequest { .. })));
    // etcd v3rpc/key.go `checkRangeRequest`: a Range without a key is refused too; an
    // empty prefix is every key (etcd's `"\0"`..`"\0"`).
    let store = Mvcc::new();
    assert!(matches!(
        store.range(&RangeRequest::new(KeyRange::Key("".into()))),
        Err(StoreError::InvalidRequest { .. })
    ));
    assert!(store.range(&RangeRequest::new(KeyRange::Prefix("".into()))).is_ok());
}

/// etcd Txn: a range in the chosen branch at a compacted or future revision fails the whole
/// txn (`checkRequests`), and an error changes nothing.
#[test]
fn failing_txn_changes_nothing() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v");
    let digest = store.digest();
    let mut future = RangeRequest::new(KeyRange::Key("k".into()));
    future.revision = 10;
    let request =
        TxnRequest { compare: vec![], success: vec![put_op("x", "1"), RequestOp::Range(future)], failure: vec![] };
    assert_eq!(txn(&mut store, request).map(|_| ()), Err(StoreError::FutureRevision { requested: 10, current: 2 }));
    assert_eq!((store.current_revision(), store.digest(), get(&store, "x")), (2, digest, None));
}

/// etcd Compact: a revision above the current one is ErrFutureRev, at or below the
/// compacted one ErrCompacted; compaction writes nothing, so the revision does not move.
#[test]
fn compact_errors_and_does_not_bump_the_revision() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "1");
    put(&mut store, "k", "2");
    let compact = |store: &mut Mvcc, revision| store.apply(&Mutation::Compact(CompactRequest { revision }));
    assert_eq!(compact(&mut store, 4).map(|_| ()), Err(StoreError::FutureRevision { requested: 4, current: 3 }));
    let (response, events) = compact(&mut store, 2).unwrap();
    assert_eq!((response.header().revision, events.len(), store.current_revision()), (3, 0, 3));
    assert_eq!(store.compacted_revision(), 2);
    assert_eq!(compact(&mut store, 2).map(|_| ()), Err(StoreError::Compacted { requested: 2, compacted: 2 }));
    assert_eq!(compact(&mut store, 3).map(|_| ()), Ok(()));
}

/// etcd `keyIndex.compact`: history below the compaction revision is dropped except the
/// latest version of each key at or below it; keys deleted at or below it are gone; keys
/// and versions are unchanged for every read at or above it.
#[test]
fn compact_keeps_what_reads_at_or_after_it_need() {
    let mut store = Mvcc::new();
    put(&mut store, "live", "1"); // 2
    put(&mut store, "dead", "1"); // 3
    put(&mut store, "live", "2"); // 4
    delete(&mut store, KeyRange::Key("dead".into())); // 5
    put(&mut store, "live", "3"); // 6
    let before: Vec<_> = (5..=6).map(|r| store.keyspace_at(r).unwrap()).collect();
    let digest = store.digest();
    store.apply(&Mutation::Compact(CompactRequest { revision: 5 })).unwrap();
    let after: Vec<_> = (5..=6).map(|r| store.keyspace_at(r).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(store.digest(), digest);
    assert_eq!(get_at(&store, "live", 5).unwrap(), Some(kv("live", "2", 2, 4, 2)));
    assert_eq!(get(&store, "live"), Some(kv("live", "3", 2, 6, 3)));
    // A re-create after compaction starts a fresh generation.
    put(&mut store, "dead", "again");
    assert_eq!(get(&store, "dead"), Some(kv("dead", "again", 7, 7, 1)));
}

/// Members that apply the same mutations have the same digest; different contents differ;
/// a snapshot round-trips everything: keyspace, history since compaction, revisions.
#[test]
fn digest_and_snapshot_round_trip() {
    let mut a = Mvcc::new();
    let mut b = Mvcc::new();
    for store in [&mut a, &mut b] {
        put(store, "x", "1");
        put(store, "y", "1");
        put(store, "x", "2");
        store.apply(&Mutation::Compact(CompactRequest { revision: 3 })).unwrap();
    }
    assert_eq!(a.digest(), b.digest());
    put(&mut b, "y", "2");
    assert_ne!(a.digest(), b.digest());

    let encoded = bincode::serialize(&b.to_snapshot()).unwrap();
    let restored = Mvcc::from_snapshot(bincode::deserialize(&encoded).unwrap());
    assert_eq!(restored.digest(), b.digest());
    assert_eq!((restored.current_revision(), restored.compacted_revision()), (5, 3));
    assert_eq!(restored.keyspace_at(3), b.keyspace_at(3));
    let all = KeyRange::Prefix("".into());
    assert_eq!(restored.events(&all, 4, 0), b.events(&all, 4, 0));
    assert_eq!(restored.events(&all, 3, 0), b.events(&all, 3, 0));
    assert_eq!(restored.events(&all, 2, 0), Err(StoreError::Compacted { requested: 2, compacted: 3 }));
}

/// etcd RangeRequest.keys_only (etcdserver/apply.go `Range` clears each returned value):
/// the kvs come without values but with their create/mod revisions and version; `count`
/// and `more` are those of the same range without keys_only. With count_only as well,
/// count_only wins (no kvs at all).
#[test]
fn range_keys_only_drops_values_and_keeps_revisions() {
    let mut store = Mvcc::new();
    put(&mut store, "a", "1"); // 2
    put(&mut store, "b", "1"); // 3
    put(&mut store, "a", "2"); // 4
    let mut req = RangeRequest::new(KeyRange::Prefix("".into()));
    req.keys_only = true;
    req.limit = 1;
    let response = store.range(&req).unwrap();
    assert_eq!(response.kvs, vec![kv("a", "", 2, 4, 2)]);
    assert_eq!((response.count, response.more, response.header.revision), (2, true, 4));
    req.revision = 3;
    req.limit = 0;
    assert_eq!(store.range(&req).unwrap().kvs, vec![kv("a", "", 2, 2, 1), kv("b", "", 3, 3, 1)]);
    req.count_only = true;
    let response = store.range(&req).unwrap();
    assert_eq!((response.kvs.len(), response.count, response.more), (0, 2, false));
}

/// etcd from-key ranges (`range_end = "\0"`, clientv3 `WithFromKey`, `etcdctl get
/// --from-key`; etcdserver/apply.go `mkGteRange`): every key at or after the key, for
/// Range, DeleteRange, watch history and limits alike; an empty key is refused as etcd
/// refuses it ("key is not provided"), and `"\0"` is every key.
#[test]
fn from_key_ranges_reach_every_key_at_or_after_the_key() {
    let mut store = Mvcc::new();
    for key in ["a", "b", "b/1", "c"] {
        put(&mut store, key, "x"); // 2..=5
    }
    let range = |store: &Mvcc, r: KeyRange, limit: usize| {
        let mut req = RangeRequest::new(r);
        req.limit = limit;
        let response = store.range(&req).unwrap();
        (keys(&response.kvs).iter().map(|k| k.to_string()).collect::<Vec<_>>(), response.count, response.more)
    };
    assert_eq!(range(&store, KeyRange::FromKey("b".into()), 0), (vec!["b".into(), "b/1".into(), "c".into()], 3, false));
    assert_eq!(range(&store, KeyRange::FromKey("b".into()), 2), (vec!["b".into(), "b/1".into()], 3, true));
    assert_eq!(range(&store, KeyRange::FromKey("\0".into()), 0).1, 4);
    assert_eq!(range(&store, KeyRange::FromKey("d".into()), 0), (vec![], 0, false));
    let revisions = |events: Vec<Event>| events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>();
    assert_eq!(revisions(store.events(&KeyRange::FromKey("b/".into()), 2, 0).unwrap()), [4, 5]);
    let empty = Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::FromKey("".into()), prev_kv: false });
    assert!(matches!(Mvcc::validate(&empty), Err(StoreError::InvalidRequest { .. })));
    let (response, events) = delete(&mut store, KeyRange::FromKey("b/".into()));
    assert_eq!((response.deleted, keys(&response.prev_kvs), events.len()), (2, vec!["b/1", "c"], 2));
    assert_eq!(keys(&store.keyspace_at(0).unwrap()), ["a", "b"]);
}

/// A RangeRequest without keys_only encodes as it did before keys_only existed (entry
/// sizes feed the simulation), and both flags round-trip.
#[test]
fn range_request_encoding_is_unchanged_without_keys_only() {
    #[derive(serde::Serialize)]
    struct Before {
        range: KeyRange,
        revision: Revision,
        limit: usize,
        serializable: bool,
        count_only: bool,
    }
    for count_only in [false, true] {
        let mut request = RangeRequest::new(KeyRange::Prefix("/registry/".into()));
        request.count_only = count_only;
        request.limit = 7;
        let before = Before { range: request.range.clone(), revision: 0, limit: 7, serializable: false, count_only };
        assert_eq!(bincode::serialize(&request).unwrap(), bincode::serialize(&before).unwrap());
        for keys_only in [false, true] {
            request.keys_only = keys_only;
            let decoded: RangeRequest = bincode::deserialize(&bincode::serialize(&request).unwrap()).unwrap();
            assert_eq!(decoded, request);
        }
    }
}
