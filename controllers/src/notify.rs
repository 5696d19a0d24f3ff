//! A wake-up signal between tasks of one simulated node (madsim offers no channels).
//!
//! `notify()` leaves one permit and wakes every waiter; the first waiter to poll takes the
//! permit, the others wait again. Waiters re-check their condition after waking, so a
//! lost race is harmless. The waker list is bounded by the number of distinct waiting
//! tasks because a waker already registered is not registered twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Notify {
    state: Mutex<NotifyState>,
}

#[derive(Debug, Default)]
struct NotifyState {
    permit: bool,
    waiters: Vec<Waker>,
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves a permit (at most one) and wakes every waiting task.
    pub fn notify(&self) {
        let waiters = {
            let mut state = self.state.lock().expect("notify lock");
            state.permit = true;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// Completes once a permit is available, taking it.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self }
    }
}

pub struct Notified<'a> {
    notify: &'a Notify,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.notify.state.lock().expect("notify lock");
        if state.permit {
            state.permit = false;
            return Poll::Ready(());
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
