//! How a snapshot carries the lease of each stored key version ([`KeyValue::lease`],
//! etcd `mvccpb.KeyValue.lease`).
//!
//! A snapshot's serde fields encode key versions and events without their lease, exactly
//! as they were encoded before key versions had one; the leases travel after them, in the
//! snapshot's lease section (see [`super::MvccSnapshot`]), as [`KvLeases`]: the lease of
//! each stored version and event that has one. A store that never had a lease encodes
//! byte for byte as before (snapshot sizes feed the simulation: torn-write lengths,
//! bit-rot offsets); one with leases pays 16 bytes for an empty [`KvLeases`], plus a
//! named entry per version and event that has a lease.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::key_index::KeyHistory;
use crate::api::{Event, EventKind, KeyValue, Revision};
use crate::lease::{LeaseId, LeaseTable, NO_LEASE};

/// The leases of a snapshot's key versions and events, only the ones that are not
/// [`NO_LEASE`], each named by where it belongs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KvLeases {
    versions: Vec<VersionLease>,
    events: Vec<EventLeases>,
}

/// The lease of the version of `key` written at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct VersionLease {
    key: String,
    revision: Revision,
    lease: LeaseId,
}

/// The leases of the `event_idx`-th event of `revision` (its `kv` and its `prev_kv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EventLeases {
    revision: Revision,
    event_idx: u64,
    kv_lease: LeaseId,
    prev_kv_lease: LeaseId,
}

impl KvLeases {
    /// Every lease the keys and events hold, in key and revision order.
    pub(super) fn of(keys: &BTreeMap<String, KeyHistory>, events: &BTreeMap<Revision, Vec<Event>>) -> Self {
        let versions = keys
            .iter()
            .flat_map(|(key, history)| {
                history.versions().filter(|v| v.lease != NO_LEASE).map(|v| VersionLease {
                    key: key.clone(),
                    revision: v.revision,
                    lease: v.lease,
                })
            })
            .collect();
        let events = events
            .iter()
            .flat_map(|(&revision, revision_events)| {
                revision_events.iter().enumerate().filter_map(move |(event_idx, event)| {
                    let kv_lease = event.kv.lease;
                    let prev_kv_lease = event.prev_kv.as_ref().map_or(NO_LEASE, |kv| kv.lease);
                    (kv_lease != NO_LEASE || prev_kv_lease != NO_LEASE).then_some(EventLeases {
                        revision,
                        event_idx: event_idx as u64,
                        kv_lease,
                        prev_kv_lease,
                    })
                })
            })
            .collect();
        KvLeases { versions, events }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.events.is_empty()
    }

    /// Gives each version and event named its lease. A name that the keys or events do not
    /// hold (a damaged section, or one from another snapshot) is an error, not a panic.
    pub(super) fn apply_to(
        self,
        keys: &mut BTreeMap<String, KeyHistory>,
        events: &mut BTreeMap<Revision, Vec<Event>>,
    ) -> Result<(), String> {
        for VersionLease { key, revision, lease } in self.versions {
            let version = keys.get_mut(&key).and_then(|history| history.version_at_mut(revision));
            let Some(version) = version else {
                return Err(format!("lease section names {key:?} at revision {revision}, which the snapshot lacks"));
            };
            version.lease = lease;
        }
        for EventLeases { revision, event_idx, kv_lease, prev_kv_lease } in self.events {
            let event = events.get_mut(&revision).and_then(|e| e.get_mut(usize::try_from(event_idx).ok()?));
            let Some(event) = event else {
                return Err(format!(
                    "lease section names event {event_idx} of revision {revision}, which the snapshot lacks"
                ));
            };
            event.kv.lease = kv_lease;
            match (&mut event.prev_kv, prev_kv_lease) {
                (Some(prev_kv), lease) => prev_kv.lease = lease,
                (None, NO_LEASE) => {}
                (None, _) => {
                    return Err(format!(
                        "lease section names the prev_kv of event {event_idx} of revision {revision}, which has none"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// What a snapshot written before key versions had a lease tells of them: only the lease
/// table's attachments, which are the live versions' leases (etcd rebuilds the same
/// attachments the other way, from the live versions' `kv.lease`, in mvcc/kvstore.go
/// `restore`). Older versions and the events keep [`NO_LEASE`].
pub(super) fn attach_live_versions(keys: &mut BTreeMap<String, KeyHistory>, leases: &LeaseTable) {
    for (key, history) in keys.iter_mut() {
        if let Some(version) = history.live_version_mut() {
            version.lease = leases.lease_of(key);
        }
    }
}

/// The serde form of a snapshot's events: each event's key-values without their lease
/// (which travels in [`KvLeases`]), the bytes every snapshot had before key-values had one.
pub(super) mod events_without_leases {
    use super::*;

    type Events = BTreeMap<Revision, Vec<Event>>;

    pub(in crate::mvcc) fn serialize<E: Borrow<Events>, S: Serializer>(
        events: &E,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(events.borrow().iter().map(|(revision, events)| (revision, RevisionEvents(events))))
    }

    pub(in crate::mvcc) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Events, D::Error> {
        let wire = BTreeMap::<Revision, Vec<EventWire>>::deserialize(deserializer)?;
        Ok(wire
            .into_iter()
            .map(|(revision, events)| (revision, events.into_iter().map(Event::from).collect()))
            .collect())
    }

    struct RevisionEvents<'a>(&'a [Event]);

    impl Serialize for RevisionEvents<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(EventRef::from))
        }
    }

    /// An [`Event`] as serde derives it, minus the leases.
    #[derive(Serialize)]
    struct EventRef<'a> {
        kind: EventKind,
        kv: KeyValueRef<'a>,
        prev_kv: Option<KeyValueRef<'a>>,
    }

    /// A [`KeyValue`] as serde derives it, minus the lease.
    #[derive(Serialize)]
    struct KeyValueRef<'a> {
        key: &'a str,
        value: &'a Bytes,
        create_revision: Revision,
        mod_revision: Revision,
        version: i64,
    }

    impl<'a> From<&'a Event> for EventRef<'a> {
        fn from(event: &'a Event) -> Self {
            EventRef {
                kind: event.kind,
                kv: KeyValueRef::from(&event.kv),
                prev_kv: event.prev_kv.as_ref().map(KeyValueRef::from),
            }
        }
    }

    impl<'a> From<&'a KeyValue> for KeyValueRef<'a> {
        fn from(kv: &'a KeyValue) -> Self {
            KeyValueRef {
                key: &kv.key,
                value: &kv.value,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
            }
        }
    }

    #[derive(Deserialize)]
    struct EventWire {
        kind: EventKind,
        kv: KeyValueWire,
        prev_kv: Option<KeyValueWire>,
    }

    #[derive(Deserialize)]
    struct KeyValueWire {
        key: String,
        value: Bytes,
        create_revision: Revision,
        mod_revision: Revision,
        version: i64,
    }

    impl From<EventWire> for Event {
        fn from(wire: EventWire) -> Self {
            Event { kind: wire.kind, kv: wire.kv.into(), prev_kv: wire.prev_kv.map(KeyValue::from) }
        }
    }

    impl From<KeyValueWire> for KeyValue {
        fn from(wire: KeyValueWire) -> Self {
            KeyValue {
                key: wire.key,
                value: wire.value,
                create_revision: wire.create_revision,
                mod_revision: wire.mod_revision,
                version: wire.version,
                lease: NO_LEASE,
            }
        }
    }
}
