//! The checkers on real histories: the `store-smoke` scenario (three members, a client
//! workload, a leader crash) must pass every store checker, and each must have examined
//! something (no vacuous pass).

use madsim::runtime::{Handle, Runtime};
use sim::addresses;
use sim::checkers::{check_all, CheckInput, EndState, Invariant, Verdict};
use sim::history::History;
use sim::membership::StoreOptions;
use sim::nodes::SeedNodes;
use sim::recorder::Recorder;
use sim::scenario::store_smoke;
use store::api::{KeyRange, MemberId, Principal, RangeRequest};
use store::client::{StoreClient, StoreClientConfig};

const N_MEMBERS: u64 = 3;

/// What `sim::runner::run_seed` does, keeping the history, plus a final read of the
/// keyspace from a client node once the scenario (and its catch-up pause) is over.
fn run_store_smoke(seed: u64, store: StoreOptions) -> (History, Option<EndState>) {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let recorder = Recorder::new();
    let end_state = runtime.block_on({
        let recorder = recorder.clone();
        async move {
            store_smoke::run(recorder, &SeedNodes::new(), store, None).await;
            read_end_state().await
        }
    });
    (recorder.finish(), end_state)
}

/// A linearizable read of every key under "/" (an empty prefix may be refused), by a
/// read-only principal; None if the store does not answer.
async fn read_end_state() -> Option<EndState> {
    let node = Handle::current().create_node().name("end-state-reader").ip(addresses::client(200)).build();
    node.spawn(async move {
        let members = (1..=N_MEMBERS).map(MemberId).map(|id| (id, addresses::store_member(id))).collect();
        let client = StoreClient::connect(members, Principal::reader("end-state-reader"), StoreClientConfig::default())
            .await
            .ok()?;
        let response = client.range(RangeRequest::new(KeyRange::Prefix("/".into()))).await.ok()?;
        Some(EndState { revision: response.header.revision, keyspace: response.kvs, read_at_ns: u64::MAX })
    })
    .await
    .expect("end-state reader task")
}

fn check_store_smoke(seed: u64, store: StoreOptions) -> Vec<Verdict> {
    let (history, end_state) = run_store_smoke(seed, store);
    assert!(!history.overflowed, "seed {seed}: history overflowed");
    let input = CheckInput {
        history: &history,
        end_state: end_state.as_ref(),
        // In store-smoke the workload plays the apiserver.
        apiserver_sources: vec![addresses::WORKLOAD],
    };
    check_all(&input)
}

fn three_members() -> StoreOptions {
    StoreOptions { n_members: N_MEMBERS as usize, ..StoreOptions::default() }
}

/// Kubernetes-level invariants, and lease expiry: only the apiserver's Events use leases.
const KUBERNETES_INVARIANTS: [Invariant; 11] = [
    Invariant::ControllerSingleLeader,
    Invariant::WatchGuarantees,
    Invariant::PodBoundOnce,
    Invariant::Convergence,
    Invariant::InformerContinuity,
    Invariant::LeaseExpiry,
    Invariant::GarbageCollection,
    Invariant::ServiceIpsUnique,
    Invariant::NoLostUpdate,
    Invariant::RolloutBound,
    Invariant::Permissions,
];

/// The backup checkers judge restores; a store-smoke run without disk-loss faults has none.
const RESTORE_INVARIANTS: [Invariant; 2] = [Invariant::BackupRestoreEquality, Invariant::RestoreDurability];

#[test]
fn store_smoke_seeds_0_to_4_pass_every_store_checker_non_vacuously() {
    for seed in 0..5 {
        let verdicts = check_store_smoke(seed, three_members());
        assert_eq!(verdicts.len(), Invariant::ALL.len());
        for verdict in &verdicts {
            eprintln!("seed {seed}: {}: {}", verdict.invariant, verdict.summary);
            assert!(verdict.passed(), "seed {seed}: {} failed: {:#?}", verdict.invariant, verdict.violations);
            // The Kubernetes-level checkers have nothing to examine in a store-only run.
            if !KUBERNETES_INVARIANTS.contains(&verdict.invariant) && !RESTORE_INVARIANTS.contains(&verdict.invariant) {
                assert!(
                    verdict.checked > 0,
                    "seed {seed}: {} examined nothing: {}",
                    verdict.invariant,
                    verdict.summary
                );
            }
        }
    }
}
