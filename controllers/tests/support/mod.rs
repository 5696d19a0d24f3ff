//! A fake apiserver for the controllers' end-to-end tests: one BTreeMap of objects with
//! a revision counter, served over madsim RPC. It keeps the rules the controllers rely
//! on (create 409 AlreadyExists, update/update_status 409 Conflict on a stale
//! resourceVersion, bind sets spec.nodeName once, lease fences, long-poll watch) and
//! nothing else: no authentication, no authorization, no compaction, no store. It is test
//! support, not a product; the real apiserver lives in the `apiserver` crate.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{
    ApiError, ApiRequest, ApiResponse, ApiResult, Clock, LeaseFence, Object, Operation, Resource, ResourceVersion,
    WatchEvent, WatchEventKind,
};

#[derive(Default)]
pub struct FakeApiServer {
    state: Mutex<FakeState>,
}

#[derive(Default)]
pub struct FakeState {
    pub revision: ResourceVersion,
    pub objects: BTreeMap<String, Object>,
    /// Every event ever (no compaction).
    pub events: Vec<WatchEvent>,
    pub n_fenced_writes: u64,
    next_uid: u64,
}

fn not_found(resource: Resource, namespace: &str, name: &str) -> ApiError {
    ApiError::NotFound { resource, namespace: namespace.into(), name: name.into() }
}

/// Status-subresource semantics: `stored` with `incoming`'s status.
fn with_status_of(stored: &Object, incoming: &Object) -> Option<Object> {
    let mut merged = stored.clone();
    match (&mut merged, incoming) {
        (Object::Pod(s), Object::Pod(i)) => s.status = i.status.clone(),
        (Object::Node(s), Object::Node(i)) => s.status = i.status.clone(),
        (Object::ReplicaSet(s), Object::ReplicaSet(i)) => s.status = i.status.clone(),
        (Object::Deployment(s), Object::Deployment(i)) => s.status = i.status.clone(),
        (Object::Custom(s), Object::Custom(i)) => s.status = i.status.clone(),
        _ => return None,
    }
    Some(merged)
}

/// Update semantics: `incoming`'s spec and metadata with `stored`'s status and identity.
fn with_spec_of(stored: &Object, incoming: &Object) -> Object {
    let mut merged = with_status_of(incoming, stored).unwrap_or_else(|| incoming.clone());
    let meta = merged.metadata_mut();
    meta.uid = stored.metadata().uid.clone();
    meta.creation_timestamp_ms = stored.metadata().creation_timestamp_ms;
    meta.generation = stored.metadata().generation;
    merged
}

impl FakeState {
    fn check_fence(&mut self, fence: Option<&LeaseFence>) -> Result<(), ApiError> {
        let Some(fence) = fence else { return Ok(()) };
        let key = Resource::Leases.key(&fence.namespace, &fence.name);
        let current = self.objects.get(&key).map(|o| o.metadata().resource_version);
        if current != Some(fence.resource_version) {
            self.n_fenced_writes += 1;
            return Err(ApiError::Fenced {
                namespace: fence.namespace.clone(),
                name: fence.name.clone(),
                resource_version: fence.resource_version,
            });
        }
        Ok(())
    }

    fn commit(&mut self, kind: WatchEventKind, mut object: Object) -> Object {
        self.revision += 1;
        object.metadata_mut().resource_version = self.revision;
        let key = object.key();
        match kind {
            WatchEventKind::Deleted => {
                self.objects.remove(&key);
            }
            _ => {
                self.objects.insert(key, object.clone());
            }
        }
        self.events.push(WatchEvent { kind, object: object.clone(), resource_version: self.revision });
        object
    }

    fn stored(&self, object: &Object) -> Result<Object, ApiError> {
        let m = object.metadata();
        self.objects.get(&object.key()).cloned().ok_or_else(|| not_found(object.resource(), &m.namespace, &m.name))
    }

    fn check_precondition(stored: &Object, incoming: &Object) -> Result<(), ApiError> {
        let (have, want) = (stored.metadata().resource_version, incoming.metadata().resource_version);
        if have != want {
            return Err(ApiError::Conflict {
                reason: format!("{}: resourceVersion {want} is stale (now {have})", incoming.key()),
            });
        }
        Ok(())
    }

    /// Everything but Watch.
    pub fn apply(&mut self, operation: Operation) -> ApiResult {
        if let Some(fence) = operation.fence().cloned() {
            self.check_fence(Some(&fence))?;
        }
        match operation {
            Operation::Get { resource, namespace, name } => self
                .objects
                .get(&resource.key(&namespace, &name))
                .cloned()
                .map(ApiResponse::Object)
                .ok_or_else(|| not_found(resource, &namespace, &name)),
            Operation::List { resource, namespace } => {
                let prefix = resource.namespace_prefix(&namespace);
                let items = self
                    .objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(ApiResponse::List { items, resource_version: self.revision })
            }
            Operation::Create { mut object, .. } => {
                if self.objects.contains_key(&object.key()) {
                    let m = object.metadata();
                    return Err(ApiError::AlreadyExists {
                        resource: object.resource(),
                        namespace: m.namespace.clone(),
                        name: m.name.clone(),
                    });
                }
                self.next_uid += 1;
                let uid = format!("uid-{}", self.next_uid);
                let meta = object.metadata_mut();
                meta.uid = uid;
                meta.generation = 1;
                meta.creation_timestamp_ms = Clock::sim_now_ms();
                Ok(ApiResponse::Object(self.commit(WatchEventKind::Added, object)))
            }
            Operation::Update { object, .. } => {
                let stored = self.stored(&object)?;
                Self::check_precondition(&stored, &object)?;
                let merged = with_spec_of(&stored, &object);
                Ok(ApiResponse::Object(self.commit(WatchEventKind::Modified, merged)))
            }
            Operation::UpdateStatus { object, .. } => {
                let stored = self.stored(&object)?;
                Self::check_precondition(&stored, &object)?;
                let merged = with_status_of(&stored, &object).ok_or_else(|| ApiError::Invalid {
                    field: "status".into(),
                    reason: "this kind has no status".into(),
                })?;
                Ok(ApiResponse::Object(self.commit(WatchEventKind::Modified, merged)))
            }
            Operation::Delete { resource, namespace, name, precondition, .. } => {
                let key = resource.key(&namespace, &name);
                let stored = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, &namespace, &name))?;
                if precondition.is_some_and(|rv| rv != stored.metadata().resource_version) {
                    return Err(ApiError::Conflict { reason: format!("{key}: delete precondition failed") });
                }
                Ok(ApiResponse::Object(self.commit(WatchEventKind::Deleted, stored)))
            }
            Operation::Bind { namespace, pod, node, .. } => {
                let key = Resource::Pods.key(&namespace, &pod);
                let Some(Object::Pod(mut stored)) = self.objects.get(&key).cloned() else {
                    return Err(not_found(Resource::Pods, &namespace, &pod));
                };
                if let Some(bound) = &stored.spec.node_name {
                    return Err(ApiError::Conflict { reason: format!("pod {key} is already bound to {bound}") });
                }
                stored.spec.node_name = Some(node);
                Ok(ApiResponse::Object(self.commit(WatchEventKind::Modified, Object::Pod(stored))))
            }
            Operation::Watch { .. } => unreachable!("watch is served by FakeApiServer::watch"),
        }
    }

    fn events_after(&self, resource: Resource, namespace: &str, since: ResourceVersion) -> Vec<WatchEvent> {
        let first = self.events.partition_point(|e| e.resource_version <= since);
        self.events[first..]
            .iter()
            .filter(|e| {
                e.object.resource() == resource && (namespace.is_empty() || e.object.metadata().namespace == namespace)
            })
            .cloned()
            .collect()
    }
}

impl FakeApiServer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake apiserver state")
    }

    /// Runs an operation as if a client had sent it (the test's kubectl).
    pub fn apply(&self, operation: Operation) -> ApiResult {
        self.state().apply(operation)
    }

    pub fn objects(&self, resource: Resource) -> Vec<Object> {
        self.state().objects.values().filter(|o| o.resource() == resource).cloned().collect()
    }

    async fn watch(&self, resource: Resource, namespace: String, since: ResourceVersion, wait_ms: u64) -> ApiResult {
        let deadline_ms = Clock::sim_now_ms() + wait_ms;
        loop {
            let (events, revision) = {
                let state = self.state();
                (state.events_after(resource, &namespace, since), state.revision)
            };
            let now_ms = Clock::sim_now_ms();
            if !events.is_empty() || now_ms >= deadline_ms {
                return Ok(ApiResponse::Watch { events, resource_version: revision });
            }
            // Polling keeps the fake small; 10 ms is far below every controller period.
            madsim::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves the apiserver protocol on `addr`, on the current simulated node.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) {
        let endpoint = madsim::net::Endpoint::bind(addr).await.expect("bind fake apiserver");
        endpoint.add_rpc_handler(move |request: ApiRequest| {
            let server = self.clone();
            async move {
                match request.operation {
                    Operation::Watch { resource, namespace, since, wait_ms } => {
                        server.watch(resource, namespace, since, wait_ms).await
                    }
                    operation => server.apply(operation),
                }
            }
        });
        std::future::pending::<()>().await
    }
}
