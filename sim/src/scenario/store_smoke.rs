//! `store-smoke`: three store members, a client workload of puts, linearizable reads and
//! compare-and-puts, and one leader crash in the middle.
//!
//! It exercises the store alone (no apiserver): election, replication, failover, restart
//! from the synced state and catch-up. At the end every member must hold the same
//! keyspace and every acknowledged write must be readable at the revision it was
//! acknowledged with.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use madsim::rand::Rng;
use store::api::{
    Compare, CompareOp, KeyRange, MemberId, Principal, PutRequest, RangeRequest, RequestOp, Revision, TxnRequest,
};
use store::client::{StoreClient, StoreClientConfig};
use store::raft::Role;

use crate::checkers::Invariant;
use crate::cluster::{ip, StoreCluster, StoreOptions};
use crate::history::{HistoryEvent, StoreOpKind, StoreOpOutcome};
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::runner::SeedNode;
use crate::world::SimWorld;
use faults::FaultPlan;

pub const N_KEYS: usize = 16;
const N_WORKERS: usize = 3;
const WORKLOAD_DURATION: Duration = Duration::from_secs(20);
const CRASH_AT: Duration = Duration::from_secs(6);
const RESTART_AFTER: Duration = Duration::from_secs(3);

/// The scripted leader crash always happens; with a `plan`, the nemesis also applies it
/// while the workload runs through the safety phase.
pub async fn run(recorder: Recorder, store: StoreOptions, plan: Option<FaultPlan>) -> ScenarioOutcome {
    let cluster = StoreCluster::start(&store, &recorder);
    let members = cluster.addresses();
    let workload_duration = plan.as_ref().map_or(WORKLOAD_DURATION, |p| Duration::from_millis(p.safety_phase_ms));
    let settle = plan.as_ref().map_or(Duration::from_secs(5), |p| Duration::from_millis(p.liveness_phase_ms));

    let workload =
        madsim::runtime::Handle::current().create_node().name("workload").ip(ip(9, 1)).build().of_this_seed();
    let mut workers = Vec::new();
    for worker_idx in 0..N_WORKERS {
        let (members, recorder) = (members.clone(), recorder.clone());
        workers.push(workload.spawn(async move {
            let principal = Principal::apiserver(format!("workload-{worker_idx}"));
            let client = StoreClient::connect(members, principal, StoreClientConfig::default())
                .await
                .expect("bind workload endpoint");
            let name = format!("workload-{worker_idx}");
            run_worker(&client, &recorder, &name, "/smoke/", workload_duration, 5..40).await
        }));
    }

    // The scenario's own fault, one leader crash, always happens; a plan's faults come on
    // top of it.
    let nemesis = async {
        if let Some(plan) = &plan {
            faults::run(plan, SimWorld::for_store(&cluster, &recorder)).await;
        }
    };
    futures::join!(scripted_leader_crash(&cluster, &recorder), nemesis);

    let mut n_acknowledged = 0;
    for w in workers {
        n_acknowledged += w.await.expect("workload worker");
    }
    let checker = workload.spawn({
        let members = members.clone();
        let recorder = recorder.clone();
        async move { final_checks(members, &recorder, settle).await }
    });
    let mut checks = checker.await.expect("final checks");
    checks.insert(0, Check::info(format!("acknowledged writes: {n_acknowledged}")));
    let store_endpoints = cluster.endpoints().lock().expect("endpoints lock").clone();
    ScenarioOutcome { checks, timeline: timeline(&recorder), stats: Default::default(), store_endpoints }
}

async fn scripted_leader_crash(cluster: &StoreCluster, recorder: &Recorder) {
    madsim::time::sleep(CRASH_AT).await;
    // The history names members by id; the cluster crashes and restarts slots, which a
    // replacement would give to another member.
    let leader = current_leader(recorder).map(|member| (member, cluster.slot_of(member)));
    match leader {
        Some((_, Some(slot))) => {
            recorder.fault(format!("crash store-{slot} (the leader), losing unsynced writes"));
            let tear: u64 = madsim::rand::thread_rng().gen();
            cluster.crash(slot, Some(tear));
            madsim::time::sleep(RESTART_AFTER).await;
            recorder.fault(format!("restart store-{slot}"));
            cluster.restart(slot);
        }
        Some((member, None)) => recorder.note(format!("the leader, member {member}, runs no slot any more: no crash")),
        None => recorder.note("no leader to crash at the planned time"),
    }
}

/// One client's loop of etcd-robustness-style operations on `N_KEYS` keys under
/// `key_prefix` (puts with unique values, linearizable gets, compare-and-puts), each
/// recorded with its invoke and return; returns the number of acknowledged writes.
pub async fn run_worker(
    client: &StoreClient,
    recorder: &Recorder,
    client_name: &str,
    key_prefix: &str,
    duration: Duration,
    think_ms: std::ops::Range<u64>,
) -> usize {
    let client_name = client_name.to_string();
    let mut n_acknowledged = 0;
    let mut op_id = 0u64;
    let start = madsim::time::Instant::now();
    while start.elapsed() < duration {
        op_id += 1;
        let (key_idx, choice, think_ms) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(0..N_KEYS), rng.gen_range(0..10u32), rng.gen_range(think_ms.clone()))
        };
        let key = format!("{key_prefix}key-{key_idx:02}");
        let value = format!("{client_name}-{op_id}");
        let op = match choice {
            0..=4 => StoreOpKind::Put { key: key.clone(), value },
            5..=7 => StoreOpKind::Get { key: key.clone() },
            _ => {
                // Compare-and-put against the revision this client last read.
                let expected = match client.range(RangeRequest::new(KeyRange::Key(key.clone()))).await {
                    Ok(r) => r.kvs.first().map_or(0, |kv| kv.mod_revision),
                    Err(_) => 0,
                };
                StoreOpKind::CompareAndPut { key: key.clone(), expected_mod_revision: expected, value }
            }
        };
        recorder.record(HistoryEvent::StoreOpInvoked { client: client_name.clone(), op_id, op: op.clone() });
        let outcome = execute(client, &op).await;
        if matches!(outcome, StoreOpOutcome::Written { succeeded: true, .. }) {
            n_acknowledged += 1;
        }
        recorder.record(HistoryEvent::StoreOpReturned { client: client_name.clone(), op_id, outcome });
        madsim::time::sleep(Duration::from_millis(think_ms)).await;
    }
    n_acknowledged
}

pub async fn execute(client: &StoreClient, op: &StoreOpKind) -> StoreOpOutcome {
    use store::api::StoreError;
    let classify = |e: StoreError| match e {
        StoreError::UnknownOutcome { .. } => StoreOpOutcome::Unknown { error: e.to_string() },
        other => StoreOpOutcome::Failed { error: other.to_string() },
    };
    match op {
        StoreOpKind::Put { key, value } => {
            let put = PutRequest { key: key.clone(), value: Bytes::from(value.clone()), prev_kv: false };
            match client.put(put).await {
                Ok(r) => StoreOpOutcome::Written { revision: r.header.revision, succeeded: true },
                Err(e) => classify(e),
            }
        }
        StoreOpKind::Get { key } => match client.range(RangeRequest::new(KeyRange::Key(key.clone()))).await {
            Ok(r) => {
                let kv = r.kvs.first();
                StoreOpOutcome::Read {
                    revision: r.header.revision,
                    value: kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                    mod_revision: kv.map_or(0, |kv| kv.mod_revision),
                }
            }
            Err(e) => StoreOpOutcome::Failed { error: e.to_string() },
        },
        StoreOpKind::CompareAndPut { key, expected_mod_revision, value } => {
            let txn = TxnRequest {
                compare: vec![Compare::mod_revision(key.clone(), CompareOp::Equal, *expected_mod_revision)],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone(),
                    value: Bytes::from(value.clone()),
                    prev_kv: false,
                })],
                failure: vec![],
            };
            match client.txn(txn).await {
                Ok(r) => StoreOpOutcome::Written { revision: r.header.revision, succeeded: r.succeeded },
                Err(e) => classify(e),
            }
        }
    }
}

/// The member that most recently became leader, according to the history.
fn current_leader(recorder: &Recorder) -> Option<MemberId> {
    let history = recorder.snapshot();
    history.records.iter().rev().find_map(|r| match r.event {
        HistoryEvent::RoleChanged { member, role: Role::Leader, .. } => Some(member),
        _ => None,
    })
}

/// Leaders per term (the first member to lead each term), faults, and member restarts,
/// in simulated-time order.
fn timeline(recorder: &Recorder) -> Vec<String> {
    let history = recorder.snapshot();
    let mut terms_seen = std::collections::BTreeSet::new();
    let mut members_started = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    for (at_ns, e) in history.events() {
        let text = match e {
            HistoryEvent::RoleChanged { member, term, role: Role::Leader, .. } if terms_seen.insert(*term) => {
                format!("term {term}: leader store-{member}")
            }
            HistoryEvent::RoleChanged { member, term, role: Role::Leader, .. } => {
                format!("term {term}: ANOTHER leader store-{member}")
            }
            HistoryEvent::Fault { description } => format!("fault: {description}"),
            HistoryEvent::Note { text } => text.clone(),
            HistoryEvent::MemberStarted { member, .. } if members_started.insert(*member) => continue,
            HistoryEvent::MemberStarted { member, recovered_entries, torn_bytes } => {
                format!("store-{member} restarted: recovered {recovered_entries} log entries, truncated {torn_bytes} torn bytes")
            }
            HistoryEvent::MemberFailed { member, reason } => {
                format!("store-{member} stopped: {reason}")
            }
            _ => continue,
        };
        lines.push(format!("{:>9.3}s  {text}", at_ns as f64 / 1e9));
    }
    lines
}

/// Within `settle` after the workload stops, every member that is serving holds the same
/// keyspace (members whose disk failed are reported, not compared); every acknowledged
/// write is readable at its revision.
async fn final_checks(
    members: BTreeMap<MemberId, std::net::SocketAddr>,
    recorder: &Recorder,
    settle: Duration,
) -> Vec<Check> {
    let client = StoreClient::connect(members.clone(), Principal::reader("checker"), StoreClientConfig::default())
        .await
        .expect("bind checker endpoint");
    let failed: std::collections::BTreeSet<MemberId> = recorder
        .snapshot()
        .events()
        .filter_map(|(_, e)| match e {
            HistoryEvent::MemberFailed { member, .. } => Some(*member),
            _ => None,
        })
        .collect();
    let serving: Vec<MemberId> = members.keys().copied().filter(|m| !failed.contains(m)).collect();
    let mut checks = Vec::new();
    for m in &failed {
        checks.push(Check::info(format!("store-{m} refused to serve after a disk failure (excluded)")));
    }
    let start = madsim::time::Instant::now();
    let mut statuses = BTreeMap::new();
    loop {
        statuses.clear();
        for &id in &serving {
            if let Ok(s) = client.status(id).await {
                statuses.insert(id, (s.revision, s.keyspace_digest));
            }
        }
        let distinct: std::collections::BTreeSet<_> = statuses.values().collect();
        if distinct.len() == 1 && statuses.len() == serving.len() {
            let (revision, digest) = statuses.values().next().expect("non-empty");
            checks.push(Check::held(
                Invariant::Convergence,
                format!(
                    "members agree: all {} serving members at revision {revision}, keyspace digest {digest:016x}",
                    serving.len()
                ),
            ));
            break;
        }
        if start.elapsed() > settle {
            let detail: Vec<String> =
                statuses.iter().map(|(id, (rev, d))| format!("store-{id}: revision {rev} digest {d:016x}")).collect();
            checks.push(Check::violated(
                Invariant::Convergence,
                format!(
                    "members agree: not converged {}s after the faults healed: {}",
                    settle.as_secs(),
                    detail.join("; ")
                ),
            ));
            break;
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    checks.push(acknowledged_writes_readable(&client, recorder).await);
    checks
}

async fn acknowledged_writes_readable(client: &StoreClient, recorder: &Recorder) -> Check {
    let history = recorder.snapshot();
    let mut invoked: BTreeMap<(String, u64), StoreOpKind> = BTreeMap::new();
    let mut acknowledged: Vec<(String, String, Revision)> = Vec::new();
    for (_, e) in history.events() {
        match e {
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                invoked.insert((client.clone(), *op_id), op.clone());
            }
            HistoryEvent::StoreOpReturned {
                client,
                op_id,
                outcome: StoreOpOutcome::Written { revision, succeeded: true },
            } => match invoked.get(&(client.clone(), *op_id)) {
                Some(StoreOpKind::Put { key, value }) | Some(StoreOpKind::CompareAndPut { key, value, .. }) => {
                    acknowledged.push((key.clone(), value.clone(), *revision));
                }
                _ => {}
            },
            _ => {}
        }
    }
    for (key, value, revision) in &acknowledged {
        let mut request = RangeRequest::new(KeyRange::Key(key.clone()));
        request.revision = *revision;
        match client.range(request).await {
            Ok(r) => {
                let found = r.kvs.first();
                let ok = found.is_some_and(|kv| kv.mod_revision == *revision && kv.value == value.as_bytes());
                if !ok {
                    return Check::violated(
                        Invariant::NoAcknowledgedWriteLost,
                        format!("{key}={value} acknowledged at revision {revision}, but the store has {found:?}"),
                    );
                }
            }
            Err(e) => {
                return Check::violated(Invariant::NoAcknowledgedWriteLost, format!("reading {key}@{revision}: {e}"))
            }
        }
    }
    Check::held(Invariant::NoAcknowledgedWriteLost, format!("{} acknowledged writes all readable", acknowledged.len()))
}
