//! Watches served from the watch cache, over the in-memory store: ordering, per-revision
//! atomicity, waiting, bookmarks, 410 Gone, and the compactor.

mod common;

use std::time::Duration;

use api::{ApiResponse, ApiResult, Object, Operation, Resource, ResourceVersion, WatchEvent};
use apiserver::registry::encode;
use apiserver::Backend;
use common::*;
use store::api::{PutRequest, RequestOp, TxnRequest};

fn watch_op(resource: Resource, ns: &str, since: ResourceVersion, wait_ms: u64) -> Operation {
    Operation::Watch { resource, namespace: ns.into(), since, wait_ms }
}

fn unwrap_watch(result: ApiResult) -> (Vec<WatchEvent>, ResourceVersion) {
    match result.expect("watch") {
        ApiResponse::Watch { events, resource_version } => (events, resource_version),
        other => panic!("expected a watch response, got {other:?}"),
    }
}

/// Watches from `since` until the bookmark reaches `until`, as an informer would.
async fn watch_until(
    c: &Cluster,
    resource: Resource,
    ns: &str,
    since: ResourceVersion,
    until: ResourceVersion,
) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let mut position = since;
    for _ in 0..20 {
        let (batch, bookmark) = unwrap_watch(c.call(ADMIN, watch_op(resource, ns, position, 1000)).await);
        assert!(bookmark >= position, "bookmark went backwards");
        events.extend(batch);
        position = bookmark;
        if position >= until {
            return events;
        }
    }
    panic!("watch never reached revision {until} (at {position})");
}

async fn list_revision(c: &Cluster, resource: Resource) -> ResourceVersion {
    match c.call(ADMIN, Operation::List { resource, namespace: String::new() }).await.unwrap() {
        ApiResponse::List { resource_version, .. } => resource_version,
        other => panic!("expected a list, got {other:?}"),
    }
}

#[test]
fn watch_from_a_list_revision_returns_later_events_in_order() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let since = list_revision(&c, Resource::Pods).await;
        let created = c.create(ADMIN, pod("default", "a")).await.unwrap();
        let r1 = created.metadata().resource_version;
        let mut relabelled = created.into_pod().unwrap();
        relabelled.metadata.labels = labels("other");
        c.update(ADMIN, relabelled).await.unwrap();
        c.create(ADMIN, pod("kube-public", "b")).await.unwrap();
        c.create(ADMIN, deployment("default", "not-a-pod", 1)).await.unwrap();
        c.object(
            ADMIN,
            Operation::Delete {
                resource: Resource::Pods,
                namespace: "default".into(),
                name: "a".into(),
                precondition: None,
                options: Default::default(),
                fence: None,
            },
        )
        .await
        .unwrap();

        let default_ns = watch_until(&c, Resource::Pods, "default", since, c.revision()).await;
        assert_eq!(
            render(&default_ns),
            [format!("Added a@{r1}"), format!("Modified a@{}", r1 + 1), format!("Deleted a@{}", r1 + 4),]
        );
        // The deleted object is the last state before deletion.
        assert_eq!(default_ns[2].object.metadata().labels, labels("other"));

        let all = watch_until(&c, Resource::Pods, "", since, c.revision()).await;
        assert_eq!(all.len(), 4);
        let from_middle = watch_until(&c, Resource::Pods, "", r1 + 1, c.revision()).await;
        assert_eq!(render(&from_middle), [format!("Added b@{}", r1 + 2), format!("Deleted a@{}", r1 + 4)]);
    });
}

#[test]
fn events_of_one_store_revision_are_delivered_together() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let since = c.revision();
        // One store transaction writing two pods: one revision, two events.
        let put = |o: Object| RequestOp::Put(PutRequest { key: o.key(), value: encode(&o).unwrap(), prev_kv: false });
        let txn = TxnRequest {
            compare: vec![],
            success: vec![put(pod("default", "x").into()), put(pod("default", "y").into())],
            failure: vec![],
        };
        assert!(c.store.txn(txn).await.unwrap().succeeded);
        c.create(ADMIN, pod("default", "z")).await.unwrap();

        let (events, _) = unwrap_watch(c.call(ADMIN, watch_op(Resource::Pods, "default", since, 1000)).await);
        let r = since + 1;
        // The first answer may stop after any whole revision, never inside one.
        assert!(events.len() >= 2, "{:?}", render(&events));
        assert_eq!(render(&events[..2]), [format!("Added x@{r}"), format!("Added y@{r}")]);
    });
}

#[test]
fn a_watch_waits_for_the_next_event() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let since = c.revision();
        let server = c.server.clone();
        let _late_writer = madsim::task::spawn(async move {
            madsim::time::sleep(Duration::from_millis(200)).await;
            let request = api::ApiRequest {
                credential: credential(ADMIN),
                request_id: 2,
                operation: Operation::Create { object: pod("default", "late").into(), fence: None },
            };
            server.handle(request).await.unwrap();
        });
        let started = madsim::time::TimeHandle::current().elapsed();
        let (events, bookmark) = unwrap_watch(c.call(ADMIN, watch_op(Resource::Pods, "", since, 5000)).await);
        let waited = madsim::time::TimeHandle::current().elapsed() - started;
        assert_eq!(render(&events), [format!("Added late@{}", since + 1)]);
        assert_eq!(bookmark, since + 1);
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(1), "{waited:?}");
    });
}

#[test]
fn an_idle_watch_returns_a_bookmark_after_its_wait() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, deployment("default", "nginx", 1)).await.unwrap();
        let since = list_revision(&c, Resource::Pods).await - 1;
        let started = madsim::time::TimeHandle::current().elapsed();
        // The deployment's event is not a pod event: nothing to deliver, but the bookmark
        // moves past it.
        let (events, bookmark) = unwrap_watch(c.call(ADMIN, watch_op(Resource::Pods, "", since, 300)).await);
        let waited = madsim::time::TimeHandle::current().elapsed() - started;
        assert!(events.is_empty());
        assert_eq!(bookmark, c.revision());
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
    });
}

#[test]
fn a_watch_from_before_the_cache_window_is_gone() {
    simulate(async {
        let c = Cluster::start(|config| config.watch_cache_capacity = 3).await;
        let since = c.revision();
        for name in ["a", "b", "c", "d", "e"] {
            c.create(ADMIN, pod("default", name)).await.unwrap();
        }
        watch_until(&c, Resource::Pods, "", c.revision() - 1, c.revision()).await;
        let gone = c.call(ADMIN, watch_op(Resource::Pods, "", since, 100)).await;
        check(&gone, "410 Gone");
        // The three newest revisions are still there.
        let kept = watch_until(&c, Resource::Pods, "", c.revision() - 3, c.revision()).await;
        assert_eq!(kept.len(), 3);
    });
}

#[test]
fn a_watch_from_a_compacted_revision_is_gone() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let since = list_revision(&c, Resource::Pods).await;
        // Let the cache catch up, then write and compact before it sees the writes: its
        // store watch is canceled, it restarts at the store's revision, and watchers from
        // before must relist.
        watch_until(&c, Resource::Pods, "", since, since).await;
        for name in ["a", "b", "c"] {
            c.create(ADMIN, pod("default", name)).await.unwrap();
        }
        c.store.compact(c.revision()).await.unwrap();
        let gone = c.call(ADMIN, watch_op(Resource::Pods, "", since, 1000)).await;
        check(&gone, "410 Gone");

        // A relist gives a revision to watch from again.
        let relisted = list_revision(&c, Resource::Pods).await;
        c.create(ADMIN, pod("default", "d")).await.unwrap();
        let after = watch_until(&c, Resource::Pods, "", relisted, c.revision()).await;
        assert_eq!(render(&after), [format!("Added d@{}", relisted + 1)]);
    });
}

#[test]
fn the_compactor_compacts_to_the_revision_seen_one_interval_earlier() {
    simulate(async {
        let c = Cluster::start(|config| config.compaction_interval = Duration::from_secs(1)).await;
        c.create(ADMIN, pod("default", "a")).await.unwrap();
        // t=1s: the compactor notes the revision; t=2s: compacts to it.
        madsim::time::sleep(Duration::from_millis(1500)).await;
        let seen_at_first_tick = c.revision();
        c.create(ADMIN, pod("default", "b")).await.unwrap();
        assert_eq!(c.store.compacted_revision(), 0);
        madsim::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(c.store.compacted_revision(), seen_at_first_tick);
        // Reads still work after compaction.
        check(&c.get(Resource::Pods, "default", "a").await, "ok");
    });
}
