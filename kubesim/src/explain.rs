//! Why a seed failed: for each violation, the slice of the history that leads to it, said
//! in one paragraph (`kubesim run` prints it for a failing seed, before the timeline; the
//! HTML report lists it under the violation).
//!
//! The slice is followed backwards from what the violation names:
//! - the nodes it names (`store-2`, `kubelet-0`, `controller-manager-1`) and the faults that
//!   hit them before it (a crash, pause or clock skew still in effect counts however long
//!   ago it began); when it names no node, the faults of the ten seconds before it;
//! - the store members it names: their last role changes (who led, in which term);
//! - for a violation of the store's own behaviour that names no member (it names clients
//!   and keys), the faults that hit the store in the ten seconds before it;
//! - the keys it names (`/registry/...`): their last commits before it, with the revision,
//!   and which apiserver user wrote them;
//! - the leases of leader election it names (a controller's), their last acquisitions;
//! - the last restore of a backup before it (a new cluster epoch);
//! - for a violation of the store's behaviour or of an informer's continuity, the
//!   apiserver's last compactions; for the components it names, their watches answered
//!   410 Gone and their relists;
//! - the writes of those keys that a component sent through an apiserver (for a violation
//!   naming a ReplicaSet, the writes of its pods), found by request id, each with what the
//!   component's own list and watch of that resource had reached when it sent the write: a
//!   write made from a stale informer cache shows as earlier writes of the component's own
//!   that its informer had not seen yet.
//!
//! It is a slice, not a proof: it names what the violation's own evidence touches and what
//! the nemesis did to it, in the order it happened, which is where a reader starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use api::{Resource, Verb};

use sim::report::RunReport;
use store::api::MemberId;
use store::raft::Role;
use verdict::history::{ApiOutcome, History, HistoryEvent, StoreOpOutcome};

/// How far back faults are taken when the violation names no node, in seconds.
const UNNAMED_WINDOW_SECS: f64 = 10.0;
/// The most events of each kind a slice keeps (the latest ones).
const MAX_PER_KIND: usize = 3;

/// One violation's explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub invariant: String,
    pub at_secs: f64,
    /// The history's records in the slice, as (seconds, words), in time order.
    pub slice: Vec<(f64, String)>,
    /// The paragraph.
    pub text: String,
}

/// The most writes (with the writer's view) a slice keeps: a ReplicaSet's extra pod is
/// one create more than it asked for, so the slice shows the creates around it.
const MAX_WRITES: usize = 5;

/// Key prefixes of the objects a violation names by their owner: "replicaset NS/NAME"
/// owns the pods named `NAME-...` in NS.
fn owned_prefixes(message: &str) -> Vec<String> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "replicaset")
        .filter_map(|pair| {
            let (namespace, name) = pair[1].trim_end_matches([',', '.', ':']).split_once('/')?;
            Some(format!("{}-", Resource::Pods.key(namespace, name)))
        })
        .collect()
}

/// A request in flight, as [`writers_views`] follows it to its answer.
struct Sent {
    at_ns: u64,
    verb: Verb,
    resource: Resource,
    key: String,
    /// The resourceVersion the sender's informer of `resource` had reached (`None`: the
    /// sender never listed or watched it, as kubectl or a kubelet's lease writes).
    seen: Option<i64>,
}

/// The writes of `keys` (or of keys under `prefixes`) that components sent through an
/// apiserver and that were answered OK before `at_secs`, joined from request to answer by
/// request id, each with the component's view: the resourceVersion its own list and watch
/// of that resource had reached when it sent the write, and which of its own earlier writes of
/// that resource lay beyond it (made, but not yet in its informer's cache).
fn writers_views(history: &History, keys: &BTreeSet<String>, prefixes: &[String], at_secs: f64) -> Vec<(f64, String)> {
    if keys.is_empty() && prefixes.is_empty() {
        return Vec::new();
    }
    let wanted = |key: &str| keys.contains(key) || prefixes.iter().any(|p| key.starts_with(p.as_str()));
    // Per client: the invokes in flight, the last delivered resourceVersion per resource,
    // and the revisions of its own acknowledged writes per resource.
    let mut invoked: BTreeMap<(String, u64), Sent> = BTreeMap::new();
    let mut delivered: BTreeMap<(String, Resource), i64> = BTreeMap::new();
    let mut own_writes: BTreeMap<(String, Resource), Vec<i64>> = BTreeMap::new();
    let mut out = Vec::new();
    for (at_ns, event) in history.events() {
        if at_ns as f64 / 1e9 > at_secs + 1e-9 {
            break;
        }
        match event {
            HistoryEvent::WatchDelivered { client, resource, resource_version, .. } => {
                let seen = delivered.entry((client.to_string(), *resource)).or_insert(0);
                *seen = (*seen).max(*resource_version);
            }
            HistoryEvent::ApiInvoked { client, request_id, verb, resource, namespace, name }
                if verb.is_write() || *verb == Verb::List =>
            {
                let seen = delivered.get(&(client.to_string(), *resource)).copied();
                let key = resource.key(namespace, name);
                invoked.insert(
                    (client.to_string(), *request_id),
                    Sent { at_ns, verb: *verb, resource: *resource, key, seen },
                );
            }
            HistoryEvent::ApiReturned { client, request_id, outcome: ApiOutcome::Ok { resource_version } } => {
                let Some(Sent { at_ns: sent_ns, verb, resource, key, seen }) =
                    invoked.remove(&(client.to_string(), *request_id))
                else {
                    continue;
                };
                if verb == Verb::List {
                    // A list fills the informer's cache as of its resourceVersion.
                    let seen = delivered.entry((client.to_string(), resource)).or_insert(0);
                    *seen = (*seen).max(*resource_version);
                    continue;
                }
                let mine = own_writes.entry((client.to_string(), resource)).or_default();
                if wanted(&key) {
                    let view = informer_view(resource, seen, mine);
                    out.push((
                        sent_ns as f64 / 1e9,
                        format!("{client} sent {verb:?} {key} (request {request_id}, committed at revision {resource_version}){view}"),
                    ));
                }
                mine.push(*resource_version);
            }
            HistoryEvent::ApiReturned { client, request_id, .. } => {
                invoked.remove(&(client.to_string(), *request_id));
            }
            _ => {}
        }
    }
    out
}

/// What a writer's informer of `resource` had seen when it sent a write (`seen`, the
/// last resourceVersion delivered or listed; None: nothing yet), and which of its own
/// acknowledged writes (`own_writes`) its cache did not hold yet: a clause of the write's line.
fn informer_view(resource: Resource, seen: Option<i64>, own_writes: &[i64]) -> String {
    let Some(seen) = seen else { return String::new() };
    let unseen: Vec<String> = own_writes.iter().filter(|rv| **rv > seen).map(|rv| rv.to_string()).collect();
    if unseen.is_empty() {
        format!("; its {} informer had seen up to revision {seen}", resource.plural())
    } else {
        format!(
            "; its {} informer had seen only up to revision {seen}, not its own writes at revision{} {} (its cache did not hold them yet)",
            resource.plural(),
            if unseen.len() == 1 { "" } else { "s" },
            unseen.join(", ")
        )
    }
}

/// What each invariant expects, in one clause (for the paragraph's last sentence).
fn expectation(invariant: &str) -> &'static str {
    match invariant {
        "store-single-writer" => "only an apiserver (or the store leader's lessor) changes the store",
        "raft-election-safety" => "at most one store member leads each Raft term",
        "raft-state-machine-safety" => {
            "every member applies the same entry at each index and reaches the same revision"
        }
        "linearizability" => "every read sees the latest write committed before it began",
        "no-acknowledged-write-lost" => "a write acknowledged to a client is never lost",
        "controller-single-leader" => "the writes of a leader-elected component come from one leader at a time",
        "watch-guarantees" => "a watch delivers every change of its range once, in order",
        "pod-bound-once" => "a pod is bound to one node, once",
        "convergence" => "the deployment reaches its replicas, and never more than asked",
        "backup-restore-equality" => "a restored backup holds exactly the keyspace of its revision",
        "revisions-never-go-backwards" => "no client sees a revision lower than one it saw before",
        "restore-durability" => "writes acknowledged before a backup survive its restore",
        "informer-continuity" => "a watch resumes only from a resourceVersion the apiserver gave",
        "lease-expiry" => {
            "a lease expires only on the leader, a full TTL after its last refresh on that leader's clock"
        }
        "service-ips-unique" => "no two live Services hold one ClusterIP at any revision",
        "no-lost-update" => "every acknowledged update was applied to the version its writer read",
        _ => "the invariant holds",
    }
}

/// Invariants of the store's own behaviour, whose violations name clients and keys more
/// often than members.
fn store_level(invariant: &str) -> bool {
    matches!(
        invariant,
        "linearizability"
            | "no-acknowledged-write-lost"
            | "raft-state-machine-safety"
            | "raft-election-safety"
            | "revisions-never-go-backwards"
            | "watch-guarantees"
            | "store-single-writer"
    )
}

/// Words of `text` that look like node names.
pub(crate) fn nodes_in(text: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 5] = ["store-", "apiserver-", "controller-manager-", "scheduler-", "kubelet-"];
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|word| {
            PREFIXES
                .iter()
                .any(|p| word.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
        })
        .map(str::to_string)
        .collect()
}

/// Store member ids a text names, as the checkers print them (`member 4`, `member 4's`).
pub(crate) fn members_in(text: &str) -> BTreeSet<MemberId> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "member")
        .filter_map(|pair| {
            let digits: String = pair[1].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().map(MemberId)
        })
        .collect()
}

/// The node (`store-<slot>`) each member id of the history ran on. Member ids and slots
/// differ once the operator replaces a member or restores the cluster: the initial member
/// of slot k has id k, a replacement takes the slot of the member it replaced, and a
/// restore starts its members in slots 1, 2, ... in order (`sim::operator`). Faults name
/// slots, checkers name member ids; this is how a violation's members find their faults.
pub(crate) fn member_nodes(history: &History) -> BTreeMap<MemberId, String> {
    let mut slots: BTreeMap<MemberId, u64> = BTreeMap::new();
    for (_, event) in history.events() {
        match event {
            HistoryEvent::MemberReplaced { old, new, error: None, .. } => {
                let slot = slots.get(old).copied().unwrap_or(old.get());
                slots.insert(*new, slot);
            }
            HistoryEvent::Restored { members, .. } => {
                for (slot, member) in (1..).zip(members) {
                    slots.insert(*member, slot);
                }
            }
            _ => {}
        }
    }
    let mut nodes = BTreeMap::new();
    for (_, event) in history.events() {
        if let HistoryEvent::MemberStarted { member, .. } | HistoryEvent::RoleChanged { member, .. } = event {
            let slot = slots.get(member).copied().unwrap_or(member.get());
            nodes.entry(*member).or_insert_with(|| format!("store-{slot}"));
        }
    }
    nodes
}

/// Store keys (`/registry/...`, `/smoke/...`) a text names, written out (`KEY@REVISION`
/// names the key) or as an apiserver's "not found" names an object (`NotFound: <plural>
/// <namespace>/<name>`).
fn keys_in(text: &str) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '\'' | '"' | '@' | '='))
        .filter(|word| ["/registry/", "/smoke/", "/kubesim/"].iter().any(|prefix| word.starts_with(prefix)))
        .map(|word| word.trim_end_matches(['.', ':']).to_string())
        .collect();
    for (_, rest) in text.match_indices("NotFound: ").map(|(i, m)| text.split_at(i + m.len())) {
        let mut words = rest.split_whitespace();
        let (Some(plural), Some(object)) = (words.next(), words.next()) else { continue };
        let Some(resource) = Resource::ALL.into_iter().find(|r| r.plural() == plural) else { continue };
        let (namespace, name) = object.trim_end_matches(['.', ',', ';']).split_once('/').unwrap_or(("", object));
        keys.insert(resource.key(namespace, name));
    }
    keys
}

/// Store operations a text names as `op CLIENT#ID`.
fn store_ops_in(text: &str) -> BTreeSet<(String, u64)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "op")
        .filter_map(|pair| {
            let (client, id) = pair[1].trim_end_matches([',', '.', ':']).rsplit_once('#')?;
            Some((client.to_string(), id.parse().ok()?))
        })
        .collect()
}

/// A violation whose evidence is the keyspace at the end of the run, not an instant: what
/// happened after its timestamp, up to the end, belongs to its slice.
fn judged_at_the_end(message: &str) -> bool {
    message.contains("final keyspace") || message.contains("never succeeded") || message.starts_with("at rest")
}

/// The store reads the violation names and the member that served each, with that member's
/// role then: a read a follower served from its own state, without confirming with the
/// leader, is the first suspect of a stale read.
fn serving_members(
    history: &History,
    ops: &BTreeSet<(String, u64)>,
    node_of: &impl Fn(&MemberId) -> String,
) -> Vec<(f64, MemberId, String)> {
    let mut roles: BTreeMap<MemberId, (Role, u64, Option<MemberId>)> = BTreeMap::new();
    let mut served = Vec::new();
    if ops.is_empty() {
        return served;
    }
    for (at_ns, event) in history.events() {
        match event {
            HistoryEvent::RoleChanged { member, term, role, leader } => {
                roles.insert(*member, (*role, *term, *leader));
            }
            HistoryEvent::StoreOpReturned {
                client,
                op_id,
                outcome: StoreOpOutcome::Read { revision, served_by, .. },
            } if ops.contains(&(client.to_string(), *op_id)) => {
                let role = match roles.get(served_by) {
                    Some((Role::Leader, term, _)) => format!("the leader of term {term}"),
                    Some((role, term, Some(leader))) => {
                        format!("a {role:?} in term {term} ({leader} led)")
                    }
                    Some((role, term, None)) => format!("a {role:?} in term {term}"),
                    None => "a member that had not changed role yet".to_string(),
                };
                served.push((
                    at_ns as f64 / 1e9,
                    *served_by,
                    format!(
                        "{served_by} (on {}), {role}, served op {client}#{op_id}'s read at revision {revision}",
                        node_of(served_by)
                    ),
                ));
            }
            _ => {}
        }
    }
    served
}

/// What a lasting fault does to a node until its end line: a crash until the restart, a
/// pause until the resume, a clock skew until the reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lasting {
    Down,
    Paused,
    Skewed,
}

impl Lasting {
    /// The word the HTML report marks its band with.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lasting::Down => "down",
            Lasting::Paused => "paused",
            Lasting::Skewed => "skewed",
        }
    }
}

/// Whether a nemesis line (`t=12345ms WHAT ...`) begins (`true`) or ends (`false`) a
/// lasting fault on the nodes it names.
pub(crate) fn lasting(description: &str) -> Option<(Lasting, bool)> {
    let what = description.split_whitespace().find(|w| !w.starts_with("t="))?;
    match what {
        "crash" => Some((Lasting::Down, true)),
        "restart" => Some((Lasting::Down, false)),
        "pause" => Some((Lasting::Paused, true)),
        "resume" => Some((Lasting::Paused, false)),
        "clock-skew" => Some((Lasting::Skewed, true)),
        "reset" => Some((Lasting::Skewed, false)),
        _ => None,
    }
}

/// The explanation of each violation of a failing run.
pub fn explain(report: &RunReport, history: &History) -> Vec<Explanation> {
    report
        .failures()
        .map(|check| {
            let (at_secs, message) =
                sim::report::timed_violations(&check.detail).next().unwrap_or((None, &check.detail));
            explain_one(&check.name, at_secs.unwrap_or(report.simulated_secs), message, history)
        })
        .collect()
}

/// One violation's explanation: what it names, the evidence the history holds about
/// that before it, and the slice kept of that evidence.
fn explain_one(invariant: &str, at_secs: f64, message: &str, history: &History) -> Explanation {
    let member_nodes = member_nodes(history);
    let node_of =
        |member: &MemberId| member_nodes.get(member).cloned().unwrap_or_else(|| format!("store-{}", member.get()));
    let reads = serving_members(history, &store_ops_in(message), &node_of);
    let mut members = members_in(message);
    members.extend(reads.iter().map(|(_, member, _)| *member));
    let mut nodes = nodes_in(message);
    nodes.extend(members.iter().map(node_of));
    let keys = keys_in(message);
    // The evidence of a violation judged at the end of the run is the whole run.
    let whole_run = judged_at_the_end(message);
    let violation = Violated { invariant, at_secs, nodes: &nodes, members: &members };
    let mut evidence = Evidence::default();
    for (at_ns, event) in history.events() {
        if whole_run || (at_ns as f64 / 1e9) <= at_secs + 1e-9 {
            evidence.note(at_ns as f64 / 1e9, event, &violation, message, &keys);
        }
    }
    let writes = writers_views(history, &keys, &owned_prefixes(message), at_secs);
    let slice = evidence.into_slice(&nodes, reads, writes);
    let text = words(invariant, at_secs, message, &slice, whole_run);
    Explanation { invariant: invariant.to_string(), at_secs, slice, text }
}

/// What the history holds about a violation before it, by kind, as (seconds, words).
#[derive(Default)]
struct Evidence<'h> {
    /// The last write of each key the violation names (its latest version, which no
    /// compaction may remove), as the history's own commits tell.
    last_write: BTreeMap<&'h str, i64>,
    snapshots: Vec<(f64, String)>,
    faults: Vec<(f64, String)>,
    /// Lasting faults begun and not yet ended, by the node they hit.
    in_effect: BTreeMap<(String, Lasting), (f64, String)>,
    roles: Vec<(f64, String)>,
    commits: Vec<(f64, String)>,
    leaders: Vec<(f64, String)>,
    compactions: Vec<(f64, String)>,
    relists: Vec<(f64, String)>,
    cache_answers: Vec<(f64, String)>,
    restores: Vec<(f64, String)>,
}

impl<'h> Evidence<'h> {
    /// Takes in one event of the history at `at` seconds, if the violation concerns it.
    fn note(&mut self, at: f64, event: &'h HistoryEvent, violation: &Violated, message: &str, keys: &BTreeSet<String>) {
        let Violated { invariant, nodes, members, .. } = *violation;
        match event {
            // A fault the nemesis skipped, disarmed or that was never reached did nothing;
            // arming a failpoint does nothing either until a member reaches it, which has a
            // line of its own ("store-5 reached failpoint ...: crash").
            HistoryEvent::Fault { description }
                if description.ends_with("skipped")
                    || description.ends_with("not reached")
                    || matches!(description.split_whitespace().nth(1), Some("disarm" | "arm")) => {}
            HistoryEvent::Fault { description } => self.note_fault(at, description, violation),
            HistoryEvent::RoleChanged { member, term, role, .. } if members.contains(member) => {
                self.roles.push((at, format!("{member} became {role:?} in term {term}")));
            }
            HistoryEvent::Committed { revision, changes } => {
                for change in changes.iter().filter(|c| keys.contains(&c.key)) {
                    let what = if change.value_hash.is_some() { "written" } else { "deleted" };
                    self.commits.push((at, format!("{} {what} at revision {revision}", change.key)));
                    self.last_write.insert(change.key.as_str(), *revision);
                }
            }
            HistoryEvent::SnapshotInstalled { member, index, revision }
            | HistoryEvent::SnapshotRecovered { member, index, revision }
                if members.contains(member) =>
            {
                let how = if matches!(event, HistoryEvent::SnapshotInstalled { .. }) {
                    "installed a snapshot the leader sent"
                } else {
                    "restarted from its own snapshot"
                };
                self.snapshots.push((at, format!("{member} {how}, covering index {index} (revision {revision})")));
            }
            HistoryEvent::StoreCompacted { apiserver, revision }
                if self.last_write.iter().any(|(_, written)| written < revision) =>
            {
                self.note_compaction_below_last_write(at, apiserver.as_str(), *revision);
            }
            HistoryEvent::StoreWrite { user, verb, key, revision, .. } if keys.contains(key) => {
                self.commits.push((at, format!("{user} {verb:?} {key} committed at revision {revision}")));
            }
            HistoryEvent::Restored { backup, backup_revision, bump, new_revision, .. } => {
                self.restores.push((
                    at,
                    format!(
                        "the operator restored backup {backup} (revision {backup_revision}) as a new cluster starting at revision {new_revision} (bump {bump})"
                    ),
                ));
            }
            HistoryEvent::StoreCompacted { apiserver, revision }
                if store_level(invariant) || invariant == "informer-continuity" =>
            {
                self.compactions.push((at, format!("{apiserver} compacted the store up to revision {revision}")));
            }
            HistoryEvent::WatchGone { client, resource, since, compacted, .. } if nodes.contains(client.as_str()) => {
                self.relists.push((
                    at,
                    format!(
                        "{client}'s {} watch from resourceVersion {since} was answered 410 Gone (compacted at {compacted})",
                        resource.plural()
                    ),
                ));
            }
            HistoryEvent::WatchServedBelowWindow { apiserver, resource, since, window_start, .. }
                if invariant == "watch-guarantees" && message.contains(&format!(" {} ", resource.plural())) =>
            {
                self.cache_answers.push((
                    at,
                    format!(
                        "{apiserver} answered a {} watch from resourceVersion {since} out of its watch cache, which had already evicted every revision up to {window_start} (a correct cache answers 410 Gone)",
                        resource.plural()
                    ),
                ));
            }
            HistoryEvent::Relisted { who, resource, resource_version, .. } if nodes.contains(who.as_str()) => {
                self.relists.push((at, format!("{who} relisted {resource} at resourceVersion {resource_version}")));
            }
            HistoryEvent::LeaderAcquired { component, identity, lease_resource_version, .. }
                if invariant == "controller-single-leader" || message.contains(identity.as_str()) =>
            {
                self.leaders.push((
                    at,
                    format!("{identity} acquired the {component} lease (revision {lease_resource_version})"),
                ));
            }
            _ => {}
        }
    }

    /// A nemesis line: it begins or ends a lasting fault on the nodes it names, and is kept
    /// if it concerns the violation (a lasting fault by its beginning only).
    fn note_fault(&mut self, at: f64, description: &str, violation: &Violated) {
        let named = nodes_in(description);
        if let Some((kind, begins)) = lasting(description) {
            for node in &named {
                if begins {
                    self.in_effect.insert((node.clone(), kind), (at, description.to_string()));
                } else {
                    self.in_effect.remove(&(node.clone(), kind));
                }
            }
        }
        if violation.concerns_fault(description, &named, at) && lasting(description).is_none_or(|(_, begins)| begins) {
            self.faults.push((at, format!("the nemesis: {description}")));
        }
    }

    /// A compaction above a named key's last write had to keep that write: if the key went
    /// missing, this is where to look.
    fn note_compaction_below_last_write(&mut self, at: f64, apiserver: &str, revision: i64) {
        let (key, written) = self
            .last_write
            .iter()
            .filter(|(_, written)| **written < revision)
            .max_by_key(|(_, written)| **written)
            .expect("filtered on it");
        self.compactions.push((
            at,
            format!(
                "{apiserver} compacted the store up to revision {revision}, which must keep {key}'s latest version (revision {written})"
            ),
        ));
    }

    /// The slice: lasting faults still in effect on the named nodes (however long ago they
    /// began), then the latest events of each kind, in time order.
    fn into_slice(
        self,
        nodes: &BTreeSet<String>,
        reads: Vec<(f64, MemberId, String)>,
        writes: Vec<(f64, String)>,
    ) -> Vec<(f64, String)> {
        let keep_last = |mut v: Vec<(f64, String)>, n: usize| {
            let drop = v.len().saturating_sub(n);
            v.drain(..drop);
            v
        };
        let mut slice: Vec<(f64, String)> = Vec::new();
        let lasting_now: Vec<(f64, String)> = self
            .in_effect
            .into_iter()
            .filter(|((node, _), _)| nodes.is_empty() || nodes.contains(node))
            .map(|(_, (at, description))| (at, format!("the nemesis: {description} (still in effect)")))
            .collect();
        slice.extend(lasting_now.iter().cloned());
        slice.extend(
            keep_last(self.faults, MAX_PER_KIND * 2)
                .into_iter()
                .filter(|(at, words)| !lasting_now.iter().any(|(t, w)| t == at && w.starts_with(words.as_str()))),
        );
        slice.extend(keep_last(self.roles, MAX_PER_KIND));
        slice.extend(keep_last(self.snapshots, MAX_PER_KIND));
        slice.extend(reads.into_iter().map(|(at, _, words)| (at, words)));
        slice.extend(keep_last(self.commits, MAX_PER_KIND));
        slice.extend(keep_last(self.leaders, MAX_PER_KIND));
        slice.extend(keep_last(writes, MAX_WRITES));
        slice.extend(keep_last(self.compactions, MAX_PER_KIND));
        slice.extend(keep_last(self.relists, MAX_PER_KIND));
        slice.extend(keep_last(self.cache_answers, MAX_PER_KIND));
        slice.extend(keep_last(self.restores, 1));
        slice.sort_by(|a, b| a.0.total_cmp(&b.0));
        slice.dedup();
        slice
    }
}

/// What a violation names, as the explanation looks for what came before it.
struct Violated<'a> {
    invariant: &'a str,
    at_secs: f64,
    /// The nodes it names, members' nodes included.
    nodes: &'a BTreeSet<String>,
    /// The store members it names by id.
    members: &'a BTreeSet<MemberId>,
}

impl Violated<'_> {
    /// Whether a nemesis line at `at` naming `named` belongs in the slice: a fault on a
    /// node the violation names; for a violation naming members, any store fault that
    /// names no member (a power loss or a fault aimed at the store leader hits whichever
    /// led); for a violation naming nothing, or a store-level one naming clients, not
    /// members, the recent faults (of the store).
    fn concerns_fault(&self, description: &str, named: &BTreeSet<String>, at: f64) -> bool {
        let recent = at >= self.at_secs - UNNAMED_WINDOW_SECS;
        let on_store = named.iter().any(|n| n.starts_with("store-"))
            || description.contains("power-loss")
            || description.contains("store-leader");
        if self.nodes.is_empty() {
            return recent;
        }
        named.iter().any(|n| self.nodes.contains(n))
            || !self.members.is_empty() && on_store && !named.iter().any(|n| n.starts_with("store-"))
            || self.members.is_empty() && store_level(self.invariant) && on_store && recent
    }
}

/// The paragraph a failing `run` prints: the violation, the slice before it, and what
/// the invariant expected.
fn words(invariant: &str, at_secs: f64, message: &str, slice: &[(f64, String)], whole_run: bool) -> String {
    let mut text = format!("At {at_secs:.3}s {invariant} failed: {message}.");
    if slice.is_empty() {
        text.push_str(" No fault or event the violation names came before it in the history.");
    } else {
        text.push_str(if whole_run { " In the run:" } else { " Before it:" });
        for (i, (at, words)) in slice.iter().enumerate() {
            let _ = write!(text, "{} at {at:.3}s {words}", if i == 0 { "" } else { ";" });
        }
        text.push('.');
    }
    let _ = write!(text, " The invariant expected that {}.", expectation(invariant));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict::history::Record;

    fn history(events: Vec<(u64, HistoryEvent)>) -> History {
        History {
            records: events.into_iter().map(|(at_ms, event)| Record { at_ns: at_ms * 1_000_000, event }).collect(),
            trace_hash: 0,
            overflowed: false,
        }
    }

    #[test]
    fn a_replaced_members_faults_are_found_on_the_slot_it_runs_in() {
        let h = history(vec![
            (1_000, HistoryEvent::DiskLost { member: MemberId(1) }),
            (
                2_000,
                HistoryEvent::MemberReplaced {
                    old: MemberId(1),
                    new: MemberId(4),
                    addr: "10.0.1.4:2379".into(),
                    error: None,
                },
            ),
            (
                3_000,
                HistoryEvent::RoleChanged {
                    member: MemberId(4),
                    term: 5,
                    role: store::raft::Role::Leader,
                    leader: Some(MemberId(4)),
                },
            ),
            (
                4_000,
                HistoryEvent::Fault { description: "t=4000ms clock-skew store-1 offset 9000ms drift 0ms/s".into() },
            ),
            (5_000, HistoryEvent::Fault { description: "t=5000ms pause kubelet-1".into() }),
        ]);
        let e = explain_one("lease-expiry", 12.0, "member 4 expired lease 1 (TTL 10 s) at 12000 ms on its clock", &h);
        assert!(e.text.contains("clock-skew store-1 offset 9000ms drift 0ms/s (still in effect)"), "{}", e.text);
        assert!(e.text.contains("member 4 became Leader in term 5"), "{}", e.text);
        assert!(!e.text.contains("kubelet-1"), "a fault on a node the violation does not name: {}", e.text);
    }

    #[test]
    fn the_slice_names_the_faults_on_the_nodes_and_the_roles_of_the_members_the_violation_names() {
        let h = history(vec![
            (1_000, HistoryEvent::Fault { description: "t=1000ms pause kubelet-1".into() }),
            (2_000, HistoryEvent::Fault { description: "t=2000ms crash store-2 (power loss)".into() }),
            (
                3_000,
                HistoryEvent::RoleChanged {
                    member: MemberId(2),
                    term: 4,
                    role: store::raft::Role::Leader,
                    leader: Some(MemberId(2)),
                },
            ),
            (
                9_000,
                HistoryEvent::Fault { description: "t=9000ms clock-skew store-2 offset 9000ms drift 0ms/s".into() },
            ),
            (20_000, HistoryEvent::Fault { description: "t=20000ms crash store-1".into() }),
        ]);
        let e = explain_one("lease-expiry", 12.0, "member 2 expired lease 1 (TTL 10 s) at 12000 ms on its clock", &h);
        assert!(e.text.starts_with("At 12.000s lease-expiry failed: member 2 expired lease 1"), "{}", e.text);
        assert!(e.text.contains("clock-skew store-2 offset 9000ms drift 0ms/s (still in effect)"), "{}", e.text);
        assert!(e.text.contains("member 2 became Leader in term 4"), "{}", e.text);
        assert!(!e.text.contains("kubelet-1"), "a fault on a node the violation does not name: {}", e.text);
        assert!(!e.text.contains("store-1"), "a fault after the violation: {}", e.text);
        assert!(e.text.ends_with("The invariant expected that a lease expires only on the leader, a full TTL after its last refresh on that leader's clock."), "{}", e.text);
    }
    #[test]
    fn a_stale_read_names_the_member_that_served_it_and_its_role() {
        use verdict::history::StoreOpKind;
        let h = history(vec![
            (
                1_000,
                HistoryEvent::RoleChanged {
                    member: MemberId(1),
                    term: 2,
                    role: store::raft::Role::Leader,
                    leader: Some(MemberId(1)),
                },
            ),
            (
                1_000,
                HistoryEvent::RoleChanged {
                    member: MemberId(3),
                    term: 2,
                    role: store::raft::Role::Follower,
                    leader: Some(MemberId(1)),
                },
            ),
            (2_000, HistoryEvent::Fault { description: "t=2000ms partition {store-3} | {store-1, store-2}".into() }),
            (2_000, HistoryEvent::Fault { description: "t=2000ms pause kubelet-0".into() }),
            (
                3_000,
                HistoryEvent::StoreOpInvoked {
                    client: "c/1".into(),
                    op_id: 7,
                    op: StoreOpKind::Get { key: "/k".into() },
                },
            ),
            (
                3_001,
                HistoryEvent::StoreOpReturned {
                    client: "c/1".into(),
                    op_id: 7,
                    outcome: StoreOpOutcome::Read { revision: 4, value: None, mod_revision: 0, served_by: MemberId(3) },
                },
            ),
        ]);
        let e = explain_one(
            "linearizability",
            3.001,
            "real-time order: op c/1#7 (get /k) was served at revision 4, but op c/0#9 (put /k=v) had already completed at revision 5",
            &h,
        );
        assert!(
            e.text.contains(
                "member 3 (on store-3), a Follower in term 2 (member 1 led), served op c/1#7's read at revision 4"
            ),
            "{}",
            e.text
        );
        assert!(e.text.contains("partition {store-3}"), "the serving member's faults: {}", e.text);
        assert!(!e.text.contains("kubelet-0"), "{}", e.text);
    }

    #[test]
    fn a_missing_key_names_the_compactions_that_had_to_keep_its_latest_version() {
        use verdict::history::KeyState;
        let key = "/registry/namespaces/default";
        let written = KeyState {
            key: key.into(),
            value_hash: Some(1),
            value_len: 1,
            create_revision: 6,
            mod_revision: 6,
            version: 1,
        };
        let h = history(vec![
            (1_000, HistoryEvent::StoreCompacted { apiserver: "apiserver-0".into(), revision: 3 }),
            (1_290, HistoryEvent::Committed { revision: 6, changes: vec![written] }),
            (40_000, HistoryEvent::StoreCompacted { apiserver: "apiserver-0".into(), revision: 421 }),
        ]);
        assert_eq!(
            keys_in("kubectl create and scale never succeeded: 404 NotFound: namespaces /default"),
            BTreeSet::from([key.to_string()])
        );
        let e = explain_one(
            "convergence",
            30.0,
            "kubectl create and scale never succeeded: 404 NotFound: namespaces /default",
            &h,
        );
        assert!(e.text.contains("In the run:"), "judged at the end, so later records count: {}", e.text);
        assert!(
            e.text.contains("at 40.000s apiserver-0 compacted the store up to revision 421, which must keep /registry/namespaces/default's latest version (revision 6)"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("revision 3,"), "a compaction below the write keeps it anyway: {}", e.text);
    }

    #[test]
    fn a_missed_watch_event_names_the_cache_answer_from_below_its_window() {
        let h = history(vec![
            (
                1_000,
                HistoryEvent::WatchServedBelowWindow {
                    apiserver: "apiserver-0".into(),
                    resource: Resource::Pods,
                    namespace: String::new(),
                    since: 10,
                    window_start: 30,
                },
            ),
            (
                1_500,
                HistoryEvent::WatchServedBelowWindow {
                    apiserver: "apiserver-0".into(),
                    resource: Resource::Deployments,
                    namespace: String::new(),
                    since: 149,
                    window_start: 160,
                },
            ),
        ]);
        let e = explain_one(
            "watch-guarantees",
            2.0,
            "controller-manager-0's watch of deployments from 149 to 188: missed /registry/deployments/default/web@154 (UpdateStatus by admin)",
            &h,
        );
        assert!(
            e.text.contains("at 1.500s apiserver-0 answered a deployments watch from resourceVersion 149 out of its watch cache, which had already evicted every revision up to 160"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("pods watch"), "another resource's answer: {}", e.text);
    }

    #[test]
    fn a_diverging_member_names_the_snapshot_it_installed() {
        let h = history(vec![
            (1_000, HistoryEvent::SnapshotInstalled { member: MemberId(3), index: 60, revision: 52 }),
            (1_000, HistoryEvent::SnapshotInstalled { member: MemberId(1), index: 60, revision: 52 }),
        ]);
        let e = explain_one(
            "raft-state-machine-safety",
            2.0,
            "member 3 applied proposal 5 of term 9 (succeeded, 1 events, revision 53) at index 61, but member 2 applied it at revision 54",
            &h,
        );
        assert!(
            e.text.contains("member 3 installed a snapshot the leader sent, covering index 60 (revision 52)"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("member 1 "), "{}", e.text);
    }

    #[test]
    fn a_write_from_a_stale_informer_cache_names_the_writers_own_writes_its_cache_lacked() {
        let invoke = |request_id, verb, resource, name: &str| HistoryEvent::ApiInvoked {
            client: "controller-manager-1".into(),
            request_id,
            verb,
            resource,
            namespace: "default".into(),
            name: name.into(),
        };
        let ok = |request_id, resource_version| HistoryEvent::ApiReturned {
            client: "controller-manager-1".into(),
            request_id,
            outcome: ApiOutcome::Ok { resource_version },
        };
        let h = history(vec![
            (1_000, invoke(1, Verb::List, Resource::Pods, "")),
            (1_001, ok(1, 12)),
            (2_000, invoke(2, Verb::Create, Resource::Pods, "web-abc-1")),
            (2_001, ok(2, 24)),
            (2_100, invoke(3, Verb::Create, Resource::Pods, "web-abc-2")),
            (2_101, ok(3, 27)),
            // Another ReplicaSet's pod: not in the slice.
            (2_200, invoke(4, Verb::Create, Resource::Pods, "other-1")),
            (2_201, ok(4, 28)),
            // A client that never listed pods: no view to tell.
            (
                2_300,
                HistoryEvent::ApiInvoked {
                    client: "kubectl".into(),
                    request_id: 9,
                    verb: Verb::Create,
                    resource: Resource::Pods,
                    namespace: "default".into(),
                    name: "web-abc-3".into(),
                },
            ),
            (
                2_301,
                HistoryEvent::ApiReturned {
                    client: "kubectl".into(),
                    request_id: 9,
                    outcome: ApiOutcome::Ok { resource_version: 29 },
                },
            ),
        ]);
        let e = explain_one(
            "convergence",
            3.0,
            "replicaset default/web-abc had 2 live pods at revision 27 while deployment default/web was never asked for more than 1",
            &h,
        );
        assert!(
            e.text.contains("controller-manager-1 sent Create /registry/pods/default/web-abc-1 (request 2, committed at revision 24); its pods informer had seen up to revision 12"),
            "{}",
            e.text
        );
        assert!(
            e.text.contains("its pods informer had seen only up to revision 12, not its own writes at revision 24 (its cache did not hold them yet)"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("other-1"), "a pod of another ReplicaSet: {}", e.text);
        assert!(
            e.text
                .contains("kubectl sent Create /registry/pods/default/web-abc-3 (request 9, committed at revision 29)"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("revision 29); its"), "a view for a client that never listed: {}", e.text);
    }
    #[test]
    fn an_informer_continuity_violation_names_the_410_its_client_got_and_the_compaction() {
        let h = history(vec![
            (1_000, HistoryEvent::StoreCompacted { apiserver: "apiserver-0".into(), revision: 29 }),
            (
                1_100,
                HistoryEvent::WatchGone {
                    client: "controller-manager-1".into(),
                    resource: Resource::Deployments,
                    namespace: String::new(),
                    since: 28,
                    compacted: 29,
                },
            ),
            (
                1_100,
                HistoryEvent::WatchGone {
                    client: "kubelet-0".into(),
                    resource: Resource::Pods,
                    namespace: String::new(),
                    since: 27,
                    compacted: 29,
                },
            ),
        ]);
        let e = explain_one(
            "informer-continuity",
            2.0,
            "controller-manager-1 watched deployments in all namespaces from resourceVersion 30, which no list or watch answer of that stream gave it",
            &h,
        );
        assert!(e.text.contains("at 1.000s apiserver-0 compacted the store up to revision 29"), "{}", e.text);
        assert!(
            e.text.contains("controller-manager-1's deployments watch from resourceVersion 28 was answered 410 Gone (compacted at 29)"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("kubelet-0"), "a client the violation does not name: {}", e.text);
    }
}
