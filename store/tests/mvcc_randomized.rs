//! Randomized MVCC against a naive model (a full copy of the keyspace per revision), fixed
//! seeds: every read at every revision since compaction must equal the model, replaying the
//! event history from the compaction point must rebuild the current keyspace, and a snapshot
//! must round-trip the digest.

use std::collections::BTreeMap;

use bytes::Bytes;
use store::api::*;
use store::mvcc::Mvcc;

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

#[test]
fn mvcc_matches_a_naive_model_under_random_requests() {
    for seed in 0..200 {
        let mut rng = Rng(seed);
        let mut store = Mvcc::new();
        // model[r] = keyspace at revision r (index 0 unused).
        let mut model: Vec<Keyspace> = vec![Keyspace::new(), Keyspace::new()];
        let key = |rng: &mut Rng| format!("/k/{}", rng.below(6));
        for step in 0..80 {
            let current = model.last().unwrap().clone();
            let revision = store.current_revision() + 1;
            let mut next = current.clone();
            let mutation = match rng.below(10) {
                0..=4 => {
                    let k = key(&mut rng);
                    let value = Bytes::from(format!("v{step}"));
                    let kv = match current.get(&k) {
                        Some(old) => KeyValue {
                            value: value.clone(),
                            mod_revision: revision,
                            version: old.version + 1,
                            ..old.clone()
                        },
                        None => KeyValue {
                            key: k.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                            version: 1,
                        },
                    };
                    next.insert(k.clone(), kv);
                    Mutation::Put(PutRequest { key: k, value, prev_kv: false })
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
        let restored = Mvcc::from_snapshot(store.to_snapshot());
        assert_eq!(restored.digest(), store.digest(), "seed {seed}");
    }
}
