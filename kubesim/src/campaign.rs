//! Seeded fault campaigns: many seeds across worker threads, one JSON line per seed as it
//! finishes, and a summary grouped by violated invariant with the exact repro command of
//! each failing seed.
//!
//! This is the one place outside the simulation: it uses OS threads and the wall clock to
//! schedule seeds and to bound them, never to influence what a seed does. Each seed runs
//! in a fresh runtime on its own thread, so a seed's result does not depend on the number
//! of workers or on what ran before it.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use sim::report::RunReport;
use sim::runner::{run_seed_on_this_thread, RunOptions, SeedCancel};
use verdict::outcome::{Limit, Outcome, Property};

/// The outcome of one seed of a campaign: the JSON line written for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub scenario: String,
    /// What the seed came to. Its fields sit in the JSON line itself: `verdict` (`pass`,
    /// `total-loss`, `fail`, `panic`, `timeout`) and what goes with it (`violated`,
    /// `message`, `limit` and `detail`, ...), read back as the same type by `merge` and
    /// the corpus.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// One line per fault the nemesis applied.
    pub faults: Vec<String>,
    pub trace_hash: String,
    pub simulated_secs: f64,
    pub wall_ms: u64,
    pub messages_delivered: u64,
    /// Figures a scenario reports (restores, data-loss windows, ...).
    #[serde(default)]
    pub stats: BTreeMap<String, i64>,
    /// The command that replays this seed exactly.
    pub repro: String,
    /// The coverage points the seed reached, with how many times each.
    #[serde(default)]
    pub coverage: BTreeMap<String, u64>,
    /// The kubesim that ran the seed: its version and the git commit it was built from
    /// ([`BUILD`]), so that a seed is replayed where it was found; `merge` refuses to mix
    /// commits unless told to.
    #[serde(default)]
    pub built_from: String,
}

/// `VERSION+COMMIT` of this build: the crate version and the git commit the binary was
/// built from (`unknown` outside a git checkout; `-dirty` with uncommitted changes).
pub const BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("KUBESIM_GIT_COMMIT"));

/// One broken property of a seed with its findings in one line, as summaries list them
/// (see [`Outcome::lines`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ViolationLine {
    pub invariant: Property,
    pub message: String,
}

impl SeedResult {
    /// A record of `seed` with nothing in it yet (for tests and tools that build records).
    pub fn empty(seed: u64) -> Self {
        Self {
            seed,
            scenario: String::new(),
            outcome: Outcome::Pass,
            faults: Vec::new(),
            trace_hash: String::new(),
            simulated_secs: 0.0,
            wall_ms: 0,
            messages_delivered: 0,
            stats: BTreeMap::new(),
            repro: String::new(),
            coverage: BTreeMap::new(),
            built_from: BUILD.to_string(),
        }
    }

    /// Whether the seed counts as passed (a pass or a total loss).
    pub fn passed(&self) -> bool {
        self.outcome.passed()
    }

    /// The verdict's name: `pass`, `total-loss`, `fail`, `panic` or `timeout`.
    pub fn verdict(&self) -> &'static str {
        self.outcome.name()
    }

    /// Each broken property with its findings in one line.
    pub fn violations(&self) -> Vec<ViolationLine> {
        self.outcome.lines().into_iter().map(|(invariant, message)| ViolationLine { invariant, message }).collect()
    }

    fn from_report(report: &RunReport, wall_ms: u64, repro: String) -> Self {
        Self {
            seed: report.seed,
            scenario: report.scenario.clone(),
            outcome: report.outcome.clone(),
            faults: report.faults.clone(),
            trace_hash: report.trace_hash.clone(),
            simulated_secs: report.simulated_secs,
            wall_ms,
            messages_delivered: report.messages_delivered,
            stats: report.stats.clone(),
            repro,
            coverage: report.coverage.clone(),
            built_from: BUILD.to_string(),
        }
    }

    /// A failed record of `seed` for tests: `invariant` violated with the findings of
    /// `text`, written as a report line reads (`[12.5s] message; [13.0s] message`).
    #[cfg(test)]
    pub(crate) fn failing(seed: u64, invariant: verdict::checkers::Invariant, text: &str) -> Self {
        let findings = sim::report::timed_violations(text).map(|(secs, message)| verdict::outcome::Finding {
            at_ns: secs.map(|secs| (secs * 1e9).round() as u64),
            message: message.to_string(),
        });
        let violated = vec![verdict::outcome::Violated::of(invariant, findings, 0)];
        Self { outcome: Outcome::Fail { violated }, ..Self::empty(seed) }
    }

    /// A seed that produced no report: it panicked or was stopped.
    fn crashed(options: &RunOptions, outcome: Outcome, wall_ms: u64, repro: String) -> Self {
        Self {
            seed: options.seed,
            scenario: options.scenario.name().to_string(),
            outcome,
            faults: Vec::new(),
            trace_hash: String::new(),
            simulated_secs: 0.0,
            wall_ms,
            messages_delivered: 0,
            stats: BTreeMap::new(),
            repro,
            coverage: BTreeMap::new(),
            built_from: BUILD.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CampaignOptions {
    pub seeds: std::ops::Range<u64>,
    pub jobs: usize,
    /// Builds the options of one seed (scenario, faults, bugs).
    pub template: RunOptions,
    /// The command-line flags that, with `--seed N`, replay a seed (for repro lines).
    pub repro_flags: String,
    /// A seed taking longer than this (wall clock) is recorded as a timeout failure.
    pub wall_limit: Duration,
}

/// Runs one seed in a fresh runtime on its own thread, turning a panic or a wall-clock
/// overrun into a failed `SeedResult` instead of taking the campaign down.
///
/// A seed that overruns `wall_limit` is cancelled ([`SeedCancel`]): its thread stops
/// at its simulation's next history record and frees what it built. The guard waits for
/// that up to [`CANCEL_GRACE`]; a seed whose thread does not stop even then (a single step
/// that never returns, or a simulation that never records again) is left behind, and its
/// result says so.
pub fn run_guarded(options: &RunOptions, wall_limit: Duration, repro: String) -> SeedResult {
    run_guarded_with(options, wall_limit, repro, &SeedCancel::default())
}

/// How long a cancelled seed's thread has to stop before the guard gives up on it.
pub const CANCEL_GRACE: Duration = Duration::from_secs(60);

/// As [`run_guarded`], with the seed's cancellation handle in the caller's hands (a test
/// can watch the seed stop).
pub fn run_guarded_with(options: &RunOptions, wall_limit: Duration, repro: String, cancel: &SeedCancel) -> SeedResult {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let seed_options = options.clone();
    let seed_cancel = cancel.clone();
    let spawned = std::thread::Builder::new().name(format!("seed-{}", options.seed)).spawn(move || {
        // This thread is the seed's own fresh thread: run it here rather than on yet another.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_seed_on_this_thread(&seed_options, &seed_cancel).0
        }));
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        let message = format!("could not start a thread for the seed: {e}");
        return SeedResult::crashed(options, Outcome::Panic { message }, 0, repro);
    }
    let result = rx.recv_timeout(wall_limit);
    let wall_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(Ok(report)) => SeedResult::from_report(&report, wall_ms, repro),
        Ok(Err(payload)) => {
            let message = panic_message(payload.as_ref());
            SeedResult::crashed(options, Outcome::Panic { message }, wall_ms, repro)
        }
        Err(_) => {
            cancel.cancel();
            let stopped = match rx.recv_timeout(CANCEL_GRACE) {
                Ok(_) => "the seed was stopped".to_string(),
                Err(_) => format!(
                    "the seed's thread did not stop within {}s of being cancelled and was left running",
                    CANCEL_GRACE.as_secs()
                ),
            };
            let message = format!("exceeded the wall-clock limit of {}s; {stopped}", wall_limit.as_secs());
            let outcome = Outcome::Timeout { limit: Limit::WallClock, detail: message };
            SeedResult::crashed(options, outcome, wall_ms, repro)
        }
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// What a campaign hands back once every seed finished.
#[derive(Clone, Debug, Default)]
pub struct CampaignSummary {
    pub results: Vec<SeedResult>,
    pub wall_secs: f64,
}

impl CampaignSummary {
    pub fn n_failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }

    /// Failing seeds grouped by the invariant they violated (a seed may appear under
    /// several).
    pub fn by_invariant(&self) -> BTreeMap<String, Vec<&SeedResult>> {
        let mut groups: BTreeMap<String, Vec<&SeedResult>> = BTreeMap::new();
        for r in &self.results {
            let mut names: Vec<&str> = r.outcome.broken().into_iter().map(Property::name).collect();
            names.sort();
            names.dedup();
            for name in names {
                groups.entry(name.to_string()).or_default().push(r);
            }
        }
        for seeds in groups.values_mut() {
            seeds.sort_by_key(|r| r.seed);
        }
        groups
    }

    /// Failing seeds grouped by failure signature ([`crate::signature`]), seeds ascending
    /// in each group (a seed may appear under several, one per violated invariant).
    pub fn by_signature(&self) -> BTreeMap<crate::signature::Signature, Vec<&SeedResult>> {
        let mut groups: BTreeMap<crate::signature::Signature, Vec<&SeedResult>> = BTreeMap::new();
        for r in self.results.iter().filter(|r| !r.passed()) {
            for signature in crate::signature::of_result(r) {
                groups.entry(signature).or_default().push(r);
            }
        }
        for seeds in groups.values_mut() {
            seeds.sort_by_key(|r| r.seed);
            seeds.dedup_by_key(|r| r.seed);
        }
        groups
    }

    /// For every declared coverage point, how many seeds reached it (points no longer
    /// declared, from an older results file, are kept under their name).
    pub fn coverage_seeds(&self) -> BTreeMap<String, u64> {
        let mut seeds: BTreeMap<String, u64> = coverage::POINTS.iter().map(|p| (p.name.to_string(), 0)).collect();
        for r in &self.results {
            for name in r.coverage.keys() {
                *seeds.entry(name.clone()).or_default() += 1;
            }
        }
        seeds
    }

    /// The declared points required of `menu`'s campaign that no seed reached.
    pub fn missing_required(&self, menu: coverage::Required) -> Vec<&'static str> {
        let seeds = self.coverage_seeds();
        coverage::POINTS
            .iter()
            .filter(|p| p.required == menu && seeds.get(p.name).copied().unwrap_or(0) == 0)
            .map(|p| p.name)
            .collect()
    }

    /// The summary's coverage section: every point with the number of seeds that reached
    /// it, then the blind spots (points no seed reached).
    pub fn render_coverage(&self) -> String {
        let n = self.results.len();
        let seeds = self.coverage_seeds();
        let reached = seeds.values().filter(|&&k| k > 0).count();
        let mut out = format!("coverage: {reached} of {} points reached (seeds reaching each):\n", seeds.len());
        for (name, k) in &seeds {
            let required = coverage::point(name).map_or("", |p| match p.required {
                coverage::Required::Default => " [required: default]",
                coverage::Required::DiskLoss => " [required: disk-loss]",
                coverage::Required::No => "",
            });
            out.push_str(&format!("  {name}: {k} ({:.1}%){required}\n", 100.0 * *k as f64 / n.max(1) as f64));
        }
        let blind: Vec<&str> = seeds.iter().filter(|(_, &k)| k == 0).map(|(name, _)| name.as_str()).collect();
        if blind.is_empty() {
            out.push_str("blind spots: none\n");
        } else {
            out.push_str(&format!("blind spots ({}, reached by no seed): {}\n", blind.len(), blind.join(", ")));
        }
        out
    }

    pub fn render(&self) -> String {
        if self.results.is_empty() {
            return "0 seeds run: the range holds no seed of this shard\n".to_string();
        }
        let mut out = self.render_totals();
        out.push_str(&self.render_losses());
        out.push_str(&self.render_coverage());
        out.push_str(&self.render_violations());
        out.push_str(&self.render_signatures());
        out
    }

    /// The campaign's size, speed and every stat summed over its seeds.
    fn render_totals(&self) -> String {
        let n = self.results.len();
        let simulated: f64 = self.results.iter().map(|r| r.simulated_secs).sum();
        let messages: u64 = self.results.iter().map(|r| r.messages_delivered).sum();
        let wall = self.wall_secs.max(1e-9);
        let mut out = format!(
            "{n} seeds, {} passed, {} failed in {:.1}s wall: {:.1} seeds/s, {:.0}x simulated time per wall second, {:.0} messages/s\n",
            n - self.n_failed(),
            self.n_failed(),
            self.wall_secs,
            n as f64 / wall,
            simulated / wall,
            messages as f64 / wall,
        );
        let mut stats: BTreeMap<&str, i64> = BTreeMap::new();
        for r in &self.results {
            for (k, v) in &r.stats {
                *stats.entry(k.as_str()).or_default() += v;
            }
        }
        for (k, v) in stats {
            out.push_str(&format!("  {k}: {v}\n"));
        }
        out
    }

    /// The seeds that lost everything (expected) and the data-loss windows of the others.
    fn render_losses(&self) -> String {
        let mut out = String::new();
        // Seed lists stay a few lines long whatever the campaign's size; the results file
        // has every seed.
        let total_losses: Vec<u64> =
            self.results.iter().filter(|r| matches!(r.outcome, Outcome::TotalLoss { .. })).map(|r| r.seed).collect();
        if !total_losses.is_empty() {
            out.push_str(&format!(
                "total-loss (expected, counted as passed): {} seed(s): {}\n",
                total_losses.len(),
                first_few(total_losses.iter().map(u64::to_string), MAX_SEEDS_LISTED)
            ));
        }
        let windows: Vec<(u64, i64, i64)> = self
            .results
            .iter()
            .filter(|r| r.stats.get("data-loss-writes").copied().unwrap_or(0) > 0)
            .map(|r| (r.seed, r.stats["data-loss-writes"], r.stats.get("data-loss-bytes").copied().unwrap_or(0)))
            .collect();
        if let Some(&(largest, writes, bytes)) =
            windows.iter().max_by_key(|(seed, writes, _)| (*writes, Reverse(*seed)))
        {
            out.push_str(&format!(
                "data-loss windows: {} seed(s), {} writes / {} bytes in all, the largest seed {largest} ({writes} writes / {bytes} bytes)\n",
                windows.len(),
                windows.iter().map(|w| w.1).sum::<i64>(),
                windows.iter().map(|w| w.2).sum::<i64>(),
            ));
        }
        out
    }

    /// Each violated invariant with its first seeds, their messages and repro commands.
    fn render_violations(&self) -> String {
        let mut out = String::new();
        for (invariant, seeds) in self.by_invariant() {
            out.push_str(&format!("violated {invariant}: {} seed(s)\n", seeds.len()));
            for r in seeds.iter().take(10) {
                let lines = r.violations();
                let message = lines.iter().find(|v| v.invariant.name() == invariant).map_or("", |v| v.message.as_str());
                out.push_str(&format!(
                    "  seed {}: {}\n    repro: {}\n",
                    r.seed,
                    abbreviate(message, MAX_MESSAGE_CHARS),
                    r.repro
                ));
            }
            if seeds.len() > 10 {
                out.push_str(&format!("  ... and {} more\n", seeds.len() - 10));
            }
        }
        out
    }

    /// The failure signatures, the most frequent first.
    fn render_signatures(&self) -> String {
        let mut out = String::new();
        let signatures = self.by_signature();
        if !signatures.is_empty() {
            out.push_str(&format!("failure signatures ({}):\n", signatures.len()));
            let mut ordered: Vec<_> = signatures.iter().collect();
            ordered.sort_by_key(|(signature, seeds)| (Reverse(seeds.len()), seeds[0].seed, signature.id()));
            for (signature, seeds) in ordered {
                out.push_str(&format!(
                    "  [{}] {}: {} seed(s), smallest {}\n    {}\n",
                    signature.id(),
                    abbreviate(&signature.describe(), MAX_MESSAGE_CHARS),
                    seeds.len(),
                    seeds[0].seed,
                    seeds[0].repro
                ));
            }
        }
        out
    }
}

/// A violation message longer than this is shortened in the summary (the results file
/// and `kubesim run` have it whole).
const MAX_MESSAGE_CHARS: usize = 400;

/// `s` cut to about `max_chars` in the middle: messages name the subject first and the
/// fact that breaks the invariant last ("... had 6 live pods ... while the deployment was
/// never asked for more than 5"), so both ends are kept.
fn abbreviate(s: &str, max_chars: usize) -> String {
    let n_chars = s.chars().count();
    if n_chars <= max_chars {
        return s.to_string();
    }
    let (head, tail) = (max_chars * 3 / 5, max_chars * 2 / 5);
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n_chars - tail).collect();
    format!("{start} [...] {end}")
}

/// The most seeds one process runs in a campaign (after its shard) or merges: the summary
/// keeps every seed's result, a few KB each, so memory grows with the seeds run. A larger
/// campaign runs in shards (`--shard K/N`), each in its own process.
pub const MAX_SEEDS_PER_RUN: u64 = 1_000_000;

/// A campaign stopped because its results could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {done} seeds, {failed} failed)")]
pub struct CampaignWriteError {
    #[source]
    pub error: std::io::Error,
    /// Seeds finished when writing failed.
    pub done: usize,
    /// How many of them failed.
    pub failed: usize,
}

/// Runs the campaign: `jobs` workers take seeds in order; each result is written to `out`
/// (one JSON line, flushed) as soon as it finishes, and `progress` is told.
pub fn run_campaign(
    options: &CampaignOptions,
    out: Option<&mut dyn Write>,
    progress: &dyn Fn(&SeedResult, usize),
) -> Result<CampaignSummary, CampaignWriteError> {
    run_campaign_shard(options, crate::merge::Shard::WHOLE, out, progress)
}

/// As [`run_campaign`], over only the seeds of `options.seeds` in `shard` (see
/// [`crate::merge`] for how a range is sliced and merged back). Seeds are handed out by
/// their position in the shard, so nothing proportional to the range is built.
pub fn run_campaign_shard(
    options: &CampaignOptions,
    shard: crate::merge::Shard,
    mut out: Option<&mut dyn Write>,
    progress: &dyn Fn(&SeedResult, usize),
) -> Result<CampaignSummary, CampaignWriteError> {
    let started = Instant::now();
    let n_seeds = shard.count_in(options.seeds.clone());
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<SeedResult>();
    let mut results = Vec::with_capacity(n_seeds.min(MAX_SEEDS_PER_RUN) as usize);
    let n_workers = (options.jobs.max(1) as u64).min(n_seeds.max(1));
    std::thread::scope(|scope| -> Result<(), CampaignWriteError> {
        for _ in 0..n_workers {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                let Some(seed) = shard.nth_in(options.seeds.clone(), idx) else { break };
                let seed_options = options.template.for_seed(seed);
                let repro = format!("{} run --seed {seed}{}", crate::cli::program(), options.repro_flags);
                if tx.send(run_guarded(&seed_options, options.wall_limit, repro)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for result in rx {
            if let Some(out) = out.as_deref_mut() {
                let line = serde_json::to_string(&result).expect("seed results serialize");
                let written = out.write_all(format!("{line}\n").as_bytes()).and_then(|()| out.flush());
                if let Err(error) = written {
                    // Stop handing out seeds; the workers finish the ones they hold.
                    next.store(u64::MAX, Ordering::Relaxed);
                    results.push(result);
                    let failed = results.iter().filter(|r| !r.passed()).count();
                    return Err(CampaignWriteError { error, done: results.len(), failed });
                }
            }
            results.push(result);
            progress(results.last().expect("just pushed"), results.len());
        }
        Ok(())
    })?;
    results.sort_by_key(|r| r.seed);
    Ok(CampaignSummary { results, wall_secs: started.elapsed().as_secs_f64() })
}

/// How many seeds a summary line lists before "... and N more".
const MAX_SEEDS_LISTED: usize = 20;

/// The first `max` items joined with ", ", and how many more there are.
fn first_few(items: impl ExactSizeIterator<Item = String>, max: usize) -> String {
    let n = items.len();
    let mut listed: Vec<String> = items.take(max).collect();
    if n > max {
        listed.push(format!("... and {} more", n - max));
    }
    listed.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seed: u64, outcome: Outcome, data_loss_writes: i64) -> SeedResult {
        let mut stats = BTreeMap::new();
        if data_loss_writes > 0 {
            stats.insert("data-loss-writes".to_string(), data_loss_writes);
            stats.insert("data-loss-bytes".to_string(), data_loss_writes * 10);
        }
        SeedResult {
            seed,
            scenario: "deploy-nginx".into(),
            outcome,
            faults: Vec::new(),
            trace_hash: "0".into(),
            simulated_secs: 1.0,
            wall_ms: 1,
            messages_delivered: 1,
            stats,
            repro: format!("kubesim run --seed {seed}"),
            coverage: BTreeMap::new(),
            built_from: BUILD.to_string(),
        }
    }

    /// The guard's side of a timeout: a seed far longer than its limit (twenty minutes of
    /// simulated time against a limit of 50 ms of wall time) is recorded as a timeout and
    /// cancelled, and the guard sees its thread stop (it waits for the thread's last word).
    #[test]
    fn a_seed_past_its_wall_clock_limit_is_stopped() {
        let mut options = RunOptions::new(3, sim::scenario::Scenario::DeployNginx);
        options.faults = sim::runner::Faults::Plan(faults::FaultPlan::empty(
            faults::MAX_SAFETY_PHASE_MS,
            faults::MAX_LIVENESS_PHASE_MS,
        ));
        let cancel = SeedCancel::default();
        let result = run_guarded_with(&options, Duration::from_millis(50), "repro".into(), &cancel);
        let Outcome::Timeout { limit: Limit::WallClock, detail } = &result.outcome else {
            panic!("a timeout: {:?}", result.outcome)
        };
        assert!(detail.ends_with("the seed was stopped"), "{detail}");
        assert_eq!(result.outcome.broken(), std::collections::BTreeSet::from([Property::TimeLimit]));
        assert!(cancel.is_cancelled() && !cancel.is_running());
    }

    /// A campaign of thousands of seeds keeps a summary of a few lines.
    #[test]
    fn long_seed_lists_are_cut_short_in_the_summary() {
        let results = (0..30)
            .map(|seed| {
                let lost = Outcome::TotalLoss { acknowledged_objects_lost: 3, reason: "every disk lost".into() };
                result(seed, lost, (seed as i64 % 7) + 1)
            })
            .collect();
        let summary = CampaignSummary { results, wall_secs: 1.0 }.render();
        let total_loss = summary.lines().find(|l| l.starts_with("total-loss")).expect("a total-loss line");
        assert!(total_loss.contains("30 seed(s): 0, 1, 2,"), "{total_loss}");
        assert!(total_loss.ends_with(", 19, ... and 10 more"), "{total_loss}");
        let windows = summary.lines().find(|l| l.starts_with("data-loss windows")).expect("a data-loss line");
        // Writes 1..=7 repeating over 30 seeds: 4 full cycles (28 each) and 1 + 2.
        assert_eq!(
            windows,
            "data-loss windows: 30 seed(s), 115 writes / 1150 bytes in all, the largest seed 6 (7 writes / 70 bytes)"
        );
    }
}
