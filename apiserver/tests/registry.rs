//! Apiserver semantics through `ApiServer::handle` over the in-memory store: the registry's
//! optimistic concurrency, authentication, authorization, admission, fencing, and the
//! planted bug.

mod common;

use api::{ApiError, LeaseFence, Object, Operation, PodPhase, ReplicaSet, ReplicaSetSpec, Resource, Verb};
use apiserver::{ApiServerBugs, Backend};
use common::*;
use store::api::{KeyRange, RangeRequest, StoreError};

#[test]
fn create_then_get_returns_the_object_at_its_mod_revision() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let created = c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        let meta = created.metadata();
        assert_eq!(meta.resource_version, c.revision());
        assert_eq!(meta.generation, 1);
        assert!(!meta.uid.is_empty());

        let stored =
            c.store.range(RangeRequest::new(KeyRange::Key("/registry/pods/default/web-1".into()))).await.unwrap();
        assert_eq!(stored.kvs[0].mod_revision, meta.resource_version);
        let value: Object = serde_json::from_slice(&stored.kvs[0].value).unwrap();
        assert_eq!(value.metadata().resource_version, 0, "rv is not stored");

        let got = c.get(Resource::Pods, "default", "web-1").await.unwrap();
        assert_eq!(got, created);

        let listed =
            c.call(ADMIN, Operation::List { resource: Resource::Pods, namespace: "default".into() }).await.unwrap();
        assert_eq!(listed, api::ApiResponse::List { items: vec![created], resource_version: c.revision() });
        check(&c.get(Resource::Pods, "default", "missing").await, "404 NotFound");
    });
}

#[test]
fn create_twice_is_already_exists() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        check(&c.create(ADMIN, pod("default", "web-1")).await, "ok");
        let before = c.revision();
        check(&c.create(ADMIN, pod("default", "web-1")).await, "409 AlreadyExists: pods default/web-1");
        assert_eq!(c.revision(), before);
    });
}

#[test]
fn update_with_a_stale_resource_version_is_a_conflict() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let v1 = c.create(ADMIN, deployment("default", "nginx", 1)).await.unwrap();
        let mut v2 = v1.clone().into_deployment().unwrap();
        v2.spec.replicas = 3;
        check(&c.update(ADMIN, v2.clone()).await, "ok");
        v2.spec.replicas = 5; // still carries v1's resourceVersion
        check(&c.update(ADMIN, v2).await, "409 Conflict");

        let mut gone = deployment("default", "gone", 1);
        gone.metadata.resource_version = 7;
        check(&c.update(ADMIN, gone).await, "404 NotFound");
    });
}

/// The planted bug `update-reapplies-on-conflict`: the same stale update is not refused
/// but written over the newer version, and the change in between (replicas 3) is lost
/// without a word to anyone.
#[test]
fn planted_update_reapplies_on_conflict_overwrites_the_version_in_between() {
    simulate(async {
        let c = Cluster::start(|config| config.planted_bugs.update_reapplies_on_conflict = true).await;
        let v1 = c.create(ADMIN, deployment("default", "nginx", 1)).await.unwrap();
        let mut v2 = v1.clone().into_deployment().unwrap();
        v2.spec.replicas = 3;
        let written = c.update(ADMIN, v2.clone()).await.unwrap();
        let mut stale = v1.into_deployment().unwrap();
        stale.metadata.labels.insert("edited".into(), "by-a-stale-reader".into());
        let reapplied = c.update(ADMIN, stale).await.unwrap();
        assert!(reapplied.metadata().resource_version > written.metadata().resource_version);
        let stored = c.get(Resource::Deployments, "default", "nginx").await.unwrap().into_deployment().unwrap();
        assert_eq!(stored.spec.replicas, 1, "the update to 3 replicas was lost");
    });
}

#[test]
fn update_without_a_resource_version_is_invalid() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, deployment("default", "nginx", 1)).await.unwrap();
        check(
            &c.update(ADMIN, deployment("default", "nginx", 2)).await,
            "422 Invalid: metadata.resourceVersion: must be specified for an update",
        );
    });
}

#[test]
fn update_keeps_status_and_bumps_generation_on_spec_change_status_update_keeps_spec() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let created = c.create(ADMIN, deployment("default", "nginx", 1)).await.unwrap();
        let mut d = created.into_deployment().unwrap();

        d.status.replicas = 1;
        d.spec.replicas = 9; // ignored by a status update
        let after_status = c.update_status(CONTROLLER_MANAGER, d.clone()).await.unwrap();
        let s = after_status.into_deployment().unwrap();
        assert_eq!((s.spec.replicas, s.status.replicas, s.metadata.generation), (1, 1, 1));

        let mut u = s.clone();
        u.metadata.labels = labels("relabelled");
        u.status.replicas = 42; // ignored by an update
        let relabelled = c.update(ADMIN, u).await.unwrap().into_deployment().unwrap();
        assert_eq!(relabelled.metadata.generation, 1, "metadata only: same generation");
        assert_eq!(relabelled.status.replicas, 1);
        assert_eq!(relabelled.metadata.uid, s.metadata.uid);

        let mut scaled = relabelled.clone();
        scaled.spec.replicas = 3;
        let scaled = c.update(ADMIN, scaled).await.unwrap().into_deployment().unwrap();
        assert_eq!((scaled.spec.replicas, scaled.metadata.generation), (3, 2));
        assert_eq!(scaled.metadata.creation_timestamp_ms, s.metadata.creation_timestamp_ms);
    });
}

#[test]
fn pod_status_starts_pending_and_node_name_is_set_only_by_binding() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let mut p = pod("default", "web-1");
        p.status.phase = PodPhase::Running;
        let created = c.create(ADMIN, p).await.unwrap().into_pod().unwrap();
        assert_eq!(created.status.phase, PodPhase::Pending);

        let mut moved = created.clone();
        moved.spec.node_name = Some("worker-1".into());
        check(&c.update(ADMIN, moved).await, "422 Invalid: spec.nodeName");
    });
}

#[test]
fn kubelet_may_only_touch_pods_bound_to_its_node() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        let bound = c.bind(SCHEDULER, "default", "web-1", "worker-2").await.unwrap();
        let mut running = bound.into_pod().unwrap();
        running.status.phase = PodPhase::Running;

        let before = c.revision();
        check(
            &c.update_status(KUBELET_1, running.clone()).await,
            "403 Forbidden: user system:node:worker-1 cannot UpdateStatus pods: pod default/web-1 is bound to worker-2",
        );
        let delete = |user| {
            c.object(
                user,
                Operation::Delete {
                    resource: Resource::Pods,
                    namespace: "default".into(),
                    name: "web-1".into(),
                    precondition: None,
                    options: Default::default(),
                    fence: None,
                },
            )
        };
        check(&delete(KUBELET_1).await, "403 Forbidden");
        check(&c.update(KUBELET_1, running.clone()).await, "403 Forbidden");
        assert_eq!(c.revision(), before, "a refused request changes nothing");

        check(&c.update_status(KUBELET_2, running).await, "ok");
        check(&delete(KUBELET_2).await, "ok");
        check(&c.get(Resource::Pods, "default", "web-1").await, "404 NotFound");
    });
}

#[test]
fn kubelet_manages_its_own_node_and_lease_only() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let node = |name: &str| api::Node { metadata: api::ObjectMeta::named("", name), ..Default::default() };
        check(&c.create(KUBELET_1, node("worker-1")).await, "ok");
        check(&c.create(KUBELET_1, node("worker-2")).await, "403 Forbidden");
        check(&c.create(KUBELET_1, lease("kube-node-lease", "worker-1", "worker-1")).await, "ok");
        check(&c.create(KUBELET_1, lease("kube-node-lease", "worker-2", "worker-1")).await, "403 Forbidden");
    });
}

#[test]
fn scheduler_binds_once_and_may_not_create_deployments() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        let bound = c.bind(SCHEDULER, "default", "web-1", "worker-1").await.unwrap();
        assert_eq!(bound.as_pod().unwrap().spec.node_name.as_deref(), Some("worker-1"));
        let before = c.revision();
        check(
            &c.bind(SCHEDULER, "default", "web-1", "worker-2").await,
            "409 Conflict: pod web-1 is already assigned to node worker-1",
        );
        check(&c.bind(SCHEDULER, "default", "nope", "worker-2").await, "404 NotFound");
        check(
            &c.create(SCHEDULER, deployment("default", "nginx", 1)).await,
            "403 Forbidden: user system:kube-scheduler cannot Create deployments",
        );
        check(&c.bind(CONTROLLER_MANAGER, "default", "web-1", "worker-2").await, "403 Forbidden");
        assert_eq!(c.revision(), before);
    });
}

#[test]
fn unknown_token_is_unauthorized() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let result = c
            .server
            .handle(api::ApiRequest {
                credential: api::Credential { user: ADMIN.into(), token: "guessed".into() },
                request_id: 1,
                operation: Operation::Create { object: pod("default", "web-1").into(), fence: None },
            })
            .await;
        check(&result, "401 Unauthorized");
    });
}

#[test]
fn admission_refuses_invalid_objects_without_writing() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let before = c.revision();
        check(&c.create(ADMIN, pod("default", "Web_1")).await, "422 Invalid: metadata.name");
        check(&c.create(ADMIN, deployment("default", "nginx", -1)).await, "422 Invalid: spec.replicas");
        let mut empty = pod("default", "empty");
        empty.spec.containers.clear();
        check(&c.create(ADMIN, empty).await, "422 Invalid: spec.containers");
        check(&c.create(ADMIN, pod("no-such-namespace", "web-1")).await, "404 NotFound: namespaces /no-such-namespace");
        assert_eq!(c.revision(), before);
    });
}

fn replica_set(name: &str) -> ReplicaSet {
    let d = deployment("default", name, 1);
    ReplicaSet {
        metadata: d.metadata,
        spec: ReplicaSetSpec { replicas: 1, selector: d.spec.selector, template: d.spec.template },
        ..ReplicaSet::default()
    }
}

#[test]
fn fenced_writes_need_the_current_lease_version() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let lease_v1 =
            c.create(CONTROLLER_MANAGER, lease("kube-system", "kube-controller-manager", "cm-a")).await.unwrap();
        let mut taken_over = lease_v1.clone().into_lease().unwrap();
        taken_over.spec.holder_identity = Some("cm-b".into());
        let lease_v2 = c.update(CONTROLLER_MANAGER, taken_over).await.unwrap();
        let fence = |lease: &Object| LeaseFence {
            namespace: "kube-system".into(),
            name: "kube-controller-manager".into(),
            resource_version: lease.metadata().resource_version,
        };

        let before = c.revision();
        let deposed = c
            .object(
                CONTROLLER_MANAGER,
                Operation::Create { object: replica_set("nginx-abc").into(), fence: Some(fence(&lease_v1)) },
            )
            .await;
        check(&deposed, "409 Conflict: fenced out, lease kube-system/kube-controller-manager");
        assert!(matches!(deposed, Err(ApiError::Fenced { .. })));
        assert_eq!(c.revision(), before, "a fenced write changes nothing");

        let leader = c
            .object(
                CONTROLLER_MANAGER,
                Operation::Create { object: replica_set("nginx-abc").into(), fence: Some(fence(&lease_v2)) },
            )
            .await;
        check(&leader, "ok");

        // Deletes (read, then conditional write) are fenced the same way.
        let result = c
            .object(
                CONTROLLER_MANAGER,
                Operation::Delete {
                    resource: Resource::ReplicaSets,
                    namespace: "default".into(),
                    name: "nginx-abc".into(),
                    precondition: None,
                    options: Default::default(),
                    fence: Some(fence(&lease_v1)),
                },
            )
            .await;
        assert!(matches!(result, Err(ApiError::Fenced { .. })), "{result:?}");
        check(&c.get(Resource::ReplicaSets, "default", "nginx-abc").await, "ok");
    });
}

#[test]
fn delete_honours_its_precondition() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let created = c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        let delete = |precondition| Operation::Delete {
            resource: Resource::Pods,
            namespace: "default".into(),
            name: "web-1".into(),
            precondition,
            options: Default::default(),
            fence: None,
        };
        let rv = created.metadata().resource_version;
        check(&c.object(ADMIN, delete(Some(rv + 100))).await, "409 Conflict");
        let deleted = c.object(ADMIN, delete(Some(rv))).await.unwrap();
        assert_eq!(deleted.metadata().resource_version, c.revision());
        check(&c.object(ADMIN, delete(None)).await, "404 NotFound");
    });
}

#[test]
fn store_errors_map_to_http_statuses() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let cases = [
            (StoreError::Unavailable { reason: "no leader".into() }, "503"),
            (StoreError::NotLeader { leader_hint: None }, "503"),
            (StoreError::UnknownOutcome { reason: "timed out".into() }, "504"),
            (StoreError::RequestTooLarge { size: 2, limit: 1 }, "413"),
            (StoreError::InvalidRequest { reason: "bad".into() }, "500"),
        ];
        for (error, status) in cases {
            c.store.set_txn_failure(Some(error));
            check(&c.create(ADMIN, pod("default", "web-1")).await, status);
        }
    });
}

#[test]
fn observer_sees_each_committed_write_with_its_user() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.writes.0.lock().unwrap().clear();
        c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        c.bind(SCHEDULER, "default", "web-1", "worker-1").await.unwrap();
        let _ = c.bind(SCHEDULER, "default", "web-1", "worker-2").await;
        let writes = c.writes.0.lock().unwrap().clone();
        let key = "/registry/pods/default/web-1".to_string();
        assert_eq!(
            writes,
            vec![
                (ADMIN.to_string(), Verb::Create, key.clone(), c.revision() - 1),
                (SCHEDULER.to_string(), Verb::Bind, key, c.revision()),
            ]
        );
    });
}

#[test]
fn planted_bug_ack_before_commit_acknowledges_a_create_the_store_refused() {
    simulate(async {
        // Without the bug: the second create is refused.
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        check(&c.create(ADMIN, pod("default", "web-1")).await, "409 AlreadyExists");

        // With it: acknowledged, although the store refused it.
        let c = Cluster::start(|config| {
            config.planted_bugs = ApiServerBugs { ack_before_commit: true, ..ApiServerBugs::default() }
        })
        .await;
        let first = c.create(ADMIN, pod("default", "web-1")).await.unwrap();
        madsim::time::sleep(std::time::Duration::from_millis(10)).await;
        let second = c.create(ADMIN, pod("default", "web-1")).await;
        check(&second, "ok");
        madsim::time::sleep(std::time::Duration::from_millis(10)).await;
        let stored = c.get(Resource::Pods, "default", "web-1").await.unwrap();
        assert_eq!(stored.metadata().uid, first.metadata().uid);
        assert_ne!(stored.metadata().uid, second.unwrap().metadata().uid);

        // And a create acknowledged while the store is down never exists.
        c.store.set_txn_failure(Some(StoreError::Unavailable { reason: "no leader".into() }));
        check(&c.create(ADMIN, pod("default", "web-2")).await, "ok");
        madsim::time::sleep(std::time::Duration::from_millis(10)).await;
        check(&c.get(Resource::Pods, "default", "web-2").await, "404 NotFound");
    });
}
