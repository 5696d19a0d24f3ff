//! `FaultKind`: the menu a campaign chooses from (`kubesim campaign --faults KINDS`). A kind
//! groups the faults a user thinks of as one thing ("partitions", "crashes").

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::plan::Fault;

/// A family of faults, named in kebab-case on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Every partition shape: concrete groups, isolate the store leader or an apiserver,
    /// majorities-ring, bridge, one-way.
    Partition,
    PacketLoss,
    Latency,
    Clog,
    /// Crash and restart of any component.
    Crash,
    Pause,
    /// Power-loss crash of a store member that tears its last unsynced write.
    DiskCrash,
    /// Power loss of every store member at once (`power-loss`).
    PowerLoss,
    /// A bit flip in a synced WAL record of one store member.
    Corruption,
    Clock,
    /// Store members crashed at failpoints of their ready loop and restarted
    /// (`crash-at-failpoint`), in bursts, and rolling kills of whoever leads
    /// (`leader-chase`).
    Failpoint,
    /// Operator `snapshot save` backups every few simulated seconds, kept off-cluster.
    /// Not a fault; the generator schedules them whenever a disk-loss kind is enabled,
    /// and `--faults backup` asks for backups alone.
    Backup,
    /// One store member's disk wiped (`disk-loss`), then replaced by the operator.
    DiskLoss,
    /// A majority of the store's disks wiped at once, then restored from a backup.
    DiskLossMajority,
    /// Every store disk wiped at once, then restored from a backup (or total loss).
    DiskLossAll,
    /// The bytes of a stored (off-cluster) backup flipped (`snapshot-corruption`).
    SnapshotCorruption,
}

impl FaultKind {
    /// Every kind, in menu order: the default menu ([`FaultKind::DEFAULT`]) first, then
    /// the backup and disk-loss kinds, which a campaign asks for by name.
    pub const ALL: [FaultKind; 16] = [
        FaultKind::Partition,
        FaultKind::PacketLoss,
        FaultKind::Latency,
        FaultKind::Clog,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::DiskCrash,
        FaultKind::PowerLoss,
        FaultKind::Corruption,
        FaultKind::Clock,
        FaultKind::Failpoint,
        FaultKind::Backup,
        FaultKind::DiskLoss,
        FaultKind::DiskLossMajority,
        FaultKind::DiskLossAll,
        FaultKind::SnapshotCorruption,
    ];

    /// The default menu (`--faults all`): every fault a correct cluster survives without
    /// an operator. The disk-loss kinds are left out on purpose: a majority or total loss
    /// ends in a restore with an expected data-loss window (or in `total-loss`), which
    /// changes what a passing seed means, so a campaign opts into them by name
    /// (`--faults disk-loss,disk-loss-majority,disk-loss-all,snapshot-corruption`).
    /// Keeping the default menu as it was also keeps every seed of it generating the same
    /// plan as before.
    pub const DEFAULT: [FaultKind; 11] = [
        FaultKind::Partition,
        FaultKind::PacketLoss,
        FaultKind::Latency,
        FaultKind::Clog,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::DiskCrash,
        FaultKind::PowerLoss,
        FaultKind::Corruption,
        FaultKind::Clock,
        FaultKind::Failpoint,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::PacketLoss => "packet-loss",
            FaultKind::Latency => "latency",
            FaultKind::Clog => "clog",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::DiskCrash => "disk-crash",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::Corruption => "corruption",
            FaultKind::Clock => "clock",
            FaultKind::Failpoint => "failpoint",
            FaultKind::Backup => "backup",
            FaultKind::DiskLoss => "disk-loss",
            FaultKind::DiskLossMajority => "disk-loss-majority",
            FaultKind::DiskLossAll => "disk-loss-all",
            FaultKind::SnapshotCorruption => "snapshot-corruption",
        }
    }

    /// The kind a fault belongs to.
    pub fn of(fault: &Fault) -> FaultKind {
        match fault {
            Fault::Partition { .. }
            | Fault::IsolateStoreLeader
            | Fault::IsolateApiServer { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge
            | Fault::OneWay { .. } => FaultKind::Partition,
            Fault::PacketLoss { .. } => FaultKind::PacketLoss,
            Fault::LatencySpike { .. } => FaultKind::Latency,
            Fault::ClogLink { .. } => FaultKind::Clog,
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::CrashStoreMember { .. } => FaultKind::DiskCrash,
            Fault::PowerLoss { .. } => FaultKind::PowerLoss,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::CorruptRecord { .. } => FaultKind::Corruption,
            Fault::ClockSkew { .. } => FaultKind::Clock,
            Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. } => FaultKind::Failpoint,
            Fault::Backup { .. } => FaultKind::Backup,
            Fault::DiskLoss { .. } => FaultKind::DiskLoss,
            Fault::DiskLossMajority { .. } => FaultKind::DiskLossMajority,
            Fault::DiskLossAll => FaultKind::DiskLossAll,
            Fault::SnapshotCorruption { .. } => FaultKind::SnapshotCorruption,
        }
    }

    /// The default menu (`--faults all`), as a set: see [`FaultKind::DEFAULT`].
    pub fn all() -> BTreeSet<FaultKind> {
        Self::DEFAULT.into_iter().collect()
    }

    /// Whether the kind wipes store disks, which brings in the operator's backups.
    pub fn loses_disks(self) -> bool {
        matches!(
            self,
            FaultKind::DiskLoss | FaultKind::DiskLossMajority | FaultKind::DiskLossAll | FaultKind::SnapshotCorruption
        )
    }

    /// Parses a comma-separated list such as `"partition,crash"`. Spaces around names
    /// are ignored, repeats are harmless; an empty list or an unknown name is an error.
    pub fn parse_list(list: &str) -> Result<BTreeSet<FaultKind>, FaultKindError> {
        if list.trim().is_empty() {
            return Err(FaultKindError::EmptyList);
        }
        list.split(',')
            .map(|name| match name.trim() {
                "" => Err(FaultKindError::EmptyName { list: list.to_string() }),
                name => name.parse(),
            })
            .collect()
    }
}

impl Fault {
    /// The kind this fault belongs to.
    pub fn kind(&self) -> FaultKind {
        FaultKind::of(self)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault kind list could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultKindError {
    #[error("unknown fault kind {name:?} (known kinds: {})", known_kinds())]
    Unknown { name: String },
    #[error("empty fault kind list (known kinds: {})", known_kinds())]
    EmptyList,
    #[error("empty fault kind name in list {list:?} (known kinds: {})", known_kinds())]
    EmptyName { list: String },
}

fn known_kinds() -> String {
    FaultKind::ALL.map(FaultKind::name).join(", ")
}

impl FromStr for FaultKind {
    type Err = FaultKindError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| FaultKindError::Unknown { name: name.to_string() })
    }
}
