//! The store's wire protocol between a client (the apiserver) and a member, and between
//! members (Raft messages).
//!
//! Requests travel as madsim payloads (no serialisation inside the simulator). The member
//! serves them with its own receive loop instead of madsim's `add_rpc_handler`, because it
//! needs the sender's address: the store's access log records which node a mutation came
//! from, which a credential alone cannot prove.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::api::{
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberId, Mutation, MutationResponse,
    Principal, RangeRequest, RangeResponse, StoreError, WatchRequest, WatchResponse,
};
use crate::backup::Backup;
use crate::lease::LeaseId;
use crate::raft::Role;

/// Tag of Raft messages between members.
pub const RAFT_TAG: u64 = madsim::net::rpc::hash_str("kubesim.store.raft.v1");

/// Well-known port members listen on (etcd's client port).
pub const STORE_PORT: u16 = 2379;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRequest {
    pub principal: Principal,
    pub op: StoreOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOp {
    Range(RangeRequest),
    Mutate(Mutation),
    /// Events from `request.start_revision` on, waiting up to `wait_ms` for the first.
    WatchPoll {
        request: WatchRequest,
        max_events: usize,
        wait_ms: u64,
    },
    Status,
    /// etcdctl `member add`: served by the leader; answers the new voter list once the
    /// change is applied.
    MemberAdd {
        id: MemberId,
        addr: SocketAddr,
    },
    /// etcdctl `member remove`.
    MemberRemove {
        id: MemberId,
    },
    /// etcdctl `member list`: the leader's committed configuration.
    MemberList,
    /// etcdctl `snapshot save`: the serving member's keyspace at its applied revision.
    SnapshotSave,
    /// etcd `LeaseKeepAlive`: served by the leader alone, not through Raft.
    LeaseKeepAlive {
        id: LeaseId,
    },
    /// etcd `LeaseTimeToLive`: served by the leader (its clock decides the time left).
    LeaseTimeToLive {
        id: LeaseId,
        keys: bool,
    },
    /// etcd `LeaseLeases`: the serving member's lease table.
    LeaseLeases,
}

impl StoreOp {
    /// A request that changes what the store holds or how long it holds it (the store's
    /// access rule: the apiserver role only). A keep-alive writes no key but keeps leased
    /// keys alive, and like a write its outcome is unknown when it goes unanswered.
    pub fn is_mutation(&self) -> bool {
        matches!(self, StoreOp::Mutate(_) | StoreOp::LeaseKeepAlive { .. })
    }

    /// Operator-only requests (membership and backups).
    pub fn is_operator_op(&self) -> bool {
        matches!(
            self,
            StoreOp::MemberAdd { .. } | StoreOp::MemberRemove { .. } | StoreOp::MemberList | StoreOp::SnapshotSave
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreReply {
    Range(RangeResponse),
    Mutate(MutationResponse),
    Watch(WatchResponse),
    Status(MemberStatus),
    /// The voters after a membership change, or the current ones.
    Members(Vec<MemberId>),
    Snapshot(Box<Backup>),
    LeaseKeepAlive(LeaseKeepAliveResponse),
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    LeaseLeases(LeaseLeasesResponse),
}

/// A starting member with an empty disk asks each peer whether it already knows this
/// member (etcd `isMemberBootstrapped`, which asks the remote peers for the cluster's
/// members). Sent on its own tag and answered even before the answering member has
/// finished starting, so members of a new cluster starting together never wait on each
/// other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapQuery {
    pub cluster_id: u64,
    pub member: MemberId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapAnswer {
    pub cluster_id: u64,
    pub answered_by: MemberId,
    /// The answering member has received a Raft message from `member`, so `member` may
    /// have voted or acknowledged entries before its disk was lost.
    pub already_bootstrapped: bool,
    /// Members the answering member knows were removed from the cluster. The asker needs
    /// no answer from them: a removed member takes no part in elections or commits, so
    /// whatever it heard cannot make the asker's rejoin unsafe (and a member replaced
    /// after its disk was lost never answers at all).
    #[serde(default)]
    pub removed: Vec<MemberId>,
}

impl madsim::net::rpc::Request for BootstrapQuery {
    type Response = BootstrapAnswer;
    const ID: u64 = madsim::net::rpc::hash_str("kubesim.store.bootstrap.v1");
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub member_id: MemberId,
    pub term: u64,
    pub role: Role,
    pub leader: Option<MemberId>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub revision: i64,
    pub compacted_revision: i64,
    /// Digest of the keyspace at `revision` (equal digests at equal revisions mean equal
    /// keyspaces).
    pub keyspace_digest: u64,
    pub cluster_id: u64,
    /// The voters of this member's committed configuration.
    pub voters: Vec<MemberId>,
    /// The index the member's log was last compacted to (its latest snapshot; 0: none).
    pub snapshot_index: u64,
}

impl madsim::net::rpc::Request for StoreRequest {
    type Response = Result<StoreReply, StoreError>;
    const ID: u64 = madsim::net::rpc::hash_str("kubesim.store.v1");
}
