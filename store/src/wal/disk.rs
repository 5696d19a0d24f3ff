//! The [`Disk`] a member persists to, and [`SimDisk`], the simulated one.
//!
//! SimDisk models what a real disk under a page cache does to a process that crashes:
//! writes sit in a volatile buffer until `sync` (fsync); a crash loses every unsynced write
//! and may tear the last one; a disk loss (`wipe`) loses every file; bit rot (`corrupt`)
//! flips bits in synced content, which only checksums can notice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DiskError {
    #[error("file not found: {name}")]
    NotFound { name: String },
    #[error("disk i/o error: {reason}")]
    Io { reason: String },
    /// The disk was lost or failed; nothing on it can be used any more.
    #[error("disk failed: {reason}")]
    Failed { reason: String },
}

/// A flat directory of named files. Names are plain file names (no `/`).
pub trait Disk: Send + Sync + 'static {
    /// The content as the process sees it: durable bytes plus unsynced writes.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, DiskError>;
    /// Appends; creates the file if absent.
    fn append(&self, name: &str, data: &[u8]) -> Result<(), DiskError>;
    fn truncate(&self, name: &str, len: u64) -> Result<(), DiskError>;
    /// Replaces the whole file durably (temp file + fsync + rename + directory fsync). Takes
    /// the bytes by value: the simulated disk keeps the buffer as the file (a snapshot is
    /// written every few dozen entries in some seeds), spare capacity included.
    fn write_atomic(&self, name: &str, data: Vec<u8>) -> Result<(), DiskError>;
    /// fsync.
    fn sync(&self, name: &str) -> Result<(), DiskError>;
    /// File names, sorted.
    fn list(&self) -> Result<Vec<String>, DiskError>;
    fn remove(&self, name: &str) -> Result<(), DiskError>;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub syncs: u64,
    /// Bytes handed to append/write_atomic.
    pub bytes_written: u64,
    /// Bytes that became durable through sync/write_atomic.
    pub bytes_synced: u64,
}

/// A simulated disk. Clones share one state, which lives outside the node's tasks, so it
/// survives a node restart (and is what the nemesis crashes, tears, wipes and corrupts).
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimDiskState>>,
}

#[derive(Default)]
struct SimDiskState {
    files: BTreeMap<String, SimFile>,
    stats: DiskStats,
    failed: bool,
    /// Orders appends across files, to find the last unsynced one at a crash.
    append_seq: u64,
}

struct SimFile {
    /// The content as the process sees it.
    data: Vec<u8>,
    /// The durable content is `data[..durable_len]`, unless an unsynced truncate cut into
    /// durable bytes: then it is `durable_override`.
    durable_len: usize,
    durable_override: Option<Vec<u8>>,
    /// False for a file created since the last sync: a crash makes it vanish.
    exists_durably: bool,
    /// The newest append not yet synced: (append_seq, offset, len).
    last_unsynced_append: Option<(u64, usize, usize)>,
}

impl SimFile {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            durable_len: 0,
            durable_override: None,
            exists_durably: false,
            last_unsynced_append: None,
        }
    }

    fn durable(&self) -> &[u8] {
        self.durable_override.as_deref().unwrap_or(&self.data[..self.durable_len])
    }

    fn make_durable(&mut self) -> u64 {
        let newly_durable = self.data.len().saturating_sub(self.durable_len) as u64;
        self.durable_override = None;
        self.durable_len = self.data.len();
        self.exists_durably = true;
        self.last_unsynced_append = None;
        newly_durable
    }
}

impl SimDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimDiskState> {
        // A panic while holding the lock is already a test failure; the state is still
        // the best description of the disk there is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A power loss / process crash: every unsynced write is lost. With `tear = Some(r)`, the
    /// last unsynced append (across all files) is half-written: its file keeps, in order,
    /// every write before that append plus its first `r % (len + 1)` bytes, as if the page
    /// cache had been written back in order and the power failed mid-write.
    pub fn crash(&self, tear: Option<u64>) {
        let mut state = self.lock();
        let torn_name = tear.and_then(|_| {
            state
                .files
                .iter()
                .filter_map(|(name, file)| Some((file.last_unsynced_append?.0, name.clone())))
                .max()
                .map(|(_, name)| name)
        });
        state.files.retain(|name, file| {
            let content = match (file.last_unsynced_append, tear) {
                (Some((_, offset, len)), Some(r)) if torn_name.as_ref() == Some(name) => {
                    let kept = (r % (len as u64 + 1)) as usize;
                    file.data[..offset + kept].to_vec()
                }
                _ if file.exists_durably => file.durable().to_vec(),
                _ => return false,
            };
            *file = SimFile { data: content, ..SimFile::new() };
            file.make_durable();
            true
        });
    }

    /// The length of the write a torn [`SimDisk::crash`] would tear: the last unsynced
    /// append across all files, if there is one. The nemesis's plans say how much of it a
    /// tear keeps as a fraction, and this turns the fraction into bytes.
    pub fn last_unsynced_append_len(&self) -> Option<u64> {
        let state = self.lock();
        state.files.values().filter_map(|file| file.last_unsynced_append).max().map(|(_, _, len)| len as u64)
    }

    /// Total loss of the member's disk: every file is gone.
    pub fn wipe(&self) {
        let mut state = self.lock();
        state.files.clear();
    }

    /// Bit rot: XORs one durable byte with `xor_mask`.
    pub fn corrupt(&self, name: &str, offset: u64, xor_mask: u8) -> Result<(), DiskError> {
        let mut state = self.lock();
        let file = state
            .files
            .get_mut(name)
            .filter(|file| file.exists_durably)
            .ok_or_else(|| DiskError::NotFound { name: name.to_string() })?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if let Some(durable) = file.durable_override.as_mut() {
            let byte = durable.get_mut(offset).ok_or_else(|| out_of_range(name, offset))?;
            *byte ^= xor_mask;
        } else {
            if offset >= file.durable_len {
                return Err(out_of_range(name, offset));
            }
            file.data[offset] ^= xor_mask;
        }
        Ok(())
    }

    pub fn file_len(&self, name: &str, durable_only: bool) -> Option<u64> {
        let state = self.lock();
        let file = state.files.get(name)?;
        if durable_only {
            file.exists_durably.then(|| file.durable().len() as u64)
        } else {
            Some(file.data.len() as u64)
        }
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Makes every operation fail with `DiskError::Failed` (a dead disk), or heals it.
    pub fn set_failed(&self, failed: bool) {
        self.lock().failed = failed;
    }
}

fn out_of_range(name: &str, offset: usize) -> DiskError {
    DiskError::Io { reason: format!("offset {offset} is past the durable end of {name}") }
}

impl SimDiskState {
    fn check_alive(&self) -> Result<(), DiskError> {
        if self.failed {
            return Err(DiskError::Failed { reason: "simulated disk failure".to_string() });
        }
        Ok(())
    }

    fn file_mut(&mut self, name: &str) -> Result<&mut SimFile, DiskError> {
        self.files.get_mut(name).ok_or_else(|| DiskError::NotFound { name: name.to_string() })
    }

    /// The file, created empty if missing. Looked up by `&str` first: only a new file pays
    /// for the owned name `entry` would need on every write.
    fn file_or_new(&mut self, name: &str) -> &mut SimFile {
        if !self.files.contains_key(name) {
            self.files.insert(name.to_string(), SimFile::new());
        }
        self.files.get_mut(name).expect("inserted above")
    }
}

impl Disk for SimDisk {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, DiskError> {
        let state = self.lock();
        state.check_alive()?;
        Ok(state.files.get(name).map(|file| file.data.clone()))
    }

    fn append(&self, name: &str, data: &[u8]) -> Result<(), DiskError> {
        let mut state = self.lock();
        state.check_alive()?;
        state.append_seq += 1;
        state.stats.bytes_written += data.len() as u64;
        let seq = state.append_seq;
        let file = state.file_or_new(name);
        file.last_unsynced_append = Some((seq, file.data.len(), data.len()));
        file.data.extend_from_slice(data);
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> Result<(), DiskError> {
        let mut state = self.lock();
        state.check_alive()?;
        let file = state.file_mut(name)?;
        let len = usize::try_from(len).map_err(|_| DiskError::Io { reason: format!("length {len} too large") })?;
        if len < file.durable_len && file.durable_override.is_none() {
            file.durable_override = Some(file.data[..file.durable_len].to_vec());
        }
        file.data.resize(len, 0);
        file.durable_len = file.durable_len.min(len);
        if let Some((_, offset, append_len)) = file.last_unsynced_append {
            if offset + append_len > len {
                file.last_unsynced_append = None;
            }
        }
        Ok(())
    }

    fn write_atomic(&self, name: &str, data: Vec<u8>) -> Result<(), DiskError> {
        let mut state = self.lock();
        state.check_alive()?;
        state.stats.bytes_written += data.len() as u64;
        state.stats.bytes_synced += data.len() as u64;
        state.stats.syncs += 1;
        let file = state.file_or_new(name);
        file.data = data;
        file.make_durable();
        Ok(())
    }

    fn sync(&self, name: &str) -> Result<(), DiskError> {
        let mut state = self.lock();
        state.check_alive()?;
        let newly_durable = state.file_mut(name)?.make_durable();
        state.stats.syncs += 1;
        state.stats.bytes_synced += newly_durable;
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, DiskError> {
        let state = self.lock();
        state.check_alive()?;
        Ok(state.files.keys().cloned().collect())
    }

    fn remove(&self, name: &str) -> Result<(), DiskError> {
        let mut state = self.lock();
        state.check_alive()?;
        // Modelled as immediately durable (as if the directory were fsynced at once).
        state.files.remove(name).map(|_| ()).ok_or_else(|| DiskError::NotFound { name: name.to_string() })
    }
}
