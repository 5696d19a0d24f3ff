//! etcd's multi-version key-value semantics as a pure state machine: revisions, per-key
//! create/mod revisions and versions, Range at past revisions, Txn with compares, Compact,
//! and the revision-ordered event history that watches catch up from.
//!
//! It must not know about Raft, disks, networks, time or madsim: the member applies committed
//! [`Mutation`](crate::api::Mutation)s to it in log order and serves reads from it. Every
//! member that applies the same mutations holds the same state ([`Mvcc::digest`]).

mod key_index;
mod kv_leases;
mod store;
mod validate;

pub use store::{Mvcc, MvccSnapshot, MvccView, DEFAULT_MIN_LEASE_TTL_SECS};
