//! A seed's history written out, for tools other than kubesim's own checkers.
//!
//! - [`history_jsonl`] (`kubesim run --history FILE`): every record of the history as JSON
//!   lines. Schema `kubesim.history` version 2 (version 1 lacked a store read's
//!   `served_by`): the first line is a header object
//!   `{"schema": "kubesim.history", "version": 2, "seed", "scenario", "trace_hash",
//!   "built_from", "records"}`; each following line is one record, `{"at_ns": simulated
//!   nanoseconds since the run began, "event": {"<Kind>": {fields}}}`, where `<Kind>` and
//!   its fields are those of [`verdict::history::HistoryEvent`] (its rustdoc documents each
//!   one). Records are in the order they were recorded, which is the order the trace hash
//!   covers. A change of a kind's fields raises the version.
//! - [`store_ops_edn`] (`kubesim run --history-edn FILE`): the store clients' operations
//!   (store-smoke's workload) as a Jepsen history in EDN, one operation map per line, for
//!   Elle's `rw-register` model (`elle-cli --model rw-register`, or `jepsen.tests.cycle.wr`):
//!   a put is a transaction `[[:w key value]]`, a linearizable get `[[:r key value]]` (nil
//!   when absent), a compare-and-put that committed `[[:w key value]]` (its compare reads a
//!   mod revision, which the model has no word for); a compare that failed is `:fail`. An
//!   operation definitely not applied is `:fail`, one whose outcome is unknown `:info`.
//!   Every written value is unique per key, as the model requires. Processes number the
//!   clients in the order they first appear.

use std::collections::BTreeMap;

use serde::Serialize;

use verdict::history::{History, HistoryEvent, StoreOpKind, StoreOpOutcome};

/// The header line of a history file.
#[derive(Serialize)]
struct Header<'a> {
    schema: &'static str,
    version: u32,
    seed: u64,
    scenario: &'a str,
    trace_hash: String,
    built_from: &'static str,
    records: usize,
}

/// The history file's schema version (see the module).
pub const HISTORY_SCHEMA_VERSION: u32 = 2;

/// The history as JSON lines (see the module for the schema).
pub fn history_jsonl(history: &History, seed: u64, scenario: &str) -> String {
    let header = Header {
        schema: "kubesim.history",
        version: HISTORY_SCHEMA_VERSION,
        seed,
        scenario,
        trace_hash: format!("{:016x}", history.trace_hash),
        built_from: crate::campaign::BUILD,
        records: history.records.len(),
    };
    let mut out = serde_json::to_string(&header).expect("the header serializes");
    out.push('\n');
    for record in &history.records {
        out.push_str(&serde_json::to_string(record).expect("history records serialize"));
        out.push('\n');
    }
    out
}

/// An EDN string literal.
fn edn_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The micro-operations of one store operation: as invoked, and as completed.
fn micro_ops(op: &StoreOpKind, outcome: Option<&StoreOpOutcome>) -> String {
    match op {
        StoreOpKind::Put { key, value } | StoreOpKind::CompareAndPut { key, value, .. } => {
            format!("[[:w {} {}]]", edn_string(key), edn_string(value))
        }
        StoreOpKind::Get { key } => {
            let read = match outcome {
                Some(StoreOpOutcome::Read { value: Some(value), .. }) => edn_string(value),
                _ => "nil".to_string(),
            };
            format!("[[:r {} {read}]]", edn_string(key))
        }
    }
}

/// The store clients' operations as a Jepsen EDN history (see the module).
pub fn store_ops_edn(history: &History) -> String {
    let mut processes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut invoked: BTreeMap<(&str, u64), &StoreOpKind> = BTreeMap::new();
    let mut out = String::new();
    let mut index = 0usize;
    for (at_ns, event) in history.events() {
        let (client, op_id, kind, op, outcome) = match event {
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                invoked.insert((client.as_str(), *op_id), op);
                (client, op_id, ":invoke", op, None)
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                let Some(op) = invoked.remove(&(client.as_str(), *op_id)) else { continue };
                let kind = match outcome {
                    StoreOpOutcome::Written { succeeded: true, .. } | StoreOpOutcome::Read { .. } => ":ok",
                    StoreOpOutcome::Written { succeeded: false, .. } | StoreOpOutcome::Failed { .. } => ":fail",
                    StoreOpOutcome::Unknown { .. } => ":info",
                };
                (client, op_id, kind, op, Some(outcome))
            }
            _ => continue,
        };
        let next = processes.len();
        let process = *processes.entry(client.as_str()).or_insert(next);
        out.push_str(&format!(
            "{{:index {index}, :type {kind}, :f :txn, :value {}, :process {process}, :time {at_ns}, :client {}, :op-id {op_id}}}\n",
            micro_ops(op, outcome),
            edn_string(client.as_str()),
        ));
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::api::MemberId;
    use verdict::history::Record;

    fn history(events: Vec<HistoryEvent>) -> History {
        let records = events.into_iter().enumerate().map(|(i, event)| Record { at_ns: i as u64 * 10, event }).collect();
        History { records, trace_hash: 0xabc, overflowed: false }
    }

    #[test]
    fn store_operations_become_an_elle_rw_register_history() {
        let h = history(vec![
            HistoryEvent::StoreOpInvoked {
                client: "c1".into(),
                op_id: 1,
                op: StoreOpKind::Put { key: "/k".into(), value: "v\"1".into() },
            },
            HistoryEvent::StoreOpInvoked { client: "c2".into(), op_id: 1, op: StoreOpKind::Get { key: "/k".into() } },
            HistoryEvent::StoreOpReturned {
                client: "c1".into(),
                op_id: 1,
                outcome: StoreOpOutcome::Written { revision: 2, succeeded: true },
            },
            HistoryEvent::StoreOpReturned {
                client: "c2".into(),
                op_id: 1,
                outcome: StoreOpOutcome::Read {
                    revision: 2,
                    value: Some("v\"1".into()),
                    mod_revision: 2,
                    served_by: MemberId(1),
                },
            },
        ]);
        let edn = store_ops_edn(&h);
        let lines: Vec<&str> = edn.lines().collect();
        assert_eq!(lines.len(), 4, "{edn}");
        assert!(lines[0]
            .starts_with(r#"{:index 0, :type :invoke, :f :txn, :value [[:w "/k" "v\"1"]], :process 0, :time 0"#));
        assert!(lines[1].contains(r#":type :invoke, :f :txn, :value [[:r "/k" nil]], :process 1"#), "{edn}");
        assert!(lines[2].contains(":type :ok") && lines[2].contains(":process 0"), "{edn}");
        assert!(lines[3].contains(r#":value [[:r "/k" "v\"1"]]"#), "{edn}");
    }

    #[test]
    fn the_jsonl_history_has_a_header_and_one_line_per_record() {
        let h = history(vec![HistoryEvent::MemberStarted { member: MemberId(1), recovered_entries: 0, torn_bytes: 0 }]);
        let text = history_jsonl(&h, 7, "store-smoke");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["schema"], "kubesim.history");
        assert_eq!(lines[0]["version"], HISTORY_SCHEMA_VERSION);
        assert_eq!(lines[0]["trace_hash"], "0000000000000abc");
        assert_eq!(lines[0]["records"], 1);
        assert_eq!(lines[1]["event"]["MemberStarted"]["member"], 1);
    }
}
