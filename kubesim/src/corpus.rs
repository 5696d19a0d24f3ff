//! The regression corpus (`ci/regressions/*.json`): one file per case, each a seed, a
//! scenario, a saved fault plan, the planted bugs switched on, and the verdict the case must
//! keep giving. CI replays every case (`tests/tests/regressions.rs`, `kubesim corpus`) and
//! fails naming the case whose verdict changed, so a found bug, once shrunk and saved
//! (`kubesim shrink --seed N --save ci/regressions/NAME.json`), stays found; and a passing
//! case that starts failing is a regression of the system.
//!
//! The format is versioned ([`CASE_FORMAT_VERSION`]) and strict: unknown fields, unknown
//! bugs, scenarios or invariants, a plan that does not fit the scenario, or a name that
//! differs from the file's name are errors naming the file and what is wrong.
//!
//! A case saves its plan rather than relying on the seed's swarm generation, and the knobs
//! it ran on rather than relying on the seed's pick ([`Knobs::for_seed`]), so a change to
//! the generator or to the knobs' draw does not silently change what the case runs.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use faults::PlanFile;
use serde::{Deserialize, Serialize};

use crate::campaign::{run_guarded, SeedResult};
use sim::bugs::PlantedBug;
use sim::knobs::Knobs;
use sim::runner::{Faults, RunOptions};
use sim::scenario::Scenario;
use verdict::outcome::Property;

/// The only case format this kubesim reads and writes.
pub const CASE_FORMAT_VERSION: u32 = 1;

/// One regression case, as stored in `ci/regressions/NAME.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub version: u32,
    /// Equals the file's name without `.json`.
    pub name: String,
    /// Why the case exists: what it caught, or what it shows passing.
    pub description: String,
    pub seed: u64,
    pub scenario: String,
    /// Planted bugs switched on (names from `kubesim bugs`).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// Every knob to run on (a knob left out takes its default). Absent, with `store`
    /// absent too: the knobs the seed picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knobs: Option<Knobs>,
    /// The store knobs of a case saved before every knob was recorded: members and
    /// entries per append, every other knob at its default (what such a case ran on).
    /// Not written any more; a case holds `knobs` or `store`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKnobs>,
    /// The cluster size the run fixed (`--kubelets`, `--replicas`; store members are in
    /// `knobs`); absent: the scenario's own.
    #[serde(default, skip_serializing_if = "sim::workload::Shape::is_default")]
    pub shape: sim::workload::Shape,
    /// The fault plan to replay, in either plan format (a version 1 plan is upgraded for
    /// the case's store, see `faults::plan::v1`); `null` runs the scenario's plain flow
    /// with no nemesis.
    pub plan: Option<PlanFile>,
    /// `pass`, or `caught-by: <invariant>`.
    pub expect: String,
}

/// The store knobs of a case saved before every knob was recorded (see [`Case::store`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreKnobs {
    /// Store members, 1 to [`Knobs::MAX_MEMBERS`].
    pub members: usize,
    /// Raft's cap on entries per append message; `null`: the member's default.
    pub max_entries_per_append: Option<usize>,
}

impl StoreKnobs {
    /// The full knob set such a case ran on.
    pub fn knobs(self) -> Knobs {
        Knobs { store_members: self.members, max_entries_per_append: self.max_entries_per_append, ..Knobs::default() }
    }
}

/// The verdict a case must give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Every invariant holds.
    Pass,
    /// This invariant (or the seed's own property: `no-panic`, `time-limit`) is among the
    /// broken ones (others may fail beside it).
    CaughtBy(Property),
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Pass => f.write_str("pass"),
            Expectation::CaughtBy(invariant) => write!(f, "caught-by: {invariant}"),
        }
    }
}

/// Why a case's `expect` cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpectationError {
    #[error("expect: expected \"pass\" or \"caught-by: <invariant>\", got {0:?}")]
    Shape(String),
    #[error("expect: unknown invariant {0:?} (known: {known})", known = Property::names().join(", "))]
    UnknownInvariant(String),
}

impl FromStr for Expectation {
    type Err = ExpectationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "pass" {
            return Ok(Expectation::Pass);
        }
        let Some(invariant) = text.strip_prefix("caught-by:") else {
            return Err(ExpectationError::Shape(text.to_string()));
        };
        let invariant = invariant.trim();
        invariant
            .parse::<Property>()
            .map(Expectation::CaughtBy)
            .map_err(|_| ExpectationError::UnknownInvariant(invariant.to_string()))
    }
}

impl Expectation {
    /// Whether what a run broke meets the expectation.
    pub fn holds(&self, broken: &BTreeSet<Property>) -> bool {
        match self {
            Expectation::Pass => broken.is_empty(),
            Expectation::CaughtBy(property) => broken.contains(property),
        }
    }
}

/// What is wrong inside a case (its file is named by [`CaseError::Invalid`]).
#[derive(Debug, thiserror::Error)]
pub enum CaseProblem {
    #[error("unsupported case version {0} (this kubesim reads version {CASE_FORMAT_VERSION})")]
    Version(u32),
    #[error("name {name:?} differs from the file's name {stem:?}")]
    NameDiffersFromFile { name: String, stem: String },
    #[error("scenario: {0}")]
    Scenario(#[from] sim::scenario::UnknownScenario),
    #[error(transparent)]
    Expect(#[from] ExpectationError),
    #[error("a case holds `knobs` or the older `store`, not both")]
    KnobsAndStore,
    #[error(transparent)]
    Knobs(#[from] sim::knobs::KnobError),
    #[error("shape: {0}")]
    Shape(#[from] sim::workload::ShapeError),
    #[error("bugs: {0}")]
    Bug(#[from] sim::bugs::UnknownBug),
    #[error("plan does not fit {scenario}: {source}")]
    PlanDoesNotFit { scenario: Scenario, source: faults::PlanError },
    #[error("plan: {0}")]
    Unsupported(#[from] sim::scenario::UnsupportedFault),
    #[error("holds no *.json regression case")]
    EmptyDirectory,
}

/// Why a case file cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a regression case: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: larger than {max} bytes; a case holds one plan and is far smaller")]
    TooLarge { path: String, max: u64 },
    #[error("{path}: unsupported case version {found} (this kubesim reads version {CASE_FORMAT_VERSION})")]
    Version { path: String, found: u32 },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: CaseProblem },
}

/// A case checked and ready to run.
#[derive(Clone, Debug)]
pub struct LoadedCase {
    pub case: Case,
    pub path: PathBuf,
    pub expect: Expectation,
    pub options: RunOptions,
}

impl Case {
    /// Checks everything but the file name and turns the case into run options.
    pub fn resolve(&self) -> Result<(RunOptions, Expectation), CaseProblem> {
        if self.version != CASE_FORMAT_VERSION {
            return Err(CaseProblem::Version(self.version));
        }
        let scenario: Scenario = self.scenario.parse()?;
        let expect: Expectation = self.expect.parse()?;
        let mut options = RunOptions::without_faults(self.seed, scenario.clone());
        let knobs = match (&self.knobs, self.store) {
            (Some(_), Some(_)) => return Err(CaseProblem::KnobsAndStore),
            (Some(knobs), None) => Some(knobs.clone()),
            (None, Some(store)) => Some(store.knobs()),
            (None, None) => None,
        };
        if let Some(knobs) = knobs {
            knobs.validate()?;
            knobs.apply(&mut options.cluster);
            options.seed_picks_knobs = false;
        }
        self.shape.validate()?;
        options = options.with_shape(self.shape);
        for name in &self.bugs {
            let bug: PlantedBug = name.parse()?;
            bug.plant(&mut options);
        }
        if let Some(plan) = &self.plan {
            let plan = plan
                .fit(&options.topology())
                .map_err(|source| CaseProblem::PlanDoesNotFit { scenario: scenario.clone(), source })?;
            options.faults = Faults::Plan(plan);
        }
        options.faults.check_supported_by(&scenario)?;
        Ok((options, expect))
    }

    /// The command that replays the case (with `--trace` for its detailed log), given the
    /// path its file is at.
    pub fn repro(path: &Path) -> String {
        format!("{} run --case {}", crate::cli::program(), path.display())
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a case serializes")
    }
}

/// The largest case file read: a case is a plan and a few fields
/// ([`faults::MAX_PLAN_FILE_BYTES`] at most).
pub const MAX_CASE_FILE_BYTES: u64 = faults::MAX_PLAN_FILE_BYTES + (1 << 20);

/// Reads and validates one case file.
pub fn load_case(path: &Path) -> Result<LoadedCase, CaseError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CASE_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|source| CaseError::Io { path: shown.clone(), source })?;
    if text.len() as u64 > MAX_CASE_FILE_BYTES {
        return Err(CaseError::TooLarge { path: shown, max: MAX_CASE_FILE_BYTES });
    }
    // The version first, so that a case from a future kubesim says so rather than failing
    // on whatever field it added.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    if let Ok(VersionOnly { version }) = serde_json::from_str::<VersionOnly>(&text) {
        if version != CASE_FORMAT_VERSION {
            return Err(CaseError::Version { path: shown, found: version });
        }
    }
    let case: Case = serde_json::from_str(&text).map_err(|source| CaseError::Json { path: shown.clone(), source })?;
    let invalid = |reason: CaseProblem| CaseError::Invalid { path: shown.clone(), reason };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if case.name != stem {
        return Err(invalid(CaseProblem::NameDiffersFromFile { name: case.name.clone(), stem: stem.to_string() }));
    }
    let (options, expect) = case.resolve().map_err(invalid)?;
    Ok(LoadedCase { case, path: path.to_path_buf(), expect, options })
}

/// Reads every `*.json` case of a directory, in file-name order. An empty directory is an
/// error: a corpus that holds nothing checks nothing.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedCase>, CaseError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|source| CaseError::Io { path: shown.clone(), source })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| CaseError::Io { path: shown.clone(), source })?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(CaseError::Invalid { path: shown, reason: CaseProblem::EmptyDirectory });
    }
    paths.iter().map(|path| load_case(path)).collect()
}

/// The outcome of replaying one case.
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    pub name: String,
    pub expect: Expectation,
    /// What the run broke: its outcome's [`Outcome::broken`](verdict::outcome::Outcome::broken).
    pub violated: BTreeSet<Property>,
    pub result: SeedResult,
}

impl CaseOutcome {
    pub fn held(&self) -> bool {
        self.expect.holds(&self.violated)
    }

    /// One line: `ok` or `CHANGED`, the case, what was expected and what happened.
    pub fn render(&self) -> String {
        let got = if self.violated.is_empty() {
            "pass".to_string()
        } else {
            format!("violated {}", crate::shrink::names(&self.violated))
        };
        let mark = if self.held() { "ok     " } else { "CHANGED" };
        format!("{mark} {}: expected {}, got {got}", self.name, self.expect)
    }
}

/// Replays one case (in a fresh runtime on its own thread, a panic or an overrun being a
/// failure of the seed, as in a campaign).
pub fn run_case(case: &LoadedCase, wall_limit: Duration) -> CaseOutcome {
    let repro = Case::repro(&case.path);
    let result = run_guarded(&case.options, wall_limit, repro);
    let violated = result.outcome.broken();
    CaseOutcome { name: case.case.name.clone(), expect: case.expect.clone(), violated, result }
}
