//! [`Invariant::NoLostUpdate`] (docs/design.md §4.14): every acknowledged update was
//! applied to exactly the version its writer read. Optimistic concurrency holds end to
//! end, through retries, apiserver restarts and restores.
//!
//! Kubernetes' contract: an Update (or UpdateStatus) carries the `metadata.resourceVersion`
//! the writer read. The apiserver's `Store.Update` runs `GuaranteedUpdate`
//! (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`). When the object's
//! resourceVersion is set and differs from the stored one, it answers 409 Conflict ("the
//! object has been modified; please apply your changes to the latest version and try
//! again"). Otherwise the etcd3 store's `GuaranteedUpdate`
//! (`k8s.io/apiserver/pkg/storage/etcd3/store.go`) commits the new object in a transaction
//! guarded by `mod_revision(key) == the revision read`. When that compare fails, the
//! apiserver re-runs the update function on the fresh object, and that function refuses a
//! stale resourceVersion with the same 409. It never re-applies the client's object over a
//! version the client did not read: that is allowed only for an update without a
//! resourceVersion (`AllowUnconditionalUpdate`). Writers do their read-modify-write with
//! client-go's `retry.RetryOnConflict`: on 409 they read again, modify again and retry.
//!
//! The exact rule, judged from the history. `UpdatePrecondition` records give the
//! resourceVersion each request carried, written beside its `ApiInvoked`. `Committed`
//! records give each key's versions. Each cluster epoch is judged on its own: a
//! `Restored` record starts a new epoch whose keys begin as its keyspace. A restore
//! legitimately rewinds, so nothing is compared across it, and a request invoked in one
//! epoch and answered in the next stays unanswered in the first, as the other checkers
//! treat it (`epochs.rs`).
//! 1. *Applied to the version read.* Take an Update or UpdateStatus of key `k` that
//!    carried resourceVersion `rv` and was answered with resourceVersion `r`. If the
//!    epoch committed a version of `k` at `r`, the version of `k` just before `r` must
//!    exist (not deleted) and have `mod_revision == rv`. An answer at a revision that
//!    committed nothing for `k` is no-acknowledged-write-lost's to judge, not this
//!    checker's.
//! 2. *Not overwritten blind.* Take an acknowledged update committed at `r`. The next
//!    committed put of `k` in the epoch, at `r'`, must have been written by a request that
//!    read `r`. When no acknowledged update answers `r'` (rule 1 judges those), some
//!    request on `k` invoked before the commit must explain `r'`: an Update or
//!    UpdateStatus that carried `r`, or a Delete or Bind (the apiserver's own
//!    read-modify-write), answered at `r'` or without a definite answer (pending, or a 5xx
//!    such as a timeout). So an ambiguous request that did commit, or one retried after an
//!    apiserver restart, is judged by what it carried. A deletion of `k` overwrites
//!    nothing, and an update whose commit removed `k` (it emptied the finalizers of an
//!    object marked for deletion) is overwritten by nothing: what follows is a new object.
//! 3. *End to end.* A `CounterRead` of `k` saw counter `n` in the version committed at
//!    `R`. The scenario's contract is that the object is created at 0 and each Update adds
//!    one. Let `a` be the Updates of `k` acknowledged at revisions in `(c, R]`, where `c`
//!    is the creation revision of that version, and `u` the Updates of `k` invoked before
//!    the read that got no definite answer. Then `a <= n <= a + u`. A counter whose
//!    version was restored rather than created in the epoch is excused: its count before
//!    the backup is not in this epoch.
//!
//! Runs that record no precondition (every scenario but read-modify-write) are judged
//! vacuously, with `checked` 0.
//!
//! Cost: O(n log n) over the records (maps by key and revision).

use std::collections::BTreeMap;

use api::Verb;
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{ApiOutcome, HistoryEvent};

/// One version of a key in an epoch: a put, or its deletion.
#[derive(Clone, Copy, Debug)]
struct Version {
    deleted: bool,
    mod_revision: Revision,
    create_revision: Revision,
    /// Where its `Committed` record lies; `None`: it came with the restored keyspace.
    record_idx: Option<usize>,
}

/// What a request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Acknowledged at this resourceVersion.
    Acknowledged(Revision),
    /// Definitely not applied (a 4xx).
    Refused,
    /// Pending, or a 5xx (a timeout, the apiserver gone): it may have been applied.
    Ambiguous,
}

/// A write request to an apiserver, as this checker needs it.
#[derive(Debug)]
struct Request<'h> {
    client: &'h str,
    request_id: u64,
    verb: Verb,
    key: String,
    epoch: usize,
    invoked_idx: usize,
    /// The resourceVersion it carried (Update and UpdateStatus in runs that record it).
    precondition: Option<Revision>,
    answer: Answer,
    /// When its answer was recorded.
    answered_ns: Option<u64>,
}

impl Request<'_> {
    fn is_update(&self) -> bool {
        matches!(self.verb, Verb::Update | Verb::UpdateStatus)
    }

    fn may_have_written(&self, revision: Revision) -> bool {
        match self.answer {
            Answer::Acknowledged(r) => r == revision || matches!(self.verb, Verb::Delete | Verb::Bind),
            Answer::Ambiguous => true,
            Answer::Refused => false,
        }
    }
}

/// A `CounterRead` record.
struct CounterRead<'h> {
    key: &'h str,
    revision: Revision,
    counter: u64,
    epoch: usize,
    record_idx: usize,
    at_ns: u64,
}

/// The history, read once: each epoch's versions per key, the write requests and the
/// counter reads.
#[derive(Default)]
struct Reading<'h> {
    /// key -> epoch -> revision -> the version committed (or restored) there.
    versions: BTreeMap<&'h str, BTreeMap<usize, BTreeMap<Revision, Version>>>,
    requests: Vec<Request<'h>>,
    counter_reads: Vec<CounterRead<'h>>,
}

impl<'h> Reading<'h> {
    fn of(input: &'h CheckInput) -> Self {
        let mut reading = Reading::default();
        let mut epoch = 0;
        // (client, request id) -> index into `requests`, for requests of this epoch not
        // yet answered.
        let mut open: BTreeMap<(&str, u64), usize> = BTreeMap::new();
        for (record_idx, record) in input.history.records.iter().enumerate() {
            match &record.event {
                HistoryEvent::Restored { keyspace, .. } => {
                    epoch += 1;
                    open.clear();
                    for state in keyspace {
                        reading.versions.entry(state.key.as_str()).or_default().entry(epoch).or_default().insert(
                            state.mod_revision,
                            Version {
                                deleted: state.value_hash.is_none(),
                                mod_revision: state.mod_revision,
                                create_revision: state.create_revision,
                                record_idx: None,
                            },
                        );
                    }
                }
                HistoryEvent::Committed { revision, changes } => {
                    for state in changes {
                        reading.versions.entry(state.key.as_str()).or_default().entry(epoch).or_default().insert(
                            *revision,
                            Version {
                                deleted: state.value_hash.is_none(),
                                mod_revision: *revision,
                                create_revision: state.create_revision,
                                record_idx: Some(record_idx),
                            },
                        );
                    }
                }
                HistoryEvent::ApiInvoked { client, request_id, verb, resource, namespace, name } if verb.is_write() => {
                    open.insert((client.as_str(), *request_id), reading.requests.len());
                    reading.requests.push(Request {
                        client: client.as_str(),
                        request_id: *request_id,
                        verb: *verb,
                        key: resource.key(namespace, name),
                        epoch,
                        invoked_idx: record_idx,
                        precondition: None,
                        answer: Answer::Ambiguous,
                        answered_ns: None,
                    });
                }
                HistoryEvent::UpdatePrecondition { client, request_id, resource_version } => {
                    if let Some(&request_idx) = open.get(&(client.as_str(), *request_id)) {
                        reading.requests[request_idx].precondition = Some(*resource_version);
                    }
                }
                HistoryEvent::ApiReturned { client, request_id, outcome } => {
                    if let Some(request_idx) = open.remove(&(client.as_str(), *request_id)) {
                        let request = &mut reading.requests[request_idx];
                        request.answer = match outcome {
                            ApiOutcome::Ok { resource_version } => Answer::Acknowledged(*resource_version),
                            ApiOutcome::Error { status, .. } if *status >= 500 => Answer::Ambiguous,
                            ApiOutcome::Error { .. } => Answer::Refused,
                        };
                        request.answered_ns = Some(record.at_ns);
                    }
                }
                HistoryEvent::CounterRead { key, revision, counter } => reading.counter_reads.push(CounterRead {
                    key,
                    revision: *revision,
                    counter: *counter,
                    epoch,
                    record_idx,
                    at_ns: record.at_ns,
                }),
                _ => {}
            }
        }
        reading
    }

    fn versions_of(&self, epoch: usize, key: &str) -> Option<&BTreeMap<Revision, Version>> {
        self.versions.get(key)?.get(&epoch)
    }
}

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::NoLostUpdate);
    let reading = Reading::of(input);
    // (epoch, key) -> the write requests on it, in invocation order.
    let mut requests_on: BTreeMap<(usize, &str), Vec<&Request>> = BTreeMap::new();
    for request in &reading.requests {
        requests_on.entry((request.epoch, request.key.as_str())).or_default().push(request);
    }
    // (epoch, key, revision) answered to an update that carried a precondition: rule 1
    // judges those writes, rule 2 the others.
    let mut acknowledged_updates: BTreeMap<(usize, &str, Revision), &Request> = BTreeMap::new();
    for request in reading.requests.iter().filter(|r| r.is_update() && r.precondition.is_some()) {
        if let Answer::Acknowledged(revision) = request.answer {
            acknowledged_updates.insert((request.epoch, request.key.as_str(), revision), request);
        }
    }
    let (mut n_judged, mut n_unmatched) = (0usize, 0usize);
    for (&(epoch, key, revision), request) in &acknowledged_updates {
        let Some(versions) = reading.versions_of(epoch, key) else {
            n_unmatched += 1;
            continue;
        };
        if !versions.contains_key(&revision) {
            n_unmatched += 1;
            continue;
        }
        n_judged += 1;
        let read = request.precondition.expect("filtered above");
        if let Some(message) = applied_to_version_read(versions, request, key, revision, read) {
            violations.push(request.answered_ns, message);
        }
        // An update that emptied the finalizers of an object marked for deletion removed
        // it (the garbage collector completing a foreground delete): a later create puts
        // a new object, overwriting nothing.
        if versions[&revision].deleted {
            continue;
        }
        let Some((&next_revision, next)) = versions.range(revision + 1..).next() else { continue };
        if next.deleted || acknowledged_updates.contains_key(&(epoch, key, next_revision)) {
            continue;
        }
        let invoked_before = next.record_idx.unwrap_or(usize::MAX);
        let explained = requests_on.get(&(epoch, key)).into_iter().flatten().any(|writer| {
            writer.invoked_idx < invoked_before
                && writer.may_have_written(next_revision)
                && match writer.verb {
                    Verb::Update | Verb::UpdateStatus => writer.precondition.is_none_or(|p| p == revision),
                    Verb::Delete | Verb::Bind => true,
                    _ => false,
                }
        });
        if !explained {
            let at_ns = next.record_idx.map(|idx| input.history.records[idx].at_ns);
            violations.push(
                at_ns,
                format!(
                    "{key}: the update {}#{} acknowledged at revision {revision} was overwritten at revision \
                     {next_revision} by a write no request that read {revision} explains: a lost update",
                    request.client, request.request_id
                ),
            );
        }
    }
    let (n_counters, n_counters_excused) = check_counters(&reading, &requests_on, &mut violations);
    let checked = n_judged + n_counters;
    let recorded_any = reading.requests.iter().any(|r| r.precondition.is_some());
    let summary = if !recorded_any && reading.counter_reads.is_empty() {
        "no update carried a recorded precondition (only the read-modify-write scenario and a generated workload record them)".to_string()
    } else {
        format!(
            "{n_judged} acknowledged updates against the version they read ({n_unmatched} answered at a revision \
             that committed nothing for their key), {n_counters} counters end to end ({n_counters_excused} \
             restored, excused)"
        )
    };
    violations.into_verdict(checked, summary)
}

/// Rule 1 for the update `request` of `key`, acknowledged at `revision` (committed in
/// `versions`), which read `read`: what is wrong, if anything.
fn applied_to_version_read(
    versions: &BTreeMap<Revision, Version>,
    request: &Request,
    key: &str,
    revision: Revision,
    read: Revision,
) -> Option<String> {
    let who = format!("{}#{} ({:?})", request.client, request.request_id, request.verb);
    match versions.range(..revision).next_back() {
        None => Some(format!(
            "{key}: {who} read resourceVersion {read} and was acknowledged at {revision}, but the key had no \
             version before {revision} in this cluster epoch"
        )),
        Some((_, before)) if before.deleted => Some(format!(
            "{key}: {who} read resourceVersion {read} and was acknowledged at {revision}, but the key was deleted \
             at {} just before: the update re-created it",
            before.mod_revision
        )),
        Some((_, before)) if before.mod_revision != read => Some(format!(
            "{key}: {who} read resourceVersion {read} but was applied over the version written at {} \
             (acknowledged at {revision}): the write(s) after {read} were lost instead of a 409 Conflict",
            before.mod_revision
        )),
        Some(_) => None,
    }
}

/// Rule 3: each counter read against the increments acknowledged and in doubt. Returns
/// how many reads were judged and how many were excused (restored counters).
fn check_counters(
    reading: &Reading,
    requests_on: &BTreeMap<(usize, &str), Vec<&Request>>,
    violations: &mut Violations,
) -> (usize, usize) {
    let (mut n_judged, mut n_excused) = (0usize, 0usize);
    for read in &reading.counter_reads {
        let versions = reading.versions_of(read.epoch, read.key);
        let Some(version) = versions.and_then(|v| v.get(&read.revision)).filter(|v| !v.deleted) else {
            violations.push(
                Some(read.at_ns),
                format!(
                    "{}: counter {} read at revision {}, which committed no version of the key in this cluster epoch",
                    read.key, read.counter, read.revision
                ),
            );
            continue;
        };
        let created_here =
            versions.and_then(|v| v.get(&version.create_revision)).is_some_and(|created| created.record_idx.is_some());
        if !created_here {
            n_excused += 1;
            continue;
        }
        n_judged += 1;
        let updates = requests_on.get(&(read.epoch, read.key)).into_iter().flatten().filter(|r| r.verb == Verb::Update);
        let (mut acknowledged, mut in_doubt) = (0u64, 0u64);
        for update in updates.filter(|r| r.invoked_idx < read.record_idx) {
            match update.answer {
                Answer::Acknowledged(r) if version.create_revision < r && r <= read.revision => acknowledged += 1,
                Answer::Ambiguous => in_doubt += 1,
                _ => {}
            }
        }
        if read.counter < acknowledged || read.counter > acknowledged + in_doubt {
            violations.push(
                Some(read.at_ns),
                format!(
                    "{}: the counter reads {} at revision {} but {acknowledged} increments were acknowledged since \
                     its creation at {} and {in_doubt} more are in doubt: {}",
                    read.key,
                    read.counter,
                    read.revision,
                    version.create_revision,
                    if read.counter < acknowledged {
                        "acknowledged increments were lost"
                    } else {
                        "it counts increments nobody made"
                    }
                ),
            );
        }
    }
    (n_judged, n_excused)
}

#[cfg(test)]
mod tests {
    use api::{Resource, Verb};

    use super::Invariant;
    use crate::checkers::testing::{check_one, h, key_state, HistoryBuilder};
    use crate::history::HistoryEvent;

    const KEY: &str = "/registry/configmaps/default/shared";

    fn precondition(builder: HistoryBuilder, client: &str, request_id: u64, resource_version: i64) -> HistoryBuilder {
        builder.event(HistoryEvent::UpdatePrecondition { client: client.into(), request_id, resource_version })
    }

    /// `client`'s Update of the shared ConfigMap that read `read`.
    fn update(builder: HistoryBuilder, client: &str, request_id: u64, read: i64) -> HistoryBuilder {
        let builder = builder.api_invoke(client, request_id, Verb::Update, Resource::ConfigMaps, "default", "shared");
        precondition(builder, client, request_id, read)
    }

    fn counter_read(builder: HistoryBuilder, revision: i64, counter: u64) -> HistoryBuilder {
        builder.event(HistoryEvent::CounterRead { key: KEY.to_string(), revision, counter })
    }

    /// The violations' messages, or "ok" and what was checked.
    fn check(builder: HistoryBuilder, expect: &str) {
        let verdict = check_one(Invariant::NoLostUpdate, &builder.build(), None, Vec::new());
        let got = if verdict.passed() {
            format!("ok: checked {}", verdict.checked)
        } else {
            verdict.violations.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(got, expect.trim());
    }

    /// Created at 2 (counter 0), then u1 and u2 both read 2: u1 commits at 3; u2's update
    /// conflicts, it reads 3 again and commits at 4. Counter 2 = 2 acknowledged.
    fn retried_on_conflict() -> HistoryBuilder {
        let b = h()
            .api_invoke("admin", 1, Verb::Create, Resource::ConfigMaps, "default", "shared")
            .committed_put(2, KEY, "0", 2, 1)
            .api_ok("admin", 1, 2);
        let b = update(b, "u1", 1, 2);
        let b = update(b, "u2", 1, 2);
        let b = b.committed_put(3, KEY, "1", 2, 2).api_ok("u1", 1, 3).api_error("u2", 1, 409);
        let b = update(b, "u2", 2, 3);
        b.committed_put(4, KEY, "2", 2, 3).api_ok("u2", 2, 4)
    }

    #[test]
    fn updates_retried_on_conflict_pass() {
        check(counter_read(retried_on_conflict(), 4, 2), "ok: checked 3");
    }

    #[test]
    fn an_update_applied_over_a_version_it_did_not_read_fires() {
        // The apiserver re-applied u2's object (read at 2) over u1's version 3.
        let b = h().committed_put(2, KEY, "0", 2, 1);
        let b = update(b, "u1", 1, 2);
        let b = update(b, "u2", 1, 2);
        let b = b.committed_put(3, KEY, "1", 2, 2).api_ok("u1", 1, 3);
        let b = b.committed_put(4, KEY, "1", 2, 3).api_ok("u2", 1, 4);
        check(
            counter_read(b, 4, 1),
            r#"
/registry/configmaps/default/shared: u2#1 (Update) read resourceVersion 2 but was applied over the version written at 3 (acknowledged at 4): the write(s) after 2 were lost instead of a 409 Conflict
/registry/configmaps/default/shared: the counter reads 1 at revision 4 but 2 increments were acknowledged since its creation at 2 and 0 more are in doubt: acknowledged increments were lost
"#,
        );
    }

    #[test]
    fn an_update_that_removed_the_object_is_followed_by_a_new_one_not_overwritten() {
        // The collector's update emptied the finalizers of the object marked for
        // deletion: the apiserver removed it at 3. A user creates the name again at 4.
        let b = h().committed_put(2, KEY, "0", 2, 1);
        let b = update(b, "gc", 1, 2);
        let b = b.committed_delete(3, KEY).api_ok("gc", 1, 3);
        let b = b.api_invoke("admin", 1, Verb::Create, Resource::ConfigMaps, "default", "shared");
        let b = b.committed_put(4, KEY, "0", 4, 1).api_ok("admin", 1, 4);
        check(b, "ok: checked 1");
    }

    #[test]
    fn an_acknowledged_update_overwritten_by_a_timed_out_blind_write_fires() {
        // u2's update read 2 and timed out, but committed at 4 over u1's acknowledged 3.
        let b = h().committed_put(2, KEY, "0", 2, 1);
        let b = update(b, "u1", 1, 2);
        let b = update(b, "u2", 1, 2);
        let b = b.committed_put(3, KEY, "1", 2, 2).api_ok("u1", 1, 3);
        let b = b.committed_put(4, KEY, "1", 2, 3).api_error("u2", 1, 504);
        check(
            b,
            "/registry/configmaps/default/shared: the update u1#1 acknowledged at revision 3 was overwritten at \
             revision 4 by a write no request that read 3 explains: a lost update",
        );
    }

    #[test]
    fn a_timed_out_update_that_committed_is_in_doubt_not_lost() {
        // u1's update read 2, timed out and committed at 3; its retry read 3 and committed
        // at 4. The counter is 2: one acknowledged, one in doubt.
        let b = h().committed_put(2, KEY, "0", 2, 1);
        let b = update(b, "u1", 1, 2);
        let b = b.committed_put(3, KEY, "1", 2, 2).api_error("u1", 1, 504);
        let b = update(b, "u1", 2, 3);
        let b = b.committed_put(4, KEY, "2", 2, 3).api_ok("u1", 2, 4);
        check(counter_read(b, 4, 2), "ok: checked 2");
        // A counter above what was even attempted is wrong too.
        let b = h().committed_put(2, KEY, "0", 2, 1);
        let b = update(b, "u1", 1, 2);
        let b = b.committed_put(3, KEY, "1", 2, 2).api_ok("u1", 1, 3);
        check(
            counter_read(b, 3, 2),
            "/registry/configmaps/default/shared: the counter reads 2 at revision 3 but 1 increments were \
             acknowledged since its creation at 2 and 0 more are in doubt: it counts increments nobody made",
        );
    }

    #[test]
    fn a_restore_rewinds_without_a_violation() {
        // Backup at 3 (counter 1); after the restore, u2 updates the restored version 3
        // (it read it before the restore) and is acknowledged at 1004; the counter
        // restored is excused from the end-to-end count.
        let b = retried_on_conflict()
            .backup_taken(0, 3)
            .restored(0, 3, 1000, vec![key_state(KEY, "1", 2, 3, 2)])
            .committed_put(1004, KEY, "2", 2, 3);
        let b = update(b, "u2", 3, 3).api_ok("u2", 3, 1004);
        check(counter_read(b, 1004, 2), "ok: checked 3");
        // The same update acknowledged over a version it did not read still fires.
        let b = retried_on_conflict()
            .restored(0, 4, 1000, vec![key_state(KEY, "2", 2, 4, 3)])
            .committed_put(1005, KEY, "3", 2, 4);
        let b = update(b, "u2", 3, 3).api_ok("u2", 3, 1005);
        check(
            b,
            "/registry/configmaps/default/shared: u2#3 (Update) read resourceVersion 3 but was applied over the \
             version written at 4 (acknowledged at 1005): the write(s) after 3 were lost instead of a 409 Conflict",
        );
    }

    #[test]
    fn a_history_without_preconditions_is_judged_vacuously() {
        let b = h()
            .committed_put(2, KEY, "0", 2, 1)
            .api_invoke("u1", 1, Verb::Update, Resource::ConfigMaps, "default", "shared")
            .committed_put(3, KEY, "1", 2, 2)
            .api_ok("u1", 1, 3);
        check(b, "ok: checked 0");
    }
}
