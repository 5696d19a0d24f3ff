//! One key's history: etcd's `keyIndex` (mvcc/key_index.go). A key lives through a sequence
//! of generations; each generation starts with a create, collects one version per change and
//! ends with a delete (the tombstone). Values are kept next to their revision, so reading a
//! key at any revision since the last compaction is a search in this structure alone.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::{KeyValue, Revision};
use crate::lease::LeaseId;

/// One stored version of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Version {
    /// The revision that wrote this version (the key's `mod_revision` from then on).
    pub(crate) revision: Revision,
    /// etcd's per-key `version`: 1 on create, +1 per change. Stored rather than derived from
    /// the position because compaction drops earlier versions.
    pub(crate) version: i64,
    pub(crate) value: Bytes,
    /// The lease this version was put with ([`KeyValue::lease`]). Not in the serde
    /// encoding: a snapshot carries it in its lease section, so that the keys of a store
    /// that never had a lease encode as they did before versions had one.
    #[serde(skip)]
    pub(crate) lease: LeaseId,
}

/// From one create to the matching delete (or to now, if the key is live).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Generation {
    pub(crate) create_revision: Revision,
    /// Never empty; revisions strictly increase.
    pub(crate) versions: Vec<Version>,
    /// The revision of the delete that ended this generation.
    pub(crate) deleted_at: Option<Revision>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyHistory {
    /// Oldest first; only the last one may be live (`deleted_at == None`).
    pub(crate) generations: Vec<Generation>,
}

impl KeyHistory {
    /// The key as it was at `revision`, or `None` if it did not exist then.
    pub(crate) fn get(&self, key: &str, revision: Revision) -> Option<KeyValue> {
        let (create_revision, version) = self.find(revision)?;
        Some(KeyValue {
            key: key.to_string(),
            value: version.value.clone(),
            create_revision,
            mod_revision: version.revision,
            version: version.version,
            lease: version.lease,
        })
    }

    /// The create revision and the version of the key as it was at `revision`, without
    /// building a `KeyValue` (which copies the key).
    pub(crate) fn find(&self, revision: Revision) -> Option<(Revision, &Version)> {
        // The generation that was open at `revision` is the last one created at or before it.
        let generation_idx = self.generations.partition_point(|g| g.create_revision <= revision);
        let generation = &self.generations[generation_idx.checked_sub(1)?];
        if generation.deleted_at.is_some_and(|deleted| deleted <= revision) {
            return None;
        }
        let version_idx = generation.versions.partition_point(|v| v.revision <= revision);
        let version = &generation.versions[version_idx.checked_sub(1)?];
        Some((generation.create_revision, version))
    }

    /// The key as it is now.
    pub(crate) fn latest(&self, key: &str) -> Option<KeyValue> {
        self.get(key, Revision::MAX)
    }

    pub(crate) fn put(&mut self, revision: Revision, value: Bytes, lease: LeaseId) {
        match self.generations.last_mut() {
            Some(generation) if generation.deleted_at.is_none() => {
                let last = generation.versions.last().expect("a generation is never empty");
                // Invariant: one change per key per revision (the txn checks guarantee it,
                // like etcd's checkIntervals), and revisions only grow.
                assert!(revision > last.revision, "put at revision {revision} after a version at {}", last.revision);
                let version = last.version + 1;
                generation.versions.push(Version { revision, version, value, lease });
            }
            _ => {
                if let Some(previous) = self.generations.last() {
                    let deleted_at = previous.deleted_at.expect("only the last generation is live");
                    assert!(revision > deleted_at, "re-create at {revision} before delete at {deleted_at}");
                }
                self.generations.push(Generation {
                    create_revision: revision,
                    versions: vec![Version { revision, version: 1, value, lease }],
                    deleted_at: None,
                });
            }
        }
    }

    /// Every stored version, oldest first.
    pub(crate) fn versions(&self) -> impl Iterator<Item = &Version> {
        self.generations.iter().flat_map(|g| &g.versions)
    }

    /// The stored version written at exactly `revision`, if this history still holds it.
    pub(crate) fn version_at_mut(&mut self, revision: Revision) -> Option<&mut Version> {
        let generation_idx = self.generations.partition_point(|g| g.create_revision <= revision);
        let generation = &mut self.generations[generation_idx.checked_sub(1)?];
        let version_idx = generation.versions.binary_search_by_key(&revision, |v| v.revision).ok()?;
        Some(&mut generation.versions[version_idx])
    }

    /// The live version, if the key is live.
    pub(crate) fn live_version_mut(&mut self) -> Option<&mut Version> {
        let generation = self.generations.last_mut().filter(|g| g.deleted_at.is_none())?;
        generation.versions.last_mut()
    }

    /// Ends the live generation. Returns false (and changes nothing) if the key is not live.
    pub(crate) fn delete(&mut self, revision: Revision) -> bool {
        match self.generations.last_mut() {
            Some(generation) if generation.deleted_at.is_none() => {
                let last = generation.versions.last().expect("a generation is never empty");
                assert!(revision > last.revision, "delete at {revision} after a version at {}", last.revision);
                generation.deleted_at = Some(revision);
                true
            }
            _ => false,
        }
    }

    /// etcd `keyIndex.compact`: drop every version older than the newest one at or below
    /// `revision` (which is kept so reads at `revision` still work), and every generation that
    /// was deleted at or below `revision`. Returns true when nothing is left of the key.
    pub(crate) fn compact(&mut self, revision: Revision) -> bool {
        self.generations.retain(|g| g.deleted_at.is_none_or(|deleted| deleted > revision));
        if let Some(generation) = self.generations.first_mut() {
            let keep_from = generation.versions.partition_point(|v| v.revision <= revision);
            if keep_from > 1 {
                generation.versions.drain(..keep_from - 1);
            }
        }
        self.generations.is_empty()
    }

    /// Drops every version at or below `revision`, the newest one too: the off-by-one of
    /// the `compaction-drops-kept-version` planted bug (etcd keeps that version, see
    /// [`KeyHistory::compact`]). Returns true when nothing is left of the key.
    pub(crate) fn drop_versions_through(&mut self, revision: Revision) -> bool {
        for generation in &mut self.generations {
            generation.versions.retain(|v| v.revision > revision);
        }
        self.generations.retain(|g| !g.versions.is_empty());
        self.generations.is_empty()
    }

    /// Forgets every change after `revision`, as if the store had stopped there (used only
    /// by the `snapshot-omits-last-txn` planted bug). Returns true when nothing is left.
    pub(crate) fn truncate_after(&mut self, revision: Revision) -> bool {
        self.generations.retain(|g| g.create_revision <= revision);
        if let Some(generation) = self.generations.last_mut() {
            generation.versions.retain(|v| v.revision <= revision);
            if generation.deleted_at.is_some_and(|deleted| deleted > revision) {
                generation.deleted_at = None;
            }
        }
        self.generations.is_empty()
    }
}
