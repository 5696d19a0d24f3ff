//! Randomized safety test of the Raft core (a miniature of kubesim's simulation): fixed
//! seeds drive a five-node cluster through random ticks, message delivery out of order,
//! drops and duplicates, proposals, reads, crashes that restart from durable state only,
//! and partitions. After every step it checks Raft's safety properties (§5.4, Figure 3):
//! election safety (at most one leader per term), log matching, state machine safety
//! (an index is only ever applied with one entry, and committed entries never change in
//! any durable log), and ReadIndex linearizability (a read's index covers every entry
//! committed before the read began). Nodes also compact their logs under snapshots of
//! their applied state at random, and followers that fall behind are caught up by
//! InstallSnapshot (§7): the state machine is the list of applied entries, so a snapshot
//! is checked entry by entry against what was committed, and applying must continue
//! exactly after it (nothing applied twice, no gap). Once faults heal, the cluster must elect a leader and
//! commit a new proposal on every node (liveness).
//!
//! Reproduce a failure with `RAFT_SEED=N cargo test -p store --test raft_random`; run a
//! longer campaign with `RAFT_SEEDS=N`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use store::raft::{Config, Entry, HardState, Message, NodeId, Raft, RestoredState, Role, SnapshotMeta};

const N_NODES: u64 = 5;
const N_SEEDS: u64 = 200;
const N_STEPS: usize = 5000;
const MAX_IN_FLIGHT: usize = 400;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default, Clone)]
struct Durable {
    hard_state: HardState,
    entries: Vec<Entry>,
    snapshot: Option<(SnapshotMeta, Bytes)>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    nodes: BTreeMap<NodeId, Option<Raft>>,
    durable: BTreeMap<NodeId, Durable>,
    /// Each live node's state machine: every entry it applied, from index 1.
    machines: BTreeMap<NodeId, Vec<Entry>>,
    n_snapshots_installed: u64,
    n_restarts: u64,
    in_flight: Vec<Message>,
    /// Side of each node when partitioned.
    partition: Option<BTreeSet<NodeId>>,
    leader_of_term: BTreeMap<u64, NodeId>,
    /// Every entry known committed (applied by some node), by index.
    committed: BTreeMap<u64, Entry>,
    /// Per (node, ctx): the highest committed index when the read began.
    reads: BTreeMap<(NodeId, u64), u64>,
    next_ctx: u64,
    next_data: u64,
    n_reads_served: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            machines: BTreeMap::new(),
            n_snapshots_installed: 0,
            n_restarts: 0,
            in_flight: Vec::new(),
            partition: None,
            leader_of_term: BTreeMap::new(),
            committed: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_ctx: 1,
            next_data: 1,
            n_reads_served: 0,
        };
        for id in 1..=N_NODES {
            sim.durable.insert(id, Durable::default());
            sim.start(id);
        }
        sim
    }

    fn start(&mut self, id: NodeId) {
        let mut config = Config::new(id, (1..=N_NODES).collect());
        config.max_entries_per_append = 4;
        config.max_inflight_appends = 8;
        let durable = self.durable[&id].clone();
        let machine = durable.snapshot.as_ref().map(|(_, data)| decode_machine(data)).unwrap_or_default();
        self.machines.insert(id, machine);
        let restored = RestoredState {
            hard_state: durable.hard_state,
            entries: durable.entries,
            snapshot: durable.snapshot.as_ref().map(|(meta, _)| meta.clone()),
            snapshot_data: durable.snapshot.map(|(_, data)| data).unwrap_or_default(),
        };
        self.n_restarts += 1;
        let rng_seed = self.seed.wrapping_mul(1000).wrapping_add(self.n_restarts);
        self.nodes.insert(id, Some(Raft::new(config, restored, rng_seed).expect("durable state is valid")));
    }

    fn live(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, r)| r.is_some()).map(|(&id, _)| id).collect()
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: {what}\nreproduce: RAFT_SEED={} cargo test -p store --test raft_random", self.seed, self.seed);
    }

    fn handle_ready(&mut self, id: NodeId) {
        let Some(raft) = self.nodes.get_mut(&id).and_then(Option::as_mut) else {
            return;
        };
        if !raft.has_ready() {
            return;
        }
        let ready = raft.ready();
        let (term, role) = (raft.term(), raft.role());
        if role == Role::Leader {
            let leader = *self.leader_of_term.entry(term).or_insert(id);
            if leader != id {
                self.fail(format!("election safety: nodes {leader} and {id} both lead term {term}"));
            }
        }
        let durable = self.durable.get_mut(&id).unwrap();
        if let Some((meta, data)) = &ready.snapshot {
            durable.entries.clear();
            durable.snapshot = Some((meta.clone(), data.clone()));
        }
        if let Some(hard_state) = ready.hard_state {
            durable.hard_state = hard_state;
        }
        if let Some(first) = ready.entries.first() {
            let keep = durable.entries.iter().take_while(|e| e.index < first.index).count();
            durable.entries.truncate(keep);
            durable.entries.extend(ready.entries.iter().cloned());
        }
        self.in_flight.extend(ready.messages);
        if let Some((meta, data)) = ready.snapshot {
            let machine = decode_machine(&data);
            if machine.len() as u64 != meta.index {
                self.fail(format!("snapshot at {} on {id} holds {} entries", meta.index, machine.len()));
            }
            for entry in machine.iter().cloned() {
                self.check_applied(id, entry);
            }
            self.machines.insert(id, machine);
            self.n_snapshots_installed += 1;
        }
        if let Some(last) = ready.committed_entries.last().map(|e| e.index) {
            for entry in ready.committed_entries {
                let machine = &self.machines[&id];
                if entry.index != machine.len() as u64 + 1 {
                    self.fail(format!("{id} applies entry {} after {} applied entries", entry.index, machine.len()));
                }
                self.machines.get_mut(&id).unwrap().push(entry.clone());
                self.check_applied(id, entry);
            }
            self.nodes.get_mut(&id).unwrap().as_mut().unwrap().advance_applied(last);
        }
        for read in ready.read_states {
            self.n_reads_served += 1;
            let began_at = self.reads.remove(&(id, read.request_ctx)).unwrap_or(0);
            if read.index < began_at {
                self.fail(format!("read ctx {} on {id} got index {} < {began_at}", read.request_ctx, read.index));
            }
        }
        self.check_durable_commits(id);
    }

    fn check_applied(&mut self, id: NodeId, entry: Entry) {
        match self.committed.get(&entry.index) {
            Some(known) if *known != entry => {
                self.fail(format!("state machine safety: {id} applied {entry:?}, {known:?} was applied before"))
            }
            Some(_) => {}
            None => {
                self.committed.insert(entry.index, entry);
            }
        }
    }

    /// Committed entries never change: every durable entry at or below the node's commit
    /// index equals the entry applied at that index (if any node applied it yet).
    fn check_durable_commits(&self, id: NodeId) {
        let durable = &self.durable[&id];
        for entry in durable.entries.iter().filter(|e| e.index <= durable.hard_state.commit) {
            if self.committed.get(&entry.index).is_some_and(|known| known != entry) {
                self.fail(format!("committed entry {} changed on node {id}", entry.index));
            }
        }
    }

    /// Log matching (§5.3): if two logs hold an entry with the same index and term, they
    /// are identical up to it. Checking the highest such index suffices.
    fn check_log_matching(&self) {
        let ids: Vec<NodeId> = self.durable.keys().copied().collect();
        let by_index =
            |id: &NodeId| -> BTreeMap<u64, &Entry> { self.durable[id].entries.iter().map(|e| (e.index, e)).collect() };
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                let (la, lb) = (by_index(a), by_index(b));
                let top = la.iter().rev().find(|(index, e)| lb.get(index).is_some_and(|other| other.term == e.term));
                let Some((&top, _)) = top else {
                    continue;
                };
                for (index, entry) in la.range(..=top) {
                    if lb.get(index).is_some_and(|other| other != entry) {
                        self.fail(format!("log matching violated between {a} and {b} at index {index} (below {top})"));
                    }
                }
            }
        }
    }

    /// The driver's log compaction: snapshot the applied state machine and compact.
    fn compact(&mut self, id: NodeId) {
        let raft = self.nodes.get_mut(&id).unwrap().as_mut().unwrap();
        let status = raft.status();
        if status.applied <= status.snapshot_index {
            return;
        }
        let machine = &self.machines[&id];
        let data = Bytes::from(bincode::serialize(&machine[..status.applied as usize]).unwrap());
        let meta = raft.compact(status.applied, data.clone()).expect("compaction at the applied index");
        let durable = self.durable.get_mut(&id).unwrap();
        durable.entries.retain(|e| e.index > meta.index);
        durable.snapshot = Some((meta, data));
    }

    fn deliver(&mut self, position: usize) {
        let m = self.in_flight.remove(position);
        let cut = self.partition.as_ref().is_some_and(|side| side.contains(&m.from) != side.contains(&m.to));
        if cut {
            return;
        }
        let to = m.to;
        if let Some(raft) = self.nodes.get_mut(&to).and_then(Option::as_mut) {
            raft.step(m);
            self.handle_ready(to);
        }
    }

    fn random_live(&mut self) -> Option<NodeId> {
        let live = self.live();
        (!live.is_empty()).then(|| live[self.rng.below(live.len() as u64) as usize])
    }

    fn step(&mut self) {
        let action = self.rng.below(100);
        match action {
            0..=44 if !self.in_flight.is_empty() => {
                let position = self.rng.below(self.in_flight.len() as u64) as usize;
                if self.rng.chance(5) {
                    let duplicate = self.in_flight[position].clone();
                    self.in_flight.push(duplicate);
                }
                if self.rng.chance(8) {
                    self.in_flight.remove(position);
                } else {
                    self.deliver(position);
                }
            }
            0..=79 => {
                if let Some(id) = self.random_live() {
                    self.nodes.get_mut(&id).unwrap().as_mut().unwrap().tick();
                    self.handle_ready(id);
                }
            }
            80..=92 => self.propose_or_read(),
            93..=94 => {
                if let Some(id) = self.random_live() {
                    self.compact(id);
                }
            }
            95 => {
                if self.live().len() > 2 {
                    if let Some(id) = self.random_live() {
                        self.nodes.insert(id, None);
                    }
                }
            }
            96..=97 => {
                let down: Vec<NodeId> = self.nodes.iter().filter(|(_, r)| r.is_none()).map(|(&id, _)| id).collect();
                if !down.is_empty() {
                    let id = down[self.rng.below(down.len() as u64) as usize];
                    self.start(id);
                    self.handle_ready(id);
                }
            }
            _ => {
                self.partition = if self.partition.is_some() || self.rng.chance(30) {
                    None
                } else {
                    Some((1..=N_NODES).filter(|_| self.rng.chance(50)).collect())
                };
            }
        }
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.in_flight.remove(0); // the network loses its oldest packets
        }
    }

    fn propose_or_read(&mut self) {
        let Some(id) = self.random_live() else { return };
        let raft = self.nodes.get_mut(&id).unwrap().as_mut().unwrap();
        if self.rng.chance(70) {
            let data = Bytes::from(format!("d{}", self.next_data));
            self.next_data += 1;
            let _ = raft.propose(data);
        } else {
            let ctx = self.next_ctx;
            self.next_ctx += 1;
            if raft.read_index(ctx).is_ok() {
                let began_at = self.committed.keys().next_back().copied().unwrap_or(0);
                self.reads.insert((id, ctx), began_at);
            }
        }
        self.handle_ready(id);
    }

    /// Heals every fault, then requires a leader and a new committed entry everywhere.
    fn check_liveness(&mut self) {
        self.partition = None;
        let down: Vec<NodeId> = self.nodes.iter().filter(|(_, r)| r.is_none()).map(|(&id, _)| id).collect();
        for id in down {
            self.start(id);
            self.handle_ready(id);
        }
        let mut proposed: Option<u64> = None;
        for _ in 0..400 {
            for id in self.live() {
                self.nodes.get_mut(&id).unwrap().as_mut().unwrap().tick();
                self.handle_ready(id);
            }
            while !self.in_flight.is_empty() {
                self.deliver(0);
            }
            if proposed.is_none() {
                let leader = self.live().into_iter().find(|id| self.nodes[id].as_ref().unwrap().role() == Role::Leader);
                if let Some(leader) = leader {
                    let raft = self.nodes.get_mut(&leader).unwrap().as_mut().unwrap();
                    proposed = raft.propose(Bytes::from_static(b"final")).ok();
                    self.handle_ready(leader);
                }
            }
            if let Some(index) = proposed {
                if self.nodes.values().all(|r| r.as_ref().unwrap().status().applied >= index) {
                    return;
                }
            }
        }
        self.fail(format!("liveness: no proposal committed everywhere after healing (proposed {proposed:?})"));
    }
}

fn decode_machine(data: &[u8]) -> Vec<Entry> {
    bincode::deserialize(data).expect("snapshot data is an encoded entry list")
}

/// What one seed exercised, so the test can show it is not vacuous.
#[derive(Default, Debug)]
struct Coverage {
    n_terms_with_leader: usize,
    n_committed_before_healing: usize,
    n_reads_served: u64,
    n_snapshots_installed: u64,
}

fn run_seed(seed: u64) -> Coverage {
    let mut sim = Sim::new(seed);
    for step in 0..N_STEPS {
        sim.step();
        if step % 100 == 0 {
            sim.check_log_matching();
        }
    }
    sim.check_log_matching();
    let n_committed_before_healing = sim.committed.len();
    sim.check_liveness();
    sim.check_log_matching();
    Coverage {
        n_terms_with_leader: sim.leader_of_term.len(),
        n_committed_before_healing,
        n_reads_served: sim.n_reads_served,
        n_snapshots_installed: sim.n_snapshots_installed,
    }
}

#[test]
fn raft_random_faults_preserve_safety() {
    if let Some(seed) = std::env::var("RAFT_SEED").ok().and_then(|s| s.parse().ok()) {
        println!("seed {seed}: {:?}", run_seed(seed));
        return;
    }
    // RAFT_SEEDS=N runs a longer campaign of seeds 0..N.
    let n_seeds = std::env::var("RAFT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(N_SEEDS);
    let mut total = Coverage::default();
    for seed in 0..n_seeds {
        let coverage = run_seed(seed);
        total.n_terms_with_leader += coverage.n_terms_with_leader;
        total.n_committed_before_healing += coverage.n_committed_before_healing;
        total.n_reads_served += coverage.n_reads_served;
        total.n_snapshots_installed += coverage.n_snapshots_installed;
    }
    println!("{n_seeds} seeds: {total:?}");
    // The faults must leave room for real work, or the safety checks above prove nothing.
    assert!(total.n_terms_with_leader as u64 > 2 * n_seeds, "{total:?}");
    assert!(total.n_committed_before_healing as u64 > 5 * n_seeds, "{total:?}");
    assert!(total.n_reads_served > n_seeds, "{total:?}");
    assert!(total.n_snapshots_installed > n_seeds / 4, "{total:?}");
}
