//! [`StorageError`]: why the durable Raft storage of a node could not be opened or written.
//!
//! These are *fatal* errors: a node that cannot trust its log or snapshot must not take part in
//! the cluster. Inside openraft's traits they travel as `io::Error` (see [`StorageError::into_io`]).

use std::io;
use std::path::PathBuf;

/// Why a snapshot's bytes (from disk or from the leader) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFormatError {
    /// The bytes do not start with `FLQS`.
    #[error("not a flotilla queue snapshot: bad magic bytes {found:02x?}")]
    BadMagic { found: Vec<u8> },
    /// Written by a newer (or unknown) build.
    #[error("unsupported snapshot format version {found}; this build reads version {supported}")]
    UnsupportedVersion { found: u32, supported: u32 },
    /// Shorter than its header.
    #[error("snapshot truncated: {len} bytes is shorter than the {header}-byte header")]
    Truncated { len: usize, header: usize },
    /// The body does not match the CRC32 in the header.
    #[error("snapshot checksum mismatch: header says {expected:#010x}, body hashes to {actual:#010x}")]
    Checksum { expected: u32, actual: u32 },
    /// The body is not a valid encoding of a snapshot.
    #[error("snapshot body does not decode: {0}")]
    Decode(String),
    /// The state could not be encoded.
    #[error("snapshot body does not encode: {0}")]
    Encode(String),
    /// The metadata openraft passed with the snapshot disagrees with what the snapshot holds.
    #[error("snapshot metadata does not match its contents: {0}")]
    MetaMismatch(String),
}

/// Fatal storage errors of the Raft log and the state machine's snapshots.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage directory could not be created or read.
    #[error("storage directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    /// The WAL could not be opened (includes damage that raft-log itself detects, e.g. a bad
    /// record in a sealed chunk).
    #[error("cannot open raft log in {path}: {source}")]
    OpenLog { path: PathBuf, source: io::Error },
    /// A damaged record is followed by valid records: this is not a torn write, and truncating
    /// would drop data that was acknowledged. Needs an operator (restore, or wipe and resync).
    #[error(
        "raft log corrupted in {path} at byte offset {offset}: {reason}; a valid record follows at \
         offset {next_valid}, so this is not a torn tail and nothing was truncated"
    )]
    CorruptLog {
        path: PathBuf,
        offset: u64,
        next_valid: u64,
        reason: String,
    },
    /// The log holds an entry of a format this build does not read: a newer build wrote it
    /// (a rollback after the cluster used a newer command). Nothing was changed.
    #[error("raft log in {path} at byte offset {offset} was written by a newer build: {reason}")]
    NewerFormat {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The log ends before an entry this node acknowledged to the cluster (see
    /// [`super::acked`]): entries it reported durable are gone. Voting with such a log can
    /// lose committed data, so the node does not start.
    #[error(
        "raft log in {dir} ends at index {log_end}, but this node acknowledged entries up to \
         index {acked} to the cluster: entries it reported durable are gone (a deleted or \
         truncated log file?), and a node that forgot acknowledged entries can lose committed \
         data if it votes, so it will not start; remove it from the cluster (`flotilla cluster \
         remove ID`) and start it again on an empty data directory with --join; if this node \
         holds the only copy of the data, delete {acked_file} to start with what is left"
    )]
    LostAcknowledged {
        dir: PathBuf,
        log_end: u64,
        acked: u64,
        acked_file: PathBuf,
    },
    /// Reading or writing a snapshot file failed.
    #[error("snapshot file {path}: {source}")]
    SnapshotIo { path: PathBuf, source: io::Error },
    /// A snapshot file exists but cannot be used.
    #[error("snapshot file {path}: {source}")]
    SnapshotFile {
        path: PathBuf,
        source: SnapshotFormatError,
    },
}

impl StorageError {
    /// For openraft's traits, which speak `io::Error`.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            StorageError::CorruptLog { .. }
            | StorageError::SnapshotFile { .. }
            | StorageError::LostAcknowledged { .. } => io::ErrorKind::InvalidData,
            StorageError::NewerFormat { .. } => io::ErrorKind::Unsupported,
            StorageError::Dir { source, .. }
            | StorageError::OpenLog { source, .. }
            | StorageError::SnapshotIo { source, .. } => source.kind(),
        };
        io::Error::new(kind, self)
    }
}

impl From<SnapshotFormatError> for io::Error {
    fn from(e: SnapshotFormatError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}
