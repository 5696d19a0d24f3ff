//! Timeouts on madsim's simulated clock that arm one timer per waker, and each node's
//! skewable wall [`Clock`].
//!
//! `madsim::time::timeout` (and `Endpoint::call_timeout`, built on it) polls its `Sleep`
//! every time the guarded future is polled, and madsim's `Sleep` pushes a fresh entry onto
//! the runtime's timer heap on every pending poll. A timeout around a busy future, such as
//! an RPC whose send, delivery and receive each wake the task, so leaves one stale entry per
//! wake-up until its deadline, seconds of simulated time later. Campaign profiles showed
//! the heap growing to megabytes within one seed and its upkeep costing about a tenth of a
//! campaign's wall time.
//!
//! [`Timeout`] has the same semantics (the future is polled first, so a future that is ready
//! at the deadline wins; the deadline is fixed when the timeout is created, at least 1 ms
//! away as madsim's is) but polls its `Sleep`, and so registers a timer, only when the task's
//! waker differs from the one already registered.

pub mod clock;

pub use clock::Clock;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use madsim::net::rpc::Request;
use madsim::net::Endpoint;
use madsim::time::{error::Elapsed, Sleep};

/// Requires `future` to complete within `duration` of simulated time.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: madsim::time::sleep(duration), armed_for: None }
}

/// Calls `request` on the RPC handler at `dst`, giving up after `duration`: what
/// `Endpoint::call_timeout` does, with a timer armed once per waker.
pub async fn call_timeout<R: Request>(
    endpoint: &Endpoint,
    dst: SocketAddr,
    request: R,
    duration: Duration,
) -> io::Result<R::Response> {
    timeout(duration, endpoint.call(dst, request))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "RPC timeout"))?
}

pin_project_lite::pin_project! {
    /// Future returned by [`timeout`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
        // The waker the pending timer will wake, if one is registered.
        armed_for: Option<Waker>,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if this.sleep.is_elapsed() {
            return Poll::Ready(Err(Elapsed));
        }
        if !this.armed_for.as_ref().is_some_and(|armed| armed.will_wake(cx.waker())) {
            // Pending (the deadline is still ahead): this registers one timer for this waker.
            if Pin::new(&mut *this.sleep).poll(cx).is_ready() {
                return Poll::Ready(Err(Elapsed));
            }
            *this.armed_for = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madsim::runtime::Runtime;
    use madsim::time::Instant;

    #[test]
    fn a_future_that_finishes_in_time_wins() {
        let out = Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(async {
            timeout(Duration::from_secs(1), async {
                madsim::time::sleep(Duration::from_millis(10)).await;
                7
            })
            .await
        });
        assert_eq!(out, Ok(7));
    }

    #[test]
    fn a_future_that_never_finishes_times_out_at_the_deadline() {
        let (out, waited) = Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(async {
            let start = Instant::now();
            let out = timeout(Duration::from_millis(300), std::future::pending::<()>()).await;
            (out, start.elapsed())
        });
        assert_eq!(out, Err(Elapsed));
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(301), "{waited:?}");
    }

    #[test]
    fn a_busy_future_still_times_out() {
        // Woken every millisecond, never done: the one timer armed on the first poll must
        // still end it at the deadline.
        let out = Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(async {
            timeout(Duration::from_millis(50), async {
                loop {
                    madsim::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
        });
        assert_eq!(out, Err(Elapsed));
    }

    #[test]
    fn a_zero_timeout_still_polls_the_future_once() {
        let out = Runtime::with_seed_and_config(1, madsim::Config::default())
            .block_on(async { timeout(Duration::ZERO, std::future::ready(3)).await });
        assert_eq!(out, Ok(3));
    }
}
