//! kubesim patch: the timer heap, in place of the `naive-timer` crate.
//!
//! The same binary heap ordered by deadline alone, with the same operations in the same
//! order, so timers fire in exactly the order `naive_timer::Timer` fired them (ties
//! included: `BinaryHeap`'s order among equal deadlines depends only on the sequence of
//! pushes and pops and on the comparisons' results, which are unchanged). What differs is
//! the cost: a timer that only wakes a task (every pending `Sleep` adds one) keeps its
//! `Waker` inline instead of in a boxed closure, so it costs no allocation.

use std::collections::BinaryHeap;
use std::time::Duration;
use std::{cmp::Ordering, task::Waker};

/// What a timer does when it fires.
enum Callback {
    /// Wake a task: what every pending `Sleep` registers.
    Wake(Waker),
    /// Anything else (message delivery, node restart).
    Call(Box<dyn FnOnce() + Send + Sync + 'static>),
}

struct Event {
    /// Time since the simulation's base instant.
    deadline: Duration,
    callback: Callback,
}

/// A heap of timers, each fired once its deadline has passed; no cancellation.
#[derive(Default)]
pub(crate) struct Timer {
    events: BinaryHeap<Event>,
}

impl Timer {
    /// Adds a timer that calls `callback` once `deadline` has passed.
    pub fn add(&mut self, deadline: Duration, callback: impl FnOnce() + Send + Sync + 'static) {
        self.push(deadline, Callback::Call(Box::new(callback)));
    }

    /// Adds a timer that wakes `waker` once `deadline` has passed.
    pub fn add_waker(&mut self, deadline: Duration, waker: Waker) {
        self.push(deadline, Callback::Wake(waker));
    }

    fn push(&mut self, deadline: Duration, callback: Callback) {
        self.events.push(Event { deadline, callback });
    }

    /// Fires and removes every timer whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Duration) {
        while let Some(event) = self.events.peek() {
            if event.deadline > now {
                break;
            }
            let event = self.events.pop().unwrap();
            match event.callback {
                Callback::Wake(waker) => waker.wake(),
                Callback::Call(callback) => callback(),
            }
        }
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Duration> {
        self.events.peek().map(|event| event.deadline)
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Event {}

// BinaryHeap is a max-heap: the earliest deadline must compare greatest.
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}
