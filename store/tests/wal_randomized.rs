//! Randomized WAL durability: fixed seeds interleave save (appends and suffix overwrites),
//! sync and crash (with and without a torn last write). After every crash the recovered
//! state must be exactly the last synced state, or — only when the crash tore a write — that
//! state plus a prefix of the unsynced records (which the page cache may have written back).

use bytes::Bytes;
use store::raft::{Entry, EntryKind, HardState};
use store::wal::{SimDisk, Wal};

const N_SEEDS: u64 = 300;
const N_STEPS: usize = 60;

/// SplitMix64: a tiny fixed PRNG so the test needs no dependency and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct State {
    hard_state: HardState,
    entries: Vec<Entry>,
}

enum Record {
    HardState(HardState),
    Entry(Entry),
}

impl State {
    fn apply(&mut self, record: &Record) {
        match record {
            Record::HardState(hard_state) => self.hard_state = *hard_state,
            Record::Entry(entry) => {
                self.entries.truncate(entry.index as usize - 1);
                self.entries.push(entry.clone());
            }
        }
    }
}

#[test]
fn recovery_equals_the_last_synced_state_under_random_crashes() {
    let mut n_torn_recoveries = 0;
    let mut n_crashes = 0;
    for seed in 0..N_SEEDS {
        let mut rng = Rng(seed);
        let disk = SimDisk::new();
        let (mut wal, recovered) = Wal::open(disk.clone()).unwrap();
        let mut synced = State { hard_state: recovered.hard_state, entries: recovered.entries };
        // States after each unsynced record, oldest first.
        let mut unsynced: Vec<State> = Vec::new();
        let mut term = 1;
        for step in 0..N_STEPS {
            let current = unsynced.last().unwrap_or(&synced).clone();
            match rng.below(10) {
                0..=5 => {
                    let last_index = current.entries.len() as u64;
                    let first_index = if rng.below(4) == 0 && last_index > 0 {
                        term += 1;
                        1 + rng.below(last_index)
                    } else {
                        last_index + 1
                    };
                    let n_entries = rng.below(4);
                    let batch: Vec<Entry> = (first_index..first_index + n_entries)
                        .map(|index| Entry {
                            term,
                            index,
                            kind: EntryKind::Normal,
                            data: Bytes::from(vec![step as u8; rng.below(40) as usize]),
                        })
                        .collect();
                    let hard_state = (rng.below(2) == 0).then(|| HardState {
                        term,
                        vote: Some(rng.below(3)),
                        commit: rng.below(last_index + 1),
                    });
                    wal.save(hard_state.as_ref(), &batch).unwrap();
                    let mut state = current;
                    let records =
                        hard_state.map(Record::HardState).into_iter().chain(batch.into_iter().map(Record::Entry));
                    for record in records {
                        state.apply(&record);
                        unsynced.push(state.clone());
                    }
                    assert_eq!(wal.last_index(), state.entries.len() as u64, "seed {seed} step {step}");
                }
                6..=7 => {
                    wal.sync().unwrap();
                    synced = current;
                    unsynced.clear();
                }
                _ => {
                    let tear = (rng.below(2) == 0).then(|| rng.next());
                    disk.crash(tear);
                    n_crashes += 1;
                    let (reopened, recovered) = Wal::open(disk.clone())
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: recovery failed: {e}"));
                    let state = State { hard_state: recovered.hard_state, entries: recovered.entries };
                    if tear.is_none() {
                        assert_eq!(state, synced, "seed {seed} step {step}: crash without tear");
                        assert_eq!(recovered.truncated_torn_bytes, 0, "seed {seed} step {step}");
                    } else {
                        assert!(
                            state == synced || unsynced.contains(&state),
                            "seed {seed} step {step}: recovered {state:?}\nsynced {synced:?}"
                        );
                        if recovered.truncated_torn_bytes > 0 {
                            n_torn_recoveries += 1;
                        }
                    }
                    assert_eq!(reopened.last_index(), state.entries.len() as u64, "seed {seed} step {step}");
                    // What recovery returns is durable: a second crash must give it again.
                    disk.crash(None);
                    let (wal_again, again) = Wal::open(disk.clone()).unwrap();
                    assert_eq!(State { hard_state: again.hard_state, entries: again.entries }, state);
                    assert_eq!(again.truncated_torn_bytes, 0);
                    wal = wal_again;
                    synced = state;
                    unsynced.clear();
                }
            }
        }
    }
    // The run must actually have exercised torn tails, or it proves nothing about them.
    assert!(n_crashes > 1000, "{n_crashes} crashes");
    assert!(n_torn_recoveries > 50, "{n_torn_recoveries} torn recoveries");
}
