//! A rate-limited work queue of object keys, after client-go's `workqueue`.
//!
//! Semantics kept from client-go:
//! - A key is queued at most once (dedup). A key added while a worker processes it is
//!   marked dirty and queued again when the worker calls `done`, so one key is never
//!   processed by two workers at once and no update is lost.
//! - `add_rate_limited` re-queues a failing key after an exponential backoff
//!   (`base_delay_ms * 2^failures`, capped at `max_delay_ms`: 5 ms, 10 ms, ... 1 s) and
//!   gives up after `max_retries` failures; `forget` clears the failure count on success.
//!   A key given up on is picked up again by its controller's periodic resync.
//!
//! Bound (STYLE.md "put a limit on everything"): at most `max_len` keys wait (ready plus
//! delayed). Adding a new key beyond that fails with [`WorkQueueError::Full`] and the key
//! is dropped; the periodic resync re-adds it once the queue drains.
//!
//! [`WorkQueue`] is the sans-IO core (time is passed in); [`SharedWorkQueue`] is the
//! async wrapper the controllers' workers wait on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::Clock;

use crate::notify::Notify;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkQueueConfig {
    /// First retry delay (client-go's item exponential failure limiter: 5 ms).
    pub base_delay_ms: u64,
    /// Cap on the retry delay (client-go caps at 1000 s; kubesim at 1 s to keep runs short).
    pub max_delay_ms: u64,
    /// Failures after which `add_rate_limited` gives up on a key.
    pub max_retries: u32,
    /// Most keys that may wait in the queue (ready plus delayed).
    pub max_len: usize,
}

impl Default for WorkQueueConfig {
    fn default() -> Self {
        Self { base_delay_ms: 5, max_delay_ms: 1_000, max_retries: 15, max_len: 10_000 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkQueueError {
    #[error("work queue full: {max_len} keys waiting; key {key} dropped until the next resync")]
    Full { key: String, max_len: usize },
}

/// What `add_rate_limited` did with a failing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Queued again after this delay.
    After { delay_ms: u64, failures: u32 },
    /// Dropped after too many failures; the failure count is reset.
    GaveUp { failures: u32 },
}

#[derive(Debug)]
pub struct WorkQueue {
    config: WorkQueueConfig,
    ready: VecDeque<String>,
    /// Keys waiting to be processed (ready, or added while processing).
    dirty: BTreeSet<String>,
    processing: BTreeSet<String>,
    /// Delayed keys by (due time, insertion sequence); `delayed_due` indexes them by key.
    delayed: BTreeMap<(u64, u64), String>,
    delayed_due: BTreeMap<String, (u64, u64)>,
    failures: BTreeMap<String, u32>,
    next_seq: u64,
}

impl WorkQueue {
    pub fn new(config: WorkQueueConfig) -> Self {
        assert!(config.max_len > 0, "a work queue needs room for one key");
        Self {
            config,
            ready: VecDeque::new(),
            dirty: BTreeSet::new(),
            processing: BTreeSet::new(),
            delayed: BTreeMap::new(),
            delayed_due: BTreeMap::new(),
            failures: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Keys waiting, ready or delayed (the bounded quantity).
    pub fn len(&self) -> usize {
        self.dirty.len() + self.delayed_due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `key` for processing now.
    pub fn add(&mut self, key: &str) -> Result<(), WorkQueueError> {
        if self.dirty.contains(key) {
            return Ok(());
        }
        if self.len() >= self.config.max_len {
            return Err(WorkQueueError::Full { key: key.to_string(), max_len: self.config.max_len });
        }
        self.dirty.insert(key.to_string());
        if !self.processing.contains(key) {
            self.ready.push_back(key.to_string());
        }
        Ok(())
    }

    /// Queues `key` once `due_ms` (simulated ms) has come; an earlier pending due time wins.
    pub fn add_at(&mut self, key: &str, due_ms: u64) -> Result<(), WorkQueueError> {
        if self.dirty.contains(key) {
            return Ok(());
        }
        if let Some(&(existing_due, seq)) = self.delayed_due.get(key) {
            if existing_due <= due_ms {
                return Ok(());
            }
            self.delayed.remove(&(existing_due, seq));
            self.delayed_due.remove(key);
        } else if self.len() >= self.config.max_len {
            return Err(WorkQueueError::Full { key: key.to_string(), max_len: self.config.max_len });
        }
        let slot = (due_ms, self.next_seq);
        self.next_seq += 1;
        self.delayed.insert(slot, key.to_string());
        self.delayed_due.insert(key.to_string(), slot);
        Ok(())
    }

    /// Re-queues a failing key after its backoff, or gives up after `max_retries`.
    pub fn add_rate_limited(&mut self, key: &str, now_ms: u64) -> Result<Retry, WorkQueueError> {
        let failures = self.failures.get(key).copied().unwrap_or(0);
        if failures >= self.config.max_retries {
            self.failures.remove(key);
            return Ok(Retry::GaveUp { failures });
        }
        let delay_ms = self.backoff_ms(failures);
        self.add_at(key, now_ms + delay_ms)?;
        self.failures.insert(key.to_string(), failures + 1);
        Ok(Retry::After { delay_ms, failures: failures + 1 })
    }

    fn backoff_ms(&self, failures: u32) -> u64 {
        let exponent = failures.min(32);
        self.config.base_delay_ms.saturating_mul(1u64 << exponent).min(self.config.max_delay_ms)
    }

    /// Clears a key's failure count (call after a successful sync).
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    pub fn failures(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }

    /// Takes the next ready key (moving delayed keys that are due first) and marks it
    /// processing until `done`.
    pub fn pop(&mut self, now_ms: u64) -> Option<String> {
        self.promote_due(now_ms);
        let key = self.ready.pop_front()?;
        let was_dirty = self.dirty.remove(&key);
        debug_assert!(was_dirty, "a ready key is always dirty");
        let newly_processing = self.processing.insert(key.clone());
        assert!(newly_processing, "key {key} handed to two workers at once");
        Some(key)
    }

    /// Ends processing of `key`; re-queues it if it was added meanwhile.
    pub fn done(&mut self, key: &str) {
        let was_processing = self.processing.remove(key);
        debug_assert!(was_processing, "done({key}) without pop");
        if self.dirty.contains(key) {
            self.ready.push_back(key.to_string());
        }
    }

    /// The earliest due time of a delayed key, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.delayed.keys().next().map(|&(due, _)| due)
    }

    fn promote_due(&mut self, now_ms: u64) {
        while let Some((&slot, _)) = self.delayed.iter().next() {
            if slot.0 > now_ms {
                break;
            }
            let key = self.delayed.remove(&slot).expect("slot just seen");
            self.delayed_due.remove(&key);
            if !self.dirty.contains(&key) {
                self.dirty.insert(key.clone());
                if !self.processing.contains(&key) {
                    self.ready.push_back(key);
                }
            }
        }
    }
}

/// The async face of a [`WorkQueue`]: shared by the informer handlers that add keys and
/// the worker that waits for them. Time is the simulator's monotonic clock (backoff is
/// about elapsed time, not wall time).
#[derive(Clone)]
pub struct SharedWorkQueue {
    inner: Arc<(Mutex<WorkQueue>, Notify)>,
}

impl SharedWorkQueue {
    pub fn new(config: WorkQueueConfig) -> Self {
        Self { inner: Arc::new((Mutex::new(WorkQueue::new(config)), Notify::new())) }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, WorkQueue> {
        self.inner.0.lock().expect("work queue lock")
    }

    pub fn add(&self, key: &str) {
        let result = self.queue().add(key);
        match result {
            Ok(()) => self.inner.1.notify(),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// Queues `key` once `delay` has passed on the simulator's clock (a reconcile's
    /// requeue); an earlier pending due time wins. Logs when the queue is full.
    pub fn add_after(&self, key: &str, delay: Duration) {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let result = self.queue().add_at(key, Clock::sim_now_ms().saturating_add(delay_ms));
        match result {
            Ok(()) => self.inner.1.notify(),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// Re-queues a failing key with backoff; logs when it gives up or the queue is full.
    pub fn add_rate_limited(&self, key: &str) {
        let result = self.queue().add_rate_limited(key, Clock::sim_now_ms());
        match result {
            Ok(Retry::After { .. }) => self.inner.1.notify(),
            Ok(Retry::GaveUp { failures }) => {
                tracing::warn!("giving up on key {key} after {failures} failures until resync")
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    pub fn forget(&self, key: &str) {
        self.queue().forget(key);
    }

    pub fn done(&self, key: &str) {
        self.queue().done(key);
        self.inner.1.notify();
    }

    pub fn len(&self) -> usize {
        self.queue().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next ready key.
    pub async fn next(&self) -> String {
        loop {
            let (key, next_due_ms) = {
                let mut queue = self.queue();
                let key = queue.pop(Clock::sim_now_ms());
                (key, queue.next_due_ms())
            };
            if let Some(key) = key {
                return key;
            }
            match next_due_ms {
                Some(due_ms) => {
                    let wait_ms = due_ms.saturating_sub(Clock::sim_now_ms()).max(1);
                    let _ = simtime::timeout(Duration::from_millis(wait_ms), self.inner.1.notified()).await;
                }
                None => self.inner.1.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_len: usize) -> WorkQueue {
        WorkQueue::new(WorkQueueConfig { max_len, ..WorkQueueConfig::default() })
    }

    #[test]
    fn keys_are_deduplicated_and_requeued_when_added_during_processing() {
        let mut q = queue(10);
        q.add("a").unwrap();
        q.add("a").unwrap();
        q.add("b").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(0).as_deref(), Some("a"));
        // Added while processing: not handed out again until done.
        q.add("a").unwrap();
        assert_eq!(q.pop(0).as_deref(), Some("b"));
        assert_eq!(q.pop(0), None);
        q.done("a");
        assert_eq!(q.pop(0).as_deref(), Some("a"));
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }

    #[test]
    fn failing_key_backs_off_exponentially_capped_then_gives_up() {
        let mut q = WorkQueue::new(WorkQueueConfig { max_retries: 10, ..WorkQueueConfig::default() });
        let mut delays = Vec::new();
        let mut now_ms = 0;
        loop {
            match q.add_rate_limited("k", now_ms).unwrap() {
                Retry::After { delay_ms, .. } => {
                    delays.push(delay_ms);
                    assert_eq!(q.pop(now_ms + delay_ms - 1), None, "not before its backoff");
                    now_ms += delay_ms;
                    assert_eq!(q.pop(now_ms).as_deref(), Some("k"));
                    q.done("k");
                }
                Retry::GaveUp { failures } => {
                    assert_eq!(failures, 10);
                    break;
                }
            }
        }
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(q.failures("k"), 0, "giving up resets the count");
    }

    #[test]
    fn forget_resets_backoff() {
        let mut q = queue(10);
        q.add_rate_limited("k", 0).unwrap();
        q.add_rate_limited("k", 0).unwrap();
        assert_eq!(q.failures("k"), 2);
        q.forget("k");
        assert_eq!(q.add_rate_limited("k", 0).unwrap(), Retry::After { delay_ms: 5, failures: 1 });
    }

    #[test]
    fn overflow_is_an_error_not_a_hang() {
        let mut q = queue(2);
        q.add("a").unwrap();
        q.add_at("b", 100).unwrap();
        assert_eq!(q.add("c"), Err(WorkQueueError::Full { key: "c".into(), max_len: 2 }));
        // Keys already waiting can still be added (dedup) without error.
        q.add("a").unwrap();
        q.add_at("b", 50).unwrap();
        assert_eq!(q.next_due_ms(), Some(50));
    }
}
