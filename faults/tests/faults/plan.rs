//! FaultPlan: JSON form, round-trip and validation messages.

use std::collections::BTreeMap;

use faults::{
    BitFlip, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, PlanError, PlanFile, Slot, Target, Tear, Topology, PPM,
};

use crate::small_topology;

fn example_plan() -> FaultPlan {
    FaultPlan {
        version: 2,
        safety_phase_ms: 30_000,
        liveness_phase_ms: 30_000,
        workload: Vec::new(),
        events: vec![
            FaultEvent {
                at_ms: 1_000,
                duration_ms: 5_000,
                fault: Fault::Partition {
                    groups: vec![
                        vec![Target::StoreMember(Slot(1))],
                        vec![Target::StoreMember(Slot(2)), Target::StoreMember(Slot(3))],
                    ],
                },
            },
            FaultEvent {
                at_ms: 2_000,
                duration_ms: 3_000,
                fault: Fault::CrashStoreMember { member: Target::StoreLeader, tear: Some(Tear { kept_ppm: 250_000 }) },
            },
            FaultEvent {
                at_ms: 8_000,
                duration_ms: 500,
                fault: Fault::ClockSkew { target: Target::ControllerManager(1), offset_ms: -2_500, drift_ms_per_s: 20 },
            },
        ],
    }
}

#[test]
fn example_plan_reads_as_this_json() {
    let expected = r#"{
  "version": 2,
  "safety_phase_ms": 30000,
  "liveness_phase_ms": 30000,
  "events": [
    {
      "at_ms": 1000,
      "duration_ms": 5000,
      "fault": {
        "kind": "partition",
        "groups": [
          [
            "store-1"
          ],
          [
            "store-2",
            "store-3"
          ]
        ]
      }
    },
    {
      "at_ms": 2000,
      "duration_ms": 3000,
      "fault": {
        "kind": "crash-store-member",
        "member": "store-leader",
        "tear": {
          "kept_ppm": 250000
        }
      }
    },
    {
      "at_ms": 8000,
      "duration_ms": 500,
      "fault": {
        "kind": "clock-skew",
        "target": "controller-manager-1",
        "offset_ms": -2500,
        "drift_ms_per_s": 20
      }
    }
  ]
}"#;
    assert_eq!(example_plan().to_json_pretty(), expected);
    assert_eq!(FaultPlan::from_json(expected).unwrap(), example_plan());
}

/// One event of every fault variant, so that each variant's JSON form round-trips.
fn every_fault() -> Vec<Fault> {
    vec![
        Fault::Partition {
            groups: vec![
                vec![Target::StoreLeader, Target::ApiServer(1)],
                vec![Target::StoreMember(Slot(1)), Target::Kubelet(2), Target::Scheduler],
            ],
        },
        Fault::IsolateStoreLeader,
        Fault::IsolateApiServer { apiserver: 1 },
        Fault::MajoritiesRing,
        Fault::Bridge,
        Fault::OneWay { from: Target::StoreMember(Slot(2)), to: Target::ControllerManager(0) },
        Fault::PacketLoss { rate: 0.25 },
        Fault::LatencySpike { min_ms: 5, max_ms: 700 },
        Fault::ClogLink { a: Target::ApiServer(0), b: Target::StoreLeader },
        Fault::Crash { target: Target::Kubelet(0) },
        Fault::CrashStoreMember { member: Target::StoreMember(Slot(3)), tear: None },
        Fault::PowerLoss { tears: every_member_torn() },
        Fault::Pause { target: Target::Scheduler },
        Fault::CorruptRecord {
            member: Target::StoreMember(Slot(2)),
            flip: BitFlip { offset_ppm: 999_999, xor_mask: 0x80 },
        },
        Fault::ClockSkew { target: Target::Kubelet(1), offset_ms: 9_000, drift_ms_per_s: -50 },
        Fault::CrashAtFailpoint {
            member: Target::StoreLeader,
            failpoint: Failpoint::RaftBeforeLeaderSend,
            restart_after_ms: 1_000,
            passes: 2,
        },
        Fault::Backup { member: Target::StoreLeader },
        Fault::DiskLoss { member: Target::StoreMember(Slot(3)) },
        Fault::DiskLossMajority { members: vec![Target::StoreMember(Slot(1)), Target::StoreMember(Slot(3))] },
        Fault::DiskLossAll,
        Fault::SnapshotCorruption { flip: BitFlip { offset_ppm: 0, xor_mask: 1 } },
        Fault::LeaderChase {
            steps: vec![
                ChaseStep { failpoint: Failpoint::RaftBeforeLeaderSend, passes: 0 },
                ChaseStep { failpoint: Failpoint::RaftLeaderAfterApply, passes: 3 },
            ],
        },
    ]
}

/// Tears for each of the small topology's three members: nothing, half, everything.
fn every_member_torn() -> BTreeMap<Target, Tear> {
    [0, PPM / 2, PPM]
        .into_iter()
        .enumerate()
        .map(|(idx, kept_ppm)| (Target::StoreMember(Slot(idx as u64 + 1)), Tear { kept_ppm }))
        .collect()
}

#[test]
fn every_fault_round_trips_through_json_and_validates() {
    let plan = FaultPlan {
        version: 2,
        safety_phase_ms: 60_000,
        liveness_phase_ms: 10_000,
        workload: Vec::new(),
        events: every_fault()
            .into_iter()
            .enumerate()
            .map(|(idx, fault)| FaultEvent { at_ms: idx as u64 * 1_000, duration_ms: 2_000, fault })
            .collect(),
    };
    let json = plan.to_json_pretty();
    assert_eq!(FaultPlan::from_json(&json).unwrap(), plan);
    plan.validate(&small_topology()).unwrap();
}

#[test]
fn fault_kinds_use_these_json_names() {
    let names: Vec<String> =
        every_fault().iter().map(|fault| serde_json::to_value(fault).unwrap()["kind"].to_string()).collect();
    assert_eq!(
        names.join(" "),
        r#""partition" "isolate-store-leader" "isolate-apiserver" "majorities-ring" "bridge" "one-way" "packet-loss" "latency-spike" "clog-link" "crash" "crash-store-member" "power-loss" "pause" "corrupt-record" "clock-skew" "crash-at-failpoint" "backup" "disk-loss" "disk-loss-majority" "disk-loss-all" "snapshot-corruption" "leader-chase""#
    );
}

#[test]
fn targets_read_and_print_as_node_names() {
    for text in [
        "store-1",
        "store-leader",
        "apiserver-0",
        "controller-manager-12",
        "controller-manager-leader",
        "scheduler",
        "kubelet-2",
    ] {
        let target: Target = text.parse().unwrap();
        assert_eq!(target.to_string(), text);
    }
    for bad in ["store", "store-", "store-+1", "store-x", "kubelet--1", "etcd-1", ""] {
        let error = bad.parse::<Target>().unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "unknown target {bad:?} (expected store-N, store-leader, apiserver-N, \
                 controller-manager-N, controller-manager-leader, scheduler or kubelet-N)"
            )
        );
    }
}

/// One event of `fault` from 1 s for 2 s in a 30 s safety phase.
fn plan_of(fault: Fault) -> FaultPlan {
    FaultPlan {
        version: 2,
        safety_phase_ms: 30_000,
        liveness_phase_ms: 30_000,
        workload: Vec::new(),
        events: vec![FaultEvent { at_ms: 1_000, duration_ms: 2_000, fault }],
    }
}

/// Checks that `plan` fails validation against the small topology with `expected`.
#[track_caller]
fn check_invalid(plan: FaultPlan, expected: &str) {
    let error = plan.validate(&small_topology()).unwrap_err();
    assert_eq!(error.to_string(), expected);
}

#[test]
fn validation_names_a_missing_target_and_the_topology() {
    check_invalid(
        plan_of(Fault::Crash { target: Target::Kubelet(7) }),
        "event 0: target kubelet-7 does not exist (topology has 3 kubelets)",
    );
    check_invalid(
        plan_of(Fault::Pause { target: Target::StoreMember(Slot(0)) }),
        "event 0: target store-0 does not exist (topology has 3 store members, numbered 1..=3)",
    );
    check_invalid(
        plan_of(Fault::IsolateApiServer { apiserver: 2 }),
        "event 0: target apiserver-2 does not exist (topology has 2 apiservers)",
    );
    let mut no_scheduler = small_topology();
    no_scheduler.schedulers = 0;
    let error = plan_of(Fault::Pause { target: Target::Scheduler }).validate(&no_scheduler).unwrap_err();
    assert_eq!(error.to_string(), "event 0: target scheduler does not exist (topology has 0 schedulers)");
}

#[test]
fn validation_numbers_the_offending_event() {
    let mut plan = plan_of(Fault::IsolateStoreLeader);
    plan.events.push(FaultEvent { at_ms: 29_000, duration_ms: 2_000, fault: Fault::MajoritiesRing });
    check_invalid(
        plan,
        "event 1: ends at 31000 ms, after the safety phase (30000 ms); \
         every fault must heal before the liveness phase",
    );
    let mut overflowing = plan_of(Fault::Bridge);
    overflowing.events[0].at_ms = u64::MAX;
    check_invalid(
        overflowing,
        "event 0: ends at 18446744073709553615 ms, after the safety phase (30000 ms); \
         every fault must heal before the liveness phase",
    );
}

#[test]
fn validation_checks_parameter_ranges() {
    for rate in [0.0, -0.1, 0.7, f64::NAN] {
        check_invalid(
            plan_of(Fault::PacketLoss { rate }),
            &format!("event 0: packet loss rate {rate} out of range (must be > 0 and <= 0.5)"),
        );
    }
    check_invalid(
        plan_of(Fault::LatencySpike { min_ms: 100, max_ms: 10 }),
        "event 0: latency range min_ms 100 is above max_ms 10",
    );
    check_invalid(
        plan_of(Fault::LatencySpike { min_ms: 0, max_ms: 120_000 }),
        "event 0: latency max_ms 120000 out of range (at most 60000)",
    );
    check_invalid(
        plan_of(Fault::ClockSkew { target: Target::Kubelet(0), offset_ms: 0, drift_ms_per_s: -1_000 }),
        "event 0: clock drift_ms_per_s -1000 out of range (at most ±999)",
    );
    check_invalid(
        plan_of(Fault::ClockSkew { target: Target::Kubelet(0), offset_ms: 7_200_000, drift_ms_per_s: 0 }),
        "event 0: clock offset_ms 7200000 out of range (at most ±3600000)",
    );
}

#[test]
fn validation_rejects_malformed_partitions_and_links() {
    check_invalid(plan_of(Fault::Partition { groups: vec![] }), "event 0: partition needs at least 2 groups, got 0");
    check_invalid(
        plan_of(Fault::Partition { groups: vec![vec![Target::StoreMember(Slot(1))], vec![]] }),
        "event 0: partition group 1 is empty",
    );
    check_invalid(
        plan_of(Fault::Partition {
            groups: vec![
                vec![Target::StoreMember(Slot(1))],
                vec![Target::StoreMember(Slot(2)), Target::StoreMember(Slot(1))],
            ],
        }),
        "event 0: partition names store-1 more than once",
    );
    check_invalid(
        plan_of(Fault::OneWay { from: Target::Kubelet(1), to: Target::Kubelet(1) }),
        "event 0: one-way from kubelet-1 to itself",
    );
    check_invalid(
        plan_of(Fault::ClogLink { a: Target::StoreLeader, b: Target::StoreLeader }),
        "event 0: clog-link from store-leader to itself",
    );
    let single_member = Topology { store_members: 1, ..small_topology() };
    let error = plan_of(Fault::MajoritiesRing).validate(&single_member).unwrap_err();
    assert_eq!(error.to_string(), "event 0: majorities-ring needs at least 3 store members (topology has 1)");
}

#[test]
fn validation_rejects_store_faults_aimed_elsewhere() {
    check_invalid(
        plan_of(Fault::CrashStoreMember { member: Target::Kubelet(0), tear: None }),
        "event 0: crash-store-member needs a store member target (store-N or store-leader), \
         got kubelet-0",
    );
    check_invalid(
        plan_of(Fault::CorruptRecord { member: Target::ApiServer(1), flip: BitFlip { offset_ppm: 0, xor_mask: 1 } }),
        "event 0: corrupt-record needs a store member target (store-N or store-leader), \
         got apiserver-1",
    );
}

#[test]
fn crash_at_failpoint_reads_as_this_json_and_must_be_back_before_it_heals() {
    let json = r#"{"version":2,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[
        {"at_ms":1000,"duration_ms":800,"fault":{"kind":"crash-at-failpoint","member":"store-2",
         "failpoint":"raft-after-vote","restart_after_ms":0}}]}"#;
    let plan = FaultPlan::from_json(json).unwrap();
    let failpoint = Failpoint::RaftAfterVote;
    let fault =
        Fault::CrashAtFailpoint { member: Target::StoreMember(Slot(2)), failpoint, restart_after_ms: 0, passes: 0 };
    assert_eq!(plan.events[0].fault, fault);
    plan.validate(&small_topology()).unwrap();
    let names: Vec<&str> = Failpoint::ALL.iter().map(|failpoint| failpoint.name()).collect();
    assert_eq!(
        names,
        [
            "raft-before-save",
            "raft-after-save",
            "raft-before-leader-send",
            "raft-after-vote",
            "raft-leader-after-apply"
        ]
    );

    let restart_after = |restart_after_ms| Fault::CrashAtFailpoint {
        member: Target::StoreMember(Slot(1)),
        failpoint: Failpoint::RaftAfterSave,
        restart_after_ms,
        passes: 0,
    };
    check_invalid(
        FaultPlan {
            events: vec![FaultEvent { at_ms: 0, duration_ms: 500, fault: restart_after(600) }],
            ..plan.clone()
        },
        "event 0: crash-at-failpoint restart_after_ms 600 is longer than the event (500 ms); the member must \
         be back when the event heals",
    );
    check_invalid(
        FaultPlan {
            events: vec![FaultEvent { at_ms: 0, duration_ms: 20_000, fault: restart_after(10_001) }],
            ..plan.clone()
        },
        "event 0: crash-at-failpoint restart_after_ms 10001 out of range (at most 10000)",
    );
    check_invalid(
        plan_of(Fault::CrashAtFailpoint {
            member: Target::Scheduler,
            failpoint: Failpoint::RaftBeforeSave,
            restart_after_ms: 0,
            passes: 0,
        }),
        "event 0: crash-at-failpoint needs a store member target (store-N or store-leader), got scheduler",
    );
    check_invalid(
        plan_of(Fault::CrashAtFailpoint {
            member: Target::StoreMember(Slot(1)),
            failpoint: Failpoint::RaftBeforeLeaderSend,
            restart_after_ms: 0,
            passes: 1_001,
        }),
        "event 0: crash-at-failpoint passes 1001 out of range (at most 1000)",
    );
}

#[test]
fn survivability_counts_a_failpoint_crash_with_a_restart_delay_but_not_one_restarted_at_once() {
    let topology = small_topology();
    let at_failpoint = |member, restart_after_ms| FaultEvent {
        at_ms: 1_000,
        duration_ms: 2_000,
        fault: Fault::CrashAtFailpoint {
            member: Target::StoreMember(Slot(member)),
            failpoint: Failpoint::RaftAfterVote,
            restart_after_ms,
            passes: 0,
        },
    };
    let crash =
        FaultEvent { at_ms: 1_500, duration_ms: 1_000, fault: Fault::Crash { target: Target::StoreMember(Slot(3)) } };
    let mut plan = FaultPlan::empty(30_000, 30_000);
    // Restarted at once: never down, so every member may be armed beside a crash.
    plan.events = vec![at_failpoint(1, 0), at_failpoint(2, 0), at_failpoint(3, 0), crash.clone()];
    plan.check_survivable(&topology).unwrap();
    // With a delay it holds its member down over the whole event.
    plan.events = vec![at_failpoint(1, 100), crash.clone()];
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: at 1500 ms 2 store members are down; at most 1 of 3 may be"
    );
    plan.events = vec![at_failpoint(3, 100), crash];
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: at 1500 ms 2 store members are down; at most 1 of 3 may be"
    );
}

#[test]
fn reading_rejects_other_versions_unknown_fields_and_kinds() {
    let error = |json: &str| FaultPlan::from_json(json).unwrap_err().to_string();
    assert_eq!(
        error(r#"{"version": 3, "future_field": true}"#),
        "unsupported fault plan version 3 (this kubesim reads versions 1 and 2)"
    );
    let mut plan = plan_of(Fault::IsolateStoreLeader);
    plan.version = 0;
    check_invalid(plan, "unsupported fault plan version 0 (this kubesim reads versions 1 and 2)");
    let base = r#""version": 2, "safety_phase_ms": 10, "liveness_phase_ms": 10"#;
    assert!(error(&format!(r#"{{{base}, "events": [], "seed": 3}}"#)).contains("unknown field `seed`"),);
    let with_fault =
        |fault: &str| error(&format!(r#"{{{base}, "events": [{{"at_ms": 0, "duration_ms": 1, "fault": {fault}}}]}}"#));
    assert!(with_fault(r#"{"kind": "meteor-strike"}"#).contains("unknown variant `meteor-strike`"));
    assert!(with_fault(r#"{"kind": "pause", "target": "kubelet-0", "ms": 3}"#).contains("unknown field `ms`"));
    assert!(with_fault(r#"{"kind": "pause", "target": "etcd-1"}"#).contains(
        "unknown target \"etcd-1\" (expected store-N, store-leader, apiserver-N, \
         controller-manager-N, controller-manager-leader, scheduler or kubelet-N)"
    ));
    assert!(error("not json").starts_with("fault plan is not valid JSON for a plan: "));
}

#[test]
fn loading_a_missing_file_names_the_path() {
    let error = PlanFile::load("/nonexistent/kubesim/plan.json").unwrap_err();
    assert!(matches!(error, PlanError::Io { .. }));
    assert!(error.to_string().starts_with("cannot read fault plan /nonexistent/kubesim/plan.json: "), "{error}");
}

#[test]
fn loading_reads_a_saved_plan() {
    let path = std::env::temp_dir().join(format!("faults-plan-{}.json", std::process::id()));
    std::fs::write(&path, example_plan().to_json_pretty()).unwrap();
    let loaded = PlanFile::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap(), PlanFile::V2(example_plan()));
}

#[test]
fn survivability_counts_down_store_members_over_time() {
    let topology = small_topology();
    let crash = |at_ms, target| FaultEvent { at_ms, duration_ms: 1_000, fault: Fault::Crash { target } };
    let mut plan = FaultPlan::empty(30_000, 30_000);
    plan.events = vec![crash(1_000, Target::StoreMember(Slot(1))), crash(2_000, Target::StoreLeader)];
    plan.check_survivable(&topology).unwrap();
    plan.events.push(crash(2_500, Target::StoreMember(Slot(3))));
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: at 2500 ms 2 store members are down; at most 1 of 3 may be"
    );

    // A corrupted member refuses to start: once its corruption heals it stays down.
    plan.events = vec![
        FaultEvent {
            at_ms: 1_000,
            duration_ms: 1_000,
            fault: Fault::CorruptRecord {
                member: Target::StoreMember(Slot(2)),
                flip: BitFlip { offset_ppm: 0, xor_mask: 1 },
            },
        },
        crash(20_000, Target::Kubelet(0)),
    ];
    plan.check_survivable(&topology).unwrap();
    plan.events.push(crash(20_000, Target::StoreMember(Slot(1))));
    assert!(plan.check_survivable(&topology).is_err());
    plan.events.pop();
    plan.events.push(plan.events[0].clone());
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: 2 corrupt-record events; at most one store member may be corrupted"
    );

    plan.events = vec![
        crash(1_000, Target::Kubelet(1)),
        FaultEvent { at_ms: 1_500, duration_ms: 100, fault: Fault::Pause { target: Target::Kubelet(1) } },
    ];
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: kubelet-1 is crashed or paused by two overlapping events"
    );
}

#[test]
fn survivability_allows_a_power_loss_of_every_member_but_no_overlap_with_store_crashes() {
    let topology = small_topology();
    let event = |at_ms, fault| FaultEvent { at_ms, duration_ms: 1_000, fault };
    let power_loss = |at_ms| event(at_ms, Fault::PowerLoss { tears: every_member_torn() });
    let mut plan = FaultPlan::empty(30_000, 30_000);
    // Every member down at once is survivable when it is a power loss, and other
    // components may fail meanwhile.
    plan.events = vec![
        power_loss(1_000),
        event(1_500, Fault::Crash { target: Target::ApiServer(0) }),
        event(1_500, Fault::Pause { target: Target::Kubelet(0) }),
        event(6_000, Fault::Crash { target: Target::StoreMember(Slot(1)) }),
    ];
    plan.check_survivable(&topology).unwrap();
    plan.validate(&topology).unwrap();
    for (fault, name) in [
        (Fault::Crash { target: Target::StoreLeader }, "crash"),
        (Fault::CrashStoreMember { member: Target::StoreMember(Slot(2)), tear: None }, "crash-store-member"),
        (Fault::Pause { target: Target::StoreMember(Slot(3)) }, "pause"),
    ] {
        plan.events = vec![power_loss(1_000), event(1_999, fault)];
        assert_eq!(
            plan.check_survivable(&topology).unwrap_err().to_string(),
            format!("plan is not survivable: power-loss at 1000 ms overlaps a {name} of the store at 1999 ms")
        );
    }
    plan.events = vec![power_loss(1_000), power_loss(20_000)];
    assert_eq!(
        plan.check_survivable(&topology).unwrap_err().to_string(),
        "plan is not survivable: 2 power-loss events; at most one whole-store outage per plan"
    );
    let no_store = Topology { store_members: 0, ..topology };
    plan.events = vec![event(1_000, Fault::PowerLoss { tears: BTreeMap::new() })];
    assert_eq!(
        plan.validate(&no_store).unwrap_err().to_string(),
        "event 0: power-loss needs a store (topology has 0 store members)"
    );
}

#[test]
fn disk_losses_are_survivable_only_one_restore_at_a_time() {
    let topology = small_topology();
    let majority =
        || Fault::DiskLossMajority { members: vec![Target::StoreMember(Slot(2)), Target::StoreMember(Slot(3))] };
    let at = |at_ms: u64, duration_ms: u64, fault: Fault| FaultEvent { at_ms, duration_ms, fault };
    let plan_of_events = |events: Vec<FaultEvent>| FaultPlan { events, ..FaultPlan::empty(30_000, 10_000) };
    let one_loss_and_a_backup = plan_of_events(vec![
        at(1_000, 0, Fault::Backup { member: Target::StoreLeader }),
        at(2_000, 3_000, Fault::DiskLoss { member: Target::StoreMember(Slot(1)) }),
        at(9_000, 3_000, majority()),
        at(20_000, 0, Fault::SnapshotCorruption { flip: BitFlip { offset_ppm: 0, xor_mask: 1 } }),
    ]);
    one_loss_and_a_backup.validate(&topology).unwrap();
    one_loss_and_a_backup.check_survivable(&topology).unwrap();
    let two_restores = plan_of_events(vec![at(2_000, 1_000, Fault::DiskLossAll), at(9_000, 1_000, majority())]);
    let error = two_restores.check_survivable(&topology).unwrap_err().to_string();
    assert!(error.contains("at most one restore per plan"), "{error}");
    let loss_during_crash = plan_of_events(vec![
        at(2_000, 3_000, Fault::Crash { target: Target::StoreMember(Slot(2)) }),
        at(3_000, 1_000, Fault::DiskLossAll),
    ]);
    let error = loss_during_crash.check_survivable(&topology).unwrap_err().to_string();
    assert!(error.contains("disk-loss-all at 3000 ms overlaps a crash"), "{error}");
    let two_single_losses = plan_of_events(vec![
        at(2_000, 3_000, Fault::DiskLoss { member: Target::StoreMember(Slot(1)) }),
        at(3_000, 3_000, Fault::DiskLoss { member: Target::StoreMember(Slot(2)) }),
    ]);
    let error = two_single_losses.check_survivable(&topology).unwrap_err().to_string();
    assert!(error.contains("2 store members are down"), "{error}");
    let backup_of_a_kubelet = plan_of_events(vec![at(1_000, 0, Fault::Backup { member: Target::Kubelet(0) })]);
    let error = backup_of_a_kubelet.validate(&topology).unwrap_err().to_string();
    assert!(error.contains("backup needs a store member target"), "{error}");
}

#[test]
fn leader_chase_reads_as_this_json_validates_its_steps_and_holds_one_member_down() {
    let json = r#"{"version":2,"safety_phase_ms":30000,"liveness_phase_ms":30000,"events":[
        {"at_ms":1000,"duration_ms":2000,"fault":{"kind":"leader-chase","steps":[
         {"failpoint":"raft-before-leader-send"},{"failpoint":"raft-leader-after-apply","passes":2}]}}]}"#;
    let plan = FaultPlan::from_json(json).unwrap();
    let steps = vec![
        ChaseStep { failpoint: Failpoint::RaftBeforeLeaderSend, passes: 0 },
        ChaseStep { failpoint: Failpoint::RaftLeaderAfterApply, passes: 2 },
    ];
    assert_eq!(plan.events[0].fault, Fault::LeaderChase { steps: steps.clone() });
    plan.validate(&small_topology()).unwrap();

    check_invalid(
        plan_of(Fault::LeaderChase { steps: Vec::new() }),
        "event 0: leader-chase has 0 steps; it needs 1 to 32",
    );
    let too_many = ChaseStep { failpoint: Failpoint::RaftBeforeLeaderSend, passes: 1_001 };
    check_invalid(
        plan_of(Fault::LeaderChase { steps: vec![steps[0], too_many] }),
        "event 0: leader-chase step 1 passes 1001 out of range (at most 1000)",
    );
    let one_member = Topology { store_members: 1, ..small_topology() };
    assert_eq!(
        plan.validate(&one_member).unwrap_err().to_string(),
        "event 0: leader-chase needs at least 2 store members (topology has 1)"
    );

    // A chase holds one member down over its whole event: no other store crash beside it on
    // three members.
    let mut plan = plan;
    plan.events.push(FaultEvent {
        at_ms: 2_500,
        duration_ms: 1_000,
        fault: Fault::Crash { target: Target::StoreLeader },
    });
    assert_eq!(
        plan.check_survivable(&small_topology()).unwrap_err().to_string(),
        "plan is not survivable: at 2500 ms 2 store members are down; at most 1 of 3 may be"
    );
}

#[test]
fn tears_and_bit_flips_turn_their_fractions_into_bytes() {
    assert_eq!(Tear { kept_ppm: 0 }.kept_bytes(100), 0);
    assert_eq!(Tear { kept_ppm: PPM / 4 }.kept_bytes(100), 25);
    assert_eq!(Tear { kept_ppm: PPM }.kept_bytes(100), 100, "the whole write");
    assert_eq!(Tear { kept_ppm: PPM }.kept_bytes(u64::MAX), u64::MAX, "no overflow");
    assert_eq!(BitFlip { offset_ppm: 0, xor_mask: 1 }.offset(7), 0);
    assert_eq!(BitFlip { offset_ppm: PPM - 1, xor_mask: 1 }.offset(7), 6, "always inside the file");
    assert_eq!(BitFlip { offset_ppm: PPM / 2, xor_mask: 1 }.offset(1_000), 500);
}

#[test]
fn validation_checks_the_choices_a_plan_holds() {
    let flip = |offset_ppm, xor_mask| BitFlip { offset_ppm, xor_mask };
    check_invalid(
        plan_of(Fault::CrashStoreMember {
            member: Target::StoreMember(Slot(1)),
            tear: Some(Tear { kept_ppm: PPM + 1 }),
        }),
        "event 0: tear kept_ppm 1000001 out of range (at most 1000000, the whole write)",
    );
    check_invalid(
        plan_of(Fault::CorruptRecord { member: Target::StoreMember(Slot(1)), flip: flip(PPM, 1) }),
        "event 0: flip offset_ppm 1000000 out of range (below 1000000, inside the file)",
    );
    check_invalid(plan_of(Fault::SnapshotCorruption { flip: flip(0, 0) }), "event 0: flip xor_mask 0 flips no bit");
    let mut two_of_three = every_member_torn();
    two_of_three.remove(&Target::StoreMember(Slot(2)));
    check_invalid(
        plan_of(Fault::PowerLoss { tears: two_of_three }),
        "event 0: power-loss tears name 2 of the 3 store members; name every member or none",
    );
    let mut by_leader = every_member_torn();
    by_leader.insert(Target::StoreLeader, Tear { kept_ppm: 0 });
    check_invalid(
        plan_of(Fault::PowerLoss { tears: by_leader }),
        "event 0: power-loss tears name store-leader; name store members (store-N)",
    );
    check_invalid(
        plan_of(Fault::PowerLoss { tears: BTreeMap::from([(Target::StoreMember(Slot(4)), Tear { kept_ppm: 0 })]) }),
        "event 0: target store-4 does not exist (topology has 3 store members, numbered 1..=3)",
    );
    let majority = |members: &[u64]| Fault::DiskLossMajority {
        members: members.iter().map(|m| Target::StoreMember(Slot(*m))).collect(),
    };
    check_invalid(
        plan_of(majority(&[2])),
        "event 0: disk-loss-majority members are 1 of the 3 store members, not a majority (at least 2)",
    );
    check_invalid(plan_of(majority(&[2, 2])), "event 0: disk-loss-majority names a member more than once");
    check_invalid(
        plan_of(majority(&[1, 5])),
        "event 0: target store-5 does not exist (topology has 3 store members, numbered 1..=3)",
    );
    check_invalid(
        plan_of(Fault::DiskLossMajority { members: vec![Target::StoreLeader, Target::StoreMember(Slot(1))] }),
        "event 0: disk-loss-majority members name store-leader; name store members (store-N)",
    );
    plan_of(majority(&[1, 2, 3])).validate(&small_topology()).unwrap();
}

#[test]
fn validation_refuses_clock_skews_that_change_nothing() {
    // A store member's clock is its lessor's: skewing it is a fault.
    plan_of(Fault::ClockSkew { target: Target::StoreMember(Slot(1)), offset_ms: 5_000, drift_ms_per_s: 0 })
        .validate(&small_topology())
        .unwrap();
    plan_of(Fault::ClockSkew { target: Target::StoreLeader, offset_ms: 5_000, drift_ms_per_s: 0 })
        .validate(&small_topology())
        .unwrap();
    check_invalid(
        plan_of(Fault::ClockSkew { target: Target::Kubelet(1), offset_ms: 0, drift_ms_per_s: 0 }),
        "event 0: clock-skew of kubelet-1 with no offset and no drift changes nothing",
    );
    plan_of(Fault::ClockSkew { target: Target::Kubelet(1), offset_ms: 0, drift_ms_per_s: 1 })
        .validate(&small_topology())
        .unwrap();
}

/// A version 1 plan with every kind version 2 completed, and two skews it drops.
const V1_PLAN: &str = r#"{"version": 1, "safety_phase_ms": 30000, "liveness_phase_ms": 30000, "events": [
  {"at_ms": 1000, "duration_ms": 500, "fault": {"kind": "crash-store-member", "member": "store-2", "tear": true}},
  {"at_ms": 2000, "duration_ms": 500, "fault": {"kind": "crash-store-member", "member": "store-1", "tear": false}},
  {"at_ms": 3000, "duration_ms": 500, "fault": {"kind": "power-loss", "tear": true}},
  {"at_ms": 4000, "duration_ms": 500, "fault": {"kind": "power-loss", "tear": false}},
  {"at_ms": 5000, "duration_ms": 500, "fault": {"kind": "corrupt-record", "member": "store-leader"}},
  {"at_ms": 6000, "duration_ms": 0, "fault": {"kind": "snapshot-corruption"}},
  {"at_ms": 7000, "duration_ms": 500, "fault": {"kind": "disk-loss-majority"}},
  {"at_ms": 8000, "duration_ms": 500, "fault": {"kind": "clock-skew", "target": "store-3", "offset_ms": 900, "drift_ms_per_s": 0}},
  {"at_ms": 9000, "duration_ms": 500, "fault": {"kind": "clock-skew", "target": "kubelet-0", "offset_ms": 0, "drift_ms_per_s": 0}},
  {"at_ms": 10000, "duration_ms": 500, "fault": {"kind": "pause", "target": "kubelet-0"}}
]}"#;

#[test]
fn a_version_1_plan_is_upgraded_for_the_topology_it_runs_on() {
    let file = PlanFile::from_json(V1_PLAN).unwrap();
    assert_eq!(file.version(), 1);
    assert!(matches!(FaultPlan::from_json(V1_PLAN), Err(PlanError::NotUpgraded { found: 1 })));
    let three = file.fit(&small_topology()).unwrap();
    assert_eq!(three.version, 2);
    assert_eq!(file.fit(&small_topology()).unwrap(), three, "the upgrade is deterministic");
    // Every choice is drawn; the skews that changed nothing are gone; the rest is as written.
    let kinds: Vec<String> =
        three.events.iter().map(|event| format!("{} {}", event.at_ms, event.fault.kind())).collect();
    assert_eq!(
        kinds,
        [
            "1000 disk-crash",
            "2000 disk-crash",
            "3000 power-loss",
            "4000 power-loss",
            "5000 corruption",
            "6000 snapshot-corruption",
            "7000 disk-loss-majority",
            "10000 pause"
        ]
    );
    let faults: Vec<&Fault> = three.events.iter().map(|event| &event.fault).collect();
    assert!(matches!(faults[0], Fault::CrashStoreMember { member: Target::StoreMember(Slot(2)), tear: Some(_) }));
    assert_eq!(*faults[1], Fault::CrashStoreMember { member: Target::StoreMember(Slot(1)), tear: None });
    assert!(matches!(faults[2], Fault::PowerLoss { tears } if tears.len() == 3));
    assert_eq!(*faults[3], Fault::PowerLoss { tears: BTreeMap::new() });
    assert!(matches!(faults[4], Fault::CorruptRecord { member: Target::StoreLeader, .. }));
    assert!(matches!(faults[6], Fault::DiskLossMajority { members } if members.len() == 2));
    // On five members a power loss tears five and a majority is three.
    let five = file.fit(&Topology { store_members: 5, ..small_topology() }).unwrap();
    assert!(matches!(&five.events[2].fault, Fault::PowerLoss { tears } if tears.len() == 5));
    assert!(matches!(&five.events[6].fault, Fault::DiskLossMajority { members } if members.len() == 3));
    // The upgraded plan is an ordinary version 2 plan.
    assert_eq!(PlanFile::from_json(&three.to_json_pretty()).unwrap(), PlanFile::V2(three.clone()));
}

#[test]
fn a_version_1_plan_reports_bad_events_and_targets_outside_its_topology() {
    let error = PlanFile::from_json(
        r#"{"version": 1, "safety_phase_ms": 10, "liveness_phase_ms": 10, "events": [
        {"at_ms": 0, "duration_ms": 1, "fault": {"kind": "power-loss", "tear": "yes"}}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("invalid type: string \"yes\", expected a boolean"), "{error}");
    let file = PlanFile::from_json(
        r#"{"version": 1, "safety_phase_ms": 10000, "liveness_phase_ms": 10000, "events": [
        {"at_ms": 0, "duration_ms": 1, "fault": {"kind": "crash-store-member", "member": "store-5", "tear": true}}]}"#,
    )
    .unwrap();
    assert_eq!(
        file.fit(&small_topology()).unwrap_err().to_string(),
        "event 0: target store-5 does not exist (topology has 3 store members, numbered 1..=3)"
    );
}

/// Every simulated duration of a plan is bounded: the phases by
/// `MAX_SAFETY_PHASE_MS`/`MAX_LIVENESS_PHASE_MS`, each event by the safety phase; and a
/// plan that leaves the system no time to converge is refused.
#[test]
fn validation_bounds_both_phases_and_demands_a_liveness_phase() {
    use faults::{MAX_LIVENESS_PHASE_MS, MAX_SAFETY_PHASE_MS, MIN_LIVENESS_PHASE_MS};
    let phases = |safety_phase_ms, liveness_phase_ms| FaultPlan::empty(safety_phase_ms, liveness_phase_ms);
    assert!(phases(MAX_SAFETY_PHASE_MS, MAX_LIVENESS_PHASE_MS).validate(&small_topology()).is_ok());
    assert!(phases(0, MIN_LIVENESS_PHASE_MS).validate(&small_topology()).is_ok(), "no faults, some liveness");
    check_invalid(phases(1_000_000_000, 30_000), "safety_phase_ms 1000000000 out of range (0 to 600000)");
    check_invalid(phases(30_000, u64::MAX), &format!("liveness_phase_ms {} out of range (1000 to 600000)", u64::MAX));
    check_invalid(phases(0, 0), "liveness_phase_ms 0 out of range (1000 to 600000)");
    check_invalid(phases(30_000, 999), "liveness_phase_ms 999 out of range (1000 to 600000)");
}

#[test]
fn loading_refuses_a_file_larger_than_any_plan_without_reading_it_whole() {
    let error = PlanFile::load("/dev/zero").unwrap_err();
    assert!(matches!(error, PlanError::TooLarge { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "fault plan /dev/zero is larger than {} bytes; a plan of the most events allowed is far smaller",
            faults::MAX_PLAN_FILE_BYTES
        )
    );
}

/// A plan's workload: saved as a `workload` array (left out when empty), read back the
/// same, and every bad action refused with its index.
#[test]
fn a_plans_workload_round_trips_and_bad_actions_are_named() {
    use faults::actions::{Action, Cascade, UserAction};
    let topology = Topology { store_members: 3, apiservers: 1, controller_managers: 2, schedulers: 1, kubelets: 3 };
    let mut plan = FaultPlan::empty(30_000, 30_000);
    assert!(!plan.to_json_pretty().contains("workload"));
    plan.workload = vec![
        UserAction { at_ms: 10, user: "alice".into(), action: Action::Drain { node: 2 } },
        UserAction {
            at_ms: 20,
            user: "bob".into(),
            action: Action::DeleteDeployment { name: "web".into(), cascade: Cascade::Foreground },
        },
    ];
    plan.validate(&topology).unwrap();
    let json = plan.to_json_pretty();
    assert!(json.contains(r#""action": "delete-deployment""#), "{json}");
    assert_eq!(FaultPlan::from_json(&json).unwrap(), plan);
    let mut late = plan.clone();
    late.workload[1].at_ms = 30_000;
    assert_eq!(
        late.validate(&topology).unwrap_err().to_string(),
        "workload action 1: at_ms 30000 is not within the safety phase (30000 ms)"
    );
    let mut crowd = plan.clone();
    crowd.workload = (0..9)
        .map(|i| UserAction { at_ms: 0, user: format!("user-{i}"), action: Action::Cordon { node: 0 } })
        .collect();
    assert_eq!(
        crowd.validate(&topology).unwrap_err().to_string(),
        "fault plan's workload names 9 users; at most 8 are allowed"
    );
}
