//! The regression workflow's commands: `kubesim shrink`, `kubesim merge` and `kubesim
//! corpus`, what they print and their exit codes (those of `cli`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use faults::{FaultPlan, PlanFile};

use crate::bugs::PlantedBug;
use crate::campaign::SeedResult;
use crate::cli::{out, parse_seed_range, BadInput, SeedFlags, EXIT_PASS, EXIT_VIOLATION};
use crate::corpus::{load_case, load_dir, run_case, Case, StoreKnobs, CASE_FORMAT_VERSION};
use crate::merge::{merge, read_results};
use crate::shrink::{shrink_seed, ShrinkError, ShrinkOutcome, ShrinkStep};

/// What `kubesim shrink` was asked.
pub struct ShrinkRequest {
    pub seed: u64,
    pub flags: SeedFlags,
    pub invariant: Option<String>,
    pub max_runs: usize,
    pub out: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub wall_limit: Duration,
}

pub fn shrink_command(request: &ShrinkRequest) -> Result<u8, BadInput> {
    let ShrinkRequest { seed, flags, invariant, max_runs, .. } = request;
    let options = flags.to_options(*seed)?;
    if *max_runs == 0 {
        return Err(BadInput("--max-runs: must be at least 1".into()));
    }
    if let Some(name) = invariant {
        name.parse::<crate::checkers::Invariant>().map_err(|e| BadInput(format!("--invariant: {e}")))?;
    }
    out(&format!("kubesim shrink --seed {seed}{} (at most {max_runs} runs)", flags.repro_flags()));
    let bug_invariants: Vec<&str> = flags.bugs.iter().map(|bug| bug.caught_by()).collect();
    let mut on_start = |first: &SeedResult, target: &str, plan: &FaultPlan| {
        let violated: Vec<&str> = first.violations.iter().map(|v| v.invariant.as_str()).collect();
        out(&format!("seed {seed} violates: {}", violated.join(", ")));
        out(&format!(
            "shrinking a plan of {} events, keeping candidates that still violate {target}",
            plan.events.len()
        ));
    };
    let mut on_step = |step: &ShrinkStep| {
        out(&format!("  run {:>3}: {} -> {} events", step.run, step.change, step.n_events));
    };
    // A candidate that panics is a finding of that run (recorded as `no-panic`), not of the
    // shrinker: keep its backtrace off the terminal, as a campaign does.
    std::panic::set_hook(Box::new(|_| {}));
    let shrunk = shrink_seed(
        &options,
        invariant.as_deref(),
        &bug_invariants,
        *max_runs,
        request.wall_limit,
        &mut on_start,
        &mut on_step,
    );
    let _ = std::panic::take_hook();
    let outcome = match shrunk {
        Ok(outcome) => outcome,
        Err(ShrinkError::Passes { seed }) => {
            out(&format!("seed {seed} passes every invariant: nothing to shrink"));
            return Ok(EXIT_PASS);
        }
        Err(e) => return Err(BadInput(e.to_string())),
    };
    report_shrink(request, &outcome)?;
    Ok(EXIT_VIOLATION)
}

fn report_shrink(request: &ShrinkRequest, outcome: &ShrinkOutcome) -> Result<(), BadInput> {
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
    let violated: Vec<&str> = outcome.final_result.violations.iter().map(|v| v.invariant.as_str()).collect();
    out(&format!("final run violates: {}", violated.join(", ")));
    out("final plan:");
    out(&minimized.plan.to_json_pretty());
    let mut replay_flags = request.flags.clone();
    replay_flags.faults = "all".into();
    match &request.out {
        Some(path) => {
            write_file(path, &format!("{}\n", minimized.plan.to_json_pretty()))?;
            replay_flags.plan = Some(path.clone());
            out(&format!("saved the plan to {}", path.display()));
            out(&format!("repro: kubesim run --seed {}{}", request.seed, replay_flags.repro_flags()));
        }
        None => {
            replay_flags.plan = Some(PathBuf::from("plan.json"));
            out(&format!(
                "repro (with the plan above saved as plan.json, or use --out FILE): kubesim run --seed {}{}",
                request.seed,
                replay_flags.repro_flags()
            ));
        }
    }
    if let Some(path) = &request.save {
        save_case(request, outcome, path)?;
    }
    Ok(())
}

fn save_case(request: &ShrinkRequest, outcome: &ShrinkOutcome, path: &Path) -> Result<(), BadInput> {
    let description = format!(
        "kubesim shrink --seed {}{}: {} -> {} fault events, still violating {}",
        request.seed,
        request.flags.repro_flags(),
        outcome.original_plan.events.len(),
        outcome.minimized.plan.events.len(),
        outcome.invariant
    );
    let expect = format!("caught-by: {}", outcome.invariant);
    let plan = Some(outcome.minimized.plan.clone());
    save_new_case(path, description, request.seed, &request.flags, plan, expect)
}

/// Writes a regression case to `path` (`ci/regressions/NAME.json`, NAME taken from the
/// file name) and reads it back through the corpus validator.
pub fn save_new_case(
    path: &Path,
    description: String,
    seed: u64,
    flags: &SeedFlags,
    plan: Option<FaultPlan>,
    expect: String,
) -> Result<(), BadInput> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|_| path.extension().is_some_and(|ext| ext == "json"))
        .ok_or_else(|| BadInput(format!("--save {}: expected a path like ci/regressions/NAME.json", path.display())))?;
    let case = Case {
        version: CASE_FORMAT_VERSION,
        name: name.to_string(),
        description,
        seed,
        scenario: flags.scenario.name().to_string(),
        bugs: flags.bugs.iter().map(|bug| PlantedBug::name(*bug).to_string()).collect(),
        store: Some(StoreKnobs::of(&flags.to_options(seed)?)),
        plan: plan.map(PlanFile::from),
        expect,
    };
    write_file(path, &format!("{}\n", case.to_json_pretty()))?;
    // Read it back through the validator the corpus test uses.
    load_case(path).map_err(|e| BadInput(format!("the saved case does not load back: {e}")))?;
    out(&format!("saved regression case {} (replay: {})", path.display(), Case::repro(path)));
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), BadInput> {
    std::fs::write(path, text).map_err(|e| BadInput(format!("{}: cannot write: {e}", path.display())))
}

pub fn merge_command(files: &[PathBuf], seeds: Option<&str>, out_path: Option<PathBuf>) -> Result<u8, BadInput> {
    let expected = seeds.map(parse_seed_range).transpose()?;
    let mut read = Vec::with_capacity(files.len());
    for path in files {
        let results = read_results(path).map_err(|e| BadInput(e.to_string()))?;
        read.push((path.display().to_string(), results));
    }
    let summary = merge(&read, expected).map_err(|e| BadInput(e.to_string()))?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    out(&format!("kubesim merge {}", names.join(" ")));
    if let Some(path) = &out_path {
        let mut text = String::new();
        for result in &summary.results {
            text.push_str(&serde_json::to_string(result).expect("seed results serialize"));
            text.push('\n');
        }
        write_file(path, &text)?;
    }
    out("(rates below use the sum of the seeds' wall times: what one worker would have spent)");
    out(summary.render().trim_end());
    if let Some(path) = out_path {
        out(&format!("results: {}", path.display()));
    }
    Ok(if summary.n_failed() == 0 { EXIT_PASS } else { EXIT_VIOLATION })
}

pub fn corpus_command(path: &Path, wall_limit: Duration) -> Result<u8, BadInput> {
    let cases = if path.is_dir() {
        load_dir(path).map_err(|e| BadInput(e.to_string()))?
    } else {
        vec![load_case(path).map_err(|e| BadInput(e.to_string()))?]
    };
    out(&format!("kubesim corpus {}: {} case(s)", path.display(), cases.len()));
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
