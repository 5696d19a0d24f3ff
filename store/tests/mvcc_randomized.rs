//! Randomized MVCC against a naive model (a full copy of the keyspace per revision), fixed
//! seeds: puts with and without leases, deletes, lease revokes and compactions; every read
//! at every revision since compaction must equal the model (each key-value with the lease
//! its version was put with), replaying the event history from the compaction point must
//! rebuild the current keyspace, and a snapshot, encoded and decoded, must hold the same
//! store.

use std::collections::BTreeMap;

use bytes::Bytes;
use store::api::*;
use store::lease::{LeaseId, NO_LEASE};
use store::mvcc::{Mvcc, MvccSnapshot};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

type Keyspace = BTreeMap<String, KeyValue>;

/// The leases a put may name (besides none); each is granted again right after a revoke.
const LEASES: [LeaseId; 2] = [1, 2];

fn grant(store: &mut Mvcc, id: LeaseId) {
    store.apply(&Mutation::LeaseGrant(LeaseGrantRequest { id, ttl_secs: 60 })).expect("grant");
}

#[test]
fn mvcc_matches_a_naive_model_under_random_requests() {
    for seed in 0..200 {
        let mut rng = Rng(seed);
        let mut store = Mvcc::new();
        for id in LEASES {
            grant(&mut store, id);
        }
        // model[r] = keyspace at revision r (index 0 unused).
        let mut model: Vec<Keyspace> = vec![Keyspace::new(), Keyspace::new()];
        let key = |rng: &mut Rng| format!("/k/{}", rng.below(6));
        for step in 0..80 {
            let current = model.last().unwrap().clone();
            let revision = store.current_revision() + 1;
            let mut next = current.clone();
            let mutation = match rng.below(11) {
                0..=4 => {
                    let k = key(&mut rng);
                    let value = Bytes::from(format!("v{step}"));
                    let lease = [NO_LEASE, LEASES[0], LEASES[1]][rng.below(3) as usize];
                    let kv = match current.get(&k) {
                        Some(old) => KeyValue {
                            value: value.clone(),
                            mod_revision: revision,
                            version: old.version + 1,
                            lease,
                            ..old.clone()
                        },
                        None => KeyValue {
                            key: k.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                            version: 1,
                            lease,
                        },
                    };
                    next.insert(k.clone(), kv);
                    let put = PutRequest { key: k, value, prev_kv: false };
                    match lease {
                        NO_LEASE => Mutation::Put(put),
                        lease => Mutation::LeasedPut(LeasedPutRequest { put, lease }),
                    }
                }
                5..=6 => {
                    let k = key(&mut rng);
                    next.remove(&k);
                    Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::Key(k), prev_kv: false })
                }
                7 => {
                    next.clear();
                    Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::Prefix("/k/".into()), prev_kv: false })
                }
                10 => {
                    // The revoke deletes the keys whose live version names the lease; the
                    // lease is granted again at once (a grant writes no revision).
                    let id = LEASES[rng.below(2) as usize];
                    next.retain(|_, kv| kv.lease != id);
                    let (_, events) = store.apply(&Mutation::LeaseRevoke(LeaseRevokeRequest { id })).unwrap();
                    grant(&mut store, id);
                    let wrote = next != current;
                    if wrote {
                        model.push(next);
                    }
                    assert_eq!(!events.is_empty(), wrote, "seed {seed} step {step}");
                    continue;
                }
                _ => {
                    let oldest = store.compacted_revision().max(1);
                    let target = oldest + rng.below((store.current_revision() - oldest + 1) as u64) as i64;
                    let compacted_before = store.compacted_revision();
                    let result = store.apply(&Mutation::Compact(CompactRequest { revision: target }));
                    assert_eq!(result.is_ok(), target > compacted_before, "seed {seed} step {step}");
                    continue;
                }
            };
            let (_, events) = store.apply(&mutation).unwrap();
            if next != current {
                model.push(next);
                assert!(!events.is_empty(), "seed {seed} step {step}");
            } else {
                assert!(events.is_empty(), "seed {seed} step {step}: {events:?}");
            }
            assert_eq!(store.current_revision() as usize, model.len() - 1, "seed {seed} step {step}");
        }
        let compacted = store.compacted_revision();
        for revision in compacted.max(1)..=store.current_revision() {
            let expected: Vec<KeyValue> = model[revision as usize].values().cloned().collect();
            assert_eq!(store.keyspace_at(revision).unwrap(), expected, "seed {seed} revision {revision}");
        }
        if compacted > 1 {
            assert!(matches!(store.keyspace_at(compacted - 1), Err(StoreError::Compacted { .. })));
        }
        // Replaying history after the compaction point rebuilds the current keyspace.
        let start = compacted.max(1);
        let mut replayed = model[start as usize].clone();
        for event in store.events(&KeyRange::Prefix("".into()), start + 1, 0).unwrap() {
            match event.kind {
                EventKind::Put => replayed.insert(event.kv.key.clone(), event.kv),
                EventKind::Delete => replayed.remove(&event.kv.key),
            };
        }
        assert_eq!(&replayed, model.last().unwrap(), "seed {seed}");
        let snapshot = store.to_snapshot();
        let decoded = MvccSnapshot::decode(&snapshot.encode()).unwrap();
        assert_eq!(decoded, snapshot, "seed {seed}");
        let restored = Mvcc::from_snapshot(decoded);
        assert_eq!(restored.digest(), store.digest(), "seed {seed}");
        for revision in compacted.max(1)..=store.current_revision() {
            let expected: Vec<KeyValue> = model[revision as usize].values().cloned().collect();
            assert_eq!(restored.keyspace_at(revision).unwrap(), expected, "seed {seed} revision {revision}");
        }
    }
}
