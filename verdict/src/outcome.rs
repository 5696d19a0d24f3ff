//! What one seed came to: the single result type that a run's report, a campaign's
//! results file, `merge`, the corpus and the planted-bug table share.
//!
//! A seed passes, ends in a total loss of the cluster state (the expected outcome of
//! docs/design.md §4.8: counted as passed, never printed as `pass`), violates invariants,
//! panics, or does not finish within a time limit. [`Outcome`] says which, with what was
//! found, and is serialized once — its `verdict` tag and fields sit in each JSON line of a
//! campaign's `--out` file — and read back as the same type by `merge` and the corpus.
//! Turning it into words is the renderer's business (`kubesim`'s reports).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::checkers::{Invariant, Verdict, Violation};

/// What a failure says was broken: one of the invariants the checkers judge, or a
/// property of the seed itself. Written as its kebab-case name (`linearizability`,
/// `no-panic`, `time-limit`) in results files, corpus cases and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// One of kubesim's invariants (docs/design.md §4).
    Invariant(Invariant),
    /// The simulated system never panics: a broken assertion is a found bug too.
    NoPanic,
    /// The seed ends within its simulated-time limit and its wall-clock limit.
    TimeLimit,
}

impl Property {
    /// The properties that are not invariants, as they are named.
    pub const OF_THE_SEED: [Property; 2] = [Property::NoPanic, Property::TimeLimit];

    pub fn name(self) -> &'static str {
        match self {
            Property::Invariant(invariant) => invariant.name(),
            Property::NoPanic => "no-panic",
            Property::TimeLimit => "time-limit",
        }
    }

    /// Every name a property may have, invariants first.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&str> = Invariant::known().iter().map(|i| i.name()).collect();
        names.extend(Property::OF_THE_SEED.iter().map(|p| p.name()));
        names
    }
}

impl From<Invariant> for Property {
    fn from(invariant: Invariant) -> Self {
        Property::Invariant(invariant)
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Property {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(property) = Property::OF_THE_SEED.into_iter().find(|p| p.name() == s) {
            return Ok(property);
        }
        s.parse::<Invariant>()
            .map(Property::Invariant)
            .map_err(|_| format!("unknown invariant '{s}' (known: {})", Property::names().join(", ")))
    }
}

impl Serialize for Property {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Property {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One piece of evidence, as an outcome keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Simulated time of the record that exposed it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ns: Option<u64>,
    pub message: String,
}

impl Finding {
    /// A checker's violation as an outcome keeps it.
    pub fn of(violation: &Violation) -> Self {
        Finding { at_ns: violation.at_ns, message: violation.message.clone() }
    }

    /// `[12.345678s] message`, or the message alone when it has no time.
    pub fn line(&self) -> String {
        match self.at_secs() {
            Some(secs) => format!("[{secs:.6}s] {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The simulated time in seconds, if the finding has one.
    pub fn at_secs(&self) -> Option<f64> {
        self.at_ns.map(|ns| ns as f64 / 1e9)
    }
}

/// An invariant a seed violated: its first findings, in the order they were found, and
/// how many more there were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violated {
    pub invariant: Invariant,
    /// At most [`Violated::KEPT`].
    pub first: Vec<Finding>,
    /// Findings beyond `first`.
    #[serde(default)]
    pub n_more: usize,
}

impl Violated {
    /// How many findings of one invariant an outcome keeps: enough to read the failure,
    /// few enough that a campaign's results stay small.
    pub const KEPT: usize = 3;

    /// The invariant's findings, kept to [`Violated::KEPT`]; `n_omitted` more were found
    /// and not kept by the checker already.
    pub fn of(invariant: Invariant, findings: impl IntoIterator<Item = Finding>, n_omitted: usize) -> Self {
        let mut first = Vec::new();
        let mut n_more = n_omitted;
        for finding in findings {
            if first.len() < Self::KEPT {
                first.push(finding);
            } else {
                n_more += 1;
            }
        }
        Violated { invariant, first, n_more }
    }
}

/// Which limit a seed that did not finish ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// Its simulated time reached the runner's limit: the run itself went on too long.
    SimulatedTime,
    /// It ran longer than the campaign allows in wall-clock time and was cancelled.
    WallClock,
}

/// What one seed came to. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every invariant held.
    Pass,
    /// Every store disk was lost with no good backup: the cluster state is gone. The
    /// expected outcome of docs/design.md §4.8, counted as passed but not a pass; the
    /// cluster's convergence is not judged after it.
    TotalLoss {
        /// Acknowledged objects the lost cluster held.
        acknowledged_objects_lost: u64,
        reason: String,
    },
    /// At least one invariant was violated; one entry per invariant, in the order the
    /// invariants are declared.
    Fail { violated: Vec<Violated> },
    /// The seed panicked: an assertion in the simulated system or the harness broke.
    Panic { message: String },
    /// The seed did not finish within a limit.
    Timeout { limit: Limit, detail: String },
}

impl Outcome {
    /// The outcome of a seed that ran to its end, from every checker's verdict (one
    /// `Violated` entry per failed invariant, in the verdicts' order) and whether the run
    /// ended in a total loss. A total loss never excuses a checker's finding: a checker
    /// that has nothing to judge after one (convergence) says so in its own verdict.
    pub fn of_run(verdicts: &[Verdict], total_loss: Option<(u64, String)>) -> Outcome {
        let mut violated: Vec<Violated> = Vec::new();
        for invariant in verdicts.iter().filter(|v| !v.passed()).map(|v| v.invariant) {
            if violated.iter().any(|v| v.invariant == invariant) {
                continue;
            }
            // Two checkers of one invariant (a scenario may register more than one): one entry.
            let failed = verdicts.iter().filter(|v| v.invariant == invariant && !v.passed());
            let n_omitted = failed.clone().map(|v| v.n_violations_omitted).sum();
            let findings = failed.flat_map(|v| v.violations.iter().map(Finding::of));
            violated.push(Violated::of(invariant, findings, n_omitted));
        }
        match (violated.is_empty(), total_loss) {
            (false, _) => Outcome::Fail { violated },
            (true, Some((acknowledged_objects_lost, reason))) => {
                Outcome::TotalLoss { acknowledged_objects_lost, reason }
            }
            (true, None) => Outcome::Pass,
        }
    }

    /// The name of the verdict: `pass`, `total-loss`, `fail`, `panic` or `timeout`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::TotalLoss { .. } => "total-loss",
            Outcome::Fail { .. } => "fail",
            Outcome::Panic { .. } => "panic",
            Outcome::Timeout { .. } => "timeout",
        }
    }

    /// Whether the seed counts as passed (exit 0): a pass or a total loss.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass | Outcome::TotalLoss { .. })
    }

    /// What the seed broke: the invariants it violated, or the seed's own property (it
    /// panicked, it did not finish). Empty for a seed that passed.
    pub fn broken(&self) -> BTreeSet<Property> {
        match self {
            Outcome::Pass | Outcome::TotalLoss { .. } => BTreeSet::new(),
            Outcome::Fail { violated } => violated.iter().map(|v| Property::Invariant(v.invariant)).collect(),
            Outcome::Panic { .. } => BTreeSet::from([Property::NoPanic]),
            Outcome::Timeout { .. } => BTreeSet::from([Property::TimeLimit]),
        }
    }

    /// Each broken property with its first finding, in order: (property, simulated time
    /// in ns if the finding has one, message). A panic's message and a timeout's detail
    /// are their one finding.
    pub fn first_findings(&self) -> Vec<(Property, Option<u64>, &str)> {
        match self {
            Outcome::Pass | Outcome::TotalLoss { .. } => Vec::new(),
            Outcome::Fail { violated } => violated
                .iter()
                .map(|v| {
                    let first = v.first.first();
                    (Property::Invariant(v.invariant), first.and_then(|f| f.at_ns), first.map_or("", |f| &f.message))
                })
                .collect(),
            Outcome::Panic { message } => vec![(Property::NoPanic, None, message)],
            Outcome::Timeout { detail, .. } => vec![(Property::TimeLimit, None, detail)],
        }
    }

    /// One line of text per broken property (`invariant`, message), the way summaries
    /// list them: a failure's first findings joined, a panic's message, a timeout's detail.
    pub fn lines(&self) -> Vec<(Property, String)> {
        match self {
            Outcome::Pass | Outcome::TotalLoss { .. } => Vec::new(),
            Outcome::Fail { violated } => violated
                .iter()
                .map(|v| {
                    let mut parts: Vec<String> = v.first.iter().map(Finding::line).collect();
                    if v.n_more > 0 {
                        parts.push(format!("and {} more", v.n_more));
                    }
                    (Property::Invariant(v.invariant), parts.join("; "))
                })
                .collect(),
            Outcome::Panic { message } => vec![(Property::NoPanic, message.clone())],
            Outcome::Timeout { detail, .. } => vec![(Property::TimeLimit, detail.clone())],
        }
    }
}
