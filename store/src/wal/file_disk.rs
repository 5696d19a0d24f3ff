//! A [`Disk`] on a real directory, so a member can run outside the simulation. Never used
//! inside the simulation (it does real I/O), which is why it may use `std::fs`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::disk::{Disk, DiskError};

/// Temporary files of `write_atomic` start with this and are hidden from `list`.
const TEMP_PREFIX: &str = ".tmp-";

pub struct FileDisk {
    dir: PathBuf,
}

impl FileDisk {
    /// Opens (creating if needed) the directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DiskError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf, DiskError> {
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name == "."
            || name == ".."
            || name.starts_with(TEMP_PREFIX)
        {
            return Err(DiskError::Io { reason: format!("invalid file name {name:?}") });
        }
        Ok(self.dir.join(name))
    }

    fn sync_dir(&self) -> Result<(), DiskError> {
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(|e| io_error(&self.dir, e))
    }
}

fn io_error(path: &Path, error: std::io::Error) -> DiskError {
    if error.kind() == ErrorKind::NotFound {
        DiskError::NotFound { name: path.display().to_string() }
    } else {
        DiskError::Io { reason: format!("{}: {error}", path.display()) }
    }
}

impl Disk for FileDisk {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, DiskError> {
        let path = self.path(name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn append(&self, name: &str, data: &[u8]) -> Result<(), DiskError> {
        let path = self.path(name)?;
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error(&path, e))?;
        file.write_all(data).map_err(|e| io_error(&path, e))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<(), DiskError> {
        let path = self.path(name)?;
        let file = OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, e))?;
        file.set_len(len).map_err(|e| io_error(&path, e))
    }

    fn write_atomic(&self, name: &str, data: Vec<u8>) -> Result<(), DiskError> {
        let path = self.path(name)?;
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let mut file = File::create(&temp).map_err(|e| io_error(&temp, e))?;
        file.write_all(&data).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        drop(file);
        fs::rename(&temp, &path).map_err(|e| io_error(&path, e))?;
        self.sync_dir()
    }

    fn sync(&self, name: &str) -> Result<(), DiskError> {
        let path = self.path(name)?;
        let file = File::open(&path).map_err(|e| io_error(&path, e))?;
        file.sync_all().map_err(|e| io_error(&path, e))?;
        // A newly created file's directory entry must be durable too.
        self.sync_dir()
    }

    fn list(&self) -> Result<Vec<String>, DiskError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))? {
            let entry = entry.map_err(|e| io_error(&self.dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                if !name.starts_with(TEMP_PREFIX) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, name: &str) -> Result<(), DiskError> {
        let path = self.path(name)?;
        fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        self.sync_dir()
    }
}
