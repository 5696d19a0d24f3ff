//! Runs real store members (Raft, WAL on a simulated disk, the member server) on madsim
//! nodes, with a client on a node of its own, for tests that must see what a client of
//! the replicated store sees (headers filled by the member, watches served by it).

// Shared by several test crates, each of which uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use madsim::runtime::{Handle, NodeHandle, Runtime};
use store::api::{KeyRange, MemberId, Principal, RangeRequest, StoreError};
use store::client::{StoreClient, StoreClientConfig};
use store::rpc::STORE_PORT;
use store::server::MemberConfig;
use store::wal::SimDisk;

/// A running cluster of `n` members (ids 1..=n) and a client that writes as the apiserver.
pub struct Members {
    pub addresses: BTreeMap<MemberId, SocketAddr>,
    /// The members' nodes, kept so that they run until the test ends.
    pub member_nodes: Vec<NodeHandle>,
    client_node: NodeHandle,
    client: StoreClient,
}

impl Members {
    /// Runs `call` with the client, on the client's node (madsim sockets belong to the
    /// node that bound them).
    pub async fn call<T, F, Fut>(&self, call: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(StoreClient) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let future = call(self.client.clone());
        self.client_node.spawn(future).await.expect("client task")
    }
}

/// Runs `body` in a fresh simulation (seed `seed`) once `n` members have elected a leader
/// that serves linearizable reads. Nothing is written before `body` runs, so the store is
/// at revision 1, as a fresh etcd is.
pub fn with_members<F, Fut>(seed: u64, n: u64, body: F)
where
    F: FnOnce(Members) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    with_configured_members(seed, n, |_| {}, body)
}

/// [`with_members`] with each member's configuration adjusted by `configure` first.
pub fn with_configured_members<C, F, Fut>(seed: u64, n: u64, configure: C, body: F)
where
    C: Fn(&mut MemberConfig) + 'static,
    F: FnOnce(Members) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let addresses: BTreeMap<MemberId, SocketAddr> =
            (1..=n).map(|id| (MemberId(id), SocketAddr::from(([10, 0, 1, id as u8], STORE_PORT)))).collect();
        let mut member_nodes = Vec::new();
        for &id in addresses.keys() {
            let mut config = MemberConfig::new(id, addresses.clone());
            configure(&mut config);
            let disk = SimDisk::new();
            let node = Handle::current()
                .create_node()
                .name(format!("store-{}", id.get()))
                .ip(addresses[&id].ip())
                .init(move || {
                    let (config, disk) = (config.clone(), disk.clone());
                    async move {
                        let result = store::server::run(config, disk, None).await;
                        panic!("member stopped: {result:?}");
                    }
                })
                .build();
            member_nodes.push(node);
        }
        let client_node = Handle::current().create_node().name("client").ip([10, 0, 9, 1].into()).build();
        let members_for_client = addresses.clone();
        let client = client_node
            .spawn(async move {
                StoreClient::connect(
                    members_for_client,
                    Principal::apiserver("test-writer"),
                    StoreClientConfig::default(),
                )
                .await
            })
            .await
            .expect("client task")
            .expect("client endpoint");
        let members = Members { addresses, member_nodes, client_node, client };
        wait_for_linearizable_reads(&members).await;
        body(members).await;
    });
}

async fn wait_for_linearizable_reads(members: &Members) {
    for _ in 0..200 {
        let probe = members
            .call(|client| async move { client.range(RangeRequest::new(KeyRange::Key("probe".into()))).await })
            .await;
        match probe {
            Ok(_) => return,
            Err(StoreError::NotLeader { .. } | StoreError::Unavailable { .. } | StoreError::UnknownOutcome { .. }) => {
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("probe read: {e}"),
        }
    }
    panic!("no member served a linearizable read within 20 s");
}
