//! Custom resources (CRD-like kinds defined outside kubesim) through a real apiserver:
//! the built-ins' create / update / status update / delete / list / watch semantics,
//! resourceVersion, 409 and 410, for a namespaced and a cluster-scoped kind, and the
//! refusals: an unregistered kind, a kind defined differently, a key holding another kind.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::{
    ApiClient, ApiResponse, ClientConfig, Clock, CustomObject, CustomResource, CustomResourceDefinition, Object,
    ObjectMeta, Operation, OwnerReference, RawJson, Resource, ResourceVersion, WatchEventKind,
};
use apiserver::registry::encode;
use apiserver::{serve, ApiServerConfig, ApiServerObserver, Backend, InMemoryBackend, Termination};
use common::*;
use madsim::runtime::Runtime;
use serde::{Deserialize, Serialize};
use store::api::{PutRequest, RequestOp, TxnRequest};

/// A namespaced kind, as a user's crate would define it.
struct Database;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct DatabaseSpec {
    replicas: u32,
    version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct DatabaseStatus {
    primary: Option<String>,
    ready_replicas: u32,
}

impl CustomResource for Database {
    const DEFINITION: &'static CustomResourceDefinition =
        &CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
    type Spec = DatabaseSpec;
    type Status = DatabaseStatus;
}

/// A cluster-scoped kind.
struct BackupPolicy;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BackupPolicySpec {
    every_minutes: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct BackupPolicyStatus {
    last_backup_ms: Option<u64>,
}

impl CustomResource for BackupPolicy {
    const DEFINITION: &'static CustomResourceDefinition =
        &CustomResourceDefinition::cluster_scoped("ops.example.com", "v1alpha1", "BackupPolicy", "backuppolicies");
    type Spec = BackupPolicySpec;
    type Status = BackupPolicyStatus;
}

/// What the shared scenario needs of a kind: a spec to create with, a spec change and a
/// status to report.
trait Sample:
    CustomResource<Spec: Clone + PartialEq + std::fmt::Debug, Status: Clone + PartialEq + std::fmt::Debug>
{
    const NAMESPACE: &'static str;
    fn spec() -> Self::Spec;
    fn changed(spec: &Self::Spec) -> Self::Spec;
    fn status() -> Self::Status;
}

impl Sample for Database {
    const NAMESPACE: &'static str = "default";
    fn spec() -> DatabaseSpec {
        DatabaseSpec { replicas: 3, version: "16".into() }
    }
    fn changed(spec: &DatabaseSpec) -> DatabaseSpec {
        DatabaseSpec { replicas: spec.replicas + 2, ..spec.clone() }
    }
    fn status() -> DatabaseStatus {
        DatabaseStatus { primary: Some("orders-0".into()), ready_replicas: 3 }
    }
}

impl Sample for BackupPolicy {
    const NAMESPACE: &'static str = "";
    fn spec() -> BackupPolicySpec {
        BackupPolicySpec { every_minutes: 60 }
    }
    fn changed(spec: &BackupPolicySpec) -> BackupPolicySpec {
        BackupPolicySpec { every_minutes: spec.every_minutes / 2 }
    }
    fn status() -> BackupPolicyStatus {
        BackupPolicyStatus { last_backup_ms: Some(42_000) }
    }
}

fn with_custom_kinds(config: &mut ApiServerConfig) {
    let registered = config
        .clone()
        .with_custom_resource(Database::DEFINITION)
        .and_then(|c| c.with_custom_resource(BackupPolicy::DEFINITION))
        .expect("valid definitions");
    *config = registered;
}

fn typed<K: CustomResource>(object: Object) -> CustomObject<K> {
    CustomObject::<K>::from_object(object).expect("an object of the kind asked for")
}

/// Every verb on one kind through `ApiClient`: create, get, update (and a stale update's
/// 409), status update, list, watch from the list's resourceVersion, delete.
async fn every_verb<K: Sample>(kubectl: &ApiClient, writes: &RecordedWrites) {
    let resource = K::resource();
    let ns = K::NAMESPACE;
    let (listed, listed_at) = kubectl.list(resource, "").await.unwrap();
    assert!(listed.is_empty());

    let owner = OwnerReference {
        kind: "Team".into(),
        name: "payments".into(),
        uid: "u-1".into(),
        controller: true,
        block_owner_deletion: false,
    };
    let mut metadata = ObjectMeta::named(ns, "orders");
    metadata.owner_references.push(owner.clone());
    let mut draft = CustomObject::<K>::new(metadata, K::spec());
    // Create ignores a status: it is written only through the status subresource.
    draft.status = K::status();
    let created = typed::<K>(kubectl.create(draft.to_object().unwrap(), None).await.unwrap());
    let key = resource.key(ns, "orders");
    let expected_key = match ns {
        "" => format!("/registry/{}/{}/orders", K::DEFINITION.group, K::DEFINITION.plural),
        ns => format!("/registry/{}/{}/{ns}/orders", K::DEFINITION.group, K::DEFINITION.plural),
    };
    assert_eq!(key, expected_key);
    let (_, _, written_key, revision) = writes.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!((written_key.as_str(), revision), (key.as_str(), created.metadata.resource_version));
    assert_eq!(created.spec, K::spec());
    assert_eq!(created.status, K::Status::default());
    assert_eq!(created.metadata.generation, 1);
    assert_eq!(created.metadata.owner_references, [owner]);
    assert!(!created.metadata.uid.is_empty());
    check(&kubectl.create(draft.to_object().unwrap(), None).await, "409 AlreadyExists");
    assert_eq!(typed::<K>(kubectl.get(resource, ns, "orders").await.unwrap()), created);

    // Update: spec changes, generation moves, the stored status stays.
    let mut changed = created.clone();
    changed.spec = K::changed(&created.spec);
    changed.status = K::status();
    let updated = typed::<K>(kubectl.update(changed.to_object().unwrap(), None).await.unwrap());
    assert!(updated.metadata.resource_version > created.metadata.resource_version);
    assert_eq!((updated.metadata.generation, &updated.status), (2, &K::Status::default()));
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    // The same update again carries a stale resourceVersion.
    check(&kubectl.update(changed.to_object().unwrap(), None).await, "409 Conflict");
    check(&kubectl.update_status(changed.to_object().unwrap(), None).await, "409 Conflict");

    // Status update: the status only.
    let mut reported = updated.clone();
    reported.status = K::status();
    reported.spec = K::spec();
    let with_status = typed::<K>(kubectl.update_status(reported.to_object().unwrap(), None).await.unwrap());
    assert_eq!(with_status.status, K::status());
    assert_eq!(with_status.spec, updated.spec);
    assert_eq!(with_status.metadata.generation, 2);

    let (items, list_rv) = kubectl.list(resource, ns).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(typed::<K>(items[0].clone()), with_status);
    assert_eq!(list_rv, with_status.metadata.resource_version);

    let deleted = kubectl.delete(resource, ns, "orders", None, None).await.unwrap();
    check(&kubectl.get(resource, ns, "orders").await, "404 NotFound");
    check(&kubectl.delete(resource, ns, "orders", None, None).await, "404 NotFound");

    // A watch from the first list sees the object's whole life, in order.
    let mut events = Vec::new();
    let mut position = listed_at;
    for _ in 0..20 {
        let (batch, bookmark) = kubectl.watch(resource, ns, position, 1000).await.unwrap();
        events.extend(batch);
        position = bookmark;
        if position >= deleted.metadata().resource_version {
            break;
        }
    }
    let rvs = [created.metadata.resource_version, updated.metadata.resource_version];
    let rvs = [rvs[0], rvs[1], with_status.metadata.resource_version, deleted.metadata().resource_version];
    assert_eq!(
        render(&events),
        [
            format!("Added orders@{}", rvs[0]),
            format!("Modified orders@{}", rvs[1]),
            format!("Modified orders@{}", rvs[2]),
            format!("Deleted orders@{}", rvs[3]),
        ]
    );
    assert_eq!(events[3].kind, WatchEventKind::Deleted);
    assert_eq!(typed::<K>(events[2].object.clone()).status, K::status());
}

#[test]
fn custom_kinds_behave_like_built_ins_through_the_network_client() {
    let runtime = Runtime::new();
    let apiserver_node = runtime.create_node().name("apiserver-0").ip("10.0.0.1".parse().unwrap()).build();
    let client_node = runtime.create_node().name("client").ip("10.0.0.2".parse().unwrap()).build();
    let writes = Arc::new(RecordedWrites::default());
    let observer = writes.clone() as Arc<dyn ApiServerObserver>;
    let _server = apiserver_node.spawn(async move {
        let mut config = config("apiserver-0", "10.0.0.1:6443");
        with_custom_kinds(&mut config);
        serve(config, InMemoryBackend::new(), Clock::new(), Some(observer), Termination::new()).await.expect("bind");
    });
    runtime
        .block_on(client_node.spawn(async move {
            madsim::time::sleep(Duration::from_millis(100)).await;
            let server: SocketAddr = "10.0.0.1:6443".parse().unwrap();
            let kubectl =
                ApiClient::connect(vec![server], credential(ADMIN), ClientConfig::default(), None).await.unwrap();
            every_verb::<Database>(&kubectl, &writes).await;
            every_verb::<BackupPolicy>(&kubectl, &writes).await;
        }))
        .expect("client task");
}

fn watch_op(resource: Resource, ns: &str, since: ResourceVersion) -> Operation {
    Operation::Watch { resource, namespace: ns.into(), since, wait_ms: 1000 }
}

async fn list_revision(c: &Cluster, resource: Resource) -> ResourceVersion {
    match c.call(ADMIN, Operation::List { resource, namespace: String::new() }).await.unwrap() {
        ApiResponse::List { resource_version, .. } => resource_version,
        other => panic!("expected a list, got {other:?}"),
    }
}

/// As for the built-ins (`watch.rs`): the store is compacted past writes the watch cache
/// has not seen, its store watch is canceled, and a watch from before is 410 Gone.
async fn compacted_watch_is_gone<K: Sample>(c: &Cluster) {
    let resource = K::resource();
    let since = list_revision(c, resource).await;
    let (_, bookmark) = match c.call(ADMIN, watch_op(resource, "", since)).await.unwrap() {
        ApiResponse::Watch { events, resource_version } => (events, resource_version),
        other => panic!("expected a watch, got {other:?}"),
    };
    assert_eq!(bookmark, since);
    for name in ["a", "b"] {
        let object = CustomObject::<K>::new(ObjectMeta::named(K::NAMESPACE, name), K::spec());
        c.create(ADMIN, object.to_object().unwrap()).await.unwrap();
    }
    c.store.compact(c.revision()).await.unwrap();
    check(&c.call(ADMIN, watch_op(resource, K::NAMESPACE, since)).await, "410 Gone");
    // A relist gives a revision to watch from again.
    let relisted = list_revision(c, resource).await;
    let object = CustomObject::<K>::new(ObjectMeta::named(K::NAMESPACE, "c"), K::spec());
    c.create(ADMIN, object.to_object().unwrap()).await.unwrap();
    let mut events = Vec::new();
    let mut position = relisted;
    while position < c.revision() {
        match c.call(ADMIN, watch_op(resource, K::NAMESPACE, position)).await.unwrap() {
            ApiResponse::Watch { events: batch, resource_version } => {
                events.extend(batch);
                position = resource_version;
            }
            other => panic!("expected a watch, got {other:?}"),
        }
    }
    assert_eq!(render(&events), [format!("Added c@{}", relisted + 1)]);
}

#[test]
fn a_watch_of_a_custom_kind_from_a_compacted_revision_is_gone() {
    simulate(async {
        let c = Cluster::start(with_custom_kinds).await;
        compacted_watch_is_gone::<Database>(&c).await;
        compacted_watch_is_gone::<BackupPolicy>(&c).await;
    });
}

#[test]
fn an_unregistered_or_differently_defined_kind_is_404_and_changes_nothing() {
    simulate(async {
        let c = Cluster::start(|config| {
            *config = config.clone().with_custom_resource(Database::DEFINITION).unwrap();
        })
        .await;
        let before = c.revision();
        let policy = CustomObject::<BackupPolicy>::new(ObjectMeta::named("", "hourly"), BackupPolicy::spec());
        let refused = c.create(ADMIN, policy.to_object().unwrap()).await;
        check(
            &refused,
            "404 NotFound: the server could not find the requested resource backuppolicies.ops.example.com",
        );
        check(&c.get(BackupPolicy::resource(), "", "hourly").await, "404 NotFound: the server could not find");
        check(&c.call(ADMIN, watch_op(BackupPolicy::resource(), "", 0)).await, "404 NotFound: the server could not");

        // Same group and plural, another version (or scope): not what this apiserver serves,
        // so it cannot write keys under another definition's prefix.
        static DATABASES_V2: CustomResourceDefinition =
            CustomResourceDefinition::namespaced("example.com", "v2", "Database", "databases");
        let err = c.get(Resource::Custom(&DATABASES_V2), "default", "orders").await.unwrap_err();
        assert_eq!(err.status_code(), 404);
        assert!(err.to_string().contains("serves databases.example.com (example.com/v1"), "{err}");
        assert_eq!(c.revision(), before);
    });
}

#[test]
fn a_custom_object_needs_json_spec_and_status_and_its_namespace() {
    simulate(async {
        let c = Cluster::start(with_custom_kinds).await;
        let good = CustomObject::<Database>::new(ObjectMeta::named("default", "orders"), Database::spec());
        let Object::Custom(mut bad) = good.to_object().unwrap() else { panic!("custom") };
        bad.spec = RawJson::from_text("{\"replicas\": ");
        check(&c.create(ADMIN, Object::Custom(bad)).await, "422 Invalid: spec");
        let elsewhere = CustomObject::<Database>::new(ObjectMeta::named("nowhere", "orders"), Database::spec());
        check(&c.create(ADMIN, elsewhere.to_object().unwrap()).await, "404 NotFound");
        let unscoped = CustomObject::<Database>::new(ObjectMeta::named("", "orders"), Database::spec());
        check(&c.create(ADMIN, unscoped.to_object().unwrap()).await, "422 Invalid: metadata.namespace");
        let scoped = CustomObject::<BackupPolicy>::new(ObjectMeta::named("default", "x"), BackupPolicy::spec());
        check(&c.create(ADMIN, scoped.to_object().unwrap()).await, "422 Invalid: metadata.namespace");
    });
}

#[test]
fn a_key_holding_an_object_of_another_kind_is_refused() {
    simulate(async {
        let c = Cluster::start(with_custom_kinds).await;
        // A pod's value planted at a Database's key (a store written by something else).
        let key = Database::resource().key("default", "orders");
        let pod: Object = pod("default", "orders").into();
        let put = RequestOp::Put(PutRequest { key: key.clone(), value: encode(&pod).unwrap(), prev_kv: false });
        let txn = TxnRequest { compare: vec![], success: vec![put], failure: vec![] };
        assert!(c.store.txn(txn).await.unwrap().succeeded);
        let err = c.get(Database::resource(), "default", "orders").await.unwrap_err();
        assert_eq!(err.status_code(), 500);
        assert!(
            err.to_string().contains(&format!("key {key} holds the object of /registry/pods/default/orders")),
            "{err}"
        );

        // A typed read of another kind's object is refused on the client's side too.
        let created = c.create(ADMIN, pod_named("default", "p")).await.unwrap();
        let wrong = CustomObject::<Database>::from_object(created).unwrap_err();
        assert!(wrong.to_string().contains("expected a databases.example.com"), "{wrong}");
    });
}

fn pod_named(ns: &str, name: &str) -> Object {
    pod(ns, name).into()
}

#[test]
fn registration_refuses_invalid_and_conflicting_definitions() {
    static NO_DOT: CustomResourceDefinition = CustomResourceDefinition::namespaced("pods", "v1", "Database", "dbs");
    static DATABASES_CLUSTER: CustomResourceDefinition =
        CustomResourceDefinition::cluster_scoped("example.com", "v1", "Database", "databases");
    let config = ApiServerConfig::new("apiserver-0", "10.0.0.1:6443".parse().unwrap());
    let err = config.clone().with_custom_resource(&NO_DOT).unwrap_err();
    assert!(err.to_string().contains("group \"pods\" is invalid"), "{err}");
    let registered = config.with_custom_resource(Database::DEFINITION).unwrap();
    let again = registered.clone().with_custom_resource(Database::DEFINITION).unwrap();
    assert_eq!(again.custom_resources(), [Database::DEFINITION]);
    let err = registered.with_custom_resource(&DATABASES_CLUSTER).unwrap_err();
    assert!(err.to_string().contains("defined twice"), "{err}");
}
