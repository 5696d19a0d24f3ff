//! The nemesis: its sans-IO core driven by data-driven scenario files, its async driver on
//! madsim, and Jepsen's grudges.
//!
//! Each `faults/testdata/nemesis/*.txt` file is one scenario (etcd-io/raft's
//! `interaction_test.go`, raft-rs `datadriven/`, as `store/testdata/raft` is for Raft): a
//! paragraph on its purpose, then commands each followed by `----` and the expected
//! output, the transcript of the world calls the core made, each with its simulated time.
//! `REWRITE=1 cargo test -p faults --test faults` rewrites the expectations; review the
//! diff by hand, since the files are the oracle.
//!
//! Commands:
//! - `world members=N [leader=ID|none]`: a fresh fake world of N store members, 2
//!   apiservers, 2 controller-managers, a scheduler and 3 kubelets;
//! - `plan safety=MS`, then one event per line, `AT_MS +DURATION_MS FAULT_JSON`: a fresh
//!   nemesis for that plan (not validated: the core must cope with what validation
//!   refuses), on a fresh world of the same members and leader;
//! - `run [until=MS]`: the core takes every step due by `MS` (without it: every step,
//!   then the heal at the end of the safety phase, after which the world must be back to
//!   normal: a `LEFT` line names whatever is still clogged, paused, killed or armed);
//! - `reach MS store-N[,store-M..] FAILPOINT [queued]`: the steps due before `MS`, then
//!   each member reaches the failpoint, in that order; the core hears of those armed at
//!   `MS` and takes the steps due then. With `queued` the nemesis is busy: the reports
//!   wait in its queue, and the core hears of them only before its next heal (or when a
//!   later `reach` is delivered);
//! - `leader ID|none`: the world's leader changes.
//!
//! In the transcript, `> ` lines are the history lines the nemesis recorded, other lines
//! the world's calls. The fake world panics on calls a correct nemesis never makes
//! (clogging a clogged link, resuming a running process, restarting a live one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use faults::{
    bridge, majorities_ring, perform, run, BitFlip, Failpoint, Fault, FaultEvent, FaultKind, FaultPlan,
    GenerateOptions, Grudge, Nemesis, Reached, Refused, Slot, Target, Tear, View, World,
};
use futures::channel::mpsc;
use madsim::time::{Instant, TimeHandle};

/// A fake cluster of `members` store members, 2 apiservers, 2 controller-managers, a
/// scheduler and 3 kubelets, logging every call as `"<ms> <call>"` and every history
/// record as `"<ms> > <line>"`. Its clock is the harness's (`now_ms`) or madsim's.
struct FakeWorld {
    clock: Clock,
    members: u64,
    leader: Mutex<Option<u64>>,
    log: Mutex<Vec<String>>,
    clogged: Mutex<BTreeSet<(String, String)>>,
    paused: Mutex<BTreeSet<String>>,
    killed: Mutex<BTreeSet<String>>,
    /// Armed failpoints and what to call when a member reaches one.
    failpoints: Mutex<BTreeMap<(u64, Failpoint), OnReached>>,
}

enum Clock {
    /// Set by the data-driven harness before each call it makes.
    Manual(Mutex<u64>),
    /// madsim's time since the world was made.
    Simulated(Instant),
}

type OnReached = Box<dyn FnOnce() + Send>;

impl FakeWorld {
    fn new(members: u64, leader: Option<u64>, clock: Clock) -> Arc<Self> {
        Arc::new(FakeWorld {
            clock,
            members,
            leader: Mutex::new(leader),
            log: Mutex::new(Vec::new()),
            clogged: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            killed: Mutex::new(BTreeSet::new()),
            failpoints: Mutex::new(BTreeMap::new()),
        })
    }

    fn simulated(members: u64, leader: Option<u64>) -> Arc<Self> {
        Self::new(members, leader, Clock::Simulated(TimeHandle::current().now_instant()))
    }

    fn elapsed_ms(&self) -> u64 {
        match &self.clock {
            Clock::Manual(now_ms) => *now_ms.lock().unwrap(),
            Clock::Simulated(start) => (TimeHandle::current().now_instant() - *start).as_millis() as u64,
        }
    }

    fn set_now_ms(&self, at_ms: u64) {
        let Clock::Manual(now_ms) = &self.clock else { panic!("a simulated clock moves by itself") };
        *now_ms.lock().unwrap() = at_ms;
    }

    /// Store member `member` reaches `failpoint` now; returns whether it was armed.
    fn reach(&self, member: u64, failpoint: Failpoint) -> bool {
        let on_reached = self.failpoints.lock().unwrap().remove(&(member, failpoint));
        on_reached.map(|on_reached| on_reached()).is_some()
    }

    fn log(&self, line: String) {
        let line = format!("{} {line}", self.elapsed_ms());
        self.log.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Whatever is still clogged, paused, killed or armed.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> =
            self.clogged.lock().unwrap().iter().map(|(a, b)| format!("clogged {a} -> {b}")).collect();
        left.extend(self.paused.lock().unwrap().iter().map(|node| format!("paused {node}")));
        left.extend(self.killed.lock().unwrap().iter().map(|node| format!("killed {node}")));
        left.extend(
            self.failpoints.lock().unwrap().keys().map(|(member, point)| format!("armed {point} store-{member}")),
        );
        left
    }
}

impl View for FakeWorld {
    fn store_members(&self) -> Vec<Slot> {
        Slot::all(self.members).collect()
    }
    fn store_leader(&self) -> Option<Slot> {
        self.leader.lock().unwrap().map(Slot)
    }
    fn node_of(&self, target: &Target) -> Option<String> {
        match *target {
            Target::StoreMember(slot) if (1..=self.members).contains(&slot.number()) => Some(slot.to_string()),
            Target::StoreLeader => self.store_leader().map(|slot| slot.to_string()),
            Target::ApiServer(idx) if idx < 2 => Some(format!("apiserver-{idx}")),
            Target::ControllerManager(idx) if idx < 2 => Some(format!("controller-manager-{idx}")),
            Target::ControllerManagerLeader => Some("controller-manager-0".to_string()),
            Target::Scheduler => Some("scheduler-0".to_string()),
            Target::Kubelet(idx) if idx < 3 => Some(format!("kubelet-{idx}")),
            _ => None,
        }
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
}

impl World for FakeWorld {
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
    fn crash_store_member(&self, slot: Slot, tear: Option<Tear>) {
        let member = slot.number();
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().insert(node), "store-{member} crashed twice");
        let torn = tear.map(|tear| format!(" tear kept_ppm={}", tear.kept_ppm)).unwrap_or_default();
        self.log(format!("crash-store-member {member}{torn}"));
    }
    fn restart_store_member(&self, slot: Slot) {
        let member = slot.number();
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().remove(&node), "store-{member} restarted alive");
        self.log(format!("restart-store-member {member}"));
    }
    fn corrupt_store_record(&self, slot: Slot, flip: BitFlip) -> Option<String> {
        let member = slot.number();
        self.log(format!("corrupt-store-record {member} offset_ppm={} xor_mask={}", flip.offset_ppm, flip.xor_mask));
        Some(format!("WAL record 7 of store-{member}, bits {:#04x} flipped", flip.xor_mask))
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
    fn arm_failpoint(&self, slot: Slot, failpoint: Failpoint, passes: u32, on_reached: OnReached) {
        let member = slot.number();
        assert!((1..=self.members).contains(&member), "store-{member} armed but does not exist");
        let after = if passes > 0 { format!(" after {passes} passes") } else { String::new() };
        self.log(format!("arm {failpoint} store-{member}{after}"));
        self.failpoints.lock().unwrap().insert((member, failpoint), on_reached);
    }
    fn disarm_failpoint(&self, slot: Slot, failpoint: Failpoint) {
        let member = slot.number();
        self.log(format!("disarm {failpoint} store-{member}"));
        self.failpoints.lock().unwrap().remove(&(member, failpoint));
    }
    fn record(&self, description: String) {
        self.log(format!("> {description}"));
    }
    fn take_backup(&self, slot: Slot) -> Result<String, Refused> {
        let member = slot.number();
        self.log(format!("backup {member}"));
        Ok("taken".to_string())
    }
    fn corrupt_backup(&self, flip: BitFlip) -> Option<String> {
        self.log(format!("corrupt-backup offset_ppm={} xor_mask={}", flip.offset_ppm, flip.xor_mask));
        Some("backup 1 corrupted".to_string())
    }
    fn lose_disk(&self, slot: Slot) {
        let member = slot.number();
        let node = format!("store-{member}");
        assert!(self.killed.lock().unwrap().insert(node), "store-{member} lost its disk while down");
        self.log(format!("lose-disk {member}"));
    }
    fn replace_member(&self, slot: Slot) -> Result<String, Refused> {
        let member = slot.number();
        assert!(self.killed.lock().unwrap().remove(&format!("store-{member}")), "store-{member} replaced alive");
        self.log(format!("replace {member}"));
        Ok("replaced".to_string())
    }
    fn restore_from_backup(&self) -> Result<String, Refused> {
        let mut killed = self.killed.lock().unwrap();
        let lost: Vec<String> = killed.iter().filter(|node| node.starts_with("store-")).cloned().collect();
        assert!(!lost.is_empty(), "restore with every member alive");
        for node in lost {
            killed.remove(&node);
        }
        drop(killed);
        self.log("restore".to_string());
        Err(Refused::NoGoodBackup)
    }
}

// The data-driven harness.

/// A scenario's state: the world, and the nemesis of the last `plan`.
struct Scenario {
    world: Arc<FakeWorld>,
    nemesis: Option<Nemesis>,
    now_ms: u64,
    reached_tx: mpsc::Sender<Reached>,
    reached: mpsc::Receiver<Reached>,
}

impl Scenario {
    fn new() -> Self {
        let (reached_tx, reached) = mpsc::channel(0);
        Scenario { world: manual_world(3, None), nemesis: None, now_ms: 0, reached_tx, reached }
    }

    /// Runs one command; returns its output.
    fn run(&mut self, command: &str, input: &[&str]) -> String {
        let mut words = command.split_whitespace();
        let name = words.next().expect("a command");
        // `key=value` arguments; `reach` and `leader` take plain words (`args_of`).
        let args: BTreeMap<&str, &str> = words.filter_map(|word| word.split_once('=')).collect();
        match name {
            "world" => {
                let members = args["members"].parse().unwrap();
                let leader = args.get("leader").copied().and_then(parse_leader);
                self.world = manual_world(members, leader);
                "ok".to_string()
            }
            "plan" => {
                let safety_phase_ms = args["safety"].parse().unwrap();
                let events = input.iter().map(|line| parse_event(line)).collect();
                // A fresh world of the same shape: nothing left of the previous plan.
                self.world = manual_world(self.world.members, self.world.store_leader().map(Slot::number));
                self.nemesis = Some(Nemesis::new(&FaultPlan { events, ..FaultPlan::empty(safety_phase_ms, 1_000) }));
                self.now_ms = 0;
                "ok".to_string()
            }
            "run" => match args.get("until") {
                Some(until) => {
                    self.steps_until(|next_ms| next_ms <= until.parse().unwrap());
                    self.output()
                }
                None => {
                    self.steps_until(|_| true);
                    let nemesis = self.nemesis.as_mut().expect("a plan");
                    self.now_ms = nemesis.safety_phase_ms();
                    nemesis.heal_all(&*self.world, &mut std::iter::from_fn(|| self.reached.try_recv().ok()));
                    self.perform_calls();
                    // The world must be back to normal: what is not shows in the transcript.
                    for leftover in self.world.leftovers() {
                        self.world.log(format!("LEFT {leftover}"));
                    }
                    self.output()
                }
            },
            "reach" => {
                let (words, queued) = match args_of(command)[..] {
                    [at_ms, member, failpoint] => ([at_ms, member, failpoint], false),
                    [at_ms, member, failpoint, "queued"] => ([at_ms, member, failpoint], true),
                    _ => panic!("reach MS store-N FAILPOINT [queued]"),
                };
                let [at_ms, member, failpoint] = words;
                let at_ms: u64 = at_ms.parse().unwrap();
                self.steps_until(|next_ms| next_ms < at_ms);
                self.now_ms = at_ms;
                self.world.set_now_ms(at_ms);
                let failpoint = serde_json::from_value(serde_json::Value::from(failpoint)).unwrap();
                // Several members may reach it in the same instant, before the core hears.
                for member in member.split(',') {
                    let member: u64 = member.strip_prefix("store-").expect("store-N").parse().unwrap();
                    let armed = self.world.reach(member, failpoint);
                    self.world.log(format!("store-{member} reaches {failpoint} (armed: {armed})"));
                }
                if !queued {
                    self.hand_over_reached();
                    self.steps_until(|next_ms| next_ms <= at_ms);
                }
                self.output()
            }
            "leader" => {
                let [leader] = args_of(command)[..] else { panic!("leader ID|none") };
                *self.world.leader.lock().unwrap() = parse_leader(leader);
                "ok".to_string()
            }
            other => panic!("unknown command {other:?}"),
        }
    }

    /// Takes the core's steps while their time passes `due`, as the async driver does.
    fn steps_until(&mut self, due: impl Fn(u64) -> bool) {
        loop {
            let nemesis = self.nemesis.as_mut().expect("a plan");
            let Some(next_ms) = nemesis.next_wakeup_ms().filter(|next_ms| due(*next_ms)) else { break };
            self.now_ms = next_ms;
            nemesis.step(&*self.world, &mut std::iter::from_fn(|| self.reached.try_recv().ok()));
            self.perform_calls();
        }
    }

    /// Hands the core every failpoint reached since it last heard.
    fn hand_over_reached(&mut self) {
        while let Ok(reached) = self.reached.try_recv() {
            self.nemesis.as_mut().expect("a plan").failpoint_reached(self.now_ms, reached, &*self.world);
            self.perform_calls();
        }
    }

    fn perform_calls(&mut self) {
        self.world.set_now_ms(self.now_ms);
        for call in self.nemesis.as_mut().expect("a plan").take_calls() {
            perform(call, &*self.world, &self.reached_tx);
        }
    }

    fn output(&self) -> String {
        let lines = self.world.take_lines();
        if lines.is_empty() {
            "ok".to_string()
        } else {
            lines.join("\n")
        }
    }
}

fn manual_world(members: u64, leader: Option<u64>) -> Arc<FakeWorld> {
    FakeWorld::new(members, leader, Clock::Manual(Mutex::new(0)))
}

fn parse_leader(text: &str) -> Option<u64> {
    (text != "none").then(|| text.parse().expect("a leader id or none"))
}

/// The words of a command after its name.
fn args_of(command: &str) -> Vec<&str> {
    command.split_whitespace().skip(1).collect()
}

/// `AT_MS +DURATION_MS FAULT_JSON`.
fn parse_event(line: &str) -> FaultEvent {
    let (at_ms, rest) = line.split_once(' ').expect("AT_MS +DURATION_MS FAULT_JSON");
    let (duration_ms, fault) = rest.trim_start().split_once(' ').expect("AT_MS +DURATION_MS FAULT_JSON");
    FaultEvent {
        at_ms: at_ms.parse().unwrap(),
        duration_ms: duration_ms.strip_prefix('+').expect("+DURATION_MS").parse().unwrap(),
        fault: serde_json::from_str(fault).unwrap_or_else(|e| panic!("{fault}: {e}")),
    }
}

/// One block of a scenario file: prose, or a command (with input lines) and its expected
/// output.
enum Block {
    Prose(String),
    Case { comments: Vec<String>, command: String, input: Vec<String>, expected: String },
}

fn parse_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for chunk in text.split("\n\n").map(|c| c.trim_matches('\n')).filter(|c| !c.is_empty()) {
        let Some((head, expected)) = chunk.split_once("\n----") else {
            blocks.push(Block::Prose(chunk.to_owned()));
            continue;
        };
        let mut lines = head.lines().map(str::to_owned);
        let mut comments = Vec::new();
        let command = loop {
            let line = lines.next().expect("a command before ----");
            if !line.starts_with('#') {
                break line;
            }
            comments.push(line);
        };
        let input = lines.collect();
        let expected = expected.trim_start_matches('\n').to_owned();
        blocks.push(Block::Case { comments, command, input, expected });
    }
    blocks
}

/// Runs one scenario file; returns the mismatches (or rewrites the file).
fn run_file(path: &Path, rewrite: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut scenario = Scenario::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for block in parse_blocks(&text) {
        match block {
            Block::Prose(prose) => {
                let _ = write!(rewritten, "{prose}\n\n");
            }
            Block::Case { comments, command, input, expected } => {
                let input_lines: Vec<&str> = input.iter().map(String::as_str).collect();
                let actual = scenario.run(&command, &input_lines);
                if actual.trim_end() != expected.trim_end() {
                    failures.push(format!(
                        "{}: `{command}`\n--- expected\n{expected}\n--- actual\n{actual}",
                        path.display()
                    ));
                }
                for line in comments.iter().chain(std::iter::once(&command)).chain(&input) {
                    let _ = writeln!(rewritten, "{line}");
                }
                let _ = write!(rewritten, "----\n{actual}\n\n");
            }
        }
    }
    if rewrite {
        std::fs::write(path, rewritten.trim_end().to_owned() + "\n").unwrap();
        return Vec::new();
    }
    failures
}

#[test]
fn nemesis_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/nemesis");
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenario files in {}", dir.display());
    let failures: Vec<String> = paths.iter().flat_map(|p| run_file(p, rewrite)).collect();
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

// The async driver on madsim.

fn runtime() -> madsim::runtime::Runtime {
    madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default())
}

fn event(at_ms: u64, duration_ms: u64, fault: Fault) -> FaultEvent {
    FaultEvent { at_ms, duration_ms, fault }
}

fn plan(safety_phase_ms: u64, events: Vec<FaultEvent>) -> FaultPlan {
    FaultPlan { events, ..FaultPlan::empty(safety_phase_ms, 1_000) }
}

/// Runs `plan` with the async driver on a fake world while a task makes members reach
/// failpoints at the given times (ms); checks that `run` returns at the end of the safety
/// phase with everything healed and returns the world's log.
fn run_reaching(
    plan: &FaultPlan,
    members: u64,
    leader: Option<u64>,
    reaches: Vec<(u64, u64, Failpoint)>,
) -> Vec<String> {
    runtime().block_on(async {
        let world = FakeWorld::simulated(members, leader);
        let reacher = world.clone();
        let start = TimeHandle::current().now_instant();
        let _reacher = madsim::task::spawn(async move {
            for (at_ms, member, failpoint) in reaches {
                let at = start + std::time::Duration::from_millis(at_ms);
                // madsim sleeps at least 1 ms: members reaching in the same instant must not.
                if TimeHandle::current().now_instant() < at {
                    madsim::time::sleep_until(at).await;
                }
                let armed = reacher.reach(member, failpoint);
                reacher.log(format!("store-{member} reaches {failpoint} (armed: {armed})"));
            }
        });
        run(plan, world.clone()).await;
        assert_eq!(world.elapsed_ms(), plan.safety_phase_ms);
        assert!(world.leftovers().is_empty(), "not healed: {:#?}", world.lines());
        world.lines()
    })
}

#[track_caller]
fn assert_lines(actual: &[String], expected: &[&str]) {
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    assert_eq!(actual, expected, "\nactual:\n{}", actual.join("\n"));
}

#[test]
fn the_driver_applies_and_heals_in_simulated_time_and_returns_at_the_end_of_the_phase() {
    let plan = plan(
        5_000,
        vec![
            event(1_000, 2_000, Fault::Crash { target: Target::ApiServer(0) }),
            event(2_000, 0, Fault::Crash { target: Target::Scheduler }),
        ],
    );
    assert_lines(
        &run_reaching(&plan, 3, Some(1), Vec::new()),
        &[
            "1000 kill apiserver-0",
            "1000 > t=1000ms crash apiserver-0",
            "2000 kill scheduler-0",
            "2000 > t=2000ms crash scheduler-0",
            "2000 restart scheduler-0",
            "2000 > t=2000ms restart scheduler-0",
            "3000 restart apiserver-0",
            "3000 > t=3000ms restart apiserver-0",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

#[test]
fn the_driver_hears_failpoints_reached_between_steps() {
    let fault = |member, restart_after_ms| Fault::CrashAtFailpoint {
        member: Target::StoreMember(Slot(member)),
        failpoint: Failpoint::RaftAfterVote,
        restart_after_ms,
        passes: 0,
    };
    let plan = plan(5_000, vec![event(1_000, 2_000, fault(2, 500)), event(1_000, 2_000, fault(3, 0))]);
    let reaches = vec![(1_200, 2, Failpoint::RaftAfterVote), (1_300, 3, Failpoint::RaftAfterVote)];
    assert_lines(
        &run_reaching(&plan, 3, Some(1), reaches),
        &[
            "1000 arm raft-after-vote store-2",
            "1000 > t=1000ms arm failpoint raft-after-vote on store-2 (restart 500ms after)",
            "1000 arm raft-after-vote store-3",
            "1000 > t=1000ms arm failpoint raft-after-vote on store-3 (restart 0ms after)",
            "1200 store-2 reaches raft-after-vote (armed: true)",
            "1200 crash-store-member 2",
            "1200 > t=1200ms store-2 reached failpoint raft-after-vote: crash",
            "1300 store-3 reaches raft-after-vote (armed: true)",
            "1300 crash-store-member 3",
            "1300 > t=1300ms store-3 reached failpoint raft-after-vote: crash",
            "1300 restart-store-member 3",
            "1300 > t=1300ms restart store-3",
            "1700 restart-store-member 2",
            "1700 > t=1700ms restart store-2",
            "5000 reset-network",
            "5000 > t=5000ms all faults healed",
        ],
    );
}

/// Five members reach their failpoints in the same instant, before the nemesis runs: the
/// bounded queue holds every report (each armed failpoint has its own slot) and the
/// nemesis crashes and restarts all five.
#[test]
fn the_failpoint_queue_holds_every_member_reaching_at_once() {
    let after_vote = |member| Fault::CrashAtFailpoint {
        member: Target::StoreMember(Slot(member)),
        failpoint: Failpoint::RaftAfterVote,
        restart_after_ms: 0,
        passes: 0,
    };
    let plan = plan(3_000, (1..=5).map(|member| event(1_000, 1_000, after_vote(member))).collect());
    let reaches = (1..=5).map(|member| (1_500, member, Failpoint::RaftAfterVote)).collect();
    let lines = run_reaching(&plan, 5, Some(1), reaches);
    for member in 1..=5 {
        let crashed = format!("1500 > t=1500ms store-{member} reached failpoint raft-after-vote: crash");
        assert!(lines.contains(&crashed), "{lines:#?}");
        assert!(lines.contains(&format!("1500 > t=1500ms restart store-{member}")), "{lines:#?}");
    }
}

#[test]
fn a_generated_plan_runs_the_same_twice_and_heals_everything() {
    let topology = crate::small_topology();
    let menu = FaultKind::ALL.into_iter().collect();
    for seed in 0..20 {
        let plan = faults::generate(seed, &topology, &menu, &GenerateOptions::default());
        let once = || {
            runtime().block_on(async {
                let world = FakeWorld::simulated(3, Some(2));
                run(&plan, world.clone()).await;
                assert!(world.leftovers().is_empty());
                world.lines()
            })
        };
        let lines = once();
        assert_eq!(lines, once(), "seed {seed}");
        assert_eq!(lines.last().unwrap(), "30000 > t=30000ms all faults healed");
    }
}

#[test]
fn run_can_be_spawned_on_a_madsim_task() {
    fn assert_send<T: Send>(_: &T) {}
    runtime().block_on(async {
        let world = FakeWorld::simulated(3, None);
        let plan = plan(1_000, vec![]);
        let future = run(&plan, world.clone());
        assert_send(&future);
        future.await;
        assert_eq!(world.lines(), ["1000 reset-network", "1000 > t=1000ms all faults healed"]);
    });
}

/// The core alone: no clock, no world calls made, only handed out.
#[test]
fn the_core_hands_out_calls_and_touches_nothing() {
    let world = manual_world(3, Some(2));
    let plan = plan(2_000, vec![event(500, 1_000, Fault::IsolateStoreLeader)]);
    let mut nemesis = Nemesis::new(&plan);
    assert_eq!(nemesis.next_wakeup_ms(), Some(500));
    nemesis.step(&*world, &mut std::iter::empty());
    let calls = nemesis.take_calls();
    assert_eq!(calls.len(), 2 * 10 + 1, "20 links clogged, one history line");
    assert!(world.lines().is_empty(), "the core made no call itself");
    assert_eq!(nemesis.next_wakeup_ms(), Some(1_500));
    nemesis.step(&*world, &mut std::iter::empty());
    assert_eq!(nemesis.next_wakeup_ms(), None);
    nemesis.heal_all(&*world, &mut std::iter::empty());
    let calls = nemesis.take_calls();
    assert_eq!(calls.last(), Some(&faults::Call::Record { at_ms: 2_000, line: "all faults healed".to_string() }));
}

// Jepsen's grudges.

/// Slots by number.
fn slots<const N: usize>(numbers: [u64; N]) -> Vec<Slot> {
    numbers.into_iter().map(Slot).collect()
}

/// A grudge written as numbers: each slot and the slots it drops.
fn grudge<const N: usize>(drops: [(u64, &[u64]); N]) -> Grudge {
    drops.into_iter().map(|(slot, dropped)| (Slot(slot), dropped.iter().copied().map(Slot).collect())).collect()
}

/// Whether every member hears a majority (itself included) and no two hear the same one.
fn check_distinct_majorities(members: &[Slot], grudge: &Grudge) {
    let mut views = BTreeSet::new();
    for member in members {
        let dropped = grudge.get(member).cloned().unwrap_or_default();
        assert!(!dropped.contains(member), "{member} drops itself");
        let hears: BTreeSet<Slot> = members.iter().copied().filter(|m| !dropped.contains(m)).collect();
        assert!(hears.len() > members.len() / 2, "{member} hears only {hears:?}");
        assert!(views.insert(hears), "two members see the same majority");
    }
}

#[test]
fn majorities_ring_follows_jepsen_for_three_and_five_members() {
    // 3 members: a one-way ring; 1 hears 3, 2 hears 1, 3 hears 2.
    let three = majorities_ring(&slots([1, 2, 3]));
    assert_eq!(three, grudge([(1, &[2]), (2, &[3]), (3, &[1]),]));
    // 5 members: each hears exactly its two ring neighbours.
    let five = majorities_ring(&slots([1, 2, 3, 4, 5]));
    assert_eq!(five, grudge([(1, &[3, 4]), (2, &[4, 5]), (3, &[1, 5]), (4, &[1, 2]), (5, &[2, 3]),]));
    for n in 3..=9 {
        let members: Vec<Slot> = Slot::all(n).collect();
        check_distinct_majorities(&members, &majorities_ring(&members));
    }
}

#[test]
fn bridge_follows_jepsen_for_three_and_five_members() {
    assert_eq!(bridge(&slots([1, 2, 3])), grudge([(1, &[3]), (3, &[1])]));
    assert_eq!(bridge(&slots([1, 2, 3, 4, 5])), grudge([(1, &[4, 5]), (2, &[4, 5]), (4, &[1, 2]), (5, &[1, 2]),]));
}
