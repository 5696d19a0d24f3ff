//! The endpoints controller (Kubernetes `pkg/controller/endpoint`): keeps each Service's
//! Endpoints (same namespace and name) equal to the Ready pods its selector matches.
//!
//! - A pod is a backend when it matches the Service's selector, is bound to a node, runs
//!   (`phase == Running`, kubesim's readiness: its kubelet started it) and is not being
//!   deleted. Addresses are sorted by pod name, so equal sets are equal objects and a sync
//!   with nothing to change writes nothing.
//! - A Service with no Endpoints gets them created; stale Endpoints are updated with the
//!   resourceVersion the cache shows (409 Conflict: the next sync reads again).
//! - Endpoints whose Service is gone are deleted (Kubernetes' `syncService` on NotFound),
//!   by a second controller on the runtime whose primary is Endpoints.
//!
//! Both run inside the controller-manager's leadership term, on its shared informers, and
//! write under its lease fence, as the deployment and replicaset controllers do. The
//! controller-manager starts them only when its configuration enables them
//! ([`EndpointsControllerConfig::enabled`]): a cluster without Services runs no informer of
//! Services or Endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::{
    selector_matches, ApiClient, ApiError, EndpointAddress, Endpoints, Object, ObjectMeta, PodPhase, Resource, Service,
};

use crate::driver::{retry_unless_not_leader, SyncError, TaskGroup};
use crate::informer::{object_key, Informer};
use crate::leader_election::LeaderHandle;
use crate::runtime::{Action, Context, Controller, ControllerConfig, ObjectRef};
use crate::workqueue::WorkQueueConfig;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointsControllerConfig {
    /// Whether the controller-manager runs the controller (off by default: see the module
    /// documentation).
    pub enabled: bool,
    /// Every Service is re-synced this often (as the other controllers).
    pub resync_period_ms: u64,
    pub workqueue: WorkQueueConfig,
}

impl Default for EndpointsControllerConfig {
    fn default() -> Self {
        Self { enabled: false, resync_period_ms: 30_000, workqueue: WorkQueueConfig::default() }
    }
}

/// The Endpoints `service` should have, given every cached pod: the pure core.
pub fn desired_endpoints<'a>(service: &Service, pods: impl Iterator<Item = &'a Object>) -> Endpoints {
    let mut addresses: Vec<EndpointAddress> = pods
        .filter_map(Object::as_pod)
        .filter(|pod| {
            pod.metadata.namespace == service.metadata.namespace
                && pod.metadata.deletion_timestamp_ms.is_none()
                && pod.status.phase == PodPhase::Running
                && selector_matches(&service.spec.selector, &pod.metadata.labels)
        })
        .filter_map(|pod| {
            let node = pod.spec.node_name.clone()?;
            Some(EndpointAddress { pod: pod.metadata.name.clone(), node })
        })
        .collect();
    addresses.sort();
    Endpoints {
        metadata: ObjectMeta::named(&service.metadata.namespace, &service.metadata.name),
        addresses,
        ports: service.spec.ports.clone(),
    }
}

/// The endpoints controller's two halves, for one leadership term.
pub struct EndpointsController {
    pub config: EndpointsControllerConfig,
    pub client: ApiClient,
    pub leader: LeaderHandle,
    pub services: Informer,
    pub endpoints: Informer,
    pub pods: Informer,
}

impl EndpointsController {
    /// Subscribes to the (shared, not yet started) informers and spawns the workers and
    /// resyncs into `tasks`.
    pub fn start(self, tasks: &mut TaskGroup) {
        let config = ControllerConfig {
            workqueue: self.config.workqueue.clone(),
            resync_period_ms: Some(self.config.resync_period_ms),
            ..ControllerConfig::default()
        };
        let informers = BTreeMap::from([
            (Resource::Services, self.services.clone()),
            (Resource::Endpoints, self.endpoints.clone()),
            (Resource::Pods, self.pods.clone()),
        ]);
        // A pod event concerns the Services of its namespace whose selector matches it
        // (Kubernetes' `getPodServiceMemberships`, from the Service lister).
        let services = self.services.clone();
        let services_of_pod = move |pod: &Object| -> Vec<ObjectRef> {
            let meta = pod.metadata();
            services.with_objects(|objects| {
                objects
                    .filter_map(Object::as_service)
                    .filter(|s| {
                        s.metadata.namespace == meta.namespace && selector_matches(&s.spec.selector, &meta.labels)
                    })
                    .map(|s| ObjectRef::new(&s.metadata.namespace, &s.metadata.name))
                    .collect()
            })
        };
        let same_name = |object: &Object| vec![ObjectRef::from_object(object)];
        Controller::new(Resource::Services, "")
            .watches(Resource::Pods, services_of_pod)
            .watches(Resource::Endpoints, same_name)
            .with_config(config.clone())
            .start(
                tasks,
                &self.client,
                Some(self.leader.clone()),
                &informers,
                Arc::new(()),
                sync_service,
                retry_unless_not_leader,
            )
            .expect("the endpoints controller is given the informers it names");
        Controller::new(Resource::Endpoints, "")
            .watches(Resource::Services, same_name)
            .with_config(config)
            .start(
                tasks,
                &self.client,
                Some(self.leader),
                &informers,
                Arc::new(()),
                delete_orphan,
                retry_unless_not_leader,
            )
            .expect("the endpoints cleanup is given the informers it names");
    }
}

/// One Service as cached: its Endpoints made equal to its Ready pods.
async fn sync_service(object: Arc<Object>, ctx: Arc<Context<()>>) -> Result<Action, SyncError> {
    let Some(service) = object.as_service() else {
        return Ok(Action::AwaitChange);
    };
    let desired = ctx.cache(Resource::Pods).with_objects(|pods| desired_endpoints(service, pods));
    let key = object_key(&service.metadata.namespace, &service.metadata.name);
    let current = ctx.cache(Resource::Endpoints).get(&key).and_then(Object::into_endpoints);
    let fence = ctx.write_fence()?;
    let client = ctx.client();
    let result = match current {
        None => client.create(Object::Endpoints(desired), fence).await.map(drop),
        Some(current) if current.addresses == desired.addresses && current.ports == desired.ports => {
            return Ok(Action::AwaitChange)
        }
        Some(current) => {
            let mut updated = desired;
            updated.metadata = current.metadata;
            client.update(Object::Endpoints(updated), fence).await.map(drop)
        }
    };
    match result {
        Ok(()) => {
            coverage::reached!("controllers.endpoints.updated");
            Ok(Action::AwaitChange)
        }
        // The cache is behind: its watch brings the change, which enqueues the Service.
        Err(ApiError::AlreadyExists { .. } | ApiError::Conflict { .. }) => Ok(Action::Backoff),
        Err(e) => Err(e.into()),
    }
}

/// One Endpoints object as cached: deleted when the cache holds no Service of its name.
async fn delete_orphan(object: Arc<Object>, ctx: Arc<Context<()>>) -> Result<Action, SyncError> {
    let meta = object.metadata();
    if ctx.cache(Resource::Services).get(&object_key(&meta.namespace, &meta.name)).is_some() {
        return Ok(Action::AwaitChange);
    }
    let fence = ctx.write_fence()?;
    let precondition = Some(meta.resource_version);
    match ctx.client().delete(Resource::Endpoints, &meta.namespace, &meta.name, precondition, fence).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(Action::AwaitChange),
        Err(ApiError::Conflict { .. }) => Ok(Action::Backoff),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{Labels, Pod};

    fn pod(name: &str, app: &str, node: Option<&str>, phase: PodPhase) -> Object {
        let mut metadata = ObjectMeta::named("default", name);
        metadata.labels = Labels::from([("app".to_string(), app.to_string())]);
        let mut pod = Pod { metadata, ..Default::default() };
        pod.spec.node_name = node.map(str::to_string);
        pod.status.phase = phase;
        Object::Pod(pod)
    }

    #[test]
    fn endpoints_are_the_running_pods_the_selector_matches_sorted() {
        let mut service = Service { metadata: ObjectMeta::named("default", "web"), ..Default::default() };
        service.spec.selector = Labels::from([("app".to_string(), "web".to_string())]);
        let mut deleting = pod("web-d", "web", Some("kubelet-0"), PodPhase::Running);
        deleting.metadata_mut().deletion_timestamp_ms = Some(1);
        let pods = [
            pod("web-b", "web", Some("kubelet-1"), PodPhase::Running),
            pod("web-a", "web", Some("kubelet-0"), PodPhase::Running),
            pod("web-c", "web", Some("kubelet-2"), PodPhase::Pending),
            pod("db-a", "db", Some("kubelet-2"), PodPhase::Running),
            deleting,
        ];
        let endpoints = desired_endpoints(&service, pods.iter());
        let names: Vec<&str> = endpoints.addresses.iter().map(|a| a.pod.as_str()).collect();
        assert_eq!(names, ["web-a", "web-b"]);
        assert_eq!(endpoints.metadata.name, "web");
    }
}
