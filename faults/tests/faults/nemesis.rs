//! The nemesis against a fake world that logs every call with its simulated time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use faults::{
    bridge, majorities_ring, run, ChaseStep, Failpoint, Fault, FaultEvent, FaultKind, FaultPlan, GenerateOptions,
    Grudge, Target, World,
};
use madsim::time::{Instant, TimeHandle};

/// A cluster of `members` store members, 2 apiservers, 2 controller-managers, a scheduler
/// and 3 kubelets. Every call is logged as `"<ms since start> <call>"`, and history records
/// as `"<ms> > <description>"`. It panics on calls a correct nemesis never makes: clogging a
/// clogged link, resuming a running process, restarting a live one.
struct FakeWorld {
    start: Instant,
    members: u64,
    leader: Mutex<Option<u64>>,
    log: Mutex<Vec<String>>,
    /// Randomness passed for tears and corruption, kept apart from the log.
    randomness: Mutex<Vec<u64>>,
    clogged: Mutex<BTreeSet<(String, String)>>,
    paused: Mutex<BTreeSet<String>>,
    killed: Mutex<BTreeSet<String>>,
    /// Armed failpoints and what to call when the test makes a member reach one.
    failpoints: Mutex<BTreeMap<(u64, Failpoint), OnReached>>,
}

type OnReached = Box<dyn FnOnce() + Send>;

impl FakeWorld {
    fn new(members: u64, leader: Option<u64>) -> Arc<Self> {
        Arc::new(FakeWorld {
            start: TimeHandle::current().now_instant(),
            members,
            leader: Mutex::new(leader),
            log: Mutex::new(Vec::new()),
            randomness: Mutex::new(Vec::new()),
            clogged: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            killed: Mutex::new(BTreeSet::new()),
            failpoints: Mutex::new(BTreeMap::new()),
        })
    }

    /// Store member `member` reaches `failpoint` now; returns whether it was armed.
    fn reach(&self, member: u64, failpoint: Failpoint) -> bool {
        let on_reached = self.failpoints.lock().unwrap().remove(&(member, failpoint));
        on_reached.map(|on_reached| on_reached()).is_some()
    }

    fn elapsed_ms(&self) -> u128 {
        (TimeHandle::current().now_instant() - self.start).as_millis()
    }

    fn log(&self, line: String) {
        let line = format!("{} {line}", self.elapsed_ms());
        self.log.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn clogged(&self) -> BTreeSet<(String, String)> {
        self.clogged.lock().unwrap().clone()
    }

    fn is_quiet(&self) -> bool {
        self.clogged.lock().unwrap().is_empty()
            && self.paused.lock().unwrap().is_empty()
            && self.killed.lock().unwrap().is_empty()
    }
}

impl World for FakeWorld {
    fn store_members(&self) -> Vec<u64> {
        (1..=self.members).collect()
    }
    fn store_leader(&self) -> Option<u64> {
        *self.leader.lock().unwrap()
    }
    fn node_of(&self, target: &Target) -> Option<String> {
        match *target {
            Target::StoreMember(member) if (1..=self.members).contains(&member) => Some(format!("store-{member}")),
            Target::StoreLeader => self.store_leader().map(|member| format!("store-{member}")),
            Target::ApiServer(idx) if idx < 2 => Some(format!("apiserver-{idx}")),
            Target::ControllerManager(idx) if idx < 2 => Some(format!("controller-manager-{idx}")),
            Target::Scheduler => Some("scheduler-0".to_string()),
            Target::Kubelet(idx) if idx < 3 => Some(format!("kubelet-{idx}")),
            _ => None,
        }
    }
    fn kill(&self, node: &String) {
        assert!(self.killed.lock().unwrap().insert(node.clone()), "{node} killed twice");
        self.log(format!("kill {node}"));
    }
    fn restart(&self, node: &String) {
        assert!(self.killed.lock().unwrap().remove(node), "{node} restarted alive");
        self.log(format!("restart {node}"));
    }
    fn pause(&self, node: &String) {
        assert!(self.paused.lock().unwrap().insert(node.clone()), "{node} paused twice");
        self.log(format!("pause {node}"));
    }
    fn resume(&self, node: &String) {
        assert!(self.paused.lock().unwrap().remove(node), "{node} resumed running");
        self.log(format!("resume {node}"));
    }
    fn crash_store_member(&self, member: u64, tear: Option<u64>) {
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().insert(node), "store-{member} crashed twice");
        self.randomness.lock().unwrap().extend(tear);
        let torn = if tear.is_some() { " torn" } else { "" };
        self.log(format!("crash-store-member {member}{torn}"));
    }
    fn restart_store_member(&self, member: u64) {
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().remove(&node), "store-{member} restarted alive");
        self.log(format!("restart-store-member {member}"));
    }
    fn corrupt_store_record(&self, member: u64, randomness: u64) -> Option<String> {
        self.randomness.lock().unwrap().push(randomness);
        self.log(format!("corrupt-store-record {member}"));
        Some(format!("WAL record 7 of store-{member}, 3 bits flipped"))
    }
    fn clog(&self, from: &String, to: &String) {
        let link = (from.clone(), to.clone());
        assert!(self.clogged.lock().unwrap().insert(link), "{from} -> {to} clogged twice");
        self.log(format!("clog {from} -> {to}"));
    }
    fn unclog(&self, from: &String, to: &String) {
        let link = (from.clone(), to.clone());
        assert!(self.clogged.lock().unwrap().remove(&link), "{from} -> {to} not clogged");
        self.log(format!("unclog {from} -> {to}"));
    }
    fn all_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = (1..=self.members).map(|m| format!("store-{m}")).collect();
        nodes.extend(
            [
                "apiserver-0",
                "apiserver-1",
                "controller-manager-0",
                "controller-manager-1",
                "scheduler-0",
                "kubelet-0",
                "kubelet-1",
                "kubelet-2",
            ]
            .map(String::from),
        );
        nodes
    }
    fn set_packet_loss(&self, rate: f64) {
        self.log(format!("packet-loss {rate}"));
    }
    fn set_latency_ms(&self, min_ms: u64, max_ms: u64) {
        self.log(format!("latency {min_ms}..={max_ms}"));
    }
    fn reset_network_conditions(&self) {
        self.log("reset-network".to_string());
    }
    fn set_clock_skew(&self, node: &String, offset_ms: i64, drift_ms_per_s: i64) {
        self.log(format!("skew {node} {offset_ms} {drift_ms_per_s}"));
    }
    fn reset_clock(&self, node: &String) {
        self.log(format!("reset-clock {node}"));
    }
    fn arm_failpoint(
        &self,
        member: u64,
        failpoint: Failpoint,
        passes: u32,
        on_reached: Box<dyn FnOnce() + Send>,
    ) -> bool {
        if !(1..=self.members).contains(&member) {
            return false;
        }
        let after = if passes > 0 { format!(" after {passes} passes") } else { String::new() };
        self.log(format!("arm {failpoint} store-{member}{after}"));
        self.failpoints.lock().unwrap().insert((member, failpoint), on_reached);
        true
    }
    fn disarm_failpoint(&self, member: u64, failpoint: Failpoint) -> bool {
        self.log(format!("disarm {failpoint} store-{member}"));
        self.failpoints.lock().unwrap().remove(&(member, failpoint)).is_some()
    }
    fn record(&self, description: String) {
        self.log(format!("> {description}"));
    }
    fn take_backup(&self, member: u64) -> Result<String, String> {
        self.log(format!("backup {member}"));
        Ok("taken".to_string())
    }
    fn corrupt_backup(&self, randomness: u64) -> Option<String> {
        self.randomness.lock().unwrap().push(randomness);
        self.log("corrupt-backup".to_string());
        Some("backup 1 corrupted".to_string())
    }
    fn lose_disk(&self, member: u64) {
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().insert(node), "store-{member} lost its disk while down");
        self.log(format!("lose-disk {member}"));
    }
    fn replace_member(&self, member: u64) -> Result<String, String> {
        assert!(self.killed.lock().unwrap().remove(&format!("store-{member}")), "store-{member} replaced alive");
        self.log(format!("replace {member}"));
        Ok("replaced".to_string())
    }
    fn restore_from_backup(&self) -> Result<String, String> {
        let mut killed = self.killed.lock().unwrap();
        let lost: Vec<String> = killed.iter().filter(|node| node.starts_with("store-")).cloned().collect();
        assert!(!lost.is_empty(), "restore with every member alive");
        for node in lost {
            killed.remove(&node);
        }
        drop(killed);
        self.log("restore".to_string());
        Err("no good backup".to_string())
    }
}

fn runtime() -> madsim::runtime::Runtime {
    madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default())
}

fn event(at_ms: u64, duration_ms: u64, fault: Fault) -> FaultEvent {
    FaultEvent { at_ms, duration_ms, fault }
}

fn plan(safety_phase_ms: u64, events: Vec<FaultEvent>) -> FaultPlan {
    FaultPlan { events, ..FaultPlan::empty(safety_phase_ms, 1_000) }
}

/// Runs `plan` against a fresh fake world with `members` store members and `leader`;
/// checks that `run` returns at the end of the safety phase with everything healed and
/// returns the world's log.
fn check_run(plan: &FaultPlan, members: u64, leader: Option<u64>) -> Vec<String> {
    runtime().block_on(async {
        let world = FakeWorld::new(members, leader);
        run(plan, world.clone()).await;
        assert_eq!(world.elapsed_ms(), u128::from(plan.safety_phase_ms));
        assert!(world.is_quiet(), "not healed: {:#?}", world.lines());
        world.lines()
    })
}

#[track_caller]
fn assert_lines(actual: &[String], expected: &[&str]) {
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    assert_eq!(actual, expected, "\nactual:\n{}", actual.join("\n"));
}

#[test]
fn events_are_applied_and_healed_at_their_times_in_order() {
    let plan = plan(
        5_000,
        vec![
            event(1_000, 2_000, Fault::Crash { target: Target::ApiServer(0) }),
            event(1_500, 500, Fault::Pause { target: Target::Kubelet(1) }),
            event(2_000, 1_000, Fault::PacketLoss { rate: 0.1 }),
        ],
    );
    let lines = check_run(&plan, 3, Some(1));
    assert_lines(
        &lines,
        &[
            "1000 kill apiserver-0",
            "1000 > t=1000ms crash apiserver-0",
            "1500 pause kubelet-1",
            "1500 > t=1500ms pause kubelet-1",
            // A heal due at the same instant as an apply runs first.
            "2000 resume kubelet-1",
            "2000 > t=2000ms resume kubelet-1",
            "2000 reset-network",
            "2000 packet-loss 0.1",
            "2000 > t=2000ms packet-loss 0.1",
            "3000 restart apiserver-0",
            "3000 > t=3000ms restart apiserver-0",
            "3000 reset-network",
            "3000 > t=3000ms heal packet-loss 0.1",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn overlapping_partitions_keep_shared_links_cut_until_both_heal() {
    let store = Target::StoreMember;
    let plan = plan(
        8_000,
        vec![
            event(1_000, 4_000, Fault::Partition { groups: vec![vec![store(1)], vec![store(2), store(3)]] }),
            event(3_000, 4_000, Fault::Partition { groups: vec![vec![store(1), store(2)], vec![store(3)]] }),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, Some(1)),
        &[
            "1000 clog store-1 -> store-2",
            "1000 clog store-1 -> store-3",
            "1000 clog store-2 -> store-1",
            "1000 clog store-3 -> store-1",
            "1000 > t=1000ms partition {store-1} | {store-2, store-3}",
            // store-1 <-> store-3 is already cut: only the new links are clogged.
            "3000 clog store-2 -> store-3",
            "3000 clog store-3 -> store-2",
            "3000 > t=3000ms partition {store-1, store-2} | {store-3}",
            // The first heal keeps store-1 <-> store-3, which the second still needs.
            "5000 unclog store-1 -> store-2",
            "5000 unclog store-2 -> store-1",
            "5000 > t=5000ms heal partition {store-1} | {store-2, store-3}",
            "7000 unclog store-1 -> store-3",
            "7000 unclog store-2 -> store-3",
            "7000 unclog store-3 -> store-1",
            "7000 unclog store-3 -> store-2",
            "7000 > t=7000ms heal partition {store-1, store-2} | {store-3}",
            "8000 reset-network",
            "8000 > t=8000ms all faults healed",
        ],
    );
}

/// Whether every member hears a majority (itself included) and no two hear the same one.
fn check_distinct_majorities(members: &[u64], grudge: &Grudge) {
    let mut views = BTreeSet::new();
    for member in members {
        let dropped = grudge.get(member).cloned().unwrap_or_default();
        assert!(!dropped.contains(member), "{member} drops itself");
        let hears: BTreeSet<u64> = members.iter().copied().filter(|m| !dropped.contains(m)).collect();
        assert!(hears.len() > members.len() / 2, "{member} hears only {hears:?}");
        assert!(views.insert(hears), "two members see the same majority");
    }
}

#[test]
fn majorities_ring_follows_jepsen_for_three_and_five_members() {
    // 3 members: a one-way ring; 1 hears 3, 2 hears 1, 3 hears 2.
    let three = majorities_ring(&[1, 2, 3]);
    assert_eq!(three, Grudge::from([(1, BTreeSet::from([2])), (2, BTreeSet::from([3])), (3, BTreeSet::from([1])),]));
    // 5 members: each hears exactly its two ring neighbours.
    let five = majorities_ring(&[1, 2, 3, 4, 5]);
    assert_eq!(
        five,
        Grudge::from([
            (1, BTreeSet::from([3, 4])),
            (2, BTreeSet::from([4, 5])),
            (3, BTreeSet::from([1, 5])),
            (4, BTreeSet::from([1, 2])),
            (5, BTreeSet::from([2, 3])),
        ])
    );
    for n in 3..=9 {
        let members: Vec<u64> = (1..=n).collect();
        check_distinct_majorities(&members, &majorities_ring(&members));
    }
}

#[test]
fn bridge_follows_jepsen_for_three_and_five_members() {
    assert_eq!(bridge(&[1, 2, 3]), Grudge::from([(1, BTreeSet::from([3])), (3, BTreeSet::from([1]))]));
    assert_eq!(
        bridge(&[1, 2, 3, 4, 5]),
        Grudge::from([
            (1, BTreeSet::from([4, 5])),
            (2, BTreeSet::from([4, 5])),
            (4, BTreeSet::from([1, 2])),
            (5, BTreeSet::from([1, 2])),
        ])
    );
}

/// The links a single network fault clogs while it is applied, and its history line.
fn clogs_of(fault: Fault, members: u64, leader: Option<u64>) -> (BTreeSet<(String, String)>, String) {
    runtime().block_on(async {
        let world = FakeWorld::new(members, leader);
        let mut nemesis = faults::Nemesis::new(world.clone());
        nemesis.apply(0, 0, &event(0, 1_000, fault));
        let clogged = world.clogged();
        let record = world.lines().last().unwrap().clone();
        nemesis.heal(1_000, 0);
        assert!(world.is_quiet());
        (clogged, record)
    })
}

fn links(pairs: &[(u64, u64)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(from, to)| (format!("store-{from}"), format!("store-{to}"))).collect()
}

#[test]
fn nemesis_clogs_the_majorities_ring() {
    let (clogged, record) = clogs_of(Fault::MajoritiesRing, 3, Some(1));
    assert_eq!(clogged, links(&[(2, 1), (3, 2), (1, 3)]));
    assert_eq!(
        record,
        "0 > t=0ms majorities-ring: store-1 hears {store-1, store-3}; \
         store-2 hears {store-1, store-2}; store-3 hears {store-2, store-3}"
    );
    let (clogged, _) = clogs_of(Fault::MajoritiesRing, 5, Some(1));
    assert_eq!(clogged, links(&[(3, 1), (4, 1), (4, 2), (5, 2), (1, 3), (5, 3), (1, 4), (2, 4), (2, 5), (3, 5),]));
    let (clogged, record) = clogs_of(Fault::Bridge, 5, None);
    assert_eq!(clogged, links(&[(4, 1), (5, 1), (4, 2), (5, 2), (1, 4), (2, 4), (1, 5), (2, 5)]));
    assert!(record.contains("store-3 hears {store-1, store-2, store-3, store-4, store-5}"));
}

#[test]
fn isolating_the_leader_resolves_it_when_applied() {
    let (clogged, record) = clogs_of(Fault::IsolateStoreLeader, 3, Some(2));
    assert_eq!(record, "0 > t=0ms isolate store leader store-2");
    assert_eq!(clogged.len(), 2 * 10, "both directions to the 10 other nodes");
    assert!(clogged.iter().all(|(from, to)| from == "store-2" || to == "store-2"));

    let (clogged, record) = clogs_of(Fault::IsolateStoreLeader, 3, None);
    assert!(clogged.is_empty());
    assert_eq!(record, "0 > t=0ms isolate-store-leader: no leader to isolate, skipped");

    // The leader is taken out of the group of its peers.
    let peers = (1..=3).map(Target::StoreMember).collect();
    let (clogged, record) = clogs_of(Fault::Partition { groups: vec![vec![Target::StoreLeader], peers] }, 3, Some(2));
    assert_eq!(record, "0 > t=0ms partition {store-2} | {store-1, store-3}");
    assert_eq!(clogged, links(&[(1, 2), (2, 1), (2, 3), (3, 2)]));
}

#[test]
fn one_way_and_clog_link_cut_the_right_directions() {
    let (clogged, record) = clogs_of(Fault::OneWay { from: Target::StoreLeader, to: Target::ApiServer(1) }, 3, Some(3));
    assert_eq!(record, "0 > t=0ms one-way store-3 -> apiserver-1 dropped");
    assert_eq!(clogged, BTreeSet::from([("store-3".into(), "apiserver-1".into())]));
    let (clogged, _) = clogs_of(Fault::ClogLink { a: Target::Kubelet(0), b: Target::Scheduler }, 3, None);
    assert_eq!(
        clogged,
        BTreeSet::from([("kubelet-0".into(), "scheduler-0".into()), ("scheduler-0".into(), "kubelet-0".into()),])
    );
    let (clogged, _) = clogs_of(Fault::IsolateApiServer { apiserver: 1 }, 3, None);
    assert_eq!(clogged.len(), 20);
}

#[test]
fn faults_left_at_the_end_of_the_safety_phase_are_healed_there() {
    // Not a valid plan (the pause outlives the phase, the clog starts after it): the
    // nemesis still ends the phase with everything healed.
    let plan = plan(
        4_000,
        vec![
            event(1_000, 10_000, Fault::Pause { target: Target::Kubelet(0) }),
            event(
                1_000,
                10_000,
                Fault::ClockSkew { target: Target::StoreMember(1), offset_ms: 500, drift_ms_per_s: 0 },
            ),
            event(6_000, 1_000, Fault::ClogLink { a: Target::Kubelet(0), b: Target::Scheduler }),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, None),
        &[
            "1000 pause kubelet-0",
            "1000 > t=1000ms pause kubelet-0",
            "1000 skew store-1 500 0",
            "1000 > t=1000ms clock-skew store-1 offset 500ms drift 0ms/s",
            "4000 resume kubelet-0",
            "4000 > t=4000ms resume kubelet-0",
            "4000 reset-clock store-1",
            "4000 > t=4000ms reset clock store-1",
            "4000 reset-network",
            "4000 > t=4000ms all faults healed",
        ],
    );
}

#[test]
fn overlapping_crashes_of_one_member_crash_once_and_restart_at_the_last_heal() {
    let plan = plan(
        6_000,
        vec![
            event(1_000, 3_000, Fault::Crash { target: Target::StoreMember(1) }),
            event(2_000, 1_000, Fault::CrashStoreMember { member: Target::StoreLeader, tear: true }),
            // Zero-length: killed and restarted at the same instant.
            event(5_000, 0, Fault::Crash { target: Target::Scheduler }),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, Some(1)),
        &[
            "1000 crash-store-member 1",
            "1000 > t=1000ms crash store-1 (power loss)",
            "2000 > t=2000ms crash-store-member: store-1 already crashed",
            "3000 > t=3000ms heal crash of store-1: still held down by another crash",
            "4000 restart-store-member 1",
            "4000 > t=4000ms restart store-1",
            "5000 kill scheduler-0",
            "5000 > t=5000ms crash scheduler-0",
            "5000 restart scheduler-0",
            "5000 > t=5000ms restart scheduler-0",
            "6000 reset-network",
            "6000 > t=6000ms all faults healed",
        ],
    );
}

#[test]
fn a_corrupted_member_is_crashed_and_restarted_onto_its_disk_at_heal() {
    let plan = plan(
        5_000,
        vec![
            event(1_000, 1_000, Fault::CorruptRecord { member: Target::StoreMember(2) }),
            event(3_000, 1_000, Fault::CrashStoreMember { member: Target::StoreMember(3), tear: true }),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, Some(1)),
        &[
            "1000 corrupt-store-record 2",
            "1000 > t=1000ms corrupt-record store-2: WAL record 7 of store-2, 3 bits flipped",
            "2000 crash-store-member 2",
            "2000 restart-store-member 2",
            "2000 > t=2000ms crash and restart store-2 on its corrupted disk",
            "3000 crash-store-member 3 torn",
            "3000 > t=3000ms crash store-3 (power loss) tearing its last unsynced write",
            "4000 restart-store-member 3",
            "4000 > t=4000ms restart store-3",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn overlapping_network_conditions_and_clock_skews_fall_back_to_the_remaining_one() {
    let skew = |offset_ms| Fault::ClockSkew { target: Target::Kubelet(2), offset_ms, drift_ms_per_s: 1 };
    let plan = plan(
        6_000,
        vec![
            event(1_000, 4_000, Fault::LatencySpike { min_ms: 10, max_ms: 200 }),
            event(2_000, 1_000, Fault::PacketLoss { rate: 0.3 }),
            event(1_000, 4_000, skew(100)),
            event(2_000, 1_000, skew(-200)),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, None),
        &[
            "1000 reset-network",
            "1000 latency 10..=200",
            "1000 > t=1000ms latency-spike 10..=200ms",
            "1000 skew kubelet-2 100 1",
            "1000 > t=1000ms clock-skew kubelet-2 offset 100ms drift 1ms/s",
            "2000 reset-network",
            "2000 packet-loss 0.3",
            "2000 latency 10..=200",
            "2000 > t=2000ms packet-loss 0.3",
            "2000 skew kubelet-2 -200 1",
            "2000 > t=2000ms clock-skew kubelet-2 offset -200ms drift 1ms/s",
            "3000 reset-network",
            "3000 latency 10..=200",
            "3000 > t=3000ms heal packet-loss 0.3",
            "3000 skew kubelet-2 100 1",
            "3000 > t=3000ms heal clock-skew kubelet-2: back to offset 100ms drift 1ms/s of an overlapping skew",
            "5000 reset-network",
            "5000 > t=5000ms heal latency-spike 10..=200ms",
            "5000 reset-clock kubelet-2",
            "5000 > t=5000ms reset clock kubelet-2",
            "6000 reset-network",
            "6000 > t=6000ms all faults healed",
        ],
    );
}

#[test]
fn a_generated_plan_runs_the_same_twice_and_heals_everything() {
    let topology = crate::small_topology();
    for seed in 0..20 {
        let plan = faults::generate(seed, &topology, &FaultKind::all(), &GenerateOptions::default());
        let once = || {
            runtime().block_on(async {
                let world = FakeWorld::new(3, Some(2));
                run(&plan, world.clone()).await;
                assert!(world.is_quiet());
                let randomness = world.randomness.lock().unwrap().clone();
                (world.lines(), randomness)
            })
        };
        let (lines, randomness) = once();
        assert_eq!((lines.clone(), randomness), once(), "seed {seed}");
        assert_eq!(lines.last().unwrap(), "30000 > t=30000ms all faults healed");
    }
}

#[test]
fn run_can_be_spawned_on_a_madsim_task() {
    fn assert_send<T: Send>(_: &T) {}
    runtime().block_on(async {
        let world = FakeWorld::new(3, None);
        let plan = plan(1_000, vec![]);
        let future = run(&plan, world.clone());
        assert_send(&future);
        future.await;
        assert_eq!(world.lines(), ["1000 reset-network", "1000 > t=1000ms all faults healed"]);
    });
}

#[test]
fn a_power_loss_crashes_every_store_member_at_once_and_restores_them_together() {
    let plan = plan(
        5_000,
        vec![
            event(1_000, 2_000, Fault::PowerLoss { tear: true }),
            // Power comes back before a member's own crash heals: it stays down until then.
            event(2_000, 2_000, Fault::Crash { target: Target::ApiServer(0) }),
        ],
    );
    assert_lines(
        &check_run(&plan, 3, Some(2)),
        &[
            "1000 > t=1000ms power-loss of the store (3 members)",
            "1000 crash-store-member 1 torn",
            "1000 > t=1000ms crash store-1 (power loss) tearing its last unsynced write",
            "1000 crash-store-member 2 torn",
            "1000 > t=1000ms crash store-2 (power loss) tearing its last unsynced write",
            "1000 crash-store-member 3 torn",
            "1000 > t=1000ms crash store-3 (power loss) tearing its last unsynced write",
            "2000 kill apiserver-0",
            "2000 > t=2000ms crash apiserver-0",
            "3000 > t=3000ms power restored",
            "3000 restart-store-member 1",
            "3000 > t=3000ms restart store-1",
            "3000 restart-store-member 2",
            "3000 > t=3000ms restart store-2",
            "3000 restart-store-member 3",
            "3000 > t=3000ms restart store-3",
            "4000 restart apiserver-0",
            "4000 > t=4000ms restart apiserver-0",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn a_power_loss_over_a_crashed_member_restarts_it_only_at_the_last_heal() {
    // Not survivable by the generator's rules (the overlap), but a hand-written plan may
    // do it and the nemesis must still count each member's crashes.
    let plan = plan(
        5_000,
        vec![
            event(1_000, 3_000, Fault::CrashStoreMember { member: Target::StoreMember(1), tear: false }),
            event(2_000, 1_000, Fault::PowerLoss { tear: false }),
        ],
    );
    assert_lines(
        &check_run(&plan, 2, Some(1)),
        &[
            "1000 crash-store-member 1",
            "1000 > t=1000ms crash store-1 (power loss)",
            "2000 > t=2000ms power-loss of the store (2 members)",
            "2000 > t=2000ms power-loss: store-1 already crashed",
            "2000 crash-store-member 2",
            "2000 > t=2000ms crash store-2 (power loss)",
            "3000 > t=3000ms power restored",
            "3000 > t=3000ms heal crash of store-1: still held down by another crash",
            "3000 restart-store-member 2",
            "3000 > t=3000ms restart store-2",
            "4000 restart-store-member 1",
            "4000 > t=4000ms restart store-1",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

/// Runs `plan` on a fake world while a task makes members reach failpoints at the given
/// times (ms); returns the world's log.
fn run_reaching(
    plan: &FaultPlan,
    members: u64,
    leader: Option<u64>,
    reaches: Vec<(u64, u64, Failpoint)>,
) -> Vec<String> {
    runtime().block_on(async {
        let world = FakeWorld::new(members, leader);
        let reacher = world.clone();
        let _reacher = madsim::task::spawn(async move {
            for (at_ms, member, failpoint) in reaches {
                let at = reacher.start + std::time::Duration::from_millis(at_ms);
                madsim::time::sleep_until(at).await;
                let armed = reacher.reach(member, failpoint);
                reacher.log(format!("store-{member} reaches {failpoint} (armed: {armed})"));
            }
        });
        run(plan, world.clone()).await;
        assert!(world.is_quiet(), "not healed: {:#?}", world.lines());
        assert!(world.failpoints.lock().unwrap().is_empty(), "a failpoint left armed");
        world.lines()
    })
}

#[test]
fn a_member_reaching_its_armed_failpoint_is_crashed_then_restarted_after_the_delay() {
    let fault = |member, failpoint, restart_after_ms| Fault::CrashAtFailpoint {
        member,
        failpoint,
        restart_after_ms,
        passes: 0,
    };
    let plan = plan(
        5_000,
        vec![
            event(1_000, 2_000, fault(Target::StoreMember(2), Failpoint::RaftAfterVote, 500)),
            // `store-leader` resolves when armed; reaching it restarts at once.
            event(1_000, 3_000, fault(Target::StoreLeader, Failpoint::RaftBeforeLeaderSend, 0)),
        ],
    );
    let reaches = vec![
        // Not armed on store-1 (not the leader): nothing happens.
        (1_100, 1, Failpoint::RaftAfterVote),
        (1_200, 2, Failpoint::RaftAfterVote),
        (1_300, 3, Failpoint::RaftBeforeLeaderSend),
        // Already fired: a second reach is not armed.
        (1_900, 2, Failpoint::RaftAfterVote),
    ];
    let lines = run_reaching(&plan, 3, Some(3), reaches);
    assert_lines(
        &lines,
        &[
            "1000 arm raft-after-vote store-2",
            "1000 > t=1000ms arm failpoint raft-after-vote on store-2 (restart 500ms after)",
            "1000 arm raft-before-leader-send store-3",
            "1000 > t=1000ms arm failpoint raft-before-leader-send on store-3 (restart 0ms after)",
            "1100 store-1 reaches raft-after-vote (armed: false)",
            "1200 store-2 reaches raft-after-vote (armed: true)",
            "1200 crash-store-member 2",
            "1200 > t=1200ms store-2 reached failpoint raft-after-vote: crash",
            "1300 store-3 reaches raft-before-leader-send (armed: true)",
            "1300 crash-store-member 3",
            "1300 > t=1300ms store-3 reached failpoint raft-before-leader-send: crash",
            "1300 restart-store-member 3",
            "1300 > t=1300ms restart store-3",
            "1700 restart-store-member 2",
            "1700 > t=1700ms restart store-2",
            "1900 store-2 reaches raft-after-vote (armed: false)",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn a_failpoint_not_reached_is_disarmed_its_restart_delay_before_the_heal() {
    let fault = Fault::CrashAtFailpoint {
        member: Target::StoreMember(1),
        failpoint: Failpoint::RaftAfterSave,
        restart_after_ms: 400,
        passes: 0,
    };
    let plan = plan(3_000, vec![event(1_000, 1_000, fault)]);
    // Reached after the disarm (at 1600 ms): too late to crash and be back by 2000 ms.
    let lines = run_reaching(&plan, 3, None, vec![(1_700, 1, Failpoint::RaftAfterSave)]);
    assert_lines(
        &lines,
        &[
            "1000 arm raft-after-save store-1",
            "1000 > t=1000ms arm failpoint raft-after-save on store-1 (restart 400ms after)",
            "1600 disarm raft-after-save store-1",
            "1600 > t=1600ms disarm failpoint raft-after-save on store-1: not reached",
            "1700 store-1 reaches raft-after-save (armed: false)",
            "3000 reset-network",
            "3000 > t=3000ms all faults healed",
        ],
    );
}

#[test]
fn a_lost_disk_is_replaced_by_the_operator_when_the_fault_heals() {
    let plan = plan(
        5_000,
        vec![
            event(500, 0, Fault::Backup { member: Target::StoreLeader }),
            event(1_000, 2_000, Fault::DiskLoss { member: Target::StoreMember(2) }),
            // A crash of the same member meanwhile must not restart it on its empty disk.
            event(1_500, 500, Fault::Crash { target: Target::StoreMember(2) }),
            event(4_000, 0, Fault::SnapshotCorruption),
        ],
    );
    let lines = check_run(&plan, 3, Some(1));
    assert_lines(
        &lines,
        &[
            "500 backup 1",
            "500 > t=500ms operator: snapshot save from store-1: taken",
            "1000 > t=1000ms disk-loss store-2: disks wiped, members killed",
            "1000 lose-disk 2",
            "1500 > t=1500ms crash: store-2 already crashed",
            "2000 > t=2000ms heal crash of store-2: still held down by another crash",
            "3000 replace 2",
            "3000 > t=3000ms operator: replace store-2: replaced",
            "4000 corrupt-backup",
            "4000 > t=4000ms snapshot-corruption: backup 1 corrupted",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn a_majority_disk_loss_wipes_a_majority_and_heals_by_restore() {
    let plan = plan(5_000, vec![event(1_000, 2_000, Fault::DiskLossMajority)]);
    let lines = check_run(&plan, 5, Some(1));
    let lost: Vec<&String> = lines.iter().filter(|line| line.contains("lose-disk")).collect();
    assert_eq!(lost.len(), 3, "{lines:#?}");
    assert!(lines.contains(&"3000 restore".to_string()), "{lines:#?}");
    assert!(lines.contains(&"3000 > t=3000ms operator: restore impossible, total loss: no good backup".to_string()));
    let all = check_run(&plan_with(Fault::DiskLossAll), 3, Some(1));
    assert_eq!(all.iter().filter(|line| line.contains("lose-disk")).count(), 3, "{all:#?}");
}

fn plan_with(fault: Fault) -> FaultPlan {
    plan(5_000, vec![event(1_000, 2_000, fault)])
}

fn chase(steps: &[(Failpoint, u32)]) -> Fault {
    Fault::LeaderChase { steps: steps.iter().map(|&(failpoint, passes)| ChaseStep { failpoint, passes }).collect() }
}

#[test]
fn a_leader_chase_kills_whoever_reaches_each_step_first_and_restarts_the_previous_victim() {
    use Failpoint::{RaftBeforeLeaderSend as Send, RaftLeaderAfterApply as Apply};
    let plan = plan(5_000, vec![event(1_000, 3_000, chase(&[(Send, 0), (Send, 0), (Apply, 1)]))]);
    let reaches = vec![
        (1_100, 1, Send),
        // Step 2 is armed on store-2 and store-3 only: store-1 is down.
        (1_500, 3, Send),
        (2_000, 1, Apply),
        // Every step fired: nothing is armed any more.
        (2_200, 2, Apply),
    ];
    let lines = run_reaching(&plan, 3, Some(1), reaches);
    assert_lines(
        &lines,
        &[
            "1000 > t=1000ms leader-chase: 3 rolling kills of whoever leads",
            "1000 arm raft-before-leader-send store-1",
            "1000 arm raft-before-leader-send store-2",
            "1000 arm raft-before-leader-send store-3",
            "1000 > t=1000ms leader-chase step 1/3: arm raft-before-leader-send on every live member",
            "1100 store-1 reaches raft-before-leader-send (armed: true)",
            "1100 disarm raft-before-leader-send store-2",
            "1100 disarm raft-before-leader-send store-3",
            "1100 crash-store-member 1",
            "1100 > t=1100ms leader-chase step 1/3: store-1 reached raft-before-leader-send: crash",
            "1100 arm raft-before-leader-send store-2",
            "1100 arm raft-before-leader-send store-3",
            "1100 > t=1100ms leader-chase step 2/3: arm raft-before-leader-send on every live member",
            "1500 store-3 reaches raft-before-leader-send (armed: true)",
            "1500 disarm raft-before-leader-send store-2",
            "1500 crash-store-member 3",
            "1500 > t=1500ms leader-chase step 2/3: store-3 reached raft-before-leader-send: crash",
            "1500 restart-store-member 1",
            "1500 > t=1500ms restart store-1",
            "1500 arm raft-leader-after-apply store-1 after 1 passes",
            "1500 arm raft-leader-after-apply store-2 after 1 passes",
            "1500 > t=1500ms leader-chase step 3/3: arm raft-leader-after-apply on every live member after 1 passes",
            "2000 store-1 reaches raft-leader-after-apply (armed: true)",
            "2000 disarm raft-leader-after-apply store-2",
            "2000 crash-store-member 1",
            "2000 > t=2000ms leader-chase step 3/3: store-1 reached raft-leader-after-apply: crash",
            "2000 restart-store-member 3",
            "2000 > t=2000ms restart store-3",
            "2200 store-2 reaches raft-leader-after-apply (armed: false)",
            "4000 > t=4000ms heal leader-chase: 3 of 3 steps reached",
            "4000 restart-store-member 1",
            "4000 > t=4000ms restart store-1",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn a_leader_chase_that_heals_midway_disarms_its_step_and_restarts_its_victim() {
    let plan = plan(3_000, vec![event(1_000, 1_000, chase(&[(Failpoint::RaftBeforeLeaderSend, 0); 2]))]);
    let lines = run_reaching(&plan, 3, Some(2), vec![(1_200, 2, Failpoint::RaftBeforeLeaderSend)]);
    assert_lines(
        &lines,
        &[
            "1000 > t=1000ms leader-chase: 2 rolling kills of whoever leads",
            "1000 arm raft-before-leader-send store-1",
            "1000 arm raft-before-leader-send store-2",
            "1000 arm raft-before-leader-send store-3",
            "1000 > t=1000ms leader-chase step 1/2: arm raft-before-leader-send on every live member",
            "1200 store-2 reaches raft-before-leader-send (armed: true)",
            "1200 disarm raft-before-leader-send store-1",
            "1200 disarm raft-before-leader-send store-3",
            "1200 crash-store-member 2",
            "1200 > t=1200ms leader-chase step 1/2: store-2 reached raft-before-leader-send: crash",
            "1200 arm raft-before-leader-send store-1",
            "1200 arm raft-before-leader-send store-3",
            "1200 > t=1200ms leader-chase step 2/2: arm raft-before-leader-send on every live member",
            "2000 disarm raft-before-leader-send store-1",
            "2000 disarm raft-before-leader-send store-3",
            "2000 > t=2000ms heal leader-chase: 1 of 2 steps reached",
            "2000 restart-store-member 2",
            "2000 > t=2000ms restart store-2",
            "3000 reset-network",
            "3000 > t=3000ms all faults healed",
        ],
    );
}
