//! The nemesis core: a pure state machine over a plan. Time and world events come in
//! ([`Nemesis::step`] when the next step is due, [`Nemesis::failpoint_reached`] when a
//! member reports a failpoint); world calls come out ([`Nemesis::take_calls`]), as
//! raft-rs's `step` and `Ready` do. It reads the world only through a [`View`] (who
//! leads, which members exist, what a target's node is called) and never touches it.

use std::collections::{BTreeMap, BTreeSet};

use super::calls::{Call, Reached, Reported};
use super::holds::{ClockSkews, Condition, Down, Holds, NetworkConditions};
use super::schedule::{Action, Timeline};
use super::targets::{Cut, Link, Targets, Unresolved};
use super::{NodeRef, View};
use crate::plan::{kind_name, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, Slot, Target, Tear};

/// The nemesis for one plan: what is applied, what overlapping faults hold, what is armed.
/// Overlapping faults are counted per clogged link, paused node and crashed process
/// (`Holds`): the first fault applies, the last heal undoes.
pub struct Nemesis {
    events: Vec<FaultEvent>,
    safety_phase_ms: u64,
    timeline: Timeline,
    /// What each applied event changed, so that its heal undoes exactly that.
    pub(super) applied: BTreeMap<usize, Applied>,
    clogs: Holds<Link>,
    pauses: Holds<NodeRef>,
    pub(super) downs: Holds<Down>,
    conditions: NetworkConditions,
    skews: ClockSkews,
    /// Events with a failpoint armed that no member has reached yet.
    pub(super) armed: BTreeSet<usize>,
    /// The calls made so far and not yet taken by the driver.
    calls: Vec<Call>,
}

/// What one applied event changed, so that its heal undoes exactly that.
#[derive(Clone, Debug)]
pub(super) enum Applied {
    /// Directed links clogged by the event (each also held in `Nemesis::clogs`).
    Cut(Cut),
    /// A packet loss or latency, kept in `Nemesis::conditions`.
    Condition,
    Crash(Down),
    /// Every store member crashed by one power loss.
    PowerLoss(Vec<Down>),
    Pause(NodeRef),
    ClockSkew(NodeRef),
    Corrupt(Slot),
    /// A failpoint armed on a store member, until it is reached or disarmed.
    Failpoint {
        slot: Slot,
        failpoint: Failpoint,
        restart_after_ms: u64,
    },
    /// A member crashed at a failpoint, restarting at `restart_at_ms`.
    FailpointCrash {
        down: Down,
        restart_at_ms: u64,
    },
    Chase(Chase),
    /// A member whose disk was lost, replaced when the fault heals.
    DiskLoss(Slot),
    /// Members whose disks were lost together; the heal is the operator's restore.
    StoreLoss(Vec<Slot>),
    /// Nothing could be applied (no leader, target did not resolve).
    Nothing,
}

/// A `leader-chase` at step `step` (== its length once every step fired), armed on
/// `armed`, with the last victim held down.
#[derive(Clone, Debug)]
pub(super) struct Chase {
    pub(super) steps: Vec<ChaseStep>,
    pub(super) step: usize,
    pub(super) armed: Vec<Slot>,
    pub(super) victim: Option<Slot>,
}

impl Nemesis {
    pub fn new(plan: &FaultPlan) -> Self {
        Nemesis {
            events: plan.events.clone(),
            safety_phase_ms: plan.safety_phase_ms,
            timeline: Timeline::of(plan),
            applied: BTreeMap::new(),
            clogs: Holds::new(),
            pauses: Holds::new(),
            downs: Holds::new(),
            conditions: NetworkConditions::default(),
            skews: ClockSkews::default(),
            armed: BTreeSet::new(),
            calls: Vec::new(),
        }
    }

    /// When the plan ends: [`Nemesis::heal_all`] is due then.
    pub fn safety_phase_ms(&self) -> u64 {
        self.safety_phase_ms
    }

    /// When [`Nemesis::step`] is next due (a restart after a failpoint crash or a step of
    /// the plan), or `None` once the plan has no step left.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        [self.next_restart_ms(), self.timeline.next_ms()].into_iter().flatten().min()
    }

    /// Whether a failpoint is armed, so that a member may report reaching it before the
    /// next step is due.
    pub fn listens_for_failpoints(&self) -> bool {
        !self.armed.is_empty()
    }

    /// Takes what is due at [`Nemesis::next_wakeup_ms`]: the restarts due then (a restart
    /// after a failpoint crash is a heal, so at the same instant it goes first), else the
    /// next step of the plan. Does nothing once the plan has no step left.
    ///
    /// `queued`: the failpoints members reached that the driver has not handed over yet.
    /// A heal first hears of them all, at its own time, so that it undoes what they did;
    /// other steps leave them queued.
    pub fn step(&mut self, view: &dyn View, queued: &mut dyn Iterator<Item = Reached>) {
        let Some(next_ms) = self.next_wakeup_ms() else { return };
        if self.next_restart_ms() == Some(next_ms) {
            self.restart_due(next_ms);
            return;
        }
        let step = self.timeline.pop().expect("a step is due");
        match step.action {
            Action::Apply => self.apply(step.at_ms, step.event_idx, view),
            Action::Disarm => self.disarm(step.at_ms, step.event_idx),
            Action::Heal => {
                self.hear_queued(step.at_ms, queued, view);
                self.heal(step.at_ms, step.event_idx);
            }
        }
    }

    /// Heals every fault still applied at the end of the safety phase, in event order,
    /// having heard of every failpoint reached and `queued`, and records "all faults
    /// healed". Afterwards no link is clogged, no process paused or crashed, the network
    /// and every clock are back to normal.
    pub fn heal_all(&mut self, view: &dyn View, queued: &mut dyn Iterator<Item = Reached>) {
        let at_ms = self.safety_phase_ms;
        if !self.applied.is_empty() {
            self.hear_queued(at_ms, queued, view);
        }
        let remaining: Vec<usize> = self.applied.keys().copied().collect();
        for event_idx in remaining {
            self.heal(at_ms, event_idx);
        }
        assert!(self.clogs.is_empty(), "every clogged link is owned by an event");
        assert!(self.pauses.is_empty() && self.downs.is_empty());
        assert!(self.skews.is_empty());
        assert!(self.armed.is_empty(), "every armed failpoint is disarmed by its heal");
        // Unconditionally, so that the liveness phase starts from a clean network even if
        // the world's conditions were touched by something other than this nemesis.
        self.call(Call::ResetNetworkConditions);
        self.record(at_ms, "all faults healed");
    }

    fn hear_queued(&mut self, at_ms: u64, queued: &mut dyn Iterator<Item = Reached>, view: &dyn View) {
        for reached in queued {
            self.failpoint_reached(at_ms, reached, view);
        }
    }

    /// The calls made since the last take, in order: the driver makes them on the world.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    pub(super) fn call(&mut self, call: Call) {
        self.calls.push(call);
    }

    pub(super) fn record(&mut self, at_ms: u64, line: impl Into<String>) {
        self.calls.push(Call::Record { at_ms, line: line.into() });
    }

    fn report(&mut self, at_ms: u64, action: Reported) -> Applied {
        self.calls.push(Call::Reported { at_ms, action });
        Applied::Nothing
    }

    fn skip(&mut self, at_ms: u64, fault: &Fault, reason: &Unresolved) -> Applied {
        self.record(at_ms, format!("{}: {reason}, skipped", kind_name(fault)));
        Applied::Nothing
    }

    /// Applies event `event_idx`, with its targets resolved against `view` now; a fault
    /// whose target does not resolve is recorded as skipped.
    fn apply(&mut self, at_ms: u64, event_idx: usize, view: &dyn View) {
        assert!(!self.applied.contains_key(&event_idx), "event {event_idx} applied twice");
        let fault = self.events[event_idx].fault.clone();
        let targets = Targets::new(view);
        let applied = match &fault {
            Fault::Partition { .. }
            | Fault::IsolateStoreLeader
            | Fault::IsolateApiServer { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge
            | Fault::OneWay { .. }
            | Fault::ClogLink { .. } => targets.cut(&fault).map(|cut| self.apply_cut(at_ms, cut)),
            Fault::PacketLoss { rate } => {
                Ok(self.apply_condition(at_ms, event_idx, Condition::PacketLoss { rate: *rate }))
            }
            &Fault::LatencySpike { min_ms, max_ms } => {
                Ok(self.apply_condition(at_ms, event_idx, Condition::Latency { min_ms, max_ms }))
            }
            Fault::Crash { target } => targets.down(target).map(|down| self.crash(at_ms, &fault, down, None)),
            Fault::CrashStoreMember { member, tear } => {
                targets.down(member).map(|down| self.crash(at_ms, &fault, down, *tear))
            }
            Fault::PowerLoss { tears } => {
                Ok(self
                    .power_loss(at_ms, &targets.store_members(), |slot| tears.get(&Target::StoreMember(slot)).copied()))
            }
            Fault::Pause { target } => targets.node(target).map(|node| self.pause(at_ms, node)),
            Fault::CorruptRecord { member, flip } => targets.member(member).map(|slot| {
                self.report(at_ms, Reported::CorruptStoreRecord { slot, flip: *flip });
                Applied::Corrupt(slot)
            }),
            &Fault::CrashAtFailpoint { ref member, failpoint, restart_after_ms, passes } => targets
                .member(member)
                .and_then(|slot| self.arm(at_ms, event_idx, &targets, slot, failpoint, restart_after_ms, passes)),
            Fault::LeaderChase { steps } => Ok(self.start_chase(at_ms, event_idx, steps.clone(), &targets)),
            Fault::Backup { member } => {
                targets.member(member).map(|slot| self.report(at_ms, Reported::TakeBackup { slot }))
            }
            Fault::SnapshotCorruption { flip } => Ok(self.report(at_ms, Reported::CorruptBackup { flip: *flip })),
            Fault::DiskLoss { member } => targets.member(member).map(|slot| self.lose_disks(at_ms, &fault, vec![slot])),
            Fault::DiskLossMajority { members } => members
                .iter()
                .map(|member| targets.member(member))
                .collect::<Result<BTreeSet<Slot>, Unresolved>>()
                .map(|slots| self.lose_disks(at_ms, &fault, slots.into_iter().collect())),
            Fault::DiskLossAll => Ok(self.lose_disks(at_ms, &fault, targets.store_members())),
            &Fault::ClockSkew { ref target, offset_ms, drift_ms_per_s } => {
                targets.node(target).map(|node| self.skew(at_ms, event_idx, node, offset_ms, drift_ms_per_s))
            }
        };
        if applied.is_ok() {
            mark_applied(&fault);
        } else {
            coverage::reached!("nemesis.fault.skipped");
        }
        let applied = applied.unwrap_or_else(|reason| self.skip(at_ms, &fault, &reason));
        self.applied.insert(event_idx, applied);
    }

    /// Heals event `event_idx` (a no-op if it was never applied or is already healed).
    fn heal(&mut self, at_ms: u64, event_idx: usize) {
        // A `crash-at-failpoint` still armed heals by its disarm.
        if matches!(self.applied.get(&event_idx), Some(Applied::Failpoint { .. })) {
            self.disarm(at_ms, event_idx);
            return;
        }
        let Some(applied) = self.applied.remove(&event_idx) else {
            return;
        };
        match applied {
            Applied::Failpoint { .. } => unreachable!("disarmed above"),
            // Only a plan that was not validated heals before the restart is due.
            Applied::FailpointCrash { down, .. } => self.heal_crash(at_ms, down),
            Applied::Chase(chase) => self.heal_chase(at_ms, event_idx, chase),
            Applied::Cut(cut) => self.heal_cut(at_ms, cut),
            Applied::Condition => self.heal_condition(at_ms, event_idx),
            Applied::Crash(down) => self.heal_crash(at_ms, down),
            Applied::PowerLoss(downs) => {
                self.record(at_ms, "power restored");
                for down in downs {
                    self.heal_crash(at_ms, down);
                }
            }
            Applied::Pause(node) => self.resume(at_ms, node),
            Applied::ClockSkew(node) => self.heal_clock_skew(at_ms, event_idx, node),
            Applied::Corrupt(slot) => self.restart_onto_corruption(at_ms, slot),
            Applied::DiskLoss(slot) => {
                // The replacement is a new process on a new disk, whatever else held the
                // old one down.
                self.downs.release(&Down::StoreMember(slot));
                self.report(at_ms, Reported::ReplaceMember { slot });
            }
            Applied::StoreLoss(slots) => {
                for slot in slots {
                    self.downs.release(&Down::StoreMember(slot));
                }
                self.report(at_ms, Reported::RestoreFromBackup);
            }
            Applied::Nothing => {}
        }
    }

    // Network: cut links and conditions.

    fn apply_cut(&mut self, at_ms: u64, cut: Cut) -> Applied {
        for (from, to) in &cut.links {
            if self.clogs.take(&(from.clone(), to.clone())) {
                self.call(Call::Clog { from: from.clone(), to: to.clone() });
            }
        }
        self.record(at_ms, cut.description.clone());
        Applied::Cut(cut)
    }

    fn heal_cut(&mut self, at_ms: u64, cut: Cut) {
        for link in &cut.links {
            if self.clogs.release(link) {
                self.call(Call::Unclog { from: link.0.clone(), to: link.1.clone() });
            }
        }
        self.record(at_ms, format!("heal {}", cut.description));
    }

    fn apply_condition(&mut self, at_ms: u64, event_idx: usize, condition: Condition) -> Applied {
        self.conditions.insert(event_idx, condition);
        self.set_network_conditions();
        self.record(at_ms, describe_condition(condition));
        Applied::Condition
    }

    fn heal_condition(&mut self, at_ms: u64, event_idx: usize) {
        let condition = self.conditions.remove(event_idx);
        self.set_network_conditions();
        self.record(at_ms, format!("heal {}", describe_condition(condition)));
    }

    /// The most intense condition still applied, from a clean network.
    fn set_network_conditions(&mut self) {
        self.call(Call::ResetNetworkConditions);
        if let Some(rate) = self.conditions.packet_loss() {
            self.call(Call::SetPacketLoss(rate));
        }
        if let Some((min_ms, max_ms)) = self.conditions.latency_ms() {
            self.call(Call::SetLatency { min_ms, max_ms });
        }
    }

    // Processes: crashes, pauses, power.

    /// Crashes what `down` names, unless another fault already holds it down.
    fn crash(&mut self, at_ms: u64, fault: &Fault, down: Down, tear: Option<Tear>) -> Applied {
        if !self.downs.take(&down) {
            self.record(at_ms, format!("{}: {down} already crashed", kind_name(fault)));
            return Applied::Crash(down);
        }
        match &down {
            Down::StoreMember(slot) => self.crash_store_member(at_ms, *slot, tear),
            Down::Node(node) => {
                self.call(Call::Kill(node.clone()));
                self.record(at_ms, format!("crash {node}"));
            }
        }
        Applied::Crash(down)
    }

    fn crash_store_member(&mut self, at_ms: u64, slot: Slot, tear: Option<Tear>) {
        self.call(Call::CrashStoreMember { slot, tear });
        let torn = if tear.is_some() { " tearing its last unsynced write" } else { "" };
        self.record(at_ms, format!("crash {slot} (power loss){torn}"));
    }

    /// Releases one crash of `down`; restarts it if that was the last.
    pub(super) fn heal_crash(&mut self, at_ms: u64, down: Down) {
        if !self.downs.release(&down) {
            self.record(at_ms, format!("heal crash of {down}: still held down by another crash"));
            return;
        }
        match &down {
            Down::StoreMember(slot) => self.call(Call::RestartStoreMember(*slot)),
            Down::Node(node) => self.call(Call::Restart(node.clone())),
        }
        self.record(at_ms, format!("restart {down}"));
    }

    /// Crashes every store member at the same instant, each losing its unsynced writes
    /// and tearing its last one as `tear_of` it says. Members already held down by
    /// another crash stay down; each is counted so that the last heal restarts it.
    fn power_loss(&mut self, at_ms: u64, slots: &[Slot], tear_of: impl Fn(Slot) -> Option<Tear>) -> Applied {
        self.record(at_ms, format!("power-loss of the store ({} members)", slots.len()));
        let mut downs = Vec::with_capacity(slots.len());
        for &slot in slots {
            let down = Down::StoreMember(slot);
            if self.downs.take(&down) {
                self.crash_store_member(at_ms, slot, tear_of(slot));
            } else {
                self.record(at_ms, format!("power-loss: {down} already crashed"));
            }
            downs.push(down);
        }
        Applied::PowerLoss(downs)
    }

    fn pause(&mut self, at_ms: u64, node: NodeRef) -> Applied {
        if self.pauses.take(&node) {
            self.call(Call::Pause(node.clone()));
        }
        self.record(at_ms, format!("pause {node}"));
        Applied::Pause(node)
    }

    fn resume(&mut self, at_ms: u64, node: NodeRef) {
        if self.pauses.release(&node) {
            self.call(Call::Resume(node.clone()));
            self.record(at_ms, format!("resume {node}"));
        } else {
            self.record(at_ms, format!("heal pause of {node}: still held by another pause"));
        }
    }

    // Clocks.

    fn skew(&mut self, at_ms: u64, event_idx: usize, node: NodeRef, offset_ms: i64, drift_ms_per_s: i64) -> Applied {
        self.skews.insert(&node, event_idx, offset_ms, drift_ms_per_s);
        self.call(Call::SetClockSkew { node: node.clone(), offset_ms, drift_ms_per_s });
        self.record(at_ms, format!("clock-skew {node} {}", describe_skew(offset_ms, drift_ms_per_s)));
        Applied::ClockSkew(node)
    }

    /// Back to the skew of an overlapping event still applied to the node, or to its
    /// true clock.
    fn heal_clock_skew(&mut self, at_ms: u64, event_idx: usize, node: NodeRef) {
        match self.skews.remove(&node, event_idx) {
            Some((offset_ms, drift_ms_per_s)) => {
                self.call(Call::SetClockSkew { node: node.clone(), offset_ms, drift_ms_per_s });
                let skew = describe_skew(offset_ms, drift_ms_per_s);
                self.record(at_ms, format!("heal clock-skew {node}: back to {skew} of an overlapping skew"));
            }
            None => {
                self.call(Call::ResetClock(node.clone()));
                self.record(at_ms, format!("reset clock {node}"));
            }
        }
    }

    // Disks.

    /// Recovery must now read the corrupted WAL: crash and restart the member onto it. A
    /// member held down by a crash reads it when that crash heals.
    fn restart_onto_corruption(&mut self, at_ms: u64, slot: Slot) {
        if self.downs.is_held(&Down::StoreMember(slot)) {
            self.record(at_ms, format!("heal corrupt-record {slot}: already crashed"));
            return;
        }
        self.call(Call::CrashStoreMember { slot, tear: None });
        self.call(Call::RestartStoreMember(slot));
        self.record(at_ms, format!("crash and restart {slot} on its corrupted disk"));
    }

    /// Wipes and kills `members`. Each is counted as crashed, so that an overlapping
    /// crash's heal does not restart it on its empty disk behind the operator's back.
    fn lose_disks(&mut self, at_ms: u64, fault: &Fault, slots: Vec<Slot>) -> Applied {
        let names: Vec<String> = slots.iter().map(Slot::to_string).collect();
        self.record(at_ms, format!("{} {}: disks wiped, members killed", kind_name(fault), names.join(", ")));
        for &slot in &slots {
            self.downs.take(&Down::StoreMember(slot));
            self.call(Call::LoseDisk(slot));
        }
        match fault {
            Fault::DiskLoss { .. } => Applied::DiskLoss(slots[0]),
            _ => Applied::StoreLoss(slots),
        }
    }
}

/// The coverage point of each kind of fault the nemesis applied (its target resolved).
fn mark_applied(fault: &Fault) {
    match fault {
        Fault::Partition { .. } => coverage::reached!("nemesis.applied.partition"),
        Fault::IsolateStoreLeader => coverage::reached!("nemesis.applied.isolate-store-leader"),
        Fault::IsolateApiServer { .. } => coverage::reached!("nemesis.applied.isolate-apiserver"),
        Fault::MajoritiesRing => coverage::reached!("nemesis.applied.majorities-ring"),
        Fault::Bridge => coverage::reached!("nemesis.applied.bridge"),
        Fault::OneWay { .. } => coverage::reached!("nemesis.applied.one-way"),
        Fault::ClogLink { .. } => coverage::reached!("nemesis.applied.clog"),
        Fault::PacketLoss { .. } => coverage::reached!("nemesis.applied.packet-loss"),
        Fault::LatencySpike { .. } => coverage::reached!("nemesis.applied.latency"),
        Fault::Crash { .. } => coverage::reached!("nemesis.applied.crash"),
        Fault::CrashStoreMember { .. } => coverage::reached!("nemesis.applied.disk-crash"),
        Fault::PowerLoss { .. } => coverage::reached!("nemesis.applied.power-loss"),
        Fault::Pause { .. } => coverage::reached!("nemesis.applied.pause"),
        Fault::CorruptRecord { .. } => coverage::reached!("nemesis.applied.corruption"),
        Fault::CrashAtFailpoint { .. } => coverage::reached!("nemesis.applied.crash-at-failpoint"),
        Fault::LeaderChase { .. } => coverage::reached!("nemesis.applied.leader-chase"),
        Fault::Backup { .. } => coverage::reached!("nemesis.applied.backup"),
        Fault::SnapshotCorruption { .. } => coverage::reached!("nemesis.applied.snapshot-corruption"),
        Fault::DiskLoss { .. } => coverage::reached!("nemesis.applied.disk-loss"),
        Fault::DiskLossMajority { .. } => coverage::reached!("nemesis.applied.disk-loss-majority"),
        Fault::DiskLossAll => coverage::reached!("nemesis.applied.disk-loss-all"),
        Fault::ClockSkew { .. } => coverage::reached!("nemesis.applied.clock-skew"),
    }
}

fn describe_condition(condition: Condition) -> String {
    match condition {
        Condition::PacketLoss { rate } => format!("packet-loss {rate}"),
        Condition::Latency { min_ms, max_ms } => format!("latency-spike {min_ms}..={max_ms}ms"),
    }
}

fn describe_skew(offset_ms: i64, drift_ms_per_s: i64) -> String {
    format!("offset {offset_ms}ms drift {drift_ms_per_s}ms/s")
}
