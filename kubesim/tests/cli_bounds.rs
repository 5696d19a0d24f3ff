//! The promises `kubesim` makes to a CI pipeline and to a new user, through the binary:
//! the exit code is the verdict whatever happens to stdout; every class of bad input
//! (huge ranges, unbounded plans, oversized files, menus a scenario cannot judge, worker
//! and timeout flags) is refused with one line and exit 2, never an abort or a hang. The
//! table these tests follow is `docs/bad-input.md`.

use std::io::Read;
use std::process::{Command, Stdio};

const MAX: &str = "18446744073709551615";

mod support;
use support::{kubesim, Output};

/// Exit 2 and one line naming what was wrong.
#[track_caller]
fn assert_bad_input(args: &[&str], expected: &str) {
    let out = kubesim(args);
    assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(expected), "{args:?}: expected {expected:?} in {:?}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
}

/// Runs kubesim with its stdout a pipe whose reader has gone away before the first line
/// (`kubesim ... | head -0`), and returns its exit code and stderr.
fn with_stdout_closed(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubesim runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    (child.wait().expect("exited").code().expect("exited with a code"), stderr)
}

/// Runs kubesim with its stdout on a full disk (`>/dev/full`).
#[cfg(target_os = "linux")]
fn with_stdout_full(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let output = Command::new(env!("CARGO_BIN_EXE_kubesim")).args(args).stdout(full).output().expect("kubesim runs");
    Output {
        code: output.status.code().expect("exited"),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Seed 0 with no nemesis and a planted bug the store's ACL catches at once: a fast
/// violation.
const FAILING_RUN: [&str; 7] = ["run", "--seed", "0", "--faults", "none", "--bug", "controller-writes-store"];
const PASSING_RUN: [&str; 5] = ["run", "--seed", "0", "--faults", "none"];

#[test]
fn a_closed_stdout_never_turns_a_verdict_into_success() {
    assert_eq!(with_stdout_closed(&FAILING_RUN).0, 1, "a violation with the reader gone");
    assert_eq!(with_stdout_closed(&PASSING_RUN).0, 0, "a pass with the reader gone");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.jsonl");
    let campaign = [
        "campaign",
        "--seeds",
        "0..2",
        "--faults",
        "none",
        "--bug",
        "controller-writes-store",
        "--out",
        results.to_str().unwrap(),
    ];
    let (code, _) = with_stdout_closed(&campaign);
    assert_eq!(code, 1, "the campaign ran on to its verdict");
    assert_eq!(std::fs::read_to_string(&results).unwrap().lines().count(), 2, "every seed's result was written");
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_stdout_is_reported_and_never_turns_a_verdict_into_success() {
    let failing = with_stdout_full(&FAILING_RUN);
    assert_eq!(failing.code, 1, "{}", failing.stderr);
    assert!(failing.stderr.contains("writing to stdout") && failing.stderr.contains("a violation was found"));
    let passing = with_stdout_full(&PASSING_RUN);
    assert_eq!(passing.code, 3, "a pass whose report was lost is an internal error: {}", passing.stderr);
    assert!(passing.stderr.contains("the report was lost"), "{}", passing.stderr);
}

#[test]
fn total_loss_is_printed_as_such_and_exits_0() {
    let out =
        kubesim(&["run", "--seed", "1", "--faults", "disk-loss,disk-loss-majority,disk-loss-all,snapshot-corruption"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verdict: total-loss ("), "{}", out.stdout);
    assert!(!out.stdout.contains("verdict: pass"), "{}", out.stdout);
}

#[test]
fn run_case_says_whether_the_expectation_held_and_exits_by_it() {
    let case =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/regressions/controller-writes-store-seed-0.json");
    let out = kubesim(&["run", "--case", case.to_str().unwrap()]);
    assert_eq!(out.code, 0, "the case caught what it expects: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verdict: FAIL"), "{}", out.stdout);
    assert!(out.stdout.contains("expectation met (expected caught-by: store-single-writer"), "{}", out.stdout);
    assert!(out.stdout.contains("(set by the case)"), "the case's knobs are not the seed's pick: {}", out.stdout);
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("controller-writes-store-seed-0.json");
    let text = std::fs::read_to_string(&case).unwrap().replace("\"caught-by: store-single-writer\"", "\"pass\"");
    std::fs::write(&changed, text).unwrap();
    let out = kubesim(&["run", "--case", changed.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("CHANGED verdict: expected pass"), "{}", out.stdout);
}

/// store-smoke follows no member replacement and no restore: the kinds that need them are
/// refused, as a menu or in a plan, instead of being reported as violations.
#[test]
fn store_smoke_refuses_the_fault_kinds_it_cannot_judge() {
    for kind in ["disk-loss", "disk-loss-majority", "disk-loss-all", "snapshot-corruption"] {
        assert_bad_input(
            &["campaign", "--scenario", "store-smoke", "--seeds", "0..100", "--faults", &format!("partition,{kind}")],
            &format!("store-smoke does not support the fault kind {kind}"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("disk-loss.json");
    std::fs::write(
        &plan,
        r#"{"version":1,"safety_phase_ms":30000,"liveness_phase_ms":30000,
            "events":[{"at_ms":1000,"duration_ms":2000,"fault":{"kind":"disk-loss","member":"store-1"}}]}"#,
    )
    .unwrap();
    assert_bad_input(
        &["run", "--seed", "1", "--scenario", "store-smoke", "--plan", plan.to_str().unwrap()],
        "store-smoke does not support the fault kind disk-loss",
    );
    let out = kubesim(&["run", "--seed", "1", "--scenario", "store-smoke", "--faults", "partition,backup"]);
    assert_eq!(out.code, 0, "the operator's backups alone are fine: {}{}", out.stdout, out.stderr);
}

#[test]
fn huge_ranges_and_worker_counts_are_refused_or_cost_nothing() {
    let everything = format!("0..{MAX}");
    assert_bad_input(
        &["campaign", "--seeds", &everything],
        "holds 18446744073709551615 seeds; one run takes at most 1000000",
    );
    assert_bad_input(&["bench", "--seeds", &everything], "one run takes at most 1000000");
    assert_bad_input(&["campaign", "--seeds", "0..2000002", "--shard", "0/2"], "(shard 0/2) holds 1000001 seeds");
    // One seed of the whole u64 range: computed, not found by walking the range.
    let out = kubesim(&["campaign", "--seeds", &everything, "--shard", &format!("0/{MAX}"), "--faults", "none"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 seeds, 1 passed"), "{}", out.stdout);
    assert_bad_input(&["campaign", "--seeds", "0..2", "--jobs", MAX], "--jobs: at most 256 workers");
    assert_bad_input(&["campaign", "--seeds", "0..2", "--jobs", "0"], "--jobs: must be at least 1");
    assert_bad_input(
        &["campaign", "--seeds", "0..2", "--seed-timeout-secs", "0"],
        "--seed-timeout-secs: must be at least 1",
    );
    assert_bad_input(&["corpus", "--seed-timeout-secs", "0"], "--seed-timeout-secs: must be at least 1");
    let out = kubesim(&["campaign", "--seeds", "0..2", "--shard", "3/4"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("0 seeds run") && !out.stdout.contains("-0x"), "{}", out.stdout);
}

fn plan_file(dir: &std::path::Path, name: &str, safety_ms: u64, liveness_ms: u64) -> String {
    let path = dir.join(name);
    let plan =
        format!(r#"{{"version":1,"safety_phase_ms":{safety_ms},"liveness_phase_ms":{liveness_ms},"events":[]}}"#);
    std::fs::write(&path, plan).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn plans_without_bounds_or_without_room_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let endless = plan_file(dir.path(), "endless.json", 1_000_000_000, 30_000);
    assert_bad_input(
        &["run", "--seed", "7", "--plan", &endless],
        "safety_phase_ms 1000000000 out of range (0 to 600000)",
    );
    assert_bad_input(
        &["campaign", "--seeds", &format!("0..{MAX}"), "--shard", &format!("0/{MAX}"), "--plan", &endless],
        "out of range",
    );
    let no_room = plan_file(dir.path(), "no-room.json", 0, 0);
    assert_bad_input(&["run", "--seed", "7", "--plan", &no_room], "liveness_phase_ms 0 out of range (1000 to 600000)");
    let no_liveness = plan_file(dir.path(), "no-liveness.json", 30_000, 0);
    assert_bad_input(&["run", "--seed", "7", "--plan", &no_liveness], "liveness_phase_ms 0 out of range");
    assert_bad_input(&["run", "--seed", "7", "--plan", "/dev/zero"], "fault plan /dev/zero is larger than");
    assert_bad_input(&["run", "--case", "/dev/zero"], "/dev/zero: larger than");
    assert_bad_input(&["merge", "/dev/zero"], "/dev/zero:1: a line longer than");
}

#[test]
fn destinations_are_checked_before_the_run_and_cases_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("case.json");
    std::fs::write(&existing, "{}").unwrap();
    assert_bad_input(
        &["run", "--seed", "0", "--faults", "none", "--save", existing.to_str().unwrap()],
        "the file exists; pass --force to replace it",
    );
    let nowhere = dir.path().join("no-such-dir/plan.json");
    assert_bad_input(
        &["shrink", "--seed", "32", "--bug", "replicaset-no-expectations", "--out", nowhere.to_str().unwrap()],
        "does not exist",
    );
    assert_bad_input(
        &["shrink", "--seed", "32", "--save", "case.txt"],
        "expected a path like ci/regressions/NAME.json",
    );
    assert_bad_input(&["merge", "/nonexistent.jsonl", "--out", nowhere.to_str().unwrap()], "does not exist");
    let out = kubesim(&["run", "--seed", "0", "--faults", "none", "--save", existing.to_str().unwrap(), "--force"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    kubesim::corpus::load_case(&existing).expect("the case was replaced by a valid one");
}

#[test]
fn repro_lines_are_shell_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "my plan.json", 30_000, 30_000);
    let out = kubesim(&["run", "--seed", "0", "--plan", &plan, "--bug", "controller-writes-store"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("repro: kubesim run --seed 0 --plan '{plan}'")), "{}", out.stdout);
}

#[test]
fn the_corpus_is_found_from_a_subfolder_of_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ci/regressions")).unwrap();
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ci/regressions/pass-deploy-nginx-no-faults-seed-1.json");
    std::fs::copy(&case, dir.path().join("ci/regressions/pass-deploy-nginx-no-faults-seed-1.json")).unwrap();
    let sub = dir.path().join("sim/src");
    std::fs::create_dir_all(&sub).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kubesim")).arg("corpus").current_dir(&sub).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 case(s)"), "{stdout}");
    let outside = tempfile::tempdir().unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_kubesim")).arg("corpus").current_dir(outside.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no ci/regressions in"));
}

#[test]
fn help_lists_the_values_of_scenario_faults_and_bug() {
    let out = kubesim(&["campaign", "--help"]);
    assert_eq!(out.code, 0);
    for kind in faults::FaultKind::ALL {
        assert!(out.stdout.contains(kind.name()), "--faults help misses {kind}: {}", out.stdout);
    }
    for bug in sim::bugs::PlantedBug::ALL {
        assert!(out.stdout.contains(bug.name()), "--bug help misses {}", bug.name());
    }
    assert!(out.stdout.contains("store-smoke") && out.stdout.contains("at most 256"), "{}", out.stdout);
    let repro = kubesim(&["repro", "--help"]);
    assert!(repro.stdout.contains("with --check-determinism, run it twice"), "{}", repro.stdout);
}

/// The operator's command queue is bounded (`operator::MAX_QUEUED_COMMANDS`): a plan that
/// asks for more backups at one instant than it holds gets the rest refused, each one said
/// in the timeline, and the run goes on.
#[test]
fn the_operator_queue_is_bounded_and_says_when_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<serde_json::Value> = (0..300)
        .map(|_| serde_json::json!({"at_ms": 1000, "duration_ms": 0, "fault": {"kind": "backup", "member": "store-1"}}))
        .collect();
    let plan =
        serde_json::json!({"version": 2, "safety_phase_ms": 30000, "liveness_phase_ms": 30000, "events": events});
    let path = dir.path().join("backups.json");
    std::fs::write(&path, plan.to_string()).unwrap();
    let out = kubesim(&["run", "--seed", "1", "--plan", path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let refused = out.stdout.matches("the operator is busy: 256 commands are waiting").count();
    assert_eq!(refused, 300 - sim::operator::MAX_QUEUED_COMMANDS, "{}", out.stdout);
}

#[test]
fn a_cluster_shape_out_of_range_or_without_room_is_refused() {
    assert_bad_input(&["run", "--seed", "0", "--kubelets", "0"], "--kubelets 0: expected 1 to 1000");
    assert_bad_input(&["run", "--seed", "0", "--replicas", "0"], "--replicas 0: expected at least 1");
    assert_bad_input(&["run", "--seed", "0", "--store-members", "8"], "--store-members 8: expected 1 to 7");
    assert_bad_input(
        &["campaign", "--seeds", "0..2", "--kubelets", "3", "--replicas", "1000"],
        "--replicas 1000 needs at least 25 kubelets",
    );
}

#[test]
fn a_larger_cluster_runs_and_its_case_replays_at_the_same_size() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("pass-shape-seed-2.json");
    let case = case.to_str().unwrap();
    let args =
        ["run", "--seed", "2", "--faults", "none", "--kubelets", "5", "--replicas", "12", "--store-members", "1"];
    let run = kubesim(&[&args[..], &["--save", case]].concat());
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("12 pods Running"), "{}", run.stdout);
    assert!(run.stdout.contains("kubelet-4"), "five kubelets: {}", run.stdout);
    let hash = |out: &str| out.lines().find(|l| l.starts_with("trace-hash:")).map(str::to_string);
    let saved = std::fs::read_to_string(case).unwrap();
    assert!(saved.contains("\"kubelets\": 5") && saved.contains("\"replicas\": 12"), "{saved}");
    assert!(saved.contains("\"store_members\": 1"), "the knobs hold the store size: {saved}");
    let replay = kubesim(&["run", "--case", case]);
    assert_eq!(replay.code, 0, "{}{}", replay.stdout, replay.stderr);
    assert_eq!(hash(&replay.stdout), hash(&run.stdout), "the case replays what the flags ran");
}

#[test]
fn a_workload_menu_or_action_kubesim_cannot_run_is_bad_input() {
    assert_bad_input(&["run", "--seed", "7", "--workload", "pods"], "--workload: unknown workload 'pods'");
    assert_bad_input(
        &["run", "--seed", "7", "--scenario", "rollout", "--workload", "all"],
        "--workload: only the deploy-nginx scenario runs a generated workload, not rollout",
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = |name: &str, action: &str| {
        let path = dir.path().join(name);
        let text = format!(
            r#"{{"version":2,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[],"workload":[{action}]}}"#
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let too_many = plan("too-many.json", r#"{"at_ms":0,"user":"alice","action":"scale","name":"web","replicas":99}"#);
    assert_bad_input(&["run", "--seed", "7", "--plan", &too_many], "workload action 0: replicas 99 out of range");
    let no_node = plan("no-node.json", r#"{"at_ms":0,"user":"bob","action":"drain","node":7}"#);
    assert_bad_input(&["run", "--seed", "7", "--plan", &no_node], "workload action 0: node 7 is not a kubelet");
    let typo = plan("typo.json", r#"{"at_ms":0,"user":"bob","action":"drian","node":0}"#);
    assert_bad_input(&["run", "--seed", "7", "--plan", &typo], "drian");
    let ok = plan("ok.json", r#"{"at_ms":0,"user":"bob","action":"cordon","node":0}"#);
    assert_bad_input(
        &["run", "--seed", "7", "--scenario", "services", "--plan", &ok],
        "its workload: only the deploy-nginx scenario runs a generated workload",
    );
}
