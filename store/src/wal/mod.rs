//! The write-ahead log and snapshot file on a [`Disk`], with every record checksummed, and
//! [`SimDisk`], the simulated disk that models fsync, torn writes, disk loss and bit rot.
//!
//! The WAL knows nothing of Raft's logic (it stores `Entry`, `HardState`, `SnapshotMeta`
//! as data), nor of madsim or time. `FileDisk` is the only code here that touches the real
//! filesystem, and it is never used inside the simulation.

mod disk;
mod file_disk;
mod log;
mod record;

pub use disk::{Disk, DiskError, DiskStats, SimDisk};
pub use file_disk::FileDisk;
pub use log::{
    MemberIdentity, Recovered, Wal, WalError, IDENTITY_FILE, MAX_RECORD_BYTES, MAX_SNAPSHOT_BYTES, SNAPSHOT_FILE,
    WAL_FILE,
};
