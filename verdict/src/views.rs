//! Views of a finished history: its invocation and return records paired into operations,
//! the way the checkers read them.
//!
//! A client's store operation is two records, `StoreOpInvoked` and `StoreOpReturned`, and
//! so is a component's request to an apiserver (`ApiInvoked`, `ApiReturned`); both name the
//! operation by its client and the id the client gave it (`op_id`, `request_id`). A view
//! pairs them once per history, in one pass over the records, and every checker reads the
//! same pairing. A view borrows from the [`History`]: it copies no record.
//!
//! The rules, the same for both kinds:
//! - an invocation opens an operation, even when its client and id were used before (an
//!   id reused is reported as [`MalformedKind::InvokedTwice`] and the newer operation is the
//!   one later returns answer);
//! - a return answers the latest invocation with its client and id, if that has no return
//!   yet; otherwise it answers nothing and is reported ([`MalformedKind::ReturnedTwice`],
//!   [`MalformedKind::NeverInvoked`]);
//! - an operation without a return is pending: it may or may not have taken effect (the
//!   client timed out or stopped, or the run ended first), and every checker must allow
//!   both.
//!
//! The recorder never reuses an id (the store workload counts per client, the API client
//! draws a random prefix per process), so a well-formed history has no malformed record.
//!
//! ```
//! use verdict::checkers::testing::h;
//! use verdict::history::StoreOpOutcome;
//! use verdict::views::StoreOps;
//!
//! let history = h().put("c1", 1, "/k", "v1").get("c2", 1, "/k").written("c1", 1, 2).build();
//! let ops = StoreOps::of(&history);
//! assert_eq!(ops.len(), 2);
//! let put = &ops[0];
//! assert_eq!((put.client, put.id, put.invoked.record_idx), ("c1", 1, 0));
//! let returned = put.returned.expect("the put returned");
//! assert_eq!(returned.at.record_idx, 2);
//! assert_eq!(returned.outcome, &StoreOpOutcome::Written { revision: 2, succeeded: true });
//! assert!(ops[1].returned.is_none(), "the get is pending");
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Index;

use api::{Resource, Verb};

use crate::history::{ApiOutcome, History, HistoryEvent, StoreOpKind, StoreOpOutcome};

/// Where a record lies in its history: its index among the records, the order every
/// checker compares (several records may share a simulated instant), and its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    pub record_idx: usize,
    /// Simulated nanoseconds since the run began.
    pub at_ns: u64,
}

/// One operation of a client: its invocation and, if one was recorded, its return.
#[derive(Debug)]
pub struct Operation<'h, Invocation, Outcome> {
    /// Who invoked it: a store workload client, or the user an API client authenticates as.
    pub client: &'h str,
    /// The id the client gave it (`op_id`, `request_id`): with `client`, what its return names.
    pub id: u64,
    /// What was asked.
    pub invocation: Invocation,
    pub invoked: Moment,
    /// `None`: the operation is pending. It may or may not have taken effect.
    pub returned: Option<Returned<'h, Outcome>>,
}

/// The return of an operation.
#[derive(Debug)]
pub struct Returned<'h, Outcome> {
    pub at: Moment,
    pub outcome: &'h Outcome,
}

// Copied whatever the outcome type: they hold only a reference to it (a derive would ask
// `Outcome: Copy`).
impl<Invocation: Copy, Outcome> Clone for Operation<'_, Invocation, Outcome> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Invocation: Copy, Outcome> Copy for Operation<'_, Invocation, Outcome> {}

impl<Outcome> Clone for Returned<'_, Outcome> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Outcome> Copy for Returned<'_, Outcome> {}

/// A record the pairing could not place as the rules say (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed<'h> {
    pub kind: MalformedKind,
    pub client: &'h str,
    pub id: u64,
    pub at: Moment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MalformedKind {
    /// An invocation reused the client and id of an earlier one; it opened an operation.
    InvokedTwice,
    /// A return named an operation that had returned already; it answered nothing.
    ReturnedTwice,
    /// A return named no invocation before it; it answered nothing.
    NeverInvoked,
}

/// Every operation of one kind in a history, paired once (see the module documentation).
#[derive(Debug)]
pub struct Operations<'h, Invocation, Outcome> {
    /// In invocation order, which is record order.
    operations: Vec<Operation<'h, Invocation, Outcome>>,
    /// Indexes into `operations` of those that returned, in return order.
    returned: Vec<usize>,
    /// In record order.
    malformed: Vec<Malformed<'h>>,
}

/// A client's operation on the store: `StoreOpInvoked` and its `StoreOpReturned`.
pub type StoreOp<'h> = Operation<'h, &'h StoreOpKind, StoreOpOutcome>;
/// Every store operation of a history: [`StoreOps::of`].
pub type StoreOps<'h> = Operations<'h, &'h StoreOpKind, StoreOpOutcome>;
/// A component's request to an apiserver: `ApiInvoked` and its `ApiReturned`. Watches are
/// not among them (the recorder keeps their answers as `WatchDelivered`).
pub type ApiOp<'h> = Operation<'h, ApiInvocation<'h>, ApiOutcome>;
/// Every API request of a history: [`ApiOps::of`].
pub type ApiOps<'h> = Operations<'h, ApiInvocation<'h>, ApiOutcome>;

/// What an API request asked: the fields of its `ApiInvoked` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiInvocation<'h> {
    pub verb: Verb,
    pub resource: Resource,
    /// Empty for cluster-scoped objects and for lists of all namespaces.
    pub namespace: &'h str,
    /// Empty for lists.
    pub name: &'h str,
}

impl<'h> StoreOps<'h> {
    /// Pairs the history's `StoreOpInvoked` and `StoreOpReturned` records.
    pub fn of(history: &'h History) -> Self {
        pair(history, |event| match event {
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                Some(Step::Invoked { client: client.as_str(), id: *op_id, invocation: op })
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                Some(Step::Returned { client: client.as_str(), id: *op_id, outcome })
            }
            _ => None,
        })
    }
}

impl<'h> ApiOps<'h> {
    /// Pairs the history's `ApiInvoked` and `ApiReturned` records.
    pub fn of(history: &'h History) -> Self {
        pair(history, |event| match event {
            HistoryEvent::ApiInvoked { client, request_id, verb, resource, namespace, name } => {
                let invocation = ApiInvocation { verb: *verb, resource: *resource, namespace, name };
                Some(Step::Invoked { client: client.as_str(), id: *request_id, invocation })
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                Some(Step::Returned { client: client.as_str(), id: *request_id, outcome })
            }
            _ => None,
        })
    }
}

impl<'h, Invocation, Outcome> Operations<'h, Invocation, Outcome> {
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Every operation, pending or not, in invocation order; `ops[i]` is the `i`th.
    pub fn iter(&self) -> std::slice::Iter<'_, Operation<'h, Invocation, Outcome>> {
        self.operations.iter()
    }

    /// The operations that returned, in the order of their returns.
    pub fn in_return_order(&self) -> impl Iterator<Item = &Operation<'h, Invocation, Outcome>> {
        self.returned.iter().map(|&op_idx| &self.operations[op_idx])
    }

    /// The index of the operation the record at `record_idx` invoked, if it is an invocation.
    /// For checkers that walk the records and keep state per operation.
    pub fn invoked_at(&self, record_idx: usize) -> Option<usize> {
        self.operations.binary_search_by_key(&record_idx, |op| op.invoked.record_idx).ok()
    }

    /// The index of the operation the record at `record_idx` answered, if it is a return
    /// that answered one.
    pub fn returned_at(&self, record_idx: usize) -> Option<usize> {
        let position = self.returned.binary_search_by_key(&record_idx, |&op_idx| self.returned_idx(op_idx)).ok()?;
        Some(self.returned[position])
    }

    /// The records that broke the pairing rules, in record order: none in a well-formed
    /// history.
    pub fn malformed(&self) -> &[Malformed<'h>] {
        &self.malformed
    }

    fn returned_idx(&self, op_idx: usize) -> usize {
        self.operations[op_idx].returned.as_ref().expect("only returned operations are listed").at.record_idx
    }
}

impl<'h, Invocation, Outcome> Index<usize> for Operations<'h, Invocation, Outcome> {
    type Output = Operation<'h, Invocation, Outcome>;

    fn index(&self, op_idx: usize) -> &Self::Output {
        &self.operations[op_idx]
    }
}

impl<'a, 'h, Invocation, Outcome> IntoIterator for &'a Operations<'h, Invocation, Outcome> {
    type Item = &'a Operation<'h, Invocation, Outcome>;
    type IntoIter = std::slice::Iter<'a, Operation<'h, Invocation, Outcome>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What one record does to the pairing.
enum Step<'h, Invocation, Outcome> {
    Invoked { client: &'h str, id: u64, invocation: Invocation },
    Returned { client: &'h str, id: u64, outcome: &'h Outcome },
}

/// The one pass that pairs a history's records of one kind; `step_of` picks them out.
fn pair<'h, Invocation, Outcome>(
    history: &'h History,
    step_of: impl Fn(&'h HistoryEvent) -> Option<Step<'h, Invocation, Outcome>>,
) -> Operations<'h, Invocation, Outcome> {
    let mut view = Operations { operations: Vec::new(), returned: Vec::new(), malformed: Vec::new() };
    // (client, id) -> the latest operation invoked under it.
    let mut latest: HashMap<(&'h str, u64), usize, BuildHasherDefault<FxHasher>> = HashMap::default();
    for (record_idx, record) in history.records.iter().enumerate() {
        let Some(step) = step_of(&record.event) else { continue };
        let at = Moment { record_idx, at_ns: record.at_ns };
        match step {
            Step::Invoked { client, id, invocation } => {
                if latest.insert((client, id), view.operations.len()).is_some() {
                    view.malformed.push(Malformed { kind: MalformedKind::InvokedTwice, client, id, at });
                }
                view.operations.push(Operation { client, id, invocation, invoked: at, returned: None });
            }
            Step::Returned { client, id, outcome } => {
                let kind = match latest.get(&(client, id)) {
                    Some(&op_idx) if view.operations[op_idx].returned.is_none() => {
                        view.operations[op_idx].returned = Some(Returned { at, outcome });
                        view.returned.push(op_idx);
                        continue;
                    }
                    Some(_) => MalformedKind::ReturnedTwice,
                    None => MalformedKind::NeverInvoked,
                };
                view.malformed.push(Malformed { kind, client, id, at });
            }
        }
    }
    // Record order is the order checkers compare: invocations and returns are listed in it.
    debug_assert!(view.operations.windows(2).all(|w| w[0].invoked.record_idx < w[1].invoked.record_idx));
    debug_assert!(view.returned.windows(2).all(|w| view.returned_idx(w[0]) < view.returned_idx(w[1])));
    view
}

/// rustc's FxHash, for the pairing's map: several times cheaper than std's SipHash on
/// short client names and ids, and the pairing is most of a view's cost. Keys come from
/// the history, not from an adversary, so a hash without a random key is enough.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use api::{Resource, Verb};

    use store::api::MemberId;

    use super::{ApiOps, Operations, StoreOps};
    use crate::checkers::testing::h;
    use crate::history::History;

    /// The view as lines: each operation in invocation order ("client#id invocation
    /// @record -> outcome @record", or "pending"), then the return order, then each
    /// malformed record.
    fn render<Invocation: Debug, Outcome: Debug>(view: &Operations<Invocation, Outcome>) -> String {
        let mut lines: Vec<String> = view
            .iter()
            .map(|op| {
                let returned = match &op.returned {
                    Some(returned) => format!("{:?} @{}", returned.outcome, returned.at.record_idx),
                    None => "pending".to_string(),
                };
                format!("{}#{} {:?} @{} -> {returned}", op.client, op.id, op.invocation, op.invoked.record_idx)
            })
            .collect();
        let order: Vec<String> = view.in_return_order().map(|op| format!("{}#{}", op.client, op.id)).collect();
        lines.push(format!("returned: {}", order.join(" ")).trim_end().to_string());
        lines.extend(
            view.malformed().iter().map(|m| format!("{:?} {}#{} @{}", m.kind, m.client, m.id, m.at.record_idx)),
        );
        lines.join("\n")
    }

    fn check_store_ops(history: &History, expect: &str) {
        assert_eq!(render(&StoreOps::of(history)), expect.trim());
    }

    fn check_api_ops(history: &History, expect: &str) {
        assert_eq!(render(&ApiOps::of(history)), expect.trim());
    }

    #[test]
    fn store_ops_pair_concurrent_operations_and_keep_pending_ones() {
        let history = h()
            .put("c1", 1, "/k", "a")
            .get("c2", 1, "/k")
            .put("c3", 1, "/k", "b")
            .read("c2", 1, 2, Some("a"), 2)
            .written("c1", 1, 2)
            .unknown("c3", 1)
            .put("c1", 2, "/k", "c")
            .build();
        check_store_ops(
            &history,
            r#"
c1#1 Put { key: "/k", value: "a" } @0 -> Written { revision: 2, succeeded: true } @4
c2#1 Get { key: "/k" } @1 -> Read { revision: 2, value: Some("a"), mod_revision: 2, served_by: 1 } @3
c3#1 Put { key: "/k", value: "b" } @2 -> Unknown { error: "request timed out" } @5
c1#2 Put { key: "/k", value: "c" } @6 -> pending
returned: c2#1 c1#1 c3#1
"#,
        );
    }

    #[test]
    fn store_ops_report_malformed_records_and_pair_a_reused_id_with_its_latest_invocation() {
        let history = h()
            .written("c9", 1, 2)
            .put("c1", 1, "/k", "a")
            .put("c1", 1, "/k", "b")
            .written("c1", 1, 3)
            .failed("c1", 1)
            .build();
        check_store_ops(
            &history,
            r#"
c1#1 Put { key: "/k", value: "a" } @1 -> pending
c1#1 Put { key: "/k", value: "b" } @2 -> Written { revision: 3, succeeded: true } @3
returned: c1#1
NeverInvoked c9#1 @0
InvokedTwice c1#1 @2
ReturnedTwice c1#1 @4
"#,
        );
    }

    #[test]
    fn api_ops_pair_by_client_and_request_id() {
        let history = h()
            .api_invoke("kubelet-1", 7, Verb::List, Resource::Pods, "", "")
            .api_invoke("kubelet-2", 7, Verb::Create, Resource::Pods, "default", "x")
            .api_error("kubelet-2", 7, 504)
            .api_ok("kubelet-1", 7, 12)
            .api_invoke("kubectl", 1, Verb::Update, Resource::Deployments, "default", "web")
            .build();
        check_api_ops(
            &history,
            r#"
kubelet-1#7 ApiInvocation { verb: List, resource: Pods, namespace: "", name: "" } @0 -> Ok { resource_version: 12 } @3
kubelet-2#7 ApiInvocation { verb: Create, resource: Pods, namespace: "default", name: "x" } @1 -> Error { status: 504, message: "HTTP 504" } @2
kubectl#1 ApiInvocation { verb: Update, resource: Deployments, namespace: "default", name: "web" } @4 -> pending
returned: kubelet-2#7 kubelet-1#7
"#,
        );
    }

    #[test]
    fn records_are_found_by_position() {
        let history = h()
            .put("c1", 1, "/k", "a")
            .api_invoke("kubectl", 1, Verb::Get, Resource::Pods, "default", "x")
            .get("c2", 1, "/k")
            .read("c2", 1, 1, None, 0)
            .written("c1", 1, 2)
            .written("c1", 1, 2)
            .build();
        let ops = StoreOps::of(&history);
        assert_eq!([0, 1, 2].map(|record_idx| ops.invoked_at(record_idx)), [Some(0), None, Some(1)]);
        // The second return of c1#1 answers nothing.
        assert_eq!([2, 3, 4, 5].map(|record_idx| ops.returned_at(record_idx)), [None, Some(1), Some(0), None]);
        let api = ApiOps::of(&history);
        assert_eq!((api.len(), api.invoked_at(1), api.returned_at(1)), (1, Some(0), None));
    }

    #[test]
    fn a_history_without_operations_has_an_empty_view() {
        let history = h().started(MemberId(1)).leader(MemberId(1), 1).build();
        assert!(StoreOps::of(&history).is_empty() && ApiOps::of(&history).is_empty());
        check_store_ops(&history, "returned:");
    }
}
