//! [`SimLogStore`]: a Raft log in memory with the durability rules of the real one, for the
//! deterministic simulator.
//!
//! The real WAL fsyncs on a thread of its own, whose timing no simulator controls. This store
//! keeps two images of the log: what the node sees (every write, at once, like raft-log's
//! memory state) and what a [`SimDisk`] holds durably. Writes reach the disk through one flush
//! task, in order, in batches (group commit), each after the disk's simulated sync latency; only
//! then are openraft's `IOFlushed` callbacks and `save_vote`'s caller answered, as with fsync.
//! The [`SimDisk`] outlives the node: a simulated crash drops the flush task and with it every
//! write not yet synced; the restarted node opens the disk's image and nothing else, its
//! entries encoded and decoded as the WAL does (so the simulator checks the entry format too).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::alias::EntryOf;
use openraft::alias::EntryPayloadOf;
use openraft::alias::LogIdOf;
use openraft::alias::VoteOf;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use raft_log::codeq;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::wal::Bin;
use crate::bugs;
use crate::bugs::Bug;
use crate::types::TypeConfig;

/// The state of a log: the same whether in memory or on the simulated disk.
#[derive(Clone, Debug, Default)]
struct LogImage {
    vote: Option<VoteOf<TypeConfig>>,
    committed: Option<LogIdOf<TypeConfig>>,
    purged: Option<LogIdOf<TypeConfig>>,
    entries: BTreeMap<u64, EntryOf<TypeConfig>>,
}

/// One write, applied in order to both images.
#[derive(Clone, Debug)]
enum Op {
    Vote(VoteOf<TypeConfig>),
    Committed(LogIdOf<TypeConfig>),
    Append(Vec<EntryOf<TypeConfig>>),
    /// Keep entries up to this index (none with `None`).
    TruncateAfter(Option<u64>),
    Purge(LogIdOf<TypeConfig>),
}

impl LogImage {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Vote(v) => self.vote = Some(*v),
            Op::Committed(c) => self.committed = Some(*c),
            Op::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e.clone());
                }
            }
            Op::TruncateAfter(keep) => {
                let from = keep.map_or(0, |k| k + 1);
                self.entries.split_off(&from);
            }
            Op::Purge(upto) => {
                self.purged = Some(*upto);
                self.entries = self.entries.split_off(&(upto.index + 1));
            }
        }
    }

    fn log_state(&self) -> LogState<TypeConfig> {
        let last = self.entries.values().next_back().map(|e| e.log_id);
        LogState {
            last_purged_log_id: self.purged,
            // After a purge past the last entry the log is empty: its last id is the purged one.
            last_log_id: last.max(self.purged),
        }
    }
}

/// A node's simulated disk: the durable part of its log. Kept by the simulator across crashes.
#[derive(Debug, Default)]
pub struct SimDisk {
    durable: Mutex<LogImage>,
    sync_latency_us: AtomicU64,
    syncs: AtomicU64,
}

impl SimDisk {
    /// An empty disk whose syncs take `latency` of simulated time.
    pub fn new(latency: Duration) -> Arc<SimDisk> {
        let disk = SimDisk::default();
        disk.set_sync_latency(latency);
        Arc::new(disk)
    }

    /// Change how long a sync takes (a slow disk fault).
    pub fn set_sync_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sync_latency_us.store(us, Ordering::Relaxed);
    }

    fn sync_latency(&self) -> Duration {
        Duration::from_micros(self.sync_latency_us.load(Ordering::Relaxed))
    }

    /// Batches synced so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Index of the last durable entry.
    pub fn last_index(&self) -> Option<u64> {
        lock(&self.durable).log_state().last_log_id.map(|l| l.index)
    }

    /// What a restarted node reads back. Its entries go through the WAL's encoding, as on a
    /// real disk, so every simulated restart also checks that they survive it unchanged.
    fn image(&self) -> LogImage {
        let mut image = lock(&self.durable).clone();
        for entry in image.entries.values_mut() {
            entry.payload = reread(&entry.payload);
        }
        image
    }
}

/// `payload` written to and read from a WAL field. A failure is a bug in the entry format
/// (this build cannot read what it wrote): the simulator stops on it.
fn reread(payload: &EntryPayloadOf<TypeConfig>) -> EntryPayloadOf<TypeConfig> {
    let mut bytes = Vec::new();
    codeq::Encode::encode(&Bin(payload.clone()), &mut bytes).expect("a log entry encodes");
    let back: Bin<EntryPayloadOf<TypeConfig>> =
        codeq::Decode::decode(&bytes[..]).expect("a log entry reads back");
    assert_eq!(back.0, *payload, "a log entry reads back as it was written");
    back.0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Images are replaced whole by each op; a panic mid-op leaves the last consistent one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who to tell once a batch is durable.
enum Done {
    Raft(IOFlushed<TypeConfig>),
    Caller(oneshot::Sender<()>),
    /// Not synced, but durable with the next synced batch.
    Nobody,
    /// Never synced by us (the `AckBeforeFsync` bug): durable only once written back.
    Unsynced,
}

/// The log store of a simulated node. See the module docs.
pub struct SimLogStore {
    mem: Arc<Mutex<LogImage>>,
    flush: mpsc::UnboundedSender<(Op, Done)>,
}

/// A reader sharing the store's memory image.
#[derive(Clone)]
pub struct SimLogReader {
    mem: Arc<Mutex<LogImage>>,
}

impl SimLogStore {
    /// Open `disk`'s durable image; start the flush task on the current runtime (a crash of the
    /// simulated host drops it, and the writes it had not synced).
    pub fn open(disk: Arc<SimDisk>) -> SimLogStore {
        let mem = Arc::new(Mutex::new(disk.image()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(flush_task(disk, rx));
        SimLogStore { mem, flush: tx }
    }

    fn write(&self, op: Op, done: Done) -> io::Result<()> {
        lock(&self.mem).apply(&op);
        self.flush
            .send((op, done))
            .map_err(|_| io::Error::other("simulated disk flush task stopped"))
    }

    async fn write_synced(&self, op: Op) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.write(op, Done::Caller(tx))?;
        rx.await
            .map_err(|_| io::Error::other("simulated disk flush task stopped"))
    }
}

/// How long an unsynced write sits in the (simulated) page cache before the kernel writes it
/// back by itself: only the `AckBeforeFsync` bug leaves writes unsynced.
const WRITEBACK: Duration = Duration::from_secs(5);

async fn flush_task(disk: Arc<SimDisk>, mut rx: mpsc::UnboundedReceiver<(Op, Done)>) {
    // Writes not synced yet, oldest first, with the time the kernel would write them back.
    let mut page_cache: std::collections::VecDeque<(tokio::time::Instant, Op)> = Default::default();
    loop {
        let first = match page_cache.front() {
            Some((due, _)) => {
                let due = *due;
                tokio::select! {
                    next = rx.recv() => next,
                    () = tokio::time::sleep_until(due) => {
                        let now = tokio::time::Instant::now();
                        let mut durable = lock(&disk.durable);
                        while page_cache.front().is_some_and(|(due, _)| *due <= now) {
                            if let Some((_, op)) = page_cache.pop_front() {
                                durable.apply(&op);
                            }
                        }
                        continue;
                    }
                }
            }
            None => rx.recv().await,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let latency = disk.sync_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut durable = lock(&disk.durable);
            for (op, done) in batch {
                let synced = matches!(done, Done::Raft(_) | Done::Caller(_));
                if !synced && (matches!(done, Done::Unsynced) || !page_cache.is_empty()) {
                    // Keeps its place behind the unsynced writes before it.
                    page_cache.push_back((tokio::time::Instant::now() + WRITEBACK, op));
                    continue;
                }
                if synced {
                    // An fsync writes back everything the file had in the page cache.
                    for (_, cached) in page_cache.drain(..) {
                        durable.apply(&cached);
                    }
                }
                if !(matches!(op, Op::Vote(_)) && bugs::active(Bug::ForgetVote)) {
                    durable.apply(&op);
                }
                answers.push(done);
            }
        }
        disk.syncs.fetch_add(1, Ordering::Relaxed);
        for done in answers {
            match done {
                Done::Raft(callback) => callback.io_completed(Ok(())),
                Done::Caller(tx) => {
                    let _ = tx.send(());
                }
                Done::Nobody | Done::Unsynced => {}
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for SimLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.mem)
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.mem).vote)
    }
}

impl RaftLogReader<TypeConfig> for SimLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        self.get_log_reader().await.try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_log_reader().await.read_vote().await
    }
}

impl RaftLogStorage<TypeConfig> for SimLogStore {
    type LogReader = SimLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        Ok(lock(&self.mem).log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        SimLogReader {
            mem: self.mem.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.write_synced(Op::Vote(*vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let Some(committed) = committed else { return Ok(()) };
        // As in the WAL: no sync of its own, durable with the next synced batch.
        self.write(Op::Committed(committed), Done::Nobody)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(lock(&self.mem).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let op = Op::Append(entries.into_iter().collect());
        if bugs::active(Bug::AckBeforeFsync) {
            callback.io_completed(Ok(()));
            return self.write(op, Done::Unsynced);
        }
        self.write(op, Done::Raft(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        self.write_synced(Op::TruncateAfter(last_log_id.map(|l| l.index)))
            .await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        self.write_synced(Op::Purge(log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::ErrorSubject;
    use openraft::ErrorVerb;
    use openraft::testing::log::StoreBuilder;
    use openraft::testing::log::Suite;

    use super::*;
    use crate::raft::StateMachineStore;
    use crate::raft::tests::entries;
    use crate::replica::Replica;

    struct Builder;

    fn to_openraft(e: impl std::error::Error) -> openraft::StorageError<TypeConfig> {
        openraft::StorageError::from_io_error(
            ErrorSubject::Store,
            ErrorVerb::Read,
            io::Error::other(e.to_string()),
        )
    }

    impl StoreBuilder<TypeConfig, SimLogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, SimLogStore, StateMachineStore), openraft::StorageError<TypeConfig>>
        {
            let dir = tempfile::tempdir().map_err(to_openraft)?;
            let log = SimLogStore::open(SimDisk::new(Duration::from_micros(100)));
            let sm =
                StateMachineStore::open(dir.path(), Arc::new(Replica::default())).map_err(to_openraft)?;
            Ok((dir, log, sm))
        }
    }

    #[tokio::test]
    async fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).await.expect("storage suite");
    }

    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_crash_loses_exactly_what_was_not_synced() {
        let disk = SimDisk::new(Duration::from_millis(10));
        let vote = VoteOf::<TypeConfig>::new(3, 1);
        let rt = paused_runtime();
        rt.block_on(async {
            let mut store = SimLogStore::open(disk.clone());
            store.save_vote(&vote).await.unwrap();
            store.append(entries(1, 2), IOFlushed::noop()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Written, but its sync has not finished when the host goes down.
            store.append(entries(3, 3), IOFlushed::noop()).await.unwrap();
            assert_eq!(
                store.get_log_state().await.unwrap().last_log_id.map(|l| l.index),
                Some(3)
            );
        });
        drop(rt); // the crash: the flush task dies with its runtime
        let rt = paused_runtime();
        rt.block_on(async {
            let mut store = SimLogStore::open(disk.clone());
            let state = store.get_log_state().await.unwrap();
            assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
            assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        });
    }

    #[test]
    fn appends_are_acknowledged_only_once_synced() {
        let rt = paused_runtime();
        rt.block_on(async {
            let disk = SimDisk::new(Duration::from_millis(10));
            let mut store = SimLogStore::open(disk.clone());
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            let (cb_tx, cb_rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
            store
                .append(entries(1, 1), IOFlushed::signal(cb_tx))
                .await
                .unwrap();
            tokio::spawn(async move {
                let _ = cb_rx.await;
                let _ = tx.send(());
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(rx.try_recv().is_err(), "acknowledged before the sync finished");
            assert_eq!(disk.last_index(), None);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(rx.try_recv().is_ok());
            assert_eq!(disk.last_index(), Some(1));
        });
    }
}
