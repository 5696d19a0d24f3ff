//! The regression workflow through the `kubesim` binary: exit codes, the one-line errors of
//! bad input, and the round trip shrink → saved plan → `kubesim run --plan` → same
//! violation.

use std::path::Path;

mod support;
use support::{kubesim, Output};

/// Exit 2 and one line naming what was wrong.
#[track_caller]
fn assert_bad_input(args: &[&str], expected: &str) {
    let out = assert_refused_flags(args, expected);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
}

/// Exit 2 with `expected` in the message (clap's own errors add a usage hint).
#[track_caller]
fn assert_refused_flags(args: &[&str], expected: &str) -> Output {
    let out = kubesim(args);
    assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(expected), "{args:?}: expected {expected:?} in {:?}", out.stderr);
    out
}

#[test]
fn a_shrunk_plan_saved_with_out_reproduces_the_violation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let case = dir.path().join("case-37.json");
    let plan_arg = plan.to_str().unwrap();
    let shrink = kubesim(&[
        "shrink",
        "--seed",
        "37",
        "--workload",
        "none",
        "--bug",
        "replicaset-no-expectations",
        "--out",
        plan_arg,
        "--save",
        case.to_str().unwrap(),
    ]);
    assert_eq!(shrink.code, 1, "{}{}", shrink.stdout, shrink.stderr);
    assert!(shrink.stdout.contains("keeping candidates that still violate convergence"), "{}", shrink.stdout);
    assert!(shrink.stdout.contains("  run "), "each step is printed: {}", shrink.stdout);
    let repro = format!("repro: kubesim run --seed 37 --plan {plan_arg} --bug replicaset-no-expectations");
    assert!(shrink.stdout.contains(&repro), "{}", shrink.stdout);
    let run = kubesim(&["run", "--seed", "37", "--plan", plan_arg, "--bug", "replicaset-no-expectations"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("FAIL convergence"), "{}", run.stdout);
    let saved = kubesim::corpus::load_case(&case).unwrap();
    assert_eq!(saved.case.knobs, Some(sim::knobs::Knobs::for_seed(37)), "the case records the knobs it ran on");
    assert_eq!(saved.case.store, None, "a new case records every knob, not the older store section");
    let replay = kubesim(&["run", "--case", case.to_str().unwrap()]);
    assert_eq!(replay.code, 0, "the case gives its expected verdict: {}", replay.stdout);
    assert!(replay.stdout.contains("verdict: FAIL"), "{}", replay.stdout);
    assert!(replay.stdout.contains("expectation met (expected caught-by: convergence"), "{}", replay.stdout);
    let corpus = kubesim(&["corpus", case.to_str().unwrap()]);
    assert_eq!(corpus.code, 0, "{}", corpus.stdout);
    assert!(corpus.stdout.contains("ok      case-37: expected caught-by: convergence"), "{}", corpus.stdout);
}

#[test]
fn a_passing_seed_has_nothing_to_shrink() {
    let out = kubesim(&["shrink", "--seed", "7"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("seed 7 passes every invariant: nothing to shrink"), "{}", out.stdout);
}

#[test]
fn a_shrink_budget_that_runs_out_is_reported() {
    let out = kubesim(&[
        "shrink",
        "--seed",
        "23",
        "--workload",
        "none",
        "--bug",
        "replicaset-no-expectations",
        "--max-runs",
        "2",
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("shrunk in 2 runs"), "{}", out.stdout);
    assert!(out.stdout.contains("the run bound (--max-runs 2) was hit"), "{}", out.stdout);
}

#[test]
fn bad_input_to_the_regression_commands_exits_2_with_one_line() {
    assert_bad_input(&["shrink", "--seed", "37", "--max-runs", "0"], "--max-runs: must be at least 1");
    assert_bad_input(&["shrink", "--seed", "37", "--invariant", "happiness"], "--invariant: unknown invariant");
    assert_bad_input(
        &[
            "shrink",
            "--seed",
            "37",
            "--workload",
            "none",
            "--bug",
            "replicaset-no-expectations",
            "--invariant",
            "linearizability",
        ],
        "seed 37 does not violate linearizability (it violates: convergence)",
    );
    assert_bad_input(
        &["shrink", "--seed", "0", "--faults", "none", "--workload", "none", "--bug", "controller-writes-store"],
        "runs no fault plan (--faults none): nothing to shrink",
    );
    assert_refused_flags(&["campaign", "--seeds", "0..10", "--shard", "4/4"], "--shard: expected K/N with 0 <= K < N");
    assert_bad_input(&["merge", "/nonexistent/shard-0.jsonl"], "/nonexistent/shard-0.jsonl: cannot read");
    assert_bad_input(&["corpus", "/nonexistent"], "/nonexistent: cannot read");
    assert_bad_input(&["run", "--case", "/nonexistent/case.json"], "/nonexistent/case.json: cannot read");
    assert_bad_input(&["run", "--case", "x.json", "--scenario", "store-smoke"], "--case: the case names its scenario");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/regressions/pass-deploy-nginx-seed-7.json");
    assert_refused_flags(&["run", "--case", corpus.to_str().unwrap(), "--seed", "3"], "cannot be used with");
}

/// Seeds pick 3 or 5 store members (seed 0: 5, seed 1: 3), so a campaign's `--plan` is
/// checked against every seed's store, not only the first seed's.
#[test]
fn a_campaign_refuses_a_plan_that_does_not_fit_one_of_its_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("pause-store-5.json");
    std::fs::write(
        &plan,
        r#"{"version":1,"safety_phase_ms":30000,"liveness_phase_ms":30000,
            "events":[{"at_ms":1000,"duration_ms":2000,"fault":{"kind":"pause","target":"store-5"}}]}"#,
    )
    .unwrap();
    let plan_arg = plan.to_str().unwrap();
    assert_eq!(kubesim(&["run", "--seed", "0", "--plan", plan_arg, "--print-plan"]).code, 0);
    assert_bad_input(
        &["campaign", "--seeds", "0..4", "--plan", plan_arg],
        "does not fit seed 1 of deploy-nginx (3 store members): event 0: target store-5 does not exist",
    );
}

/// A version 1 plan still runs: `--print-plan` shows the version 2 plan it was upgraded
/// to for the seed's store, every choice written out. A plan that does not fit the run, or
/// holds a fault that changes nothing, is bad input.
#[test]
fn a_version_1_plan_is_printed_as_version_2_and_no_op_faults_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.json");
    std::fs::write(
        &v1,
        r#"{"version":1,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[
            {"at_ms":1000,"duration_ms":2000,"fault":{"kind":"crash-store-member","member":"store-2","tear":true}},
            {"at_ms":5000,"duration_ms":2000,"fault":{"kind":"disk-loss-majority"}}]}"#,
    )
    .unwrap();
    // Seed 1 runs on 3 store members: the majority is store-1 and store-2.
    let out = kubesim(&["run", "--seed", "1", "--plan", v1.to_str().unwrap(), "--print-plan"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let printed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["version"], 2);
    assert_eq!(printed["events"][0]["fault"]["tear"], serde_json::json!({"kept_ppm": 500000}));
    assert_eq!(printed["events"][1]["fault"]["members"], serde_json::json!(["store-1", "store-2"]));

    let no_op = dir.path().join("no-op.json");
    std::fs::write(
        &no_op,
        r#"{"version":2,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[
            {"at_ms":1000,"duration_ms":2000,"fault":{"kind":"clock-skew","target":"kubelet-1","offset_ms":0,"drift_ms_per_s":0}}]}"#,
    )
    .unwrap();
    assert_bad_input(
        &["run", "--seed", "1", "--plan", no_op.to_str().unwrap()],
        "event 0: clock-skew of kubelet-1 with no offset and no drift changes nothing",
    );
    let two_of_five = dir.path().join("two-of-five.json");
    std::fs::write(
        &two_of_five,
        r#"{"version":2,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[
            {"at_ms":1000,"duration_ms":2000,"fault":{"kind":"disk-loss-majority","members":["store-1","store-2"]}}]}"#,
    )
    .unwrap();
    // Seed 0 runs on 5 members: two are not a majority there.
    assert_bad_input(
        &["run", "--seed", "0", "--plan", two_of_five.to_str().unwrap(), "--print-plan"],
        "disk-loss-majority members are 2 of the 5 store members, not a majority (at least 3)",
    );
}

/// `--trace` prints one line per event with simulated time and node, in plain text when it
/// does not go to a terminal (a trace saved to a file has no colour codes).
#[test]
fn a_trace_to_a_pipe_is_plain_text_with_simulated_time_and_node() {
    let out = kubesim(&["run", "--seed", "3", "--faults", "none", "--trace"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains('\x1b'), "colour codes in a piped trace: {:?}", &out.stderr[..200]);
    let leader = out.stderr.lines().find(|l| l.contains("became leader")).expect("a leader election is traced");
    assert!(leader.trim_start().starts_with(|c: char| c.is_ascii_digit()), "simulated time first: {leader}");
    assert!(leader.contains("name=\"store-"), "the node's name: {leader}");
}

#[test]
fn an_empty_shard_writes_an_empty_results_file_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("shard.jsonl");
    let out = kubesim(&["campaign", "--seeds", "0..2", "--shard", "3/4", "--out", out_file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("0 seeds"), "{}", out.stdout);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "");
}
