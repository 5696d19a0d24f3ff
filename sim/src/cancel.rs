//! Stopping a running seed from another thread.
//!
//! madsim runs a whole simulation on the seed's thread, and nothing outside that thread may
//! touch the simulation: its executor's queue takes a task woken from another thread only
//! if its lock happens to be free, and drops it otherwise — which async-task answers with
//! an abort of the whole process ("local task dropped by a thread that didn't spawn it").
//! So the campaign's guard does not stop a seed that overran its wall-clock limit by
//! moving its clock or waking its tasks; it raises a flag ([`SeedCancel::cancel`]) that the
//! seed's own thread reads.
//!
//! The seed's thread reads it at every history record (the recorder calls
//! [`SeedCancel::check`]): a running seed records all the time (every entry each store
//! member applies, every API call and return). Once the flag is up, the check wakes the
//! seed's main task — on the seed's thread, where waking is safe — and that task, wrapped
//! in [`SeedCancel::guard`], finishes with `None` instead of polling the scenario again, so
//! `block_on` returns and the runner tears the seed's nodes down as usual. Nothing changes
//! for a seed that is not cancelled: the check is one atomic load, and no task, timer or
//! random number is added to the simulation, so trace hashes are untouched.
//!
//! A seed that never records again (stuck inside one step, or spinning without a single
//! store entry or API call) never reads the flag; the guard then gives up on it after its
//! grace period and says so.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A seed's cancellation flag, shared by the thread that may cancel it and the seed's
/// thread (through its recorder). Cheap to clone; the default is never cancelled.
#[derive(Clone, Default)]
pub struct SeedCancel(Arc<State>);

#[derive(Default)]
struct State {
    cancelled: AtomicBool,
    /// Whether the seed's simulation is running (its main task was polled and has not
    /// finished).
    running: AtomicBool,
    /// The seed's main task, to be woken by the seed's own thread once cancelled.
    main: Mutex<Option<Waker>>,
}

impl SeedCancel {
    /// Cancels the seed: it stops at its next history record (or does not start). Returns
    /// at once; whoever waits for the seed waits for its thread's result.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Whether the seed's simulation is running now (started, not yet stopped).
    pub fn is_running(&self) -> bool {
        self.0.running.load(Ordering::Acquire)
    }

    /// Called on the seed's thread, from inside the simulation: once the seed is
    /// cancelled, wakes its main task so that the guard ends it. One atomic load when not
    /// cancelled.
    pub fn check(&self) {
        if self.is_cancelled() {
            let main = self.0.main.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(main) = main {
                main.wake();
            }
        }
    }

    /// Wraps the seed's main future: it yields `None` instead of running on once the seed
    /// is cancelled (checked each time it is polled, including the first).
    pub fn guard<F: Future>(&self, inner: F) -> Guarded<F> {
        Guarded { cancel: self.clone(), inner: Box::pin(inner) }
    }
}

/// The seed's main future under [`SeedCancel::guard`].
pub struct Guarded<F> {
    cancel: SeedCancel,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Guarded<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &self.cancel.0;
        if state.cancelled.load(Ordering::Acquire) {
            state.running.store(false, Ordering::Release);
            return Poll::Ready(None);
        }
        state.running.store(true, Ordering::Release);
        {
            let mut main = state.main.lock().unwrap_or_else(PoisonError::into_inner);
            if !main.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *main = Some(cx.waker().clone());
            }
        }
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(output) => {
                self.cancel.0.running.store(false, Ordering::Release);
                Poll::Ready(Some(output))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Drop for Guarded<F> {
    fn drop(&mut self) {
        self.cancel.0.running.store(false, Ordering::Release);
        self.cancel.0.main.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}
