//! Swarm generation: determinism, validity, safety limits, the swarm property, menus.

use std::collections::{BTreeMap, BTreeSet};

use faults::{generate, Fault, FaultKind, FaultPlan, GenerateOptions, Target, Topology};

use crate::small_topology;

fn generate_all(seed: u64, topology: &Topology) -> FaultPlan {
    generate(seed, topology, &FaultKind::all(), &GenerateOptions::default())
}

fn kinds_of(plan: &FaultPlan) -> BTreeSet<FaultKind> {
    plan.events.iter().map(|event| event.fault.kind()).collect()
}

#[test]
fn default_options_are_thirty_second_phases_and_eight_events() {
    assert_eq!(
        GenerateOptions::default(),
        GenerateOptions { safety_phase_ms: 30_000, liveness_phase_ms: 30_000, max_events: 8 }
    );
}

#[test]
fn the_same_seed_gives_the_same_plan() {
    let topology = small_topology();
    for seed in [0, 1, 42, u64::MAX] {
        let first = generate_all(seed, &topology);
        let second = generate_all(seed, &topology);
        assert_eq!(first, second);
        assert_eq!(first.to_json_pretty(), second.to_json_pretty());
    }
}

#[test]
fn different_seeds_give_different_plans() {
    let topology = small_topology();
    let plans: BTreeSet<String> = (0..200).map(|seed| generate_all(seed, &topology).to_json_pretty()).collect();
    assert_eq!(plans.len(), 200);
}

/// A pause of the controller-manager leader, which the generator adds beside a seed's
/// picks when the pause kind is enabled (see `faults::generate::LEASE_HOLDER_PAUSE_MS`).
fn is_lease_holder_pause(event: &faults::FaultEvent) -> bool {
    matches!(event.fault, Fault::Pause { target: Target::ControllerManagerLeader })
}

/// The limits a correct cluster must survive, checked independently of
/// `FaultPlan::check_survivable` for the simple cases.
#[track_caller]
fn check_generated(plan: &FaultPlan, topology: &Topology, options: &GenerateOptions) {
    plan.validate(topology).unwrap();
    plan.check_survivable(topology).unwrap();
    assert_eq!(plan.safety_phase_ms, options.safety_phase_ms);
    assert_eq!(plan.liveness_phase_ms, options.liveness_phase_ms);
    // A pick of the `failpoint` kind is one burst: crashes at failpoints or a leader chase,
    // perhaps with a latency spike over the burst; every other pick is one event.
    let burst_starts: std::collections::BTreeSet<u64> = plan
        .events
        .iter()
        .filter(|event| matches!(event.fault, Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. }))
        .map(|event| event.at_ms)
        .collect();
    let of_burst = |event: &faults::FaultEvent| match event.fault {
        Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. } => true,
        Fault::LatencySpike { .. } => burst_starts.contains(&event.at_ms),
        _ => false,
    };
    let n_single = plan
        .events
        .iter()
        .filter(|event| !matches!(event.fault, Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. }))
        .filter(|event| !is_lease_holder_pause(event))
        .count();
    assert!(!plan.events.is_empty() && n_single <= options.max_events);
    assert!(plan.events.iter().filter(|event| is_lease_holder_pause(event)).count() <= 1);
    let corruptions = plan.events.iter().filter(|event| matches!(event.fault, Fault::CorruptRecord { .. })).count();
    assert!(corruptions <= 1);
    for event in &plan.events {
        assert!(event.at_ms + event.duration_ms <= plan.safety_phase_ms);
        if of_burst(event) {
            assert!(event.duration_ms >= 100, "{event:?}");
        } else if is_lease_holder_pause(event) {
            let longest = (*faults::generate::LEASE_HOLDER_PAUSE_MS.end()).min(plan.safety_phase_ms);
            assert!((*faults::generate::LEASE_HOLDER_PAUSE_MS.start()..=longest).contains(&event.duration_ms));
        } else {
            assert!((500..=10_000).contains(&event.duration_ms), "{event:?}");
        }
    }
    assert!(plan.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    // Sample every 100 ms: crashed store members never reach a majority.
    for t in (0..plan.safety_phase_ms).step_by(100) {
        let down = plan
            .events
            .iter()
            .filter(|event| {
                let store_crash = match &event.fault {
                    Fault::Crash { target } => target.is_store(),
                    Fault::CrashStoreMember { .. } | Fault::LeaderChase { .. } => true,
                    Fault::CrashAtFailpoint { restart_after_ms, .. } => *restart_after_ms > 0,
                    _ => false,
                };
                let active = event.at_ms <= t && t < event.at_ms + event.duration_ms;
                let corrupted =
                    matches!(event.fault, Fault::CorruptRecord { .. }) && event.at_ms + event.duration_ms <= t;
                (store_crash && active) || corrupted
            })
            .count() as u64;
        assert!(down <= topology.store_minority(), "t={t}: {plan:#?}");
    }
}

#[test]
fn a_thousand_generated_plans_validate_and_respect_the_safety_limits() {
    let options = GenerateOptions::default();
    for topology in [small_topology(), Topology { store_members: 5, ..small_topology() }] {
        for seed in 0..1000 {
            let plan = generate(seed, &topology, &FaultKind::all(), &options);
            check_generated(&plan, &topology, &options);
        }
    }
}

#[test]
fn other_phases_and_event_counts_are_honoured() {
    let topology = small_topology();
    let options = GenerateOptions { safety_phase_ms: 12_000, liveness_phase_ms: 5_000, max_events: 3 };
    let mut max_seen = 0;
    for seed in 0..300 {
        let plan = generate(seed, &topology, &FaultKind::all(), &options);
        check_generated(&plan, &topology, &options);
        let n_single = plan
            .events
            .iter()
            .filter(|event| !matches!(event.fault, Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. }))
            .filter(|event| !is_lease_holder_pause(event))
            .count();
        max_seen = max_seen.max(n_single);
    }
    assert_eq!(max_seen, 3);
    let none = GenerateOptions { max_events: 0, ..options };
    assert!(generate(7, &topology, &FaultKind::all(), &none).events.is_empty());
}

#[test]
fn the_controller_manager_leader_is_paused_past_its_lease_only_when_pauses_are_on_the_menu() {
    let topology = small_topology();
    let lease_holder_pauses = |menu: &BTreeSet<FaultKind>| -> Vec<u64> {
        (0..400)
            .flat_map(|seed| generate(seed, &topology, menu, &GenerateOptions::default()).events)
            .filter(is_lease_holder_pause)
            .map(|event| event.duration_ms)
            .collect()
    };
    let with_pauses = lease_holder_pauses(&FaultKind::all());
    // Half the seeds enable pauses, half of those pause the leader: about 100 of 400.
    assert!((60..=140).contains(&with_pauses.len()), "{}", with_pauses.len());
    // Some outlast Kubernetes' default 15 s lease plus a standby's retries, some do not.
    assert!(with_pauses.iter().any(|&ms| ms > 20_000) && with_pauses.iter().any(|&ms| ms < 15_000));
    let no_pauses: BTreeSet<FaultKind> =
        FaultKind::all().into_iter().filter(|kind| *kind != FaultKind::Pause).collect();
    assert!(lease_holder_pauses(&no_pauses).is_empty());
}

#[test]
fn each_seed_picks_its_own_subset_of_kinds() {
    let topology = small_topology();
    let mut subsets = BTreeSet::new();
    let mut plans_with = BTreeMap::<FaultKind, usize>::new();
    for seed in 0..200 {
        let kinds = kinds_of(&generate_all(seed, &topology));
        for kind in &kinds {
            *plans_with.entry(*kind).or_default() += 1;
        }
        subsets.insert(kinds);
    }
    // Every kind appears, none appears everywhere, and the mix varies a lot.
    assert_eq!(plans_with.keys().copied().collect::<BTreeSet<_>>(), FaultKind::all());
    for (kind, count) in &plans_with {
        assert!(*count < 200, "{kind} in every plan");
    }
    assert!(subsets.len() >= 50, "only {} distinct kind sets", subsets.len());
    assert!(subsets.iter().any(|kinds| kinds.len() == 1));
    assert!(subsets.iter().any(|kinds| kinds.len() >= 4));
}

#[test]
fn the_menu_restricts_the_kinds() {
    let topology = small_topology();
    let menu = FaultKind::parse_list("partition,clock").unwrap();
    let mut seen = BTreeSet::new();
    for seed in 0..300 {
        let kinds = kinds_of(&generate(seed, &topology, &menu, &GenerateOptions::default()));
        assert!(kinds.is_subset(&menu), "seed {seed}: {kinds:?}");
        seen.extend(kinds);
    }
    assert_eq!(seen, menu);
    let only_corruption = BTreeSet::from([FaultKind::Corruption]);
    for seed in 0..100 {
        let plan = generate(seed, &topology, &only_corruption, &GenerateOptions::default());
        assert_eq!(plan.events.len(), 1, "one corruption per plan");
    }
}

#[test]
fn a_single_member_store_is_never_crashed_or_corrupted() {
    let topology = Topology { store_members: 1, ..small_topology() };
    for seed in 0..300 {
        let plan = generate_all(seed, &topology);
        plan.validate(&topology).unwrap();
        for event in &plan.events {
            match &event.fault {
                Fault::Crash { target } => assert!(!target.is_store(), "{event:?}"),
                Fault::CrashStoreMember { .. } | Fault::CorruptRecord { .. } => {
                    panic!("seed {seed}: {event:?}")
                }
                Fault::MajoritiesRing | Fault::Bridge => panic!("seed {seed}: {event:?}"),
                _ => {}
            }
        }
    }
    let disk_only = BTreeSet::from([FaultKind::DiskCrash, FaultKind::Corruption]);
    let plan = generate(3, &topology, &disk_only, &GenerateOptions::default());
    assert!(plan.events.is_empty(), "no feasible kind gives an empty plan");
}

#[test]
fn targets_lean_toward_the_store() {
    let topology = small_topology();
    let menu = FaultKind::parse_list("crash,pause").unwrap();
    let (mut store, mut other) = (0, 0);
    let mut leader = 0;
    for seed in 0..500 {
        for event in generate(seed, &topology, &menu, &GenerateOptions::default()).events {
            let (Fault::Crash { target } | Fault::Pause { target }) = &event.fault else { unreachable!() };
            if target.is_store() {
                store += 1;
            } else {
                other += 1;
            }
            leader += usize::from(*target == Target::StoreLeader);
        }
    }
    // 8 of the topology's 11 components are not store members, yet most faults hit it.
    assert!(store > other, "store {store}, other {other}");
    assert!(leader > 0);
}

#[test]
fn disk_loss_menus_bring_periodic_backups_and_restores_come_after_the_first() {
    let topology = small_topology();
    let menu = FaultKind::parse_list("disk-loss,disk-loss-majority,disk-loss-all,snapshot-corruption").unwrap();
    let options = GenerateOptions::default();
    let mut kinds_seen = BTreeSet::new();
    for seed in 0..300 {
        let plan = generate(seed, &topology, &menu, &options);
        plan.validate(&topology).unwrap();
        plan.check_survivable(&topology).unwrap();
        let backups: Vec<u64> = plan
            .events
            .iter()
            .filter(|event| matches!(event.fault, Fault::Backup { .. }))
            .map(|event| event.at_ms)
            .collect();
        assert_eq!(backups.first(), Some(&faults::generate::FIRST_BACKUP_MS), "seed {seed}");
        for event in &plan.events {
            if matches!(event.fault, Fault::DiskLossMajority { .. } | Fault::DiskLossAll) {
                assert!(event.at_ms > backups[0], "seed {seed}: {event:?} before the first backup");
            }
        }
        kinds_seen.extend(kinds_of(&plan));
    }
    let mut expected = menu.clone();
    expected.insert(FaultKind::Backup);
    assert_eq!(kinds_seen, expected);
    // Menus without disk losses have no backups.
    for seed in 0..50 {
        assert!(!kinds_of(&generate_all(seed, &topology)).contains(&FaultKind::Backup));
    }
}
