//! [`Invariant::GarbageCollection`] (docs/design.md §4.15): the garbage collector deletes
//! exactly what Kubernetes' would (`pkg/controller/garbagecollector/garbagecollector.go`).
//!
//! The exact rule, in two halves:
//!
//! 1. **Nothing is left behind** (judged on the end state, read once the scenario waited
//!    for the cluster to come to rest): no object of the final keyspace has an owner
//!    reference whose uid no object of the final keyspace has. An owner is identified by
//!    its uid, not its name: a new owner created under the old one's name owns nothing of
//!    the old one's. Dependents orphaned on purpose (`propagationPolicy: Orphan`) are not
//!    exempted by name: the collector removes the reference to the deleted owner from
//!    them before the owner goes (`orphanDependents`), so they hold no dangling reference.
//! 2. **Nothing is collected while an owner keeps it** (judged on the history of
//!    committed writes, [`HistoryEvent::ObjectWritten`] joined with its `StoreWrite`): each
//!    write of the garbage collector's identity ([`api::GARBAGE_COLLECTOR_USER`]) that
//!    removes an object, or marks one for deletion, must find the object, in the store
//!    state just before that write's revision, either already marked for deletion (the
//!    collector completes a deletion someone asked for by removing its
//!    `foregroundDeletion` or `orphan` finalizer) or with owner references none of which
//!    is *solid*: each owner's uid is held by no object, or by an object marked for
//!    deletion with the `foregroundDeletion` finalizer (`attemptToDeleteItem` after
//!    `classifyReferences`: an item with a solid owner is never deleted, only its
//!    references to dangling or foreground-deleting owners removed). Deletes by anyone
//!    else are requests (kubectl, a controller's scale-down, an eviction), as is the
//!    update that empties the finalizers of an object marked for deletion.
//!
//! The state just before a revision is the store's, replayed from its `Committed`
//! records (every key change, by revision) with the recorded metadata of each write. A
//! change without a recorded write (an apiserver whose transaction timed out although the
//! store committed it) leaves the key's object unknown until its next recorded write: an
//! unknown owner is not taken as solid, and an unknown object's collection is counted but
//! not judged. So missing evidence can hide a violation but never invent one.
//!
//! Scope: the records exist only when the control plane runs the garbage collector; a
//! history without them passes vacuously (checked 0). Leases and Events are not
//! recorded (they own nothing and nothing owns them). Half 2 runs per cluster epoch: after
//! a restore, objects restored from the backup are unknown until written again, and an
//! unknown owner counts as absent, so a restore can hide a violation but never invent one;
//! likewise a removal, with no earlier write in the epoch, of an object recorded as marked
//! for deletion (restored already marked) is counted but not judged.
//!
//! Cost: O(n log n) in the object writes (sorted by revision, maps by key and uid), plus
//! one JSON decode per key of the end state.

use std::collections::{BTreeMap, BTreeSet};

use api::{Object, FINALIZER_FOREGROUND_DELETION, GARBAGE_COLLECTOR_USER};
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{HistoryEvent, ObjectMetaRecord};

/// One recorded object write: its metadata, whether it removed the object, by whom, when.
struct ObjectWrite<'h> {
    meta: &'h ObjectMetaRecord,
    removed: bool,
    user: Option<&'h str>,
    at_ns: u64,
}

/// What the checker knows of the object at a key, replaying the store's commits.
#[derive(Clone, Copy)]
enum KeyState<'h> {
    /// Written by a recorded object write.
    Known(&'h ObjectMetaRecord),
    /// Changed by a commit no object write was recorded for: a write whose answer the
    /// apiserver never got (the store committed it after a timeout), a Lease, an Event.
    Unknown,
}

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::GarbageCollection);
    let writes = object_writes(input);
    if writes.is_empty() {
        return violations.into_verdict(0, "no garbage collector ran (no object metadata recorded)".to_string());
    }
    let n_collected = check_collections(input, &writes, &mut violations);
    let (n_objects, n_references) = match input.end_state {
        Some(end) => check_end_state(end, &mut violations),
        None => (0, 0),
    };
    let checked = n_collected + n_references;
    violations.into_verdict(
        checked,
        format!(
            "{} object writes, {n_collected} by the garbage collector that removed or marked an object; \
             {n_references} owner references of {n_objects} objects at rest",
            writes.len()
        ),
    )
}

/// The recorded object writes by (key, revision), each with the user of its `StoreWrite`.
fn object_writes<'h>(input: &CheckInput<'h>) -> BTreeMap<(&'h str, Revision), ObjectWrite<'h>> {
    let mut users: BTreeMap<(&str, Revision), &str> = BTreeMap::new();
    let mut writes = BTreeMap::new();
    for (at_ns, event) in input.history.events() {
        match event {
            HistoryEvent::StoreWrite { user, key, revision, .. } => {
                users.insert((key.as_str(), *revision), user.as_str());
            }
            HistoryEvent::ObjectWritten { key, revision, meta, removed } => {
                writes.insert((key.as_str(), *revision), ObjectWrite { meta, removed: *removed, user: None, at_ns });
            }
            _ => {}
        }
    }
    for ((key, revision), write) in &mut writes {
        write.user = users.get(&(*key, *revision)).copied();
    }
    writes
}

/// Every key change in revision order: the store's `Committed` records, each with its
/// recorded object write if there is one; `None` as the value hash is a removal.
fn commits<'h>(input: &CheckInput<'h>) -> Vec<(Revision, &'h str, bool)> {
    let mut changes = Vec::new();
    for (_, event) in input.history.events() {
        if let HistoryEvent::Committed { revision, changes: keys } = event {
            changes.extend(keys.iter().map(|k| (*revision, k.key.as_str(), k.value_hash.is_none())));
        }
    }
    changes.sort();
    changes.dedup();
    changes
}

/// Half 2: replays the store's commits in revision order and judges each of the
/// collector's removals and marks against the state just before it. Returns how many it
/// judged.
fn check_collections(
    input: &CheckInput,
    writes: &BTreeMap<(&str, Revision), ObjectWrite>,
    violations: &mut Violations,
) -> usize {
    let mut by_key: BTreeMap<&str, KeyState> = BTreeMap::new();
    let mut key_of_uid: BTreeMap<&str, &str> = BTreeMap::new();
    let mut judged = 0;
    let mut commits = commits(input);
    if commits.is_empty() {
        // A history without the store's own account (hand-made): the writes alone.
        commits = writes.iter().map(|((key, revision), write)| (*revision, *key, write.removed)).collect();
        commits.sort();
    }
    for (revision, key, removed) in commits {
        let before = by_key.get(key).copied();
        let Some(write) = writes.get(&(key, revision)) else {
            match removed {
                true => by_key.remove(key),
                false => by_key.insert(key, KeyState::Unknown),
            };
            continue;
        };
        if write.user == Some(GARBAGE_COLLECTOR_USER) {
            let was_marked = match before {
                Some(KeyState::Known(meta)) => Some(meta.being_deleted),
                Some(KeyState::Unknown) => None,
                // Removed while marked, with no earlier write in this epoch: an object a
                // restore brought back already marked (its mark is in the backup, not in
                // this epoch's history). Unknown, not judged.
                None if write.removed && write.meta.being_deleted => None,
                None => Some(false),
            };
            let collects = write.removed || (write.meta.being_deleted && was_marked == Some(false));
            if collects {
                judged += 1;
                if was_marked == Some(false) {
                    judge_collection(key, revision, write, &by_key, &key_of_uid, violations);
                }
            }
        }
        if let Some(KeyState::Known(meta)) = before {
            key_of_uid.remove(meta.uid.as_str());
        }
        if write.removed {
            by_key.remove(key);
        } else {
            by_key.insert(key, KeyState::Known(write.meta));
            key_of_uid.insert(write.meta.uid.as_str(), key);
        }
    }
    judged
}

/// One removal or mark by the collector of an object not marked before: it must have had
/// owners, none of them solid (existing and not deleting its dependents in the
/// foreground). An owner whose key changed unrecorded since is not taken as solid.
fn judge_collection(
    key: &str,
    revision: Revision,
    write: &ObjectWrite,
    by_key: &BTreeMap<&str, KeyState>,
    key_of_uid: &BTreeMap<&str, &str>,
    violations: &mut Violations,
) {
    let what = if write.removed { "deleted" } else { "marked for deletion" };
    if write.meta.owners.is_empty() {
        violations.push(
            Some(write.at_ns),
            format!(
                "the garbage collector {what} {key} (uid {}) at revision {revision}, an object with no owner \
                 references that nobody had asked to delete",
                write.meta.uid
            ),
        );
        return;
    }
    let solid: Vec<String> = write
        .meta
        .owners
        .iter()
        .filter(|owner| {
            let state = key_of_uid.get(owner.uid.as_str()).and_then(|owner_key| by_key.get(owner_key));
            matches!(state, Some(KeyState::Known(m)) if m.uid == owner.uid
                && !(m.being_deleted && m.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND_DELETION)))
        })
        .map(|owner| format!("{} {} (uid {})", owner.kind, owner.name, owner.uid))
        .collect();
    if !solid.is_empty() {
        violations.push(
            Some(write.at_ns),
            format!(
                "the garbage collector {what} {key} (uid {}) at revision {revision} while its owner {} still \
                 existed and was not deleting its dependents in the foreground",
                write.meta.uid,
                solid.join(", ")
            ),
        );
    }
}

/// Half 1: every owner reference of the final keyspace names a uid some object of it has.
/// Returns (objects examined, references examined).
fn check_end_state(end: &super::EndState, violations: &mut Violations) -> (usize, usize) {
    let objects: Vec<Object> = end
        .keyspace
        .iter()
        .filter(|kv| kv.key.starts_with("/registry/"))
        .filter_map(|kv| serde_json::from_slice::<Object>(&kv.value).ok())
        .collect();
    let uids: BTreeSet<&str> = objects.iter().map(|o| o.metadata().uid.as_str()).collect();
    let mut n_references = 0;
    for object in &objects {
        let meta = object.metadata();
        for owner in &meta.owner_references {
            n_references += 1;
            if !uids.contains(owner.uid.as_str()) {
                violations.push(
                    None,
                    format!(
                        "at rest (revision {}), {} (uid {}) still names its owner {} {} (uid {}), which no \
                         longer exists: it was never collected",
                        end.revision,
                        object.key(),
                        meta.uid,
                        owner.kind,
                        owner.name,
                        owner.uid
                    ),
                );
            }
        }
    }
    (objects.len(), n_references)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, OwnerRecord, Record};
    use api::Verb;

    const USER: &str = "admin";

    fn meta(uid: &str, owners: &[&str], finalizers: &[&str], being_deleted: bool) -> ObjectMetaRecord {
        ObjectMetaRecord {
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|o| OwnerRecord {
                    kind: "ReplicaSet".into(),
                    name: format!("rs-{o}"),
                    uid: o.to_string(),
                    block_owner_deletion: true,
                })
                .collect(),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            being_deleted,
        }
    }

    /// A history of object writes: (user, key, revision, metadata, removed).
    fn history(writes: &[(&str, &str, Revision, ObjectMetaRecord, bool)]) -> History {
        let mut records = Vec::new();
        for (i, (user, key, revision, meta, removed)) in writes.iter().enumerate() {
            let at_ns = i as u64 * 1000;
            let verb = if *removed { Verb::Delete } else { Verb::Update };
            records.push(Record {
                at_ns,
                event: HistoryEvent::StoreWrite {
                    apiserver: "apiserver-0".into(),
                    user: user.to_string(),
                    verb,
                    key: key.to_string(),
                    revision: *revision,
                },
            });
            records.push(Record {
                at_ns,
                event: HistoryEvent::ObjectWritten {
                    key: key.to_string(),
                    revision: *revision,
                    meta: meta.clone(),
                    removed: *removed,
                },
            });
        }
        History { records, trace_hash: 0, overflowed: false }
    }

    fn violations(history: &History) -> Vec<String> {
        let input = CheckInput { history, end_state: None, apiserver_sources: Vec::new() };
        check(&input).violations.into_iter().map(|v| v.message).collect()
    }

    const RS: &str = "/registry/replicasets/default/rs-r";
    const POD: &str = "/registry/pods/default/p";

    #[test]
    fn collecting_a_dependent_after_its_owner_is_gone_is_correct() {
        let h = history(&[
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (USER, RS, 4, meta("r", &[], &[], false), true),
            (GARBAGE_COLLECTOR_USER, POD, 5, meta("p", &["r"], &[], false), true),
        ]);
        assert_eq!(violations(&h), Vec::<String>::new());
    }

    #[test]
    fn collecting_a_dependent_of_a_foreground_deleting_owner_and_then_the_owner_is_correct() {
        let fg = [FINALIZER_FOREGROUND_DELETION];
        let h = history(&[
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (USER, RS, 4, meta("r", &[], &fg, true), false),
            (GARBAGE_COLLECTOR_USER, POD, 5, meta("p", &["r"], &[], false), true),
            (GARBAGE_COLLECTOR_USER, RS, 6, meta("r", &[], &[], true), true),
        ]);
        assert_eq!(violations(&h), Vec::<String>::new());
    }

    #[test]
    fn collecting_a_dependent_whose_owner_exists_is_a_violation() {
        let h = history(&[
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (GARBAGE_COLLECTOR_USER, POD, 4, meta("p", &["r"], &[], false), true),
        ]);
        let found = violations(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("while its owner ReplicaSet rs-r (uid r) still existed"), "{found:?}");
        // Marking it for deletion (a foreground delete of its own) is judged alike.
        let h = history(&[
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (GARBAGE_COLLECTOR_USER, POD, 4, meta("p", &["r"], &[FINALIZER_FOREGROUND_DELETION], true), false),
        ]);
        assert_eq!(violations(&h).len(), 1);
        // A user's delete of the same pod is a request, not a collection.
        let h = history(&[
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (USER, POD, 4, meta("p", &["r"], &[], false), true),
        ]);
        assert_eq!(violations(&h), Vec::<String>::new());
    }

    #[test]
    fn an_owner_recreated_under_the_same_name_is_another_owner() {
        let h = history(&[
            (USER, RS, 2, meta("r1", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r1"], &[], false), false),
            (USER, RS, 4, meta("r1", &[], &[], false), true),
            (USER, RS, 5, meta("r2", &[], &[], false), false),
            (GARBAGE_COLLECTOR_USER, POD, 6, meta("p", &["r1"], &[], false), true),
        ]);
        assert_eq!(violations(&h), Vec::<String>::new());
    }

    /// `history`, with the store's `Committed` record of each write and of `unrecorded`
    /// (key, revision) changes no apiserver recorded (a write whose answer timed out).
    fn with_commits(
        writes: &[(&str, &str, Revision, ObjectMetaRecord, bool)],
        unrecorded: &[(&str, Revision)],
    ) -> History {
        let mut h = history(writes);
        let mut changes: Vec<(Revision, &str, bool)> =
            writes.iter().map(|(_, k, r, _, removed)| (*r, *k, *removed)).collect();
        changes.extend(unrecorded.iter().map(|(k, r)| (*r, *k, false)));
        for (revision, key, removed) in changes {
            let state = crate::history::KeyState {
                key: key.to_string(),
                value_hash: (!removed).then_some(1),
                value_len: 1,
                create_revision: 1,
                mod_revision: revision,
                version: 1,
            };
            h.records.push(Record { at_ns: 0, event: HistoryEvent::Committed { revision, changes: vec![state] } });
        }
        h
    }

    /// A restored epoch: the deployment came back from the backup already marked for a
    /// foreground delete, so the collector's removal completes a delete asked for before
    /// the restore. Unmarked, with no write before it, the same removal still fires.
    #[test]
    fn removing_an_object_restored_already_marked_is_not_judged() {
        let marked = [(GARBAGE_COLLECTOR_USER, RS, 1_000_128, meta("r", &[], &[], true), true)];
        assert!(violations(&with_commits(&marked, &[])).is_empty());
        let unmarked = [(GARBAGE_COLLECTOR_USER, RS, 1_000_128, meta("r", &[], &[], false), true)];
        assert_eq!(violations(&with_commits(&unmarked, &[])).len(), 1);
    }

    #[test]
    fn an_owner_changed_by_an_unrecorded_commit_is_not_taken_as_solid() {
        let writes = [
            (USER, RS, 2, meta("r", &[], &[], false), false),
            (USER, POD, 3, meta("p", &["r"], &[], false), false),
            (GARBAGE_COLLECTOR_USER, POD, 5, meta("p", &["r"], &[], false), true),
        ];
        assert_eq!(violations(&with_commits(&writes, &[])).len(), 1, "judged from the commits");
        // The collector's foreground mark of the ReplicaSet committed at 4, but its answer
        // timed out: the history holds the commit and no metadata.
        assert_eq!(violations(&with_commits(&writes, &[(RS, 4)])), Vec::<String>::new());
    }

    #[test]
    fn a_dangling_owner_reference_at_rest_is_a_violation() {
        let object = |uid: &str, owner: Option<&str>| {
            let mut pod = api::Pod { metadata: api::ObjectMeta::named("default", uid), ..Default::default() };
            pod.metadata.uid = uid.into();
            if let Some(owner) = owner {
                pod.metadata.owner_references = vec![api::OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: owner.into(),
                    controller: true,
                    block_owner_deletion: false,
                }];
            }
            let object = Object::Pod(pod);
            store::api::KeyValue {
                key: object.key(),
                value: serde_json::to_vec(&object).unwrap().into(),
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                lease: 0,
            }
        };
        let end = super::super::EndState {
            revision: 9,
            keyspace: vec![object("a", None), object("b", Some("a")), object("c", Some("gone"))],
            read_at_ns: u64::MAX,
        };
        let h = history(&[(USER, POD, 2, meta("x", &[], &[], false), false)]);
        let input = CheckInput { history: &h, end_state: Some(&end), apiserver_sources: Vec::new() };
        let verdict = check(&input);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        assert!(verdict.violations[0].message.contains("/registry/pods/default/c (uid c) still names its owner"));
        assert_eq!(verdict.checked, 2);
    }

    #[test]
    fn a_history_without_object_metadata_is_not_judged() {
        let h = History::default();
        let input = CheckInput { history: &h, end_state: None, apiserver_sources: Vec::new() };
        assert_eq!(check(&input).checked, 0);
    }
}
