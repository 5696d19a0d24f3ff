//! What a member's Raft snapshot carries: the MVCC state machine plus the membership state
//! that is part of the replicated state (the address of every member, the members removed
//! for good), and the cluster's identity. The same bytes travel in a Raft `Snapshot`
//! message, sit in the snapshot file, and are what `snapshot restore` writes on each new
//! member's disk. Pure data: no madsim, no disk.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::MemberId;
use crate::mvcc::{MvccSnapshot, MvccView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub cluster_id: u64,
    pub mvcc: MvccSnapshot,
    /// Address of every member of the configuration as of the snapshot's index.
    pub members: BTreeMap<MemberId, SocketAddr>,
    /// Members removed from the cluster; etcd refuses them for good ("the member has been
    /// permanently removed from the cluster"), so their ids are never reused.
    pub removed: BTreeSet<MemberId>,
}

impl MemberSnapshot {
    /// The snapshot borrowed, for encoding.
    pub fn view(&self) -> MemberSnapshotView<'_> {
        MemberSnapshotView {
            cluster_id: self.cluster_id,
            mvcc: self.mvcc.view(),
            members: &self.members,
            removed: &self.removed,
        }
    }

    /// The serde fields, then the MVCC state's lease section if it has leases (see
    /// [`MvccSnapshot::encode`]): without leases, the bytes are what they were before
    /// leases existed.
    pub fn encode(&self) -> Bytes {
        self.view().encode()
    }

    pub fn decode(data: &[u8]) -> Result<MemberSnapshot, String> {
        let (mut snapshot, rest): (MemberSnapshot, &[u8]) =
            crate::codec::decode_prefix(data).map_err(|e| format!("undecodable member snapshot: {e}"))?;
        snapshot.mvcc.decode_leases_from(rest)?;
        Ok(snapshot)
    }
}

/// A [`MemberSnapshot`] borrowed from where it lives (a member's live state): encodes to
/// the same bytes as [`MemberSnapshot::encode`] without cloning the keyspace first.
#[derive(Serialize)]
pub struct MemberSnapshotView<'a> {
    pub cluster_id: u64,
    pub mvcc: MvccView<'a>,
    pub members: &'a BTreeMap<MemberId, SocketAddr>,
    pub removed: &'a BTreeSet<MemberId>,
}

impl MemberSnapshotView<'_> {
    /// The serde fields, then the MVCC state's lease section, in one allocation of the
    /// final size.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.mvcc.encode_within(self))
    }
}
