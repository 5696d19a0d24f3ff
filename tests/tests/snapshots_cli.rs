//! Snapshots of what users read: the summary `kubesim run` prints for a fixed seed under
//! faults (and for a failing regression case), the fault-plan JSON format, and `kubesim
//! bugs`. None holds a wall-clock figure (`kubesim run`'s wall time is printed apart from
//! `run_summary`), so they are stable across machines. Accept a deliberate change with
//! `cargo insta review` (or `INSTA_UPDATE=always`).

use std::path::Path;

use faults::{BitFlip, Fault, FaultEvent, FaultPlan, Slot, Target, Tear};
use kubesim::cli::run_summary;
use kubesim::corpus::{load_case, Case};
use sim::runner::{run_seed, RunOptions};
use sim::scenario::Scenario;

#[test]
fn kubesim_run_seed_7_summary() {
    let report = run_seed(&RunOptions::new(7, Scenario::DeployNginx));
    let command = "kubesim run --seed 7";
    insta::assert_snapshot!(format!("{command}\n{}", run_summary(command, &report)));
}

#[test]
fn kubesim_run_failing_case_summary() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/regressions/follower-reads-without-read-index-seed-3.json");
    let case = load_case(&path).unwrap();
    let report = run_seed(&case.options);
    let command = Case::repro(Path::new("ci/regressions/follower-reads-without-read-index-seed-3.json"));
    insta::assert_snapshot!(format!("{command}\n{}", run_summary(&command, &report)));
}

#[test]
fn kubesim_bugs_table() {
    insta::assert_snapshot!(sim::bugs::render_table());
}

/// One event of every fault shape, as saved by `kubesim shrink --out` and read by
/// `kubesim run --plan`: the field names are a contract with saved plans and the corpus.
#[test]
fn fault_plan_json_format() {
    let event = |at_ms, fault| FaultEvent { at_ms, duration_ms: 1_000, fault };
    let plan = FaultPlan {
        events: vec![
            event(
                0,
                Fault::Partition {
                    groups: vec![
                        vec![Target::StoreLeader],
                        vec![Target::StoreMember(Slot(1)), Target::StoreMember(Slot(2))],
                    ],
                },
            ),
            event(1_000, Fault::IsolateStoreLeader),
            event(2_000, Fault::IsolateApiServer { apiserver: 0 }),
            event(3_000, Fault::MajoritiesRing),
            event(4_000, Fault::Bridge),
            event(5_000, Fault::OneWay { from: Target::StoreMember(Slot(1)), to: Target::StoreMember(Slot(2)) }),
            event(6_000, Fault::PacketLoss { rate: 0.05 }),
            event(7_000, Fault::LatencySpike { min_ms: 10, max_ms: 400 }),
            event(8_000, Fault::ClogLink { a: Target::ApiServer(0), b: Target::StoreMember(Slot(3)) }),
            event(9_000, Fault::Crash { target: Target::ControllerManager(1) }),
            event(
                10_000,
                Fault::CrashStoreMember {
                    member: Target::StoreMember(Slot(2)),
                    tear: Some(Tear { kept_ppm: 250_000 }),
                },
            ),
            event(
                11_000,
                Fault::PowerLoss {
                    tears: (1..=3).map(|m| (Target::StoreMember(Slot(m)), Tear { kept_ppm: 0 })).collect(),
                },
            ),
            event(12_000, Fault::Pause { target: Target::Kubelet(2) }),
            event(
                13_000,
                Fault::CorruptRecord {
                    member: Target::StoreMember(Slot(3)),
                    flip: BitFlip { offset_ppm: 500_000, xor_mask: 4 },
                },
            ),
            event(14_000, Fault::ClockSkew { target: Target::Scheduler, offset_ms: -20_000, drift_ms_per_s: 3 }),
            event(
                15_000,
                Fault::DiskLossMajority { members: vec![Target::StoreMember(Slot(1)), Target::StoreMember(Slot(3))] },
            ),
            event(17_000, Fault::SnapshotCorruption { flip: BitFlip { offset_ppm: 999_999, xor_mask: 128 } }),
        ],
        ..FaultPlan::empty(30_000, 30_000)
    };
    let json = plan.to_json_pretty();
    assert_eq!(FaultPlan::from_json(&json).unwrap(), plan, "the format round-trips");
    insta::assert_snapshot!(json);
}
