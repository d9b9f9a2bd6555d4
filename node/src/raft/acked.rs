//! [`AckedFile`]: the highest log index this node has reported durable to the cluster, kept
//! beside the log so that a log that lost entries is noticed when the node starts.
//!
//! Once a flush is fsync'd, openraft tells the leader that the entries are durable here, and
//! the leader counts this node towards their commit. If entries the node acknowledged later
//! vanish (the last chunk file deleted, a file truncated by hand or by a filesystem that lost
//! fsync'd data), the node would start with a shorter log, vote, and could help elect a leader
//! that lacks committed entries. So the index is recorded outside the log, and
//! [`super::LogStore::open`] refuses a log that ends before it.
//!
//! # Cost
//!
//! One 16-byte `pwrite` per group-commit batch, on the flush thread after the batch's fsync, and
//! no fsync of its own: the file only ever lags the log, which errs on the safe side (a crash
//! before the page cache reaches the disk leaves an older index, so less is checked, nothing
//! is refused wrongly). A truncation of the log (a new leader overwriting entries that never
//! committed) lowers the index first, durably.
//!
//! # Format
//!
//! `<data dir>/acked`: `b"FLAK" | index: u64 LE | crc32(first 12 bytes): u32 LE`. A damaged
//! file is reported and ignored (the check is a safety net, not the data).

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use super::error::StorageError;

/// Name of the file inside the node's data directory.
pub const ACKED_FILE: &str = "acked";

const MAGIC: [u8; 4] = *b"FLAK";
const LEN: usize = 16;

/// The recorded index and the file it lives in.
#[derive(Debug)]
pub struct AckedFile {
    path: PathBuf,
    file: File,
    /// The index last written (the file may lag it only by a crash).
    written: Mutex<u64>,
}

fn encode(index: u64) -> [u8; LEN] {
    let mut buf = [0u8; LEN];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..12].copy_from_slice(&index.to_le_bytes());
    let crc = crc32fast::hash(&buf[..12]);
    buf[12..].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode(buf: &[u8]) -> Option<u64> {
    let buf: &[u8; LEN] = buf.try_into().ok()?;
    let crc = u32::from_le_bytes(buf[12..].try_into().ok()?);
    (buf[..4] == MAGIC && crc32fast::hash(&buf[..12]) == crc)
        .then(|| u64::from_le_bytes(buf[4..12].try_into().unwrap_or_default()))
}

impl AckedFile {
    /// Open (or create) `dir/acked`; returns it with the index it holds (0 for a new file).
    pub fn open(dir: &Path) -> Result<(AckedFile, u64), StorageError> {
        let path = dir.join(ACKED_FILE);
        let io_err = |source| StorageError::Dir {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let bytes = std::fs::read(&path).map_err(io_err)?;
        let index = match decode(&bytes) {
            Some(index) => index,
            None if bytes.is_empty() => 0,
            None => {
                tracing::warn!(path = %path.display(), "acknowledged-index file is damaged; ignoring it");
                0
            }
        };
        let acked = AckedFile {
            path,
            file,
            written: Mutex::new(index),
        };
        Ok((acked, index))
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries up to `index` are fsync'd and about to be acknowledged: raise the record (never
    /// lowers it). No fsync (see the module docs); a failed write is logged, not fatal: the
    /// entries are durable, only the check lags.
    pub fn record(&self, index: u64) {
        let mut written = self.lock();
        if index <= *written {
            return;
        }
        match self.file.write_at(&encode(index), 0) {
            Ok(LEN) => *written = index,
            Ok(n) => tracing::warn!(path = %self.path.display(), n, "short write of the acknowledged index"),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot record the acknowledged index")
            }
        }
    }

    /// The log is about to be cut back to `index`: lower the record to it, durably, first.
    pub fn lower(&self, index: u64) -> io::Result<()> {
        let mut written = self.lock();
        if index >= *written {
            return Ok(());
        }
        self.file.write_all_at(&encode(index), 0)?;
        self.file.sync_data()?;
        *written = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_only_rises_except_when_lowered_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (acked, at) = AckedFile::open(dir.path()).unwrap();
        assert_eq!(at, 0);
        acked.record(10);
        acked.record(7);
        assert_eq!(AckedFile::open(dir.path()).unwrap().1, 10);
        acked.lower(12).unwrap();
        acked.lower(4).unwrap();
        assert_eq!(AckedFile::open(dir.path()).unwrap().1, 4);
        acked.record(5);
        assert_eq!(AckedFile::open(dir.path()).unwrap().1, 5);
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ACKED_FILE), b"not an index at all").unwrap();
        assert_eq!(AckedFile::open(dir.path()).unwrap().1, 0);
        let mut bytes = encode(99);
        bytes[5] ^= 1;
        std::fs::write(dir.path().join(ACKED_FILE), bytes).unwrap();
        assert_eq!(AckedFile::open(dir.path()).unwrap().1, 0);
    }
}
