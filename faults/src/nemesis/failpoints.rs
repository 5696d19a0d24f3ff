//! The faults the system triggers itself: a `crash-at-failpoint` armed on one member, and
//! a `leader-chase` armed on every live member step after step. The nemesis arms; the
//! member that reaches the point halts and reports it ([`Reached`]); the nemesis crashes
//! it and restarts it later.

use super::calls::{Call, Reached};
use super::core::{Applied, Chase, Nemesis};
use super::holds::Down;
use super::targets::{Targets, Unresolved};
use super::View;
use crate::plan::{ChaseStep, Failpoint, Slot};

impl Nemesis {
    /// A member armed by event `reached.event_idx` reached its failpoint at `now_ms` and
    /// halted there.
    pub fn failpoint_reached(&mut self, now_ms: u64, reached: Reached, view: &dyn View) {
        if matches!(self.applied.get(&reached.event_idx), Some(Applied::Chase(_))) {
            self.chase_reached(now_ms, reached, &Targets::new(view));
        } else {
            self.crash_at_failpoint(now_ms, reached.event_idx);
        }
    }

    /// Arms `failpoint` on `member` for event `event_idx`, unless the member does not exist.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn arm(
        &mut self,
        at_ms: u64,
        event_idx: usize,
        targets: &Targets<'_>,
        slot: Slot,
        failpoint: Failpoint,
        restart_after_ms: u64,
        passes: u32,
    ) -> Result<Applied, Unresolved> {
        if !targets.has_store_member(slot) {
            return Err(Unresolved::NoSuchSlot(slot));
        }
        self.arm_one(event_idx, slot, failpoint, passes);
        self.armed.insert(event_idx);
        let after = describe_passes(passes);
        self.record(at_ms, format!("arm failpoint {failpoint} on {slot}{after} (restart {restart_after_ms}ms after)"));
        Ok(Applied::Failpoint { slot, failpoint, restart_after_ms })
    }

    fn arm_one(&mut self, event_idx: usize, slot: Slot, failpoint: Failpoint, passes: u32) {
        self.call(Call::ArmFailpoint { slot, failpoint, passes, reached: Reached { event_idx, slot } });
    }

    /// The member of a `crash-at-failpoint` reached it: crash it now (it loses nothing it
    /// fsynced) and restart it after the event's delay.
    fn crash_at_failpoint(&mut self, at_ms: u64, event_idx: usize) {
        if !self.armed.remove(&event_idx) {
            return;
        }
        let Some(Applied::Failpoint { slot, failpoint, restart_after_ms }) = self.applied.remove(&event_idx) else {
            unreachable!("an armed event is applied as a failpoint");
        };
        let down = self.hold_down_at_failpoint(slot);
        self.record(at_ms, format!("{slot} reached failpoint {failpoint}: crash"));
        let restart_at_ms = at_ms + restart_after_ms;
        self.applied.insert(event_idx, Applied::FailpointCrash { down, restart_at_ms });
    }

    /// Counts `member`, halted at a failpoint, as crashed, and crashes it unless another
    /// fault already holds it down; [`Nemesis::heal_crash`] undoes it.
    fn hold_down_at_failpoint(&mut self, slot: Slot) -> Down {
        let down = Down::StoreMember(slot);
        if self.downs.take(&down) {
            self.call(Call::CrashStoreMember { slot, tear: None });
        }
        down
    }

    /// When the next restart after a failpoint crash is due.
    pub(super) fn next_restart_ms(&self) -> Option<u64> {
        self.applied
            .values()
            .filter_map(|applied| match applied {
                Applied::FailpointCrash { restart_at_ms, .. } => Some(*restart_at_ms),
                _ => None,
            })
            .min()
    }

    /// Restarts every member crashed at a failpoint whose restart is due at `at_ms`.
    pub(super) fn restart_due(&mut self, at_ms: u64) {
        let due: Vec<usize> = self
            .applied
            .iter()
            .filter(|(_, applied)| matches!(applied, Applied::FailpointCrash { restart_at_ms, .. } if *restart_at_ms <= at_ms))
            .map(|(event_idx, _)| *event_idx)
            .collect();
        for event_idx in due {
            if let Some(Applied::FailpointCrash { down, .. }) = self.applied.remove(&event_idx) {
                self.heal_crash(at_ms, down);
            }
        }
    }

    /// Event `event_idx`'s failpoint stops being armed if it was not reached.
    pub(super) fn disarm(&mut self, at_ms: u64, event_idx: usize) {
        if !self.armed.remove(&event_idx) {
            return;
        }
        if let Some(Applied::Failpoint { slot, failpoint, .. }) = self.applied.remove(&event_idx) {
            self.call(Call::DisarmFailpoint { slot, failpoint });
            self.record(at_ms, format!("disarm failpoint {failpoint} on {slot}: not reached"));
        }
    }

    // The leader chase.

    pub(super) fn start_chase(
        &mut self,
        at_ms: u64,
        event_idx: usize,
        steps: Vec<ChaseStep>,
        targets: &Targets<'_>,
    ) -> Applied {
        self.record(at_ms, format!("leader-chase: {} rolling kills of whoever leads", steps.len()));
        let chase = Chase { steps, step: 0, armed: Vec::new(), victim: None };
        Applied::Chase(self.arm_chase_step(at_ms, event_idx, chase, targets))
    }

    /// Arms the chase's current step on every store member but its victim (the last one
    /// killed, still down).
    fn arm_chase_step(&mut self, at_ms: u64, event_idx: usize, mut chase: Chase, targets: &Targets<'_>) -> Chase {
        let Some(&ChaseStep { failpoint, passes }) = chase.steps.get(chase.step) else {
            chase.armed = Vec::new();
            return chase;
        };
        chase.armed = targets.store_members().into_iter().filter(|&slot| Some(slot) != chase.victim).collect();
        for &slot in &chase.armed {
            self.arm_one(event_idx, slot, failpoint, passes);
        }
        self.armed.insert(event_idx);
        let after = describe_passes(passes);
        let (step, n) = (chase.step + 1, chase.steps.len());
        self.record(at_ms, format!("leader-chase step {step}/{n}: arm {failpoint} on every live member{after}"));
        chase
    }

    /// `reached.member` reached the step a leader chase armed: crash it, restart the
    /// previous victim, arm the next step on the others. A member that reached a step
    /// already taken by another in the same instant halted all the same: it is crashed
    /// and restarted at once.
    fn chase_reached(&mut self, at_ms: u64, reached: Reached, targets: &Targets<'_>) {
        let Reached { event_idx, slot } = reached;
        let Some(Applied::Chase(mut chase)) = self.applied.remove(&event_idx) else {
            unreachable!("checked by the caller");
        };
        if !chase.armed.contains(&slot) {
            self.call(Call::CrashStoreMember { slot, tear: None });
            self.call(Call::RestartStoreMember(slot));
            let late = "after another member took the step: crash and restart";
            self.record(at_ms, format!("leader-chase: {slot} reached its failpoint {late}"));
            self.applied.insert(event_idx, Applied::Chase(chase));
            return;
        }
        let failpoint = chase.steps[chase.step].failpoint;
        for &other in chase.armed.iter().filter(|&&other| other != slot) {
            self.call(Call::DisarmFailpoint { slot: other, failpoint });
        }
        self.armed.remove(&event_idx);
        self.hold_down_at_failpoint(slot);
        let (step, n) = (chase.step + 1, chase.steps.len());
        self.record(at_ms, format!("leader-chase step {step}/{n}: {slot} reached {failpoint}: crash"));
        if let Some(previous) = chase.victim {
            self.heal_crash(at_ms, Down::StoreMember(previous));
        }
        chase.step += 1;
        chase.victim = Some(slot);
        let chase = self.arm_chase_step(at_ms, event_idx, chase, targets);
        self.applied.insert(event_idx, Applied::Chase(chase));
    }

    /// The chase heals: disarm the step not reached, restart the last victim.
    pub(super) fn heal_chase(&mut self, at_ms: u64, event_idx: usize, chase: Chase) {
        self.armed.remove(&event_idx);
        if let Some(&ChaseStep { failpoint, .. }) = chase.steps.get(chase.step) {
            for &slot in &chase.armed {
                self.call(Call::DisarmFailpoint { slot, failpoint });
            }
        }
        self.record(at_ms, format!("heal leader-chase: {} of {} steps reached", chase.step, chase.steps.len()));
        if let Some(victim) = chase.victim {
            self.heal_crash(at_ms, Down::StoreMember(victim));
        }
    }
}

fn describe_passes(passes: u32) -> String {
    if passes > 0 {
        format!(" after {passes} passes")
    } else {
        String::new()
    }
}
