//! `store-smoke`: three store members, a client workload of puts, linearizable reads and
//! compare-and-puts, and one leader crash in the middle.
//!
//! It exercises the store alone (no apiserver): election, replication, failover, restart
//! from the synced state and catch-up. At the end every member must hold the same
//! keyspace and every acknowledged write must be readable at the revision it was
//! acknowledged with.

use std::collections::BTreeMap;
use std::time::Duration;

use madsim::rand::Rng;
use store::api::{KeyRange, MemberId, Principal, RangeRequest, Revision};
use store::client::{StoreClient, StoreClientConfig};
use store::raft::Role;

use crate::addresses;
use crate::cluster::StoreCluster;
use crate::history::{HistoryEvent, KeyState, StoreOpKind, StoreOpOutcome};
use crate::membership::StoreOptions;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::store_traffic::run_worker;
use crate::world::SimWorld;
use faults::FaultPlan;

const N_WORKERS: usize = 3;
const WORKLOAD_DURATION: Duration = Duration::from_secs(20);
const CRASH_AT: Duration = Duration::from_secs(6);
const RESTART_AFTER: Duration = Duration::from_secs(3);

/// The scripted leader crash always happens; with a `plan`, the nemesis also applies it
/// while the workload runs through the safety phase.
pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    store: StoreOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    let cluster = StoreCluster::start(&store, &recorder, nodes);
    let members = cluster.addresses();
    let workload_duration = plan.as_ref().map_or(WORKLOAD_DURATION, |p| Duration::from_millis(p.safety_phase_ms));
    let settle = plan.as_ref().map_or(Duration::from_secs(5), |p| Duration::from_millis(p.liveness_phase_ms));

    let workload =
        nodes.build(madsim::runtime::Handle::current().create_node().name("workload").ip(addresses::WORKLOAD));
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
            recorder.fault(format!("crash {slot} (the leader), losing unsynced writes"));
            let tear: u64 = madsim::rand::thread_rng().gen();
            cluster.crash(slot, Some(tear));
            madsim::time::sleep(RESTART_AFTER).await;
            recorder.fault(format!("restart {slot}"));
            cluster.restart(slot);
        }
        Some((member, None)) => recorder.note(format!("the leader, {member}, runs no slot any more: no crash")),
        None => recorder.note("no leader to crash at the planned time"),
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
                format!("term {term}: leader {member}")
            }
            HistoryEvent::RoleChanged { member, term, role: Role::Leader, .. } => {
                format!("term {term}: ANOTHER leader {member}")
            }
            HistoryEvent::Fault { description } => format!("fault: {description}"),
            HistoryEvent::Note { text } => text.clone(),
            HistoryEvent::MemberStarted { member, .. } if members_started.insert(*member) => continue,
            HistoryEvent::MemberStarted { member, recovered_entries, torn_bytes } => {
                format!(
                    "{member} restarted: recovered {recovered_entries} log entries, truncated {torn_bytes} torn bytes"
                )
            }
            HistoryEvent::MemberFailed { member, reason } => {
                format!("{member} stopped: {reason}")
            }
            _ => continue,
        };
        lines.push(format!("{:>9.3}s  {text}", at_ns as f64 / 1e9));
    }
    lines
}

/// Within `settle` after the workload stops, the user waits for every member that is
/// serving to hold the same keyspace (members whose disk failed are reported, not
/// compared), then reads every acknowledged write back at its revision. The history
/// records what was awaited and seen and what each read returned; the convergence and
/// durability checkers judge.
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
        checks.push(Check::info(format!("{m} refused to serve after a disk failure (excluded)")));
    }
    let start = madsim::time::Instant::now();
    let goal = format!("members agree within {}s", settle.as_secs());
    let mut awaiting = super::Awaiting::begin(recorder, goal, serving.len() as u64, true, Some(start + settle));
    let mut statuses = BTreeMap::new();
    while start.elapsed() <= settle {
        let began = madsim::time::Instant::now();
        statuses.clear();
        for &id in &serving {
            if let Ok(s) = client.status(id).await {
                statuses.insert(id, (s.revision, s.keyspace_digest));
            }
        }
        // How many members agree with the most common state.
        let mut agreeing: BTreeMap<&(Revision, u64), u64> = BTreeMap::new();
        for state in statuses.values() {
            *agreeing.entry(state).or_default() += 1;
        }
        let have = agreeing.values().copied().max().unwrap_or(0);
        let seen: Vec<String> =
            statuses.iter().map(|(id, (rev, d))| format!("{id}: revision {rev} digest {d:016x}")).collect();
        let seen = format!("{have} of {} agree ({})", serving.len(), seen.join("; "));
        awaiting.looked(began, Some(have), seen);
        if have == serving.len() as u64 {
            break;
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    read_back_acknowledged_writes(&client, recorder).await;
    checks
}

/// Reads every write the store acknowledged back at its revision, recording what came
/// back (`HistoryEvent::ReadBack`).
async fn read_back_acknowledged_writes(client: &StoreClient, recorder: &Recorder) {
    let history = recorder.snapshot();
    let mut invoked: BTreeMap<(String, u64), StoreOpKind> = BTreeMap::new();
    let mut acknowledged: Vec<(String, Revision)> = Vec::new();
    for (_, e) in history.events() {
        match e {
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                invoked.insert((client.to_string(), *op_id), op.clone());
            }
            HistoryEvent::StoreOpReturned {
                client,
                op_id,
                outcome: StoreOpOutcome::Written { revision, succeeded: true },
            } => match invoked.get(&(client.to_string(), *op_id)) {
                Some(StoreOpKind::Put { key, .. }) | Some(StoreOpKind::CompareAndPut { key, .. }) => {
                    acknowledged.push((key.clone(), *revision));
                }
                _ => {}
            },
            _ => {}
        }
    }
    for (key, revision) in acknowledged {
        let mut request = RangeRequest::new(KeyRange::Key(key.clone()));
        request.revision = revision;
        let found = match client.range(request).await {
            Ok(r) => Ok(r.kvs.first().map(KeyState::of)),
            Err(e) => Err(e.to_string()),
        };
        recorder.record(HistoryEvent::ReadBack { key, revision, found });
    }
}
