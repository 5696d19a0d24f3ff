//! kubesim patch: the timer heap, in place of the `naive-timer` crate.
//!
//! The same binary heap ordered by deadline alone, with the same operations in the same
//! order, so timers fire in exactly the order `naive_timer::Timer` fired them (ties
//! included: `BinaryHeap`'s order among equal deadlines depends only on the sequence of
//! pushes and pops and on the comparisons' results, which are unchanged). What differs is
//! the cost:
//! - a timer that only wakes a task (every pending `Sleep` adds one) keeps its `Waker`
//!   instead of a boxed closure, so it costs no allocation;
//! - the heap holds 16-byte entries (the deadline in nanoseconds and the index of the
//!   timer's callback in a slab beside it) instead of 40-byte ones (a `Duration` and the
//!   callback), so sifting an entry moves less memory and compares one integer. Nanoseconds
//!   in a `u64` order deadlines exactly as `Duration`s for the first 584 years of simulated
//!   time; a later deadline saturates (no run gets there).

use std::collections::BinaryHeap;
use std::time::Duration;
use std::{cmp::Ordering, task::Waker};

/// What a timer does when it fires.
enum Callback {
    /// Wake a task: what every pending `Sleep` registers.
    Wake(Waker),
    /// Anything else (message delivery, node restart).
    Call(Box<dyn FnOnce() + Send + Sync + 'static>),
    /// A free slot of the slab.
    Free,
}

/// One pending timer in the heap: when, and where its callback is.
struct Entry {
    /// Nanoseconds since the simulation's base instant.
    deadline: u64,
    /// Index of the callback in `Timer::slots`.
    slot: u32,
}

/// A heap of timers, each fired once its deadline has passed; no cancellation.
#[derive(Default)]
pub(crate) struct Timer {
    events: BinaryHeap<Entry>,
    /// The callbacks of pending timers, indexed by `Entry::slot`.
    slots: Vec<Callback>,
    /// Indices of free slots (`Callback::Free`), reused last-freed first.
    free: Vec<u32>,
}

/// `duration` in nanoseconds, saturating (see the module doc).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Timer {
    /// Adds a timer that calls `callback` once `deadline` has passed.
    pub fn add(&mut self, deadline: Duration, callback: impl FnOnce() + Send + Sync + 'static) {
        self.push(nanos(deadline), Callback::Call(Box::new(callback)));
    }

    /// Adds a timer that wakes `waker` once `deadline` (nanoseconds since the base
    /// instant) has passed.
    pub fn add_waker(&mut self, deadline: u64, waker: Waker) {
        self.push(deadline, Callback::Wake(waker));
    }

    fn push(&mut self, deadline: u64, callback: Callback) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = callback;
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 pending timers");
                self.slots.push(callback);
                slot
            }
        };
        self.events.push(Entry { deadline, slot });
    }

    /// Fires and removes every timer whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Duration) {
        let now = nanos(now);
        while let Some(entry) = self.events.peek() {
            if entry.deadline > now {
                break;
            }
            let slot = self.events.pop().unwrap().slot;
            let callback = std::mem::replace(&mut self.slots[slot as usize], Callback::Free);
            self.free.push(slot);
            match callback {
                Callback::Wake(waker) => waker.wake(),
                Callback::Call(callback) => callback(),
                Callback::Free => unreachable!("a pending timer's slot is never free"),
            }
        }
    }

    /// The earliest pending deadline in nanoseconds, `u64::MAX` if none.
    pub fn next_nanos(&self) -> u64 {
        self.events.peek().map_or(u64::MAX, |entry| entry.deadline)
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Duration> {
        self.events
            .peek()
            .map(|entry| Duration::from_nanos(entry.deadline))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Entry {}

// BinaryHeap is a max-heap: the earliest deadline must compare greatest.
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}
