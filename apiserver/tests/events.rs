//! Events are stored under store leases of the apiserver's `event_ttl`, shared within
//! Kubernetes' lease-reuse window (`storage/etcd3/lease_manager.go`), and validated as
//! Kubernetes' `ValidateEvent` does.

mod common;

use std::time::Duration;

use api::{Event, ObjectMeta, ObjectReference};
use common::*;
use store::api::{LeaseRevokeRequest, Mutation};

fn event(namespace: &str, name: &str, involved_namespace: &str) -> Event {
    Event {
        metadata: ObjectMeta::named(namespace, name),
        involved_object: ObjectReference {
            kind: "Pod".into(),
            namespace: involved_namespace.into(),
            name: "web-1".into(),
            uid: "u".into(),
        },
        reason: "Scheduled".into(),
        message: "assigned default/web-1 to worker-1".into(),
        source: "default-scheduler".into(),
        count: 1,
        ..Event::default()
    }
}

fn lease_of(c: &Cluster, key: &str) -> i64 {
    c.store.with_mvcc(|mvcc| mvcc.leases().lease_of(key))
}

#[test]
fn events_share_a_lease_within_the_reuse_window_and_go_with_it() {
    simulate(async {
        // One hour: the reuse window is 60 s (5% of the TTL would be 180 s).
        let c = Cluster::start(|config| config.event_ttl = Duration::from_secs(3600)).await;
        c.create(SCHEDULER, event("default", "web-1.1", "default")).await.unwrap();
        madsim::time::sleep(Duration::from_secs(30)).await;
        c.create(SCHEDULER, event("default", "web-1.2", "default")).await.unwrap();
        let first = lease_of(&c, "/registry/events/default/web-1.1");
        assert_ne!(first, 0, "an Event is attached to a lease");
        assert_eq!(lease_of(&c, "/registry/events/default/web-1.2"), first, "30 s later it reuses the lease");
        let ttl = c.store.with_mvcc(|mvcc| mvcc.leases().lookup(first).map(|l| l.ttl_secs));
        assert_eq!(ttl, Some(3600 + 60), "granted the TTL plus the reuse window");

        madsim::time::sleep(Duration::from_secs(31)).await;
        c.create(SCHEDULER, event("default", "web-1.3", "default")).await.unwrap();
        assert_ne!(lease_of(&c, "/registry/events/default/web-1.3"), first, "past the window: a new lease");

        // Revoking (or expiring) the first lease deletes both of its Events, not the third.
        c.store.with_mvcc(|mvcc| mvcc.apply(&Mutation::LeaseRevoke(LeaseRevokeRequest { id: first }))).unwrap();
        check(&c.get(api::Resource::Events, "default", "web-1.1").await, "404 NotFound");
        check(&c.get(api::Resource::Events, "default", "web-1.2").await, "404 NotFound");
        check(&c.get(api::Resource::Events, "default", "web-1.3").await, "ok");
    });
}

#[test]
fn an_updated_event_moves_to_a_current_lease() {
    simulate(async {
        let c = Cluster::start(|config| config.event_ttl = Duration::from_secs(20)).await;
        let created = c.create(KUBELET_1, event("default", "web-1.1", "default")).await.unwrap();
        let first = lease_of(&c, "/registry/events/default/web-1.1");
        madsim::time::sleep(Duration::from_secs(5)).await;
        let mut repeated = created.into_event().unwrap();
        repeated.count = 2;
        c.update(KUBELET_1, repeated).await.unwrap();
        let second = lease_of(&c, "/registry/events/default/web-1.1");
        assert_ne!(second, first, "a 20 s TTL has a 1 s reuse window: the update takes a new lease");
        assert_eq!(c.store.with_mvcc(|mvcc| mvcc.leases().lookup(second).map(|l| l.ttl_secs)), Some(21));
    });
}

#[test]
fn an_event_lives_in_its_involved_objects_namespace() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        check(
            &c.create(CONTROLLER_MANAGER, event("kube-system", "web-1.1", "default")).await,
            "422 Invalid: involvedObject.namespace",
        );
        let mut node_event = event("default", "worker-1.1", "");
        node_event.involved_object.kind = "Node".into();
        check(&c.create(CONTROLLER_MANAGER, node_event).await, "ok");
        let mut no_reason = event("default", "web-1.2", "default");
        no_reason.reason.clear();
        check(&c.create(CONTROLLER_MANAGER, no_reason).await, "422 Invalid: reason");
    });
}
