//! The regression workflow's commands: `kubesim shrink`, `kubesim merge` and `kubesim
//! corpus`, what they print and their exit codes (those of `cli`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use faults::{FaultPlan, PlanFile};

use crate::campaign::SeedResult;
use crate::cli::{out, parse_seed_range, shell_quote, BadInput, CliError, SeedFlags, EXIT_PASS, EXIT_VIOLATION};
use crate::corpus::{load_case, load_dir, run_case, Case, CASE_FORMAT_VERSION};
use crate::merge::{merge, read_all_results};
use crate::shrink::{shrink_seed, ShrinkError, ShrinkOutcome, ShrinkStep};
use sim::bugs::PlantedBug;
use verdict::outcome::Property;

/// What `kubesim shrink` was asked.
pub struct ShrinkRequest {
    pub seed: u64,
    pub flags: SeedFlags,
    pub invariant: Option<String>,
    pub max_runs: usize,
    pub out: Option<Destination>,
    pub save: Option<Destination>,
    pub wall_limit: Duration,
}

/// A file a command will write at its end (`--out`, `--save`), checked before the run so
/// that a long run does not end in "cannot write".
#[derive(Clone, Debug)]
pub struct Destination {
    pub path: PathBuf,
}

impl Destination {
    /// A file that may be replaced (`shrink --out`): its directory must exist and the file
    /// must be writable.
    pub fn file(path: PathBuf) -> Result<Self, BadInput> {
        check_writable(&path, "--out")?;
        Ok(Self { path })
    }

    /// A regression case (`--save`): named `NAME.json`, writable, and not an existing file
    /// unless `force` (a corpus case is not overwritten by accident).
    pub fn case(path: PathBuf, force: bool) -> Result<Self, BadInput> {
        case_name(&path)?;
        if path.exists() && !force {
            return Err(BadInput(format!("--save {}: the file exists; pass --force to replace it", path.display())));
        }
        check_writable(&path, "--save")?;
        Ok(Self { path })
    }
}

/// The case name a `--save` path gives (`ci/regressions/NAME.json` → NAME).
fn case_name(path: &Path) -> Result<&str, BadInput> {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|_| path.extension().is_some_and(|ext| ext == "json"))
        .ok_or_else(|| BadInput(format!("--save {}: expected a path like ci/regressions/NAME.json", path.display())))
}

/// Whether `path` can be written, without changing an existing file: its directory exists,
/// it is not a directory, and opening it (or creating and removing it) works.
pub(crate) fn check_writable(path: &Path, flag: &str) -> Result<(), BadInput> {
    let bad = |reason: String| BadInput(format!("{flag} {}: {reason}", path.display()));
    if path.is_dir() {
        return Err(bad("is a directory".into()));
    }
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad(format!("the directory {} does not exist", dir.display())));
    }
    if path.exists() {
        std::fs::OpenOptions::new().append(true).open(path).map_err(|e| bad(format!("cannot write: {e}")))?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| bad(format!("cannot write: {e}")))?;
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A destination that could not be opened: a path the user gave that does not work is bad
/// input; a machine that cannot store it (disk full, read-only, I/O error) is operational.
pub fn destination_error(flag: &str, path: &Path, e: &std::io::Error) -> CliError {
    let message = format!("{flag} {}: cannot write: {e}", path.display());
    if is_operational(e) {
        CliError::Operational(message)
    } else {
        CliError::BadInput(message)
    }
}

fn is_operational(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    !matches!(
        e.kind(),
        ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::IsADirectory
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidFilename
            | ErrorKind::NotADirectory
            | ErrorKind::AlreadyExists
    )
}

pub fn shrink_command(request: &ShrinkRequest) -> Result<u8, CliError> {
    let ShrinkRequest { seed, flags, invariant, max_runs, .. } = request;
    let options = flags.to_options(*seed)?;
    if *max_runs == 0 {
        return Err(BadInput("--max-runs: must be at least 1".into()).into());
    }
    let asked = match invariant {
        Some(name) => Some(Property::from(
            name.parse::<verdict::checkers::Invariant>().map_err(|e| BadInput(format!("--invariant: {e}")))?,
        )),
        None => None,
    };
    let mut more_flags = String::new();
    if let Some(name) = invariant {
        more_flags.push_str(&format!(" --invariant {name}"));
    }
    for (flag, destination) in [("--out", &request.out), ("--save", &request.save)] {
        if let Some(destination) = destination {
            more_flags.push_str(&format!(" {flag} {}", shell_quote(&destination.path.display().to_string())));
        }
    }
    let program = crate::cli::program();
    out(&format!(
        "{program} shrink --seed {seed}{}{more_flags} --max-runs {max_runs} (at most {max_runs} runs)",
        flags.repro_flags()
    ));
    let bug_invariants: Vec<Property> = flags.bugs.iter().map(|bug| Property::from(bug.caught_by())).collect();
    let mut on_start = |first: &SeedResult, target: Property, plan: &FaultPlan| {
        out(&format!("seed {seed} violates: {}", broken_in_order(first)));
        out(&format!(
            "shrinking a plan of {} events, keeping candidates that still violate {target}",
            plan.events.len()
        ));
    };
    let mut on_step = |step: &ShrinkStep| {
        let actions = if step.n_actions > 0 { format!(", {} actions", step.n_actions) } else { String::new() };
        out(&format!("  run {:>3}: {} -> {} events{actions}", step.run, step.change, step.n_events));
    };
    // A candidate that panics is a finding of that run (recorded as `no-panic`), not of the
    // shrinker: keep its backtrace off the terminal, as a campaign does.
    std::panic::set_hook(Box::new(|_| {}));
    let shrunk =
        shrink_seed(&options, asked, &bug_invariants, *max_runs, request.wall_limit, &mut on_start, &mut on_step);
    let _ = std::panic::take_hook();
    let outcome = match shrunk {
        Ok(outcome) => outcome,
        Err(ShrinkError::Passes { seed }) => {
            out(&format!("seed {seed} passes every invariant: nothing to shrink"));
            return Ok(EXIT_PASS);
        }
        Err(e) => return Err(BadInput(e.to_string()).into()),
    };
    report_shrink(request, &outcome)?;
    Ok(EXIT_VIOLATION)
}

fn report_shrink(request: &ShrinkRequest, outcome: &ShrinkOutcome) -> Result<(), CliError> {
    let minimized = &outcome.minimized;
    let (before, after) = (outcome.original_plan.events.len(), minimized.plan.events.len());
    out(&format!(
        "shrunk in {} runs: {before} -> {after} events, {} simplifications; still violates {}",
        minimized.runs,
        minimized.steps.len(),
        outcome.invariant
    ));
    if minimized.budget_exhausted {
        out(&format!(
            "the run bound (--max-runs {}) was hit: a smaller plan may exist; rerun from the saved plan \
             (--plan FILE) or raise --max-runs",
            request.max_runs
        ));
    }
    out(&format!("final run violates: {}", broken_in_order(&outcome.final_result)));
    out("final plan:");
    out(&minimized.plan.to_json_pretty());
    let mut replay_flags = request.flags.clone();
    replay_flags.faults = "all".into();
    // The plan carries the workload.
    replay_flags.workload = None;
    match &request.out {
        Some(destination) => {
            let path = &destination.path;
            write_file(path, &format!("{}\n", minimized.plan.to_json_pretty()))?;
            replay_flags.plan = Some(path.clone());
            out(&format!("saved the plan to {}", path.display()));
            let program = crate::cli::program();
            out(&format!("repro: {program} run --seed {}{}", request.seed, replay_flags.repro_flags()));
        }
        None => {
            replay_flags.plan = Some(PathBuf::from("plan.json"));
            let program = crate::cli::program();
            out(&format!(
                "repro (with the plan above saved as plan.json, or use --out FILE): {program} run --seed {}{}",
                request.seed,
                replay_flags.repro_flags()
            ));
        }
    }
    if let Some(destination) = &request.save {
        save_case(request, outcome, destination)?;
    }
    Ok(())
}

/// What a result broke, in its report's order.
fn broken_in_order(result: &SeedResult) -> String {
    result.violations().iter().map(|v| v.invariant.name()).collect::<Vec<_>>().join(", ")
}

fn save_case(request: &ShrinkRequest, outcome: &ShrinkOutcome, destination: &Destination) -> Result<(), CliError> {
    let program = crate::cli::program();
    let description = format!(
        "{program} shrink --seed {}{}: {} -> {} fault events, still violating {}",
        request.seed,
        request.flags.repro_flags(),
        outcome.original_plan.events.len(),
        outcome.minimized.plan.events.len(),
        outcome.invariant
    );
    let expect = format!("caught-by: {}", outcome.invariant);
    let plan = Some(outcome.minimized.plan.clone());
    save_new_case(destination, description, request.seed, &request.flags, plan, expect)
}

/// Writes a regression case to `path` (`ci/regressions/NAME.json`, NAME taken from the
/// file name) and reads it back through the corpus validator.
pub fn save_new_case(
    destination: &Destination,
    description: String,
    seed: u64,
    flags: &SeedFlags,
    plan: Option<FaultPlan>,
    expect: String,
) -> Result<(), CliError> {
    let path = &destination.path;
    let name = case_name(path)?;
    let case = Case {
        version: CASE_FORMAT_VERSION,
        name: name.to_string(),
        description,
        seed,
        scenario: flags.scenario.name().to_string(),
        bugs: flags.bugs.iter().map(|bug| PlantedBug::name(*bug).to_string()).collect(),
        knobs: Some(flags.to_options(seed)?.knobs()),
        store: None,
        shape: sim::workload::Shape { store_members: None, ..flags.shape() },
        plan: plan.map(PlanFile::from),
        expect,
    };
    write_file(path, &format!("{}\n", case.to_json_pretty()))?;
    // Read it back through the validator the corpus test uses.
    load_case(path).map_err(|e| BadInput(format!("the saved case does not load back: {e}")))?;
    out(&format!("saved regression case {} (replay: {})", path.display(), Case::repro(path)));
    Ok(())
}

/// Writes `text` to `path` whole or not at all: into a temporary file beside it, then
/// renamed over it, so that a full disk leaves no half-written plan or case behind. Failing
/// here, after the run, is an operational error (exit 3).
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    let file_name = path.file_name().map_or_else(|| "out".into(), |name| name.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{file_name}.kubesim-tmp"));
    let written = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        CliError::Operational(format!("{}: cannot write: {e}", path.display()))
    })
}

/// `kubesim merge`'s options besides the files.
#[derive(Debug, Default)]
pub struct MergeRequest<'a> {
    pub seeds: Option<&'a str>,
    pub out: Option<PathBuf>,
    pub require_coverage: Option<&'a str>,
    pub junit: Option<PathBuf>,
    pub allow_mixed_builds: bool,
}

pub fn merge_command(files: &[PathBuf], request: MergeRequest<'_>) -> Result<u8, CliError> {
    let MergeRequest { seeds, out: out_path, require_coverage, junit, allow_mixed_builds } = request;
    let expected = seeds.map(parse_seed_range).transpose()?;
    let required = require_coverage
        .map(|menu| match coverage::Required::parse(menu) {
            Some(required @ (coverage::Required::Default | coverage::Required::DiskLoss)) => Ok(required),
            _ => Err(BadInput(format!("--require-coverage: expected default or disk-loss, got {menu:?}"))),
        })
        .transpose()?;
    if let Some(path) = &out_path {
        check_writable(path, "--out")?;
    }
    if let Some(path) = &junit {
        check_writable(path, "--junit")?;
    }
    let read = read_all_results(files).map_err(|e| BadInput(e.to_string()))?;
    if !allow_mixed_builds {
        crate::merge::check_one_build(&read).map_err(|e| BadInput(e.to_string()))?;
    }
    let summary = merge(&read, expected).map_err(|e| BadInput(e.to_string()))?;
    let names: Vec<String> = files.iter().map(|f| shell_quote(&f.display().to_string())).collect();
    let seeds_flag = seeds.map_or(String::new(), |seeds| format!(" --seeds {}", shell_quote(seeds)));
    let out_flag =
        out_path.as_ref().map_or(String::new(), |path| format!(" --out {}", shell_quote(&path.display().to_string())));
    let coverage_flag = require_coverage.map_or(String::new(), |menu| format!(" --require-coverage {menu}"));
    out(&format!("{} merge {}{seeds_flag}{out_flag}{coverage_flag}", crate::cli::program(), names.join(" ")));
    if let Some(path) = &out_path {
        let mut text = String::new();
        for result in &summary.results {
            text.push_str(&serde_json::to_string(result).expect("seed results serialize"));
            text.push('\n');
        }
        write_file(path, &text)?;
    }
    if let Some(path) = &junit {
        write_file(path, &crate::junit::render(&summary, &format!("kubesim merge {}", names.join(" "))))?;
    }
    out("(rates below use the sum of the seeds' wall times: what one worker would have spent)");
    out(summary.render().trim_end());
    if let Some(path) = out_path {
        out(&format!("results: {}", path.display()));
    }
    let mut missing = Vec::new();
    if let Some(required) = required {
        missing = summary.missing_required(required);
        if missing.is_empty() {
            out(&format!("coverage: every point required of the {} menu was reached", required.name()));
        }
        for name in &missing {
            let description = coverage::point(name).map_or("", |p| p.description);
            out(&format!("coverage FAILED: required point {name} ({description}) was reached by no seed"));
        }
    }
    Ok(if summary.n_failed() == 0 && missing.is_empty() { EXIT_PASS } else { EXIT_VIOLATION })
}

/// Where the corpus is by default, relative to the repository's root.
const CORPUS_DIR: &str = "ci/regressions";

/// The default corpus: `ci/regressions` under the current directory or the nearest parent
/// that has one (as git finds its repository from a subfolder).
fn find_corpus() -> Result<PathBuf, BadInput> {
    let here =
        std::env::current_dir().map_err(|e| BadInput(format!("corpus: cannot read the current directory: {e}")))?;
    here.ancestors().map(|dir| dir.join(CORPUS_DIR)).find(|candidate| candidate.is_dir()).ok_or_else(|| {
        BadInput(format!(
            "corpus: no {CORPUS_DIR} in {} or any parent: run it inside the kubesim repository, or name the \
             corpus (kubesim corpus PATH)",
            here.display()
        ))
    })
}

pub fn corpus_command(path: Option<&Path>, wall_limit: Duration) -> Result<u8, CliError> {
    let found;
    let path = match path {
        Some(path) => path,
        None => {
            found = find_corpus()?;
            &found
        }
    };
    let cases = if path.is_dir() {
        load_dir(path).map_err(|e| BadInput(e.to_string()))?
    } else {
        vec![load_case(path).map_err(|e| BadInput(e.to_string()))?]
    };
    out(&format!("{} corpus {}: {} case(s)", crate::cli::program(), path.display(), cases.len()));
    let mut changed = Vec::new();
    for case in &cases {
        let outcome = run_case(case, wall_limit);
        out(&outcome.render());
        if !outcome.held() {
            changed.push(case);
        }
    }
    if changed.is_empty() {
        out(&format!("every case gave its expected verdict ({})", cases.len()));
        return Ok(EXIT_PASS);
    }
    out(&format!("{} case(s) changed verdict; replay one with:", changed.len()));
    for case in changed {
        out(&format!("  {} --trace", Case::repro(&case.path)));
    }
    Ok(EXIT_VIOLATION)
}
