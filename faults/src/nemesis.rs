//! The nemesis: executes a [`FaultPlan`] against a [`World`] in simulated time.
//!
//! The nemesis knows nothing about the system under test: the world (built by `sim`)
//! translates "kill store-2", "clog apiserver-0 → store-1" into madsim and `SimDisk`
//! calls. Every action is recorded in the world's history so a failure's report shows what
//! the nemesis did and when.
//!
//! All steps of a plan run on one timeline in one task, rather than one task per event,
//! so that steps due at the same instant run in a fixed order that does not depend on the
//! scheduler: heals first (a crashed process restarts before another crash is applied),
//! then applies in plan order, then heals of zero-length faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use madsim::rand::Rng;
use madsim::time::{Instant, TimeHandle};

use crate::plan::{kind_name, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, Target};

/// A node as the world names it, e.g. `"store-1"`, `"apiserver-0"`, `"kubelet-2"`.
pub type NodeRef = String;

/// The simulated world as the nemesis sees it. Object-safe and synchronous: every call
/// takes effect immediately in simulated time.
pub trait World {
    /// Ids of all store members (crashed ones included).
    fn store_members(&self) -> Vec<u64>;
    /// The current Raft leader, if the world knows one.
    fn store_leader(&self) -> Option<u64>;
    /// The node a target runs on; `None` if it does not exist or cannot be resolved.
    fn node_of(&self, target: &Target) -> Option<NodeRef>;
    /// Kill a process (all its tasks and connections).
    fn kill(&self, node: &NodeRef);
    /// Restart a killed process from its persistent state.
    fn restart(&self, node: &NodeRef);
    /// Stop a process's tasks from running until `resume`.
    fn pause(&self, node: &NodeRef);
    fn resume(&self, node: &NodeRef);
    /// Kill a store member and lose its unsynced writes; with `tear`, keep a torn prefix
    /// of the last unsynced write whose length derives from the given randomness.
    fn crash_store_member(&self, member: u64, tear: Option<u64>);
    fn restart_store_member(&self, member: u64);
    /// Flip bits in one synced WAL record chosen with `randomness`; returns what was
    /// corrupted, or `None` if the member has no synced record to corrupt.
    fn corrupt_store_record(&self, member: u64, randomness: u64) -> Option<String>;
    /// Drop every message `from → to` until `unclog`.
    fn clog(&self, from: &NodeRef, to: &NodeRef);
    fn unclog(&self, from: &NodeRef, to: &NodeRef);
    /// Every node of the cluster.
    fn all_nodes(&self) -> Vec<NodeRef>;
    /// Drop each message with probability `rate`, everywhere.
    fn set_packet_loss(&self, rate: f64);
    /// Send latency drawn from `min_ms..=max_ms`, everywhere.
    fn set_latency_ms(&self, min_ms: u64, max_ms: u64);
    /// Back to the scenario's normal loss and latency.
    fn reset_network_conditions(&self);
    fn set_clock_skew(&self, node: &NodeRef, offset_ms: i64, drift_ms_per_s: i64);
    fn reset_clock(&self, node: &NodeRef);
    /// Arms `failpoint` on a store member: the next time the member reaches it, the
    /// member halts (sends and applies nothing more) and calls `on_reached`, once; the
    /// nemesis then crashes it. Returns false if the member does not exist.
    /// `passes`: how many times the member passes the point unharmed first.
    fn arm_failpoint(
        &self,
        member: u64,
        failpoint: Failpoint,
        passes: u32,
        on_reached: Box<dyn FnOnce() + Send>,
    ) -> bool;
    /// Disarms it; returns whether it was still armed (not reached).
    fn disarm_failpoint(&self, member: u64, failpoint: Failpoint) -> bool;
    /// Appends a line to the run's history.
    fn record(&self, description: String);
    /// Operator `snapshot save` against `member`; the world keeps the backup off-cluster.
    /// Returns what was started or taken, or why it could not be (member unknown).
    fn take_backup(&self, member: u64) -> Result<String, String>;
    /// Flips bytes of the most recent stored backup chosen with `randomness`; `None` if
    /// no backup is stored.
    fn corrupt_backup(&self, randomness: u64) -> Option<String>;
    /// Wipes `member`'s disk and kills it (nothing of it survives, not even its identity).
    fn lose_disk(&self, member: u64);
    /// The operator replaces a member whose disk was lost: remove it from the cluster, add
    /// a new identity with an empty disk on a new address, start it. Targets naming
    /// `store-{member}` reach the replacement afterwards.
    fn replace_member(&self, member: u64) -> Result<String, String>;
    /// The operator's restore after a majority or total disk loss (see
    /// `Fault::DiskLossMajority`). `Err` when no stored backup verifies: the run's
    /// cluster state is lost (`total-loss`).
    fn restore_from_backup(&self) -> Result<String, String>;
}

/// The shared handle `run` takes.
pub type SharedWorld = Arc<dyn World + Send + Sync>;

/// Runs `plan` against `world`, with time counted from the call, and returns at the end
/// of the safety phase once every fault has healed ("all faults healed" is the last line
/// it records). It does not wait through the liveness phase.
///
/// A step scheduled after the end of the safety phase (only an unvalidated plan has one)
/// is skipped, and `heal_all` at the end of the phase heals what it would have.
pub async fn run(plan: &FaultPlan, world: SharedWorld) {
    let time = TimeHandle::current();
    let start = time.now_instant();
    let now_ms = || (time.now_instant() - start).as_millis() as u64;
    let mut nemesis = Nemesis::new(world);
    let mut steps = schedule(plan).into_iter().filter(|step| step.at_ms <= plan.safety_phase_ms).peekable();
    loop {
        // A restart after a failpoint crash is a heal: at the same instant it goes first.
        let next_restart_ms = nemesis.next_restart_ms();
        let next_step_ms = steps.peek().map(|step| step.at_ms);
        let Some(next_ms) = [next_restart_ms, next_step_ms].into_iter().flatten().min() else {
            break;
        };
        let deadline = start + Duration::from_millis(next_ms);
        if !nemesis.armed.is_empty() && time.now_instant() < deadline {
            // An armed failpoint may be reached before the next step is due.
            let reached = {
                let sleep = std::pin::pin!(time.sleep_until(deadline));
                match futures::future::select(nemesis.reached.next(), sleep).await {
                    futures::future::Either::Left((reached, _)) => reached,
                    futures::future::Either::Right(_) => None,
                }
            };
            if let Some((event_idx, member)) = reached {
                nemesis.failpoint_reached(now_ms(), event_idx, member);
                continue;
            }
        }
        sleep_until(&time, deadline).await;
        if next_restart_ms == Some(next_ms) {
            nemesis.restart_due(next_ms);
            continue;
        }
        let step = steps.next().expect("peeked above");
        let event = &plan.events[step.event_idx];
        match step.action {
            Action::Apply => nemesis.apply(step.at_ms, step.event_idx, event),
            Action::Disarm => nemesis.disarm(step.at_ms, step.event_idx),
            Action::Heal => nemesis.heal(step.at_ms, step.event_idx),
        }
    }
    sleep_until(&time, start + Duration::from_millis(plan.safety_phase_ms)).await;
    nemesis.heal_all(plan.safety_phase_ms);
}

/// madsim's `sleep_until` sleeps at least 1 ms even when the deadline has passed; steps
/// due now must run now, so only sleep for a deadline in the future.
async fn sleep_until(time: &TimeHandle, deadline: Instant) {
    if time.now_instant() < deadline {
        time.sleep_until(deadline).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Apply,
    /// A `crash-at-failpoint` stops being armed: its restart delay before its heal.
    Disarm,
    Heal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Step {
    at_ms: u64,
    /// Order among steps due at the same instant (see the module doc).
    class: u8,
    event_idx: usize,
    action: Action,
}

fn schedule(plan: &FaultPlan) -> Vec<Step> {
    let mut steps = Vec::with_capacity(plan.events.len() * 2);
    for (event_idx, event) in plan.events.iter().enumerate() {
        steps.push(Step { at_ms: event.at_ms, class: 1, event_idx, action: Action::Apply });
        steps.push(Step {
            at_ms: event.heal_at_ms(),
            class: if event.duration_ms == 0 { 2 } else { 0 },
            event_idx,
            action: Action::Heal,
        });
        if let Fault::CrashAtFailpoint { restart_after_ms, .. } = event.fault {
            let disarm_at_ms = event.heal_at_ms().saturating_sub(restart_after_ms).max(event.at_ms);
            steps.push(Step { at_ms: disarm_at_ms, class: 2, event_idx, action: Action::Disarm });
        }
    }
    steps.sort();
    steps
}

/// What one applied event changed, so that its heal undoes exactly that.
#[derive(Clone, Debug)]
enum Applied {
    /// Directed links clogged by the event (each also counted in `Nemesis::clogged`).
    Clogs {
        description: String,
        links: BTreeSet<(NodeRef, NodeRef)>,
    },
    NetworkConditions,
    Crash(Down),
    /// Every store member crashed by one power loss.
    PowerLoss(Vec<Down>),
    Pause(NodeRef),
    ClockSkew(NodeRef),
    Corrupt(u64),
    /// A failpoint armed on a store member, until it is reached or disarmed.
    Failpoint {
        member: u64,
        failpoint: Failpoint,
        restart_after_ms: u64,
    },
    /// A member crashed at a failpoint, restarting at `restart_at_ms`.
    FailpointCrash {
        down: Down,
        restart_at_ms: u64,
    },
    /// A `leader-chase` at step `step` (== its length once every step fired), armed on
    /// `armed`, with the last victim held down.
    Chase {
        steps: Vec<ChaseStep>,
        step: usize,
        armed: Vec<u64>,
        victim: Option<u64>,
    },
    /// A member whose disk was lost, replaced when the fault heals.
    DiskLoss(u64),
    /// Members whose disks were lost together; the heal is the operator's restore.
    StoreLoss(Vec<u64>),
    /// Nothing could be applied (no leader, target did not resolve).
    Nothing,
}

/// A process held down by crashes. Store members are keyed by member id so that `crash
/// store-1`, `crash-store-member store-1` and a crash of the leader while it is store-1
/// count against the same member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Down {
    StoreMember(u64),
    Node(NodeRef),
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::StoreMember(member) => write!(f, "store-{member}"),
            Down::Node(node) => f.write_str(node),
        }
    }
}

/// The nemesis' bookkeeping of what is applied. Overlapping faults are reference-counted
/// per clogged link, paused node and crashed process: the first fault applies, the last
/// heal undoes.
pub struct Nemesis {
    world: SharedWorld,
    applied: BTreeMap<usize, Applied>,
    clogged: BTreeMap<(NodeRef, NodeRef), u32>,
    paused: BTreeMap<NodeRef, u32>,
    crashed: BTreeMap<Down, u32>,
    /// Active network conditions by event, most intense wins.
    packet_loss: BTreeMap<usize, f64>,
    latency: BTreeMap<usize, (u64, u64)>,
    /// Active skews per node by event; the latest applied wins.
    skews: BTreeMap<NodeRef, BTreeMap<usize, (i64, i64)>>,
    /// Events whose failpoint is armed, and the channel members report reaching one on
    /// (event, member).
    armed: BTreeSet<usize>,
    reached_tx: mpsc::UnboundedSender<(usize, u64)>,
    reached: mpsc::UnboundedReceiver<(usize, u64)>,
}

impl Nemesis {
    pub fn new(world: SharedWorld) -> Self {
        let (reached_tx, reached) = mpsc::unbounded();
        Nemesis {
            world,
            applied: BTreeMap::new(),
            clogged: BTreeMap::new(),
            paused: BTreeMap::new(),
            crashed: BTreeMap::new(),
            packet_loss: BTreeMap::new(),
            latency: BTreeMap::new(),
            skews: BTreeMap::new(),
            armed: BTreeSet::new(),
            reached_tx,
            reached,
        }
    }

    fn record(&self, at_ms: u64, description: impl AsRef<str>) {
        let line = format!("t={at_ms}ms {}", description.as_ref());
        tracing::info!(target: "nemesis", "{line}");
        self.world.record(line);
    }

    /// Applies event `event_idx` and records what it did.
    pub fn apply(&mut self, at_ms: u64, event_idx: usize, event: &FaultEvent) {
        assert!(!self.applied.contains_key(&event_idx), "event {event_idx} applied twice");
        let fault = &event.fault;
        let applied = match fault {
            Fault::Partition { .. }
            | Fault::IsolateStoreLeader
            | Fault::IsolateApiServer { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge
            | Fault::OneWay { .. }
            | Fault::ClogLink { .. } => match self.network_cut(fault) {
                Ok((description, links)) => self.apply_cut(at_ms, description, links),
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
            Fault::PacketLoss { rate } => {
                self.packet_loss.insert(event_idx, *rate);
                self.apply_network_conditions();
                self.record(at_ms, format!("packet-loss {rate}"));
                Applied::NetworkConditions
            }
            Fault::LatencySpike { min_ms, max_ms } => {
                self.latency.insert(event_idx, (*min_ms, *max_ms));
                self.apply_network_conditions();
                self.record(at_ms, format!("latency-spike {min_ms}..={max_ms}ms"));
                Applied::NetworkConditions
            }
            Fault::Crash { target } => self.crash(at_ms, fault, target, None),
            Fault::CrashStoreMember { member, tear } => {
                let tear = tear.then(|| madsim::rand::thread_rng().gen::<u64>());
                self.crash(at_ms, fault, member, Some(tear))
            }
            Fault::PowerLoss { tear } => self.power_loss(at_ms, *tear),
            Fault::Pause { target } => match self.node(target) {
                Ok(node) => self.apply_pause(at_ms, node),
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
            Fault::CorruptRecord { member } => match self.resolve_member(member) {
                Ok(member) => self.apply_corruption(at_ms, member),
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
            Fault::CrashAtFailpoint { member, failpoint, restart_after_ms, passes } => {
                match self.resolve_member(member) {
                    Ok(member) => self.arm(at_ms, event_idx, member, *failpoint, *restart_after_ms, *passes),
                    Err(reason) => self.skip(at_ms, fault, &reason),
                }
            }
            Fault::LeaderChase { steps } => {
                self.record(at_ms, format!("leader-chase: {} rolling kills of whoever leads", steps.len()));
                self.arm_chase_step(at_ms, event_idx, steps.clone(), 0, None)
            }
            Fault::Backup { member } => match self.resolve_member(member) {
                Ok(member) => {
                    match self.world.take_backup(member) {
                        Ok(what) => self.record(at_ms, format!("operator: snapshot save from store-{member}: {what}")),
                        Err(why) => {
                            self.record(at_ms, format!("operator: snapshot save from store-{member} failed: {why}"))
                        }
                    }
                    Applied::Nothing
                }
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
            Fault::SnapshotCorruption => {
                let randomness = madsim::rand::thread_rng().gen::<u64>();
                match self.world.corrupt_backup(randomness) {
                    Some(what) => self.record(at_ms, format!("snapshot-corruption: {what}")),
                    None => self.record(at_ms, "snapshot-corruption: no stored backup to corrupt, skipped"),
                }
                Applied::Nothing
            }
            Fault::DiskLoss { member } => match self.resolve_member(member) {
                Ok(member) => self.lose_disks(at_ms, fault, vec![member]),
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
            Fault::DiskLossMajority | Fault::DiskLossAll => {
                let mut members = self.world.store_members();
                members.sort_unstable();
                members.dedup();
                if matches!(fault, Fault::DiskLossMajority) {
                    // Which majority is the simulation's to choose, so that every seed
                    // loses its own.
                    let majority = members.len() / 2 + 1;
                    let mut rng = madsim::rand::thread_rng();
                    while members.len() > majority {
                        let idx = rng.gen_range(0..members.len());
                        members.remove(idx);
                    }
                }
                self.lose_disks(at_ms, fault, members)
            }
            Fault::ClockSkew { target, offset_ms, drift_ms_per_s } => match self.node(target) {
                Ok(node) => {
                    self.skews.entry(node.clone()).or_default().insert(event_idx, (*offset_ms, *drift_ms_per_s));
                    self.world.set_clock_skew(&node, *offset_ms, *drift_ms_per_s);
                    let skew = format!("offset {offset_ms}ms drift {drift_ms_per_s}ms/s");
                    self.record(at_ms, format!("clock-skew {node} {skew}"));
                    Applied::ClockSkew(node)
                }
                Err(reason) => self.skip(at_ms, fault, &reason),
            },
        };
        self.applied.insert(event_idx, applied);
    }

    /// Wipes and kills `members`. Each is counted as crashed, so that an overlapping
    /// crash's heal does not restart it on its empty disk behind the operator's back.
    fn lose_disks(&mut self, at_ms: u64, fault: &Fault, members: Vec<u64>) -> Applied {
        let names: Vec<String> = members.iter().map(|member| format!("store-{member}")).collect();
        self.record(at_ms, format!("{} {}: disks wiped, members killed", kind_name(fault), names.join(", ")));
        for &member in &members {
            *self.crashed.entry(Down::StoreMember(member)).or_insert(0) += 1;
            self.world.lose_disk(member);
        }
        match fault {
            Fault::DiskLoss { .. } => Applied::DiskLoss(members[0]),
            _ => Applied::StoreLoss(members),
        }
    }

    /// Releases the crash counts a disk loss holds; true if nothing else holds the member.
    fn release_disk_loss(&mut self, member: u64) -> bool {
        let down = Down::StoreMember(member);
        let count = self.crashed.get_mut(&down).expect("a disk loss is counted");
        *count -= 1;
        if *count == 0 {
            self.crashed.remove(&down);
            true
        } else {
            false
        }
    }

    fn skip(&self, at_ms: u64, fault: &Fault, reason: &str) -> Applied {
        self.record(at_ms, format!("{}: {reason}, skipped", kind_name(fault)));
        Applied::Nothing
    }

    fn apply_cut(&mut self, at_ms: u64, description: String, links: BTreeSet<(NodeRef, NodeRef)>) -> Applied {
        for (from, to) in &links {
            let count = self.clogged.entry((from.clone(), to.clone())).or_insert(0);
            if *count == 0 {
                self.world.clog(from, to);
            }
            *count += 1;
        }
        self.record(at_ms, &description);
        Applied::Clogs { description, links }
    }

    fn apply_pause(&mut self, at_ms: u64, node: NodeRef) -> Applied {
        let count = self.paused.entry(node.clone()).or_insert(0);
        if *count == 0 {
            self.world.pause(&node);
        }
        *count += 1;
        self.record(at_ms, format!("pause {node}"));
        Applied::Pause(node)
    }

    fn apply_corruption(&mut self, at_ms: u64, member: u64) -> Applied {
        let randomness = madsim::rand::thread_rng().gen::<u64>();
        let what = self
            .world
            .corrupt_store_record(member, randomness)
            .unwrap_or_else(|| "no synced record to corrupt".to_string());
        self.record(at_ms, format!("corrupt-record store-{member}: {what}"));
        Applied::Corrupt(member)
    }

    fn arm(
        &mut self,
        at_ms: u64,
        event_idx: usize,
        member: u64,
        failpoint: Failpoint,
        restart_after_ms: u64,
        passes: u32,
    ) -> Applied {
        if !self.arm_one(event_idx, member, failpoint, passes) {
            let reason = format!("store-{member} does not exist");
            return self.skip(
                at_ms,
                &Fault::CrashAtFailpoint { member: Target::StoreMember(member), failpoint, restart_after_ms, passes },
                &reason,
            );
        }
        self.armed.insert(event_idx);
        let after = if passes > 0 { format!(" after {passes} passes") } else { String::new() };
        self.record(
            at_ms,
            format!("arm failpoint {failpoint} on store-{member}{after} (restart {restart_after_ms}ms after)"),
        );
        Applied::Failpoint { member, failpoint, restart_after_ms }
    }

    /// Arms `failpoint` on `member` for event `event_idx`; false if the member does not exist.
    fn arm_one(&self, event_idx: usize, member: u64, failpoint: Failpoint, passes: u32) -> bool {
        let reached_tx = self.reached_tx.clone();
        let on_reached = Box::new(move || {
            // The receiver lives as long as the nemesis; after it, nobody is waiting.
            let _ = reached_tx.unbounded_send((event_idx, member));
        });
        self.world.arm_failpoint(member, failpoint, passes, on_reached)
    }

    /// Arms step `step` of a leader chase on every store member but `victim` (the last
    /// one killed, still down).
    fn arm_chase_step(
        &mut self,
        at_ms: u64,
        event_idx: usize,
        steps: Vec<ChaseStep>,
        step: usize,
        victim: Option<u64>,
    ) -> Applied {
        let Some(&ChaseStep { failpoint, passes }) = steps.get(step) else {
            return Applied::Chase { steps, step, armed: Vec::new(), victim };
        };
        let mut members = self.world.store_members();
        members.sort_unstable();
        members.dedup();
        let armed: Vec<u64> = members
            .into_iter()
            .filter(|&member| Some(member) != victim && self.arm_one(event_idx, member, failpoint, passes))
            .collect();
        self.armed.insert(event_idx);
        let after = if passes > 0 { format!(" after {passes} passes") } else { String::new() };
        let n = steps.len();
        self.record(at_ms, format!("leader-chase step {}/{n}: arm {failpoint} on every live member{after}", step + 1));
        Applied::Chase { steps, step, armed, victim }
    }

    /// A member armed by event `event_idx` reached its failpoint and halted.
    pub fn failpoint_reached(&mut self, at_ms: u64, event_idx: usize, member: u64) {
        if matches!(self.applied.get(&event_idx), Some(Applied::Chase { .. })) {
            self.chase_reached(at_ms, event_idx, member);
        } else {
            self.crash_at_failpoint(at_ms, event_idx);
        }
    }

    /// The member of a `crash-at-failpoint` reached it: crash it now (it loses nothing it
    /// fsynced) and restart it after the event's delay.
    fn crash_at_failpoint(&mut self, at_ms: u64, event_idx: usize) {
        if !self.armed.remove(&event_idx) {
            return;
        }
        let Some(Applied::Failpoint { member, failpoint, restart_after_ms }) = self.applied.remove(&event_idx) else {
            unreachable!("an armed event is applied as a failpoint");
        };
        let down = self.hold_down_at_failpoint(member);
        self.record(at_ms, format!("store-{member} reached failpoint {failpoint}: crash"));
        let restart_at_ms = at_ms + restart_after_ms;
        self.applied.insert(event_idx, Applied::FailpointCrash { down, restart_at_ms });
    }

    /// Counts `member`, halted at a failpoint, as crashed, and crashes it unless another
    /// fault already holds it down; [`Nemesis::heal_crash`] undoes it.
    fn hold_down_at_failpoint(&mut self, member: u64) -> Down {
        let down = Down::StoreMember(member);
        let count = self.crashed.entry(down.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.world.crash_store_member(member, None);
        }
        down
    }

    /// `member` reached the step a leader chase armed: crash it, restart the previous
    /// victim, arm the next step on the others. A member that reached a step already
    /// taken by another in the same instant halted all the same: it is crashed and
    /// restarted at once.
    fn chase_reached(&mut self, at_ms: u64, event_idx: usize, member: u64) {
        let Some(Applied::Chase { steps, step, armed, victim }) = self.applied.remove(&event_idx) else {
            unreachable!("checked by the caller");
        };
        if !armed.contains(&member) {
            self.world.crash_store_member(member, None);
            self.world.restart_store_member(member);
            let late = "after another member took the step: crash and restart";
            self.record(at_ms, format!("leader-chase: store-{member} reached its failpoint {late}"));
            self.applied.insert(event_idx, Applied::Chase { steps, step, armed, victim });
            return;
        }
        let failpoint = steps[step].failpoint;
        for &other in armed.iter().filter(|&&other| other != member) {
            self.world.disarm_failpoint(other, failpoint);
        }
        self.armed.remove(&event_idx);
        self.hold_down_at_failpoint(member);
        let n = steps.len();
        self.record(at_ms, format!("leader-chase step {}/{n}: store-{member} reached {failpoint}: crash", step + 1));
        if let Some(previous) = victim {
            self.heal_crash(at_ms, Down::StoreMember(previous));
        }
        let applied = self.arm_chase_step(at_ms, event_idx, steps, step + 1, Some(member));
        self.applied.insert(event_idx, applied);
    }

    /// Drains failpoints reached since the last call (for drivers other than [`run`],
    /// which waits on them itself).
    pub fn poll_failpoints(&mut self, at_ms: u64) {
        while let Ok((event_idx, member)) = self.reached.try_recv() {
            self.failpoint_reached(at_ms, event_idx, member);
        }
    }

    /// When the next restart after a failpoint crash is due.
    pub fn next_restart_ms(&self) -> Option<u64> {
        self.applied
            .values()
            .filter_map(|applied| match applied {
                Applied::FailpointCrash { restart_at_ms, .. } => Some(*restart_at_ms),
                _ => None,
            })
            .min()
    }

    /// Restarts every member crashed at a failpoint whose restart is due at `at_ms`.
    pub fn restart_due(&mut self, at_ms: u64) {
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
    pub fn disarm(&mut self, at_ms: u64, event_idx: usize) {
        if !self.armed.remove(&event_idx) {
            return;
        }
        if let Some(Applied::Failpoint { member, failpoint, .. }) = self.applied.remove(&event_idx) {
            self.world.disarm_failpoint(member, failpoint);
            self.record(at_ms, format!("disarm failpoint {failpoint} on store-{member}: not reached"));
        }
    }

    /// Heals event `event_idx` (a no-op if it was never applied or is already healed).
    pub fn heal(&mut self, at_ms: u64, event_idx: usize) {
        self.poll_failpoints(at_ms);
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
            Applied::Chase { steps, step, armed, victim } => {
                self.armed.remove(&event_idx);
                if let Some(&ChaseStep { failpoint, .. }) = steps.get(step) {
                    for &member in &armed {
                        self.world.disarm_failpoint(member, failpoint);
                    }
                }
                let reached = format!("{step} of {} steps reached", steps.len());
                self.record(at_ms, format!("heal leader-chase: {reached}"));
                if let Some(victim) = victim {
                    self.heal_crash(at_ms, Down::StoreMember(victim));
                }
            }
            Applied::Clogs { description, links } => {
                for link in &links {
                    let count = self.clogged.get_mut(link).expect("an applied link is counted");
                    assert!(*count >= 1);
                    *count -= 1;
                    if *count == 0 {
                        self.clogged.remove(link);
                        self.world.unclog(&link.0, &link.1);
                    }
                }
                self.record(at_ms, format!("heal {description}"));
            }
            Applied::NetworkConditions => {
                let loss = self.packet_loss.remove(&event_idx);
                let latency = self.latency.remove(&event_idx);
                self.apply_network_conditions();
                match (loss, latency) {
                    (Some(rate), _) => self.record(at_ms, format!("heal packet-loss {rate}")),
                    (_, Some((min_ms, max_ms))) => {
                        self.record(at_ms, format!("heal latency-spike {min_ms}..={max_ms}ms"))
                    }
                    (None, None) => unreachable!("network conditions are tracked by event"),
                }
            }
            Applied::Crash(down) => self.heal_crash(at_ms, down),
            Applied::PowerLoss(downs) => {
                self.record(at_ms, "power restored");
                for down in downs {
                    self.heal_crash(at_ms, down);
                }
            }
            Applied::Pause(node) => {
                let count = self.paused.get_mut(&node).expect("a pause is counted");
                *count -= 1;
                if *count == 0 {
                    self.paused.remove(&node);
                    self.world.resume(&node);
                    self.record(at_ms, format!("resume {node}"));
                } else {
                    let still = "still held by another pause";
                    self.record(at_ms, format!("heal pause of {node}: {still}"));
                }
            }
            Applied::ClockSkew(node) => self.heal_clock_skew(at_ms, event_idx, node),
            Applied::Corrupt(member) => {
                // Recovery must now read the corrupted WAL. A member held down by a crash
                // reads it when that crash heals.
                if self.crashed.contains_key(&Down::StoreMember(member)) {
                    let already = "already crashed";
                    self.record(at_ms, format!("heal corrupt-record store-{member}: {already}"));
                } else {
                    self.world.crash_store_member(member, None);
                    self.world.restart_store_member(member);
                    let what = "on its corrupted disk";
                    self.record(at_ms, format!("crash and restart store-{member} {what}"));
                }
            }
            Applied::DiskLoss(member) => {
                // The replacement is a new process on a new disk, whatever else held the
                // old one down.
                self.release_disk_loss(member);
                match self.world.replace_member(member) {
                    Ok(what) => self.record(at_ms, format!("operator: replace store-{member}: {what}")),
                    Err(why) => self.record(at_ms, format!("operator: replace store-{member} failed: {why}")),
                }
            }
            Applied::StoreLoss(members) => {
                for member in members {
                    self.release_disk_loss(member);
                }
                match self.world.restore_from_backup() {
                    Ok(what) => self.record(at_ms, format!("operator: restore: {what}")),
                    Err(why) => self.record(at_ms, format!("operator: restore impossible, total loss: {why}")),
                }
            }
            Applied::Nothing => {}
        }
    }

    fn heal_crash(&mut self, at_ms: u64, down: Down) {
        let count = self.crashed.get_mut(&down).expect("a crash is counted");
        *count -= 1;
        if *count > 0 {
            let still = "still held down by another crash";
            self.record(at_ms, format!("heal crash of {down}: {still}"));
            return;
        }
        self.crashed.remove(&down);
        match &down {
            Down::StoreMember(member) => self.world.restart_store_member(*member),
            Down::Node(node) => self.world.restart(node),
        }
        self.record(at_ms, format!("restart {down}"));
    }

    /// Back to the latest skew still applied to the node, or to its true clock.
    fn heal_clock_skew(&mut self, at_ms: u64, event_idx: usize, node: NodeRef) {
        let skews = self.skews.get_mut(&node).expect("a skew is tracked");
        skews.remove(&event_idx);
        match skews.last_key_value() {
            Some((_, &(offset_ms, drift_ms_per_s))) => {
                self.world.set_clock_skew(&node, offset_ms, drift_ms_per_s);
                let skew = format!("offset {offset_ms}ms drift {drift_ms_per_s}ms/s");
                self.record(at_ms, format!("heal clock-skew {node}: back to {skew} of an overlapping skew"));
            }
            None => {
                self.skews.remove(&node);
                self.world.reset_clock(&node);
                self.record(at_ms, format!("reset clock {node}"));
            }
        }
    }

    /// Heals every fault still applied, in event order, and records "all faults healed".
    /// Afterwards no link is clogged, no process paused or crashed, the network and every
    /// clock are back to normal.
    pub fn heal_all(&mut self, at_ms: u64) {
        let remaining: Vec<usize> = self.applied.keys().copied().collect();
        for event_idx in remaining {
            self.heal(at_ms, event_idx);
        }
        assert!(self.clogged.is_empty(), "every clogged link is owned by an event");
        assert!(self.paused.is_empty() && self.crashed.is_empty());
        assert!(self.skews.is_empty());
        assert!(self.armed.is_empty(), "every armed failpoint is disarmed by its heal");
        // Unconditionally, so that the liveness phase starts from a clean network even if
        // the world's conditions were touched by something other than this nemesis.
        self.world.reset_network_conditions();
        self.record(at_ms, "all faults healed");
    }

    fn apply_network_conditions(&self) {
        self.world.reset_network_conditions();
        if let Some(rate) = self.packet_loss.values().copied().reduce(f64::max) {
            self.world.set_packet_loss(rate);
        }
        if let Some((min_ms, max_ms)) =
            self.latency.values().copied().reduce(|(min_a, max_a), (min_b, max_b)| (min_a.max(min_b), max_a.max(max_b)))
        {
            self.world.set_latency_ms(min_ms, max_ms);
        }
    }

    fn crash(&mut self, at_ms: u64, fault: &Fault, target: &Target, tear: Option<Option<u64>>) -> Applied {
        let down = if target.is_store() {
            match self.resolve_member(target) {
                Ok(member) => Down::StoreMember(member),
                Err(reason) => return self.skip(at_ms, fault, &reason),
            }
        } else {
            match self.world.node_of(target) {
                Some(node) => Down::Node(node),
                None => return self.skip(at_ms, fault, &format!("{target} does not resolve")),
            }
        };
        let count = self.crashed.entry(down.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            self.record(at_ms, format!("{}: {down} already crashed", kind_name(fault)));
            return Applied::Crash(down);
        }
        match &down {
            Down::StoreMember(member) => {
                let tear = tear.flatten();
                self.world.crash_store_member(*member, tear);
                let torn = if tear.is_some() { " tearing its last unsynced write" } else { "" };
                self.record(at_ms, format!("crash store-{member} (power loss){torn}"));
            }
            Down::Node(node) => {
                self.world.kill(node);
                self.record(at_ms, format!("crash {node}"));
            }
        }
        Applied::Crash(down)
    }

    /// Crashes every store member at the same instant, each losing its unsynced writes
    /// (and, with `tear`, tearing its last one with its own randomness). Members already
    /// held down by another crash stay down; each is counted so that the last heal
    /// restarts it.
    fn power_loss(&mut self, at_ms: u64, tear: bool) -> Applied {
        let mut members = self.world.store_members();
        members.sort_unstable();
        members.dedup();
        self.record(at_ms, format!("power-loss of the store ({} members)", members.len()));
        let mut downs = Vec::with_capacity(members.len());
        for member in members {
            let down = Down::StoreMember(member);
            let count = self.crashed.entry(down.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                let tear = tear.then(|| madsim::rand::thread_rng().gen::<u64>());
                self.world.crash_store_member(member, tear);
                let torn = if tear.is_some() { " tearing its last unsynced write" } else { "" };
                self.record(at_ms, format!("crash store-{member} (power loss){torn}"));
            } else {
                self.record(at_ms, format!("power-loss: {down} already crashed"));
            }
            downs.push(down);
        }
        Applied::PowerLoss(downs)
    }

    /// The member id of a store target (`store-leader` resolved now).
    fn resolve_member(&self, target: &Target) -> Result<u64, String> {
        match target {
            Target::StoreMember(member) => Ok(*member),
            Target::StoreLeader => self.world.store_leader().ok_or_else(|| "no leader known".to_string()),
            other => Err(format!("{other} is not a store member")),
        }
    }

    fn node(&self, target: &Target) -> Result<NodeRef, String> {
        self.world.node_of(target).ok_or_else(|| format!("{target} does not resolve"))
    }

    fn member_node(&self, member: u64) -> Result<NodeRef, String> {
        self.node(&Target::StoreMember(member))
    }

    /// The directed links a network fault clogs, and its description for the history.
    fn network_cut(&self, fault: &Fault) -> Result<(String, BTreeSet<(NodeRef, NodeRef)>), String> {
        match fault {
            Fault::Partition { groups } => {
                let groups = self.resolve_groups(groups)?;
                let description = format!("partition {}", describe_groups(&groups));
                Ok((description, complete_cut(&groups)))
            }
            Fault::IsolateStoreLeader => {
                let leader = self.world.store_leader().ok_or_else(|| "no leader to isolate".to_string())?;
                let node = self.member_node(leader)?;
                Ok((format!("isolate store leader {node}"), self.isolate(&node)))
            }
            Fault::IsolateApiServer { apiserver } => {
                let node = self.node(&Target::ApiServer(*apiserver))?;
                Ok((format!("isolate apiserver {node}"), self.isolate(&node)))
            }
            Fault::MajoritiesRing | Fault::Bridge => self.grudge_cut(fault),
            Fault::OneWay { from, to } => {
                let (from, to) = (self.resolve_target(from)?, self.resolve_target(to)?);
                if from == to {
                    return Err(format!("{from} resolves to both ends"));
                }
                let description = format!("one-way {from} -> {to} dropped");
                Ok((description, BTreeSet::from([(from, to)])))
            }
            Fault::ClogLink { a, b } => {
                let (a, b) = (self.resolve_target(a)?, self.resolve_target(b)?);
                if a == b {
                    return Err(format!("{a} resolves to both ends"));
                }
                let description = format!("clog-link {a} <-> {b}");
                Ok((description, BTreeSet::from([(a.clone(), b.clone()), (b, a)])))
            }
            _ => unreachable!("not a network cut: {fault:?}"),
        }
    }

    /// The links of Jepsen's ring and bridge grudges over the store members, described
    /// by what each member still hears.
    fn grudge_cut(&self, fault: &Fault) -> Result<(String, BTreeSet<(NodeRef, NodeRef)>), String> {
        let mut members = self.world.store_members();
        members.sort_unstable();
        members.dedup();
        let grudge = match fault {
            Fault::MajoritiesRing => majorities_ring(&members),
            Fault::Bridge => bridge(&members),
            _ => unreachable!("not a grudge over store members: {fault:?}"),
        };
        let mut links = BTreeSet::new();
        let mut views = Vec::new();
        for member in &members {
            let receiver = self.member_node(*member)?;
            let dropped = grudge.get(member).cloned().unwrap_or_default();
            let mut hears = Vec::new();
            for other in &members {
                let sender = self.member_node(*other)?;
                if dropped.contains(other) {
                    links.insert((sender, receiver.clone()));
                } else {
                    hears.push(sender);
                }
            }
            views.push(format!("{receiver} hears {{{}}}", hears.join(", ")));
        }
        Ok((format!("{}: {}", kind_name(fault), views.join("; ")), links))
    }

    /// Resolves a target to a node, `store-leader` included.
    fn resolve_target(&self, target: &Target) -> Result<NodeRef, String> {
        match target {
            Target::StoreLeader => self.member_node(self.resolve_member(target)?),
            other => self.node(other),
        }
    }

    /// Resolves partition groups. The leader, resolved now, is removed from any other
    /// group that names it concretely; a target that does not resolve is an error.
    fn resolve_groups(&self, groups: &[Vec<Target>]) -> Result<Vec<Vec<NodeRef>>, String> {
        let leader_group = groups.iter().position(|group| group.contains(&Target::StoreLeader));
        let leader_node = match leader_group {
            Some(_) => Some(self.resolve_target(&Target::StoreLeader)?),
            None => None,
        };
        let mut resolved = Vec::with_capacity(groups.len());
        for (group_idx, group) in groups.iter().enumerate() {
            let mut nodes = Vec::with_capacity(group.len());
            for target in group {
                let node = self.resolve_target(target)?;
                let leader_elsewhere = leader_node.as_ref() == Some(&node) && leader_group != Some(group_idx);
                if !leader_elsewhere && !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
            resolved.push(nodes);
        }
        Ok(resolved)
    }

    /// Links cutting `node` off from every other node, both directions.
    fn isolate(&self, node: &NodeRef) -> BTreeSet<(NodeRef, NodeRef)> {
        let others: Vec<NodeRef> = self.world.all_nodes().into_iter().filter(|other| other != node).collect();
        complete_cut(&[vec![node.clone()], others])
    }
}

/// Jepsen's `complete-grudge`: nodes in different groups cannot talk, both directions.
fn complete_cut(groups: &[Vec<NodeRef>]) -> BTreeSet<(NodeRef, NodeRef)> {
    let mut links = BTreeSet::new();
    for (group_idx, group) in groups.iter().enumerate() {
        for other_group in &groups[group_idx + 1..] {
            for a in group {
                for b in other_group {
                    if a != b {
                        links.insert((a.clone(), b.clone()));
                        links.insert((b.clone(), a.clone()));
                    }
                }
            }
        }
    }
    links
}

fn describe_groups(groups: &[Vec<NodeRef>]) -> String {
    groups.iter().map(|group| format!("{{{}}}", group.join(", "))).collect::<Vec<_>>().join(" | ")
}

/// A Jepsen grudge: for each node, the nodes whose messages it drops.
pub type Grudge = BTreeMap<u64, BTreeSet<u64>>;

/// Jepsen's `majorities-ring` (`majorities-ring-perfect` in jepsen.nemesis): lay the
/// members on a ring, take the `n` windows of `m = n/2 + 1` consecutive members, and let
/// the member in the middle of each window (index `m/2`) hear only that window. Every
/// member then sees a majority, itself included, and no two see the same majority.
///
/// Differences from Jepsen, both forced by a plan being data that replays exactly: the
/// ring is in member-id order rather than shuffled (Raft members are symmetric up to
/// relabelling; who leads changes over time anyway), and clusters above 5 members use
/// the same windows instead of Jepsen's stochastic graph, which still gives each member
/// its own majority.
///
/// With 3 members (`m = 2`) the ring is one-way: 1 hears 3, 2 hears 1, 3 hears 2, so the
/// dropped links are 2→1, 3→2 and 1→3. With 5, each member hears exactly its two ring
/// neighbours and the cut is symmetric.
pub fn majorities_ring(members: &[u64]) -> Grudge {
    let n = members.len();
    let majority = n / 2 + 1;
    let mut grudge = Grudge::new();
    for start in 0..n {
        let window: BTreeSet<u64> = (0..majority).map(|offset| members[(start + offset) % n]).collect();
        let center = members[(start + majority / 2) % n];
        let dropped = members.iter().copied().filter(|member| !window.contains(member)).collect();
        grudge.insert(center, dropped);
    }
    grudge
}

/// Jepsen's `bridge`: cut the members in two halves (the smaller first, as Jepsen's
/// `bisect` does) and keep the first member of the second half as a bridge that talks
/// to both: nobody drops the bridge and the bridge drops nobody. With 3 members, 1 and 3
/// cannot talk and 2 bridges them; with 5, {1, 2} and {4, 5} meet only through 3.
/// Members are in id order, not shuffled (see [`majorities_ring`]).
pub fn bridge(members: &[u64]) -> Grudge {
    let (first, second) = members.split_at(members.len() / 2);
    let Some(&bridge_member) = second.first() else {
        return Grudge::new();
    };
    let mut grudge = Grudge::new();
    for (side, other_side) in [(first, second), (second, first)] {
        for &member in side {
            if member == bridge_member {
                continue;
            }
            let dropped = other_side.iter().copied().filter(|&other| other != bridge_member).collect();
            grudge.insert(member, dropped);
        }
    }
    grudge
}
