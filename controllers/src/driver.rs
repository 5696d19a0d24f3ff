//! The plumbing shared by the controllers' async drivers: the outcome of one sync, the
//! worker loop that feeds a work queue's keys to a sync function, waiting for informers,
//! and a group of tasks that ends together (one leadership term).

use std::future::Future;
use std::time::Duration;

use api::ApiError;
use madsim::task::JoinHandle;

use crate::informer::Informer;
use crate::leader_election::{LeaderHandle, NotLeader};
use crate::runtime::{Action, Context, ObjectRef};
use crate::workqueue::SharedWorkQueue;

/// Why a sync did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Leadership is lost: issue no more writes; the key is not retried.
    #[error("not the leader")]
    NotLeader,
    /// The apiserver refused or did not answer; the key is retried with backoff.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The sync cannot complete yet for another reason (no node fits a pod); the key is
    /// retried with backoff.
    #[error("{0}")]
    Retry(String),
}

impl From<NotLeader> for SyncError {
    fn from(_: NotLeader) -> Self {
        SyncError::NotLeader
    }
}

/// The built-in controllers' error policy on the controller runtime: a failed sync is
/// retried with the work queue's backoff, unless leadership is lost (the term's tasks are
/// about to be aborted), as [`run_worker`] does.
pub fn retry_unless_not_leader<T>(_: &ObjectRef, error: &SyncError, _: &Context<T>) -> Action {
    match error {
        SyncError::NotLeader => Action::AwaitChange,
        SyncError::Api(_) | SyncError::Retry(_) => Action::Backoff,
    }
}

/// Tasks that belong together (a leadership term's informers and workers); dropping the
/// group aborts them all, so nothing outlives the term that started it.
#[derive(Default)]
pub struct TaskGroup {
    tasks: Vec<JoinHandle<()>>,
}

impl TaskGroup {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(madsim::task::spawn(task));
    }
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Polls until every informer has listed once.
pub async fn wait_for_cache_sync(informers: &[&Informer]) {
    while !informers.iter().all(|i| i.has_synced()) {
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Feeds keys to `sync` one at a time, forever. A failed key is retried with the queue's
/// backoff; a success clears its failure count. With a leader handle, keys are drained
/// without syncing once leadership is lost (the term's tasks are about to be aborted).
pub async fn run_worker<F, Fut>(queue: SharedWorkQueue, leader: Option<LeaderHandle>, mut sync: F)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), SyncError>>,
{
    loop {
        let key = queue.next().await;
        if leader.as_ref().is_some_and(|l| !l.is_leader()) {
            queue.done(&key);
            continue;
        }
        match sync(key.clone()).await {
            Ok(()) => queue.forget(&key),
            Err(SyncError::NotLeader) => {}
            Err(e @ (SyncError::Api(_) | SyncError::Retry(_))) => {
                tracing::debug!("sync {key} failed: {e}; retrying");
                queue.add_rate_limited(&key);
            }
        }
        queue.done(&key);
    }
}

/// Adds every key `keys` returns to the queue every `period_ms` (client-go's resync): it
/// retries keys given up on and expectations that expired.
pub async fn run_resync<F>(queue: SharedWorkQueue, period_ms: u64, keys: F)
where
    F: Fn() -> Vec<String>,
{
    loop {
        madsim::time::sleep(Duration::from_millis(period_ms.max(1))).await;
        for key in keys() {
            queue.add(&key);
        }
    }
}
