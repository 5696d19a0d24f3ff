//! The registry: Kubernetes objects stored in the store, one key per object, every write
//! an optimistic-concurrency transaction (Kubernetes `storage/etcd3/store.go`).
//!
//! - Key: `/registry/<plural>/<namespace>/<name>` ([`api::Resource::key`]); a custom
//!   kind's: `/registry/<group>/<plural>/<namespace>/<name>`.
//! - Value: the object as JSON with `metadata.resourceVersion` zeroed; on read the
//!   resourceVersion is the key's `mod_revision`, and a list's is the read's revision.
//! - Create: `Txn[mod_revision(key) == 0 -> put]`, else 409 AlreadyExists.
//! - Update / status update: `Txn[mod_revision(key) == resourceVersion -> put]`, else 409
//!   Conflict (404 if gone).
//! - Delete and Bind read, check and write with `Txn[mod_revision(key) == read revision]`,
//!   retrying a bounded number of times when the object changed underneath (Kubernetes
//!   `GuaranteedUpdate`).
//! - A lease fence adds `mod_revision(lease key) == fence.resourceVersion` to the same
//!   transaction; NamespaceLifecycle adds `version(namespace key) > 0` to a create's.
//!   When the transaction fails, its failure branch reads those keys back to tell which
//!   precondition failed, in the same round trip.
//!
//! - Events are written with a store lease of the configured TTL (kube-apiserver's
//!   `--event-ttl`; `registry/core/event/storage` sets the TTL on create and update alike),
//!   taken from the apiserver's [`TtlLeases`], so the store deletes an Event once its TTL
//!   has passed without a newer write.
//!
//! - Services get their ClusterIP from the [`ServiceIpAllocator`] before their create's
//!   transaction (Kubernetes' service REST storage allocates in `beginCreate`), and give
//!   it back after their delete committed (`afterDelete`). A create that definitely failed
//!   (its transaction ran and a precondition failed) releases its IP; one whose outcome is
//!   unknown keeps it, a possible leak the repair loop frees later, never a duplicate.
//!   (Kubernetes reverts the allocation on any error, a timeout included, which can free
//!   the IP of a Service that was in fact created.)
//!
//! A write is acknowledged only after the store committed it, except under the planted
//! bug [`ApiServerBugs::ack_before_commit`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use api::{
    ApiError, ApiResponse, Clock, DeleteOptions, LeaseFence, Namespace, Object, ObjectMeta, PropagationPolicy,
    Resource, Verb, FINALIZER_FOREGROUND_DELETION, FINALIZER_ORPHAN,
};
use bytes::Bytes;
use std::time::Duration;

use store::api::{
    Compare, CompareOp, DeleteRangeRequest, KeyRange, KeyValue, LeasedPutRequest, PutRequest, RangeRequest, RequestOp,
    ResponseOp, Revision, StoreError, TxnRequest,
};

use crate::admission;
use crate::authz::Decision;
use crate::backend::Backend;
use crate::config::{ApiServerBugs, UserInfo};
use crate::server::ApiServerObserver;
use crate::service_ips::{ServiceIpAllocator, ServiceIpRange};
use crate::ttl_leases::TtlLeases;

/// Bound on read-check-write rounds for one Delete or Bind whose object keeps changing
/// (Kubernetes' GuaranteedUpdate retries without bound; kubesim bounds every retry loop).
pub const MAX_WRITE_ATTEMPTS: usize = 5;

/// How a store error reaches a client.
pub fn api_error_from_store(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable { .. } | StoreError::NotLeader { .. } => {
            ApiError::Unavailable { reason: format!("store: {error}") }
        }
        StoreError::UnknownOutcome { .. } => ApiError::Timeout { reason: format!("store: {error}") },
        StoreError::Compacted { requested, compacted } => ApiError::Gone { requested, compacted },
        StoreError::RequestTooLarge { .. } => ApiError::TooLarge { reason: format!("store: {error}") },
        StoreError::FutureRevision { .. }
        | StoreError::DuplicateKeyInTxn { .. }
        | StoreError::TooManyOps { .. }
        | StoreError::PermissionDenied { .. }
        | StoreError::InvalidRequest { .. }
        | StoreError::Lease { .. } => ApiError::Internal { reason: format!("store: {error}") },
    }
}

/// The stored form of an object: JSON with the resourceVersion zeroed (it is not part of
/// the value; it is the key's mod_revision).
pub fn encode(object: &Object) -> Result<Bytes, ApiError> {
    encode_in_place(&mut object.clone())
}

/// [`encode`] without the copy: zeroes the resourceVersion for the serialization and puts
/// it back, so `object` is left as it was.
fn encode_in_place(object: &mut Object) -> Result<Bytes, ApiError> {
    let resource_version = std::mem::take(&mut object.metadata_mut().resource_version);
    let encoded = serde_json::to_vec(&*object)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal { reason: format!("cannot serialize {}: {e}", object.key()) });
    object.metadata_mut().resource_version = resource_version;
    encoded
}

/// Bound on the keys [`decode`] remembers an object for; past it the memo starts over.
const MAX_DECODED_KEYS: usize = 4096;

thread_local! {
    /// The last object decoded from each key, with the mod_revision and value it was
    /// decoded from. Decoding is a pure function of those, so a hit is exactly what decoding
    /// again would give; it saves the JSON parse, the costliest step of an apiserver read,
    /// which every apiserver's watch cache, then a read-modify-write, then each relist
    /// repeats for the same version of an object. One seed runs on one thread, so the memo
    /// never outlives the seed's run (a hit from elsewhere would still be exact).
    static DECODED: std::cell::RefCell<std::collections::BTreeMap<String, (Revision, Bytes, Object)>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// An object read from the store, with resourceVersion := the key's mod_revision.
pub fn decode(kv: &KeyValue) -> Result<Object, ApiError> {
    let remembered = DECODED.with_borrow(|decoded| {
        decoded
            .get(&kv.key)
            .filter(|(mod_revision, value, _)| *mod_revision == kv.mod_revision && *value == kv.value)
            .map(|(_, _, object)| object.clone())
    });
    if let Some(object) = remembered {
        return Ok(object);
    }
    let object = decode_uncached(kv)?;
    DECODED.with_borrow_mut(|decoded| {
        if decoded.len() >= MAX_DECODED_KEYS && !decoded.contains_key(&kv.key) {
            decoded.clear();
        }
        decoded.insert(kv.key.clone(), (kv.mod_revision, kv.value.clone(), object.clone()));
    });
    Ok(object)
}

fn decode_uncached(kv: &KeyValue) -> Result<Object, ApiError> {
    let mut object: Object = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal { reason: format!("cannot decode the value of {}: {e}", kv.key) })?;
    if object.key() != kv.key {
        return Err(ApiError::Internal { reason: format!("key {} holds the object of {}", kv.key, object.key()) });
    }
    object.metadata_mut().resource_version = kv.mod_revision;
    Ok(object)
}

fn not_found(resource: Resource, namespace: &str, name: &str) -> ApiError {
    ApiError::NotFound { resource, namespace: namespace.to_string(), name: name.to_string() }
}

/// Kubernetes' optimistic-concurrency conflict message.
fn conflict(resource: Resource, name: &str) -> ApiError {
    coverage::reached!("apiserver.write.conflict");
    ApiError::Conflict {
        reason: format!(
            "Operation cannot be fulfilled on {resource} {name:?}: the object has been \
             modified; please apply your changes to the latest version and try again"
        ),
    }
}

fn put(key: &str, value: Bytes) -> RequestOp {
    RequestOp::Put(PutRequest { key: key.to_string(), value, prev_kv: false })
}

fn read(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest::new(KeyRange::Key(key.to_string())))
}

/// One conditional store write, before the fence and namespace preconditions are added.
struct Write {
    verb: Verb,
    key: String,
    /// The object's own precondition (mod_revision equality).
    compare: Compare,
    success: RequestOp,
    fence: Option<LeaseFence>,
    /// Create only: the namespace that must exist (NamespaceLifecycle).
    namespace: Option<String>,
    /// The metadata of the object the write leaves (or removes: `true`), for an observer
    /// that records it ([`ApiServerObserver::records_object_metadata`]).
    written: Option<(ObjectMeta, bool)>,
}

enum Outcome {
    Committed(Revision),
    /// The object's precondition failed; the key's current value, if any.
    ObjectChanged(Option<KeyValue>),
}

#[derive(Clone)]
pub struct Registry<B> {
    backend: B,
    clock: Clock,
    apiserver_name: Arc<str>,
    observer: Option<Arc<dyn ApiServerObserver>>,
    bugs: ApiServerBugs,
    /// The highest store revision any response showed this apiserver. Only the planted
    /// bug reads it, to guess a resourceVersion.
    highest_revision_seen: Arc<AtomicI64>,
    /// The leases Events are written under, and their TTL.
    ttl_leases: TtlLeases,
    event_ttl: Duration,
    /// Services' ClusterIPs (nothing is written until a Service is created).
    service_ips: ServiceIpAllocator<B>,
}

impl<B: Backend> Registry<B> {
    pub fn new(
        backend: B,
        clock: Clock,
        apiserver_name: &str,
        observer: Option<Arc<dyn ApiServerObserver>>,
        bugs: ApiServerBugs,
    ) -> Self {
        Self {
            apiserver_name: apiserver_name.into(),
            observer,
            bugs,
            highest_revision_seen: Arc::new(AtomicI64::new(0)),
            ttl_leases: TtlLeases::new(clock.clone()),
            clock,
            event_ttl: crate::ttl_leases::DEFAULT_EVENT_TTL,
            service_ips: ServiceIpAllocator::new(backend.clone(), ServiceIpRange::DEFAULT)
                .with_planted_bug_unconditional_put(bugs.service_ips_unconditional_put),
            backend,
        }
    }

    /// The same registry allocating Services' ClusterIPs from `range`
    /// (kube-apiserver's `--service-cluster-ip-range`).
    pub fn with_service_ip_range(mut self, range: ServiceIpRange) -> Self {
        self.service_ips = ServiceIpAllocator::new(self.backend.clone(), range)
            .with_planted_bug_unconditional_put(self.bugs.service_ips_unconditional_put);
        self
    }

    /// The ClusterIP allocator (the repair loop shares it).
    pub fn service_ips(&self) -> &ServiceIpAllocator<B> {
        &self.service_ips
    }

    /// Gives back a Service's ClusterIP. A failure leaves it allocated: a leak the repair
    /// loop frees, never a duplicate.
    async fn release_service_ip(&self, cluster_ip: &str) {
        let Ok(ip) = cluster_ip.parse() else {
            return;
        };
        if let Err(e) = self.service_ips.release(ip).await {
            tracing::debug!(%ip, "releasing a ClusterIP failed, leaving it to the repair loop: {e}");
        }
    }

    /// The same registry writing Events to live `ttl` (kube-apiserver's `--event-ttl`).
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// The store write that puts `object`'s encoding at its key: under a TTL lease for
    /// Events, a plain put for everything else.
    async fn put_object(&self, key: &str, object: &mut Object) -> Result<RequestOp, ApiError> {
        let value = encode_in_place(object)?;
        if object.resource() != Resource::Events {
            return Ok(put(key, value));
        }
        let lease = self.ttl_leases.lease_for(&self.backend, self.event_ttl).await.map_err(api_error_from_store)?;
        Ok(RequestOp::LeasedPut(LeasedPutRequest {
            put: PutRequest { key: key.to_string(), value, prev_kv: false },
            lease,
        }))
    }

    /// The same registry without planted bugs (for the apiserver's own bootstrap writes).
    pub fn without_bugs(&self) -> Self {
        Self { bugs: ApiServerBugs::default(), ..self.clone() }
    }

    fn saw_revision(&self, revision: Revision) {
        self.highest_revision_seen.fetch_max(revision, Ordering::Relaxed);
    }

    /// A linearizable read of one key.
    async fn read_key(&self, key: &str) -> Result<Option<KeyValue>, ApiError> {
        let response = self
            .backend
            .range(RangeRequest::new(KeyRange::Key(key.to_string())))
            .await
            .map_err(api_error_from_store)?;
        self.saw_revision(response.header.revision);
        Ok(response.kvs.into_iter().next())
    }

    pub async fn get(&self, resource: Resource, namespace: &str, name: &str) -> Result<Object, ApiError> {
        match self.read_key(&resource.key(namespace, name)).await? {
            Some(kv) => decode(&kv),
            None => Err(not_found(resource, namespace, name)),
        }
    }

    /// A linearizable list of one namespace (or all, when `namespace` is empty); its
    /// resourceVersion is the revision it was read at.
    pub async fn list(&self, resource: Resource, namespace: &str) -> Result<ApiResponse, ApiError> {
        let response = self
            .backend
            .range(RangeRequest::new(KeyRange::Prefix(resource.namespace_prefix(namespace))))
            .await
            .map_err(api_error_from_store)?;
        self.saw_revision(response.header.revision);
        let items = response.kvs.iter().map(decode).collect::<Result<_, _>>()?;
        Ok(ApiResponse::List { items, resource_version: response.header.revision })
    }

    pub async fn create(
        &self,
        user: &UserInfo,
        mut object: Object,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        validate_fence(fence.as_ref())?;
        admission::validate(&object)?;
        prepare_for_create(&mut object, self.clock.now_ms(), new_uid());
        let allocated_ip = match &mut object {
            Object::Service(service) => {
                let ip = self.service_ips.allocate(&service.spec.cluster_ip).await?;
                service.spec.cluster_ip = ip.to_string();
                Some(service.spec.cluster_ip.clone())
            }
            _ => None,
        };
        let key = object.key();
        let namespace = object.resource().namespaced().then(|| object.metadata().namespace.clone());
        let success = match self.put_object(&key, &mut object).await {
            Ok(success) => success,
            Err(e) => {
                if let Some(ip) = &allocated_ip {
                    self.release_service_ip(ip).await;
                }
                return Err(e);
            }
        };
        let write = Write {
            verb: Verb::Create,
            compare: Compare::mod_revision(&key, CompareOp::Equal, 0),
            success,
            key,
            fence,
            namespace,
            written: self.metadata_to_record(&object, false),
        };
        let outcome = self.commit(user, write).await;
        if let Some(ip) = &allocated_ip {
            // Only a transaction that ran and failed its compares certainly created nothing.
            let not_created = matches!(
                outcome,
                Ok(Outcome::ObjectChanged(_)) | Err(ApiError::Fenced { .. }) | Err(ApiError::NotFound { .. })
            );
            if not_created {
                self.release_service_ip(ip).await;
            }
        }
        match outcome? {
            Outcome::Committed(revision) => {
                object.metadata_mut().resource_version = revision;
                Ok(object)
            }
            Outcome::ObjectChanged(_) => {
                let meta = object.metadata();
                Err(ApiError::AlreadyExists {
                    resource: object.resource(),
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                })
            }
        }
    }

    /// Update (`status_only == false`: spec and metadata, status kept as stored) or
    /// UpdateStatus (`status_only == true`: status only, everything else kept as stored).
    /// The object's resourceVersion is the precondition.
    pub async fn update(
        &self,
        user: &UserInfo,
        decision: &Decision,
        object: Object,
        fence: Option<LeaseFence>,
        status_only: bool,
    ) -> Result<Object, ApiError> {
        validate_fence(fence.as_ref())?;
        let verb = if status_only { Verb::UpdateStatus } else { Verb::Update };
        let resource = object.resource();
        let ObjectMeta { namespace, name, resource_version, .. } = object.metadata().clone();
        if resource_version == 0 {
            return Err(ApiError::Invalid {
                field: "metadata.resourceVersion".into(),
                reason: "must be specified for an update".into(),
            });
        }
        if status_only && !has_status(resource) {
            return Err(ApiError::Invalid {
                field: "status".into(),
                reason: format!("{} has no status subresource", resource.kind()),
            });
        }
        if !status_only {
            admission::validate(&object)?;
        }
        let key = object.key();
        let mut n_attempts = 0;
        loop {
            n_attempts += 1;
            let stored_kv = self.read_key(&key).await?.ok_or_else(|| not_found(resource, &namespace, &name))?;
            let stored = decode(&stored_kv)?;
            check_node_restriction(decision, &stored, user, verb)?;
            // The version the write is conditioned on: the one the client read.
            let mut precondition = resource_version;
            if stored_kv.mod_revision != resource_version {
                if !self.bugs.update_reapplies_on_conflict {
                    return Err(conflict(resource, &name));
                }
                // PLANTED BUG (`ApiServerBugs::update_reapplies_on_conflict`): the client's
                // object goes over the newer version, whose changes it never saw.
                coverage::reached!("apiserver.update.planted-reapply");
                precondition = stored_kv.mod_revision;
            }
            let attempt = self.update_once(user, object.clone(), fence.clone(), verb, &stored, precondition).await?;
            match attempt {
                Some(updated) => return Ok(updated),
                None if self.bugs.update_reapplies_on_conflict && n_attempts < MAX_WRITE_ATTEMPTS => {}
                None => return Err(conflict(resource, &name)),
            }
        }
    }

    /// One conditional write of an update over `stored`, under `precondition` (the
    /// resourceVersion the client read): the object as written, at its new
    /// resourceVersion, or `None` if the object changed between the read and the write.
    async fn update_once(
        &self,
        user: &UserInfo,
        object: Object,
        fence: Option<LeaseFence>,
        verb: Verb,
        stored: &Object,
        precondition: Revision,
    ) -> Result<Option<Object>, ApiError> {
        let status_only = verb == Verb::UpdateStatus;
        let resource = object.resource();
        let ObjectMeta { namespace, name, .. } = object.metadata().clone();
        let key = object.key();
        let mut updated = if status_only { merge_status(stored, object)? } else { merge_update(stored, object)? };
        admission::check_size(&updated)?;
        check_finalizers_update(stored.metadata(), updated.metadata())?;
        // Kubernetes `Store.Update` (`ShouldDeleteDuringUpdate`): the update that empties the
        // finalizers of an object marked for deletion removes it instead of writing it.
        let (verb, success) = if stored.metadata().is_being_deleted() && updated.metadata().finalizers.is_empty() {
            coverage::reached!("apiserver.update.finalized");
            (
                Verb::Delete,
                RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::Key(key.clone()), prev_kv: false }),
            )
        } else {
            (verb, self.put_object(&key, &mut updated).await?)
        };
        let write = Write {
            verb,
            compare: Compare::mod_revision(&key, CompareOp::Equal, precondition),
            success,
            key,
            fence,
            namespace: None,
            written: self.metadata_to_record(&updated, verb == Verb::Delete),
        };
        match self.commit(user, write).await? {
            Outcome::Committed(revision) => {
                // The update that removed a Service frees its ClusterIP, as a delete does.
                if let (Verb::Delete, Object::Service(service)) = (verb, &updated) {
                    self.release_service_ip(&service.spec.cluster_ip).await;
                }
                updated.metadata_mut().resource_version = revision;
                Ok(Some(updated))
            }
            Outcome::ObjectChanged(None) => Err(not_found(resource, &namespace, &name)),
            Outcome::ObjectChanged(Some(_)) => Ok(None),
        }
    }

    /// Delete (Kubernetes `registry/generic/registry/store.go`, `Store.Delete`). The
    /// object's garbage-collection finalizers are first set from `options`'
    /// propagation policy (`deletionFinalizersForGarbageCollection`: `orphan` for Orphan,
    /// `foregroundDeletion` for Foreground, neither for Background; without a policy, the
    /// ones it already carries). If it then has no finalizer it is removed; otherwise it is
    /// only marked (`updateForGracefulDeletionAndFinalizers`): `deletionTimestamp` set
    /// (kept if already set), finalizers written, and the update that later empties its
    /// finalizers removes it ([`Registry::update`]). A delete of an object already marked
    /// with the same finalizers writes it again unchanged (Kubernetes skips that no-op
    /// write; see the comment in the code).
    ///
    /// Returns the object's last state with the deletion's revision as its
    /// resourceVersion (as the Deleted watch event carries it), or the marked object.
    /// The marking write is recorded as an update of the key, the removal as a delete:
    /// the history says what the store did.
    #[allow(clippy::too_many_arguments)]
    pub async fn delete(
        &self,
        user: &UserInfo,
        decision: &Decision,
        resource: Resource,
        namespace: &str,
        name: &str,
        precondition: Option<Revision>,
        options: &DeleteOptions,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        validate_fence(fence.as_ref())?;
        let key = resource.key(namespace, name);
        for _attempt in 0..MAX_WRITE_ATTEMPTS {
            let stored_kv = self.read_key(&key).await?.ok_or_else(|| not_found(resource, namespace, name))?;
            let stored = decode(&stored_kv)?;
            check_node_restriction(decision, &stored, user, Verb::Delete)?;
            check_delete_preconditions(&stored, stored_kv.mod_revision, precondition, options)?;
            let finalizers = finalizers_after_delete(stored.metadata(), options.propagation_policy);
            let (verb, success, mut result) = if finalizers.is_empty() {
                let remove =
                    RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::Key(key.clone()), prev_kv: false });
                (Verb::Delete, remove, stored)
            } else {
                if stored.metadata().is_being_deleted() && finalizers == stored.metadata().finalizers {
                    // Kubernetes skips this write as a no-op and answers with the stored
                    // object. kubesim writes it again, unchanged, so that every write it
                    // acknowledges names a revision at which it committed the key (the
                    // evidence `no-acknowledged-write-lost` pairs answers with); a retried
                    // delete whose first answer was lost then reads as one more write.
                    coverage::reached!("apiserver.delete.already-marked");
                } else {
                    coverage::reached!("apiserver.delete.marked");
                }
                let mut marked = stored;
                let meta = marked.metadata_mut();
                meta.finalizers = finalizers;
                meta.deletion_timestamp_ms.get_or_insert(self.clock.now_ms());
                (Verb::Update, self.put_object(&key, &mut marked).await?, marked)
            };
            let write = Write {
                verb,
                compare: Compare::mod_revision(&key, CompareOp::Equal, stored_kv.mod_revision),
                success,
                key: key.clone(),
                fence: fence.clone(),
                namespace: None,
                written: self.metadata_to_record(&result, verb == Verb::Delete),
            };
            match self.commit(user, write).await? {
                Outcome::Committed(revision) => {
                    if let (Verb::Delete, Object::Service(service)) = (verb, &result) {
                        self.release_service_ip(&service.spec.cluster_ip).await;
                    }
                    result.metadata_mut().resource_version = revision;
                    return Ok(result);
                }
                Outcome::ObjectChanged(None) => return Err(not_found(resource, namespace, name)),
                Outcome::ObjectChanged(Some(_)) => continue,
            }
        }
        Err(gave_up(resource, namespace, name))
    }

    /// pods/binding: sets `spec.nodeName` once. 409 when the pod is already bound.
    pub async fn bind(
        &self,
        user: &UserInfo,
        namespace: &str,
        pod_name: &str,
        node: &str,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        validate_fence(fence.as_ref())?;
        admission::validate_dns1123_subdomain("target.name", node)?;
        let key = Resource::Pods.key(namespace, pod_name);
        for _attempt in 0..MAX_WRITE_ATTEMPTS {
            let stored_kv = self.read_key(&key).await?.ok_or_else(|| not_found(Resource::Pods, namespace, pod_name))?;
            let mut pod = decode(&stored_kv)?
                .into_pod()
                .ok_or_else(|| ApiError::Internal { reason: format!("{key} does not hold a pod") })?;
            if let Some(bound_to) = &pod.spec.node_name {
                coverage::reached!("apiserver.bind.already-bound");
                return Err(ApiError::Conflict {
                    reason: format!("pod {pod_name} is already assigned to node {bound_to}"),
                });
            }
            pod.spec.node_name = Some(node.to_string());
            let mut bound = Object::Pod(pod);
            let write = Write {
                verb: Verb::Bind,
                compare: Compare::mod_revision(&key, CompareOp::Equal, stored_kv.mod_revision),
                success: put(&key, encode_in_place(&mut bound)?),
                key: key.clone(),
                fence: fence.clone(),
                namespace: None,
                written: self.metadata_to_record(&bound, false),
            };
            match self.commit(user, write).await? {
                Outcome::Committed(revision) => {
                    bound.metadata_mut().resource_version = revision;
                    return Ok(bound);
                }
                Outcome::ObjectChanged(None) => return Err(not_found(Resource::Pods, namespace, pod_name)),
                // Changed but perhaps still unbound (a status update): read again.
                Outcome::ObjectChanged(Some(_)) => continue,
            }
        }
        Err(gave_up(Resource::Pods, namespace, pod_name))
    }

    /// Creates namespace `name` unless it exists (kube-apiserver's bootstrap controller
    /// creates `default`, `kube-system`, `kube-public` and `kube-node-lease`).
    pub async fn ensure_namespace(&self, user: &UserInfo, name: &str) -> Result<(), ApiError> {
        let namespace = Namespace { metadata: ObjectMeta::named("", name) };
        match self.create(user, namespace.into(), None).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs one conditional write with its fence and namespace preconditions in the same
    /// transaction. Fenced and NamespaceMissing are answered here; the object's own
    /// precondition failure is left to the verb to name.
    async fn commit(&self, user: &UserInfo, write: Write) -> Result<Outcome, ApiError> {
        let lease = match &write.success {
            RequestOp::LeasedPut(leased) => Some(leased.lease),
            _ => None,
        };
        let mut compare = vec![write.compare];
        let mut failure = vec![read(&write.key)];
        let namespace_key = write.namespace.as_ref().map(|ns| Resource::Namespaces.key("", ns));
        if let Some(ns_key) = &namespace_key {
            compare.push(Compare::version(ns_key, CompareOp::Greater, 0));
            failure.push(read(ns_key));
        }
        let lease_key = write.fence.as_ref().map(|f| Resource::Leases.key(&f.namespace, &f.name));
        if let (Some(fence), Some(lease_key)) = (&write.fence, &lease_key) {
            compare.push(Compare::mod_revision(lease_key, CompareOp::Equal, fence.resource_version));
            failure.push(read(lease_key));
        }
        let txn = TxnRequest { compare, success: vec![write.success], failure };

        if self.bugs.ack_before_commit && matches!(write.verb, Verb::Create | Verb::Update | Verb::UpdateStatus) {
            return Ok(self.commit_in_background(user, write.verb, write.key, txn));
        }

        let response = self.backend.txn(txn).await.map_err(api_error_from_store)?;
        self.saw_revision(response.header.revision);
        if response.succeeded {
            self.observe(user, write.verb, &write.key, response.header.revision);
            if let (Some((meta, removed)), Some(observer)) = (&write.written, &self.observer) {
                observer.object_written(&self.apiserver_name, &write.key, response.header.revision, meta, *removed);
            }
            if let (Some(lease), Some(observer)) = (lease, &self.observer) {
                observer.attached_to_lease(&self.apiserver_name, &write.key, response.header.revision, lease);
            }
            return Ok(Outcome::Committed(response.header.revision));
        }
        // The failure branch read [object, namespace?, lease?] at the revision the
        // compares failed at. Name the first precondition that failed, fence first: a
        // deposed leader must learn it is deposed.
        let mut reads = response.responses.into_iter().map(|r| match r {
            ResponseOp::Range(range) => Ok(range.kvs.into_iter().next()),
            other => Err(ApiError::Internal { reason: format!("unexpected txn failure response {other:?}") }),
        });
        let mut next_read = || {
            reads.next().unwrap_or_else(|| {
                Err(ApiError::Internal { reason: "txn failure branch answered too few reads".into() })
            })
        };
        let object_kv = next_read()?;
        let namespace_kv = match &write.namespace {
            Some(_) => Some(next_read()?),
            None => None,
        };
        if let Some(fence) = &write.fence {
            let lease_kv = next_read()?;
            if lease_kv.map(|kv| kv.mod_revision) != Some(fence.resource_version) {
                coverage::reached!("apiserver.write.fenced");
                return Err(ApiError::Fenced {
                    namespace: fence.namespace.clone(),
                    name: fence.name.clone(),
                    resource_version: fence.resource_version,
                });
            }
        }
        if let (Some(ns), Some(None)) = (&write.namespace, &namespace_kv) {
            return Err(not_found(Resource::Namespaces, "", ns));
        }
        Ok(Outcome::ObjectChanged(object_kv))
    }

    /// PLANTED BUG (`ApiServerBugs::ack_before_commit`): acknowledge the write before the
    /// store has committed it, with a guessed revision. If the transaction then fails, the
    /// client was told its write succeeded when it did not.
    fn commit_in_background(&self, user: &UserInfo, verb: Verb, key: String, txn: TxnRequest) -> Outcome {
        let guessed_revision = self.highest_revision_seen.load(Ordering::Relaxed) + 1;
        let registry = self.clone();
        let user = user.clone();
        madsim::task::spawn(async move {
            match registry.backend.txn(txn).await {
                Ok(response) if response.succeeded => {
                    registry.saw_revision(response.header.revision);
                    registry.observe(&user, verb, &key, response.header.revision);
                }
                Ok(_) => tracing::debug!(%key, "acknowledged write was refused by the store"),
                Err(e) => tracing::debug!(%key, "acknowledged write failed in the store: {e}"),
            }
        });
        Outcome::Committed(guessed_revision)
    }

    /// The metadata [`Write::written`] carries: only for an observer that records it, and
    /// never of Leases and Events (renewed heartbeats and expiring reports, which own
    /// nothing and are owned by nothing here).
    fn metadata_to_record(&self, object: &Object, removed: bool) -> Option<(ObjectMeta, bool)> {
        let observer = self.observer.as_ref()?;
        if !observer.records_object_metadata() || matches!(object.resource(), Resource::Leases | Resource::Events) {
            return None;
        }
        Some((object.metadata().clone(), removed))
    }

    fn observe(&self, user: &UserInfo, verb: Verb, key: &str, revision: Revision) {
        if let Some(observer) = &self.observer {
            observer.store_write(&self.apiserver_name, &user.name, verb, key, revision);
        }
    }
}

fn gave_up(resource: Resource, namespace: &str, name: &str) -> ApiError {
    ApiError::Conflict {
        reason: format!("{resource} {namespace}/{name} kept changing: gave up after {MAX_WRITE_ATTEMPTS} attempts"),
    }
}

/// A delete's preconditions (Kubernetes `storage.Preconditions`: resourceVersion and uid),
/// checked against the object as stored; 409 Conflict when one does not hold.
fn check_delete_preconditions(
    stored: &Object,
    mod_revision: Revision,
    precondition: Option<Revision>,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let meta = stored.metadata();
    let describe = || format!("{} {}/{}", stored.resource(), meta.namespace, meta.name);
    if let Some(expected) = precondition {
        if mod_revision != expected {
            return Err(ApiError::Conflict {
                reason: format!(
                    "precondition failed for {}: resourceVersion is {mod_revision}, not {expected}",
                    describe()
                ),
            });
        }
    }
    if let Some(uid) = &options.uid_precondition {
        if *uid != meta.uid {
            coverage::reached!("apiserver.delete.uid-precondition-failed");
            return Err(ApiError::Conflict {
                reason: format!(
                    "Precondition failed for {}: UID in precondition: {uid}, UID in object meta: {}",
                    describe(),
                    meta.uid
                ),
            });
        }
    }
    Ok(())
}

/// The finalizers a delete leaves on the object (Kubernetes `store.go`,
/// `deletionFinalizersForGarbageCollection` with `shouldOrphanDependents` and
/// `shouldDeleteDependents`): the garbage collector's two are dropped and added back as
/// the policy asks; without a policy, the ones already there stay (the default policy,
/// Background, adds none). Every other finalizer stays, in order.
pub fn finalizers_after_delete(meta: &ObjectMeta, policy: Option<PropagationPolicy>) -> Vec<String> {
    let (orphan, foreground) = match policy {
        Some(PropagationPolicy::Orphan) => (true, false),
        Some(PropagationPolicy::Foreground) => (false, true),
        Some(PropagationPolicy::Background) => (false, false),
        None => (meta.has_finalizer(FINALIZER_ORPHAN), meta.has_finalizer(FINALIZER_FOREGROUND_DELETION)),
    };
    let mut finalizers: Vec<String> = meta
        .finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND_DELETION)
        .cloned()
        .collect();
    if orphan {
        finalizers.push(FINALIZER_ORPHAN.to_string());
    }
    if foreground {
        finalizers.push(FINALIZER_FOREGROUND_DELETION.to_string());
    }
    finalizers
}

/// Kubernetes `ValidateObjectMetaUpdate`: once an object is marked for deletion no new
/// finalizer may be added (it could otherwise be kept forever).
fn check_finalizers_update(stored: &ObjectMeta, updated: &ObjectMeta) -> Result<(), ApiError> {
    if !stored.is_being_deleted() {
        return Ok(());
    }
    match updated.finalizers.iter().find(|f| !stored.finalizers.contains(f)) {
        None => Ok(()),
        Some(added) => Err(ApiError::Invalid {
            field: "metadata.finalizers".into(),
            reason: format!(
                "no new finalizers can be added if the object is being deleted (found new finalizer {added})"
            ),
        }),
    }
}

/// A fence names an existing lease version; resourceVersion 0 would match a missing lease.
fn validate_fence(fence: Option<&LeaseFence>) -> Result<(), ApiError> {
    match fence {
        Some(f) if f.resource_version <= 0 => Err(ApiError::Invalid {
            field: "fence.resourceVersion".into(),
            reason: "must be the lease's current resourceVersion (> 0)".into(),
        }),
        _ => Ok(()),
    }
}

/// NodeRestriction: a kubelet may touch a pod only if the stored pod is bound to it.
fn check_node_restriction(decision: &Decision, stored: &Object, user: &UserInfo, verb: Verb) -> Result<(), ApiError> {
    let Decision::AllowIfPodBoundTo(node) = decision else {
        return Ok(());
    };
    let bound_to = stored.as_pod().and_then(|p| p.spec.node_name.as_deref());
    if bound_to == Some(node.as_str()) {
        return Ok(());
    }
    let meta = stored.metadata();
    Err(ApiError::Forbidden {
        user: user.name.clone(),
        verb,
        resource: stored.resource(),
        reason: format!(
            "pod {}/{} is bound to {}, not to node {node}",
            meta.namespace,
            meta.name,
            bound_to.unwrap_or("no node")
        ),
    })
}

/// Every custom kind has the status subresource (a CRD's `subresources.status`).
fn has_status(resource: Resource) -> bool {
    matches!(
        resource,
        Resource::Nodes | Resource::Pods | Resource::ReplicaSets | Resource::Deployments | Resource::Custom(_)
    )
}

/// A random UUID-shaped uid, from the simulator's seeded RNG (deterministic per seed).
fn new_uid() -> String {
    use madsim::rand::Rng;
    let bits: u128 = madsim::rand::thread_rng().gen();
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// What the apiserver sets on create (Kubernetes `BeforeCreate` + each strategy's
/// `PrepareForCreate`): uid, creation time, generation 1; workloads and pods start with an
/// empty status (a pod starts Pending).
fn prepare_for_create(object: &mut Object, now_ms: u64, uid: String) {
    let meta = object.metadata_mut();
    meta.uid = uid;
    meta.creation_timestamp_ms = now_ms;
    meta.generation = 1;
    meta.resource_version = 0;
    meta.deletion_timestamp_ms = None;
    match object {
        Object::Pod(p) => p.status = Default::default(),
        Object::ReplicaSet(rs) => rs.status = Default::default(),
        Object::Deployment(d) => d.status = Default::default(),
        Object::Custom(c) => c.status = api::RawJson::null(),
        _ => {}
    }
}

/// Update: the client's spec and metadata, with the stored status and the fields only the
/// apiserver sets (uid, creation time, deletion time); generation +1 when the spec changed.
/// A pod's `spec.nodeName` may only be set by a binding.
fn merge_update(stored: &Object, mut updated: Object) -> Result<Object, ApiError> {
    let spec_changed = match (stored, &mut updated) {
        (Object::Pod(s), Object::Pod(u)) => {
            if s.spec.node_name != u.spec.node_name {
                return Err(ApiError::Invalid {
                    field: "spec.nodeName".into(),
                    reason: "field is immutable: a pod's node is set only by binding".into(),
                });
            }
            u.status = s.status.clone();
            s.spec != u.spec
        }
        (Object::Node(s), Object::Node(u)) => {
            u.status = s.status.clone();
            s.spec != u.spec
        }
        (Object::ReplicaSet(s), Object::ReplicaSet(u)) => {
            u.status = s.status.clone();
            s.spec != u.spec
        }
        (Object::Deployment(s), Object::Deployment(u)) => {
            u.status = s.status.clone();
            s.spec != u.spec
        }
        (Object::Lease(s), Object::Lease(u)) => s.spec != u.spec,
        (Object::Service(s), Object::Service(u)) => {
            // Kubernetes `patchAllocatedValues` keeps an omitted clusterIP; changing it is
            // refused (`ValidateServiceUpdate`: the allocation is not moved).
            if u.spec.cluster_ip.is_empty() {
                u.spec.cluster_ip = s.spec.cluster_ip.clone();
            }
            if u.spec.cluster_ip != s.spec.cluster_ip {
                return Err(ApiError::Invalid { field: "spec.clusterIP".into(), reason: "field is immutable".into() });
            }
            s.spec != u.spec
        }
        (Object::Custom(s), Object::Custom(u)) if s.definition == u.definition => {
            u.status = s.status.clone();
            s.spec != u.spec
        }
        (Object::RoleBinding(s), Object::RoleBinding(u)) => {
            check_role_ref_unchanged(&s.role_ref, &u.role_ref)?;
            false
        }
        (Object::ClusterRoleBinding(s), Object::ClusterRoleBinding(u)) => {
            check_role_ref_unchanged(&s.role_ref, &u.role_ref)?;
            false
        }
        (Object::Namespace(_), Object::Namespace(_))
        | (Object::Role(_), Object::Role(_))
        | (Object::ClusterRole(_), Object::ClusterRole(_))
        | (Object::ConfigMap(_), Object::ConfigMap(_))
        | (Object::Secret(_), Object::Secret(_))
        | (Object::Endpoints(_), Object::Endpoints(_))
        | (Object::Event(_), Object::Event(_)) => false,
        _ => return Err(kind_mismatch(stored, &updated)),
    };
    let stored_meta = stored.metadata();
    let meta = updated.metadata_mut();
    meta.uid = stored_meta.uid.clone();
    meta.creation_timestamp_ms = stored_meta.creation_timestamp_ms;
    meta.deletion_timestamp_ms = stored_meta.deletion_timestamp_ms;
    meta.generation = stored_meta.generation + i64::from(spec_changed);
    Ok(updated)
}

/// Kubernetes' `ValidateRoleBindingUpdate`: a binding's roleRef cannot change (delete and
/// create the binding instead), so a grant is never silently redirected to another role.
fn check_role_ref_unchanged(stored: &api::rbac::RoleRef, updated: &api::rbac::RoleRef) -> Result<(), ApiError> {
    if stored == updated {
        return Ok(());
    }
    Err(ApiError::Invalid { field: "roleRef".into(), reason: "cannot change roleRef".into() })
}

/// UpdateStatus: the stored object with the client's status.
fn merge_status(stored: &Object, updated: Object) -> Result<Object, ApiError> {
    let mut merged = stored.clone();
    match (&mut merged, updated) {
        (Object::Pod(m), Object::Pod(u)) => m.status = u.status,
        (Object::Node(m), Object::Node(u)) => m.status = u.status,
        (Object::ReplicaSet(m), Object::ReplicaSet(u)) => m.status = u.status,
        (Object::Deployment(m), Object::Deployment(u)) => m.status = u.status,
        (Object::Custom(m), Object::Custom(u)) if m.definition == u.definition => m.status = u.status,
        (_, updated) => return Err(kind_mismatch(stored, &updated)),
    }
    Ok(merged)
}

fn kind_mismatch(stored: &Object, updated: &Object) -> ApiError {
    ApiError::Internal {
        reason: format!(
            "{} is stored as a {} but the request carries a {}",
            stored.key(),
            stored.resource().kind(),
            updated.resource().kind()
        ),
    }
}
