//! The regression corpus (`ci/regressions/*.json`): every case replays with its expected
//! verdict, and a changed verdict fails naming the case. Also: the case format is strict
//! and says what is wrong with a bad file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubesim::corpus::{load_case, load_dir, run_case, CaseError, CaseOutcome, Expectation, LoadedCase};
use verdict::checkers::Invariant;
use verdict::outcome::Property;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/regressions")
}

/// Runs cases on as many threads as there are cores, each in its own runtime.
fn run_all(cases: &[LoadedCase]) -> Vec<CaseOutcome> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut outcomes = Vec::new();
    for batch in cases.chunks(workers) {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                batch.iter().map(|case| scope.spawn(move || run_case(case, Duration::from_secs(900)))).collect();
            outcomes.extend(handles.into_iter().map(|h| h.join().expect("run_case catches panics")));
        });
    }
    outcomes
}

#[test]
fn every_corpus_case_gives_its_expected_verdict() {
    let cases = load_dir(&corpus_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(cases.len() >= 5, "the corpus holds {} cases", cases.len());
    assert!(cases.iter().any(|c| c.expect == Expectation::Pass), "the corpus holds passing cases");
    let outcomes = run_all(&cases);
    let changed: Vec<String> = outcomes.iter().filter(|o| !o.held()).map(CaseOutcome::render).collect();
    assert!(
        changed.is_empty(),
        "{} corpus case(s) changed verdict (replay: kubesim run --case ci/regressions/NAME.json --trace):\n{}",
        changed.len(),
        changed.join("\n")
    );
}

/// The must-fire half: the same replay with a flipped expectation reports the case as
/// changed, by name.
#[test]
fn a_changed_verdict_is_reported_naming_the_case() {
    let mut cases = load_dir(&corpus_dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut case = cases.iter().position(|c| c.expect == Expectation::Pass).map(|idx| cases.swap_remove(idx)).unwrap();
    case.expect = Expectation::CaughtBy(Invariant::Linearizability.into());
    let outcome = run_case(&case, Duration::from_secs(900));
    assert!(!outcome.held());
    assert_eq!(outcome.render(), format!("CHANGED {}: expected caught-by: linearizability, got pass", case.case.name));
}

#[test]
fn expectations_hold_or_not() {
    let violated = |names: &[&str]| names.iter().map(|n| n.parse::<Property>().unwrap()).collect();
    assert!(Expectation::Pass.holds(&violated(&[])));
    assert!(!Expectation::Pass.holds(&violated(&["convergence"])));
    let caught: Expectation = "caught-by: convergence".parse().unwrap();
    assert!(caught.holds(&violated(&["convergence", "linearizability"])));
    assert!(!caught.holds(&violated(&["linearizability"])));
    assert!(!caught.holds(&violated(&[])));
    assert_eq!(caught.to_string(), "caught-by: convergence");
}

/// Writes `text` as `NAME.json` in a fresh directory and loads it.
fn load(name: &str, text: &str) -> Result<LoadedCase, CaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.json"));
    std::fs::write(&path, text).unwrap();
    load_case(&path)
}

const GOOD: &str = r#"{
  "version": 1,
  "name": "good",
  "description": "a pause of the scheduler",
  "seed": 3,
  "scenario": "deploy-nginx",
  "bugs": ["replicaset-no-expectations"],
  "plan": {"version": 1, "safety_phase_ms": 30000, "liveness_phase_ms": 30000,
    "events": [{"at_ms": 100, "duration_ms": 500, "fault": {"kind": "pause", "target": "scheduler"}}]},
  "expect": "caught-by: convergence"
}"#;

#[track_caller]
fn assert_refused(name: &str, text: &str, expected: &str) {
    let error = load(name, text).map(|c| c.case).unwrap_err().to_string();
    assert!(error.contains(expected), "expected an error containing {expected:?}, got {error:?}");
    assert!(error.contains(&format!("{name}.json")), "the error names the file: {error}");
}

#[test]
fn a_well_formed_case_loads() {
    let case = load("good", GOOD).unwrap();
    assert_eq!(case.expect, Expectation::CaughtBy(Invariant::Convergence.into()));
    assert_eq!(case.options.seed, 3);
    assert!(case.options.cluster.replicaset_no_expectations);
    let plain = load(
        "plain",
        &GOOD.replace("\"good\"", "\"plain\"").replace(
            &GOOD[GOOD.find("{\"version\": 1, \"safety").unwrap()..GOOD.find("\"expect\"").unwrap()],
            "null,\n  ",
        ),
    )
    .unwrap();
    assert_eq!(plain.options.faults, sim::runner::Faults::None, "a null plan runs without a nemesis");
}

/// A case runs on the knobs it recorded, whatever the seed would pick now; a case saved
/// before every knob was recorded (`store`) runs on its store knobs and every other knob's
/// default; a case with neither runs on the seed's pick.
#[test]
fn a_case_runs_on_its_recorded_knobs() {
    let picked = sim::knobs::Knobs::for_seed(3);
    let unrecorded = load("good", GOOD).unwrap();
    assert_eq!(unrecorded.options.knobs(), picked);
    assert!(unrecorded.options.seed_picks_knobs);
    let other_members = if picked.store_members == 5 { 3 } else { 5 };
    let older = GOOD.replace(
        "\"plan\":",
        &format!("\"store\": {{\"members\": {other_members}, \"max_entries_per_append\": 2}},\n  \"plan\":"),
    );
    let case = load("good", &older).unwrap();
    let expected = sim::knobs::Knobs {
        store_members: other_members,
        max_entries_per_append: Some(2),
        ..sim::knobs::Knobs::default()
    };
    assert_eq!(case.options.knobs(), expected, "an older case runs every other knob at its default");
    assert!(!case.options.seed_picks_knobs, "a recorded case ignores the seed's pick");
    let recorded =
        GOOD.replace("\"plan\":", "\"knobs\": {\"store_members\": 5, \"compaction_interval_ms\": 2000},\n  \"plan\":");
    let case = load("good", &recorded).unwrap();
    let expected =
        sim::knobs::Knobs { store_members: 5, compaction_interval_ms: 2_000, ..sim::knobs::Knobs::default() };
    assert_eq!(case.options.knobs(), expected, "a knob left out of a case takes its default");
    assert_eq!(case.options.cluster.tuning.compaction_interval_ms, 2_000, "the knobs reach the cluster's options");
}

#[test]
fn bad_case_files_are_refused_with_a_clear_error() {
    assert_refused(
        "good",
        &GOOD.replace("\"version\": 1,\n  \"name\"", "\"version\": 2,\n  \"name\""),
        "unsupported case version 2",
    );
    assert_refused("other", GOOD, "name \"good\" differs from the file's name \"other\"");
    assert_refused("good", &GOOD.replace("\"seed\": 3", "\"sede\": 3"), "unknown field `sede`");
    assert_refused(
        "good",
        &GOOD.replace("replicaset-no-expectations", "no-such-bug"),
        "unknown planted bug 'no-such-bug'",
    );
    assert_refused("good", &GOOD.replace("\"deploy-nginx\"", "\"deploy-apache\""), "unknown scenario 'deploy-apache'");
    assert_refused(
        "good",
        &GOOD.replace("caught-by: convergence", "fails"),
        "expected \"pass\" or \"caught-by: <invariant>\"",
    );
    assert_refused(
        "good",
        &GOOD.replace("caught-by: convergence", "caught-by: happiness"),
        "unknown invariant \"happiness\"",
    );
    assert_refused("good", &GOOD.replace("\"scheduler\"", "\"kubelet-9\""), "plan does not fit deploy-nginx");
    let knobs = |store: &str| GOOD.replace("\"plan\":", &format!("\"store\": {store},\n  \"plan\":"));
    assert_refused(
        "good",
        &knobs(r#"{"members": 0, "max_entries_per_append": null}"#),
        "knobs.store_members: expected 1 to 7",
    );
    let all_knobs = |knobs: &str| GOOD.replace("\"plan\":", &format!("\"knobs\": {knobs},\n  \"plan\":"));
    assert_refused("good", &all_knobs(r#"{"election_tick": 1}"#), "knobs.election_tick: expected 5 to 1000");
    assert_refused("good", &all_knobs(r#"{"compaction_interval": 1}"#), "unknown field `compaction_interval`");
    let both = all_knobs("{}")
        .replace("\"plan\":", "\"store\": {\"members\": 3, \"max_entries_per_append\": null},\n  \"plan\":");
    assert_refused("good", &both, "holds `knobs` or the older `store`, not both");
    assert_refused("good", &knobs(r#"{"members": 3, "max_entries_per_append": 0}"#), "expected at least 1");
    assert_refused("good", &knobs(r#"{"members": 3, "voters": 3}"#), "unknown field `voters`");
    assert_refused("good", "{ not json", "not a regression case");
    let empty = tempfile::tempdir().unwrap();
    let error = load_dir(empty.path()).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("holds no *.json regression case"), "{error}");
}
