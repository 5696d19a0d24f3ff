//! The faults a plan holds ([`Fault`]) and the exact choices each carries: which
//! failpoint, how much of a torn write survives ([`Tear`]), which byte rots
//! ([`BitFlip`]), which members lose their disks. Since plan format 2 a fault says
//! everything the nemesis will do with it; nothing is drawn while the plan runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::target::Target;

/// Fractions in plans are in parts per million of a length known only when the fault
/// is applied (the length of a write, of a file).
pub const PPM: u32 = 1_000_000;

/// How much of a store member's last unsynced write survives a power loss that tears it
/// (ALICE, "All File Systems Are Not Created Equal": the page cache was being written
/// back in order when the power failed): `kept_ppm` millionths of the write, rounded
/// down, reach the disk together with every write before it. The write's length is
/// known only at the crash, so the plan holds the fraction. In JSON
/// `{"kept_ppm": 250000}`: a quarter of the write is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tear {
    /// 0 to [`PPM`] (the whole write).
    pub kept_ppm: u32,
}

impl Tear {
    /// The bytes kept of a torn write of `len` bytes: `0..=len`.
    pub fn kept_bytes(self, len: u64) -> u64 {
        debug_assert!(self.kept_ppm <= PPM);
        (u128::from(len) * u128::from(self.kept_ppm) / u128::from(PPM)) as u64
    }
}

/// Bit rot at one byte of a file (TigerBeetle's and "Protocol-Aware Recovery"'s storage
/// faults): the byte `offset_ppm` millionths into the file (rounded down, so 0 is its
/// first byte) is XORed with `xor_mask`, which is never 0. The file's length is known
/// only when the fault is applied, so the plan holds the fraction. In JSON
/// `{"offset_ppm": 500000, "xor_mask": 4}`: bit 2 of the middle byte flips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitFlip {
    /// 0 to [`PPM`] − 1: the byte is always inside the file.
    pub offset_ppm: u32,
    /// The bits flipped; at least one.
    pub xor_mask: u8,
}

impl BitFlip {
    /// The offset of the flipped byte in a file of `len` bytes (`0..len` when `len > 0`).
    pub fn offset(self, len: u64) -> u64 {
        debug_assert!(self.offset_ppm < PPM);
        (u128::from(len) * u128::from(self.offset_ppm) / u128::from(PPM)) as u64
    }
}

/// The longest a member crashed at a failpoint stays down before it restarts.
pub const MAX_FAILPOINT_RESTART_MS: u64 = 10_000;
/// The most passes a `crash-at-failpoint` may let by before it fires.
pub const MAX_FAILPOINT_PASSES: u32 = 1_000;
/// The most steps one `leader-chase` holds.
pub const MAX_CHASE_STEPS: usize = 32;

/// One kill of a `leader-chase`: whichever member first reaches `failpoint` (after
/// `passes` passes of its own) dies there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaseStep {
    pub failpoint: Failpoint,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passes: u32,
}

/// A point in a store member's ready loop where `crash-at-failpoint` kills it, after
/// etcd's gofail failpoints in `etcdserver/raft.go` that its robustness tests set to
/// `panic` before restarting the member (the store's `server::failpoint` documents
/// each). In JSON: `"raft-before-save"`, `"raft-after-save"`,
/// `"raft-before-leader-send"`, `"raft-after-vote"`, `"raft-leader-after-apply"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failpoint {
    /// etcd `raftBeforeSave`: a Ready was taken from Raft, nothing of it written.
    RaftBeforeSave,
    /// etcd `raftAfterSave`: the Ready is fsynced, none of its messages sent.
    RaftAfterSave,
    /// etcd `raftBeforeLeaderSend`: a leader's Ready is fsynced, its appends unsent, so
    /// its newest entries live on its own disk only.
    RaftBeforeLeaderSend,
    /// Right after a Ready granting a vote was fsynced and sent: the candidate has the
    /// vote, the voter dies, and must come back still bound by it (Raft §5.2).
    RaftAfterVote,
    /// Right after a leader applied what a Ready committed, before it sends that Ready's
    /// messages: no follower has heard the new commit index. Armed on a new leader it
    /// fires at the first commit of its term (Raft's Figure 8 (c) when the leader counts
    /// old-term replicas).
    RaftLeaderAfterApply,
}

impl Failpoint {
    pub const ALL: [Failpoint; 5] = [
        Failpoint::RaftBeforeSave,
        Failpoint::RaftAfterSave,
        Failpoint::RaftBeforeLeaderSend,
        Failpoint::RaftAfterVote,
        Failpoint::RaftLeaderAfterApply,
    ];

    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::RaftBeforeSave => "raft-before-save",
            Failpoint::RaftAfterSave => "raft-after-save",
            Failpoint::RaftBeforeLeaderSend => "raft-before-leader-send",
            Failpoint::RaftAfterVote => "raft-after-vote",
            Failpoint::RaftLeaderAfterApply => "raft-leader-after-apply",
        }
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault. Each variant says what real-world failure it reproduces; the nemesis
/// (`nemesis.rs`) says how it is applied and healed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// A network partition with concrete sides (Jepsen `partition-random-halves`,
    /// `partition-random-node`; etcd robustness `blackhole` between members): nodes in
    /// different groups cannot exchange messages in either direction; nodes not listed in
    /// any group stay connected to everyone. `store-leader` may appear in a group: it is
    /// resolved when applied and then taken out of any other group that names it, so
    /// `[["store-leader"], ["store-1", "store-2", "store-3"]]` cuts the leader off from
    /// its peers while clients can still reach it (the stale-leader scenario).
    Partition { groups: Vec<Vec<Target>> },
    /// Cuts the current Raft leader off from every other node (Jepsen `partition-leader`
    /// / etcd robustness "blackhole the leader"): it must step down by check-quorum and
    /// must not serve linearizable reads from its stale state meanwhile.
    IsolateStoreLeader,
    /// Cuts one apiserver off from every other node (a kube-apiserver on a node whose
    /// NIC or top-of-rack switch failed): its clients fail over, its watches must resume
    /// elsewhere without losing or reordering events.
    #[serde(rename = "isolate-apiserver")]
    IsolateApiServer { apiserver: u32 },
    /// Jepsen's `partition-majorities-ring` over the store members: every member sees a
    /// majority (itself included) but no two members see the same majority, so several
    /// members believe they can win elections at once. See `nemesis::majorities_ring`.
    MajoritiesRing,
    /// Jepsen's `bridge` over the store members: two halves that can talk only through
    /// one bridge member, which sees everyone. See `nemesis::bridge`.
    Bridge,
    /// An asymmetric link failure (a one-way firewall rule, a half-broken NIC; Jepsen
    /// `partition` with a one-sided grudge): messages `from → to` are dropped, `to → from`
    /// still pass. Raft must not be fooled by receiving but never being heard.
    OneWay { from: Target, to: Target },
    /// Random loss of `rate` of all messages, everywhere (lossy network, etcd robustness
    /// `DropPeerNetwork`-style flakiness); `0 < rate <= 0.5` so that progress is possible.
    PacketLoss { rate: f64 },
    /// Every message's latency drawn from `min_ms..=max_ms` (a congested or
    /// cross-region link, Jepsen `slow` / `tc netem delay`): timeouts fire, requests
    /// retry and arrive late, elections and lease renewals race.
    LatencySpike { min_ms: u64, max_ms: u64 },
    /// One link between `a` and `b` clogged in both directions (madsim `clog_link`,
    /// FoundationDB's clogged connections): the rest of the network is fine.
    ClogLink { a: Target, b: Target },
    /// Kill the process and restart it when the fault heals (Jepsen `kill`, a OOM kill,
    /// `kubectl delete pod`). A store member crashed this way also loses every write it
    /// had not fsynced, as a power loss would.
    Crash { target: Target },
    /// Power loss on a store member's machine (etcd robustness `kill` with unsynced data
    /// lost, ALICE / "Files are hard" torn writes): the member is killed, loses every
    /// write not yet fsynced and, with a `tear`, keeps that part of its last unsynced
    /// write (`"tear": null`: none of it). It restarts when the fault heals and must
    /// recover from its WAL.
    CrashStoreMember {
        member: Target,
        #[serde(default)]
        tear: Option<Tear>,
    },
    /// Power loss of the whole store at once (a datacenter or rack power cut, every VM of
    /// the cluster on one failed host; Jepsen's `kill` of all nodes with LazyFS losing
    /// unsynced writes, etcd robustness's "kill all members"): every store member is
    /// killed at the same instant and loses every write not yet fsynced; with `tears`,
    /// each member keeps its own part of its last unsynced write (`tears` names every
    /// store member, or none). They all restart when the fault heals.
    /// Unlike a minority crash this leaves no member holding anything in memory, so it is
    /// the fault that tells an fsynced acknowledgement from one that only reached a page
    /// cache: a correct store loses no acknowledged write, only availability.
    PowerLoss {
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tears: BTreeMap<Target, Tear>,
    },
    /// Crash a store member when its ready loop next reaches `failpoint`, and restart it
    /// `restart_after_ms` later (0: at once), as etcd's robustness tests do with gofail
    /// failpoints (`raftBeforeSave=panic`, `raftAfterSave=panic`,
    /// `raftBeforeLeaderSend=panic`; a member is then restarted right away). The point is
    /// armed from `at_ms` until `restart_after_ms` before the event heals (so that the
    /// member is back by then); if the member never reaches it, nothing happens. The
    /// crash loses nothing synced: at these points the disk holds exactly what the
    /// member fsynced. Unlike a crash at a random instant, it lands in the middle of the
    /// persistence pipeline: a vote granted then forgotten, a leader's entries on its own
    /// disk only. `store-leader` is resolved when the point is armed. With `passes` > 0
    /// the member passes the point that many times unharmed first (gofail's
    /// `N*off->panic`): `raft-before-leader-send` after 2 passes kills a new leader at its
    /// third Ready with messages, when its probes have just found what a follower lacks.
    CrashAtFailpoint {
        member: Target,
        failpoint: Failpoint,
        restart_after_ms: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        passes: u32,
    },
    /// Rolling kills of whoever leads (Jepsen's leader-targeted `kill` nemesis run as a
    /// chain, etcd robustness's `raftBeforeLeaderSend` panics with the member restarted
    /// once the next one fell): step by step, every store member but the last victim is
    /// armed at the step's failpoint; the first to reach it is crashed there, the
    /// previous victim restarts in the same instant, and the next step is armed. So at
    /// most one member is down at a time, and each kill lands in the state the previous
    /// one left: the next leader dies at its first send or its first commit, whoever it
    /// is, which pre-timed crashes of named members reach only by luck. The chain of
    /// `raft-before-leader-send`, `raft-before-leader-send`, `raft-leader-after-apply`
    /// is Raft's Figure 8: S1 dies with entries on its disk only, S5 wins without them
    /// and dies with its own entry at their index, S1 wins back and commits, S5 returns.
    /// The last victim stays down until the fault heals, when any step not yet reached
    /// is disarmed.
    LeaderChase { steps: Vec<ChaseStep> },
    /// Stop-the-world pause of a process until the fault heals (a long GC pause, a VM
    /// migration, `SIGSTOP`; Jepsen `hammer-time`): the process wakes up with stale
    /// leases and leadership it no longer holds and must notice before acting.
    Pause { target: Target },
    /// Flip bits of one byte of a store member's fsynced WAL, where `flip` says (bit
    /// rot, a misdirected write; the disk corruption TigerBeetle and "Protocol-Aware
    /// Recovery" test for), then crash and restart the member when the fault heals.
    /// Recovery must detect the corruption by checksum and the member must refuse to
    /// start: it may never serve or vote from corrupt data. It stays down afterwards.
    CorruptRecord { member: Target, flip: BitFlip },
    /// A node's clock runs `offset_ms` off the true time and gains `drift_ms_per_s`
    /// every second (NTP failure, VM clock drift; Jepsen `clock` nemesis). Leases and
    /// leader election read this clock; a skewed lease holder must not act on a lease
    /// that has already expired elsewhere. A store member's Raft counts its own ticks, but
    /// its lessor reads the member's clock while it leads (lease expiry), so a skew may aim
    /// at a store member or `store-leader`. A skew of no offset and no drift changes
    /// nothing: validation refuses it.
    ClockSkew { target: Target, offset_ms: i64, drift_ms_per_s: i64 },
    /// Operator action, not a fault: `etcdctl snapshot save` against `member` (a
    /// consistent copy of the keyspace at the member's applied revision R, with its
    /// checksum), kept off-cluster by the world; the latest good backups are retained
    /// (etcd's disaster-recovery guide: "regularly back up the keyspace"). A backup that
    /// fails (member down, no quorum) is recorded as failed and changes nothing.
    Backup { member: Target },
    /// The disk of one store member is lost (a failed SSD, a replaced VM; etcd's "member
    /// disk failure"): its data is wiped and the member killed. When the fault heals the
    /// operator replaces it as etcd's runtime-reconfiguration guide says: `member remove`
    /// the dead member, `member add` a new identity on a new address, and start it with
    /// an empty data dir and `--initial-cluster-state existing`, so that it catches up
    /// from the leader (by snapshot when the log was compacted). The apiserver's store
    /// client follows the new endpoint list. Until then the member counts as down.
    DiskLoss { member: Target },
    /// A majority of the store members, `members` (concrete `store-N` targets), lose
    /// their disks at the same instant: quorum is gone for good. When the
    /// fault heals the operator follows etcd's disaster-recovery procedure: stop the
    /// apiservers, restore every member from the latest backup whose checksum verifies
    /// (`etcdutl snapshot restore` with new cluster and member ids, `--bump-revision`
    /// and `--mark-compacted`, as Kubernetes' etcd restore docs require so that
    /// revisions never go backwards for watchers), start the members and the apiservers
    /// on the new endpoints. Writes acknowledged after the backup's revision are the
    /// expected data-loss window.
    DiskLossMajority { members: Vec<Target> },
    /// Every store member loses its disk at once. Healed by the same restore as
    /// `disk-loss-majority`; with no good backup the run ends as `total-loss` ("if etcd
    /// data is lost and no backup exists, the cluster state is lost"): an expected
    /// outcome, reported with the number of acknowledged objects lost.
    DiskLossAll,
    /// Bit rot in the off-cluster backup store: one byte of the most recent backup
    /// flipped where `flip` says. A restore must detect it by checksum (`etcdutl
    /// snapshot restore` verifies the snapshot's hash unless `--skip-hash-check`) and
    /// refuse it with a clear error; the operator then falls back to the next older good
    /// backup.
    SnapshotCorruption { flip: BitFlip },
}

impl Fault {
    /// Targets named by the fault (store members of ring/bridge partitions, of a
    /// leader chase and of `disk-loss-all` are implicit).
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            Fault::Partition { groups } => groups.iter().flatten().collect(),
            Fault::IsolateStoreLeader
            | Fault::IsolateApiServer { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge
            | Fault::PacketLoss { .. }
            | Fault::LatencySpike { .. } => Vec::new(),
            Fault::OneWay { from, to } => vec![from, to],
            Fault::ClogLink { a, b } => vec![a, b],
            Fault::Crash { target } | Fault::Pause { target } => vec![target],
            Fault::CrashStoreMember { member, .. }
            | Fault::CorruptRecord { member, .. }
            | Fault::CrashAtFailpoint { member, .. } => {
                vec![member]
            }
            Fault::PowerLoss { tears } => tears.keys().collect(),
            Fault::LeaderChase { .. } => Vec::new(),
            Fault::ClockSkew { target, .. } => vec![target],
            Fault::Backup { member } | Fault::DiskLoss { member } => vec![member],
            Fault::DiskLossMajority { members } => members.iter().collect(),
            Fault::DiskLossAll | Fault::SnapshotCorruption { .. } => Vec::new(),
        }
    }
}

/// The JSON `kind` of a fault, for messages.
pub(crate) fn kind_name(fault: &Fault) -> &'static str {
    match fault {
        Fault::Partition { .. } => "partition",
        Fault::IsolateStoreLeader => "isolate-store-leader",
        Fault::IsolateApiServer { .. } => "isolate-apiserver",
        Fault::MajoritiesRing => "majorities-ring",
        Fault::Bridge => "bridge",
        Fault::OneWay { .. } => "one-way",
        Fault::PacketLoss { .. } => "packet-loss",
        Fault::LatencySpike { .. } => "latency-spike",
        Fault::ClogLink { .. } => "clog-link",
        Fault::Crash { .. } => "crash",
        Fault::CrashStoreMember { .. } => "crash-store-member",
        Fault::PowerLoss { .. } => "power-loss",
        Fault::Pause { .. } => "pause",
        Fault::CorruptRecord { .. } => "corrupt-record",
        Fault::CrashAtFailpoint { .. } => "crash-at-failpoint",
        Fault::LeaderChase { .. } => "leader-chase",
        Fault::ClockSkew { .. } => "clock-skew",
        Fault::Backup { .. } => "backup",
        Fault::DiskLoss { .. } => "disk-loss",
        Fault::DiskLossMajority { .. } => "disk-loss-majority",
        Fault::DiskLossAll => "disk-loss-all",
        Fault::SnapshotCorruption { .. } => "snapshot-corruption",
    }
}

/// serde: leave a zero `passes` out of plan files.
fn is_zero(n: &u32) -> bool {
    *n == 0
}
