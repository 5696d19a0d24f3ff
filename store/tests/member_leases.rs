//! Lease expiry on running members (etcd server/lease/lessor.go and the server loop that
//! revokes what it reports): only the leader expires leases, on its clock; a keep-alive
//! pushes the expiry one TTL out; time-to-live reports the leader's view; a new leader
//! extends every lease on promotion.

#[path = "support/members.rs"]
mod members;

use std::time::Duration;

use bytes::Bytes;
use madsim::time::Instant;
use store::api::*;
use store::client::StoreClient;
use store::raft::Role;

fn leased(key: &str, lease: i64) -> LeasedPutRequest {
    LeasedPutRequest { put: PutRequest { key: key.into(), value: Bytes::from_static(b"v"), prev_kv: false }, lease }
}

async fn exists(client: &StoreClient, key: &str) -> bool {
    !client.range(RangeRequest::new(KeyRange::Key(key.into()))).await.unwrap().kvs.is_empty()
}

/// Polls every 100 ms until `key` is gone; returns when (None after `limit`).
async fn gone_at(client: &StoreClient, key: &str, limit: Duration) -> Option<Instant> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if !exists(client, key).await {
            return Some(Instant::now());
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Each key under `prefix` at `revision` (0: now) with the lease its version names.
async fn key_leases(client: &StoreClient, prefix: &str, revision: Revision) -> Vec<(String, i64)> {
    let mut request = RangeRequest::new(KeyRange::Prefix(prefix.into()));
    request.revision = revision;
    let kvs = client.range(request).await.unwrap().kvs;
    kvs.into_iter().map(|kv| (kv.key, kv.lease)).collect()
}

async fn leader(client: &StoreClient, ids: &[MemberId]) -> Option<MemberId> {
    for &id in ids {
        if let Ok(status) = client.status(id).await {
            if status.role == Role::Leader {
                return Some(id);
            }
        }
    }
    None
}

/// lessor.go: a lease nobody renews expires one TTL after its grant on the leader's clock
/// (found by the 500 ms expiry check), and its revoke deletes its keys in one revision on
/// every member; never earlier than the TTL.
#[test]
fn an_unrenewed_lease_expires_after_its_ttl_and_deletes_its_keys() {
    for n in [1, 3] {
        members::with_members(18, n, |members| async move {
            members
                .call(|client| async move {
                    let sent = Instant::now();
                    let lease = client.lease_grant(0, 3).await.unwrap();
                    let granted = Instant::now();
                    client.leased_put(leased("/e/a", lease.id)).await.unwrap(); // 2
                    client.leased_put(leased("/e/b", lease.id)).await.unwrap(); // 3
                    let gone = gone_at(&client, "/e/a", Duration::from_secs(10)).await.expect("lease never expired");
                    assert!(gone - sent >= Duration::from_secs(3), "expired after {:?}", gone - sent);
                    assert!(gone - granted <= Duration::from_millis(4500), "expired only after {:?}", gone - granted);
                    assert!(!exists(&client, "/e/b").await);
                    let watch =
                        WatchRequest { range: KeyRange::Prefix("/e/".into()), start_revision: 4, prev_kv: false };
                    let events = client.watch_poll(watch, 100, Duration::from_millis(10)).await.unwrap().events;
                    let deletes: Vec<_> = events.iter().map(|e| (e.kind, e.kv.mod_revision)).collect();
                    assert_eq!(deletes, [(EventKind::Delete, 4), (EventKind::Delete, 4)]);
                    assert!(client.lease_leases().await.unwrap().leases.is_empty());
                })
                .await;
        });
    }
}

/// lessor.go `Renew` and v3rpc/lease.go: keep-alives hold a lease past its TTL; its
/// time-to-live counts down on the leader's clock and lists the keys; an unknown lease's
/// keep-alive answers TTL 0 and its time-to-live TTL -1; once the keep-alives stop, the
/// lease expires one TTL after the last one.
#[test]
fn keep_alives_hold_a_lease_and_time_to_live_reports_the_leaders_view() {
    members::with_members(18, 3, |members| async move {
        members
            .call(|client| async move {
                let lease = client.lease_grant(42, 4).await.unwrap();
                assert_eq!((lease.id, lease.ttl_secs), (42, 4));
                client.leased_put(leased("/e/k", 42)).await.unwrap();
                let mut last_renewal = Instant::now();
                for _ in 0..8 {
                    madsim::time::sleep(Duration::from_secs(1)).await;
                    let renewed = client.lease_keep_alive(42).await.unwrap();
                    last_renewal = Instant::now();
                    assert_eq!(renewed.ttl_secs, 4);
                }
                assert!(exists(&client, "/e/k").await, "a renewed lease expired");
                madsim::time::sleep(Duration::from_millis(1500)).await;
                let ttl = client.lease_time_to_live(42, true).await.unwrap();
                assert_eq!((ttl.granted_ttl_secs, ttl.keys.clone()), (4, vec!["/e/k".to_string()]));
                assert!((1..=3).contains(&ttl.ttl_secs), "{ttl:?}");
                assert_eq!(client.lease_time_to_live(7, false).await.unwrap().ttl_secs, -1);
                assert_eq!(client.lease_keep_alive(7).await.unwrap().ttl_secs, 0);
                let gone = gone_at(&client, "/e/k", Duration::from_secs(10)).await.expect("lease never expired");
                assert!(
                    gone - last_renewal >= Duration::from_secs(4),
                    "expired {:?} after the last renewal",
                    gone - last_renewal
                );
                assert!(
                    gone - last_renewal <= Duration::from_millis(5500),
                    "expired {:?} after the last renewal",
                    gone - last_renewal
                );
            })
            .await;
    });
}

/// etcdserver/raft.go + lessor.go `Promote(electionTimeout)`: when the leader dies, the
/// new leader (which never saw the old one's renewals) refreshes every lease to its full
/// TTL plus an election timeout from its promotion, so the lease outlives the old
/// leader's expiry instead of expiring at once; it still expires in the end.
#[test]
fn a_new_leader_extends_leases_on_promotion() {
    members::with_members(18, 3, |members| async move {
        let ids: Vec<MemberId> = members.addresses.keys().copied().collect();
        let (old_leader, renewed_at) = members
            .call({
                let ids = ids.clone();
                |client| async move {
                    let lease = client.lease_grant(9, 6).await.unwrap();
                    client.leased_put(leased("/e/p", lease.id)).await.unwrap();
                    madsim::time::sleep(Duration::from_secs(2)).await;
                    client.lease_keep_alive(9).await.unwrap();
                    (leader(&client, &ids).await.expect("a leader"), Instant::now())
                }
            })
            .await;
        madsim::time::sleep(Duration::from_secs(1)).await;
        let node = members.member_nodes[(old_leader.get() - 1) as usize].id();
        madsim::runtime::Handle::current().kill(node);
        let survivors: Vec<MemberId> = ids.iter().copied().filter(|id| *id != old_leader).collect();
        let mut endpoints = members.addresses.clone();
        endpoints.remove(&old_leader);
        members
            .call(move |client| async move {
                // Reads would otherwise wait out a timeout on the dead member in turn.
                client.set_endpoints(endpoints);
                let mut promoted = None;
                for _ in 0..100 {
                    if leader(&client, &survivors).await.is_some() {
                        promoted = Some(Instant::now());
                        break;
                    }
                    madsim::time::sleep(Duration::from_millis(100)).await;
                }
                let promoted = promoted.expect("no new leader");
                // The old leader would have expired it 6 s after the renewal.
                let old_expiry = renewed_at + Duration::from_secs(6);
                madsim::time::sleep(old_expiry.saturating_duration_since(Instant::now()) + Duration::from_millis(600))
                    .await;
                assert!(exists(&client, "/e/p").await, "the lease expired at the old leader's expiry");
                let ttl = client.lease_time_to_live(9, false).await.unwrap();
                assert!(ttl.ttl_secs >= 1, "{ttl:?}");
                let gone = gone_at(&client, "/e/p", Duration::from_secs(15)).await.expect("lease never expired");
                // Full TTL plus the 1 s election timeout from the promotion (seen a little
                // after it), plus the 500 ms expiry check and the revoke's commit.
                assert!(gone >= promoted + Duration::from_secs(6), "expired {:?} after promotion", gone - promoted);
                assert!(
                    gone <= promoted + Duration::from_millis(8500),
                    "expired {:?} after promotion",
                    gone - promoted
                );
            })
            .await;
    });
}

/// Leases are replicated state (etcd persists them in its `lease` bucket): a member that
/// restarts, from a snapshot file plus the WAL after it, still has every lease and which
/// keys each holds, every key version still names the lease it was put with (etcd's
/// `kv.lease`, in the key bucket), and a revoke after the restart deletes them; a lease's
/// expiry is not persisted, the restarted leader's promotion gives every lease a fresh TTL.
#[test]
fn leases_survive_a_restart_from_snapshot_and_wal() {
    members::with_configured_members(
        18,
        1,
        |config| config.snapshot_every_entries = 4,
        |members| async move {
            members
                .call(|client| async move {
                    client.lease_grant(77, 60).await.unwrap();
                    for i in 0..6 {
                        client.leased_put(leased(&format!("/e/{i}"), 77)).await.unwrap();
                    }
                    client.lease_grant(78, 60).await.unwrap(); // after the latest snapshot
                    client.leased_put(leased("/e/late", 78)).await.unwrap();
                })
                .await;
            let node = members.member_nodes[0].id();
            // Killed first so that its sockets are released (madsim's restart alone keeps
            // them bound), then started again on the same disk.
            madsim::runtime::Handle::current().kill(node);
            madsim::runtime::Handle::current().restart(node);
            madsim::time::sleep(Duration::from_secs(3)).await;
            members
                .call(|client| async move {
                    let mut leases = None;
                    for _ in 0..50 {
                        if let Ok(listed) = client.lease_leases().await {
                            leases = Some(listed.leases);
                            break;
                        }
                        madsim::time::sleep(Duration::from_millis(200)).await;
                    }
                    assert_eq!(leases, Some(vec![77, 78]));
                    let ttl = client.lease_time_to_live(77, true).await.unwrap();
                    assert_eq!(ttl.keys.len(), 6, "{ttl:?}");
                    assert!(ttl.ttl_secs >= 59, "{ttl:?}");
                    let before_revoke = key_leases(&client, "/e/", 0).await;
                    let mut expected: Vec<(String, i64)> = (0..6).map(|i| (format!("/e/{i}"), 77)).collect();
                    expected.push(("/e/late".into(), 78));
                    assert_eq!(before_revoke, expected);
                    let revoked = client.lease_revoke(77).await.unwrap();
                    assert_eq!(revoked.header.revision, 9, "one revision for the six deletes");
                    assert_eq!(key_leases(&client, "/e/", 0).await, [("/e/late".to_string(), 78)]);
                    assert_eq!(key_leases(&client, "/e/", 8).await, expected, "the past keeps its leases");
                })
                .await;
        },
    );
}

/// A follower that was down while leases were granted and used catches up by
/// InstallSnapshot (the leader's log is compacted to its snapshot) and ends with the same
/// lease table as the others: the store digest, which covers leases once any exists,
/// agrees on every member, and the follower's own reads give each key the lease it was
/// put with.
#[test]
fn a_follower_catching_up_by_snapshot_gets_the_leases() {
    members::with_configured_members(
        18,
        3,
        |config| config.snapshot_every_entries = 4,
        |members| async move {
            let ids: Vec<MemberId> = members.addresses.keys().copied().collect();
            let leader_id = members
                .call({
                    let ids = ids.clone();
                    |client| async move { leader(&client, &ids).await.expect("a leader") }
                })
                .await;
            let follower = *ids.iter().find(|id| **id != leader_id).unwrap();
            let node = members.member_nodes[(follower.get() - 1) as usize].id();
            madsim::runtime::Handle::current().kill(node);
            let mut endpoints = members.addresses.clone();
            endpoints.remove(&follower);
            members
                .call(move |client| async move {
                    client.set_endpoints(endpoints);
                    client.lease_grant(5, 120).await.unwrap();
                    for i in 0..10 {
                        client.leased_put(leased(&format!("/e/{i}"), 5)).await.unwrap();
                    }
                })
                .await;
            madsim::runtime::Handle::current().restart(node);
            let all = members.addresses.clone();
            members
                .call(move |client| async move {
                    client.set_endpoints(all.clone());
                    let mut last = Vec::new();
                    for _ in 0..100 {
                        last.clear();
                        for &id in &ids {
                            if let Ok(status) = client.status(id).await {
                                last.push((id, status.revision, status.keyspace_digest, status.snapshot_index));
                            }
                        }
                        if last.len() == 3
                            && last.iter().all(|s| (s.1, s.2) == (last[0].1, last[0].2))
                            && last[0].1 == 11
                        {
                            break;
                        }
                        madsim::time::sleep(Duration::from_millis(200)).await;
                    }
                    assert!(last.len() == 3 && last.iter().all(|s| (s.1, s.2) == (last[0].1, last[0].2)), "{last:?}");
                    let follower_only = all.iter().filter(|(id, _)| **id == follower).map(|(i, a)| (*i, *a)).collect();
                    client.set_endpoints(follower_only);
                    let mut local_read = RangeRequest::new(KeyRange::Prefix("/e/".into()));
                    local_read.serializable = true;
                    let kvs = client.range(local_read).await.unwrap().kvs;
                    assert_eq!(kvs.len(), 10);
                    assert!(kvs.iter().all(|kv| kv.lease == 5), "{kvs:?}");
                    client.set_endpoints(all);
                    // The revoke still deletes all ten keys in one revision, everywhere.
                    assert_eq!(client.lease_revoke(5).await.unwrap().header.revision, 12);
                })
                .await;
        },
    );
}
