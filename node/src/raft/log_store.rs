//! [`LogStore`]: the durable Raft log of a node, openraft's `RaftLogStorage` over the raft-log WAL.
//!
//! # On disk
//!
//! `<data dir>/wal/`: raft-log's `LOCK` file and its chunk files `r-<global offset>.wal`. Every
//! chunk starts with a checkpoint of the log state (vote, committed, last, purged), then holds
//! records `SaveVote | Append | Commit | TruncateAfter | PurgeUpto`, each framed as
//! `type | fields | crc32`. Fields are bincode 2 serde encodings (see [`super::wal`]).
//!
//! # What is fsync'd when
//!
//! - `append`: records go to raft-log's in-memory buffer, then `flush(sync = true)` hands them to
//!   raft-log's flush thread; openraft's `IOFlushed` callback runs on that thread only after
//!   `fdatasync` returned. Group commit: the flush thread takes the first queued request, waits
//!   up to `LogStoreOptions::flush_wait` (50 µs) for more (up to 2048), writes them all with one
//!   vectored write and syncs once; what arrives while it syncs is queued and forms the next
//!   batch. So N appends issued during a flush cost one more fsync, not N (test
//!   `appends_issued_during_a_flush_are_group_committed`: 300 back-to-back appends took 1 fsync).
//! - `save_vote`, `truncate_after`, `purge`: same path, and we wait for the sync before
//!   returning (the vote must be durable; truncations and purges are rare).
//! - `save_committed`: only buffered in raft-log (no write or fsync of its own); the next synced
//!   append, vote, truncation or purge writes it with its own records. Losing it only means
//!   re-applying fewer entries after a restart, which openraft catches up on. `read_committed` returns it so openraft re-applies committed entries to our
//!   in-memory state machine after a restart.
//! - After each synced append, before openraft hears of it, the index of its last entry goes to
//!   `<data dir>/acked` (no fsync of its own: [`super::acked`]). [`LogStore::open`] refuses a log
//!   that ends before that index: entries this node acknowledged are gone.
//! - `purge`: whole chunk files behind the purge point are unlinked by the flush thread after the
//!   purge record is synced (chunks default to 4 MiB, so purge frees space in those steps).
//!
//! # Crash recovery
//!
//! On [`LogStore::open`], [`super::wal::check_tail`] decodes the last chunk: a torn tail (a
//! partial record, zeros or garbage with no valid record after it) is truncated back to the last
//! valid record and the store opens with everything before it. A damaged record followed by a
//! valid one is corruption: [`StorageError::CorruptLog`] names the file and offset and nothing is
//! changed. Damage inside a sealed (non-last) chunk is refused by raft-log itself. A damaged
//! *last* record cannot be told apart from a torn write and is truncated, as in any WAL.

use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::alias::EntryOf;
use openraft::alias::LogIdOf;
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use raft_log::RaftLog;
use raft_log::api::raft_log_writer::RaftLogWriter;

use super::acked::AckedFile;
use super::error::StorageError;
use super::wal::Bin;
use super::wal::TailCheck;
use super::wal::WalCallback;
use super::wal::WalTypes;
use crate::types::TypeConfig;

/// Name of the WAL directory inside the node's data directory.
pub const WAL_DIR: &str = "wal";

/// Tunables of the WAL; [`Default`] is what [`LogStore::open`] uses.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// A chunk is sealed (and a new one started) past this size. Purge frees whole chunks.
    pub chunk_max_bytes: usize,
    /// ... or past this many records.
    pub chunk_max_records: usize,
    /// Upper bound of the in-memory cache of recent entries, in bytes of memory (not encoded);
    /// the entries of the open chunk stay cached beyond it (see `chunk_max_bytes`).
    pub cache_max_bytes: usize,
    /// How long the flush thread waits for more writes before an fsync. Writes already queued
    /// join the batch either way (that is the group commit); the wait only adds latency to
    /// every commit when nothing else comes.
    pub flush_wait: Duration,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            // raft-log can evict a cached entry only once its chunk is sealed, so every entry
            // of the open chunk stays in memory whatever `cache_max_bytes` says, at about four
            // times its encoded size (a submit's tasks). At 64 MiB that was the whole of a
            // 1,000,000-task backlog (~235 B per task); at 4 MiB it is ~25 MB at most.
            chunk_max_bytes: 4 << 20,
            chunk_max_records: 1 << 20,
            // In memory bytes (`WalTypes::payload_size`). Entries are applied right after they
            // are appended and followers mostly ask for recent ones: 16 MiB serves that (3-node
            // throughput unchanged, docs/BENCHMARKS.md); more only grows RSS.
            cache_max_bytes: 16 << 20,
            // raft-log's default is 1 ms: on a disk whose fdatasync takes ~0.1 ms (this
            // project's benchmark machine) that wait was most of every commit, and a task's
            // path holds two or three commits (issue 5 profile, docs/BENCHMARKS.md).
            flush_wait: Duration::from_micros(50),
        }
    }
}

/// Counters of raft-log's flush thread, to see group commit at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Write requests handed to the flush thread (one per append, vote, ...).
    pub write_requests: u64,
    /// Batches that ended in an fsync.
    pub synced_batches: u64,
}

type Wal = RaftLog<WalTypes>;

/// The durable Raft log. Cheap handles for reading are made with [`RaftLogStorage::get_log_reader`].
pub struct LogStore {
    wal: Arc<Mutex<Wal>>,
    dir: PathBuf,
    /// The highest index acknowledged to the cluster ([`super::acked`]).
    acked: Arc<AckedFile>,
    /// Where each append's time to durable (group-commit wait and fsync) goes, if measured.
    flush_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// A cloneable reader sharing the store's WAL: it sees every entry once `append` returned.
#[derive(Clone)]
pub struct LogReader {
    wal: Arc<Mutex<Wal>>,
}

fn lock(wal: &Mutex<Wal>) -> MutexGuard<'_, Wal> {
    // A panic while holding the lock leaves raft-log's state as it was at the panic; the next
    // operation's own checks (or the flush thread's error state) report any inconsistency.
    wal.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// Open (or create) the log in `dir/wal/`, recovering from a torn tail. See the module docs.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        Self::open_with(dir, &LogStoreOptions::default())
    }

    /// [`Self::open`] with explicit tunables.
    pub fn open_with(dir: &Path, opts: &LogStoreOptions) -> Result<LogStore, StorageError> {
        let wal_dir = dir.join(WAL_DIR);
        fs::create_dir_all(&wal_dir).map_err(|source| StorageError::Dir {
            path: wal_dir.clone(),
            source,
        })?;

        if let TailCheck::Truncated {
            path,
            offset,
            dropped_bytes,
        } = super::wal::check_tail(&wal_dir)?
        {
            tracing::warn!(path = %path.display(), offset, dropped_bytes, "recovered raft log from a torn tail");
        }

        let mut config = raft_log::Config::new(wal_dir.display());
        config.wal.chunk_max_size = Some(opts.chunk_max_bytes);
        config.wal.chunk_max_records = Some(opts.chunk_max_records);
        // The tail was checked above: any damage raft-log still meets must be an error.
        config.wal.truncate_incomplete_record = Some(false);
        config.log_cache_capacity = Some(opts.cache_max_bytes);
        config.wal.flush_batch_wait = Some(opts.flush_wait);

        let wal = RaftLog::<WalTypes>::open(Arc::new(config)).map_err(|source| StorageError::OpenLog {
            path: wal_dir.clone(),
            source,
        })?;
        let st = wal.log_state();
        tracing::info!(
            dir = %wal_dir.display(),
            last = ?st.last().map(|l| &l.0),
            purged = ?st.purged().map(|l| &l.0),
            committed = ?st.committed().map(|l| &l.0),
            "opened raft log"
        );
        let (acked, acked_index) = AckedFile::open(dir)?;
        // After a purge past the last entry the log is empty: it ends at the purged index.
        let log_end = st
            .last()
            .map(|l| l.0.index)
            .max(st.purged().map(|l| l.0.index))
            .unwrap_or(0);
        if acked_index > log_end {
            let e = StorageError::LostAcknowledged {
                dir: wal_dir,
                log_end,
                acked: acked_index,
                acked_file: acked.path().to_path_buf(),
            };
            tracing::error!(error = %e, "raft log lost acknowledged entries");
            return Err(e);
        }
        Ok(LogStore {
            wal: Arc::new(Mutex::new(wal)),
            dir: wal_dir,
            acked: Arc::new(acked),
            flush_seconds: None,
        })
    }

    /// Measure each append's time from hand-over to durable into `histogram`.
    pub fn with_flush_histogram(
        mut self,
        histogram: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        self.flush_seconds = Some(histogram);
        self
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters of the flush thread since open.
    pub fn flush_stats(&self) -> FlushStats {
        let m = lock(&self.wal).stat().flush_metrics;
        FlushStats {
            write_requests: m.write_request_count,
            synced_batches: m.sync_batch_count,
        }
    }

    /// Run `write` on the WAL, then request a synced flush and wait for it.
    async fn write_synced(&self, write: impl FnOnce(&mut Wal) -> io::Result<()>) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut wal = lock(&self.wal);
            write(&mut wal)?;
            wal.flush(true, Some(WalCallback::Done(tx)))?;
        }
        rx.await
            .map_err(|_| io::Error::other("raft log flush thread stopped"))?
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if from >= to {
            return Ok(Vec::new());
        }
        // Entries of the recent past come from raft-log's cache; older ones are one pread each.
        let wal = lock(&self.wal);
        wal.read(from, to)
            .map(|res| res.map(|(log_id, payload)| EntryOf::<TypeConfig>::new(log_id.0, payload.0)))
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.wal).log_state().vote().map(|v| v.0))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        LogReader {
            wal: self.wal.clone(),
        }
        .try_get_log_entries(range)
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.wal).log_state().vote().map(|v| v.0))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let wal = lock(&self.wal);
        let st = wal.log_state();
        let last_purged_log_id = st.purged().map(|l| l.0);
        // After a purge past the last entry the log is empty: its last id is the purged one.
        let last_log_id = st.last().map(|l| l.0).max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            wal: self.wal.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let vote = *vote;
        self.write_synced(|wal| wal.save_vote(Bin(vote)).map(drop))
            .await?;
        tracing::debug!(%vote, "saved vote");
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let Some(committed) = committed else { return Ok(()) };
        // Buffered only: the next synced append (or vote, truncation, purge) carries it to the
        // disk (see module docs). A flush request of its own cost the flush thread a wake-up,
        // a group-commit wait and a write per committed entry.
        lock(&self.wal).commit(Bin(committed)).map(drop)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.wal).log_state().committed().map(|l| l.0))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut wal = lock(&self.wal);
        let mut last_index = None;
        wal.append(entries.into_iter().map(|e| {
            last_index = Some(e.log_id.index);
            (Bin(e.log_id), Bin(e.payload))
        }))?;
        tracing::debug!(target: crate::trace::TIMELINE, index = ?last_index, "entries handed to the WAL");
        // Returns at once; the flush thread records the acknowledged index and calls
        // `callback` after the fsync.
        let callback = WalCallback::Raft {
            callback,
            last_index,
            acked: self.acked.clone(),
            timed: self
                .flush_seconds
                .as_ref()
                .map(|h| (tokio::time::Instant::now(), h.clone())),
        };
        wal.flush(true, Some(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let keep_upto = last_log_id.as_ref().map(|l| l.index);
        {
            let wal = lock(&self.wal);
            let last = wal.log_state().last().map(|l| l.0.index);
            if last <= keep_upto {
                return Ok(());
            }
        }
        tracing::info!(keep_upto = ?keep_upto, "truncating raft log");
        // The acknowledged index must not stay above the log's new end: first let earlier
        // appends' flushes (which raise it) finish, then lower it durably, then cut.
        self.write_synced(|_| Ok(())).await?;
        self.acked.lower(keep_upto.unwrap_or(0))?;
        let index = keep_upto.map_or(0, |i| i + 1);
        self.write_synced(|wal| wal.truncate(index).map(drop)).await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        tracing::info!(upto = %log_id, "purging raft log");
        // The synced flush also queues the removal of chunk files wholly behind `log_id`, after
        // the purge record is durable.
        self.write_synced(|wal| wal.purge(Bin(log_id)).map(drop)).await
    }
}
