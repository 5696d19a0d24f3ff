//! Services through `ApiServer::handle` over the in-memory store: a create allocates the
//! ClusterIP in the store's bitmap (the one asked for, or a free one), a create that
//! failed gives it back, a delete releases it, the IP cannot change, and the repair loop
//! repairs a bitmap that lost an IP.

mod common;

use std::net::Ipv4Addr;

use api::{Object, ObjectMeta, Resource, Service, ServicePort, ServiceSpec};
use apiserver::service_ip_repair::Repair;
use apiserver::service_ips::{AllocationBitmap, ServiceIpAllocator, ServiceIpRange, SERVICE_IPS_KEY};
use apiserver::Backend;
use common::*;
use store::api::{KeyRange, RangeRequest};

fn service(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: ObjectMeta::named("default", name),
        spec: ServiceSpec {
            selector: labels("web"),
            cluster_ip: cluster_ip.to_string(),
            ports: vec![ServicePort { name: "http".into(), port: 80, target_port: 8080 }],
        },
    }
}

fn ip_of(object: &Object) -> Ipv4Addr {
    object.as_service().expect("a service").spec.cluster_ip.parse().expect("an IPv4 clusterIP")
}

async fn allocated(c: &Cluster) -> Vec<Ipv4Addr> {
    ServiceIpAllocator::new(c.store.clone(), ServiceIpRange::DEFAULT).read().await.unwrap().bitmap.allocated()
}

#[test]
fn nothing_is_written_for_services_until_one_is_created() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let bitmap = c.store.range(RangeRequest::new(KeyRange::Key(SERVICE_IPS_KEY.into()))).await.unwrap();
        assert!(bitmap.kvs.is_empty());
    });
}

#[test]
fn create_allocates_and_delete_releases_the_cluster_ip() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let asked = c.create(ADMIN, service("asked", "10.96.0.9")).await.unwrap();
        assert_eq!(ip_of(&asked), "10.96.0.9".parse::<Ipv4Addr>().unwrap());
        let any = c.create(ADMIN, service("any", "")).await.unwrap();
        assert_ne!(ip_of(&any), ip_of(&asked));
        assert_eq!(allocated(&c).await.len(), 2);
        check(
            &c.create(ADMIN, service("clash", "10.96.0.9")).await,
            "422 Invalid: spec.clusterIP: the provided IP (10.96.0.9) is already allocated",
        );
        check(&c.create(ADMIN, service("far", "10.200.0.1")).await, "422 Invalid: spec.clusterIP");
        // A create refused by the store (the name exists) gives its IP back.
        check(&c.create(ADMIN, service("asked", "")).await, "409 AlreadyExists");
        assert_eq!(allocated(&c).await.len(), 2);

        let deleted = c
            .object(
                ADMIN,
                api::Operation::Delete {
                    resource: Resource::Services,
                    namespace: "default".into(),
                    name: "asked".into(),
                    precondition: None,
                    options: Default::default(),
                    fence: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(ip_of(&deleted), "10.96.0.9".parse::<Ipv4Addr>().unwrap());
        assert_eq!(allocated(&c).await, vec![ip_of(&any)]);
        check(&c.create(ADMIN, service("again", "10.96.0.9")).await, "ok");
    });
}

#[test]
fn a_services_cluster_ip_is_immutable() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        let created = c.create(ADMIN, service("web", "10.96.0.4")).await.unwrap().into_service().unwrap();
        let mut moved = created.clone();
        moved.spec.cluster_ip = "10.96.0.5".into();
        check(&c.update(ADMIN, moved).await, "422 Invalid: spec.clusterIP: field is immutable");
        let mut omitted = created;
        omitted.spec.cluster_ip = String::new();
        omitted.spec.ports[0].port = 81;
        let updated = c.update(ADMIN, omitted).await.unwrap();
        assert_eq!(ip_of(&updated), "10.96.0.4".parse::<Ipv4Addr>().unwrap(), "an omitted IP is kept");
    });
}

/// repair.go: a Service whose IP the bitmap lost is marked again; an IP no Service holds
/// is kept for three rounds, then freed.
#[test]
fn the_repair_loop_marks_lost_ips_and_frees_leaks_after_their_grace() {
    simulate(async {
        let c = Cluster::start(|_| {}).await;
        c.create(ADMIN, service("web", "10.96.0.4")).await.unwrap();
        let allocator = ServiceIpAllocator::new(c.store.clone(), ServiceIpRange::DEFAULT);
        // The bitmap loses web's IP and holds one nobody has.
        let stored = allocator.read().await.unwrap();
        let mut wrong = AllocationBitmap::new(ServiceIpRange::DEFAULT);
        wrong.allocate("10.96.0.7".parse().unwrap()).unwrap();
        assert!(allocator.compare_and_swap(&wrong, stored.mod_revision).await.unwrap());

        let registry = c.server.registry().clone();
        let mut repair = Repair::new(registry);
        let first = repair.run_once().await.unwrap();
        assert_eq!(first.not_allocated.len(), 1, "{first:?}");
        assert_eq!(first.leaks_flagged, vec!["10.96.0.7".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(allocated(&c).await.len(), 2);
        repair.run_once().await.unwrap();
        let third = repair.run_once().await.unwrap();
        assert_eq!(third.leaks_freed, vec!["10.96.0.7".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(allocated(&c).await, vec!["10.96.0.4".parse::<Ipv4Addr>().unwrap()]);
    });
}
