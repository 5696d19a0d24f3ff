//! kubesim's store: an etcd-like replicated key-value member.
//!
//! - [`raft`]: sans-IO Raft (election with pre-vote and check-quorum, replication,
//!   ReadIndex). It knows nothing of madsim, disks, networks or time.
//! - [`mvcc`]: etcd's multi-version key-value semantics (revisions, Txn, Compact, watch
//!   history). Pure state machine.
//! - [`wal`]: the write-ahead log and hard state on a [`wal::Disk`], with checksums;
//!   [`wal::SimDisk`] models fsync, torn writes, disk loss and corruption.
//! - [`backup`]: `snapshot save` / `snapshot restore` (etcdctl, etcdutl), pure.
//! - [`api`]: the request/response vocabulary shared by member, client and apiserver.
//! - [`lease`]: etcd's leases (the replicated lease table and the leader's expiry
//!   clock), pure; the MVCC applies the table and the member runs the clock.
//!
//! Only the apiserver may depend on this crate's client; `controllers` must not depend on
//! `store` at all.

pub mod api;
pub mod backup;
#[cfg(feature = "runtime")]
pub mod client;
mod codec;
pub mod lease;
pub mod mvcc;
pub mod raft;
#[cfg(feature = "runtime")]
pub mod rpc;
#[cfg(feature = "runtime")]
pub mod server;
pub mod snapshot;
pub mod wal;
