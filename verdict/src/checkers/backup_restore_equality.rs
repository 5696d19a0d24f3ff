//! [`Invariant::BackupRestoreEquality`] (docs/design.md §4.4): the keyspace a restore
//! starts from equals the keyspace of the backup's revision R, key by key: value, create
//! revision, mod revision and version. The reference is rebuilt from the history's
//! `Committed` records of the cluster the backup was taken from, so a backup that lies
//! about its revision (etcd: a save that misses the last applied batch) is caught.
//!
//! Cost: O(keys + changes) per restore.

use super::restore::RestoreFacts;
use super::{Invariant, Verdict, Violations};
use crate::history::KeyState;

/// Judges every restore of the history (`restore::restores`).
pub(super) fn check(facts: &[RestoreFacts]) -> Verdict {
    let mut violations = Violations::new(Invariant::BackupRestoreEquality);
    let mut checked = 0;
    for restore in facts {
        let Some(revision) = restore.backup_revision else {
            violations.push(
                Some(restore.at_ns),
                format!("backup {} was restored but the history never saw it taken", restore.backup),
            );
            continue;
        };
        let keys = restore.reference.keys().chain(restore.restored.keys()).collect::<std::collections::BTreeSet<_>>();
        for key in keys {
            checked += 1;
            let expected = restore.reference.get(key);
            let found = restore.restored.get(key);
            if expected != found {
                violations.push(
                    Some(restore.at_ns),
                    format!(
                        "restore of backup {} (revision {revision}): key {key} is {} but at revision \
                         {revision} it was {}",
                        restore.backup,
                        describe(found),
                        describe(expected)
                    ),
                );
            }
        }
    }
    let summary =
        format!("{} restores, {checked} keys compared with the history's keyspace at the backup revision", facts.len());
    violations.into_verdict(checked, summary)
}

fn describe(state: Option<&KeyState>) -> String {
    match state {
        None => "absent".to_string(),
        Some(state) => format!(
            "value {:016x} ({} bytes) create {} mod {} version {}",
            state.value_hash.unwrap_or(0),
            state.value_len,
            state.create_revision,
            state.mod_revision,
            state.version
        ),
    }
}
