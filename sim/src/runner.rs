//! Runs one seed of one scenario in a fresh madsim runtime and turns its history into a
//! report. Everything a seed does is a function of (scenario, seed, options).

use std::collections::{BTreeMap, BTreeSet};

use faults::actions::{generate_workload, ActionGroup};
use faults::{FaultKind, FaultPlan, GenerateOptions, Topology};
use madsim::runtime::Runtime;

use crate::addresses;
use crate::checkers::restore::RecoveryStats;
use crate::checkers::{check_all_with, CheckInput, EndState};
use crate::control_plane::ControlPlaneOptions;
use crate::history::{History, HistoryEvent};
use crate::knobs::Knobs;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, RunReport};
use crate::scenario::{
    deploy_nginx, garbage_collection, permissions, read_modify_write, rollout, services, store_smoke, Scenario,
    UnsupportedFault,
};
use crate::workload::Shape;
use store::api::{KeyRange, Principal, RangeRequest};
use store::client::{StoreClient, StoreClientConfig};
use verdict::outcome::{Limit, Outcome};

/// Where a seed's faults come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Faults {
    /// No nemesis: the scenario's plain flow.
    None,
    /// Swarm testing: the seed generates its own plan from this menu of kinds.
    Swarm(BTreeSet<FaultKind>),
    /// Replay a saved plan (whatever the seed).
    Plan(FaultPlan),
}

impl Faults {
    /// Refuses a menu or a plan holding a kind `scenario` does not support
    /// ([`Scenario::supports`]).
    pub fn check_supported_by(&self, scenario: &Scenario) -> Result<(), UnsupportedFault> {
        match self {
            Faults::None => Ok(()),
            Faults::Swarm(menu) => menu.iter().try_for_each(|&kind| scenario.supports(kind)),
            Faults::Plan(plan) => plan.events.iter().try_for_each(|event| scenario.supports(event.fault.kind())),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub seed: u64,
    /// Whether the seed picks the knobs ([`Knobs::for_seed`]); off, the cluster options'
    /// knobs hold (a corpus case, a test).
    pub seed_picks_knobs: bool,
    pub scenario: Scenario,
    pub cluster: ControlPlaneOptions,
    pub faults: Faults,
    /// The cluster size the user fixed (`--kubelets`, `--replicas`, `--store-members`),
    /// applied over the seed's knobs for every seed ([`RunOptions::with_shape`]).
    pub shape: Shape,
    /// The menu of the generated workload (`--workload`): each seed draws its users'
    /// actions from these groups into its plan ([`faults::actions::generate_workload`]).
    /// Every group for deploy-nginx ([`RunOptions::new`]), empty (no generated workload)
    /// for the other scenarios. A saved plan (`Faults::Plan`) carries its own.
    pub workload: BTreeSet<ActionGroup>,
}

impl RunOptions {
    /// The default: every fault kind in the swarm menu (`kubesim run` and `kubesim
    /// campaign` agree, so a campaign's seed replays with a plain `kubesim run --seed N`),
    /// on the knobs the seed picks ([`Knobs::for_seed`]).
    pub fn new(seed: u64, scenario: Scenario) -> Self {
        let mut cluster = ControlPlaneOptions::default();
        Knobs::for_seed(seed).apply(&mut cluster);
        scenario.configure(&mut cluster);
        // deploy-nginx runs the generated workload of every group by default.
        let workload =
            if scenario == Scenario::DeployNginx { ActionGroup::ALL.into_iter().collect() } else { BTreeSet::new() };
        Self {
            seed,
            seed_picks_knobs: true,
            scenario,
            cluster,
            faults: Faults::Swarm(FaultKind::all()),
            shape: Shape::default(),
            workload,
        }
    }

    /// These options with the cluster size `shape` fixes (checked by the caller with
    /// [`Shape::validate`]), kept for every seed [`RunOptions::for_seed`] derives.
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.cluster.reshape(&shape);
        self.shape = shape;
        self
    }

    /// These options for another seed (a campaign's template for each of its seeds), with
    /// the knobs that seed picks.
    pub fn for_seed(&self, seed: u64) -> Self {
        let mut options = self.clone();
        options.seed = seed;
        self.knobs_of(seed).apply(&mut options.cluster);
        options.cluster.reshape(&self.shape);
        options
    }

    /// The knobs `for_seed(seed)` runs on, without building its options.
    pub fn knobs_of(&self, seed: u64) -> Knobs {
        if self.seed_picks_knobs {
            let mut knobs = Knobs::for_seed(seed);
            knobs.store_members = self.shape.store_members.unwrap_or(knobs.store_members);
            knobs
        } else {
            Knobs::of(&self.cluster)
        }
    }

    /// The knobs these options run on.
    pub fn knobs(&self) -> Knobs {
        Knobs::of(&self.cluster)
    }

    /// The scenario's plain flow: no nemesis, no generated workload.
    pub fn without_faults(seed: u64, scenario: Scenario) -> Self {
        Self { faults: Faults::None, workload: BTreeSet::new(), ..Self::new(seed, scenario) }
    }

    /// The components a plan may target in this scenario.
    pub fn topology(&self) -> Topology {
        let store_members = self.cluster.store.n_members as u64;
        match self.scenario {
            Scenario::StoreSmoke => {
                Topology { store_members, apiservers: 0, controller_managers: 0, schedulers: 0, kubelets: 0 }
            }
            Scenario::DeployNginx
            | Scenario::GarbageCollection
            | Scenario::Services
            | Scenario::ReadModifyWrite
            | Scenario::Rollout
            | Scenario::Permissions
            | Scenario::Custom(_) => Topology {
                store_members,
                apiservers: self.cluster.n_apiservers,
                controller_managers: self.cluster.n_controller_managers,
                schedulers: 1,
                kubelets: self.cluster.n_kubelets,
            },
        }
    }

    /// The fault plan this seed runs, if any: with a workload menu, a swarm plan carries
    /// the seed's generated workload, and even `Faults::None` has a plan (no faults, the
    /// phases and the workload).
    pub fn plan(&self) -> Option<FaultPlan> {
        let generate = || {
            let options = GenerateOptions::default();
            let workload = generate_workload(self.seed, &self.topology(), &self.workload, options.safety_phase_ms);
            (options, workload)
        };
        match &self.faults {
            Faults::None if self.workload.is_empty() => None,
            Faults::None => {
                let (options, workload) = generate();
                Some(FaultPlan { workload, ..FaultPlan::empty(options.safety_phase_ms, options.liveness_phase_ms) })
            }
            Faults::Swarm(menu) => {
                let (options, workload) = generate();
                Some(FaultPlan { workload, ..faults::generate(self.seed, &self.topology(), menu, &options) })
            }
            Faults::Plan(plan) => Some(plan.clone()),
        }
    }
}

/// Runs the seed to completion in a fresh runtime on a fresh thread (see
/// [`run_seed_with_history`]).
///
/// The history is dropped on the seed's thread, which allocated it: freed there, its
/// records go straight back to that thread's heap rather than through the allocator's
/// cross-thread frees.
pub fn run_seed(options: &RunOptions) -> RunReport {
    on_fresh_thread(options, |options| run_seed_on_this_thread(options, &SeedCancel::default()).0)
}

/// As [`run_seed`], also handing back the whole history (for checkers' tests and the
/// determinism check).
///
/// The seed always runs on a fresh OS thread: madsim seeds std's `HashMap` keys from the
/// seed, but std draws them once per thread, so a runtime on a thread that already used
/// a `HashMap` (the CLI's tracing filter, a previous seed) would get different keys.
pub fn run_seed_with_history(options: &RunOptions) -> (RunReport, History) {
    on_fresh_thread(options, |options| run_seed_on_this_thread(options, &SeedCancel::default()))
}

fn on_fresh_thread<T: Send + 'static>(options: &RunOptions, run: fn(&RunOptions) -> T) -> T {
    let options = options.clone();
    match std::thread::Builder::new()
        .name(format!("seed-{}", options.seed))
        .spawn(move || run(&options))
        .expect("spawn a thread for the seed")
        .join()
    {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The most simulated time one seed may take, enforced inside the simulation (madsim's
/// executor checks it after every step): a seed still running then ends, failing
/// `time-limit`. It covers the scenario and the hour of teardown that drains the seed's
/// timers ([`crate::nodes::DRAIN_TIMERS_FOR`]). Plans bound every duration they hold
/// (`faults::MAX_SAFETY_PHASE_MS`, `faults::MAX_LIVENESS_PHASE_MS`: 10 minutes each), and
/// the longest legitimate scenario, a deploy-nginx seed that waits out its liveness phase
/// again after each of three late restores, stays under an hour; so only a scenario that
/// never ends reaches the limit.
pub const SIMULATED_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(3 * 3_600);

/// The name a seed that ran past its limit (simulated, or wall-clock in a campaign) fails.
pub const TIME_LIMIT: &str = "time-limit";

/// The payload madsim's executor panics with when a runtime passes its time limit
/// (`Runtime::set_time_limit`); the panic unwinds out of `block_on`, between two steps of
/// the executor, where the runtime can still be torn down.
const MADSIM_TIME_LIMIT_PANIC: &str = "time limit exceeded";

/// Whether a panic payload is madsim's time-limit panic: an expected end of a seed, not a
/// bug, so the CLI's panic hook keeps it off the terminal.
pub fn is_time_limit_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    message.starts_with(MADSIM_TIME_LIMIT_PANIC)
}

pub use crate::cancel::SeedCancel;

/// Why a seed's scenario did not finish.
enum Stopped {
    /// Simulated time reached [`SIMULATED_TIME_LIMIT`].
    TimeLimit,
    /// [`SeedCancel::cancel`] was called.
    Cancelled,
}

/// Runs the seed on the calling thread, which must be fresh (see [`run_seed_with_history`]):
/// the campaign's guard already gives each seed a thread of its own. `cancel` stops it
/// from another thread.
pub fn run_seed_on_this_thread(options: &RunOptions, cancel: &SeedCancel) -> (RunReport, History) {
    let streams = faults::SeedStreams::derive(options.seed);
    let mut runtime = Runtime::with_seed_and_config(streams.simulation, madsim::Config::default());
    runtime.set_time_limit(SIMULATED_TIME_LIMIT);
    let recorder = Recorder::cancellable(cancel.clone());
    // Every node the seed creates, killed when it ends (see `SeedNodes`).
    let nodes = SeedNodes::new();
    let seed_run = scenario_task(options, recorder.clone(), nodes.clone());
    coverage::reset();
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(cancel.guard(seed_run))));
    let stopped = match finished {
        Ok(Some(finished)) => Ok(finished),
        Ok(None) => Err(Stopped::Cancelled),
        Err(payload) if is_time_limit_panic(payload.as_ref()) => Err(Stopped::TimeLimit),
        Err(payload) => std::panic::resume_unwind(payload),
    };
    let finished = stopped.map_err(|stopped| tear_down_after_stop(&mut runtime, &nodes, stopped));
    let history = recorder.finish();
    let reached = coverage::take();
    let report = match finished {
        Ok(Finished { outcome, end_state, simulated_secs, messages_delivered }) => RunReport {
            coverage: reached,
            ..report_of(options, outcome, end_state.as_ref(), &history, simulated_secs, messages_delivered)
        },
        Err(stop) => RunReport { coverage: reached, ..stopped_report(options, &stop, &history) },
    };
    (report, history)
}

/// What a scenario that finished leaves: its outcome, the store's state at the end, and
/// the simulated time and messages it took.
struct Finished {
    outcome: crate::report::ScenarioOutcome,
    end_state: Option<EndState>,
    simulated_secs: f64,
    messages_delivered: u64,
}

/// What a scenario that did not finish leaves: why, and the simulated time and messages
/// it took until then.
struct Stop {
    stopped: Stopped,
    simulated_secs: f64,
    messages_delivered: u64,
}

/// The seed's task: the scenario on the options' cluster and plan, then the store's state
/// read at the end and every node torn down.
fn scenario_task(
    options: &RunOptions,
    recorder: Recorder,
    nodes: SeedNodes,
) -> impl std::future::Future<Output = Finished> {
    let options = options.clone();
    let plan = options.plan();
    async move {
        let outcome = match options.scenario.clone() {
            Scenario::DeployNginx => deploy_nginx::run(recorder, &nodes, options.cluster.clone(), plan).await,
            Scenario::StoreSmoke => store_smoke::run(recorder, &nodes, options.cluster.store.clone(), plan).await,
            Scenario::GarbageCollection => {
                garbage_collection::run(recorder, &nodes, options.cluster.clone(), plan).await
            }
            Scenario::Services => services::run(recorder, &nodes, options.cluster.clone(), plan).await,
            Scenario::ReadModifyWrite => read_modify_write::run(recorder, &nodes, options.cluster.clone(), plan).await,
            Scenario::Rollout => rollout::run(recorder, &nodes, options.cluster.clone(), plan).await,
            Scenario::Permissions => permissions::run(recorder, &nodes, options.cluster.clone(), plan).await,
            Scenario::Custom(custom) => {
                crate::scenario::custom::run(custom, recorder, &nodes, options.cluster.clone(), plan).await
            }
        };
        let simulated_secs = madsim::time::TimeHandle::current().elapsed().as_secs_f64();
        let messages_delivered = madsim::net::NetSim::current().stat().msg_count;
        let end_state = read_end_state(outcome.store_endpoints.clone(), &nodes).await;
        nodes.tear_down().await;
        Finished { outcome, end_state, simulated_secs, messages_delivered }
    }
}

/// The scenario's task is gone; kills the nodes it left and frees what they hold, as a
/// finished seed does (see `SeedNodes::tear_down`).
fn tear_down_after_stop(runtime: &mut Runtime, nodes: &SeedNodes, stopped: Stopped) -> Stop {
    runtime.set_time_limit(std::time::Duration::MAX);
    let (simulated_secs, messages_delivered) = runtime.block_on(async {
        let simulated_secs = madsim::time::TimeHandle::current().elapsed().as_secs_f64();
        let messages = madsim::net::NetSim::current().stat().msg_count;
        nodes.tear_down().await;
        (simulated_secs, messages)
    });
    Stop { stopped, simulated_secs, messages_delivered }
}

/// The report of a seed whose scenario did not finish: timed out, with what its history
/// holds up to then.
fn stopped_report(options: &RunOptions, stop: &Stop, history: &History) -> RunReport {
    let detail = match stop.stopped {
        Stopped::TimeLimit => format!(
            "the seed had not finished when its simulated time reached the limit of {} s",
            SIMULATED_TIME_LIMIT.as_secs()
        ),
        Stopped::Cancelled => "cancelled (the seed overran its wall-clock limit)".to_string(),
    };
    RunReport {
        seed: options.seed,
        scenario: options.scenario.name().to_string(),
        outcome: Outcome::Timeout { limit: Limit::SimulatedTime, detail: detail.clone() },
        timeline: Vec::new(),
        checks: vec![Check::fail(TIME_LIMIT, detail)],
        faults: faults_of(history),
        stats: BTreeMap::new(),
        trace_hash: format!("{:016x}", history.trace_hash),
        simulated_secs: stop.simulated_secs,
        messages_delivered: stop.messages_delivered,
        history_records: history.records.len(),
        coverage: BTreeMap::new(),
    }
}

/// The Events of the run's store history: written (creates and updates, each under a TTL
/// lease) and deleted (by their lease's expiry: nothing else deletes an Event). Nothing is
/// added for a run without Events (store-smoke).
fn add_event_stats(history: &History, stats: &mut BTreeMap<String, i64>) {
    let (mut written, mut expired) = (0i64, 0i64);
    for (_, event) in history.events() {
        if let HistoryEvent::Committed { changes, .. } = event {
            for change in changes.iter().filter(|c| c.key.starts_with("/registry/events/")) {
                match change.value_hash {
                    Some(_) => written += 1,
                    None => expired += 1,
                }
            }
        }
    }
    if written > 0 {
        stats.insert("events-written".to_string(), written);
        stats.insert("events-expired".to_string(), expired);
    }
}

/// The report of a seed whose scenario finished: its own checks and every checker's.
fn report_of(
    options: &RunOptions,
    outcome: crate::report::ScenarioOutcome,
    end_state: Option<&EndState>,
    history: &History,
    simulated_secs: f64,
    messages_delivered: u64,
) -> RunReport {
    let apiserver_sources = match options.scenario {
        Scenario::StoreSmoke => vec![addresses::WORKLOAD],
        Scenario::DeployNginx
        | Scenario::GarbageCollection
        | Scenario::Services
        | Scenario::ReadModifyWrite
        | Scenario::Rollout
        | Scenario::Permissions
        | Scenario::Custom(_) => (0..options.cluster.n_apiservers).map(|i| addresses::apiserver(i).ip()).collect(),
    };
    let input = CheckInput { history, end_state, apiserver_sources };
    let recovery = RecoveryStats::of(history);
    let mut checks = outcome.checks;
    let verdicts = check_all_with(&input, &options.scenario.checkers());
    checks.extend(verdicts.iter().map(Check::of_verdict));
    let total_loss = recovery.total_loss.as_ref().map(|(lost, reason)| (*lost as u64, reason.clone()));
    let judged = Outcome::of_run(&verdicts, total_loss);
    let mut stats = outcome.stats;
    recovery.add_to(&mut stats);
    // Counted only when there are any, so other runs' lines are unchanged.
    let security_windows = verdict::checkers::permissions::security_windows(history).len();
    if security_windows > 0 {
        *stats.entry("security-windows".to_string()).or_default() += security_windows as i64;
    }
    add_event_stats(history, &mut stats);
    RunReport {
        seed: options.seed,
        scenario: options.scenario.name().to_string(),
        outcome: judged,
        timeline: outcome.timeline,
        checks,
        faults: faults_of(history),
        stats,
        trace_hash: format!("{:016x}", history.trace_hash),
        simulated_secs,
        messages_delivered,
        history_records: history.records.len(),
        coverage: Default::default(),
    }
}

/// One line per fault the nemesis applied, with its simulated time.
fn faults_of(history: &History) -> Vec<String> {
    history
        .events()
        .filter_map(|(at_ns, e)| match e {
            HistoryEvent::Fault { description } => Some(format!("{:.3}s {description}", at_ns as f64 / 1e9)),
            _ => None,
        })
        .collect()
}

/// The store's final keyspace, read by a checker's client on a fresh node after the
/// scenario ended; `None` if no member answered (for example after total loss).
async fn read_end_state(
    members: BTreeMap<store::api::MemberId, std::net::SocketAddr>,
    nodes: &SeedNodes,
) -> Option<EndState> {
    if members.is_empty() {
        return None;
    }
    let node = nodes.build(
        madsim::runtime::Handle::current().create_node().name("end-state-reader").ip(addresses::END_STATE_READER),
    );
    node.spawn(async move {
        let client = StoreClient::connect(members, Principal::reader("end-state-reader"), StoreClientConfig::default())
            .await
            .ok()?;
        for _ in 0..5 {
            let read_at_ns = crate::recorder::Recorder::now_ns();
            if let Ok(r) = client.range(RangeRequest::new(KeyRange::Prefix("/".into()))).await {
                return Some(EndState { revision: r.header.revision, keyspace: r.kvs, read_at_ns });
            }
            madsim::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest plan there is: twenty minutes of simulated time, seconds of wall time.
    fn long_seed() -> RunOptions {
        let mut options = RunOptions::new(3, Scenario::DeployNginx);
        options.faults = Faults::Plan(FaultPlan::empty(faults::MAX_SAFETY_PHASE_MS, faults::MAX_LIVENESS_PHASE_MS));
        options
    }

    #[track_caller]
    fn assert_cancelled(report: &RunReport) {
        let failures: Vec<&Check> = report.failures().collect();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].name, TIME_LIMIT);
        assert!(failures[0].detail.starts_with("cancelled"), "{}", failures[0].detail);
    }

    /// What a campaign's guard does to a seed past its wall-clock limit: the seed's own
    /// thread stops (at its next history record, and its nodes are torn down) instead of
    /// running on, abandoned. No timing is asserted: only that the thread ends, and why.
    #[test]
    fn a_cancelled_seed_stops_its_thread() {
        let cancel = SeedCancel::default();
        let seed = {
            let (options, cancel) = (long_seed(), cancel.clone());
            std::thread::spawn(move || run_seed_on_this_thread(&options, &cancel).0)
        };
        while !cancel.is_running() && !seed.is_finished() {
            std::thread::yield_now();
        }
        assert!(cancel.is_running(), "the seed must be cancelled while it runs");
        cancel.cancel();
        let report = seed.join().expect("the seed's thread ends, without a panic");
        assert_cancelled(&report);
        assert!(!cancel.is_running());
        assert!(report.history_records > 0, "it had started");
    }

    #[test]
    fn a_seed_cancelled_before_it_starts_does_not_run() {
        let cancel = SeedCancel::default();
        cancel.cancel();
        let report = run_seed_on_this_thread(&long_seed(), &cancel).0;
        assert_cancelled(&report);
        assert_eq!(report.history_records, 0);
    }
}
