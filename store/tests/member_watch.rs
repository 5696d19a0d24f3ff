//! Watches and leases served by running members, as a client sees them: what the member
//! puts in a watch response's header, where a watch may start after a compaction, and a
//! lease revoke's deletes.

#[path = "support/members.rs"]
mod members;

use std::time::Duration;

use bytes::Bytes;
use store::api::*;

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: false }
}

fn watch(start_revision: Revision) -> WatchRequest {
    WatchRequest { range: KeyRange::Prefix("k".into()), start_revision, prev_kv: true }
}

/// etcd mvcc/watchable_store.go sends a compacted watch's cancellation with revision 0 and
/// the gRPC watch server copies that into the header (etcdserver/api/v3rpc/watch.go
/// `newResponseHeader(wresp.Revision)`): a watch below the compacted revision is
/// cancelled with header revision 0 and the compact revision. A watch exactly at the
/// compacted revision streams from it (its events without prev_kv, which would be read
/// below the compaction), with the member's current revision in the header.
#[test]
fn a_watch_below_the_compacted_revision_is_cancelled_with_header_revision_0() {
    for n in [1, 3] {
        members::with_members(18, n, |members| async move {
            members
                .call(|client| async move {
                    for value in ["1", "2", "3"] {
                        client.put(put("k", value)).await.unwrap(); // revisions 2, 3, 4
                    }
                    client.compact(3).await.unwrap();
                    let cancelled = client.watch_poll(watch(2), 100, Duration::from_millis(10)).await.unwrap();
                    assert!(cancelled.canceled, "{cancelled:?}");
                    assert_eq!(cancelled.header.revision, 0, "{cancelled:?}");
                    assert_eq!(cancelled.compact_revision, Some(3));
                    assert!(cancelled.events.is_empty());

                    let at = client.watch_poll(watch(3), 100, Duration::from_millis(10)).await.unwrap();
                    assert!(!at.canceled, "{at:?}");
                    assert_eq!((at.header.revision, at.compact_revision), (4, None));
                    let revisions: Vec<_> = at.events.iter().map(|e| e.kv.mod_revision).collect();
                    assert_eq!(revisions, [3, 4]);
                    assert_eq!(at.events[0].prev_kv, None);
                    assert_eq!(at.events[1].prev_kv.as_ref().map(|kv| kv.mod_revision), Some(3));
                })
                .await;
        });
    }
}

/// Leases through real members (1 and 3): a grant, puts attached to it, and a revoke that
/// deletes them in one revision, which a watch sees as one DELETE per key at that
/// revision; every member applies the same (the store digest agrees).
#[test]
fn a_revoked_lease_deletes_its_keys_in_one_revision_on_every_member() {
    for n in [1, 3] {
        members::with_members(18, n, |members| async move {
            members
                .call(|client| async move {
                    let granted = client.lease_grant(0, 30).await.unwrap();
                    assert_eq!((granted.id, granted.ttl_secs, granted.header.revision), (1, 30, 1));
                    for key in ["k/b", "k/a"] {
                        let put = LeasedPutRequest { put: put(key, "v"), lease: granted.id };
                        client.leased_put(put).await.unwrap(); // revisions 2, 3
                    }
                    let refused = LeasedPutRequest { put: put("k/c", "v"), lease: 99 };
                    assert!(client.leased_put(refused).await.is_err());
                    let revoked = client.lease_revoke(granted.id).await.unwrap();
                    assert_eq!(revoked.header.revision, 4);
                    let seen = client.watch_poll(watch(4), 100, Duration::from_millis(10)).await.unwrap();
                    let deletes: Vec<_> = seen.events.iter().map(|e| (e.kind, e.kv.key.as_str())).collect();
                    assert_eq!(deletes, [(EventKind::Delete, "k/a"), (EventKind::Delete, "k/b")]);
                    assert!(client.lease_revoke(granted.id).await.is_err());
                })
                .await;
            // Every member converges on the same state, leases included.
            let ids: Vec<MemberId> = members.addresses.keys().copied().collect();
            let mut digests = Vec::new();
            for _ in 0..50 {
                digests.clear();
                for &id in &ids {
                    let status = members.call(move |client| async move { client.status(id).await }).await.unwrap();
                    digests.push((status.revision, status.keyspace_digest));
                }
                if digests.iter().all(|d| *d == digests[0]) && digests[0].0 == 4 {
                    break;
                }
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
        });
    }
}
