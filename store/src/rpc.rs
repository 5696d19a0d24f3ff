//! The store's wire protocol between a client (the apiserver) and a member, and between
//! members (Raft messages).
//!
//! Requests travel as madsim payloads (no serialisation inside the simulator). The member
//! serves them with its own receive loop instead of madsim's `add_rpc_handler`, because it
//! needs the sender's address: the store's access log records which node a mutation came
//! from, which a credential alone cannot prove.

use serde::{Deserialize, Serialize};

use crate::api::{
    MemberId, Mutation, MutationResponse, Principal, RangeRequest, RangeResponse, StoreError, WatchRequest,
    WatchResponse,
};
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
}

impl StoreOp {
    pub fn is_mutation(&self) -> bool {
        matches!(self, StoreOp::Mutate(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreReply {
    Range(RangeResponse),
    Mutate(MutationResponse),
    Watch(WatchResponse),
    Status(MemberStatus),
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
}

impl madsim::net::rpc::Request for StoreRequest {
    type Response = Result<StoreReply, StoreError>;
    const ID: u64 = madsim::net::rpc::hash_str("kubesim.store.v1");
}
