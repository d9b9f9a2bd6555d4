//! [`StateMachineStore`]: openraft's `RaftStateMachine` over this node's [`Replica`].
//!
//! The queue state lives in memory only. It is rebuilt on start from the last snapshot plus the
//! committed log entries after it: [`StateMachineStore::open`] loads `current.snap` into the
//! replica and sets `last_applied` from it, so openraft's `StorageHelper::get_initial_state`
//! sees the snapshot as already applied (it installs one only when it is newer than
//! `last_applied`; no double apply) and then re-applies the log from `last_applied + 1` up to
//! the committed id the log store persisted.
//!
//! # On disk
//!
//! Only `<data dir>/snapshot/current.snap` (see [`super::snapshot`] for the format). It is
//! written atomically and fsync'd (file, then directory) when a snapshot is built and when one
//! is installed, before openraft hears about it, so openraft never purges log entries that a
//! durable snapshot does not cover.
//!
//! # Snapshot building off the apply path
//!
//! openraft asks for a builder on its state-machine task, between applies, then runs
//! `build_snapshot` in a separate task. The builder freezes the queue under the replica's read
//! lock ([`QueueState::freeze`]: the task table's chunks are shared, not copied, and what the
//! snapshot can do without is left out, so this costs O(tasks / 1,024)), together with
//! `last_applied` and the membership, so the view is consistent; the applies that follow copy
//! the table chunks they write to, once each. Rebuilding the timer set, encoding, writing and
//! fsync happen later on a blocking thread while entries keep being applied.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::alias::LogIdOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::SnapshotOf;
use openraft::alias::StoredMembershipOf;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use tokio::time::Instant;

use super::error::StorageError;
use super::snapshot;
use super::snapshot::SnapshotStore;
use crate::queue::Frozen;
use crate::queue::QueueState;
use crate::replica::Replica;
use crate::types::ResponseBatch;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Applies committed entries to the [`Replica`] and keeps its snapshot.
pub struct StateMachineStore {
    replica: Arc<Replica>,
    last_applied: Option<LogIdOf<TypeConfig>>,
    last_membership: StoredMembershipOf<TypeConfig>,
    snapshots: Arc<SnapshotStore>,
    /// Approximate log bytes applied since the last snapshot view was taken; the node
    /// triggers a snapshot (and so a log purge) when it passes `--snapshot-log-bytes`.
    log_bytes: Arc<AtomicU64>,
    /// Write snapshot files on the calling task instead of a blocking thread (simulator).
    inline_io: bool,
}

impl StateMachineStore {
    /// Open the snapshot directory `dir/snapshot/`; if it holds a snapshot, load it into
    /// `replica` (replacing its state) and start from its `last_applied` and membership.
    pub fn open(dir: &Path, replica: Arc<Replica>) -> Result<Self, StorageError> {
        let (snapshots, image) = SnapshotStore::open(dir)?;
        let (last_applied, last_membership) = match image {
            Some(image) => {
                let index = image.last_applied.map_or(0, |l| l.index);
                replica.replace_at(image.state, index);
                (image.last_applied, image.last_membership)
            }
            None => (None, StoredMembershipOf::<TypeConfig>::default()),
        };
        Ok(Self {
            replica,
            last_applied,
            last_membership,
            snapshots: Arc::new(snapshots),
            log_bytes: Arc::default(),
            inline_io: false,
        })
    }

    /// Do snapshot file IO on the calling task: a blocking thread's timing is outside a
    /// simulator's control (the simulator's files are small, so blocking briefly is fine).
    pub fn inline_io(&mut self) {
        self.inline_io = true;
    }

    /// Approximate log bytes applied since the last snapshot (shared; reset by each snapshot).
    pub fn log_bytes_since_snapshot(&self) -> Arc<AtomicU64> {
        self.log_bytes.clone()
    }

    /// The replica this machine applies to.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Path of the snapshot file (which may not exist yet).
    pub fn snapshot_path(&self) -> std::path::PathBuf {
        self.snapshots.path()
    }
}

/// The state as of one point between two applies: the queue frozen under the read lock (the
/// only part on the apply path), encoded, written and fsync'd by
/// [`RaftSnapshotBuilder::build_snapshot`] off it.
pub struct SnapshotBuilder {
    meta: SnapshotMetaOf<TypeConfig>,
    /// Taken by the first build.
    state: Option<Frozen>,
    /// How long the freeze held up apply.
    copy_ms: f64,
    snapshots: Arc<SnapshotStore>,
    inline_io: bool,
}

async fn blocking<T: Send + 'static>(
    inline: bool,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    if inline {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let mut state = self.state.take().ok_or_else(|| {
            io::Error::from(super::error::SnapshotFormatError::Encode(
                "snapshot builder used twice".into(),
            ))
        })?;
        let (meta, copy_ms) = (self.meta.clone(), self.copy_ms);
        let snapshots = self.snapshots.clone();
        blocking(self.inline_io, move || {
            let tasks = state.task_count();
            let started = Instant::now();
            let frozen = match state.for_encoding() {
                Ok(frozen) => frozen,
                Err(reason) => {
                    // An error returned here would stop openraft's core (it treats a failed
                    // build as a storage failure): refuse this snapshot only.
                    tracing::error!(
                        last_log_id = ?meta.last_log_id,
                        tasks,
                        copy_ms,
                        reason,
                        "snapshot not built: the frozen queue failed its check (a bug: please \
                         report it with this line); nothing written, the previous snapshot and \
                         the log are kept, the node keeps serving and tries again at the next \
                         snapshot"
                    );
                    return kept_snapshot(&snapshots);
                }
            };
            let bytes = snapshot::encode_parts(&meta.last_log_id, &meta.last_membership, frozen)?;
            // The copy is not needed any more: give its memory back before the write.
            drop(state);
            let encode_ms = started.elapsed().as_secs_f64() * 1e3;
            snapshots.persist(&meta, &bytes).map_err(StorageError::into_io)?;
            tracing::info!(
                last_log_id = ?meta.last_log_id,
                bytes = bytes.len(),
                tasks,
                copy_ms,
                encode_ms,
                write_ms = started.elapsed().as_secs_f64() * 1e3 - encode_ms,
                "built snapshot"
            );
            Ok(SnapshotOf::<TypeConfig, SnapshotData> {
                meta,
                snapshot: bytes,
            })
        })
        .await
    }
}

/// What a build that refused to write a snapshot hands openraft: the snapshot already held,
/// whose log id is not newer than openraft's, so it changes nothing (no purge, and the next
/// trigger builds again); with none held, an empty one at no log id (openraft reads only the
/// metadata of a built snapshot; replication reads `current.snap`, which is unchanged).
fn kept_snapshot(snapshots: &SnapshotStore) -> io::Result<SnapshotOf<TypeConfig, SnapshotData>> {
    let (meta, snapshot) = snapshots
        .read_current()
        .map_err(StorageError::into_io)?
        .unwrap_or_default();
    Ok(SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot })
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = match &entry.payload {
                EntryPayload::Normal(req) => {
                    self.log_bytes.fetch_add(req.approx_size(), Ordering::Relaxed);
                    ResponseBatch(self.replica.apply_entry(entry.log_id.index, req))
                }
                // openraft appends a blank entry as each new leader's first.
                EntryPayload::Blank => {
                    let term = entry.log_id.leader_id.term;
                    self.replica.new_term_at(entry.log_id.index, term);
                    ResponseBatch::default()
                }
                EntryPayload::Membership(m) => {
                    self.last_membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                    ResponseBatch::default()
                }
            };
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Only the freeze blocks apply, and it shares the task table instead of copying it
        // (docs/BENCHMARKS.md, "No stalls"); the frozen view lives only until it is encoded.
        let started = Instant::now();
        let state = self.replica.read(QueueState::freeze);
        let copy_ms = started.elapsed().as_secs_f64() * 1e3;
        self.log_bytes.store(0, Ordering::Relaxed);
        SnapshotBuilder {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
            },
            state: Some(state),
            copy_ms,
            snapshots: self.snapshots.clone(),
            inline_io: self.inline_io,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let image = snapshot::decode(&snapshot)?;
        if image.meta() != *meta {
            return Err(super::error::SnapshotFormatError::MetaMismatch(format!(
                "openraft says {meta}, the snapshot holds {}",
                image.meta()
            ))
            .into());
        }
        // Durable first: if this fails, the in-memory state is untouched.
        let snapshots = self.snapshots.clone();
        let persist_meta = meta.clone();
        blocking(self.inline_io, move || {
            snapshots
                .persist(&persist_meta, &snapshot)
                .map_err(StorageError::into_io)
        })
        .await?;
        let index = image.last_applied.map_or(0, |l| l.index);
        self.replica.replace_at(image.state, index);
        self.last_applied = image.last_applied;
        self.last_membership = image.last_membership;
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        let snapshots = self.snapshots.clone();
        let current = blocking(self.inline_io, move || {
            snapshots.read_current().map_err(StorageError::into_io)
        })
        .await?;
        Ok(current.map(|(meta, snapshot)| SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot }))
    }
}
