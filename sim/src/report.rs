//! What one seed produced: its [`Outcome`], and for the reader the scenario's timeline,
//! one report line per judged invariant, and the figures a campaign aggregates.

use serde::{Deserialize, Serialize};
use verdict::checkers::Verdict;
use verdict::outcome::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckStatus {
    Pass,
    Fail,
    /// A figure worth printing, not a verdict.
    Info,
}

/// One report line of a run: an invariant a checker judged, or a scenario's figure. The
/// seed's verdict is its [`Outcome`], not these lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The judged invariant's name (or `time-limit`); empty for a figure.
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

/// The violations a failed check's detail lists, in order, each with its simulated time
/// when it carries one: the detail reads `[12.345678s] message; [..] message; and N more`
/// ([`Check::of_verdict`]).
pub fn timed_violations(detail: &str) -> impl Iterator<Item = (Option<f64>, &str)> {
    detail.split("; [").map(|part| {
        let timed = part.strip_prefix('[').unwrap_or(part).split_once("s] ");
        match timed.and_then(|(time, message)| time.parse::<f64>().ok().map(|secs| (secs, message))) {
            Some((secs, message)) => (Some(secs), message),
            None => (None, part),
        }
    })
}

impl Check {
    /// The report line for this verdict: FAIL with the first violations, else PASS with
    /// the summary (a pass that examined nothing says so).
    pub fn of_verdict(verdict: &Verdict) -> Self {
        if verdict.passed() {
            let detail = if verdict.checked == 0 {
                format!("nothing to check (vacuous): {}", verdict.summary)
            } else {
                verdict.summary.clone()
            };
            return Check::pass(verdict.invariant.name(), detail);
        }
        const SHOWN: usize = 3;
        let mut parts: Vec<String> = verdict
            .violations
            .iter()
            .take(SHOWN)
            .map(|v| match v.at_ns {
                Some(at_ns) => format!("[{:.6}s] {}", at_ns as f64 / 1e9, v.message),
                None => v.message.clone(),
            })
            .collect();
        let n_more = verdict.violations.len().saturating_sub(SHOWN) + verdict.n_violations_omitted;
        if n_more > 0 {
            parts.push(format!("and {n_more} more"));
        }
        Check::fail(verdict.invariant.name(), parts.join("; "))
    }

    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), status: CheckStatus::Pass, detail: detail.into() }
    }
    pub(crate) fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), status: CheckStatus::Fail, detail: detail.into() }
    }

    pub fn info(detail: impl Into<String>) -> Self {
        Self { name: String::new(), status: CheckStatus::Info, detail: detail.into() }
    }
}

/// What a scenario hands back to the runner.
#[derive(Clone, Debug, Default)]
pub struct ScenarioOutcome {
    /// Human-readable timeline lines, already formatted with simulated time.
    pub timeline: Vec<String>,
    pub checks: Vec<Check>,
    pub stats: std::collections::BTreeMap<String, i64>,
    /// The store's members at the end of the run (after any replacement or restore),
    /// where the end-state reader reads the final keyspace; empty after a total loss.
    pub store_endpoints: std::collections::BTreeMap<store::api::MemberId, std::net::SocketAddr>,
}

/// The result of one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    pub scenario: String,
    /// What the seed came to: the verdict, from which everything else is read.
    pub outcome: Outcome,
    pub timeline: Vec<String>,
    /// The report's lines: each invariant judged, the scenario's figures.
    pub checks: Vec<Check>,
    /// One line per fault the nemesis applied, with its simulated time.
    pub faults: Vec<String>,
    /// Figures a scenario reports (restores, data-loss windows, ...).
    pub stats: std::collections::BTreeMap<String, i64>,
    pub trace_hash: String,
    pub simulated_secs: f64,
    pub messages_delivered: u64,
    pub history_records: usize,
    /// The coverage points the seed reached, with how many times each (see the
    /// `coverage` crate); not part of the history nor of the trace hash.
    #[serde(default)]
    pub coverage: std::collections::BTreeMap<String, u64>,
}

impl RunReport {
    /// Whether the seed counts as passed (a pass or a total loss): see [`Outcome::passed`].
    pub fn passed(&self) -> bool {
        self.outcome.passed()
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Fail)
    }

    /// The human-readable report `kubesim run` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("timeline ({}):\n", self.scenario));
        for line in &self.timeline {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str("checks:\n");
        for c in &self.checks {
            match c.status {
                CheckStatus::Info => out.push_str(&format!("  {}\n", c.detail)),
                CheckStatus::Pass => out.push_str(&format!("  PASS {}: {}\n", c.name, c.detail)),
                CheckStatus::Fail => out.push_str(&format!("  FAIL {}: {}\n", c.name, c.detail)),
            }
        }
        out.push_str(&render_coverage(&self.coverage));
        if !self.stats.is_empty() {
            let figures: Vec<String> = self.stats.iter().map(|(name, value)| format!("{name} {value}")).collect();
            out.push_str(&format!(
                "figures: {}
",
                figures.join(", ")
            ));
        }
        out.push_str(&format!(
            "simulated {:.1}s, {} messages delivered, {} history records\n",
            self.simulated_secs, self.messages_delivered, self.history_records
        ));
        let verdict = match &self.outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::TotalLoss { .. } => {
                "total-loss (every store disk lost with no good backup: the expected outcome, not a violation)"
                    .to_string()
            }
            Outcome::Fail { .. } | Outcome::Panic { .. } | Outcome::Timeout { .. } => "FAIL".to_string(),
        };
        out.push_str(&format!("verdict: {verdict}\n"));
        out.push_str(&format!("trace-hash: {}\n", self.trace_hash));
        out
    }
}

/// The coverage points one seed reached, as `kubesim run` prints them: one line per
/// component, each point with its count.
pub fn render_coverage(reached: &std::collections::BTreeMap<String, u64>) -> String {
    let mut out = format!("coverage: {} of {} points reached\n", reached.len(), coverage::N_POINTS);
    let mut by_component: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for (name, n) in reached {
        let (component, rest) = name.split_once('.').unwrap_or((name.as_str(), ""));
        by_component.entry(component).or_default().push(format!("{rest} x{n}"));
    }
    for (component, points) in by_component {
        out.push_str(&format!("  {component}: {}\n", points.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use verdict::checkers::{Invariant, Verdict, Violation};

    use super::*;

    fn verdict(violations: Vec<Violation>, checked: usize) -> Verdict {
        Verdict {
            invariant: Invariant::Linearizability,
            violations,
            n_violations_omitted: 0,
            checked,
            summary: "12 operations".into(),
        }
    }

    #[test]
    fn a_verdict_reads_as_pass_vacuous_pass_or_its_first_violations() {
        let pass = Check::of_verdict(&verdict(Vec::new(), 12));
        assert_eq!((pass.status, pass.detail.as_str()), (CheckStatus::Pass, "12 operations"));
        let vacuous = Check::of_verdict(&verdict(Vec::new(), 0));
        assert_eq!(vacuous.detail, "nothing to check (vacuous): 12 operations");
        let violation = |i: u64| Violation {
            invariant: Invariant::Linearizability,
            message: format!("read {i} saw the future"),
            at_ns: Some(i * 1_500_000_000),
        };
        let fail = Check::of_verdict(&verdict((1..=4).map(violation).collect(), 12));
        assert_eq!(fail.status, CheckStatus::Fail);
        assert_eq!(
            fail.detail,
            "[1.500000s] read 1 saw the future; [3.000000s] read 2 saw the future; \
             [4.500000s] read 3 saw the future; and 1 more"
        );
    }
}
