//! The ClusterIP repair loop every apiserver runs (Kubernetes
//! `pkg/registry/core/service/ipallocator/controller/repair.go`, `Repair.runOnce`): it
//! rebuilds the bitmap from the Services that exist and writes it back with a
//! compare-and-swap on the bitmap it read.
//!
//! One round, in Kubernetes' order:
//! 1. read the bitmap (`alloc.Get`), *then* list every Service (a linearizable list, at a
//!    revision after the read). Allocation precedes a Service's create, so a Service in
//!    the list whose IP was allocated after the read makes the final compare fail;
//! 2. rebuild: each listed Service's IP is marked. One the stored bitmap did not hold is
//!    reported ("is not allocated; repairing") and marked; one two Services hold is
//!    reported ("was assigned to multiple services; please recreate"; Kubernetes cannot
//!    choose which to keep, neither does kubesim);
//! 3. an IP the stored bitmap holds that no listed Service holds may be a create in
//!    flight (allocated, not yet committed): it is kept for
//!    [`NUM_REPAIRS_BEFORE_LEAK_CLEANUP`] rounds of this apiserver, then freed as leaked;
//! 4. write the rebuilt bitmap with a compare on the mod_revision read in step 1; on
//!    conflict the round starts over (`retry.RetryOnConflict`).
//!
//! kubesim skips step 4 when the rebuilt bitmap equals the stored one (Kubernetes writes
//! it every time); the result is the same, with fewer writes racing allocations.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use api::{ApiError, Object, Resource};

use crate::backend::Backend;
use crate::registry::Registry;
use crate::service_ips::{AllocationBitmap, AllocationError, StoredBitmap};

/// Rounds an IP must stay allocated without a Service before it is freed (Kubernetes'
/// `numRepairsBeforeLeakCleanup`).
pub const NUM_REPAIRS_BEFORE_LEAK_CLEANUP: u32 = 3;
/// Rounds tried when the bitmap keeps changing under the repair (client-go's
/// `retry.DefaultBackoff` takes 4 steps).
pub const MAX_REPAIR_ATTEMPTS: usize = 4;

/// What one round found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub n_services: usize,
    /// Services whose IP the stored bitmap did not hold (now marked).
    pub not_allocated: Vec<(String, Ipv4Addr)>,
    /// IPs held by more than one Service: the IP and the Services after the first.
    pub duplicates: Vec<(Ipv4Addr, String)>,
    /// Services whose clusterIP is malformed or outside the range.
    pub invalid: Vec<String>,
    /// IPs allocated with no Service, kept for now.
    pub leaks_flagged: Vec<Ipv4Addr>,
    /// IPs allocated with no Service for their whole grace, freed.
    pub leaks_freed: Vec<Ipv4Addr>,
    /// Whether the rebuilt bitmap was written.
    pub wrote: bool,
}

/// The pure half of a round: the bitmap rebuilt from `stored` and the Services listed
/// (`(namespace/name, clusterIP)`), with `leaks` (IP -> rounds left) carried between rounds.
pub fn rebuild(
    stored: &AllocationBitmap,
    services: &[(String, String)],
    leaks: &mut BTreeMap<Ipv4Addr, u32>,
) -> (AllocationBitmap, RepairReport) {
    let range = stored.range();
    let mut rebuilt = AllocationBitmap::new(range);
    let mut unclaimed = stored.clone();
    let mut report = RepairReport { n_services: services.len(), ..RepairReport::default() };
    for (service, cluster_ip) in services {
        let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() else {
            report.invalid.push(service.clone());
            continue;
        };
        match rebuilt.allocate(ip) {
            Ok(()) => {
                if !unclaimed.release(ip) {
                    report.not_allocated.push((service.clone(), ip));
                }
                leaks.remove(&ip);
            }
            Err(AllocationError::Allocated { .. }) => report.duplicates.push((ip, service.clone())),
            Err(_) => report.invalid.push(service.clone()),
        }
    }
    for ip in unclaimed.allocated() {
        let rounds_left = leaks.entry(ip).or_insert(NUM_REPAIRS_BEFORE_LEAK_CLEANUP);
        if *rounds_left > 1 {
            *rounds_left -= 1;
            report.leaks_flagged.push(ip);
            rebuilt.allocate(ip).expect("an IP no listed Service holds is free in the rebuilt bitmap");
        } else {
            leaks.remove(&ip);
            report.leaks_freed.push(ip);
        }
    }
    (rebuilt, report)
}

/// One apiserver's repair loop state: its leak counts.
pub struct Repair<B> {
    registry: Registry<B>,
    leaks: BTreeMap<Ipv4Addr, u32>,
}

impl<B: Backend> Repair<B> {
    pub fn new(registry: Registry<B>) -> Self {
        Self { registry, leaks: BTreeMap::new() }
    }

    /// One round, started over on conflict.
    pub async fn run_once(&mut self) -> Result<RepairReport, ApiError> {
        for _attempt in 0..MAX_REPAIR_ATTEMPTS {
            if let Some(report) = self.try_once().await? {
                return Ok(report);
            }
        }
        Err(ApiError::Conflict { reason: "the ClusterIP bitmap kept changing under the repair".into() })
    }

    /// `None` when the final compare-and-swap lost to another writer.
    async fn try_once(&mut self) -> Result<Option<RepairReport>, ApiError> {
        let allocator = self.registry.service_ips().clone();
        let StoredBitmap { bitmap: stored, mod_revision } = allocator.read().await?;
        let services: Vec<(String, String)> = match self.registry.list(Resource::Services, "").await? {
            api::ApiResponse::List { items, .. } => items
                .into_iter()
                .filter_map(Object::into_service)
                .map(|s| (format!("{}/{}", s.metadata.namespace, s.metadata.name), s.spec.cluster_ip))
                .collect(),
            other => return Err(ApiError::Internal { reason: format!("a list answered {other:?}") }),
        };
        // The leak counts change only if the write lands (a lost round is not a round).
        let mut leaks = self.leaks.clone();
        let (rebuilt, mut report) = rebuild(&stored, &services, &mut leaks);
        if rebuilt != stored || mod_revision == 0 {
            if !allocator.compare_and_swap(&rebuilt, mod_revision).await? {
                return Ok(None);
            }
            report.wrote = true;
            coverage::reached!("apiserver.service-ip.repair.ran");
        }
        self.leaks = leaks;
        Ok(Some(report))
    }
}

/// Runs the repair every `interval`, the first round at once (Kubernetes' `RunUntil`).
pub async fn run<B: Backend>(registry: Registry<B>, interval: Duration) {
    let mut repair = Repair::new(registry);
    loop {
        match repair.run_once().await {
            Ok(report) => log(&report),
            Err(e) => tracing::debug!("the ClusterIP repair failed, will retry: {e}"),
        }
        madsim::time::sleep(interval).await;
    }
}

fn log(report: &RepairReport) {
    for (service, ip) in &report.not_allocated {
        coverage::reached!("apiserver.service-ip.repair.not-allocated");
        tracing::info!("the cluster IP {ip} for service {service} is not allocated; repairing");
    }
    for (ip, service) in &report.duplicates {
        coverage::reached!("apiserver.service-ip.repair.duplicate");
        tracing::warn!("the cluster IP {ip} for service {service} was assigned to multiple services; please recreate");
    }
    for ip in &report.leaks_flagged {
        coverage::reached!("apiserver.service-ip.repair.leak-flagged");
        tracing::debug!("the cluster IP {ip} may have leaked: flagging for later clean up");
    }
    for ip in &report.leaks_freed {
        coverage::reached!("apiserver.service-ip.repair.leak-freed");
        tracing::info!("the cluster IP {ip} appears to have leaked: cleaning up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_ips::ServiceIpRange;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn bitmap(ips: &[&str]) -> AllocationBitmap {
        let mut bitmap = AllocationBitmap::new(ServiceIpRange::DEFAULT);
        for text in ips {
            bitmap.allocate(ip(text)).unwrap();
        }
        bitmap
    }

    fn services(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(s, ip)| (s.to_string(), ip.to_string())).collect()
    }

    /// repair.go: an IP no Service holds is kept for `numRepairsBeforeLeakCleanup` rounds
    /// (it may be a create in flight), then freed; a Service seen meanwhile clears it.
    #[test]
    fn a_leaked_ip_is_freed_only_after_its_grace() {
        let mut leaks = BTreeMap::new();
        let stored = bitmap(&["10.96.0.1", "10.96.0.2"]);
        let listed = services(&[("default/a", "10.96.0.1")]);
        for round in 1..NUM_REPAIRS_BEFORE_LEAK_CLEANUP {
            let (rebuilt, report) = rebuild(&stored, &listed, &mut leaks);
            assert_eq!(rebuilt, stored, "round {round} keeps the possible leak");
            assert_eq!(report.leaks_flagged, vec![ip("10.96.0.2")]);
        }
        let (rebuilt, report) = rebuild(&stored, &listed, &mut leaks);
        assert_eq!(rebuilt, bitmap(&["10.96.0.1"]));
        assert_eq!(report.leaks_freed, vec![ip("10.96.0.2")]);
        assert!(leaks.is_empty());

        // The Service whose create was in flight shows up: no longer a leak.
        let mut leaks = BTreeMap::new();
        rebuild(&stored, &listed, &mut leaks);
        let (_, report) =
            rebuild(&stored, &services(&[("default/a", "10.96.0.1"), ("default/b", "10.96.0.2")]), &mut leaks);
        assert!(report.leaks_flagged.is_empty() && leaks.is_empty());
    }

    #[test]
    fn unallocated_and_duplicate_ips_are_reported_and_marked() {
        let mut leaks = BTreeMap::new();
        let listed = services(&[("default/a", "10.96.0.3"), ("default/b", "10.96.0.3"), ("default/c", "10.99.0.1")]);
        let (rebuilt, report) = rebuild(&bitmap(&[]), &listed, &mut leaks);
        assert_eq!(rebuilt, bitmap(&["10.96.0.3"]));
        assert_eq!(report.not_allocated, vec![("default/a".to_string(), ip("10.96.0.3"))]);
        assert_eq!(report.duplicates, vec![(ip("10.96.0.3"), "default/b".to_string())]);
        assert_eq!(report.invalid, vec!["default/c".to_string()]);
    }
}
