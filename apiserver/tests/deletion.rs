//! Deletion with finalizers and propagation policies (Kubernetes
//! `k8s.io/apiserver/pkg/registry/generic/registry/store.go`: `Delete`,
//! `updateForGracefulDeletionAndFinalizers`, `deletionFinalizersForGarbageCollection`, and
//! `Update`'s delete when the finalizers are emptied), through `ApiServer::handle` over the
//! in-memory store.

mod common;

use api::CustomResource;
use api::{
    ApiError, DeleteOptions, Object, Operation, PropagationPolicy, Resource, Verb, FINALIZER_FOREGROUND_DELETION,
    FINALIZER_ORPHAN,
};
use common::*;

const USER_FINALIZER: &str = "example.com/hold";

fn delete(name: &str, policy: Option<PropagationPolicy>, uid: Option<&str>) -> Operation {
    Operation::Delete {
        resource: Resource::Deployments,
        namespace: "default".into(),
        name: name.into(),
        precondition: None,
        options: DeleteOptions { propagation_policy: policy, uid_precondition: uid.map(str::to_string) },
        fence: None,
    }
}

/// The object's finalizers and whether it is marked, as stored now (`None`: gone).
async fn stored(c: &Cluster, name: &str) -> Option<(Vec<String>, bool)> {
    match c.get(Resource::Deployments, "default", name).await {
        Ok(object) => {
            let meta = object.metadata();
            Some((meta.finalizers.clone(), meta.is_being_deleted()))
        }
        Err(ApiError::NotFound { .. }) => None,
        Err(e) => panic!("get {name}: {e}"),
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn background_delete_of_an_object_without_finalizers_removes_it_at_once() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, deployment("default", "web", 1)).await.unwrap();
        for policy in [None, Some(PropagationPolicy::Background)] {
            c.create(ADMIN, deployment("default", "web", 1)).await.ok();
            let deleted = c.object(ADMIN, delete("web", policy, None)).await.unwrap();
            assert_eq!(deleted.metadata().resource_version, c.revision());
            assert_eq!(stored(&c, "web").await, None, "{policy:?}");
        }
    });
}

#[test]
fn foreground_and_orphan_mark_the_object_with_the_collectors_finalizer() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        for (policy, finalizer) in [
            (PropagationPolicy::Foreground, FINALIZER_FOREGROUND_DELETION),
            (PropagationPolicy::Orphan, FINALIZER_ORPHAN),
        ] {
            let name = format!("web-{policy:?}").to_lowercase();
            c.create(ADMIN, deployment("default", &name, 1)).await.unwrap();
            let marked = c.object(ADMIN, delete(&name, Some(policy), None)).await.unwrap();
            assert_eq!(marked.metadata().resource_version, c.revision(), "the mark is a write");
            assert_eq!(stored(&c, &name).await, Some((strings(&[finalizer]), true)));
            // A second delete with the same policy changes nothing but the revision (kubesim
            // writes it again where Kubernetes skips the no-op: each acknowledged write
            // names a revision that committed the key).
            let revision = c.revision();
            let again = c.object(ADMIN, delete(&name, Some(policy), None)).await.unwrap();
            assert_eq!((again.metadata().resource_version, c.revision()), (revision + 1, revision + 1));
            assert_eq!(stored(&c, &name).await, Some((strings(&[finalizer]), true)));
            assert_eq!(again.metadata().deletion_timestamp_ms, marked.metadata().deletion_timestamp_ms);
            // The timestamp is kept by a delete with another policy, which swaps the finalizer.
            let stamp = marked.metadata().deletion_timestamp_ms;
            let swapped = c.object(ADMIN, delete(&name, Some(PropagationPolicy::Background), None)).await;
            // Background leaves no finalizer: the object goes.
            assert_eq!(swapped.unwrap().metadata().deletion_timestamp_ms, stamp);
            assert_eq!(stored(&c, &name).await, None);
        }
    });
}

#[test]
fn an_object_with_a_users_finalizer_is_marked_and_removed_by_the_update_that_empties_its_finalizers() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let mut held = deployment("default", "held", 1);
        held.metadata.finalizers = strings(&[USER_FINALIZER]);
        c.create(ADMIN, held).await.unwrap();
        c.writes.0.lock().unwrap().clear();

        let marked = c.object(ADMIN, delete("held", None, None)).await.unwrap();
        assert!(marked.metadata().is_being_deleted());
        assert_eq!(stored(&c, "held").await, Some((strings(&[USER_FINALIZER]), true)));
        // Foreground adds its finalizer beside the user's; the user's stays.
        c.object(ADMIN, delete("held", Some(PropagationPolicy::Foreground), None)).await.unwrap();
        assert_eq!(stored(&c, "held").await, Some((strings(&[USER_FINALIZER, FINALIZER_FOREGROUND_DELETION]), true)));

        // No new finalizer once marked; the deletion timestamp is not the client's to clear.
        let mut current = c.get(Resource::Deployments, "default", "held").await.unwrap().into_deployment().unwrap();
        let mut adding = current.clone();
        adding.metadata.finalizers.push("example.com/another".into());
        check(&c.update(ADMIN, adding).await, "422 Invalid: metadata.finalizers");
        current.metadata.finalizers = strings(&[USER_FINALIZER]);
        current.metadata.deletion_timestamp_ms = None;
        let updated = c.update(ADMIN, current).await.unwrap();
        assert!(updated.metadata().is_being_deleted(), "deletionTimestamp kept");
        assert_eq!(stored(&c, "held").await, Some((strings(&[USER_FINALIZER]), true)));

        // Status updates leave the finalizers alone.
        let mut status = updated.clone().into_deployment().unwrap();
        status.status.replicas = 1;
        let status = c.update_status(ADMIN, status).await.unwrap();
        assert_eq!(stored(&c, "held").await, Some((strings(&[USER_FINALIZER]), true)));

        // The update that empties the finalizers removes the object.
        let mut last = status.into_deployment().unwrap();
        last.metadata.finalizers.clear();
        let removed = c.update(ADMIN, last).await.unwrap();
        assert_eq!(removed.metadata().resource_version, c.revision());
        assert_eq!(stored(&c, "held").await, None);

        // The history says what the store did: marks and updates are updates of the key,
        // the removal a delete.
        let verbs: Vec<Verb> = c.writes.0.lock().unwrap().iter().map(|(_, verb, _, _)| *verb).collect();
        assert_eq!(verbs, [Verb::Update, Verb::Update, Verb::Update, Verb::UpdateStatus, Verb::Delete]);
    });
}

#[test]
fn an_object_not_marked_keeps_its_finalizers_through_updates() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let mut held = deployment("default", "held", 1);
        held.metadata.finalizers = strings(&[USER_FINALIZER]);
        let created = c.create(ADMIN, held).await.unwrap().into_deployment().unwrap();
        let mut cleared = created.clone();
        cleared.metadata.finalizers.clear();
        c.update(ADMIN, cleared).await.unwrap();
        assert_eq!(stored(&c, "held").await, Some((Vec::new(), false)), "not marked: an update only");
        // Finalizers may be added freely before a delete.
        let mut again = c.get(Resource::Deployments, "default", "held").await.unwrap().into_deployment().unwrap();
        again.metadata.finalizers = strings(&[USER_FINALIZER, "example.com/another"]);
        check(&c.update(ADMIN, again).await, "ok");
    });
}

#[test]
fn a_uid_precondition_refuses_to_delete_another_object_of_the_same_name() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let first = c.create(ADMIN, deployment("default", "web", 1)).await.unwrap();
        let first_uid = first.metadata().uid.clone();
        c.object(ADMIN, delete("web", None, Some(&first_uid))).await.unwrap();
        let second = c.create(ADMIN, deployment("default", "web", 1)).await.unwrap();
        assert_ne!(second.metadata().uid, first_uid);
        check(&c.object(ADMIN, delete("web", None, Some(&first_uid))).await, "409 Conflict: Precondition failed");
        assert!(stored(&c, "web").await.is_some());
        let second_uid = second.metadata().uid.clone();
        check(&c.object(ADMIN, delete("web", None, Some(&second_uid))).await, "ok");
    });
}

#[test]
fn finalizers_and_block_owner_deletion_are_left_out_of_the_stored_json_when_unset() {
    let mut pod = pod("default", "web-1");
    pod.metadata.owner_references = vec![api::OwnerReference {
        kind: "ReplicaSet".into(),
        name: "rs".into(),
        uid: "u".into(),
        controller: true,
        block_owner_deletion: false,
    }];
    let json = serde_json::to_string(&Object::Pod(pod.clone())).unwrap();
    assert!(!json.contains("finalizers") && !json.contains("block_owner_deletion"), "{json}");
    pod.metadata.finalizers = strings(&[USER_FINALIZER]);
    pod.metadata.owner_references[0].block_owner_deletion = true;
    let json = serde_json::to_string(&Object::Pod(pod.clone())).unwrap();
    let back: Object = serde_json::from_str(&json).unwrap();
    assert_eq!(back, Object::Pod(pod));
}

/// A user's kind, to show that custom resources carry finalizers like the built-ins.
struct Database;

impl api::CustomResource for Database {
    const DEFINITION: &'static api::CustomResourceDefinition =
        &api::CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
    type Spec = u32;
    type Status = Option<String>;
}

#[test]
fn a_custom_resource_is_marked_and_finalized_like_a_built_in() {
    simulate(async {
        let c = Cluster::start(|config| {
            *config = config.clone().with_custom_resource(Database::DEFINITION).unwrap();
        })
        .await;
        let resource = Resource::Custom(Database::DEFINITION);
        let mut db = api::CustomObject::<Database>::new(api::ObjectMeta::named("default", "orders"), 3);
        db.metadata.finalizers = strings(&[USER_FINALIZER]);
        c.create(ADMIN, db.to_object().unwrap()).await.unwrap();
        let delete = Operation::Delete {
            resource,
            namespace: "default".into(),
            name: "orders".into(),
            precondition: None,
            options: DeleteOptions::propagation(PropagationPolicy::Orphan),
            fence: None,
        };
        let marked = c.object(ADMIN, delete).await.unwrap();
        assert!(marked.metadata().is_being_deleted());
        assert_eq!(marked.metadata().finalizers, strings(&[USER_FINALIZER, FINALIZER_ORPHAN]));
        let mut last = c.get(resource, "default", "orders").await.unwrap();
        last.metadata_mut().finalizers.clear();
        c.update(ADMIN, last).await.unwrap();
        check(&c.get(resource, "default", "orders").await, "404 NotFound");
    });
}
