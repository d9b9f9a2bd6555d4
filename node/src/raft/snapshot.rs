//! The snapshot format and the one snapshot file a node keeps.
//!
//! # Format (version 6)
//!
//! ```text
//! b"FLQS" | version: u32 LE = 6 | crc32(body): u32 LE | body
//! body = bincode (crate::encoding) of SnapshotImage { last_applied, last_membership, state }
//! ```
//!
//! Version 3 added the token table at the end of the state, version 4 the task catalogue
//! after it, version 5 the task extras (headers, progress) after that, version 6 the
//! schedules. A state is written in the oldest version that holds it (a node of the build
//! before the table it lacks reads it: `queue/state/format.rs`). Versions 7 to 1 are read.
//!
//! The body is decoded under a limit that follows its length ([`crate::encoding`]).
//!
//! The same bytes are openraft's `SnapshotData` (sent whole to lagging followers) and the file
//! contents, so installing a received snapshot is: validate, write the bytes, swap the state.
//! The version is checked before anything else so a snapshot from a newer build is refused with
//! a clear error, never misread. The CRC catches bit rot of the file (and truncation). Version 1
//! (the queue's layout before the dense task table) is still read and converted
//! ([`crate::queue::QueueStateV1`]).
//!
//! # On disk
//!
//! `<data dir>/snapshot/current.snap`, replaced atomically: write `current.snap.tmp`, fsync it,
//! rename over `current.snap`, fsync the directory. A crash leaves either the old or the new
//! snapshot, and at worst a stale `.tmp`, which [`SnapshotStore::open`] deletes.

use std::fs;
use std::fs::File;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use openraft::alias::LogIdOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::StoredMembershipOf;
use serde::Deserialize;
use serde::Serialize;

use super::error::SnapshotFormatError;
use super::error::StorageError;
use crate::encoding;
use crate::queue::InFormat;
use crate::queue::NEWEST_SNAPSHOT_FORMAT;
use crate::queue::QueueState;
use crate::queue::QueueStateV1;
use crate::queue::ReadFormat;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// First bytes of every snapshot.
pub const MAGIC: [u8; 4] = *b"FLQS";
/// The newest format this build writes and reads. 8: version 7 and flow control (limits,
/// concurrency keys). 7: reserved for another branch's table (here: version 6 and nothing).
/// 6: version 5 and the schedules. 5: version 4
/// and the task extras (headers, progress). 4: version 3 and the task catalogue. 3: version 2
/// and the token table. 2: the dense task layout (task options interned, key and args in one
/// byte string, pending sets as bitmaps, no key index: it is rebuilt on load). Versions 7 to 1
/// are still read (1 is converted), so nodes can be upgraded over old data; a state is written
/// in the oldest of them that holds it ([`QueueState::snapshot_format`]).
pub const FORMAT_VERSION: u32 = NEWEST_SNAPSHOT_FORMAT;
/// Magic, version, crc32.
pub const HEADER_LEN: usize = 12;

/// Directory of the snapshot file inside the node's data directory.
pub const SNAPSHOT_DIR: &str = "snapshot";
const FILE_NAME: &str = "current.snap";
const TMP_NAME: &str = "current.snap.tmp";

/// What a snapshot holds: the queue as of `last_applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotImage {
    pub last_applied: Option<LogIdOf<TypeConfig>>,
    pub last_membership: StoredMembershipOf<TypeConfig>,
    pub state: QueueState,
}

impl SnapshotImage {
    pub fn meta(&self) -> SnapshotMetaOf<TypeConfig> {
        SnapshotMetaOf::<TypeConfig> {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }
}

/// Borrowed form of [`SnapshotImage`]: serializes to exactly the same bytes, without a copy of
/// the queue. `S` is the state in the format written (with or without its token table).
#[derive(Serialize)]
struct SnapshotImageRef<'a, S> {
    last_applied: &'a Option<LogIdOf<TypeConfig>>,
    last_membership: &'a StoredMembershipOf<TypeConfig>,
    state: S,
}

/// Serialize `image` in the current format.
pub fn encode(image: &SnapshotImage) -> Result<SnapshotData, SnapshotFormatError> {
    encode_parts(&image.last_applied, &image.last_membership, &image.state)
}

/// Serialize a snapshot of `state` as of `last_applied` straight from borrowed parts (the node
/// encodes under the replica's read lock instead of cloning the whole queue).
pub fn encode_parts(
    last_applied: &Option<LogIdOf<TypeConfig>>,
    last_membership: &StoredMembershipOf<TypeConfig>,
    state: &QueueState,
) -> Result<SnapshotData, SnapshotFormatError> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4096);
    out.extend_from_slice(&MAGIC);
    let version = state.snapshot_format();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let written = write_image(&mut out, last_applied, last_membership, InFormat(state, version));
    written.map_err(|e| SnapshotFormatError::Encode(e.to_string()))?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[8..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Append the image of `state` (in the format its type writes) to `out`.
fn write_image<S: Serialize>(
    out: &mut Vec<u8>,
    last_applied: &Option<LogIdOf<TypeConfig>>,
    last_membership: &StoredMembershipOf<TypeConfig>,
    state: S,
) -> Result<usize, bincode::error::EncodeError> {
    let image = SnapshotImageRef {
        last_applied,
        last_membership,
        state,
    };
    bincode::serde::encode_into_std_write(&image, out, encoding::config())
}

/// Validate and deserialize snapshot bytes.
pub fn decode(bytes: &[u8]) -> Result<SnapshotImage, SnapshotFormatError> {
    if bytes.len() < 8 || bytes[..4] != MAGIC {
        return Err(SnapshotFormatError::BadMagic {
            found: bytes[..bytes.len().min(4)].to_vec(),
        });
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(SnapshotFormatError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotFormatError::Truncated {
            len: bytes.len(),
            header: HEADER_LEN,
        });
    }
    let expected = u32::from_le_bytes(bytes[8..HEADER_LEN].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(SnapshotFormatError::Checksum { expected, actual });
    }
    if version == 1 {
        let old: SnapshotImageV1 = decode_body(body)?;
        return Ok(SnapshotImage {
            last_applied: old.last_applied,
            last_membership: old.last_membership,
            state: QueueState::try_from(old.state).map_err(SnapshotFormatError::Decode)?,
        });
    }
    match version {
        2 => decode_body::<SnapshotImageOf<ReadFormat<2>>>(body).map(|i| i.map(|s| s.0)),
        3 => decode_body::<SnapshotImageOf<ReadFormat<3>>>(body).map(|i| i.map(|s| s.0)),
        4 => decode_body::<SnapshotImageOf<ReadFormat<4>>>(body).map(|i| i.map(|s| s.0)),
        5 => decode_body::<SnapshotImageOf<ReadFormat<5>>>(body).map(|i| i.map(|s| s.0)),
        6 => decode_body::<SnapshotImageOf<ReadFormat<6>>>(body).map(|i| i.map(|s| s.0)),
        7 => decode_body::<SnapshotImageOf<ReadFormat<7>>>(body).map(|i| i.map(|s| s.0)),
        8 => decode_body::<SnapshotImageOf<ReadFormat<8>>>(body).map(|i| i.map(|s| s.0)),
        9 => decode_body::<SnapshotImageOf<ReadFormat<9>>>(body).map(|i| i.map(|s| s.0)),
        10 => decode_body::<SnapshotImageOf<ReadFormat<10>>>(body).map(|i| i.map(|s| s.0)),
        _ => decode_body(body),
    }
}

/// A snapshot of an older version: the state without its newer tables, read as `S`.
#[derive(Deserialize)]
struct SnapshotImageOf<S> {
    last_applied: Option<LogIdOf<TypeConfig>>,
    last_membership: StoredMembershipOf<TypeConfig>,
    state: S,
}

impl<S> SnapshotImageOf<S> {
    fn map(self, state: impl FnOnce(S) -> QueueState) -> SnapshotImage {
        SnapshotImage {
            last_applied: self.last_applied,
            last_membership: self.last_membership,
            state: state(self.state),
        }
    }
}

/// A version 1 snapshot: the same image around the queue's old layout.
#[derive(Deserialize)]
struct SnapshotImageV1 {
    last_applied: Option<LogIdOf<TypeConfig>>,
    last_membership: StoredMembershipOf<TypeConfig>,
    state: QueueStateV1,
}

/// Decode the whole body, under a limit that follows its length (a snapshot comes from disk or
/// from the leader).
fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SnapshotFormatError> {
    encoding::decode(body).map_err(|e| SnapshotFormatError::Decode(e.to_string()))
}

/// The node's current snapshot file, and the metadata of what it holds.
pub struct SnapshotStore {
    dir: PathBuf,
    /// Metadata of the file on disk; the lock also serializes writers (builder vs. install).
    current: Mutex<Option<SnapshotMetaOf<TypeConfig>>>,
}

impl SnapshotStore {
    /// Open `dir/snapshot/`, creating it, and load the current snapshot if there is one.
    pub fn open(dir: &Path) -> Result<(SnapshotStore, Option<SnapshotImage>), StorageError> {
        let dir = dir.join(SNAPSHOT_DIR);
        let dir_err = |source| StorageError::Dir {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(dir_err)?;
        match fs::remove_file(dir.join(TMP_NAME)) {
            Ok(()) => tracing::info!(dir = %dir.display(), "removed an unfinished snapshot file"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(dir_err(e)),
        }
        let path = dir.join(FILE_NAME);
        let image = match fs::read(&path) {
            Ok(bytes) => {
                let image = decode(&bytes).map_err(|source| StorageError::SnapshotFile {
                    path: path.clone(),
                    source,
                })?;
                tracing::info!(
                    path = %path.display(),
                    bytes = bytes.len(),
                    last_applied = ?image.last_applied,
                    "loaded snapshot"
                );
                Some(image)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(StorageError::SnapshotIo { path, source }),
        };
        let current = Mutex::new(image.as_ref().map(SnapshotImage::meta));
        Ok((SnapshotStore { dir, current }, image))
    }

    /// Path of the current snapshot file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SnapshotMetaOf<TypeConfig>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Metadata of the snapshot on disk.
    pub fn current_meta(&self) -> Option<SnapshotMetaOf<TypeConfig>> {
        self.lock().clone()
    }

    /// Atomically make `bytes` (already validated, holding `meta`) the current snapshot,
    /// unless the current one is newer. Blocking: call from a blocking thread. Returns whether
    /// the file was replaced.
    pub fn persist(&self, meta: &SnapshotMetaOf<TypeConfig>, bytes: &[u8]) -> Result<bool, StorageError> {
        let mut current = self.lock();
        if let Some(cur) = current.as_ref()
            && cur.last_log_id > meta.last_log_id
        {
            // A build that raced with the install of a newer snapshot: keep the newer one.
            tracing::info!(current = ?cur.last_log_id, offered = ?meta.last_log_id, "kept newer snapshot");
            return Ok(false);
        }
        let tmp = self.dir.join(TMP_NAME);
        let path = self.path();
        let io_err = |source| StorageError::SnapshotIo {
            path: tmp.clone(),
            source,
        };
        let mut f = File::create(&tmp).map_err(io_err)?;
        f.write_all(bytes).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|source| StorageError::SnapshotIo {
            path: path.clone(),
            source,
        })?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StorageError::Dir {
                path: self.dir.clone(),
                source,
            })?;
        *current = Some(meta.clone());
        tracing::info!(path = %path.display(), bytes = bytes.len(), last_log_id = ?meta.last_log_id, "persisted snapshot");
        Ok(true)
    }

    /// The current snapshot's metadata and bytes. Blocking.
    pub fn read_current(&self) -> Result<Option<(SnapshotMetaOf<TypeConfig>, SnapshotData)>, StorageError> {
        // Hold the lock so meta and bytes come from the same file.
        let current = self.lock();
        let Some(meta) = current.clone() else {
            return Ok(None);
        };
        let path = self.path();
        let bytes = fs::read(&path).map_err(|source| StorageError::SnapshotIo { path, source })?;
        Ok(Some((meta, bytes)))
    }
}
