//! [`Invariant::RestoreDurability`] (docs/design.md §4.6), across each restore:
//! - a backup the history saw corrupted (`BackupCorrupted`) is never restored: etcdutl
//!   verifies the snapshot's hash before restoring and refuses a mismatch;
//! - every write acknowledged in the lost cluster at a revision at or below the backup's
//!   revision R survives: the restored key's mod revision is at least the write's, or a
//!   change committed in (write, R] explains its absence;
//! - writes acknowledged after R are the data-loss window: expected, counted (in the
//!   summary and in the run's report), not violations.
//!
//! That nothing acknowledged after the restore is lost is `no-acknowledged-write-lost`,
//! which runs on the new cluster's epoch.
//!
//! Cost: O(acknowledged writes × log keys) per restore.

use super::restore::RestoreFacts;
use super::{Invariant, Verdict, Violations};

/// Judges every restore of the history (`restore::restores`).
pub(super) fn check(facts: &[RestoreFacts]) -> Verdict {
    let mut violations = Violations::new(Invariant::RestoreDurability);
    let mut checked = 0;
    let mut windows = Vec::new();
    for restore in facts {
        checked += 1;
        if restore.corrupted_before {
            violations.push(
                Some(restore.at_ns),
                format!("backup {} was corrupted before the restore, yet it was restored", restore.backup),
            );
        }
        let Some(revision) = restore.backup_revision else { continue };
        if restore.backup_epoch != restore.lost_epoch {
            continue;
        }
        for write in restore.acked_in_lost_epoch.iter().filter(|write| write.revision <= revision) {
            checked += 1;
            let restored = restore.restored.get(&write.key);
            let survives = if write.delete {
                restored.is_none_or(|state| state.mod_revision > write.revision)
            } else {
                restored.is_some_and(|state| state.mod_revision >= write.revision)
            };
            let explained = || {
                write.revision < revision
                    && restore
                        .lost_changes
                        .range(write.revision + 1..=revision)
                        .any(|(_, states)| states.iter().any(|state| state.key == write.key))
            };
            if !survives && !explained() {
                violations.push(
                    Some(write.at_ns),
                    format!(
                        "{} on {} acknowledged at revision {} (at or below backup {}'s revision {revision}) \
                         is lost by the restore: the key is {}",
                        write.who,
                        write.key,
                        write.revision,
                        restore.backup,
                        restored
                            .map_or("absent".to_string(), |state| format!("at mod revision {}", state.mod_revision))
                    ),
                );
            }
        }
        let window = restore.window();
        windows.push(format!(
            "backup rev {} restored, data-loss window {} writes / {} bytes up to rev {}",
            window.backup_revision, window.n_writes, window.bytes, window.lost_revision
        ));
    }
    let summary = if facts.is_empty() {
        "no restore".to_string()
    } else {
        format!("{} restores, {checked} items: {}", facts.len(), windows.join("; "))
    };
    violations.into_verdict(checked, summary)
}
