//! [`Invariant::ServiceIpsUnique`] (docs/design.md §4.17): no two live Services ever hold
//! the same ClusterIP, at any revision of the store, across apiserver restarts,
//! partitions and restores.
//!
//! Kubernetes keeps ClusterIPs unique with one allocation bitmap in etcd
//! (`pkg/registry/core/service/allocator/storage/storage.go`): every apiserver allocates
//! by a read-modify-write of that object guarded by its resourceVersion
//! (`GuaranteedUpdate`), before it creates the Service, and releases after the delete;
//! the repair loop (`pkg/registry/core/service/ipallocator/controller/repair.go`) rebuilds
//! the bitmap from the Services that exist and frees an unclaimed IP only after a grace
//! of three rounds. So the store never holds two Services with one IP.
//!
//! The exact rule, judged from the committed store writes (the history's
//! `ServiceClusterIp` records, one per Service key a committed revision put or deleted,
//! carrying the ClusterIP of the value the store applied), in revision order per cluster
//! epoch:
//! - a put of Service key `k` with IP `ip` at revision `r` is a violation if another key
//!   holds `ip` at `r` (its last put carried `ip` and no delete followed);
//! - a Service's IP never changes while it lives: a put of a live key with another IP is a
//!   violation too (the apiserver's update keeps `spec.clusterIP`);
//! - a restore ([`HistoryEvent::Restored`]) starts a new epoch whose live Services are the
//!   restored keyspace's, their IPs known from the records of the value hashes they carry
//!   (the backup holds values committed earlier in the history); two of them with one IP
//!   is a violation of the restored state.
//!
//! Services with an empty ClusterIP hold none (kubesim allocates one for every Service).
//!
//! Cost: O(n log n) over the history's records (maps by key and by IP).

use std::collections::BTreeMap;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{HistoryEvent, SERVICES_KEY_PREFIX};

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::ServiceIpsUnique);
    // Every put's value hash -> the IP it carried, for reading a restored keyspace.
    let ip_of_value: BTreeMap<u64, &str> = input
        .history
        .events()
        .filter_map(|(_, event)| match event {
            HistoryEvent::ServiceClusterIp { cluster_ip: Some(ip), value_hash: Some(hash), .. } => {
                Some((*hash, ip.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut live = LiveServices::default();
    let (mut n_puts, mut n_restores) = (0usize, 0usize);
    for (at_ns, event) in input.history.events() {
        match event {
            HistoryEvent::ServiceClusterIp { revision, key, cluster_ip: Some(ip), .. } => {
                n_puts += 1;
                if let Some(message) = live.put(key, ip, *revision) {
                    violations.push(Some(at_ns), message);
                }
            }
            HistoryEvent::ServiceClusterIp { key, cluster_ip: None, .. } => live.delete(key),
            HistoryEvent::Restored { backup, new_revision, keyspace, .. } => {
                n_restores += 1;
                live = LiveServices::default();
                for state in keyspace.iter().filter(|s| s.key.starts_with(SERVICES_KEY_PREFIX)) {
                    let Some(ip) = state.value_hash.and_then(|hash| ip_of_value.get(&hash)) else {
                        continue;
                    };
                    if let Some(message) = live.put(&state.key, ip, state.mod_revision) {
                        violations.push(
                            Some(at_ns),
                            format!("restored from backup {backup} (store at revision {new_revision}): {message}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    violations
        .into_verdict(n_puts, format!("{n_puts} committed Service writes across {} cluster epochs", n_restores + 1))
}

/// The live Services of one epoch, by key and by IP.
#[derive(Default)]
struct LiveServices<'h> {
    /// Key -> (IP, revision of the put that gave it).
    by_key: BTreeMap<&'h str, (&'h str, i64)>,
    /// IP -> the key holding it.
    by_ip: BTreeMap<&'h str, &'h str>,
}

impl<'h> LiveServices<'h> {
    /// Records a put; the violation it shows, if any.
    fn put(&mut self, key: &'h str, ip: &'h str, revision: i64) -> Option<String> {
        let mut found = None;
        if let Some(&(held, since)) = self.by_key.get(key) {
            if held != ip {
                found = Some(format!(
                    "{key} held ClusterIP {held} since revision {since} and was rewritten with {ip} at revision {revision}"
                ));
            }
            if self.by_ip.get(held) == Some(&key) {
                self.by_ip.remove(held);
            }
        }
        self.by_key.insert(key, (ip, revision));
        if ip.is_empty() {
            return found;
        }
        if let Some(&other) = self.by_ip.get(ip) {
            if other != key {
                let since = self.by_key.get(other).map_or(0, |&(_, since)| since);
                return Some(format!(
                    "ClusterIP {ip} is held by two live Services at revision {revision}: {other} (since revision \
                     {since}) and {key}"
                ));
            }
        }
        self.by_ip.insert(ip, key);
        found
    }

    fn delete(&mut self, key: &str) {
        if let Some((ip, _)) = self.by_key.remove(key) {
            if self.by_ip.get(ip).is_some_and(|&holder| holder == key) {
                self.by_ip.remove(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testing::{check_one, h};
    use crate::history::KeyState;

    fn put(key: &str, ip: &str, revision: i64) -> HistoryEvent {
        HistoryEvent::ServiceClusterIp {
            revision,
            key: format!("{SERVICES_KEY_PREFIX}default/{key}"),
            cluster_ip: Some(ip.to_string()),
            value_hash: Some(revision as u64),
        }
    }

    fn delete(key: &str, revision: i64) -> HistoryEvent {
        HistoryEvent::ServiceClusterIp {
            revision,
            key: format!("{SERVICES_KEY_PREFIX}default/{key}"),
            cluster_ip: None,
            value_hash: None,
        }
    }

    /// Through `check_all`, as a run is judged.
    fn verdict(events: Vec<HistoryEvent>) -> Verdict {
        let history = events.into_iter().fold(h(), |history, event| history.event(event)).build();
        check_one(Invariant::ServiceIpsUnique, &history, None, Vec::new())
    }

    #[test]
    fn the_prefix_constant_is_the_services_key_prefix() {
        assert_eq!(SERVICES_KEY_PREFIX, api::Resource::Services.key_prefix());
    }

    #[test]
    fn an_ip_reused_after_its_service_was_deleted_is_fine() {
        let v =
            verdict(vec![put("a", "10.96.0.1", 5), delete("a", 6), put("b", "10.96.0.1", 7), put("b", "10.96.0.1", 8)]);
        assert!(v.passed(), "{:?}", v.violations);
        assert_eq!(v.checked, 3);
    }

    #[test]
    fn two_live_services_with_one_ip_fire() {
        let v = verdict(vec![put("a", "10.96.0.1", 5), put("b", "10.96.0.2", 6), put("c", "10.96.0.1", 7)]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].message.contains("10.96.0.1"), "{}", v.violations[0].message);
        assert!(v.violations[0].message.contains("default/a"), "{}", v.violations[0].message);
    }

    #[test]
    fn a_changed_ip_fires() {
        let v = verdict(vec![put("a", "10.96.0.1", 5), put("a", "10.96.0.3", 6)]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    }

    /// A restore brings back the backup's Services (their IPs from the puts whose values
    /// they carry), replacing whatever the old cluster held after the backup.
    #[test]
    fn a_restore_starts_from_the_restored_services() {
        let restored = |keys: &[(&str, i64)]| HistoryEvent::Restored {
            backup: 0,
            backup_revision: 6,
            bump: 1000,
            new_revision: 1006,
            new_cluster_id: 2,
            members: Vec::new(),
            keyspace: keys
                .iter()
                .map(|(key, revision)| KeyState {
                    key: format!("{SERVICES_KEY_PREFIX}default/{key}"),
                    value_hash: Some(*revision as u64),
                    value_len: 1,
                    create_revision: *revision,
                    mod_revision: *revision,
                    version: 1,
                })
                .collect(),
        };
        // b (created after the backup) is gone after the restore: its IP is free again.
        let fine = verdict(vec![
            put("a", "10.96.0.1", 5),
            put("b", "10.96.0.2", 7),
            restored(&[("a", 5)]),
            put("c", "10.96.0.2", 1007),
        ]);
        assert!(fine.passed(), "{:?}", fine.violations);
        // a is back after the restore: its IP is taken again.
        let clash = verdict(vec![
            put("a", "10.96.0.1", 5),
            delete("a", 7),
            put("b", "10.96.0.1", 8),
            restored(&[("a", 5)]),
            put("c", "10.96.0.1", 1007),
        ]);
        assert_eq!(clash.violations.len(), 1, "{:?}", clash.violations);
    }
}
