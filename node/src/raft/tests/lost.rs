//! A log that lost entries this node acknowledged is refused at start (issue 14, item 12);
//! what was never acknowledged (a torn tail) or legitimately cut (a truncation by a new
//! leader) is not.

use std::fs;
use std::fs::OpenOptions;
use std::path::Path;
use tokio::time::Instant;

use openraft::storage::RaftLogStorage;
use raft_log::RaftLogAction;
use raft_log::WALRecord;
use raft_log::codeq::Decode;

use super::append_durable;
use super::entries;
use super::indexes;
use super::lid;
use super::marker;
use crate::raft::acked::ACKED_FILE;
use crate::raft::acked::AckedFile;
use crate::raft::error::StorageError;
use crate::raft::log_store::LogStore;
use crate::raft::log_store::LogStoreOptions;
use crate::raft::log_store::WAL_DIR;
use crate::raft::wal::WalRecord;
use crate::raft::wal::chunk_files;

/// Four records per chunk, so 30 entries make several chunk files.
fn small_chunks() -> LogStoreOptions {
    LogStoreOptions {
        chunk_max_records: 4,
        ..LogStoreOptions::default()
    }
}

/// A closed store holding entries 1..=30, appended (and acknowledged) in batches of 3.
async fn thirty_entries(dir: &Path, opts: &LogStoreOptions) {
    let mut store = LogStore::open_with(dir, opts).unwrap();
    for first in (1..=30).step_by(3) {
        append_durable(&mut store, entries(first, first + 2)).await;
    }
}

fn open(dir: &Path) -> Result<LogStore, StorageError> {
    LogStore::open_with(dir, &small_chunks())
}

fn assert_lost(result: Result<LogStore, StorageError>, acked: u64) {
    match result {
        Err(e @ StorageError::LostAcknowledged { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("up to index {acked}")), "{text}");
            assert!(text.contains("--join"), "says what to do: {text}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("a log without acknowledged entries was opened"),
    }
}

/// The chunk file that holds entry `index` (its marker).
fn chunk_with(dir: &Path, index: u64) -> std::path::PathBuf {
    let needle = marker(index);
    chunk_files(&dir.join(WAL_DIR))
        .unwrap()
        .into_iter()
        .find(|f| {
            fs::read(f)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .expect("a chunk holds the entry")
}

/// Byte offset of the record of entry `index` in `chunk`.
fn record_offset(chunk: &Path, index: u64) -> u64 {
    let bytes = fs::read(chunk).unwrap();
    let mut pos = 0;
    loop {
        let mut cur = std::io::Cursor::new(&bytes[pos as usize..]);
        let record = WalRecord::decode(&mut cur).unwrap();
        if let WALRecord::Action(RaftLogAction::Append(id, _)) = &record
            && id.0.index == index
        {
            return pos;
        }
        pos += cur.position();
    }
}

#[tokio::test]
async fn a_deleted_last_chunk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    thirty_entries(dir.path(), &small_chunks()).await;
    // The chunk with the last entries, and any (checkpoint-only) chunk after it.
    let holding = chunk_with(dir.path(), 30);
    for chunk in chunk_files(&dir.path().join(WAL_DIR)).unwrap() {
        if chunk >= holding {
            fs::remove_file(chunk).unwrap();
        }
    }
    assert_lost(open(dir.path()), 30);
}

#[tokio::test]
async fn a_tail_cut_far_beyond_one_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    thirty_entries(dir.path(), &LogStoreOptions::default()).await;
    // Cut at a record boundary before entry 21: ten acknowledged entries, in four batches.
    let chunk = chunk_with(dir.path(), 30);
    let cut = record_offset(&chunk, 21);
    super::truncate(&chunk, cut);
    assert_lost(LogStore::open(dir.path()), 30);
}

#[tokio::test]
async fn a_torn_tail_and_a_truncation_by_a_new_leader_are_not_losses() {
    let dir = tempfile::tempdir().unwrap();
    thirty_entries(dir.path(), &small_chunks()).await;
    // A write that never finished: garbage after the last record.
    let last = chunk_files(&dir.path().join(WAL_DIR)).unwrap().pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&last).unwrap();
    std::io::Write::write_all(&mut f, &[0x17; 11]).unwrap();
    drop(f);
    let mut store = open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await.last(), Some(&30));

    // A new leader overwrites entries that never committed: the index comes down with them.
    store.truncate_after(Some(lid(1, 20))).await.unwrap();
    drop(store);
    let mut store = open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await.last(), Some(&20));
    append_durable(&mut store, entries(21, 22)).await;
    drop(store);
    assert_eq!(AckedFile::open(dir.path()).unwrap().1, 22);
}

#[tokio::test]
async fn deleting_the_acked_file_is_the_operators_way_to_accept_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    thirty_entries(dir.path(), &LogStoreOptions::default()).await;
    let chunk = chunk_with(dir.path(), 30);
    let cut = record_offset(&chunk, 30);
    super::truncate(&chunk, cut);
    assert_lost(LogStore::open(dir.path()), 30);
    fs::remove_file(dir.path().join(ACKED_FILE)).unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await.last(), Some(&29));
}

/// What recording the index costs, beside what a synced batch costs anyway. Run with
/// `cargo test -p flotilla-node --release acked_index_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn acked_index_cost() {
    let dir = tempfile::tempdir().unwrap();
    let (acked, _) = AckedFile::open(dir.path()).unwrap();
    let n = 100_000u64;
    let started = Instant::now();
    for i in 1..=n {
        acked.record(i);
    }
    let per_record = started.elapsed() / n as u32;

    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    let batches = 2_000u64;
    let started = Instant::now();
    for i in 1..=batches {
        append_durable(&mut store, entries(i, i)).await;
    }
    let per_batch = started.elapsed() / batches as u32;
    println!("acked index: {per_record:?} per record; one synced append batch: {per_batch:?}");
}
