//! The watch cache: one store watch per apiserver over `/registry/`, a bounded ring of
//! recent events, and the long-poll Watch served from it (Kubernetes `cacher` +
//! `watchCache`).
//!
//! The cache covers every event with a revision in `(window_start, synced_revision]`.
//! A watch from `since` is served when `since >= window_start`; older is 410 Gone ("too old
//! resource version"), as when Kubernetes' watch cache no longer holds the revision.
//! The cache starts (and restarts) at the beginning of the store's retained history (its
//! compacted revision) and catches up from there. When the store cancels the cache's own
//! watch because its position was compacted away (or the store was restored), the cache
//! drops its events and restarts at the new compacted revision, so every watcher from
//! before gets 410 and relists (invariant 5).
//!
//! Events of one store revision are always kept, dropped and delivered together (watch
//! atomicity, invariant 10).
//!
//! [`WatchCache::close`] is the cache's part of the apiserver's graceful shutdown: every
//! watch, pending or new, is answered at once as closed, so that its client watches again
//! elsewhere (see [`crate::server::Termination`]).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use api::{
    ApiError, CustomResourceDefinition, Object, ObjectMeta, RawJson, Resource, ResourceVersion, WatchEvent,
    WatchEventKind,
};
use store::api::{Event, EventKind, KeyRange, Revision, StoreError, WatchRequest, WatchResponse};

use crate::backend::Backend;
use crate::registry::decode;
use crate::server::ApiServerObserver;

/// The prefix the cache watches: every Kubernetes object.
pub const REGISTRY_PREFIX: &str = "/registry/";
/// Bound on events asked of the store per poll. Larger than any one revision can hold
/// (etcd's 128 ops per txn), so a full batch always ends with at least one whole revision.
const STORE_POLL_MAX_EVENTS: usize = 1000;
/// How long one store poll waits for an event.
const STORE_POLL_WAIT: Duration = Duration::from_secs(5);
/// Pause after a store error before polling again.
const STORE_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Bound on events in one Watch response (more may follow: the response's
/// resourceVersion says how far it got). Whole revisions only.
pub const MAX_EVENTS_PER_RESPONSE: usize = 500;

/// Why a watch of a closed cache ends (503 Unavailable).
pub const WATCH_CLOSED: &str = "watch closed: the apiserver is shutting down";

/// One event as the cache keeps it: already mapped to the Kubernetes watch event.
#[derive(Clone, Debug)]
struct CachedEvent {
    revision: Revision,
    resource: Resource,
    namespace: String,
    event: WatchEvent,
}

#[derive(Debug)]
struct CacheState {
    capacity: usize,
    /// Every event with revision in `(window_start, synced_revision]` is in `events`.
    /// `None` until the cache has first synced with the store.
    window_start: Option<Revision>,
    synced_revision: Revision,
    /// In revision order; whole revisions only.
    events: VecDeque<CachedEvent>,
    /// Set by [`WatchCache::close`]: every watch is answered at once, with no events.
    closed: bool,
    /// The revision of the last (re)start: the store's compacted revision then (0 if it
    /// had never compacted). A window start above it was moved by eviction.
    started_at: Revision,
    /// The most events one watch answer carries (see [`WatchCache::with_max_events_per_response`]).
    max_events_per_response: usize,
    /// PLANTED BUG `watch-cache-serves-evicted` (see [`WatchCache::with_planted_bug_serves_evicted`]).
    serves_evicted: bool,
    /// The custom kinds served, to name the kind of a deleted key whose last value the
    /// store did not hand back (see [`WatchCache::with_custom_resources`]).
    custom_resources: Vec<&'static CustomResourceDefinition>,
    /// Told when a watch is answered from below the window (see [`WatchCache::with_observer`]).
    witness: Option<Witness>,
}

/// The apiserver's observer, as the cache tells it what it served.
#[derive(Clone)]
struct Witness {
    apiserver: String,
    observer: Arc<dyn ApiServerObserver>,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness").field("apiserver", &self.apiserver).finish_non_exhaustive()
    }
}

/// What the cache answers a watch with.
#[derive(Debug, PartialEq, Eq)]
enum Query {
    NotReady,
    Gone { window_start: Revision },
    Events(Vec<WatchEvent>, ResourceVersion),
}

impl CacheState {
    /// An empty cache of `capacity` events that has not synced yet.
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            window_start: None,
            synced_revision: 0,
            events: VecDeque::new(),
            closed: false,
            started_at: 0,
            max_events_per_response: MAX_EVENTS_PER_RESPONSE,
            serves_evicted: false,
            custom_resources: Vec::new(),
            witness: None,
        }
    }

    fn reset(&mut self, revision: Revision) {
        self.events.clear();
        self.window_start = Some(revision);
        self.synced_revision = revision;
        self.started_at = revision;
    }

    /// Appends whole revisions of events (all > synced_revision) and records that the
    /// store has been covered up to `covered_revision`.
    fn append(&mut self, events: Vec<CachedEvent>, covered_revision: Revision) {
        for event in events {
            assert!(
                event.revision > self.synced_revision,
                "watch cache: event at revision {} after sync to {}",
                event.revision,
                self.synced_revision
            );
            assert!(self.events.back().is_none_or(|last| last.revision <= event.revision));
            self.events.push_back(event);
        }
        if let Some(last) = self.events.back() {
            self.synced_revision = self.synced_revision.max(last.revision);
        }
        self.synced_revision = self.synced_revision.max(covered_revision);
        self.evict();
    }

    /// Drops whole revisions from the front until the ring is within capacity.
    fn evict(&mut self) {
        while self.events.len() > self.capacity {
            let Some(oldest) = self.events.front().map(|e| e.revision) else {
                break;
            };
            while self.events.front().is_some_and(|e| e.revision == oldest) {
                self.events.pop_front();
            }
            coverage::reached!("apiserver.watch-cache.window-overflowed");
            self.window_start = Some(oldest);
        }
    }

    fn query(&self, resource: Resource, namespace: &str, mut since: ResourceVersion) -> Query {
        let Some(window_start) = self.window_start else {
            return Query::NotReady;
        };
        if since < window_start && self.serves_evicted && window_start > self.started_at {
            // PLANTED BUG: the evicted revisions are served as if they had never existed.
            coverage::reached!("apiserver.watch-cache.too-old-resource-version");
            since = window_start;
        }
        if since < window_start {
            if window_start > self.started_at {
                // kube-apiserver's "too old resource version" from its cache's window.
                coverage::reached!("apiserver.watch-cache.too-old-resource-version");
            } else {
                coverage::reached!("apiserver.watch-cache.gone-after-compaction");
            }
            return Query::Gone { window_start };
        }
        if self.started_at > 0 {
            coverage::reached!("apiserver.watch-cache.served-after-compaction");
        }
        let first = self.events.partition_point(|e| e.revision <= since);
        let mut out = Vec::new();
        let mut last_revision = None;
        for cached in self.events.range(first..) {
            if out.len() >= self.max_events_per_response && last_revision != Some(cached.revision) {
                // Cut between revisions; the client resumes from the last one delivered.
                coverage::reached!("apiserver.watch-cache.answer-cut-short");
                return Query::Events(out, last_revision.unwrap_or(since));
            }
            if cached.resource == resource && (namespace.is_empty() || cached.namespace == namespace) {
                out.push(cached.event.clone());
                last_revision = Some(cached.revision);
            }
        }
        Query::Events(out, self.synced_revision.max(since))
    }
}

/// Wakes every waiter when the cache advances. A tiny broadcast "changed" signal, so that
/// watches wait on the cache without polling it.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<(u64, Vec<Waker>)>,
}

impl Signal {
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().expect("signal lock").0
    }

    pub(crate) fn notify_all(&self) {
        let wakers = {
            let mut state = self.state.lock().expect("signal lock");
            state.0 += 1;
            std::mem::take(&mut state.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Resolves once the generation differs from `seen`.
    pub(crate) fn changed(&self, seen: u64) -> Changed<'_> {
        Changed { signal: self, seen }
    }
}

pub(crate) struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.signal.state.lock().expect("signal lock");
        if state.0 != self.seen {
            return Poll::Ready(());
        }
        if !state.1.iter().any(|w| w.will_wake(cx.waker())) {
            state.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[derive(Clone)]
pub struct WatchCache {
    inner: Arc<WatchCacheInner>,
}

struct WatchCacheInner {
    state: Mutex<CacheState>,
    advanced: Signal,
}

impl WatchCache {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "watch cache capacity must be positive");
        Self {
            inner: Arc::new(WatchCacheInner {
                state: Mutex::new(CacheState::new(capacity)),
                advanced: Signal::default(),
            }),
        }
    }

    /// Caps the events of one watch answer at `max` (at least 1; whole revisions are never
    /// split, so an answer may exceed it by the rest of one revision); the client resumes
    /// from the answer's last revision. kube-apiserver bounds what one watcher is handed
    /// at once by its watcher's channel (`cacheWatcher` input buffer) and the response
    /// chunking; kubesim's default is [`MAX_EVENTS_PER_RESPONSE`].
    pub fn with_max_events_per_response(self, max: usize) -> Self {
        self.lock().max_events_per_response = max.max(1);
        self
    }

    /// PLANTED BUG (`kubesim --bug watch-cache-serves-evicted`), off by default. A watch
    /// from before the window, whose revisions the cache evicted when it overflowed, is
    /// served from the window's start instead of being answered 410 Gone ("too old
    /// resource version"): the watcher silently misses every event in between, and its
    /// informer never relists. Kubernetes' watch cache must refuse such a watch
    /// (`watchCache.getAllEventsSinceLocked` returns "too old resource version" when
    /// `resourceVersion < oldest`); a cache that does not breaks etcd's reliable-delivery
    /// guarantee as the apiserver passes it on. Caught by the watch-guarantees checker
    /// (invariant 10: a gap in an answer). Reached only when the window overflows (the
    /// `watch_cache_capacity` knob's small values).
    pub fn with_planted_bug_serves_evicted(self, on: bool) -> Self {
        self.lock().serves_evicted = on;
        self
    }

    /// The custom kinds the apiserver serves: their keys' events are kept like the
    /// built-ins'.
    pub fn with_custom_resources(self, custom: &[&'static CustomResourceDefinition]) -> Self {
        self.lock().custom_resources = custom.to_vec();
        self
    }

    /// Tells `observer`, in the name of `apiserver`, of a watch answered from below the
    /// cache's window ([`ApiServerObserver::watch_served_below_window`]).
    pub fn with_observer(self, apiserver: &str, observer: Option<Arc<dyn ApiServerObserver>>) -> Self {
        self.lock().witness = observer.map(|observer| Witness { apiserver: apiserver.to_string(), observer });
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner.state.lock().expect("watch cache lock")
    }

    /// The revision the cache has seen every event up to (0 before the first sync).
    pub fn synced_revision(&self) -> Revision {
        self.lock().synced_revision
    }

    /// Ends every watch, pending or still to come, with 503 Unavailable ("watch closed").
    /// It never reopens: the apiserver is going away.
    ///
    /// Kubernetes' `Cacher.Stop` (`terminateAllWatchers`) closes every watcher's result
    /// channel when the apiserver shuts down. client-go's reflector takes the end of the
    /// stream as the end of that watch and watches again from its last resourceVersion; a
    /// terminating apiserver refuses that new watch (its listener is closed), and the
    /// client tries again shortly after, reaching whichever apiserver listens by then. The
    /// answer here is what that sequence amounts to: Unavailable, which `ApiClient`
    /// retries after a short backoff from the same resourceVersion. An empty answer (a long
    /// poll's "nothing new") would make the informer re-watch at once instead, and that
    /// re-watch could reach the address in the instant between the kill and the restarted
    /// process's bind, where madsim drops a message silently (TCP would refuse it), leaving
    /// the watcher to its whole timeout after all.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.advanced.notify_all();
    }

    /// Serves `Operation::Watch`: events of `resource` in `namespace` (all when empty)
    /// with resourceVersion > `since`, waiting up to `wait` for one, or until the cache
    /// is closed.
    pub async fn watch(
        &self,
        resource: Resource,
        namespace: &str,
        since: ResourceVersion,
        wait: Duration,
    ) -> Result<(Vec<WatchEvent>, ResourceVersion), ApiError> {
        let time = madsim::time::TimeHandle::current();
        let deadline = time.now_instant() + wait;
        loop {
            let seen = self.inner.advanced.generation();
            let (query, below_window) = {
                let state = self.lock();
                if state.closed {
                    return Err(ApiError::Unavailable { reason: WATCH_CLOSED.into() });
                }
                let below_window = state.window_start.filter(|start| since < *start);
                (state.query(resource, namespace, since), below_window)
            };
            let now = time.now_instant();
            match query {
                Query::Gone { window_start } => {
                    return Err(ApiError::Gone { requested: since, compacted: window_start })
                }
                Query::Events(events, bookmark) if !events.is_empty() || now >= deadline => {
                    // Only the planted bug answers from below the window: the witness is
                    // looked up then, not on every round of the poll.
                    let witness = below_window.and_then(|start| Some((start, self.lock().witness.clone()?)));
                    if let Some((window_start, witness)) = witness {
                        witness.observer.watch_served_below_window(
                            &witness.apiserver,
                            resource,
                            namespace,
                            since,
                            window_start,
                        );
                    }
                    return Ok((events, bookmark));
                }
                Query::NotReady if now >= deadline => {
                    return Err(ApiError::Unavailable {
                        reason: "watch cache has not synced with the store yet".into(),
                    })
                }
                Query::NotReady | Query::Events(..) => {}
            }
            // Timing out here is fine: the loop answers on the next round.
            let _ = simtime::timeout(deadline - now, self.inner.advanced.changed(seen)).await;
        }
    }

    /// The cache's store watch loop. Runs forever.
    pub async fn run<B: Backend>(self, backend: B) {
        loop {
            let Some(start) = self.history_start(&backend).await else {
                madsim::time::sleep(STORE_RETRY_DELAY).await;
                continue;
            };
            tracing::debug!(start, "watch cache (re)started");
            self.lock().reset(start);
            self.inner.advanced.notify_all();
            self.follow(&backend).await;
        }
    }

    /// Where the store's event history begins: the compacted revision (0 if never
    /// compacted). The cache (re)starts there and catches up through the whole retained
    /// history, so a client that listed before this apiserver started can still watch
    /// from its list's revision; eviction then bounds the window to `capacity` events.
    async fn history_start<B: Backend>(&self, backend: &B) -> Option<Revision> {
        let probe = WatchRequest { range: KeyRange::Prefix(REGISTRY_PREFIX.into()), start_revision: 1, prev_kv: false };
        match backend.watch_poll(probe, 1, Duration::ZERO).await {
            Ok(response) if response.canceled => Some(response.compact_revision.unwrap_or(response.header.revision)),
            Ok(_) => Some(0),
            Err(StoreError::Compacted { compacted, .. }) => Some(compacted),
            Err(e) => {
                tracing::debug!("watch cache cannot reach the store: {e}");
                None
            }
        }
    }

    /// Long-polls the store from the synced revision until the store cancels the watch
    /// (compaction or restore): then the caller relists.
    async fn follow<B: Backend>(&self, backend: &B) {
        loop {
            let request = WatchRequest {
                range: KeyRange::Prefix(REGISTRY_PREFIX.into()),
                start_revision: self.synced_revision() + 1,
                prev_kv: true,
            };
            match backend.watch_poll(request, STORE_POLL_MAX_EVENTS, STORE_POLL_WAIT).await {
                Ok(response) if response.canceled => {
                    coverage::reached!("apiserver.watch-cache.restarted-after-compaction");
                    tracing::info!(
                        compact_revision = ?response.compact_revision,
                        "watch cache: store watch canceled (compacted); relisting"
                    );
                    return;
                }
                Ok(response) => self.ingest(response),
                Err(StoreError::Compacted { .. }) => return,
                Err(e) => {
                    tracing::debug!("watch cache: store watch failed: {e}");
                    madsim::time::sleep(STORE_RETRY_DELAY).await;
                }
            }
        }
    }

    fn ingest(&self, response: WatchResponse) {
        let full_batch = response.events.len() >= STORE_POLL_MAX_EVENTS;
        let mut events = response.events;
        let synced = self.synced_revision();
        if events.iter().any(|e| e.kv.mod_revision <= synced) {
            tracing::error!(synced, "store watch returned events at or before its start; dropped");
            events.retain(|e| e.kv.mod_revision > synced);
        }
        let covered = if full_batch {
            // The last revision may continue in the next batch: keep it for then, unless it
            // is the only one (a revision larger than a batch cannot be split anyway).
            let last = events.last().map(|e| e.kv.mod_revision).unwrap_or(synced);
            if events.iter().any(|e| e.kv.mod_revision != last) {
                events.retain(|e| e.kv.mod_revision != last);
                last - 1
            } else {
                tracing::error!(last, "one store revision filled a whole watch batch");
                last
            }
        } else if let Some(last) = events.last() {
            // A batch may stop early before a revision that would not fit: it covers only
            // up to its last event.
            last.kv.mod_revision
        } else {
            // No event at all from the start revision up to the header's revision.
            response.header.revision
        };
        let custom = self.lock().custom_resources.clone();
        let cached = events.iter().filter_map(|event| to_cached_event(event, &custom)).collect();
        let advanced = {
            let mut state = self.lock();
            let before = state.synced_revision;
            state.append(cached, covered);
            state.synced_revision != before
        };
        if advanced {
            self.inner.advanced.notify_all();
        }
    }
}

/// Maps a store event to the Kubernetes watch event: a create (version 1) is Added, any
/// other put Modified, a delete Deleted with the object's last state (prev_kv) at the
/// deletion's revision.
fn to_cached_event(event: &Event, custom: &[&'static CustomResourceDefinition]) -> Option<CachedEvent> {
    let revision = event.kv.mod_revision;
    let resource = Resource::from_key_among(&event.kv.key, custom)?;
    let decoded = match event.kind {
        EventKind::Put => decode(&event.kv),
        EventKind::Delete => match &event.prev_kv {
            Some(prev) => decode(prev),
            None => Ok(object_from_key(resource, &event.kv.key)),
        },
    };
    let mut object = match decoded {
        Ok(object) => object,
        Err(e) => {
            tracing::error!(key = %event.kv.key, revision, "watch cache cannot decode event: {e}");
            return None;
        }
    };
    object.metadata_mut().resource_version = revision;
    let kind = match event.kind {
        EventKind::Put if event.is_create() => WatchEventKind::Added,
        EventKind::Put => WatchEventKind::Modified,
        EventKind::Delete => WatchEventKind::Deleted,
    };
    Some(CachedEvent {
        revision,
        resource,
        namespace: object.metadata().namespace.clone(),
        event: WatchEvent { kind, object, resource_version: revision },
    })
}

/// A bare object named by its key, for a delete event without its previous value.
fn object_from_key(resource: Resource, key: &str) -> Object {
    let rest = key.strip_prefix(&resource.key_prefix()).unwrap_or_default();
    let (namespace, name) = if resource.namespaced() { rest.split_once('/').unwrap_or(("", rest)) } else { ("", rest) };
    let metadata = ObjectMeta::named(namespace, name);
    match resource {
        Resource::Namespaces => api::Namespace { metadata }.into(),
        Resource::Nodes => api::Node { metadata, ..Default::default() }.into(),
        Resource::Pods => api::Pod { metadata, ..Default::default() }.into(),
        Resource::ReplicaSets => api::ReplicaSet { metadata, ..Default::default() }.into(),
        Resource::Deployments => api::Deployment { metadata, ..Default::default() }.into(),
        Resource::Leases => api::Lease { metadata, ..Default::default() }.into(),
        Resource::ConfigMaps => api::ConfigMap { metadata, ..Default::default() }.into(),
        Resource::Secrets => api::Secret { metadata, ..Default::default() }.into(),
        Resource::Events => api::Event { metadata, ..Default::default() }.into(),
        Resource::Services => api::Service { metadata, ..Default::default() }.into(),
        Resource::Endpoints => api::Endpoints { metadata, ..Default::default() }.into(),
        Resource::Roles => api::rbac::Role { metadata, rules: Vec::new() }.into(),
        Resource::ClusterRoles => api::rbac::ClusterRole { metadata, rules: Vec::new() }.into(),
        Resource::RoleBindings => {
            api::rbac::RoleBinding { metadata, subjects: Vec::new(), role_ref: unknown_role_ref() }.into()
        }
        Resource::ClusterRoleBindings => {
            api::rbac::ClusterRoleBinding { metadata, subjects: Vec::new(), role_ref: unknown_role_ref() }.into()
        }
        Resource::Custom(definition) => {
            api::DynamicObject { definition, metadata, spec: RawJson::null(), status: RawJson::null() }.into()
        }
    }
}

/// The role reference of a binding known only by its key: it names no role.
fn unknown_role_ref() -> api::rbac::RoleRef {
    api::rbac::RoleRef { kind: api::rbac::RoleRefKind::ClusterRole, name: String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: Revision, resource: Resource, namespace: &str, name: &str) -> CachedEvent {
        let object = object_from_key(resource, &resource.key(namespace, name));
        CachedEvent {
            revision,
            resource,
            namespace: namespace.into(),
            event: WatchEvent { kind: WatchEventKind::Added, object, resource_version: revision },
        }
    }

    fn state(capacity: usize, start: Revision) -> CacheState {
        let mut s = CacheState::new(capacity);
        s.reset(start);
        s
    }

    /// Renders a query as "gone@W", "not-ready" or "<rv list> @bookmark".
    fn check(state: &CacheState, resource: Resource, ns: &str, since: Revision, expect: &str) {
        let actual = match state.query(resource, ns, since) {
            Query::NotReady => "not-ready".to_string(),
            Query::Gone { window_start } => format!("gone@{window_start}"),
            Query::Events(events, bookmark) => {
                let rvs: Vec<String> = events.iter().map(|e| format!("{}", e.resource_version)).collect();
                format!("[{}] @{bookmark}", rvs.join(","))
            }
        };
        assert_eq!(actual, expect, "since {since}");
    }

    #[test]
    fn serves_events_after_since_filtered_by_resource_and_namespace() {
        let mut s = state(10, 5);
        s.append(
            vec![
                event(6, Resource::Pods, "default", "a"),
                event(7, Resource::Pods, "other", "b"),
                event(7, Resource::Pods, "default", "c"),
                event(8, Resource::Nodes, "", "n"),
            ],
            9,
        );
        check(&s, Resource::Pods, "", 5, "[6,7,7] @9");
        check(&s, Resource::Pods, "default", 5, "[6,7] @9");
        check(&s, Resource::Pods, "default", 6, "[7] @9");
        check(&s, Resource::Nodes, "", 5, "[8] @9");
        check(&s, Resource::Leases, "", 5, "[] @9");
        // A client ahead of the cache keeps its own position.
        check(&s, Resource::Pods, "", 12, "[] @12");
        check(&s, Resource::Pods, "", 4, "gone@5");
    }

    #[test]
    fn eviction_drops_whole_revisions_and_moves_the_window() {
        let mut s = state(2, 0);
        s.append(
            vec![
                event(1, Resource::Pods, "default", "a"),
                event(2, Resource::Pods, "default", "b"),
                event(2, Resource::Pods, "default", "c"),
            ],
            2,
        );
        // Revision 1 was evicted; revision 2 kept whole.
        check(&s, Resource::Pods, "", 0, "gone@1");
        check(&s, Resource::Pods, "", 1, "[2,2] @2");
    }

    /// The `watch-cache-serves-evicted` planted bug answers a watch from before a window
    /// moved by eviction with the window's events, skipping the evicted ones; a window
    /// that starts where the cache (re)started is still answered 410.
    #[test]
    fn the_planted_bug_serves_a_watch_from_before_an_evicted_window() {
        let mut s = state(2, 0);
        s.serves_evicted = true;
        s.append(
            vec![
                event(1, Resource::Pods, "default", "a"),
                event(2, Resource::Pods, "default", "b"),
                event(3, Resource::Pods, "default", "c"),
            ],
            3,
        );
        check(&s, Resource::Pods, "", 0, "[2,3] @3");
        let mut restarted = state(2, 5);
        restarted.serves_evicted = true;
        check(&restarted, Resource::Pods, "", 4, "gone@5");
    }

    #[test]
    fn a_cache_that_never_synced_is_not_ready() {
        let s = CacheState::new(1);
        check(&s, Resource::Pods, "", 0, "not-ready");
    }

    #[test]
    fn delete_events_without_prev_kv_still_name_the_object() {
        let object = object_from_key(Resource::Pods, "/registry/pods/default/web-1");
        assert_eq!(object.key(), "/registry/pods/default/web-1");
        let node = object_from_key(Resource::Nodes, "/registry/minions/worker-1");
        assert_eq!(node.key(), "/registry/minions/worker-1");
    }
}
