//! The plan as one timeline of steps: each event's apply, heal and (for a
//! `crash-at-failpoint`) disarm, in the order the nemesis takes them.

use crate::plan::{Fault, FaultPlan};

/// What a step does to its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    Apply,
    /// A `crash-at-failpoint` stops being armed: its restart delay before its heal.
    Disarm,
    Heal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Step {
    pub(crate) at_ms: u64,
    /// Order among steps due at the same instant: heals first (a crashed process restarts
    /// before another crash is applied), then applies in plan order, then disarms and the
    /// heals of zero-length faults (applied and healed in the same instant).
    class: u8,
    pub(crate) event_idx: usize,
    pub(crate) action: Action,
}

/// The steps of a plan not yet taken, in order. A step after the end of the safety phase
/// (only an unvalidated plan has one) is left out: the heal of everything at the end of
/// the phase undoes what it would have.
#[derive(Debug)]
pub(crate) struct Timeline {
    /// In reverse order, so that the next step is the last.
    steps: Vec<Step>,
}

impl Timeline {
    pub(crate) fn of(plan: &FaultPlan) -> Self {
        let mut steps = Vec::with_capacity(plan.events.len() * 2);
        for (event_idx, event) in plan.events.iter().enumerate() {
            steps.push(Step { at_ms: event.at_ms, class: 1, event_idx, action: Action::Apply });
            let heal_class = if event.duration_ms == 0 { 2 } else { 0 };
            steps.push(Step { at_ms: event.heal_at_ms(), class: heal_class, event_idx, action: Action::Heal });
            if let Fault::CrashAtFailpoint { restart_after_ms, .. } = event.fault {
                let disarm_at_ms = event.heal_at_ms().saturating_sub(restart_after_ms).max(event.at_ms);
                steps.push(Step { at_ms: disarm_at_ms, class: 2, event_idx, action: Action::Disarm });
            }
        }
        steps.retain(|step| step.at_ms <= plan.safety_phase_ms);
        steps.sort_unstable_by(|a, b| b.cmp(a));
        Timeline { steps }
    }

    /// When the next step is due.
    pub(crate) fn next_ms(&self) -> Option<u64> {
        self.steps.last().map(|step| step.at_ms)
    }

    /// Takes the next step.
    pub(crate) fn pop(&mut self) -> Option<Step> {
        self.steps.pop()
    }
}
