//! `database-single-primary`: at no store revision do two primary pods of one database
//! exist. A database's primary pods are the pods named `<db>-primary` or
//! `<db>-primary-<suffix>`; the operator's own name for the role.
//!
//! Judged from the history the apiserver leaves: every committed pod create and delete
//! ([`HistoryEvent::StoreWrite`]), in revision order, and after a restore from backup the
//! keyspace the restored cluster starts from ([`HistoryEvent::Restored`]). It judges what
//! the cluster's state held, not what the operator's cache believed: a stale cache is no
//! excuse. (Whether a kubelet cut off from the cluster still runs an evicted primary is a
//! question of fencing the workload itself, which a real database needs too and which
//! this example does not model.)

use std::collections::BTreeSet;

use kubesim::api::Verb;
use kubesim::verdict::checkers::{CheckInput, Checker, CustomInvariant, Invariant, Verdict, Violations};
use kubesim::verdict::history::HistoryEvent;

/// The invariant's name.
pub const SINGLE_PRIMARY: CustomInvariant = CustomInvariant::new("database-single-primary");

const POD_PREFIX: &str = "/registry/pods/";

/// The checker of [`SINGLE_PRIMARY`].
pub struct SinglePrimary;

/// The database a primary pod's key belongs to (`default/orders` for
/// `/registry/pods/default/orders-primary-1a2b3`), if the key is a primary's.
fn database_of(key: &str) -> Option<String> {
    let (namespace, name) = key.strip_prefix(POD_PREFIX)?.split_once('/')?;
    let (db, rest) = name.rsplit_once("-primary")?;
    (rest.is_empty() || rest.starts_with('-')).then(|| format!("{namespace}/{db}"))
}

/// One committed create or delete of a primary pod.
struct Write<'h> {
    at_ns: u64,
    revision: i64,
    verb: Verb,
    key: &'h str,
    user: &'h str,
}

impl Checker for SinglePrimary {
    fn invariant(&self) -> Invariant {
        Invariant::Custom(SINGLE_PRIMARY)
    }

    fn check(&self, input: &CheckInput) -> Verdict {
        let mut violations = Violations::new(self.invariant());
        // Each cluster epoch (a restore starts a new one, from the restored keyspace):
        // its starting primaries, then its writes.
        let mut epochs: Vec<(BTreeSet<&str>, Vec<Write>)> = vec![(BTreeSet::new(), Vec::new())];
        for (at_ns, event) in input.history.events() {
            match event {
                HistoryEvent::StoreWrite {
                    user, verb: verb @ (Verb::Create | Verb::Delete), key, revision, ..
                } if database_of(key).is_some() => {
                    let write = Write { at_ns, revision: *revision, verb: *verb, key, user };
                    epochs.last_mut().expect("an epoch").1.push(write);
                }
                HistoryEvent::Restored { keyspace, .. } => {
                    let restored = keyspace
                        .iter()
                        .filter(|k| k.value_hash.is_some() && database_of(&k.key).is_some())
                        .map(|k| k.key.as_str())
                        .collect();
                    epochs.push((restored, Vec::new()));
                }
                _ => {}
            }
        }
        let mut checked = 0;
        for (live, mut writes) in epochs {
            let mut live: BTreeSet<&str> = live;
            writes.sort_by_key(|w| w.revision);
            for write in writes {
                checked += 1;
                match write.verb {
                    Verb::Create => {
                        live.insert(write.key);
                        let db = database_of(write.key).expect("a primary's key");
                        let primaries: Vec<&str> =
                            live.iter().copied().filter(|k| database_of(k).as_deref() == Some(db.as_str())).collect();
                        if primaries.len() > 1 {
                            violations.push(
                                Some(write.at_ns),
                                format!(
                                    "database {db} has {} primaries at revision {} ({}), the last created by {}",
                                    primaries.len(),
                                    write.revision,
                                    primaries.join(", "),
                                    write.user
                                ),
                            );
                        }
                    }
                    _ => {
                        live.remove(write.key);
                    }
                }
            }
        }
        violations.into_verdict(checked, format!("{checked} primary pod creates and deletes"))
    }
}

#[cfg(test)]
mod tests {
    use super::database_of;

    #[test]
    fn primary_pods_are_recognised_by_name() {
        assert_eq!(database_of("/registry/pods/default/orders-primary").as_deref(), Some("default/orders"));
        assert_eq!(database_of("/registry/pods/default/orders-primary-1a2b3").as_deref(), Some("default/orders"));
        assert_eq!(database_of("/registry/pods/default/orders-replica-0"), None);
        assert_eq!(database_of("/registry/pods/default/orders-primaryx"), None);
        assert_eq!(database_of("/registry/deployments/default/orders-primary"), None);
    }
}
