//! FaultKind: command-line names, list parsing and the kind of each fault.

use std::collections::BTreeSet;

use faults::{Fault, FaultKind, Slot, Target};

const KNOWN: &str = "known kinds: partition, packet-loss, latency, clog, crash, pause, disk-crash, power-loss, \
                     corruption, clock, failpoint, backup, disk-loss, disk-loss-majority, disk-loss-all, \
                     snapshot-corruption";

#[test]
fn every_kind_parses_from_its_name() {
    for kind in FaultKind::ALL {
        assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.name());
    }
    // The default menu leaves the disk-loss kinds (and their backups) out.
    assert_eq!(FaultKind::all().len(), FaultKind::DEFAULT.len());
    assert!(FaultKind::all().iter().all(|kind| !kind.loses_disks() && *kind != FaultKind::Backup));
}

#[test]
fn lists_parse_into_sets() {
    assert_eq!(
        FaultKind::parse_list("partition,crash").unwrap(),
        BTreeSet::from([FaultKind::Partition, FaultKind::Crash])
    );
    assert_eq!(
        FaultKind::parse_list(" disk-crash , clock,disk-crash").unwrap(),
        BTreeSet::from([FaultKind::DiskCrash, FaultKind::Clock])
    );
    let everything = FaultKind::ALL.map(FaultKind::name).join(",");
    assert_eq!(FaultKind::parse_list(&everything).unwrap(), FaultKind::ALL.into_iter().collect());
}

#[test]
fn parse_errors_list_the_known_kinds() {
    let error = |list: &str| FaultKind::parse_list(list).unwrap_err().to_string();
    assert_eq!(error("partition,gremlins"), format!("unknown fault kind \"gremlins\" ({KNOWN})"));
    assert_eq!(error("Partition"), format!("unknown fault kind \"Partition\" ({KNOWN})"));
    assert_eq!(error(""), format!("empty fault kind list ({KNOWN})"));
    assert_eq!(error("  "), format!("empty fault kind list ({KNOWN})"));
    assert_eq!(error("partition,,crash"), format!("empty fault kind name in list \"partition,,crash\" ({KNOWN})"));
    assert_eq!("".parse::<FaultKind>().unwrap_err().to_string(), format!("unknown fault kind \"\" ({KNOWN})"));
}

#[test]
fn each_fault_maps_to_its_kind() {
    let target = Target::StoreMember(Slot(1));
    let flip = faults::BitFlip { offset_ppm: 0, xor_mask: 1 };
    let cases = [
        (Fault::Partition { groups: vec![] }, FaultKind::Partition),
        (Fault::IsolateStoreLeader, FaultKind::Partition),
        (Fault::IsolateApiServer { apiserver: 0 }, FaultKind::Partition),
        (Fault::MajoritiesRing, FaultKind::Partition),
        (Fault::Bridge, FaultKind::Partition),
        (Fault::OneWay { from: target.clone(), to: Target::StoreLeader }, FaultKind::Partition),
        (Fault::PacketLoss { rate: 0.1 }, FaultKind::PacketLoss),
        (Fault::LatencySpike { min_ms: 1, max_ms: 2 }, FaultKind::Latency),
        (Fault::ClogLink { a: target.clone(), b: Target::Kubelet(0) }, FaultKind::Clog),
        (Fault::Crash { target: target.clone() }, FaultKind::Crash),
        (Fault::Pause { target: target.clone() }, FaultKind::Pause),
        (Fault::CrashStoreMember { member: target.clone(), tear: None }, FaultKind::DiskCrash),
        (Fault::PowerLoss { tears: Default::default() }, FaultKind::PowerLoss),
        (Fault::CorruptRecord { member: target.clone(), flip }, FaultKind::Corruption),
        (
            Fault::CrashAtFailpoint {
                member: target.clone(),
                failpoint: faults::Failpoint::RaftAfterSave,
                restart_after_ms: 0,
                passes: 0,
            },
            FaultKind::Failpoint,
        ),
        (Fault::ClockSkew { target: target.clone(), offset_ms: 1, drift_ms_per_s: 0 }, FaultKind::Clock),
        (Fault::Backup { member: target.clone() }, FaultKind::Backup),
        (Fault::DiskLoss { member: target }, FaultKind::DiskLoss),
        (Fault::DiskLossMajority { members: vec![] }, FaultKind::DiskLossMajority),
        (Fault::DiskLossAll, FaultKind::DiskLossAll),
        (Fault::SnapshotCorruption { flip }, FaultKind::SnapshotCorruption),
    ];
    for (fault, kind) in cases {
        assert_eq!(fault.kind(), kind, "{fault:?}");
    }
}
