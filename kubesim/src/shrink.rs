//! Shrinking a failing seed's fault plan: `kubesim shrink --seed N`.
//!
//! A seed that breaks an invariant under a plan of eight overlapping faults is hard to
//! read. The shrinker replays the *same seed* with smaller plans and keeps a candidate
//! only if it still violates the *same invariant*, so what is left is a plan in which
//! (nearly) every fault matters. It is delta debugging (Zeller and Hildebrandt, "Simplifying
//! and Isolating Failure-Inducing Input", 2002) over the plan's events, followed by
//! simplifying each surviving event, the way FoundationDB's and TigerBeetle's users cut a
//! failing simulation down by hand, and the way proptest shrinks a counterexample:
//!
//! 1. drop events: all of them, then halves, quarters, ... single events (ddmin's
//!    complements);
//! 2. shorten each event (straight to the shortest the generator makes, else by halves);
//! 3. start each event later (straight to the latest start, else halfway there);
//! 4. lower each event's intensity (packet-loss rate, latency, clock offset and drift,
//!    torn writes off);
//!
//! and again from 1 until a whole round changes nothing or the run budget is spent.
//!
//! The search is a pure function of the plan and an oracle (`still fails?`), so it is
//! tested on hand-made oracles without a simulation; [`shrink_seed`] plugs in the real one.
//! Changing the plan changes what the seed's random stream is spent on, so a shrunk plan is
//! a different execution of the same seed, not a subset of the original one: the saved
//! plan, with the seed, is the reproduction. A candidate that would not validate, or (when
//! the original was survivable) that a correct system need not survive, is never run.

use std::collections::BTreeSet;
use std::time::Duration;

use faults::generate::MIN_DURATION_MS;
use faults::{Fault, FaultEvent, FaultPlan, Topology};

use crate::campaign::{run_guarded, SeedResult};
use sim::runner::{Faults, RunOptions};
use verdict::outcome::Property;

/// The default bound on the number of runs one shrink may spend.
pub const DEFAULT_MAX_RUNS: usize = 200;

/// A start is not moved later by less than this: finer moves cost runs and make the plan
/// no easier to read.
const MIN_START_MOVE_MS: u64 = 250;

/// One accepted simplification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShrinkStep {
    /// Runs spent so far, this one included.
    pub run: usize,
    /// What was changed, e.g. "removed events 4..8 (4 events)".
    pub change: String,
    /// Events left in the plan after the change.
    pub n_events: usize,
    /// Workload actions left in the plan after the change.
    pub n_actions: usize,
}

/// What a search ended with.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimized {
    pub plan: FaultPlan,
    pub steps: Vec<ShrinkStep>,
    /// Runs spent (candidates tried).
    pub runs: usize,
    /// The run budget ran out before a round changed nothing: a smaller plan may exist.
    pub budget_exhausted: bool,
}

/// Minimizes `plan` while `still_fails` holds, spending at most `max_runs` calls of it.
/// `plan` itself is assumed to fail (the caller has checked). `on_step` hears of each
/// accepted simplification as it happens.
pub fn minimize(
    plan: &FaultPlan,
    topology: &Topology,
    max_runs: usize,
    mut still_fails: impl FnMut(&FaultPlan) -> bool,
    on_step: &mut dyn FnMut(&ShrinkStep),
) -> Minimized {
    let keep_survivable = plan.check_survivable(topology).is_ok();
    let mut search = Search {
        plan: plan.clone(),
        topology,
        keep_survivable,
        tried_empty: false,
        max_runs,
        runs: 0,
        steps: Vec::new(),
        still_fails: &mut still_fails,
        on_step,
    };
    loop {
        let before = search.steps.len();
        search.drop_events();
        search.drop_actions();
        for event_idx in 0..search.plan.events.len() {
            search.shorten(event_idx);
            search.start_later(event_idx);
            search.lower_intensity(event_idx);
        }
        if search.out_of_runs() || search.steps.len() == before {
            break;
        }
    }
    let budget_exhausted = search.out_of_runs();
    Minimized { plan: search.plan, steps: search.steps, runs: search.runs, budget_exhausted }
}

struct Search<'a> {
    plan: FaultPlan,
    topology: &'a Topology,
    keep_survivable: bool,
    tried_empty: bool,
    max_runs: usize,
    runs: usize,
    steps: Vec<ShrinkStep>,
    still_fails: &'a mut dyn FnMut(&FaultPlan) -> bool,
    on_step: &'a mut dyn FnMut(&ShrinkStep),
}

impl Search<'_> {
    fn out_of_runs(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// Runs `candidate` if it is a legal plan and the budget allows; adopts it if it still
    /// fails. Returns whether it was adopted.
    fn try_candidate(&mut self, candidate: FaultPlan, change: impl FnOnce() -> String) -> bool {
        if self.out_of_runs() || candidate == self.plan || candidate.validate(self.topology).is_err() {
            return false;
        }
        if self.keep_survivable && candidate.check_survivable(self.topology).is_err() {
            return false;
        }
        self.runs += 1;
        if !(self.still_fails)(&candidate) {
            return false;
        }
        self.plan = candidate;
        let step = ShrinkStep {
            run: self.runs,
            change: change(),
            n_events: self.plan.events.len(),
            n_actions: self.plan.workload.len(),
        };
        (self.on_step)(&step);
        self.steps.push(step);
        true
    }

    /// ddmin's complement step: remove chunks of `chunk` consecutive events, from half the
    /// plan down to one event, restarting at the same chunk size after each success.
    fn drop_events(&mut self) {
        // First the empty plan: one run says whether the faults matter at all.
        if !self.tried_empty && !self.plan.events.is_empty() {
            self.tried_empty = true;
            let n_events = self.plan.events.len();
            let candidate = FaultPlan { events: Vec::new(), ..self.plan.clone() };
            if self.try_candidate(candidate, || format!("removed all {n_events} events")) {
                return;
            }
        }
        let mut chunk = self.plan.events.len().div_ceil(2).max(1);
        while !self.plan.events.is_empty() && !self.out_of_runs() {
            let mut start = 0;
            while start < self.plan.events.len() && !self.out_of_runs() {
                let end = (start + chunk).min(self.plan.events.len());
                let mut candidate = self.plan.clone();
                let removed: Vec<FaultEvent> = candidate.events.drain(start..end).collect();
                let change = || describe_removal(start, &removed);
                if !self.try_candidate(candidate, change) {
                    start = end;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// ddmin's complement step over the workload's actions, as [`Search::drop_events`]
    /// over the faults: all of them, then chunks from half down to single actions.
    fn drop_actions(&mut self) {
        if self.plan.workload.is_empty() {
            return;
        }
        let n_actions = self.plan.workload.len();
        let candidate = FaultPlan { workload: Vec::new(), ..self.plan.clone() };
        if self.try_candidate(candidate, || format!("removed all {n_actions} workload actions")) {
            return;
        }
        let mut chunk = self.plan.workload.len().div_ceil(2).max(1);
        while !self.plan.workload.is_empty() && !self.out_of_runs() {
            let mut start = 0;
            while start < self.plan.workload.len() && !self.out_of_runs() {
                let end = (start + chunk).min(self.plan.workload.len());
                let mut candidate = self.plan.clone();
                let removed = candidate.workload.drain(start..end).count();
                let change = || format!("removed workload actions {start}..{end} ({removed} actions)");
                if !self.try_candidate(candidate, change) {
                    start = end;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Shortens one event: straight to the shortest duration, else by halves. (Once the
    /// shortest failed it is not tried again: the same candidate gives the same run.)
    fn shorten(&mut self, event_idx: usize) {
        let Some(event) = self.plan.events.get(event_idx) else { return };
        let shortest = MIN_DURATION_MS.min(event.duration_ms);
        let mut shortest_failed = false;
        loop {
            let current = self.plan.events[event_idx].duration_ms;
            if !shortest_failed {
                if shortest >= current || self.set_duration(event_idx, shortest) {
                    return;
                }
                shortest_failed = true;
            }
            let half = current / 2;
            if half <= shortest || !self.set_duration(event_idx, half) {
                return;
            }
        }
    }

    fn set_duration(&mut self, event_idx: usize, duration_ms: u64) -> bool {
        let current = self.plan.events[event_idx].duration_ms;
        let mut candidate = self.plan.clone();
        candidate.events[event_idx].duration_ms = duration_ms;
        self.try_candidate(candidate, || format!("event {event_idx}: duration {current} ms -> {duration_ms} ms"))
    }

    /// Starts one event later: straight to the latest start that still heals within the
    /// safety phase, else halfway there, again and again.
    fn start_later(&mut self, event_idx: usize) {
        let Some(event) = self.plan.events.get(event_idx) else { return };
        let latest = self.plan.safety_phase_ms.saturating_sub(event.duration_ms);
        let mut latest_failed = false;
        loop {
            let current = self.plan.events[event_idx].at_ms;
            if latest < current.saturating_add(MIN_START_MOVE_MS) {
                return;
            }
            if !latest_failed {
                if self.set_start(event_idx, latest) {
                    return;
                }
                latest_failed = true;
            }
            let midway = current + (latest - current) / 2;
            if midway < current + MIN_START_MOVE_MS || !self.set_start(event_idx, midway) {
                return;
            }
        }
    }

    fn set_start(&mut self, event_idx: usize, at_ms: u64) -> bool {
        let current = self.plan.events[event_idx].at_ms;
        let mut candidate = self.plan.clone();
        candidate.events[event_idx].at_ms = at_ms;
        self.try_candidate(candidate, || format!("event {event_idx}: starts at {current} ms -> {at_ms} ms"))
    }

    /// Tries each milder variant of one event's fault in turn, keeping those that still
    /// fail.
    fn lower_intensity(&mut self, event_idx: usize) {
        loop {
            let Some(event) = self.plan.events.get(event_idx) else { return };
            let before = event.fault.clone();
            let mut changed = false;
            for milder in milder_faults(&before) {
                let mut candidate = self.plan.clone();
                candidate.events[event_idx].fault = milder.clone();
                let change = || format!("event {event_idx}: {} -> {}", fault_json(&before), fault_json(&milder));
                if self.try_candidate(candidate, change) {
                    changed = true;
                    break;
                }
            }
            if !changed || self.out_of_runs() {
                return;
            }
        }
    }
}

/// Milder versions of a fault, mildest change first. Faults without an intensity (and
/// kinds added later that nobody taught this function) have none: they are still dropped,
/// shortened and moved.
pub fn milder_faults(fault: &Fault) -> Vec<Fault> {
    match fault {
        Fault::PacketLoss { rate } if *rate > 0.01 => {
            vec![Fault::PacketLoss { rate: ((rate * 50.0).floor() / 100.0).max(0.01) }]
        }
        Fault::LatencySpike { min_ms, max_ms } => {
            let mut milder = Vec::new();
            if *min_ms > 0 {
                milder.push(Fault::LatencySpike { min_ms: 0, max_ms: max_ms - min_ms });
            }
            let spread_ms = max_ms - min_ms;
            if spread_ms >= 20 {
                milder.push(Fault::LatencySpike { min_ms: *min_ms, max_ms: min_ms + spread_ms / 2 });
            }
            milder
        }
        Fault::ClockSkew { target, offset_ms, drift_ms_per_s } => {
            let mut milder = Vec::new();
            if *drift_ms_per_s != 0 {
                milder.push(Fault::ClockSkew { target: target.clone(), offset_ms: *offset_ms, drift_ms_per_s: 0 });
            }
            if offset_ms.abs() >= 100 {
                milder.push(Fault::ClockSkew {
                    target: target.clone(),
                    offset_ms: offset_ms / 2,
                    drift_ms_per_s: *drift_ms_per_s,
                });
            }
            milder
        }
        Fault::CrashStoreMember { member, tear: Some(_) } => {
            vec![Fault::CrashStoreMember { member: member.clone(), tear: None }]
        }
        Fault::PowerLoss { tears } if !tears.is_empty() => vec![Fault::PowerLoss { tears: Default::default() }],
        // A shorter chain: without its last kill, then without its first.
        Fault::LeaderChase { steps } if steps.len() > 1 => vec![
            Fault::LeaderChase { steps: steps[..steps.len() - 1].to_vec() },
            Fault::LeaderChase { steps: steps[1..].to_vec() },
        ],
        _ => Vec::new(),
    }
}

fn fault_json(fault: &Fault) -> String {
    serde_json::to_string(fault).expect("a fault serializes")
}

fn describe_removal(start: usize, removed: &[FaultEvent]) -> String {
    let kinds: Vec<String> = removed.iter().map(|e| e.fault.kind().to_string()).collect();
    if removed.len() == 1 {
        format!("removed event {start} ({})", kinds[0])
    } else {
        format!("removed events {start}..{} ({})", start + removed.len(), kinds.join(", "))
    }
}

/// Why a seed cannot be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error("seed {seed} passes every invariant: nothing to shrink")]
    Passes { seed: u64 },
    #[error("seed {seed} runs no fault plan (--faults none): nothing to shrink; it fails with: {violated}")]
    NoPlan { seed: u64, violated: String },
    #[error("seed {seed} does not violate {invariant} (it violates: {violated})")]
    NotViolated { seed: u64, invariant: Property, violated: String },
    #[error("the seed's plan does not fit its scenario: {0}")]
    BadPlan(String),
}

/// What `kubesim shrink` found.
#[derive(Clone, Debug)]
pub struct ShrinkOutcome {
    /// The invariant every kept candidate violated.
    pub invariant: Property,
    /// Everything the seed violated with its original plan.
    pub originally_violated: BTreeSet<Property>,
    pub original_plan: FaultPlan,
    pub minimized: Minimized,
    /// The run of the final plan (the last accepted candidate, or the original).
    pub final_result: SeedResult,
}

/// The invariants a seed's result violates (or the seed's own property it broke).
pub fn violated(result: &SeedResult) -> BTreeSet<Property> {
    result.outcome.broken()
}

/// Broken properties by name, alphabetically, as the shrinker prints them.
pub fn names(properties: &BTreeSet<Property>) -> String {
    let mut names: Vec<&str> = properties.iter().map(|p| p.name()).collect();
    names.sort_unstable();
    names.join(", ")
}

/// Chooses which invariant to keep violating: the one asked for; else the invariant of a
/// planted bug, if violated; else the first violated one in the run's report order.
pub fn choose_invariant(
    result: &SeedResult,
    asked: Option<Property>,
    bug_invariants: &[Property],
) -> Result<Property, ShrinkError> {
    let all = violated(result);
    if all.is_empty() {
        return Err(ShrinkError::Passes { seed: result.seed });
    }
    if let Some(asked) = asked {
        return if all.contains(&asked) {
            Ok(asked)
        } else {
            Err(ShrinkError::NotViolated { seed: result.seed, invariant: asked, violated: names(&all) })
        };
    }
    if let Some(bug) = bug_invariants.iter().find(|bug| all.contains(bug)) {
        return Ok(*bug);
    }
    Ok(result.violations()[0].invariant)
}

/// Runs the seed, picks the invariant it violates, and minimizes its plan with the same
/// seed. `options` says what the seed runs (its plan, generated or saved, and its bugs).
pub fn shrink_seed(
    options: &RunOptions,
    asked_invariant: Option<Property>,
    bug_invariants: &[Property],
    max_runs: usize,
    wall_limit: Duration,
    on_start: &mut dyn FnMut(&SeedResult, Property, &FaultPlan),
    on_step: &mut dyn FnMut(&ShrinkStep),
) -> Result<ShrinkOutcome, ShrinkError> {
    let run = |faults: Faults| {
        let options = RunOptions { faults, ..options.clone() };
        run_guarded(&options, wall_limit, String::new())
    };
    let first = run(options.faults.clone());
    let invariant = choose_invariant(&first, asked_invariant, bug_invariants)?;
    let Some(original_plan) = options.plan() else {
        return Err(ShrinkError::NoPlan { seed: options.seed, violated: names(&violated(&first)) });
    };
    let topology = options.topology();
    original_plan.validate(&topology).map_err(|e| ShrinkError::BadPlan(e.to_string()))?;
    on_start(&first, invariant, &original_plan);
    let mut final_result = first.clone();
    let minimized = minimize(
        &original_plan,
        &topology,
        max_runs,
        |candidate| {
            let result = run(Faults::Plan(candidate.clone()));
            let fails = violated(&result).contains(&invariant);
            if fails {
                final_result = result;
            }
            fails
        },
        on_step,
    );
    Ok(ShrinkOutcome { invariant, originally_violated: violated(&first), original_plan, minimized, final_result })
}
