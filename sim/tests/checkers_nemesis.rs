//! The checkers on real runs under a harsher nemesis than store-smoke's single leader
//! crash: the whole cluster crashes at once, repeatedly (a power loss), or the leader is
//! cut off from its peers but not from clients. Without a planted bug every store checker
//! passes, non-vacuously: thousands of applications across restarts, operations with
//! unknown outcomes, several terms.
//!
//! The store's planted bugs are exposed on real runs by the default campaign's faults
//! (power loss, partitions) in `tests/tests/planted_bugs_store.rs`; these nemeses only
//! show that a correct store passes every store checker.
//!
//! The scenario lives here, not in `sim::scenario`, because it exists to test checkers;
//! when the nemesis lands it becomes a fault plan.

use std::collections::BTreeMap;
use std::time::Duration;

use madsim::rand::Rng;
use madsim::runtime::{Handle, Runtime};
use sim::addresses;
use sim::checkers::{check_all, CheckInput, EndState, Invariant, Verdict};
use sim::cluster::StoreCluster;
use sim::history::{HistoryEvent, StoreOpKind};
use sim::membership::StoreOptions;
use sim::nodes::SeedNodes;
use sim::recorder::Recorder;
use sim::store_traffic;
use store::api::{KeyRange, MemberId, Principal, RangeRequest};
use store::client::{StoreClient, StoreClientConfig};
use store::raft::Role;
use store::server::StoreBugs;

const N_WORKERS: usize = 3;
const N_KEYS: usize = 8;
const SAFETY_PHASE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug)]
enum Nemesis {
    /// Every member crashes at the same instant (unsynced writes lost, the last one
    /// possibly torn) and restarts 300 ms later, every 1-3 s.
    PowerLoss,
    /// The current leader loses its links to the other members (not to clients) for 3 s,
    /// every 4-6 s.
    IsolateLeader,
}

fn run(seed: u64, bugs: StoreBugs, nemesis: Nemesis) -> Vec<Verdict> {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let recorder = Recorder::new();
    let end_state = runtime.block_on({
        let recorder = recorder.clone();
        async move {
            let options = StoreOptions { n_members: 3, bugs, ..StoreOptions::default() };
            let cluster = StoreCluster::start(&options, &recorder, &SeedNodes::new());
            let workload = Handle::current().create_node().name("workload").ip(addresses::WORKLOAD).build();
            let mut workers = Vec::new();
            for worker_idx in 0..N_WORKERS {
                let (members, recorder) = (cluster.addresses(), recorder.clone());
                workers.push(workload.spawn(async move {
                    let client = StoreClient::connect(
                        members,
                        Principal::apiserver(format!("workload-{worker_idx}")),
                        StoreClientConfig::default(),
                    )
                    .await
                    .expect("bind workload endpoint");
                    run_worker(&client, &recorder, worker_idx).await;
                }));
            }
            run_nemesis(&cluster, &recorder, nemesis).await;
            for worker in workers {
                worker.await.expect("workload worker");
            }
            madsim::time::sleep(Duration::from_secs(5)).await;
            let members = cluster.addresses();
            workload.spawn(async move { read_end_state(members).await }).await.expect("end-state reader")
        }
    });
    let history = recorder.finish();
    check_all(&CheckInput {
        history: &history,
        end_state: end_state.as_ref(),
        apiserver_sources: vec![addresses::WORKLOAD],
    })
}

async fn run_worker(client: &StoreClient, recorder: &Recorder, worker_idx: usize) {
    let client_name = format!("workload-{worker_idx}");
    let start = madsim::time::Instant::now();
    let mut op_id = 0;
    while start.elapsed() < SAFETY_PHASE {
        op_id += 1;
        let (key_idx, is_read, think_ms) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(0..N_KEYS), rng.gen_bool(0.4), rng.gen_range(1..20u64))
        };
        let key = format!("/planted/key-{key_idx}");
        let op = if is_read {
            StoreOpKind::Get { key }
        } else {
            StoreOpKind::Put { key, value: format!("{client_name}-{op_id}") }
        };
        recorder.record(HistoryEvent::StoreOpInvoked { client: client_name.clone().into(), op_id, op: op.clone() });
        let outcome = store_traffic::execute(client, &op).await;
        recorder.record(HistoryEvent::StoreOpReturned { client: client_name.clone().into(), op_id, outcome });
        madsim::time::sleep(Duration::from_millis(think_ms)).await;
    }
}

async fn run_nemesis(cluster: &StoreCluster, recorder: &Recorder, nemesis: Nemesis) {
    let start = madsim::time::Instant::now();
    while start.elapsed() < SAFETY_PHASE {
        let (pause_ms, tear) = {
            let mut rng = madsim::rand::thread_rng();
            match nemesis {
                Nemesis::PowerLoss => (rng.gen_range(1000..3000u64), rng.gen::<u64>()),
                Nemesis::IsolateLeader => (rng.gen_range(4000..6000u64), 0),
            }
        };
        madsim::time::sleep(Duration::from_millis(pause_ms)).await;
        match nemesis {
            Nemesis::PowerLoss => {
                recorder.fault("power loss: every member crashes");
                // No member is replaced in this test: each initial member runs its slot.
                for &slot in cluster.current().keys() {
                    cluster.crash(slot, Some(tear));
                }
                madsim::time::sleep(Duration::from_millis(300)).await;
                for &slot in cluster.current().keys() {
                    cluster.restart(slot);
                }
            }
            Nemesis::IsolateLeader => {
                let Some(leader) = latest_leader(recorder) else {
                    continue;
                };
                recorder.fault(format!("isolate store-{} from its peers", leader.get()));
                let net = madsim::net::NetSim::current();
                let leader_node = cluster.member(leader).node.id();
                let peers: Vec<_> = cluster.members.values().filter(|m| m.id != leader).map(|m| m.node.id()).collect();
                for &peer in &peers {
                    net.clog_link(leader_node, peer);
                    net.clog_link(peer, leader_node);
                }
                madsim::time::sleep(Duration::from_secs(3)).await;
                for &peer in &peers {
                    net.unclog_link(leader_node, peer);
                    net.unclog_link(peer, leader_node);
                }
            }
        }
    }
}

fn latest_leader(recorder: &Recorder) -> Option<MemberId> {
    recorder.snapshot().records.iter().rev().find_map(|r| match r.event {
        HistoryEvent::RoleChanged { member, role: Role::Leader, .. } => Some(member),
        _ => None,
    })
}

async fn read_end_state(members: BTreeMap<MemberId, std::net::SocketAddr>) -> Option<EndState> {
    let client = StoreClient::connect(members, Principal::reader("end-state-reader"), StoreClientConfig::default())
        .await
        .ok()?;
    let response = client.range(RangeRequest::new(KeyRange::Prefix("/".into()))).await.ok()?;
    Some(EndState { revision: response.header.revision, keyspace: response.kvs, read_at_ns: u64::MAX })
}

#[track_caller]
fn assert_all_pass_non_vacuously(seed: u64, verdicts: &[Verdict]) {
    // A store-only run gives the Kubernetes-level checkers nothing to examine: they must
    // pass (vacuously); the five store invariants must pass having examined something.
    const STORE_INVARIANTS: [Invariant; 5] = [
        Invariant::StoreSingleWriter,
        Invariant::RaftElectionSafety,
        Invariant::RaftStateMachineSafety,
        Invariant::Linearizability,
        Invariant::NoAcknowledgedWriteLost,
    ];
    assert_eq!(verdicts.len(), Invariant::ALL.len());
    for verdict in verdicts {
        assert!(verdict.passed(), "seed {seed}: {} failed: {:#?}", verdict.invariant, verdict.violations);
        if STORE_INVARIANTS.contains(&verdict.invariant) {
            assert!(verdict.checked > 0, "seed {seed}: {} examined nothing: {}", verdict.invariant, verdict.summary);
        }
    }
}

#[test]
fn repeated_power_loss_of_the_whole_cluster_breaks_no_store_invariant() {
    for seed in 0..5 {
        let verdicts = run(seed, StoreBugs::default(), Nemesis::PowerLoss);
        assert_all_pass_non_vacuously(seed, &verdicts);
    }
}

#[test]
fn isolating_the_leader_from_its_peers_breaks_no_store_invariant() {
    for seed in 0..5 {
        let verdicts = run(seed, StoreBugs::default(), Nemesis::IsolateLeader);
        assert_all_pass_non_vacuously(seed, &verdicts);
    }
}
