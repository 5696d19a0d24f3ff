//! The apiserver's view of the RBAC objects, which its authorizer decides from, and the
//! bootstrap policy written at startup.
//!
//! Kubernetes' RBAC authorizer (`plugin/pkg/auth/authorizer/rbac`) reads Roles,
//! RoleBindings, ClusterRoles and ClusterRoleBindings through listers of shared informers
//! on the apiserver's own loopback client. Here each of the four kinds has an informer of
//! its own ([`run_informer`]): a list from the store, then watches of this apiserver's
//! watch cache from the list's resourceVersion, relisting after 410 Gone (a compaction,
//! the watch cache's window, a restore). Their objects are kept in one [`RbacPolicy`].
//!
//! **Readiness.** kube-apiserver is not ready (`/readyz`) until its post-start hooks have
//! run, `rbac/bootstrap-roles` among them, and its informers have synced. kubesim's
//! apiserver answers every request that needs RBAC with 503 Unavailable until its cache
//! is ready: all four kinds listed, and every object of the bootstrap policy seen (written
//! by this apiserver's bootstrap or by another's). Clients retry 503 elsewhere or later.
//! Readiness is a latch: once ready, the apiserver authorizes from whatever the cache
//! holds, as a ready kube-apiserver does, even if a bootstrap object is later deleted.
//! `system:masters` needs no RBAC (see [`crate::authz`]), so the operator and the
//! apiserver's own bootstrap writes proceed before it.
//!
//! **Bootstrap** ([`ensure_bootstrap_policy`]): kube-apiserver's `rbac/bootstrap-roles`
//! post-start hook (`pkg/registry/rbac/rest/storage_rbac.go`, `EnsureRBACPolicy`, with the
//! objects of `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`) creates the default
//! roles and bindings at every apiserver start. kubesim creates each bootstrap object that
//! its synced cache does not hold, as `system:apiserver`, and never rewrites one that
//! exists (an AlreadyExists from a racing apiserver is success). It runs at every start,
//! so it is idempotent across several apiservers, restarts, and restores: the operator
//! restarts every apiserver after a restore, and a restore from a backup taken before the
//! bootstrap gets the objects created again. Kubernetes' hook goes further and reconciles
//! an existing default object (it adds missing rules and subjects unless the object is
//! annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`); kubesim does not.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use api::{ApiError, ApiResponse, Object, Resource, WatchEventKind};

use crate::backend::Backend;
use crate::config::UserInfo;
use crate::rbac::RbacPolicy;
use crate::registry::Registry;
use crate::watch_cache::{Signal, WatchCache};

/// How long one informer watch of the watch cache waits for an event (a long poll in the
/// same process: no store traffic).
const INFORMER_WATCH_WAIT: Duration = Duration::from_secs(30);
/// Pause after a failed list or watch before trying again.
const INFORMER_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Pause after a failed bootstrap write, or for the cache to show one that succeeded.
const BOOTSTRAP_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Why a request is refused while the cache is not ready (503 Unavailable).
pub const NOT_READY: &str = "the apiserver is not ready: its RBAC authorizer's cache has not synced \
                             with the bootstrap policy yet";

/// The store revision up to which each RBAC kind's informer had applied changes when a
/// decision was made: the cache held that kind's objects as of that revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncedRevisions {
    pub roles: i64,
    pub role_bindings: i64,
    pub cluster_roles: i64,
    pub cluster_role_bindings: i64,
}

/// The RBAC objects one apiserver has listed and watched, shared by its informers, its
/// bootstrap and its request handlers.
#[derive(Clone)]
pub struct RbacCache {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<CacheState>,
    /// Notified on every change: a list, an event, readiness.
    changed: Signal,
}

struct CacheState {
    policy: RbacPolicy,
    /// Per kind of [`Resource::RBAC`], the store revision up to which its informer has
    /// applied changes (its list's resourceVersion, then each watch answer's).
    synced: [i64; 4],
    /// Planted bug `rbac-cache-ignores-binding-deletes` (see `ApiServerBugs`).
    ignores_binding_deletes: bool,
    /// Which of [`Resource::RBAC`] has been listed at least once.
    listed: [bool; 4],
    /// The objects the bootstrap writes; the cache is ready once it holds them all.
    bootstrap: Vec<Object>,
    ready: bool,
}

impl CacheState {
    fn all_listed(&self) -> bool {
        self.listed.iter().all(|listed| *listed)
    }

    fn update_readiness(&mut self) {
        if !self.ready && self.all_listed() && self.bootstrap.iter().all(|o| self.policy.contains(o)) {
            coverage::reached!("apiserver.rbac.cache-ready");
            self.ready = true;
        }
    }
}

fn kind_index(resource: Resource) -> usize {
    Resource::RBAC.iter().position(|r| *r == resource).expect("an RBAC kind")
}

impl RbacCache {
    /// An empty, unready cache that becomes ready once it holds `bootstrap`'s objects.
    pub fn new(bootstrap: &RbacPolicy) -> Self {
        let state = CacheState {
            policy: RbacPolicy::new(),
            synced: [0; 4],
            ignores_binding_deletes: false,
            listed: [false; 4],
            bootstrap: bootstrap.objects(),
            ready: false,
        };
        Self { inner: Arc::new(Inner { state: Mutex::new(state), changed: Signal::default() }) }
    }

    /// Plants the bug `rbac-cache-ignores-binding-deletes`: RoleBinding Delete events are
    /// dropped (see [`crate::ApiServerBugs::rbac_cache_ignores_binding_deletes`]).
    pub fn with_planted_bug_ignores_binding_deletes(self, planted: bool) -> Self {
        self.lock().ignores_binding_deletes = planted;
        self
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.inner.state.lock().expect("rbac cache lock")
    }

    /// Whether the authorizer may decide from the cache (see the module doc).
    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// Calls `decide` with the policy when the cache is ready, with `None` before.
    pub fn with_policy<T>(&self, decide: impl FnOnce(Option<&RbacPolicy>) -> T) -> T {
        let state = self.lock();
        decide(state.ready.then_some(&state.policy))
    }

    /// As [`RbacCache::with_policy`], also handing `decide` the revisions the policy is
    /// synced to.
    pub fn with_policy_at<T>(&self, decide: impl FnOnce(Option<&RbacPolicy>, SyncedRevisions) -> T) -> T {
        let state = self.lock();
        let [roles, role_bindings, cluster_roles, cluster_role_bindings] = state.synced;
        let synced = SyncedRevisions { roles, role_bindings, cluster_roles, cluster_role_bindings };
        decide(state.ready.then_some(&state.policy), synced)
    }

    /// Waits until the cache is ready.
    pub async fn wait_ready(&self) {
        loop {
            let seen = self.inner.changed.generation();
            if self.is_ready() {
                return;
            }
            self.inner.changed.changed(seen).await;
        }
    }

    /// An informer's list of `resource` at `resource_version`: replaces every object of
    /// that kind.
    fn replace(&self, resource: Resource, objects: Vec<Object>, resource_version: i64) {
        {
            let mut state = self.lock();
            state.policy.replace(resource, objects);
            state.listed[kind_index(resource)] = true;
            state.synced[kind_index(resource)] = resource_version;
            state.update_readiness();
        }
        self.inner.changed.notify_all();
    }

    /// An informer's watch answer for `resource`: its events, complete up to
    /// `resource_version`.
    fn apply(&self, resource: Resource, events: Vec<api::WatchEvent>, resource_version: i64) {
        if events.is_empty() {
            // Only the revision advances: nobody waits for that.
            self.lock().synced[kind_index(resource)] = resource_version;
            return;
        }
        {
            let mut state = self.lock();
            state.synced[kind_index(resource)] = resource_version;
            for event in events {
                match event.kind {
                    WatchEventKind::Added | WatchEventKind::Modified => {
                        state.policy.put(event.object);
                    }
                    WatchEventKind::Deleted
                        if state.ignores_binding_deletes && event.object.resource() == Resource::RoleBindings =>
                    {
                        // PLANTED BUG: the revoked binding stays in the policy.
                    }
                    WatchEventKind::Deleted => {
                        let meta = event.object.metadata();
                        state.policy.remove(event.object.resource(), &meta.namespace, &meta.name);
                    }
                }
            }
            state.update_readiness();
        }
        self.inner.changed.notify_all();
    }

    /// The bootstrap objects the cache does not hold, once every kind has been listed;
    /// `None` before.
    fn missing_bootstrap_objects(&self) -> Option<Vec<Object>> {
        let state = self.lock();
        state.all_listed().then(|| state.bootstrap.iter().filter(|o| !state.policy.contains(o)).cloned().collect())
    }
}

/// The informer of one RBAC kind: list from the store, watch the watch cache from the
/// list's resourceVersion, relist after 410 Gone. Runs until aborted.
pub async fn run_informer<B: Backend>(
    cache: RbacCache,
    registry: Registry<B>,
    watch_cache: WatchCache,
    kind: Resource,
) {
    loop {
        let since = match registry.list(kind, "").await {
            Ok(ApiResponse::List { items, resource_version }) => {
                cache.replace(kind, items, resource_version);
                resource_version
            }
            Ok(other) => unreachable!("a list answered {other:?}"),
            Err(e) => {
                tracing::debug!(%kind, "rbac informer: list failed, will retry: {e}");
                madsim::time::sleep(INFORMER_RETRY_DELAY).await;
                continue;
            }
        };
        follow(&cache, &watch_cache, kind, since).await;
        coverage::reached!("apiserver.rbac.informer-relisted");
    }
}

/// Watches `kind` from `since` until the watch cache answers 410 Gone.
async fn follow(cache: &RbacCache, watch_cache: &WatchCache, kind: Resource, mut since: i64) {
    loop {
        match watch_cache.watch(kind, "", since, INFORMER_WATCH_WAIT).await {
            Ok((events, resource_version)) => {
                cache.apply(kind, events, resource_version);
                since = resource_version;
            }
            Err(ApiError::Gone { .. }) => return,
            Err(e) => {
                // Not synced yet, or closed for shutdown: try again later.
                tracing::debug!(%kind, "rbac informer: watch failed, will retry: {e}");
                madsim::time::sleep(INFORMER_RETRY_DELAY).await;
            }
        }
    }
}

/// Writes every bootstrap object the synced cache does not hold (see the module doc) and
/// returns once the cache holds them all.
pub async fn ensure_bootstrap_policy<B: Backend>(cache: &RbacCache, registry: &Registry<B>, user: &UserInfo) {
    loop {
        let seen = cache.inner.changed.generation();
        match cache.missing_bootstrap_objects() {
            Some(missing) if missing.is_empty() => return,
            Some(missing) => {
                for object in missing {
                    match registry.create(user, object, None).await {
                        Ok(_) => coverage::reached!("apiserver.rbac.bootstrap-created"),
                        Err(ApiError::AlreadyExists { .. }) => {}
                        Err(e) => {
                            tracing::debug!("writing the bootstrap RBAC policy failed, will retry: {e}");
                            break;
                        }
                    }
                }
                // Wait for the cache to show the writes; past the delay, look again (and
                // retry what failed).
                let _ = simtime::timeout(BOOTSTRAP_RETRY_DELAY, cache.wait_ready()).await;
            }
            None => cache.inner.changed.changed(seen).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use api::rbac::{RoleBinding, RoleRef, RoleRefKind, Subject};
    use api::{ObjectMeta, WatchEvent};

    use super::*;

    fn binding(revision: i64) -> Object {
        let mut metadata = ObjectMeta::named("default", "alice-edit");
        metadata.resource_version = revision;
        Object::RoleBinding(RoleBinding {
            metadata,
            subjects: vec![Subject::user("alice")],
            role_ref: RoleRef { kind: RoleRefKind::Role, name: "edit".into() },
        })
    }

    fn event(kind: WatchEventKind, revision: i64) -> WatchEvent {
        WatchEvent { kind, object: binding(revision), resource_version: revision }
    }

    fn synced(cache: &RbacCache) -> SyncedRevisions {
        cache.with_policy_at(|_, synced| synced)
    }

    fn holds_binding(cache: &RbacCache) -> bool {
        cache.lock().policy.contains(&binding(0))
    }

    /// Each kind's revision follows its informer: the list's, then each watch answer's,
    /// with or without events.
    #[test]
    fn the_synced_revision_of_each_kind_follows_its_informer() {
        let cache = RbacCache::new(&RbacPolicy::new());
        cache.replace(Resource::RoleBindings, vec![], 10);
        cache.replace(Resource::Roles, vec![], 11);
        assert_eq!(synced(&cache), SyncedRevisions { roles: 11, role_bindings: 10, ..Default::default() });
        cache.apply(Resource::RoleBindings, vec![event(WatchEventKind::Added, 12)], 12);
        assert!(holds_binding(&cache));
        cache.apply(Resource::Roles, vec![], 15);
        cache.apply(Resource::RoleBindings, vec![event(WatchEventKind::Deleted, 16)], 16);
        assert!(!holds_binding(&cache));
        assert_eq!(synced(&cache), SyncedRevisions { roles: 15, role_bindings: 16, ..Default::default() });
    }

    /// The planted bug keeps a deleted RoleBinding while its revision moves past the delete.
    #[test]
    fn the_planted_bug_keeps_a_deleted_binding_past_its_delete() {
        let cache = RbacCache::new(&RbacPolicy::new()).with_planted_bug_ignores_binding_deletes(true);
        cache.replace(Resource::RoleBindings, vec![binding(5)], 5);
        cache.apply(Resource::RoleBindings, vec![event(WatchEventKind::Deleted, 8)], 8);
        assert!(holds_binding(&cache));
        assert_eq!(synced(&cache).role_bindings, 8);
    }
}
