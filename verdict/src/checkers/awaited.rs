//! The liveness half of [`Invariant::Convergence`] (docs/design.md §4.13): every goal a
//! user awaited was met in time, as the user saw it.
//!
//! A scenario does not judge; it records what its user waited for and what the user saw
//! ([`HistoryEvent::Awaited`], [`HistoryEvent::Looked`]) and the requests the user gave up
//! on ([`HistoryEvent::GaveUp`]). The rule, per awaited goal (an `Awaited` record, with the
//! `Looked` records of the same goal that follow it, up to the next `Awaited` of that goal):
//! - with a deadline, some look that began by the deadline saw the goal met (`have` at
//!   least `want`, or exactly `want`), as `kubectl get pods` polled until the bound ran out
//!   would show it (the Kubernetes e2e framework's `WaitForPodsRunning...` helpers);
//! - without one (at rest), the first look after it saw the goal met: once the cluster is
//!   at rest it must hold exactly what was asked for, no surplus left behind;
//! - a look that could not see (`have: None`) meets nothing;
//! - a `GaveUp` is a violation by itself: the user could not ask, so nothing converged.
//!
//! After a total loss of the cluster state (a [`HistoryEvent::TotalLoss`] record) there is
//! no cluster left to converge (docs/design.md §4.8): no goal is judged, and the seed's
//! outcome says total loss instead.
//!
//! Cost: O(n) over the history, plus the looks of each goal.

use std::collections::BTreeMap;

use super::{Invariant, Verdict, Violations};
use crate::history::{History, HistoryEvent};

/// One awaited goal and the looks at it.
struct Wait<'h> {
    at_ns: u64,
    goal: &'h str,
    want: u64,
    exactly: bool,
    deadline_ns: Option<u64>,
    /// (recorded at, have, seen, began at), in order.
    looks: Vec<(u64, Option<u64>, &'h str, u64)>,
}

impl Wait<'_> {
    fn met(&self, have: Option<u64>) -> bool {
        have.is_some_and(|have| if self.exactly { have == self.want } else { have >= self.want })
    }

    /// The violation, if the goal was not met: its time and message.
    fn judge(&self) -> Option<(u64, String)> {
        let in_time = |&&(_, _, _, began_ns): &&(u64, Option<u64>, &str, u64)| {
            self.deadline_ns.is_none_or(|deadline| began_ns <= deadline)
        };
        let deciding: Vec<_> = match self.deadline_ns {
            Some(_) => self.looks.iter().filter(in_time).collect(),
            None => self.looks.iter().take(1).collect(),
        };
        if deciding.iter().any(|&&(_, have, _, _)| self.met(have)) {
            return None;
        }
        let wanted = if self.exactly { format!("exactly {}", self.want) } else { format!("{}", self.want) };
        Some(match (deciding.last(), self.deadline_ns) {
            (Some(&&(_, _, seen, _)), Some(deadline)) => {
                (deadline, format!("{}: {seen} when the bound ran out ({wanted} wanted)", self.goal))
            }
            (Some(&&(at_ns, _, seen, _)), None) => (at_ns, format!("{}: {seen} ({wanted} wanted)", self.goal)),
            (None, deadline) => {
                (deadline.unwrap_or(self.at_ns), format!("{}: the user never looked ({wanted} wanted)", self.goal))
            }
        })
    }
}

pub(super) fn check(history: &History) -> Verdict {
    let mut violations = Violations::new(Invariant::Convergence);
    if history.events().any(|(_, event)| matches!(event, HistoryEvent::TotalLoss { .. })) {
        return violations.into_verdict(0, "total loss: no cluster left to converge".to_string());
    }
    let mut waits: Vec<Wait> = Vec::new();
    // goal -> index in `waits` of its latest `Awaited`.
    let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gave_up = 0usize;
    for (at_ns, event) in history.events() {
        match event {
            HistoryEvent::Awaited { goal, want, exactly, deadline_ns } => {
                latest.insert(goal, waits.len());
                waits.push(Wait {
                    at_ns,
                    goal,
                    want: *want,
                    exactly: *exactly,
                    deadline_ns: *deadline_ns,
                    looks: Vec::new(),
                });
            }
            HistoryEvent::Looked { goal, have, seen, began_ns } => {
                if let Some(&i) = latest.get(goal.as_str()) {
                    waits[i].looks.push((at_ns, *have, seen, *began_ns));
                }
            }
            HistoryEvent::GaveUp { request, error } => {
                gave_up += 1;
                violations.push(Some(at_ns), format!("{request} never succeeded: {error}"));
            }
            _ => {}
        }
    }
    let mut met = 0usize;
    for wait in &waits {
        match wait.judge() {
            Some((at_ns, message)) => violations.push(Some(at_ns), message),
            None => met += 1,
        }
    }
    let checked = waits.len() + gave_up;
    violations.into_verdict(checked, format!("{met} of {} awaited goals met in time", waits.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Record;

    fn history(events: Vec<(u64, HistoryEvent)>) -> History {
        History {
            records: events.into_iter().map(|(at_ns, event)| Record { at_ns, event }).collect(),
            ..Default::default()
        }
    }

    fn awaited(want: u64, exactly: bool, deadline_ns: Option<u64>) -> HistoryEvent {
        HistoryEvent::Awaited { goal: "pods".into(), want, exactly, deadline_ns }
    }

    fn looked(have: Option<u64>, began_ns: u64) -> HistoryEvent {
        let seen = have.map_or("could not look".to_string(), |n| format!("{n} Running"));
        HistoryEvent::Looked { goal: "pods".into(), have, seen, began_ns }
    }

    #[test]
    fn a_goal_met_by_a_look_that_began_in_time_holds() {
        // The look began at 9 (by the deadline 10) and answered at 12: it counts.
        let h = history(vec![(0, awaited(5, false, Some(10))), (1, looked(Some(3), 1)), (12, looked(Some(5), 9))]);
        let verdict = check(&h);
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.checked, 1);
    }

    #[test]
    fn a_goal_not_met_by_the_deadline_is_a_violation_naming_what_was_seen() {
        let h = history(vec![(0, awaited(5, false, Some(10))), (1, looked(Some(3), 1)), (12, looked(Some(5), 11))]);
        let verdict = check(&h);
        assert_eq!(verdict.violations.len(), 1);
        assert_eq!(verdict.violations[0].at_ns, Some(10));
        assert_eq!(verdict.violations[0].message, "pods: 3 Running when the bound ran out (5 wanted)");
    }

    #[test]
    fn at_rest_the_first_look_decides_and_a_surplus_fails_an_exact_goal() {
        let surplus = history(vec![(0, awaited(5, true, None)), (1, looked(Some(6), 1)), (2, looked(Some(5), 2))]);
        assert_eq!(check(&surplus).violations[0].message, "pods: 6 Running (exactly 5 wanted)");
        let exact = history(vec![(0, awaited(5, true, None)), (1, looked(Some(5), 1))]);
        assert!(check(&exact).passed());
    }

    #[test]
    fn a_look_that_could_not_see_meets_nothing_and_no_look_at_all_is_a_violation() {
        let blind = history(vec![(0, awaited(1, false, None)), (1, looked(None, 1))]);
        assert_eq!(check(&blind).violations[0].message, "pods: could not look (1 wanted)");
        let never = history(vec![(0, awaited(1, false, Some(10)))]);
        assert_eq!(check(&never).violations[0].message, "pods: the user never looked (1 wanted)");
    }

    #[test]
    fn looks_count_for_the_latest_wait_of_their_goal_only() {
        // The second wait of the same goal is not met by the first wait's look.
        let h = history(vec![
            (0, awaited(3, false, Some(10))),
            (1, looked(Some(3), 1)),
            (20, awaited(5, false, Some(30))),
            (21, looked(Some(3), 21)),
        ]);
        let verdict = check(&h);
        assert_eq!(verdict.violations.len(), 1);
        assert_eq!(verdict.violations[0].at_ns, Some(30));
    }

    #[test]
    fn giving_up_is_a_violation_and_a_total_loss_judges_nothing() {
        let gave_up = HistoryEvent::GaveUp { request: "kubectl create".into(), error: "timed out".into() };
        let h = history(vec![(5, gave_up.clone())]);
        assert_eq!(check(&h).violations[0].message, "kubectl create never succeeded: timed out");
        let lost = HistoryEvent::TotalLoss { acknowledged_objects_lost: 3, reason: "every disk".into() };
        let h = history(vec![(0, awaited(5, false, Some(10))), (5, gave_up), (6, lost)]);
        let verdict = check(&h);
        assert!(verdict.passed());
        assert_eq!(verdict.checked, 0);
    }
}
