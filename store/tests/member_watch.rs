//! Watches served by a running member, as a client sees them: what the member puts in the
//! response header, and where a watch may start after a compaction.

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
