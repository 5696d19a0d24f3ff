//! Utilities for tracking time.
//!
//!

use crate::rand::{GlobalRng, Rng};
use futures_util::{select_biased, FutureExt};
use spin::Mutex;
#[doc(no_inline)]
pub use std::time::{Duration, Instant};
use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::SystemTime,
};

pub mod error;
mod interval;
mod sleep;
mod system_time;
// kubesim patch: madsim's own timer heap instead of naive_timer's (see timer.rs).
mod timer;

pub use self::interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use self::sleep::{sleep, sleep_until, Sleep};
use self::timer::Timer;

pub(crate) struct TimeRuntime {
    handle: TimeHandle,
}

impl TimeRuntime {
    pub fn new(rand: &GlobalRng) -> Self {
        // around 2022
        let base_time = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                60 * 60 * 24 * 365 * (2022 - 1970)
                    + rand.with(|rng| rng.gen_range(0..60 * 60 * 24 * 365)),
            );
        // kubesim patch: one `Arc` for the timer and the clock (see `TimeHandle`).
        let handle = TimeHandle {
            inner: Arc::new(TimeInner {
                timer: Mutex::new(Timer::default()),
                clock: Clock::new(base_time),
                next_deadline: AtomicU64::new(u64::MAX),
            }),
        };
        TimeRuntime { handle }
    }

    pub fn handle(&self) -> &TimeHandle {
        &self.handle
    }

    /// Advances time to the closest timer event. Returns true if succeed.
    pub fn advance_to_next_event(&self) -> bool {
        let inner = &self.handle.inner;
        inner.with_timer(|timer| {
            if let Some(mut time) = timer.next() {
                // WARN: in some platform such as M1 macOS,
                //       let t0: Instant;
                //       let t1: Instant;
                //       t0 + (t1 - t0) < t1 !!
                // we should add eps to make sure 'now >= deadline' and avoid deadlock
                time += Duration::from_nanos(50);
                timer.expire(time);
                inner.clock.set_elapsed(time);
                true
            } else {
                false
            }
        })
    }

    #[allow(dead_code)]
    /// Get the current time.
    pub fn now_instant(&self) -> Instant {
        self.handle.now_instant()
    }
}

/// Handle to a shared time source.
///
/// kubesim patch: the timer and the clock behind one `Arc` instead of one each, so that
/// cloning a handle (every `Sleep` holds one) is one atomic increment instead of two.
#[derive(Clone)]
pub struct TimeHandle {
    inner: Arc<TimeInner>,
}

struct TimeInner {
    timer: Mutex<Timer>,
    clock: Clock,
    /// kubesim patch: the timer heap's earliest deadline in nanoseconds (`u64::MAX` when
    /// empty), updated under the timer's lock whenever the heap changes, so that
    /// `TimeHandle::advance` (after every task the executor runs) skips the lock when no
    /// timer is due, which is almost always.
    next_deadline: AtomicU64,
}

impl TimeInner {
    /// Runs `f` on the locked timer heap, then records its earliest deadline.
    fn with_timer<T>(&self, f: impl FnOnce(&mut Timer) -> T) -> T {
        let mut timer = self.timer.lock();
        let result = f(&mut timer);
        self.next_deadline
            .store(timer.next_nanos(), Ordering::Relaxed);
        result
    }
}

impl TimeHandle {
    /// Returns a `TimeHandle` view over the currently running Runtime.
    pub fn current() -> Self {
        crate::context::current(|h| h.time.clone())
    }

    /// Returns a `TimeHandle` view over the currently running Runtime.
    pub fn try_current() -> Option<Self> {
        crate::context::try_current(|h| h.time.clone())
    }

    /// Return the current time.
    pub fn now_instant(&self) -> Instant {
        self.inner.clock.now_instant()
    }

    /// Return the current time.
    pub fn now_time(&self) -> SystemTime {
        self.inner.clock.now_time()
    }

    /// Returns the amount of time elapsed since this handle was created.
    pub fn elapsed(&self) -> Duration {
        self.inner.clock.elapsed()
    }

    /// Advances time.
    pub fn advance(&self, duration: Duration) {
        let time = self.inner.clock.advance(duration);
        // kubesim patch: the lock only when a timer is due (see `TimeInner::next_deadline`).
        if timer::nanos(time) >= self.inner.next_deadline.load(Ordering::Relaxed) {
            self.inner.with_timer(|timer| timer.expire(time));
        }
    }

    /// Waits until `duration` has elapsed.
    ///
    /// It will sleep for at least 1ms to be consistent with the behavior of `tokio::time::sleep`.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        // kubesim patch: the clock read once (it cannot move in between), and the deadline
        // also kept as nanoseconds since the base instant, which is what `Sleep` compares
        // and registers.
        // `max(now + duration, now + 1ms)` is `base + (elapsed + max(duration, 1ms))`:
        // `Instant` arithmetic is exact, so one addition gives the same instant.
        let elapsed = self.inner.clock.elapsed();
        let after_base = elapsed + duration.max(Duration::from_millis(1));
        let deadline = self.inner.clock.base_instant + after_base;
        let at = timer::nanos(after_base);
        Sleep {
            handle: self.clone(),
            deadline,
            at,
        }
    }

    /// Waits until `deadline` is reached.
    ///
    /// It will sleep for at least 1ms to be consistent with the behavior of `tokio::time::sleep_until`.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        let min_deadline = self.inner.clock.now_instant() + Duration::from_millis(1);
        let deadline = deadline.max(min_deadline);
        Sleep {
            handle: self.clone(),
            deadline,
            at: self.nanos_since_base(deadline),
        }
    }

    /// kubesim patch: `instant` as nanoseconds since the base instant (0 before it).
    pub(crate) fn nanos_since_base(&self, instant: Instant) -> u64 {
        timer::nanos(instant.saturating_duration_since(self.inner.clock.base_instant))
    }

    /// kubesim patch: nanoseconds elapsed since the base instant.
    pub(crate) fn elapsed_nanos(&self) -> u64 {
        self.inner.clock.elapsed_ns.load(Ordering::Relaxed)
    }

    /// Require a `Future` to complete before the specified duration has elapsed.
    // TODO: make it Send
    pub fn timeout<T: Future>(
        &self,
        duration: Duration,
        future: T,
    ) -> impl Future<Output = Result<T::Output, error::Elapsed>> {
        let timeout = self.sleep(duration);
        async move {
            select_biased! {
                res = future.fuse() => Ok(res),
                _ = timeout.fuse() => Err(error::Elapsed),
            }
        }
    }

    pub(crate) fn add_timer_at(
        &self,
        deadline: Instant,
        callback: impl FnOnce() + Send + Sync + 'static,
    ) {
        let deadline = deadline - self.inner.clock.base_instant;
        self.inner.with_timer(|timer| timer.add(deadline, callback));
    }

    /// kubesim patch: a timer that wakes `waker` at `deadline`, without boxing a closure.
    pub(crate) fn add_waker_at(&self, deadline: u64, waker: std::task::Waker) {
        self.inner
            .with_timer(|timer| timer.add_waker(deadline, waker));
    }

    pub(crate) fn add_timer(&self, dur: Duration, callback: impl FnOnce() + Send + Sync + 'static) {
        self.add_timer_at(self.inner.clock.now_instant() + dur, callback);
    }
}

/// Require a `Future` to complete before the specified duration has elapsed.
pub fn timeout<T: Future>(
    duration: Duration,
    future: T,
) -> impl Future<Output = Result<T::Output, error::Elapsed>> {
    let handle = TimeHandle::current();
    handle.timeout(duration, future)
}

/// Advances time.
///
/// Increments the saved `Instant::now()` value by `duration`.
/// Subsequent calls to `Instant::now()` will return the result of the increment.
#[cfg_attr(docsrs, doc(cfg(madsim)))]
pub fn advance(duration: Duration) {
    let handle = TimeHandle::current();
    handle.advance(duration);
}

/// kubesim patch: the clock without a lock. Its base never changes after `new`, and the
/// time elapsed since it is a count of nanoseconds read with a plain load (it was a
/// `Duration` behind a spin lock: a locked instruction for every read of the simulated
/// time). Only the runtime's thread advances it.
struct Clock {
    /// Time basis for which mock time is derived.
    base_time: std::time::SystemTime,
    base_instant: std::time::Instant,
    /// The amount of mock time which has elapsed, in nanoseconds.
    elapsed_ns: AtomicU64,
}

impl Clock {
    fn new(base_time: SystemTime) -> Self {
        Clock {
            base_time,
            base_instant: unsafe { std::mem::zeroed() },
            elapsed_ns: AtomicU64::new(0),
        }
    }

    fn set_elapsed(&self, time: Duration) {
        self.elapsed_ns.store(timer::nanos(time), Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::Relaxed))
    }

    fn advance(&self, duration: Duration) -> Duration {
        let time = self.elapsed() + duration;
        self.set_elapsed(time);
        time
    }

    fn now_instant(&self) -> Instant {
        self.base_instant + self.elapsed()
    }

    fn now_time(&self) -> SystemTime {
        self.base_time + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;

    #[test]
    fn time() {
        let runtime = Runtime::new();
        runtime.block_on(async {
            // sleep for at least 1ms
            let t0 = Instant::now();
            sleep(Duration::default()).await;
            assert!(t0.elapsed() >= Duration::from_millis(1));

            let t0 = Instant::now();
            sleep_until(t0).await;
            assert!(t0.elapsed() >= Duration::from_millis(1));

            let t0 = Instant::now();

            sleep(Duration::from_secs(1)).await;
            assert!(t0.elapsed() >= Duration::from_secs(1));

            sleep_until(t0 + Duration::from_secs(2)).await;
            assert!(t0.elapsed() >= Duration::from_secs(2));

            assert!(
                timeout(Duration::from_secs(2), sleep(Duration::from_secs(1)))
                    .await
                    .is_ok()
            );
            assert!(
                timeout(Duration::from_secs(1), sleep(Duration::from_secs(2)))
                    .await
                    .is_err()
            );
        });
    }

    #[test]
    fn test_advance() {
        let runtime = Runtime::new();
        runtime.block_on(async {
            let t0 = Instant::now();
            advance(Duration::from_secs(1));
            assert!(t0.elapsed() >= Duration::from_secs(1));
        });
    }
}
