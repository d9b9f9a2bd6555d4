//! The raft-log binding: which openraft types go into WAL records and how they are encoded, the
//! flush callback, and the tail check run before raft-log replays the log.
//!
//! Record framing is raft-log's (`type u32 | fields | crc32`); each field is ours: a big-endian
//! `u32` length, then the bincode encoding of the openraft value ([`crate::encoding`], decoded
//! under a limit that follows the field's length). A log entry's payload carries its own format
//! version ([`crate::queue::entry_format`]); an entry of a newer format makes the field fail with
//! `ErrorKind::Unsupported`, which is never taken for damage.
//!
//! # Why a tail check of our own
//!
//! chunked-wal truncates the last chunk at the first record that fails with `UnexpectedEof`, or
//! whose remaining bytes are all zero. A bit flip in a *length* field of an early record also
//! fails with `UnexpectedEof` (the record seems to run past the end of the file), so chunked-wal
//! would silently cut every later, fsync'd, acknowledged record. And a torn tail of non-zero
//! garbage is refused by it even though nothing valid follows. So before opening we decode the
//! last chunk ourselves: if a damaged record is followed by any complete, checksum-valid record,
//! it is corruption and opening fails; otherwise it is a torn tail and we truncate it. raft-log
//! is then opened with `truncate_incomplete_record = false`, so any damage we did not handle
//! (e.g. in a sealed chunk) is an error, never a silent truncation.

use std::fs;
use std::fs::OpenOptions;
use std::io;
use std::io::Cursor;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use bincode::error::DecodeError;
use openraft::EntryPayload;
use openraft::alias::EntryPayloadOf;
use openraft::alias::LogIdOf;
use openraft::alias::VoteOf;
use openraft::storage::IOFlushed;
use raft_log::codeq;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::acked::AckedFile;
use super::error::StorageError;
use crate::encoding;
use crate::queue::EntryFormatError;
use crate::types::TypeConfig;

/// A value stored in a WAL record field: `len: u32 BE | bincode(value)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bin<T>(pub T);

impl<T: Serialize> codeq::Encode for Bin<T> {
    fn encode<W: Write>(&self, mut w: W) -> Result<usize, io::Error> {
        let bytes = encoding::encode(&self.0).map_err(io::Error::other)?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "wal field larger than 4 GiB"))?;
        w.write_all(&len.to_be_bytes())?;
        w.write_all(&bytes)?;
        Ok(4 + bytes.len())
    }
}

impl<T: DeserializeOwned> codeq::Decode for Bin<T> {
    fn decode<R: Read>(mut r: R) -> Result<Self, io::Error> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        // `take` rather than `vec![0; len]`: a damaged length must not allocate gigabytes.
        let mut buf = Vec::new();
        r.take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            // A short field is what a torn write looks like; keep the kind chunked-wal expects.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match encoding::decode(&buf) {
            Ok(value) => Ok(Bin(value)),
            // Written by a newer build: not damage. `check_tail` must not cut it off.
            Err(DecodeError::OtherString(m)) if EntryFormatError::is_newer(&m) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, m))
            }
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

/// How raft-log is told to report a finished flush.
pub enum WalCallback {
    /// openraft's append callback: entries up to `last_index` are on disk, recorded in `acked`
    /// before openraft hears it (and acknowledges them to the leader).
    Raft {
        callback: IOFlushed<TypeConfig>,
        last_index: Option<u64>,
        acked: Arc<AckedFile>,
        /// When the append was handed over, and where the time to durable goes (metrics).
        timed: Option<(
            tokio::time::Instant,
            prometheus_client::metrics::histogram::Histogram,
        )>,
    },
    /// Our own waits (vote, truncate, purge).
    Done(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for WalCallback {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            WalCallback::Raft {
                callback,
                last_index,
                acked,
                timed,
            } => {
                if let (Ok(()), Some(index)) = (&res, last_index) {
                    acked.record(index);
                }
                tracing::debug!(target: crate::trace::TIMELINE, index = ?last_index, "flushed");
                if let Some((since, histogram)) = timed {
                    histogram.observe(since.elapsed().as_secs_f64());
                }
                callback.io_completed(res)
            }
            WalCallback::Done(tx) => {
                // The waiter may have been dropped (its future cancelled): nothing to tell.
                let _ = tx.send(res);
            }
        }
    }
}

/// The raft-log type binding for Flotilla's openraft [`TypeConfig`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = Bin<LogIdOf<TypeConfig>>;
    type LogPayload = Bin<EntryPayloadOf<TypeConfig>>;
    type Vote = Bin<VoteOf<TypeConfig>>;
    type Callback = WalCallback;
    type UserData = ();

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    /// Only sizes the payload cache, whose capacity bounds memory: so this is the payload's size
    /// in memory, not encoded (a submit's tasks take about four times their encoded size, and
    /// counting encoded bytes let a "64 MiB" cache hold ~235 MB: docs/BENCHMARKS.md, backlog).
    fn payload_size(payload: &Self::LogPayload) -> u64 {
        let base = std::mem::size_of::<EntryPayloadOf<TypeConfig>>() as u64;
        match &payload.0 {
            EntryPayload::Normal(req) => base + req.approx_mem_size(),
            // Blank, or a membership (a few nodes): small, and rare.
            _ => base + 256,
        }
    }
}

pub type WalRecord = raft_log::RaftLogRecord<WalTypes>;

/// What [`check_tail`] found in the last chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailCheck {
    /// Every byte belongs to a valid record (or there is no chunk yet).
    Clean,
    /// The chunk ended in a partial or damaged record with nothing valid after it; it was cut
    /// back to `offset`.
    Truncated {
        path: PathBuf,
        offset: u64,
        dropped_bytes: u64,
    },
}

/// Chunk files in `dir`, in log order (names are zero-padded global offsets).
pub fn chunk_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("r-") && name.ends_with(".wal") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Decode records of `bytes` from the start; the offset where decoding stopped and why.
/// `Ok(len)` when every record is valid.
pub fn valid_prefix(bytes: &[u8]) -> Result<u64, (u64, io::Error)> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let mut cur = Cursor::new(&bytes[pos..]);
        match <WalRecord as codeq::Decode>::decode(&mut cur) {
            Ok(_) => pos += cur.position() as usize,
            Err(e) => return Err((pos as u64, e)),
        }
    }
    Ok(pos as u64)
}

/// The first offset after `from` at which a complete, checksum-valid record starts, if any.
fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&at| {
        let rest = &bytes[at..];
        // Record types are 0..=5 in a big-endian u32: skip the common case cheaply.
        if rest.len() < 8 || rest[0] != 0 || rest[1] != 0 || rest[2] != 0 || rest[3] > 5 {
            return false;
        }
        match <WalRecord as codeq::Decode>::decode(Cursor::new(rest)) {
            Ok(_) => true,
            // A record of a newer build is a record all the same.
            Err(e) => e.kind() == io::ErrorKind::Unsupported,
        }
    })
}

/// Check the last chunk of the WAL in `dir` (see the module docs). A torn tail is cut off
/// (truncate + fsync); corruption followed by valid records is an error and changes nothing.
pub fn check_tail(dir: &Path) -> Result<TailCheck, StorageError> {
    let dir_err = |source| StorageError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let Some(last) = chunk_files(dir).map_err(dir_err)?.pop() else {
        return Ok(TailCheck::Clean);
    };
    let open_err = |source| StorageError::OpenLog {
        path: last.clone(),
        source,
    };
    let bytes = fs::read(&last).map_err(open_err)?;
    let (offset, err) = match valid_prefix(&bytes) {
        Ok(_) => return Ok(TailCheck::Clean),
        Err(bad) => bad,
    };
    if err.kind() == io::ErrorKind::Unsupported {
        // A record this build cannot read is not a torn write: cutting it would drop entries
        // that a newer build wrote and the cluster committed.
        tracing::error!(path = %last.display(), offset, error = %err, "raft log written by a newer build");
        return Err(StorageError::NewerFormat {
            path: last,
            offset,
            reason: err.to_string(),
        });
    }
    if let Some(next) = next_valid_record(&bytes, offset as usize + 1) {
        tracing::error!(path = %last.display(), offset, next_valid = next, error = %err, "raft log corrupted");
        return Err(StorageError::CorruptLog {
            path: last,
            offset,
            next_valid: next as u64,
            reason: err.to_string(),
        });
    }
    let dropped_bytes = bytes.len() as u64 - offset;
    tracing::warn!(
        path = %last.display(),
        offset,
        dropped_bytes,
        error = %err,
        "raft log ends in a torn record; truncating to the last valid record"
    );
    let f = OpenOptions::new().write(true).open(&last).map_err(open_err)?;
    f.set_len(offset).map_err(open_err)?;
    f.sync_all().map_err(open_err)?;
    Ok(TailCheck::Truncated {
        path: last,
        offset,
        dropped_bytes,
    })
}
