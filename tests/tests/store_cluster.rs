//! A 3-member store cluster on simulated nodes: election, replication, failover, minority
//! partitions, crash recovery from the synced state, and disk corruption.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use madsim::runtime::{Handle, Runtime};
use sim::addresses;
use sim::cluster::StoreCluster;
use sim::history::HistoryEvent;
use sim::membership::StoreOptions;
use sim::nodes::SeedNodes;
use sim::recorder::Recorder;
use store::api::{KeyRange, MemberId, Principal, PutRequest, RangeRequest, StoreError};
use store::client::{StoreClient, StoreClientConfig};
use store::raft::Role;
use store::wal::WAL_FILE;

/// Runs `body` as the supervisor of a fresh simulation with a started 3-member cluster.
fn with_cluster<F, Fut>(seed: u64, body: F)
where
    F: FnOnce(StoreCluster, Recorder) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let recorder = Recorder::new();
        let cluster =
            StoreCluster::start(&StoreOptions { n_members: 3, ..Default::default() }, &recorder, &SeedNodes::new());
        body(cluster, recorder).await;
    });
}

/// A client on its own node, talking to `members` (all of the cluster unless narrowed).
async fn client_node(
    name: &str,
    host: u8,
    cluster: &StoreCluster,
    only: Option<MemberId>,
) -> (madsim::runtime::NodeHandle, StoreClient) {
    let node = Handle::current().create_node().name(name).ip(addresses::client(host)).build();
    let mut members = cluster.addresses();
    if let Some(m) = only {
        members.retain(|id, _| *id == m);
    }
    let client = node
        .spawn(async move {
            StoreClient::connect(members, Principal::apiserver("test-writer"), StoreClientConfig::default()).await
        })
        .await
        .unwrap()
        .unwrap();
    (node, client)
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: false }
}

/// The member that currently says it leads, asked through `client`.
async fn leader(node: &madsim::runtime::NodeHandle, client: &StoreClient, cluster: &StoreCluster) -> Option<MemberId> {
    for &id in cluster.members.keys() {
        let c = client.clone();
        if let Ok(Ok(s)) = node.spawn(async move { c.status(id).await }).await {
            if s.role == Role::Leader {
                return Some(id);
            }
        }
    }
    None
}

async fn wait_for_leader(node: &madsim::runtime::NodeHandle, client: &StoreClient, cluster: &StoreCluster) -> MemberId {
    for _ in 0..100 {
        if let Some(l) = leader(node, client, cluster).await {
            return l;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no leader elected within 20 s");
}

/// Puts `n` keys `prefix-i` sequentially; returns the acknowledged (key, revision) pairs.
async fn write_keys(
    node: &madsim::runtime::NodeHandle,
    client: &StoreClient,
    prefix: &str,
    n: usize,
) -> Vec<(String, i64)> {
    let (client, prefix) = (client.clone(), prefix.to_string());
    node.spawn(async move {
        let mut acked = Vec::new();
        for i in 0..n {
            let key = format!("{prefix}-{i:04}");
            if let Ok(r) = client.put(put(&key, &format!("v{i}"))).await {
                acked.push((key, r.header.revision));
            }
        }
        acked
    })
    .await
    .unwrap()
}

async fn assert_all_readable(node: &madsim::runtime::NodeHandle, client: &StoreClient, acked: &[(String, i64)]) {
    let (client, acked) = (client.clone(), acked.to_vec());
    node.spawn(async move {
        for (key, revision) in acked {
            let r = client.range(RangeRequest::new(KeyRange::Key(key.clone()))).await.unwrap();
            let kv = r.kvs.first().unwrap_or_else(|| panic!("acknowledged key {key} lost"));
            assert_eq!(kv.mod_revision, revision, "{key} acknowledged at {revision}");
        }
    })
    .await
    .unwrap();
}

/// Waits until every listed member reports the same revision and keyspace digest.
async fn assert_members_converge(node: &madsim::runtime::NodeHandle, client: &StoreClient, members: &[MemberId]) {
    let mut last = Vec::new();
    for _ in 0..50 {
        last.clear();
        for &id in members {
            let c = client.clone();
            let s = node.spawn(async move { c.status(id).await }).await.unwrap();
            last.push(s.map(|s| (s.revision, s.keyspace_digest)).ok());
        }
        if last.iter().all(|s| s.is_some() && *s == last[0]) {
            return;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("members {members:?} did not converge: {last:?}");
}

#[test]
fn three_members_elect_a_leader_and_commit_1000_writes() {
    with_cluster(1, |cluster, recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        wait_for_leader(&node, &client, &cluster).await;
        let acked = write_keys(&node, &client, "/k", 1000).await;
        assert_eq!(acked.len(), 1000, "every write is acknowledged without faults");
        // etcd: revision starts at 1 and each put adds exactly 1.
        assert_eq!(acked.last().unwrap().1, 1001);
        assert_members_converge(&node, &client, &[MemberId(1), MemberId(2), MemberId(3)]).await;
        let leaders: Vec<_> = recorder
            .snapshot()
            .events()
            .filter_map(|(_, e)| match e {
                HistoryEvent::RoleChanged { term, role: Role::Leader, member, .. } => Some((*term, *member)),
                _ => None,
            })
            .collect();
        assert_eq!(leaders.len(), 1, "one election, one leader: {leaders:?}");
    });
}

#[test]
fn leader_killed_new_leader_elected_and_no_acknowledged_write_lost() {
    with_cluster(2, |cluster, _recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        let old_leader = wait_for_leader(&node, &client, &cluster).await;
        let mut acked = write_keys(&node, &client, "/before", 200).await;
        Handle::current().kill(cluster.member(old_leader).node.id());
        madsim::time::sleep(Duration::from_secs(3)).await;
        let new_leader = wait_for_leader(&node, &client, &cluster).await;
        assert_ne!(new_leader, old_leader);
        acked.extend(write_keys(&node, &client, "/after", 200).await);
        assert!(acked.len() >= 390, "the survivors keep committing: {} acknowledged", acked.len());
        assert_all_readable(&node, &client, &acked).await;
    });
}

#[test]
fn a_minority_partition_cannot_commit() {
    with_cluster(3, |cluster, _recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        let leader = wait_for_leader(&node, &client, &cluster).await;
        write_keys(&node, &client, "/warmup", 10).await;
        // Cut the leader off from both followers: it is a minority of one.
        let net = madsim::net::NetSim::current();
        for (&id, m) in &cluster.members {
            if id != leader {
                net.clog_link(cluster.member(leader).node.id(), m.node.id());
                net.clog_link(m.node.id(), cluster.member(leader).node.id());
            }
        }
        let (minority_node, minority_client) = client_node("minority-writer", 2, &cluster, Some(leader)).await;
        let result = minority_node
            .spawn(async move { minority_client.put(put("/minority", "must-not-commit")).await })
            .await
            .unwrap();
        assert!(result.is_err(), "a put through the isolated member must not be acknowledged: {result:?}");
        // The majority elects a new leader and commits.
        madsim::time::sleep(Duration::from_secs(3)).await;
        let majority_acked = write_keys(&node, &client, "/majority", 20).await;
        assert_eq!(majority_acked.len(), 20);
        for (&id, m) in &cluster.members {
            if id != leader {
                net.unclog_link(cluster.member(leader).node.id(), m.node.id());
                net.unclog_link(m.node.id(), cluster.member(leader).node.id());
            }
        }
        assert_members_converge(&node, &client, &[MemberId(1), MemberId(2), MemberId(3)]).await;
        let c = client.clone();
        let r = node
            .spawn(async move { c.range(RangeRequest::new(KeyRange::Key("/minority".into()))).await })
            .await
            .unwrap();
        assert!(r.unwrap().kvs.is_empty(), "the minority's proposal never committed");
    });
}

#[test]
fn a_member_crashed_with_unsynced_writes_restarts_from_its_synced_state_and_catches_up() {
    with_cluster(4, |cluster, recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        let leader = wait_for_leader(&node, &client, &cluster).await;
        let follower = *cluster.members.keys().find(|id| **id != leader).unwrap();
        let writer = {
            let (node, client) = (node.clone(), client.clone());
            madsim::task::spawn(async move { write_keys(&node, &client, "/k", 400).await })
        };
        // Crash the follower at an instant when it has written but not yet fsynced.
        let disk = cluster.member(follower).disk.clone();
        let mut waited = 0;
        while disk.file_len(WAL_FILE, false) == disk.file_len(WAL_FILE, true) {
            madsim::time::sleep(Duration::from_micros(100)).await;
            waited += 1;
            assert!(waited < 100_000, "the follower never had unsynced WAL data");
        }
        let synced_len = disk.file_len(WAL_FILE, true).unwrap();
        let slot = cluster.slot_of(follower).expect("the follower runs a slot");
        cluster.crash(slot, Some(7));
        let after_crash_len = disk.file_len(WAL_FILE, false).unwrap();
        assert!(after_crash_len >= synced_len, "synced data survives a crash");
        madsim::time::sleep(Duration::from_secs(2)).await;
        cluster.restart(slot);
        let acked = writer.await.unwrap();
        assert_eq!(acked.len(), 400, "two members keep acknowledging");
        assert_members_converge(&node, &client, &[MemberId(1), MemberId(2), MemberId(3)]).await;
        let restarts: Vec<_> = recorder
            .snapshot()
            .events()
            .filter_map(|(_, e)| match e {
                HistoryEvent::MemberStarted { member, recovered_entries, .. } if *member == follower => {
                    Some(*recovered_entries)
                }
                _ => None,
            })
            .collect();
        assert_eq!(restarts.len(), 2, "started, then restarted once");
        assert!(restarts[1] > 0, "the restarted follower recovered its synced log");
    });
}

#[test]
fn a_followers_disk_corruption_is_detected_and_not_served() {
    with_cluster(5, |cluster, recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        let leader = wait_for_leader(&node, &client, &cluster).await;
        let follower = *cluster.members.keys().find(|id| **id != leader).unwrap();
        write_keys(&node, &client, "/k", 100).await;
        let slot = cluster.slot_of(follower).expect("the follower runs a slot");
        cluster.crash(slot, None);
        let disk = &cluster.member(follower).disk;
        let len = disk.file_len(WAL_FILE, true).unwrap();
        // Flip bits in the middle of the synced log: a complete record with a bad checksum.
        disk.corrupt(WAL_FILE, len / 2, 0x5a).unwrap();
        cluster.restart(slot);
        madsim::time::sleep(Duration::from_secs(1)).await;
        let failed = recorder.snapshot().events().any(|(_, e)| {
            matches!(e, HistoryEvent::MemberFailed { member, reason } if *member == follower && reason.contains("corrupt"))
        });
        assert!(failed, "the corrupted member reports the corruption and refuses to start");
        let c = client.clone();
        let status = node.spawn(async move { c.status(follower).await }).await.unwrap();
        assert!(status.is_err(), "the corrupted member serves nothing: {status:?}");
        let acked = write_keys(&node, &client, "/after", 50).await;
        assert_eq!(acked.len(), 50, "the two healthy members still commit");
    });
}

#[test]
fn only_the_apiserver_role_may_mutate_the_store() {
    with_cluster(6, |cluster, recorder| async move {
        let (node, client) = client_node("writer", 1, &cluster, None).await;
        wait_for_leader(&node, &client, &cluster).await;
        write_keys(&node, &client, "/k", 5).await;
        let members = cluster.addresses();
        let rogue = Handle::current().create_node().name("rogue").ip(addresses::client(9)).build();
        let result = rogue
            .spawn(async move {
                let c = StoreClient::connect(members, Principal::other("kubelet-1"), StoreClientConfig::default())
                    .await
                    .unwrap();
                let write = c.put(put("/registry/pods/default/evil", "x")).await;
                let read = c.range(RangeRequest::new(KeyRange::Prefix("/k".into()))).await;
                (write, read)
            })
            .await
            .unwrap();
        assert!(matches!(result.0, Err(StoreError::PermissionDenied { .. })), "{:?}", result.0);
        let read = result.1.expect("reads are allowed");
        assert_eq!(read.header.revision, 6, "the refused write changed nothing");
        let rejected = recorder
            .snapshot()
            .events()
            .any(|(_, e)| matches!(e, HistoryEvent::StoreRejected { principal, .. } if principal == "kubelet-1"));
        assert!(rejected, "the refusal is recorded");
    });
}
