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
    /// (`crash-at-failpoint`), in bursts.
    Failpoint,
}

impl FaultKind {
    /// Every kind, in menu order.
    pub const ALL: [FaultKind; 11] = [
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
            Fault::CrashAtFailpoint { .. } => FaultKind::Failpoint,
        }
    }

    /// Every kind, as a set (the default menu).
    pub fn all() -> BTreeSet<FaultKind> {
        Self::ALL.into_iter().collect()
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
