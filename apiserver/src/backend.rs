//! What the apiserver needs of the store, and an in-memory store for fast tests.
//!
//! The apiserver is generic over [`Backend`] so that the same registry, watch cache and
//! compactor run against the replicated store (`store::client::StoreClient`, through Raft
//! on simulated nodes) and against [`InMemoryBackend`] (one MVCC state machine in a mutex,
//! no network), which makes tests of apiserver semantics fast and independent of Raft.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::api::{
    CompactRequest, CompactResponse, LeaseGrantRequest, LeaseGrantResponse, Mutation, MutationResponse, RangeRequest,
    RangeResponse, ResponseHeader, Revision, StoreError, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use store::mvcc::Mvcc;

/// The store operations the apiserver uses (etcd's KV and Watch APIs, with the watch
/// stream cut into long polls).
pub trait Backend: Clone + Send + Sync + 'static {
    /// etcd `Range`. `serializable: false` is a linearizable read.
    fn range(&self, request: RangeRequest) -> impl Future<Output = Result<RangeResponse, StoreError>> + Send;

    /// etcd `Txn`: acknowledged only once committed.
    fn txn(&self, request: TxnRequest) -> impl Future<Output = Result<TxnResponse, StoreError>> + Send;

    /// etcd `Compact`: forget history before `revision`.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<CompactResponse, StoreError>> + Send;

    /// etcd `LeaseGrant` with an id chosen by the store: the lease objects with a time to
    /// live are written under (see [`crate::ttl_leases`]).
    fn lease_grant(&self, ttl_secs: i64) -> impl Future<Output = Result<LeaseGrantResponse, StoreError>> + Send;

    /// Events in `request.range` with revision >= `request.start_revision` (at most
    /// `max_events`), waiting up to `wait` for the first. When the start revision is
    /// compacted the response is `canceled` with `compact_revision` set. An answer with no
    /// events means there is none from the start revision up to the header's revision (the
    /// watch cache advances its bookmark to it); a non-empty answer covers up to its last
    /// event.
    fn watch_poll(
        &self,
        request: WatchRequest,
        max_events: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<WatchResponse, StoreError>> + Send;
}

/// One MVCC state machine (`store::mvcc::Mvcc`) behind a mutex: a single, always
/// available, never-lagging store member. For tests of apiserver semantics.
#[derive(Clone, Default)]
pub struct InMemoryBackend {
    inner: Arc<Mutex<InMemoryState>>,
}

struct InMemoryState {
    mvcc: Mvcc,
    /// While set, every `txn` fails with this error and changes nothing (for tests of how
    /// store failures reach clients).
    txn_failure: Option<StoreError>,
}

impl Default for InMemoryState {
    fn default() -> Self {
        Self { mvcc: Mvcc::new(), txn_failure: None }
    }
}

impl InMemoryBackend {
    /// How often `watch_poll` looks for new events while it waits, in simulated time.
    const WATCH_POLL_STEP: Duration = Duration::from_millis(5);

    pub fn new() -> Self {
        Self::default()
    }

    pub fn current_revision(&self) -> Revision {
        self.lock().mvcc.current_revision()
    }

    pub fn compacted_revision(&self) -> Revision {
        self.lock().mvcc.compacted_revision()
    }

    /// Makes every following `txn` fail with `error` (nothing applied), until cleared
    /// with `None`.
    pub fn set_txn_failure(&self, error: Option<StoreError>) {
        self.lock().txn_failure = error;
    }

    /// Runs `f` on the MVCC state machine directly (test setup and inspection).
    pub fn with_mvcc<T>(&self, f: impl FnOnce(&mut Mvcc) -> T) -> T {
        f(&mut self.lock().mvcc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InMemoryState> {
        self.inner.lock().expect("in-memory store lock poisoned")
    }

    fn header(revision: Revision) -> ResponseHeader {
        ResponseHeader { revision, member_id: store::api::MemberId(1), raft_term: 1 }
    }

    /// One look at the event history: `Some(response)` when there is something to answer
    /// (events or a cancellation), `None` when the caller should keep waiting.
    fn poll_events(&self, request: &WatchRequest, max_events: usize) -> Result<Option<WatchResponse>, StoreError> {
        let state = self.lock();
        let current = state.mvcc.current_revision();
        let start = if request.start_revision == 0 { current + 1 } else { request.start_revision };
        let header = Self::header(current);
        match state.mvcc.events(&request.range, start, max_events) {
            Ok(events) if events.is_empty() => Ok(None),
            Ok(mut events) => {
                if !request.prev_kv {
                    events.iter_mut().for_each(|e| e.prev_kv = None);
                }
                Ok(Some(WatchResponse { header, watch_id: 0, events, compact_revision: None, canceled: false }))
            }
            // etcd: a watch cancelled by compaction carries header revision 0 (as the
            // store member's `watch_poll`).
            Err(StoreError::Compacted { compacted, .. }) => Ok(Some(WatchResponse {
                header: ResponseHeader { revision: 0, ..header },
                watch_id: 0,
                events: Vec::new(),
                compact_revision: Some(compacted),
                canceled: true,
            })),
            Err(e) => Err(e),
        }
    }
}

impl Backend for InMemoryBackend {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.lock().mvcc.range(&request)
    }

    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        let mut state = self.lock();
        if let Some(error) = &state.txn_failure {
            return Err(error.clone());
        }
        match state.mvcc.apply(&Mutation::Txn(request))? {
            (MutationResponse::Txn(response), _events) => Ok(response),
            (other, _) => Err(StoreError::InvalidRequest { reason: format!("mvcc answered a txn with {other:?}") }),
        }
    }

    async fn compact(&self, revision: Revision) -> Result<CompactResponse, StoreError> {
        let mut state = self.lock();
        match state.mvcc.apply(&Mutation::Compact(CompactRequest { revision }))? {
            (MutationResponse::Compact(response), _events) => Ok(response),
            (other, _) => Err(StoreError::InvalidRequest { reason: format!("mvcc answered a compact with {other:?}") }),
        }
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseGrantResponse, StoreError> {
        let mut state = self.lock();
        match state.mvcc.apply(&Mutation::LeaseGrant(LeaseGrantRequest { id: 0, ttl_secs }))? {
            (MutationResponse::LeaseGrant(response), _events) => Ok(response),
            (other, _) => {
                Err(StoreError::InvalidRequest { reason: format!("mvcc answered a lease grant with {other:?}") })
            }
        }
    }

    async fn watch_poll(
        &self,
        request: WatchRequest,
        max_events: usize,
        wait: Duration,
    ) -> Result<WatchResponse, StoreError> {
        let time = madsim::time::TimeHandle::current();
        let deadline = time.now_instant() + wait;
        loop {
            if let Some(response) = self.poll_events(&request, max_events)? {
                return Ok(response);
            }
            let now = time.now_instant();
            if now >= deadline {
                return Ok(WatchResponse {
                    header: Self::header(self.current_revision()),
                    watch_id: 0,
                    events: Vec::new(),
                    compact_revision: None,
                    canceled: false,
                });
            }
            madsim::time::sleep(Self::WATCH_POLL_STEP.min(deadline - now)).await;
        }
    }
}

/// The real store: a client of the replicated members. The apiserver is the only
/// component holding one.
impl Backend for store::client::StoreClient {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        store::client::StoreClient::range(self, request).await
    }

    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        store::client::StoreClient::txn(self, request).await
    }

    async fn compact(&self, revision: Revision) -> Result<CompactResponse, StoreError> {
        store::client::StoreClient::compact(self, revision).await
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseGrantResponse, StoreError> {
        store::client::StoreClient::lease_grant(self, 0, ttl_secs).await
    }

    async fn watch_poll(
        &self,
        request: WatchRequest,
        max_events: usize,
        wait: Duration,
    ) -> Result<WatchResponse, StoreError> {
        store::client::StoreClient::watch_poll(self, request, max_events, wait).await
    }
}
