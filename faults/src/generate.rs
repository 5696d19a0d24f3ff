//! Swarm generation of fault plans, after TigerBeetle's VOPR and "Swarm Testing" (Groce et
//! al., ISSTA 2012): rather than every seed mixing every fault a little, each seed enables
//! its own random subset of the menu at its own intensity, so some seeds hammer one fault
//! hard and faults that mask each other are also tried apart.
//!
//! Plans are generated before and outside the simulation (`kubesim run --seed N
//! --print-plan` prints one without running it), so randomness comes from a ChaCha stream
//! seeded by the seed alone, never from madsim's RNG.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use rand::seq::index::sample;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::kinds::FaultKind;
use crate::plan::{
    BitFlip, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, Slot, Target, Tear, Topology, PLAN_VERSION, PPM,
};

/// The shortest fault the generator produces.
pub const MIN_DURATION_MS: u64 = 500;
/// The longest fault the generator produces.
pub const MAX_DURATION_MS: u64 = 10_000;

/// Attempts to draw an event that keeps the plan survivable before giving it up.
const MAX_ATTEMPTS_PER_EVENT: usize = 16;

/// When the operator's first backup is taken, and the range its period is drawn from:
/// the operator of docs/design.md §3 backs up every few simulated seconds.
pub const FIRST_BACKUP_MS: u64 = 1_000;
pub const BACKUP_PERIOD_MS: std::ops::RangeInclusive<u64> = 2_000..=6_000;
/// A majority or total disk loss is drawn no earlier than this after the first backup,
/// so that the operator usually has a backup to restore (a loss with every backup
/// corrupted still ends in `total-loss`).
const STORE_LOSS_AFTER_FIRST_BACKUP_MS: u64 = 1_000;

/// Knobs of the generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    pub safety_phase_ms: u64,
    pub liveness_phase_ms: u64,
    /// Each seed draws its number of fault picks from `1..=max_events`: a pick is one
    /// event, or for the `failpoint` kind one burst of them (see `failpoint_burst`).
    pub max_events: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { safety_phase_ms: 30_000, liveness_phase_ms: 30_000, max_events: 8 }
    }
}

/// The kinds of `menu` that `topology` can express while a correct system survives:
/// disk crashes need a store that tolerates a crashed member, corruption needs three
/// members, crashes need some target whose crash leaves a majority, a power loss needs a
/// store.
pub fn feasible_kinds(topology: &Topology, menu: &BTreeSet<FaultKind>) -> Vec<FaultKind> {
    let n_targets = concrete_targets(topology).len();
    let tolerates_store_crash = topology.store_minority() >= 1;
    menu.iter()
        .copied()
        .filter(|kind| match kind {
            FaultKind::Partition | FaultKind::Clog => n_targets >= 2,
            FaultKind::PacketLoss | FaultKind::Latency => n_targets >= 1,
            FaultKind::Pause => n_targets >= 1,
            FaultKind::Clock => !component_targets(topology).is_empty(),
            FaultKind::Crash => tolerates_store_crash || n_targets > topology.store_members as usize,
            FaultKind::DiskCrash | FaultKind::Failpoint => tolerates_store_crash,
            // Every member goes down together, so no quorum arithmetic applies: one
            // member is enough.
            FaultKind::PowerLoss => topology.store_members >= 1,
            FaultKind::Corruption => topology.store_members >= 3,
            FaultKind::Backup | FaultKind::SnapshotCorruption => topology.store_members >= 1,
            // The replacement joins while the others keep quorum.
            FaultKind::DiskLoss => tolerates_store_crash,
            FaultKind::DiskLossMajority | FaultKind::DiskLossAll => topology.store_members >= 1,
        })
        .collect()
}

/// Generates the fault plan of `seed`: deterministic from its arguments alone. The plan
/// always validates against `topology` and passes [`FaultPlan::check_survivable`]. If no
/// kind of the menu fits the topology the plan has no events.
pub fn generate(seed: u64, topology: &Topology, menu: &BTreeSet<FaultKind>, options: &GenerateOptions) -> FaultPlan {
    // The plan's choices and its details (how much of a torn write survives, which byte
    // rots, which majority loses its disks: plan format 2 writes them in the plan) come
    // from two streams of the seed, so every other choice stayed what it was in format 1.
    let crate::SeedStreams { plan: mut rng, plan_details: mut details, .. } = crate::SeedStreams::derive(seed);
    let mut plan = FaultPlan {
        version: PLAN_VERSION,
        safety_phase_ms: options.safety_phase_ms,
        liveness_phase_ms: options.liveness_phase_ms,
        events: Vec::new(),
        workload: Vec::new(),
    };
    let feasible = feasible_kinds(topology, menu);
    if feasible.is_empty() || options.max_events == 0 || options.safety_phase_ms == 0 {
        return plan;
    }
    let enabled = swarm_subset(&mut rng, &feasible);
    let n_events = rng.gen_range(1..=options.max_events);
    // The seed's intensity: how long its faults may last.
    let max_duration_ms = rng.gen_range(MIN_DURATION_MS..=MAX_DURATION_MS);

    for _ in 0..n_events {
        for _ in 0..MAX_ATTEMPTS_PER_EVENT {
            let kind = *enabled.choose(&mut rng).expect("swarm subset is never empty");
            if kind == FaultKind::Failpoint {
                let burst = failpoint_burst(&mut rng, topology, options.safety_phase_ms);
                let n_before = plan.events.len();
                plan.events.extend(burst);
                if plan.check_survivable(topology).is_ok() {
                    break;
                }
                plan.events.truncate(n_before);
                continue;
            }
            let duration_ms = rng.gen_range(MIN_DURATION_MS..=max_duration_ms).min(options.safety_phase_ms);
            let mut at_ms = rng.gen_range(0..=options.safety_phase_ms - duration_ms);
            if matches!(kind, FaultKind::DiskLossMajority | FaultKind::DiskLossAll) {
                let earliest = FIRST_BACKUP_MS + STORE_LOSS_AFTER_FIRST_BACKUP_MS;
                let latest = options.safety_phase_ms - duration_ms;
                if latest >= earliest {
                    at_ms = rng.gen_range(earliest..=latest);
                }
            }
            let fault = generate_fault(&mut rng, &mut details, kind, topology);
            plan.events.push(FaultEvent { at_ms, duration_ms, fault });
            if plan.check_survivable(topology).is_ok() {
                break;
            }
            plan.events.pop();
        }
    }
    // Drawn after every other event, and only when disks can be lost, so that the plans
    // of menus without these kinds are the same as before they existed.
    if enabled.iter().any(|kind| kind.loses_disks() || *kind == FaultKind::Backup) {
        schedule_backups(&mut rng, topology, &mut plan);
    }
    // Drawn last of all, so that every other event is what it was before these pauses
    // existed.
    if enabled.contains(&FaultKind::Pause) && topology.controller_managers >= 1 {
        lease_holder_pause(&mut rng, topology, &mut plan);
    }
    // Stable sort: people read plans in time order.
    plan.events.sort_by_key(|event| event.at_ms);
    debug_assert!(plan.validate(topology).is_ok(), "generated plan must validate");
    debug_assert!(plan.check_survivable(topology).is_ok());
    plan
}

/// The operator's periodic `snapshot save`: from [`FIRST_BACKUP_MS`] on, every period
/// (drawn once per seed), against a member drawn per backup (a backup from a member that
/// is down at that moment fails, as `etcdctl snapshot save` against a dead endpoint does).
fn schedule_backups(rng: &mut ChaCha8Rng, topology: &Topology, plan: &mut FaultPlan) {
    let period_ms = rng.gen_range(BACKUP_PERIOD_MS);
    let mut at_ms = FIRST_BACKUP_MS;
    while at_ms < plan.safety_phase_ms {
        let member = store_target(rng, topology);
        plan.events.push(FaultEvent { at_ms, duration_ms: 0, fault: Fault::Backup { member } });
        at_ms += period_ms;
    }
}

/// How long a pause of the controller-manager leader lasts (see `lease_holder_pause`):
/// from shorter than any lease a seed runs on (the leader renews on waking) to longer than
/// Kubernetes' default 15 s lease plus the standby's retry (a standby takes over).
pub const LEASE_HOLDER_PAUSE_MS: std::ops::RangeInclusive<u64> = 2_000..=25_000;

/// Half the seeds that pause processes also pause the kube-controller-manager that holds
/// its lease, for up to [`LEASE_HOLDER_PAUSE_MS`]: the fault leader leases exist for (a
/// stop-the-world GC pause, a VM frozen for migration, a `SIGSTOP`; Jepsen's
/// `hammer-time`). The holder wakes believing it still leads: client-go's controllers go on
/// acting until the elector's renew round fails, a renew deadline after waking (see
/// `controllers::leader_election`), while a standby may have taken over during the pause.
/// Kubernetes has no fence against that overlap, which is what `controller-single-leader`
/// watches for. The generator's other faults last at most [`MAX_DURATION_MS`], shorter
/// than the default lease, so without this no pause outlives a lease.
fn lease_holder_pause(rng: &mut ChaCha8Rng, topology: &Topology, plan: &mut FaultPlan) {
    if !rng.gen_bool(0.5) {
        return;
    }
    let duration_ms = rng.gen_range(LEASE_HOLDER_PAUSE_MS).min(plan.safety_phase_ms);
    let at_ms = rng.gen_range(0..=plan.safety_phase_ms - duration_ms);
    plan.events.push(FaultEvent {
        at_ms,
        duration_ms,
        fault: Fault::Pause { target: Target::ControllerManagerLeader },
    });
    if plan.check_survivable(topology).is_err() {
        plan.events.pop();
    }
}

/// Each kind is enabled with probability 1/2; if none is, one is picked.
fn swarm_subset(rng: &mut ChaCha8Rng, feasible: &[FaultKind]) -> Vec<FaultKind> {
    let mut enabled: Vec<FaultKind> = feasible.iter().copied().filter(|_| rng.gen_bool(0.5)).collect();
    if enabled.is_empty() {
        enabled.push(*feasible.choose(rng).expect("feasible kinds are not empty"));
    }
    enabled
}

/// One fault of `kind` for `topology`, its shape drawn from `rng` and its details (see
/// [`DETAILS_SEED_MIX`]) from `details`. The caller checks survivability.
pub(crate) fn generate_fault<R: Rng>(rng: &mut R, details: &mut R, kind: FaultKind, topology: &Topology) -> Fault {
    match kind {
        FaultKind::Partition => generate_partition(rng, topology),
        FaultKind::PacketLoss => Fault::PacketLoss {
            // Whole percents keep plans readable.
            rate: f64::from(rng.gen_range(1..=50u32)) / 100.0,
        },
        FaultKind::Latency => {
            let min_ms = rng.gen_range(0..=50);
            Fault::LatencySpike { min_ms, max_ms: min_ms + rng.gen_range(10..=2_000) }
        }
        FaultKind::Clog => {
            let (a, b) = two_targets(rng, topology);
            Fault::ClogLink { a, b }
        }
        FaultKind::Crash => Fault::Crash { target: biased_target(rng, topology, topology.store_minority() >= 1) },
        FaultKind::Pause => Fault::Pause { target: biased_target(rng, topology, true) },
        FaultKind::DiskCrash => {
            Fault::CrashStoreMember { member: store_target(rng, topology), tear: Some(draw_tear(details)) }
        }
        // Half the time every unsynced write is simply gone (LazyFS's default on a crash),
        // half the time the page cache was being written back in order and the last
        // unsynced write is torn.
        FaultKind::PowerLoss => {
            let tears = if rng.gen_bool(0.5) { draw_tears(details, topology) } else { BTreeMap::new() };
            Fault::PowerLoss { tears }
        }
        FaultKind::Corruption => Fault::CorruptRecord { member: store_target(rng, topology), flip: draw_flip(details) },
        FaultKind::Failpoint => {
            let restart_after_ms = restart_delay_ms(rng);
            failpoint_crash(rng, topology, restart_after_ms)
        }
        FaultKind::Backup => Fault::Backup { member: store_target(rng, topology) },
        FaultKind::DiskLoss => Fault::DiskLoss { member: store_target(rng, topology) },
        FaultKind::DiskLossMajority => Fault::DiskLossMajority { members: draw_majority(details, topology) },
        FaultKind::DiskLossAll => Fault::DiskLossAll,
        FaultKind::SnapshotCorruption => Fault::SnapshotCorruption { flip: draw_flip(details) },
        FaultKind::Clock => {
            // Clock faults matter to lease holders. One in four skews the store leader's
            // clock, on which its lessor expires the Events' leases (a lease expires early
            // or late in real time, as etcd documents, and the lease-expiry invariant
            // judges it by that clock); the others skew a component, with no bias between
            // them. Offsets reach past a leader-election lease (15 s) plus its retry
            // period, so a skewed standby can judge a live leader's lease expired and take
            // over while the leader still acts: Kubernetes' unfenced leader election then
            // has two writers.
            let components = component_targets(topology);
            let target = if rng.gen_ratio(1, 4) {
                Target::StoreLeader
            } else {
                components.choose(rng).cloned().expect("clock is feasible only with components")
            };
            let offset_ms = rng.gen_range(-30_000..=30_000);
            let drift_ms_per_s = rng.gen_range(-100..=100);
            // A skew of nothing is no fault (one draw in 12 million): drift instead.
            let drift_ms_per_s = if offset_ms == 0 && drift_ms_per_s == 0 { 1 } else { drift_ms_per_s };
            Fault::ClockSkew { target, offset_ms, drift_ms_per_s }
        }
    }
}

/// A tear keeping any part of the write, the whole of it included.
pub(crate) fn draw_tear<R: Rng>(rng: &mut R) -> Tear {
    Tear { kept_ppm: rng.gen_range(0..=PPM) }
}

/// One tear per store member, in member order: a power loss that tears.
pub(crate) fn draw_tears<R: Rng>(rng: &mut R, topology: &Topology) -> BTreeMap<Target, Tear> {
    (1..=topology.store_members).map(|member| (Target::StoreMember(Slot(member)), draw_tear(rng))).collect()
}

/// Any byte of the file, any non-empty set of its bits.
pub(crate) fn draw_flip<R: Rng>(rng: &mut R) -> BitFlip {
    BitFlip { offset_ppm: rng.gen_range(0..PPM), xor_mask: rng.gen_range(1..=u8::MAX) }
}

/// A majority (`n / 2 + 1`) of the store's members, each as likely as any other, in
/// member order.
pub(crate) fn draw_majority<R: Rng>(rng: &mut R, topology: &Topology) -> Vec<Target> {
    let n_members = topology.store_members as usize;
    if n_members == 0 {
        return Vec::new();
    }
    let mut picked = sample(rng, n_members, n_members / 2 + 1).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|idx| Target::StoreMember(Slot(idx as u64 + 1))).collect()
}

/// The shortest and longest time a failpoint stays armed in a burst.
const FAILPOINT_ARMED_MS: std::ops::RangeInclusive<u64> = 100..=3_000;
/// How long both members of a flap stay armed in one step: long enough to span the
/// election that the previous step's crash set off (a follower waits 1 to 2 s).
const FLAP_STEP_ARMED_MS: std::ops::RangeInclusive<u64> = 2_000..=5_000;
/// How many steps a flap holds (each step arms two members).
const FLAP_LEN: std::ops::RangeInclusive<usize> = 4..=10;
/// How many crashes one burst holds.
const FAILPOINT_BURST_LEN: std::ops::RangeInclusive<usize> = 2..=8;

/// One `crash-at-failpoint` of the flapping: half the time `raft-before-leader-send`, on
/// a concrete member two times in three ("the next time this member leads, it dies
/// before its first append leaves": the new leader's entries stay on its own disk, as the
/// leaders of Raft's Figure 8 (b) and (c) do) and otherwise on the current leader (its
/// newest proposals die with it); else `raft-before-save` or `raft-after-save` on any
/// member, restarted `restart_after_ms` after (see [`restart_delay_ms`]). `raft-after-vote`
/// is armed beside the flapping (see [`failpoint_burst`]). The caller sets the event's
/// duration, which must hold the restart delay.
fn failpoint_crash<R: Rng>(rng: &mut R, topology: &Topology, restart_after_ms: u64) -> Fault {
    let concrete_member = |rng: &mut R| Target::StoreMember(Slot(rng.gen_range(1..=topology.store_members)));
    let (failpoint, member) = if rng.gen_bool(0.5) {
        let member = if rng.gen_ratio(2, 3) { concrete_member(rng) } else { Target::StoreLeader };
        (Failpoint::RaftBeforeLeaderSend, member)
    } else {
        let failpoint = if rng.gen_bool(0.5) { Failpoint::RaftBeforeSave } else { Failpoint::RaftAfterSave };
        (failpoint, store_target(rng, topology))
    };
    let passes = if failpoint == Failpoint::RaftBeforeLeaderSend { leader_send_passes(rng) } else { 0 };
    Fault::CrashAtFailpoint { member, failpoint, restart_after_ms, passes }
}

/// How many of its Readies a leader sends before `raft-before-leader-send` kills it: none
/// half the time (its first Ready: the new leader's own entry stays on its disk); two a
/// quarter of the time (its third: after one probe round trip, when a follower that
/// lacked the leader's older entries has just been sent them and acknowledged, Raft's
/// Figure 8 (c)); otherwise 1 to 4.
fn leader_send_passes<R: Rng>(rng: &mut R) -> u32 {
    match rng.gen_range(0..4) {
        0 | 1 => 0,
        2 => 2,
        _ => rng.gen_range(1..=4),
    }
}

/// Restarted at once half the time (etcd's robustness tests restart a member right after
/// its failpoint panicked), otherwise within a second (a supervisor's back-off).
fn restart_delay_ms<R: Rng>(rng: &mut R) -> u64 {
    if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(1..=1_000)
    }
}

/// One crash of a two-member flap (see [`failpoint_burst`]): `member` dies at a leader send.
/// It passes no leader send half the time (it dies with its first entry of the term on
/// its disk only), else 1 to 2 × `n_members` of them: a new leader sends its first
/// append to every follower, then one probe per follower that lacks its older entries,
/// then their entries to each as it answers, so the send at which a quorum has just
/// acknowledged old-term entries and the rest have not yet got the new ones lies there.
fn flap_crash<R: Rng>(rng: &mut R, member: u64, restart_after_ms: u64, n_members: u64) -> Fault {
    let passes = if rng.gen_bool(0.5) { 0 } else { rng.gen_range(1..=2 * n_members as u32) };
    Fault::CrashAtFailpoint {
        member: Target::StoreMember(Slot(member)),
        failpoint: Failpoint::RaftBeforeLeaderSend,
        restart_after_ms,
        passes,
    }
}

/// Crash-restart flapping of the store at failpoints: a burst of `crash-at-failpoint`
/// events one after another from a random instant, each armed for a short while. One
/// crash at a failpoint only matters if the member reaches the point at the right moment;
/// a burst makes the next crash land in the state the previous one left behind (the
/// election after a leader died before sending, the vote granted in it), as the repeated
/// kill-restart cycles of Jepsen's and etcd's robustness nemeses do. Steps never overlap;
/// the caller keeps the plan survivable.
///
/// Half the bursts (on two members or more) are a leader chase instead (see
/// [`leader_chase`]), which reacts to elections rather than arming named members for
/// pre-timed windows. Of the others, three in four are a two-member flap: in each step both members `a` and `b` are armed
/// at `raft-before-leader-send` (each with its own number of passes), so whichever of the
/// two leads next dies, and in the next step the same two again. This is the schedule of
/// Raft's Figure 8, where S1 and S5 in turn win an election and die before (or just
/// after) replicating: each leaves entries of its term that the other lacks, and the
/// leader that comes back must not count replicas of its old-term entries into a commit.
/// On three members `a` comes back at once and `b` after up to a second, so that the
/// store loses at most one member at a time; on five both stay down for 1 to 3 s, so that
/// each sits out the election after its crash (the full Figure 8 needs that: S1 is down
/// while S5 wins, S5 while S1 wins back, S1 again while S5 returns to overwrite).
fn failpoint_burst<R: Rng>(rng: &mut R, topology: &Topology, safety_phase_ms: u64) -> Vec<FaultEvent> {
    if topology.store_members >= 2 && rng.gen_bool(0.5) {
        let (chase, slots) = leader_chase(rng, safety_phase_ms);
        let mut burst = vec![chase];
        // Half the chases run beside voters that die right after voting, on a slow
        // network three times in four, as the flaps do: a chase provokes an election at
        // every kill.
        if rng.gen_bool(0.5) {
            beside_flapping(rng, topology, &slots, &mut burst);
        }
        return burst;
    }
    let flap = (topology.store_members >= 2 && rng.gen_ratio(3, 4)).then(|| {
        let a = rng.gen_range(1..=topology.store_members);
        let b = (a + rng.gen_range(1..topology.store_members) - 1) % topology.store_members + 1;
        (a, b)
    });
    let n_crashes = rng.gen_range(if flap.is_some() { FLAP_LEN } else { FAILPOINT_BURST_LEN });
    // One burst in four starts with the cluster, over its first election: every member
    // times out at once there, so candidates run side by side in one term.
    let mut at_ms = if rng.gen_ratio(1, 4) { 0 } else { rng.gen_range(0..=safety_phase_ms * 2 / 3) };
    let mut burst = Vec::with_capacity(n_crashes);
    let mut flapping_steps: Vec<(u64, u64)> = Vec::with_capacity(n_crashes);
    for _ in 0..n_crashes {
        let (faults, restart_after_ms) = match flap {
            Some((a, b)) => {
                // Five members may lose two at once: both stay down long enough for an
                // election among the others (Figure 8's S1 sits out (b), S5 sits out (c)).
                // Three may lose one: `a` comes back at once.
                let (a_restart_ms, b_restart_ms) = if topology.store_minority() >= 2 {
                    (rng.gen_range(1_000..=3_000), rng.gen_range(1_000..=3_000))
                } else {
                    (0, rng.gen_range(1..=1_000))
                };
                let n_members = topology.store_members;
                let faults =
                    vec![flap_crash(rng, a, a_restart_ms, n_members), flap_crash(rng, b, b_restart_ms, n_members)];
                (faults, a_restart_ms.max(b_restart_ms))
            }
            None => {
                let restart_after_ms = restart_delay_ms(rng);
                (vec![failpoint_crash(rng, topology, restart_after_ms)], restart_after_ms)
            }
        };
        let armed_ms = if flap.is_some() { FLAP_STEP_ARMED_MS } else { FAILPOINT_ARMED_MS };
        let duration_ms = restart_after_ms + rng.gen_range(armed_ms);
        if at_ms + duration_ms > safety_phase_ms {
            break;
        }
        burst.extend(faults.into_iter().map(|fault| FaultEvent { at_ms, duration_ms, fault }));
        flapping_steps.push((at_ms, at_ms + duration_ms));
        at_ms += duration_ms;
    }
    beside_flapping(rng, topology, &flapping_steps, &mut burst);
    burst
}

/// What runs beside a flapping (`steps`: the time slots of its kills, one after another):
/// a slow network three times in four, and voters that die right after voting.
fn beside_flapping<R: Rng>(rng: &mut R, topology: &Topology, steps: &[(u64, u64)], burst: &mut Vec<FaultEvent>) {
    if let (Some(&(start_ms, _)), Some(&(_, end_ms))) = (steps.first(), steps.last()) {
        // Three bursts in four run on a slow network: messages take up to a second, so
        // vote requests of concurrent candidates reach a voter far apart, one before and
        // one after it crashed and restarted (the late message of Jepsen's and etcd's
        // robustness runs under `tc netem delay`).
        if rng.gen_ratio(3, 4) {
            let min_ms = rng.gen_range(0..=20);
            let max_ms = min_ms + rng.gen_range(50..=1_000);
            burst.push(FaultEvent {
                at_ms: start_ms,
                duration_ms: end_ms - start_ms,
                fault: Fault::LatencySpike { min_ms, max_ms },
            });
        }
        // Meanwhile voters die right after voting and come back at once: in each step of
        // the flapping, each member with probability 3/4 holds a `raft-after-vote`. It
        // fires only in an election, which the flapping provokes; when two candidates run
        // in one term, the restarted voter is asked again by the second.
        for &(step_start_ms, step_end_ms) in steps {
            for member in 1..=topology.store_members {
                if rng.gen_ratio(3, 4) {
                    burst.push(FaultEvent {
                        at_ms: step_start_ms,
                        duration_ms: step_end_ms - step_start_ms,
                        fault: Fault::CrashAtFailpoint {
                            member: Target::StoreMember(Slot(member)),
                            failpoint: Failpoint::RaftAfterVote,
                            restart_after_ms: 0,
                            passes: 0,
                        },
                    });
                }
            }
        }
    }
}

/// How many kills one leader chase holds.
const CHASE_LEN: std::ops::RangeInclusive<usize> = 3..=10;
/// Time allowed per kill of a chase: the election after the previous kill (1 to 2 s of
/// election timeout, then pre-vote and vote) and the new leader's first sends.
const CHASE_STEP_MS: std::ops::RangeInclusive<u64> = 1_500..=3_000;

/// A `leader-chase` (see `Fault::LeaderChase`): 3 to 10 rolling kills of whoever leads.
/// Each kill is, half the time, at the leader's first send (it dies with the entries of
/// its new term on its own disk: Figure 8 (a), (b)); a quarter of the time at its first
/// commit (`raft-leader-after-apply`: it dies having applied what it just committed, no
/// follower told: Figure 8 (c)); else at a send after 1 to 4 passes (its probes have
/// found what a follower lacks, and the follower has been sent some of it).
///
/// Returns the event and the time slot of each kill.
fn leader_chase<R: Rng>(rng: &mut R, safety_phase_ms: u64) -> (FaultEvent, Vec<(u64, u64)>) {
    let n_steps = rng.gen_range(CHASE_LEN);
    let steps: Vec<ChaseStep> = (0..n_steps)
        .map(|_| match rng.gen_range(0..4) {
            0 | 1 => ChaseStep { failpoint: Failpoint::RaftBeforeLeaderSend, passes: 0 },
            2 => ChaseStep { failpoint: Failpoint::RaftLeaderAfterApply, passes: 0 },
            _ => ChaseStep { failpoint: Failpoint::RaftBeforeLeaderSend, passes: rng.gen_range(1..=4) },
        })
        .collect();
    let slot_lengths: Vec<u64> = (0..n_steps).map(|_| rng.gen_range(CHASE_STEP_MS)).collect();
    let duration_ms = slot_lengths.iter().sum::<u64>().min(safety_phase_ms);
    let at_ms = rng.gen_range(0..=safety_phase_ms - duration_ms);
    let mut slots = Vec::with_capacity(n_steps);
    let mut slot_start_ms = at_ms;
    for length_ms in slot_lengths {
        let slot_end_ms = (slot_start_ms + length_ms).min(at_ms + duration_ms);
        if slot_end_ms > slot_start_ms {
            slots.push((slot_start_ms, slot_end_ms));
        }
        slot_start_ms = slot_end_ms;
    }
    (FaultEvent { at_ms, duration_ms, fault: Fault::LeaderChase { steps } }, slots)
}

/// The partition shapes of docs/design.md §3: random halves (of the store, of everything),
/// one member split off, the leader cut off entirely or from its peers only, one apiserver
/// isolated, majorities-ring, bridge, one-way.
fn generate_partition<R: Rng>(rng: &mut R, topology: &Topology) -> Fault {
    #[derive(Clone, Copy)]
    enum Shape {
        StoreHalves,
        EverythingHalves,
        SplitOneMember,
        IsolateLeader,
        LeaderFromPeers,
        IsolateApiServer,
        MajoritiesRing,
        Bridge,
        OneWay,
    }
    let members = topology.store_members;
    let mut shapes = vec![Shape::EverythingHalves, Shape::OneWay];
    if members >= 2 {
        shapes.extend([Shape::StoreHalves, Shape::SplitOneMember, Shape::IsolateLeader, Shape::LeaderFromPeers]);
    }
    if members >= 3 {
        shapes.extend([Shape::MajoritiesRing, Shape::Bridge]);
    }
    if topology.apiservers >= 1 {
        shapes.push(Shape::IsolateApiServer);
    }
    let store: Vec<Target> = (1..=members).map(|n| Target::StoreMember(Slot(n))).collect();
    match *shapes.choose(rng).expect("shapes is never empty") {
        Shape::StoreHalves => random_halves(rng, store),
        Shape::EverythingHalves => random_halves(rng, concrete_targets(topology)),
        Shape::SplitOneMember => {
            let loner = rng.gen_range(1..=members);
            let rest = (1..=members).filter(|&member| member != loner).map(|n| Target::StoreMember(Slot(n))).collect();
            Fault::Partition { groups: vec![vec![Target::StoreMember(Slot(loner))], rest] }
        }
        Shape::IsolateLeader => Fault::IsolateStoreLeader,
        Shape::LeaderFromPeers => Fault::Partition { groups: vec![vec![Target::StoreLeader], store] },
        Shape::IsolateApiServer => Fault::IsolateApiServer { apiserver: rng.gen_range(0..topology.apiservers) },
        Shape::MajoritiesRing => Fault::MajoritiesRing,
        Shape::Bridge => Fault::Bridge,
        Shape::OneWay => {
            let (from, to) = two_targets(rng, topology);
            Fault::OneWay { from, to }
        }
    }
}

/// Jepsen `partition-random-halves`: shuffle, then cut in two, smaller half first.
fn random_halves<R: Rng>(rng: &mut R, mut targets: Vec<Target>) -> Fault {
    debug_assert!(targets.len() >= 2);
    targets.shuffle(rng);
    let second = targets.split_off(targets.len() / 2);
    Fault::Partition { groups: vec![targets, second] }
}

/// Every concrete component of the topology (the leader is not concrete).
pub(crate) fn concrete_targets(topology: &Topology) -> Vec<Target> {
    let mut targets: Vec<Target> = (1..=topology.store_members).map(|n| Target::StoreMember(Slot(n))).collect();
    targets.extend((0..topology.apiservers).map(Target::ApiServer));
    targets.extend((0..topology.controller_managers).map(Target::ControllerManager));
    if topology.schedulers >= 1 {
        targets.push(Target::Scheduler);
    }
    targets.extend((0..topology.kubelets).map(Target::Kubelet));
    targets
}

/// Every concrete target that is not a store member: the control-plane components.
pub(crate) fn component_targets(topology: &Topology) -> Vec<Target> {
    concrete_targets(topology).into_iter().filter(|target| !target.is_store()).collect()
}

/// A target biased toward the store, where the interesting failures are: 40% a concrete
/// store member, 20% the leader, 40% some other component (when they exist).
fn biased_target<R: Rng>(rng: &mut R, topology: &Topology, allow_store: bool) -> Target {
    let others = component_targets(topology);
    let store_possible = allow_store && topology.store_members >= 1;
    if store_possible && (others.is_empty() || rng.gen_ratio(6, 10)) {
        // Two concrete members for one leader.
        if rng.gen_ratio(2, 3) {
            Target::StoreMember(Slot(rng.gen_range(1..=topology.store_members)))
        } else {
            Target::StoreLeader
        }
    } else {
        others.choose(rng).cloned().expect("caller checked that some target exists")
    }
}

/// A store member target: a concrete member, or (1 in 4) the leader.
fn store_target<R: Rng>(rng: &mut R, topology: &Topology) -> Target {
    if rng.gen_ratio(1, 4) {
        Target::StoreLeader
    } else {
        Target::StoreMember(Slot(rng.gen_range(1..=topology.store_members)))
    }
}

/// Two different targets, the first biased toward the store.
fn two_targets<R: Rng>(rng: &mut R, topology: &Topology) -> (Target, Target) {
    let first = biased_target(rng, topology, true);
    let rest: Vec<Target> = concrete_targets(topology)
        .into_iter()
        .chain(std::iter::once(Target::StoreLeader))
        .filter(|target| *target != first && (topology.store_members >= 1 || !target.is_store()))
        .collect();
    let second = rest.choose(rng).cloned().expect("caller checked there are two targets");
    (first, second)
}
