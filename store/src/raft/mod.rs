//! Sans-IO Raft. (Being written.)

mod entry;

pub use entry::{Entry, EntryKind, HardState, NodeId, SnapshotMeta};
