//! Data-driven interaction tests of the sans-IO Raft core (etcd-io/raft's
//! `interaction_test.go`, raft-rs `datadriven/`): each `store/testdata/raft/*.txt` file is
//! one scenario, opening with a paragraph on its purpose, then commands each followed by
//! `----` and the expected output. `REWRITE=1 cargo test -p store --test raft_interaction`
//! rewrites the expectations; review the diff by hand, since the files are the oracle.
//!
//! The harness is an in-memory network of Raft nodes with "durable" storage that holds
//! exactly what the nodes handed out in `Ready` (so `restart` restores durable state only)
//! and a state-machine-safety check across every entry any node applies.
//!
//! Commands:
//! - `add-nodes N [pre-vote=B] [check-quorum=B] [election-tick=T] [max-entries-per-append=M]
//!   [max-inflight-appends=M] [planted-bug=commit-previous-term-by-counting]`
//! - `campaign ID`, `tick ID.. n=K` (`tick all n=K`), `propose ID DATA`,
//!   `read-index ID ctx=C`
//! - `deliver-msgs [from=ID] [to=ID] [drop=(A,B)]..`: one round: deliver the messages in
//!   flight (matching the filters), in order, except those from A to B; messages sent while
//!   delivering wait for the next round. `drop-msgs [from=ID] [to=ID]`, `msgs` (list).
//! - `stabilize`: deliver rounds until no message is in flight. `tick-until-leader [ID..] [max=R]`:
//!   rounds of ticking the nodes (default all) once and stabilizing, until one of them leads.
//! - `partition 1 | 2 3` (messages across groups are lost), `heal`
//! - `crash ID` (the node loses all volatile state), `restart ID` (from durable state)
//! - `status`, `log ID` (the durable hard state and log), `voters ID..` (each node's
//!   committed configuration)
//! - `compact ID INDEX` (the driver snapshots its applied state at INDEX and compacts),
//!   `propose-conf-change ID add|remove NODE`, `add-joiner ID` (a node that joins an
//!   existing cluster: empty disk, no configuration until it learns one)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use store::raft::{
    ConfChange, ConfChangeEntry, Config, Entry, EntryKind, HardState, Message, MessageBody, NodeId, Raft,
    RestoredState, Role, SnapshotMeta,
};

#[derive(Default)]
struct Durable {
    hard_state: HardState,
    entries: Vec<Entry>,
    snapshot: Option<(SnapshotMeta, Bytes)>,
}

struct Node {
    config: Config,
    raft: Option<Raft>,
    durable: Durable,
}

#[derive(Default)]
struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    in_flight: Vec<Message>,
    /// Groups of nodes that can talk to each other; None: everyone can.
    partition: Option<Vec<BTreeSet<NodeId>>>,
    /// The first entry any node applied at each index: every later application must agree
    /// (state machine safety, §5.4.3).
    applied_by_index: BTreeMap<u64, (NodeId, Entry)>,
    out: String,
}

fn fmt_entry(e: &Entry) -> String {
    match e.kind {
        EntryKind::Normal => format!("t{}/i{} {:?}", e.term, e.index, String::from_utf8_lossy(&e.data)),
        EntryKind::ConfChange => match ConfChangeEntry::decode(&e.data) {
            Some(conf) => format!("t{}/i{} conf {:?} voters={:?}", e.term, e.index, conf.change, conf.voters),
            None => format!("t{}/i{} conf (undecodable)", e.term, e.index),
        },
    }
}

fn fmt_entries(entries: &[Entry]) -> String {
    let entries: Vec<String> = entries.iter().map(fmt_entry).collect();
    format!("[{}]", entries.join(", "))
}

fn fmt_opt(id: Option<NodeId>) -> String {
    id.map_or("-".to_owned(), |id| id.to_string())
}

fn fmt_msg(m: &Message) -> String {
    let body = match &m.body {
        MessageBody::PreVote { last_log_index, last_log_term } => {
            format!("PreVote last=t{last_log_term}/i{last_log_index}")
        }
        MessageBody::Vote { last_log_index, last_log_term } => {
            format!("Vote last=t{last_log_term}/i{last_log_index}")
        }
        MessageBody::PreVoteResponse { reject } => {
            format!("PreVoteResponse {}", if *reject { "rejected" } else { "granted" })
        }
        MessageBody::VoteResponse { reject } => {
            format!("VoteResponse {}", if *reject { "rejected" } else { "granted" })
        }
        MessageBody::Append { prev_log_index, prev_log_term, entries, commit } => {
            format!("Append prev=t{prev_log_term}/i{prev_log_index} commit={commit} {}", fmt_entries(entries))
        }
        MessageBody::AppendResponse { reject: false, index, .. } => {
            format!("AppendResponse index={index}")
        }
        MessageBody::AppendResponse { reject: true, index, reject_hint } => {
            let hint = reject_hint.map_or("-".to_owned(), |h| {
                let term = h.conflict_term.map_or("-".to_owned(), |t| t.to_string());
                format!("(term {term}, index {})", h.conflict_index)
            });
            format!("AppendResponse rejected index={index} hint={hint}")
        }
        MessageBody::Heartbeat { commit, read_seq } => {
            format!("Heartbeat commit={commit} read_seq={read_seq}")
        }
        MessageBody::HeartbeatResponse { read_seq } => {
            format!("HeartbeatResponse read_seq={read_seq}")
        }
        MessageBody::ReadIndex { request_ctx } => format!("ReadIndex ctx={request_ctx}"),
        MessageBody::ReadIndexResponse { request_ctx, index } => {
            format!("ReadIndexResponse ctx={request_ctx} index={index}")
        }
        MessageBody::Snapshot { meta, data } => {
            format!(
                "Snapshot t{}/i{} voters={:?} {:?}",
                meta.term,
                meta.index,
                meta.voters,
                String::from_utf8_lossy(data)
            )
        }
    };
    format!("{}->{} term={} {body}", m.from, m.to, m.term)
}

/// `key=value` arguments and bare words of a command line.
struct Args {
    words: Vec<String>,
    keyed: Vec<(String, String)>,
}

impl Args {
    fn parse(tokens: &[&str]) -> Args {
        let mut args = Args { words: Vec::new(), keyed: Vec::new() };
        for token in tokens {
            match token.split_once('=') {
                Some((key, value)) => args.keyed.push((key.to_owned(), value.to_owned())),
                None => args.words.push((*token).to_owned()),
            }
        }
        args
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.keyed.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.keyed.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn ids(&self) -> Vec<NodeId> {
        self.words.iter().map(|w| w.parse().expect("node id")).collect()
    }

    fn first_id(&self) -> NodeId {
        self.words.first().and_then(|w| w.parse().ok()).expect("a node id")
    }

    fn id(&self, key: &str) -> Option<NodeId> {
        self.get(key).map(|v| v.parse().expect("node id"))
    }
}

fn parse_pair(pair: &str) -> (NodeId, NodeId) {
    let inner = pair.trim_start_matches('(').trim_end_matches(')');
    let (a, b) = inner.split_once(',').expect("drop=(from,to)");
    (a.trim().parse().expect("node id"), b.trim().parse().expect("node id"))
}

impl Cluster {
    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    fn raft(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()).unwrap_or_else(|| panic!("node {id} is down"))
    }

    fn add_nodes(&mut self, args: &Args) {
        let n: u64 = args.words[0].parse().expect("count");
        let first = self.nodes.len() as u64 + 1;
        let voters: Vec<NodeId> = (first..first + n).collect();
        for &id in &voters {
            let mut config = Config::new(id, voters.clone());
            for (key, value) in &args.keyed {
                match key.as_str() {
                    "pre-vote" => config.pre_vote = value.parse().unwrap(),
                    "check-quorum" => config.check_quorum = value.parse().unwrap(),
                    "election-tick" => config.election_tick = value.parse().unwrap(),
                    "max-entries-per-append" => config.max_entries_per_append = value.parse().unwrap(),
                    "max-inflight-appends" => config.max_inflight_appends = value.parse().unwrap(),
                    "planted-bug" if value == "commit-previous-term-by-counting" => {
                        config.planted_bugs.commit_previous_term_by_counting = true
                    }
                    _ => panic!("unknown add-nodes option {key}={value}"),
                }
            }
            let node = Node { config, raft: None, durable: Durable::default() };
            self.nodes.insert(id, node);
            self.start(id);
        }
    }

    /// A node joining an existing cluster: no configuration, empty disk, the first node's
    /// options.
    fn add_joiner(&mut self, id: NodeId) {
        let template = self.nodes.values().next().expect("a cluster to join").config.clone();
        let config = Config { id, voters: Vec::new(), ..template };
        self.nodes.insert(id, Node { config, raft: None, durable: Durable::default() });
        self.start(id);
    }

    /// (Re)starts a node from its durable state. The seed is the node id, so each node's
    /// election timeouts are fixed for a scenario.
    fn start(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let restored = RestoredState {
            hard_state: node.durable.hard_state,
            entries: node.durable.entries.clone(),
            snapshot: node.durable.snapshot.as_ref().map(|(meta, _)| meta.clone()),
            snapshot_data: node.durable.snapshot.as_ref().map(|(_, data)| data.clone()).unwrap_or_default(),
        };
        node.raft = Some(Raft::new(node.config.clone(), restored, id).expect("valid durable state"));
    }

    /// Plays the driver for one node: persist, send, apply, as `Ready` prescribes.
    fn handle_ready(&mut self, id: NodeId, indent: &str) {
        let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
            return;
        };
        if !raft.has_ready() {
            return;
        }
        let ready = raft.ready();
        if let Some(soft) = ready.soft_state {
            let (role, leader) = (soft.role, fmt_opt(soft.leader));
            self.line(format!("{indent}{id}: {role:?} term={} leader={leader}", soft.term));
        }
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some((meta, data)) = &ready.snapshot {
            node.durable.entries.clear();
            node.durable.snapshot = Some((meta.clone(), data.clone()));
        }
        if let Some(hard) = ready.hard_state {
            node.durable.hard_state = hard;
        }
        if let Some(first) = ready.entries.first() {
            let keep = node.durable.entries.iter().take_while(|e| e.index < first.index).count();
            node.durable.entries.truncate(keep);
            node.durable.entries.extend(ready.entries.iter().cloned());
        }
        if let Some((meta, data)) = &ready.snapshot {
            let data = String::from_utf8_lossy(data);
            self.line(format!(
                "{indent}{id}: install snapshot t{}/i{} voters={:?} {data:?}",
                meta.term, meta.index, meta.voters
            ));
        }
        if let Some(hard) = ready.hard_state {
            let vote = fmt_opt(hard.vote);
            self.line(format!("{indent}{id}: persist term={} vote={vote} commit={}", hard.term, hard.commit));
        }
        if !ready.entries.is_empty() {
            self.line(format!("{indent}{id}: persist {}", fmt_entries(&ready.entries)));
        }
        self.in_flight.extend(ready.messages);
        if let Some(last) = ready.committed_entries.last().map(|e| e.index) {
            self.line(format!("{indent}{id}: apply {}", fmt_entries(&ready.committed_entries)));
            for entry in &ready.committed_entries {
                self.check_state_machine_safety(id, entry, indent);
            }
            self.raft(id).advance_applied(last);
        }
        for read in ready.read_states {
            self.line(format!("{indent}{id}: read-state ctx={} index={}", read.request_ctx, read.index));
        }
    }

    fn check_state_machine_safety(&mut self, id: NodeId, entry: &Entry, indent: &str) {
        match self.applied_by_index.get(&entry.index) {
            Some((first_id, first)) if first != entry => {
                let violation = format!(
                    "{indent}SAFETY VIOLATION: index {} applied as {} by {first_id} but as {} by {id}",
                    entry.index,
                    fmt_entry(first),
                    fmt_entry(entry)
                );
                self.line(violation);
            }
            Some(_) => {}
            None => {
                self.applied_by_index.insert(entry.index, (id, entry.clone()));
            }
        }
    }

    fn handle_all_ready(&mut self, indent: &str) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.handle_ready(id, indent);
        }
    }

    fn drop_reason(&self, m: &Message, drops: &[(NodeId, NodeId)]) -> Option<&'static str> {
        if drops.contains(&(m.from, m.to)) {
            return Some("dropped");
        }
        if self.nodes.get(&m.to).is_none_or(|n| n.raft.is_none()) {
            return Some("dropped: receiver down");
        }
        let same_side =
            |groups: &Vec<BTreeSet<NodeId>>| groups.iter().any(|g| g.contains(&m.from) && g.contains(&m.to));
        match &self.partition {
            Some(groups) if !same_side(groups) => Some("dropped: partitioned"),
            _ => None,
        }
    }

    fn take_matching(&mut self, args: &Args) -> Vec<Message> {
        let (from, to) = (args.id("from"), args.id("to"));
        let matches = |m: &Message| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t);
        let (taken, kept) = std::mem::take(&mut self.in_flight).into_iter().partition(matches);
        self.in_flight = kept;
        taken
    }

    fn deliver_msgs(&mut self, args: &Args) {
        let drops: Vec<(NodeId, NodeId)> = args.all("drop").map(parse_pair).collect();
        for m in self.take_matching(args) {
            if let Some(reason) = self.drop_reason(&m, &drops) {
                self.line(format!("{} {reason}", fmt_msg(&m)));
                continue;
            }
            self.line(fmt_msg(&m));
            let to = m.to;
            self.raft(to).step(m);
            self.handle_ready(to, "  ");
        }
    }

    fn stabilize(&mut self) {
        let everything = Args::parse(&[]);
        for _ in 0..1000 {
            self.handle_all_ready("");
            if self.in_flight.is_empty() {
                return;
            }
            self.deliver_msgs(&everything);
        }
        let tail: String = self.out.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!("stabilize: the cluster did not quiesce within 1000 rounds; last lines (reversed):\n{tail}");
    }

    fn tick(&mut self, args: &Args) {
        let n: u64 = args.get("n").map_or(1, |n| n.parse().expect("n"));
        let ids = if args.words.first().map(String::as_str) == Some("all") {
            self.nodes.iter().filter(|(_, n)| n.raft.is_some()).map(|(&id, _)| id).collect()
        } else {
            args.ids()
        };
        for _ in 0..n {
            for &id in &ids {
                self.raft(id).tick();
                self.handle_ready(id, "");
            }
        }
    }

    /// Rounds of: tick the listed nodes (default: every live node) once, then stabilize;
    /// until one of them leads.
    fn tick_until_leader(&mut self, args: &Args) {
        let max_rounds: u64 = args.get("max").map_or(100, |n| n.parse().expect("max"));
        let ids = if args.words.is_empty() { vec!["all"] } else { args.words.iter().map(String::as_str).collect() };
        let tick_args = Args::parse(&ids);
        for round in 1..=max_rounds {
            self.tick(&tick_args);
            self.stabilize();
            let is_candidate = |id: &NodeId| args.words.is_empty() || args.ids().contains(id);
            let leader = self
                .nodes
                .iter()
                .filter(|(id, _)| is_candidate(id))
                .filter_map(|(_, n)| n.raft.as_ref())
                .find(|r| r.role() == Role::Leader);
            if let Some(leader) = leader {
                let id = leader.id();
                self.line(format!("leader {id} after {round} rounds"));
                return;
            }
        }
        panic!("no leader after {max_rounds} rounds");
    }

    fn status(&mut self) {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, node)| match &node.raft {
                None => format!("{id}: down"),
                Some(raft) => {
                    let s = raft.status();
                    format!(
                        "{id}: {:?} term={} leader={} commit={} last={} applied={}",
                        s.role,
                        s.term,
                        fmt_opt(s.leader),
                        s.commit,
                        s.last_index,
                        s.applied
                    )
                }
            })
            .collect();
        for line in lines {
            self.line(line);
        }
    }

    fn log(&mut self, id: NodeId) {
        let durable = &self.nodes[&id].durable;
        let hard = durable.hard_state;
        let text = format!(
            "{id}: term={} vote={} commit={} {}",
            hard.term,
            fmt_opt(hard.vote),
            hard.commit,
            fmt_entries(&durable.entries)
        );
        self.line(text);
    }

    /// The driver's side of log compaction: snapshot the applied state at `index`.
    fn compact(&mut self, id: NodeId, index: u64) {
        let data = Bytes::from(format!("state@{index}"));
        match self.raft(id).compact(index, data.clone()) {
            Ok(meta) => {
                let durable = &mut self.nodes.get_mut(&id).unwrap().durable;
                durable.entries.retain(|e| e.index > index);
                durable.snapshot = Some((meta.clone(), data));
                self.line(format!("{id}: compacted to t{}/i{} voters={:?}", meta.term, meta.index, meta.voters));
            }
            Err(error) => self.line(format!("{id}: error: {error}")),
        }
    }

    fn partition(&mut self, line: &str) {
        let groups = line
            .split('|')
            .map(|group| group.split_whitespace().map(|id| id.parse().expect("node id")).collect())
            .collect();
        self.partition = Some(groups);
    }

    fn run(&mut self, command: &str) -> String {
        let tokens: Vec<&str> = command.split_whitespace().collect();
        let (name, rest) = tokens.split_first().expect("empty command");
        let args = Args::parse(rest);
        match *name {
            "add-nodes" => self.add_nodes(&args),
            "campaign" => {
                let id = args.first_id();
                self.raft(id).campaign();
                self.handle_ready(id, "");
            }
            "tick" => self.tick(&args),
            "propose" => {
                let id = args.first_id();
                let data = Bytes::from(args.words[1].clone());
                match self.raft(id).propose(data) {
                    Ok(index) => self.line(format!("{id}: proposed at index {index}")),
                    Err(error) => self.line(format!("{id}: error: {error}")),
                }
                self.handle_ready(id, "");
            }
            "read-index" => {
                let id = args.first_id();
                let ctx: u64 = args.get("ctx").expect("ctx=").parse().unwrap();
                if let Err(error) = self.raft(id).read_index(ctx) {
                    self.line(format!("{id}: error: {error}"));
                }
                self.handle_ready(id, "");
            }
            "deliver-msgs" => self.deliver_msgs(&args),
            "drop-msgs" => {
                for m in self.take_matching(&args) {
                    self.line(format!("{} dropped", fmt_msg(&m)));
                }
            }
            "msgs" => {
                let lines: Vec<String> = self.in_flight.iter().map(fmt_msg).collect();
                for line in lines {
                    self.line(line);
                }
            }
            "stabilize" => self.stabilize(),
            "tick-until-leader" => self.tick_until_leader(&args),
            "partition" => self.partition(&command["partition".len()..]),
            "heal" => self.partition = None,
            "crash" => {
                let id = args.first_id();
                self.nodes.get_mut(&id).unwrap().raft = None;
            }
            "restart" => {
                let id = args.first_id();
                self.start(id);
                self.handle_ready(id, "");
            }
            "status" => self.status(),
            "voters" => {
                for id in args.ids() {
                    let voters = self.raft(id).voters();
                    self.line(format!("{id}: voters={voters:?}"));
                }
            }
            "compact" => {
                let index: u64 = args.words[1].parse().expect("index");
                self.compact(args.first_id(), index);
            }
            "add-joiner" => self.add_joiner(args.first_id()),
            "propose-conf-change" => {
                let id = args.first_id();
                let node: NodeId = args.words[2].parse().expect("node id");
                let change = match args.words[1].as_str() {
                    "add" => ConfChange::AddVoter(node),
                    "remove" => ConfChange::RemoveVoter(node),
                    other => panic!("propose-conf-change ID add|remove NODE, not {other}"),
                };
                match self.raft(id).propose_conf_change(change, Bytes::new()) {
                    Ok(index) => self.line(format!("{id}: proposed at index {index}")),
                    Err(error) => self.line(format!("{id}: error: {error}")),
                }
                self.handle_ready(id, "");
            }
            "log" => {
                for id in args.ids() {
                    self.log(id);
                }
            }
            other => panic!("unknown command {other:?}"),
        }
        let out = std::mem::take(&mut self.out);
        if out.is_empty() {
            "ok\n".to_owned()
        } else {
            out
        }
    }
}

/// One block of a scenario file: prose, or a command with its expected output.
enum Block {
    Prose(String),
    Case { comments: Vec<String>, command: String, expected: String },
}

fn parse_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for chunk in text.split("\n\n").map(|c| c.trim_matches('\n')).filter(|c| !c.is_empty()) {
        let Some((head, expected)) = chunk.split_once("\n----") else {
            blocks.push(Block::Prose(chunk.to_owned()));
            continue;
        };
        let mut comments: Vec<String> = head.lines().map(str::to_owned).collect();
        let command = comments.pop().expect("a command before ----");
        assert!(comments.iter().all(|c| c.starts_with('#')), "only # comments may precede a command: {head}");
        let expected = expected.trim_start_matches('\n').to_owned();
        blocks.push(Block::Case { comments, command, expected });
    }
    blocks
}

/// Runs one scenario file; returns the mismatches (or rewrites the file).
fn run_file(path: &Path, rewrite: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut cluster = Cluster::default();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for block in parse_blocks(&text) {
        match block {
            Block::Prose(prose) => {
                let _ = write!(rewritten, "{prose}\n\n");
            }
            Block::Case { comments, command, expected } => {
                let actual = cluster.run(&command);
                if actual.trim_end() != expected.trim_end() {
                    failures.push(format!(
                        "{}: `{command}`\n--- expected\n{expected}\n--- actual\n{actual}",
                        path.display()
                    ));
                }
                for comment in comments {
                    let _ = writeln!(rewritten, "{comment}");
                }
                let _ = write!(rewritten, "{command}\n----\n{actual}\n");
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
fn raft_interaction_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/raft");
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
