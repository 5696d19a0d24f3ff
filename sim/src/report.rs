//! What one seed produced: the scenario's timeline, the verdict of each check, and the
//! figures a campaign aggregates.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckStatus {
    Pass,
    Fail,
    /// A figure worth printing, not a verdict.
    Info,
}

/// One checked property (or reported figure) of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), status: CheckStatus::Pass, detail: detail.into() }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
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
    pub timeline: Vec<String>,
    pub checks: Vec<Check>,
    /// One line per fault the nemesis applied, with its simulated time.
    pub faults: Vec<String>,
    /// Figures a scenario reports (restores, data-loss windows, ...).
    pub stats: std::collections::BTreeMap<String, i64>,
    pub trace_hash: String,
    pub simulated_secs: f64,
    pub messages_delivered: u64,
    pub history_records: usize,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
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
                CheckStatus::Pass => out.push_str(&format!("  PASS {}: {}\n", c.name, c.detail)),
                CheckStatus::Fail => out.push_str(&format!("  FAIL {}: {}\n", c.name, c.detail)),
                CheckStatus::Info => out.push_str(&format!("  {}\n", c.detail)),
            }
        }
        out.push_str(&format!(
            "simulated {:.1}s, {} messages delivered, {} history records\n",
            self.simulated_secs, self.messages_delivered, self.history_records
        ));
        out.push_str(&format!("verdict: {}\n", if self.passed() { "pass" } else { "FAIL" }));
        out.push_str(&format!("trace-hash: {}\n", self.trace_hash));
        out
    }
}
