//! The limits within which a correct system must survive a plan
//! ([`FaultPlan::check_survivable`]): the generators stay inside them, hand-written plans
//! may knowingly step outside, and the shrinker never steps a survivable plan outside.

use super::{kind_name, Fault, FaultEvent, FaultPlan, PlanError, Target, Topology};

/// Which limit of [`FaultPlan::check_survivable`] a plan steps outside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsurvivable {
    #[error("{count} corrupt-record events; at most one store member may be corrupted")]
    SeveralCorruptions { count: usize },
    #[error("{count} power-loss events; at most one whole-store outage per plan")]
    SeveralPowerLosses { count: usize },
    #[error("{count} disk-loss-majority/disk-loss-all events; at most one restore per plan")]
    SeveralRestores { count: usize },
    /// A fault that must stand alone (a restore, a power loss) overlaps one it clashes with.
    #[error("{fault} at {at_ms} ms overlaps a {other} of the store at {other_at_ms} ms")]
    Overlaps { fault: &'static str, at_ms: u64, other: &'static str, other_at_ms: u64 },
    #[error("at {at_ms} ms {down} store members are down; at most {minority} of {store_members} may be")]
    MajorityDown { at_ms: u64, down: u64, minority: u64, store_members: u64 },
    #[error("{target} is crashed or paused by two overlapping events")]
    TwoProcessFaults { target: Target },
}

impl FaultPlan {
    /// Checks the limits within which a correct system must survive the plan, which the
    /// generators respect and hand-written plans may knowingly exceed:
    /// - at no instant are more than a minority of store members down, counting crashed
    ///   members (`crash`, `crash-store-member`, and `crash-at-failpoint` with a restart
    ///   delay over its whole event, since it may fire at any point of it; one restarted
    ///   at once is never down; `store-leader` counts as one more member; a
    ///   `leader-chase` holds one member down over its whole event)
    ///   and, from the moment it heals, the member whose record was corrupted (it must
    ///   refuse to start, so it stays down);
    /// - at most one `corrupt-record` per plan;
    /// - at most one crash or pause of a given target at a time;
    /// - a `power-loss` takes every store member down at once, which a correct store
    ///   survives (an acknowledged write is fsynced on a majority, so it outlives the loss
    ///   of everything unsynced; only availability is lost), but it overlaps no other
    ///   crash or pause of a store member, so that each member is down for one reason
    ///   at a time. It is not counted against the minority above;
    /// - at most one `power-loss` per plan: each outage of the whole store pushes every
    ///   client's and controller's retry backoff further out, and after several in a row
    ///   the cluster no longer reconverges within the liveness bound although nothing was
    ///   lost (a whole-cluster outage is rare in production too);
    /// - a `disk-loss` holds its member down from the loss until the operator's
    ///   replacement (the heal), counted against the minority above;
    /// - at most one `disk-loss-majority` or `disk-loss-all` per plan (one restore per
    ///   run), and it overlaps no other store process fault, disk loss or power loss, so
    ///   that the restore starts from a store that is down for one reason only.
    pub fn check_survivable(&self, topology: &Topology) -> Result<(), PlanError> {
        self.at_most_one(
            |fault| matches!(fault, Fault::CorruptRecord { .. }),
            |count| Unsurvivable::SeveralCorruptions { count },
        )?;
        self.at_most_one(
            |fault| matches!(fault, Fault::PowerLoss { .. }),
            |count| Unsurvivable::SeveralPowerLosses { count },
        )?;
        self.at_most_one(is_store_loss, |count| Unsurvivable::SeveralRestores { count })?;
        self.stands_alone(is_store_loss, takes_store_down_beside_a_restore)?;
        self.majority_stays_up(topology)?;
        self.stands_alone(|fault| matches!(fault, Fault::PowerLoss { .. }), holds_a_store_process)?;
        self.one_process_fault_per_target()
    }

    /// Refuses more than one event whose fault is `counted`.
    fn at_most_one(
        &self,
        counted: impl Fn(&Fault) -> bool,
        refusal: impl Fn(usize) -> Unsurvivable,
    ) -> Result<(), PlanError> {
        match self.events.iter().filter(|event| counted(&event.fault)).count() {
            n if n > 1 => Err(refusal(n).into()),
            _ => Ok(()),
        }
    }

    /// Refuses an event of a `lonely` fault that overlaps an event whose fault `clashes`.
    fn stands_alone(&self, lonely: impl Fn(&Fault) -> bool, clashes: impl Fn(&Fault) -> bool) -> Result<(), PlanError> {
        for event in self.events.iter().filter(|event| lonely(&event.fault)) {
            let Some(other) = self.events.iter().find(|other| clashes(&other.fault) && overlap(event, other)) else {
                continue;
            };
            return Err(Unsurvivable::Overlaps {
                fault: kind_name(&event.fault),
                at_ms: event.at_ms,
                other: kind_name(&other.fault),
                other_at_ms: other.at_ms,
            }
            .into());
        }
        Ok(())
    }

    /// At no instant are more store members down than a minority (see
    /// [`FaultPlan::check_survivable`]). The count is taken where an interval starts, since
    /// only a start can raise it.
    fn majority_stays_up(&self, topology: &Topology) -> Result<(), PlanError> {
        let minority = topology.store_minority();
        let down: Vec<(u64, u64)> = self.events.iter().filter_map(store_member_down).collect();
        for &(start, _) in &down {
            let concurrent =
                down.iter().filter(|&&(other_start, other_end)| other_start <= start && start < other_end).count()
                    as u64;
            if concurrent > minority {
                return Err(Unsurvivable::MajorityDown {
                    at_ms: start,
                    down: concurrent,
                    minority,
                    store_members: topology.store_members,
                }
                .into());
            }
        }
        Ok(())
    }

    /// No target is crashed or paused by two overlapping events.
    fn one_process_fault_per_target(&self) -> Result<(), PlanError> {
        let process_faults: Vec<(&Target, &FaultEvent)> =
            self.events.iter().filter_map(|event| process_fault_target(event).map(|target| (target, event))).collect();
        for (idx, (target, event)) in process_faults.iter().enumerate() {
            if process_faults[idx + 1..]
                .iter()
                .any(|(other_target, other)| target == other_target && overlap(event, other))
            {
                return Err(Unsurvivable::TwoProcessFaults { target: (*target).clone() }.into());
            }
        }
        Ok(())
    }
}

/// A majority or total disk loss, healed by a restore.
fn is_store_loss(fault: &Fault) -> bool {
    matches!(fault, Fault::DiskLossMajority { .. } | Fault::DiskLossAll)
}

/// What a restore must not share its time with: any fault that takes store members down
/// on its own account (a failpoint crash is brief and leaves its member's disk as it was,
/// so it may run beside one).
fn takes_store_down_beside_a_restore(fault: &Fault) -> bool {
    match fault {
        Fault::Crash { target } | Fault::Pause { target } => target.is_store(),
        Fault::CrashStoreMember { .. }
        | Fault::PowerLoss { .. }
        | Fault::DiskLoss { .. }
        | Fault::LeaderChase { .. } => true,
        _ => false,
    }
}

/// What a power loss must not share its time with: any fault that holds a store member
/// down or frozen, so that each member is down for one reason at a time.
fn holds_a_store_process(fault: &Fault) -> bool {
    match fault {
        Fault::Crash { target } | Fault::Pause { target } => target.is_store(),
        Fault::CrashStoreMember { .. } | Fault::DiskLoss { .. } | Fault::LeaderChase { .. } => true,
        fault => holds_down_at_failpoint(fault),
    }
}

/// The interval `[start, end)` an event holds one store member down, if it does; a
/// corrupted member never returns once its corruption heals.
fn store_member_down(event: &FaultEvent) -> Option<(u64, u64)> {
    match &event.fault {
        Fault::Crash { target } if target.is_store() => Some(process_interval(event)),
        Fault::CrashStoreMember { .. } | Fault::DiskLoss { .. } | Fault::LeaderChase { .. } => {
            Some(process_interval(event))
        }
        fault if holds_down_at_failpoint(fault) => Some(process_interval(event)),
        Fault::CorruptRecord { .. } => Some((event.heal_at_ms(), u64::MAX)),
        _ => None,
    }
}

/// The target an event crashes or pauses, for [`FaultPlan::one_process_fault_per_target`].
fn process_fault_target(event: &FaultEvent) -> Option<&Target> {
    match &event.fault {
        Fault::Crash { target } | Fault::Pause { target } => Some(target),
        Fault::CrashStoreMember { member, .. } | Fault::DiskLoss { member } => Some(member),
        Fault::CrashAtFailpoint { member, .. } if holds_down_at_failpoint(&event.fault) => Some(member),
        _ => None,
    }
}

/// Whether `fault` is a crash at a failpoint that keeps its member down for a while. One
/// restarted at once (`restart_after_ms: 0`, as etcd's robustness tests restart a member
/// whose failpoint panicked) is down for no time at all, and only fires while its member
/// runs, so it neither counts against the minority nor clashes with other faults of its
/// member; several members may be armed at once.
fn holds_down_at_failpoint(fault: &Fault) -> bool {
    matches!(fault, Fault::CrashAtFailpoint { restart_after_ms, .. } if *restart_after_ms > 0)
}

/// Whether two events' process intervals overlap.
fn overlap(a: &FaultEvent, b: &FaultEvent) -> bool {
    let ((a_start, a_end), (b_start, b_end)) = (process_interval(a), process_interval(b));
    a_start < b_end && b_start < a_end
}

/// The time a process fault holds its target down; a zero-length crash still happens, so
/// it counts for one millisecond.
fn process_interval(event: &FaultEvent) -> (u64, u64) {
    (event.at_ms, event.at_ms.saturating_add(event.duration_ms.max(1)))
}
