//! Crash semantics of the WAL on real files: what survives a reopen, torn tails, corruption.

use std::fs;
use std::fs::OpenOptions;
use std::io::Cursor;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::RaftLogReader;
use openraft::Vote;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;
use raft_log::RaftLogAction;
use raft_log::WALRecord;
use raft_log::codeq::Decode;

use super::append_durable;
use super::entries;
use super::indexes;
use super::lid;
use super::marker;
use crate::raft::error::StorageError;
use crate::raft::log_store::LogStore;
use crate::raft::log_store::LogStoreOptions;
use crate::raft::log_store::WAL_DIR;
use crate::raft::wal::WalRecord;
use crate::raft::wal::WalTypes;
use crate::raft::wal::chunk_files;
use crate::types::TypeConfig;

fn wal_dir(dir: &Path) -> PathBuf {
    dir.join(WAL_DIR)
}

fn last_chunk(dir: &Path) -> PathBuf {
    chunk_files(&wal_dir(dir)).unwrap().pop().expect("a chunk file")
}

/// Offset of the first occurrence of `needle` in `path`.
fn find(path: &Path, needle: &str) -> usize {
    let bytes = fs::read(path).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("needle in file")
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// Byte offset of the `Append` record of log index `index` in `path`.
fn append_record_offset(path: &Path, index: u64) -> usize {
    let bytes = fs::read(path).unwrap();
    let mut pos = 0;
    loop {
        let mut cur = Cursor::new(&bytes[pos..]);
        let rec = WalRecord::decode(&mut cur).expect("valid record");
        if let WALRecord::Action(RaftLogAction::Append(id, _)) = &rec
            && id.0.index == index
        {
            return pos;
        }
        pos += cur.position() as usize;
    }
}

/// Make the store in `dir` remember that only entries up to `index` were acknowledged: what a
/// crash during the write of the entries after it leaves (their flush never completed, so
/// openraft never acknowledged them). Tests that cut an fsync'd tail to fake a torn write need
/// this; without it the cut is a loss of acknowledged entries, which opening refuses.
fn unacknowledge_after(dir: &Path, index: u64) {
    crate::raft::acked::AckedFile::open(dir)
        .unwrap()
        .0
        .lower(index)
        .unwrap();
}

/// A store in a fresh tempdir holding entries 1..=10, closed again.
async fn ten_entries() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append_durable(&mut store, entries(1, 10)).await;
    drop(store);
    dir
}

#[tokio::test]
async fn vote_committed_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 10)).await;
        store.save_committed(Some(lid(1, 7))).await.unwrap();
        // save_vote waits for a synced flush, which also carries the committed record.
        store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_log_reader().await.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(lid(1, 7)));
    assert_eq!(indexes(&mut store).await, (1..=10).collect::<Vec<_>>());
    let st = store.get_log_state().await.unwrap();
    assert_eq!((st.last_purged_log_id, st.last_log_id), (None, Some(lid(1, 10))));
    let got = store
        .get_log_reader()
        .await
        .try_get_log_entries(4..5)
        .await
        .unwrap();
    assert_eq!(got, entries(4, 4), "payloads round-trip through the codec");
}

#[tokio::test]
async fn committed_rides_on_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 5)).await;
        let before = store.flush_stats();
        store.save_committed(Some(lid(1, 5))).await.unwrap();
        // No flush request of its own: one per committed entry cost the flush thread a
        // wake-up, a group-commit wait and a write (docs/BENCHMARKS.md, issue 15 low rate).
        assert_eq!(store.flush_stats(), before);
        append_durable(&mut store, entries(6, 6)).await;
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(lid(1, 5)));
    assert_eq!(indexes(&mut store).await, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn truncate_after_survives_reopen() {
    let dir = ten_entries().await;
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.truncate_after(Some(lid(1, 5))).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4, 5]);
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn torn_tail_mid_record_is_truncated_to_last_valid_entry() {
    let dir = ten_entries().await;
    let chunk = last_chunk(dir.path());
    let len = fs::metadata(&chunk).unwrap().len();
    // Cut into the middle of the last record (entry 10), as a crash during its write would.
    let cut = find(&chunk, &marker(10)) as u64 + 3;
    super::truncate(&chunk, cut);
    assert!(cut < len);
    unacknowledge_after(dir.path(), 9);

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, (1..=9).collect::<Vec<_>>());
    // The log is writable again from there, and stays consistent across another reopen.
    append_durable(&mut store, entries(10, 12)).await;
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn torn_tail_of_garbage_is_truncated() {
    let dir = ten_entries().await;
    let chunk = last_chunk(dir.path());
    let len = fs::metadata(&chunk).unwrap().len();
    // A record header that looks like an Append, then junk: chunked-wal alone would refuse
    // this (checksum error, non-zero tail); nothing valid follows, so it is a torn write.
    let mut f = OpenOptions::new().append(true).open(&chunk).unwrap();
    f.write_all(&[0, 0, 0, 1, 0, 0, 0, 9]).unwrap();
    f.write_all(&[0xab; 300]).unwrap();
    drop(f);

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(
        fs::metadata(&chunk).unwrap().len(),
        len,
        "garbage cut off, valid records kept"
    );
}

#[tokio::test]
async fn zero_filled_tail_is_truncated() {
    let dir = ten_entries().await;
    let chunk = last_chunk(dir.path());
    let mut f = OpenOptions::new().append(true).open(&chunk).unwrap();
    f.write_all(&[0; 8192]).unwrap();
    drop(f);

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn flipped_byte_in_an_early_record_is_a_clear_error() {
    let dir = ten_entries().await;
    let chunk = last_chunk(dir.path());
    let at = find(&chunk, &marker(3));
    let record = append_record_offset(&chunk, 3);
    flip_byte(&chunk, at);
    let before = fs::read(&chunk).unwrap();

    let err = LogStore::open(dir.path()).err().expect("open must fail");
    match &err {
        StorageError::CorruptLog {
            path,
            offset,
            next_valid,
            ..
        } => {
            assert_eq!(path, &chunk);
            assert_eq!(*offset, record as u64, "points at the damaged record");
            assert!(*next_valid > *offset);
        }
        other => panic!("expected CorruptLog, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&chunk.display().to_string()) && msg.contains(&record.to_string()),
        "{msg}"
    );
    assert_eq!(
        fs::read(&chunk).unwrap(),
        before,
        "a refused open changes nothing"
    );
}

/// The case our own tail check exists for: a damaged *length* makes an early record look
/// incomplete, which chunked-wal alone treats as a torn tail.
#[tokio::test]
async fn damaged_length_field_is_not_mistaken_for_a_torn_tail() {
    let dir = ten_entries().await;
    let chunk = last_chunk(dir.path());
    let record = append_record_offset(&chunk, 3);
    // Record layout: type u32 | log id length u32 | ...: make the length absurdly large.
    let mut bytes = fs::read(&chunk).unwrap();
    bytes[record + 4..record + 8].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    fs::write(&chunk, &bytes).unwrap();

    // What raft-log would do on its own (on a copy): silently drop entries 3..=10.
    let copy = tempfile::tempdir().unwrap();
    for f in chunk_files(&wal_dir(dir.path())).unwrap() {
        fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    {
        let raw = raft_log::RaftLog::<WalTypes>::open(Arc::new(raft_log::Config::new(copy.path().display())))
            .expect("raft-log opens by truncating");
        assert_eq!(
            raw.log_state().last().map(|l| l.0.index),
            Some(2),
            "raft-log alone loses 3..=10"
        );
    }

    // Ours refuses.
    match LogStore::open(dir.path()) {
        Err(StorageError::CorruptLog { offset, .. }) => assert_eq!(offset, record as u64),
        Err(other) => panic!("expected CorruptLog, got {other:?}"),
        Ok(_) => panic!("opened a corrupt log"),
    }
    assert_eq!(fs::read(&chunk).unwrap(), bytes, "nothing truncated");
}

fn small_chunks() -> LogStoreOptions {
    LogStoreOptions {
        chunk_max_records: 4,
        ..LogStoreOptions::default()
    }
}

#[tokio::test]
async fn damage_in_a_sealed_chunk_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open_with(dir.path(), &small_chunks()).unwrap();
        append_durable(&mut store, entries(1, 20)).await;
    }
    let files = chunk_files(&wal_dir(dir.path())).unwrap();
    assert!(files.len() > 2, "several chunks: {files:?}");
    let first = &files[0];
    flip_byte(first, find(first, &marker(2)));

    let err = LogStore::open_with(dir.path(), &small_chunks())
        .err()
        .expect("open must fail");
    assert!(matches!(err, StorageError::OpenLog { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&wal_dir(dir.path()).display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn purge_removes_whole_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let mut store = LogStore::open_with(dir.path(), &small_chunks()).unwrap();
        append_durable(&mut store, entries(1, 40)).await;
        before = chunk_files(&wal_dir(dir.path())).unwrap();
        store.purge(lid(1, 30)).await.unwrap();
        let st = store.get_log_state().await.unwrap();
        assert_eq!(
            (st.last_purged_log_id, st.last_log_id),
            (Some(lid(1, 30)), Some(lid(1, 40)))
        );
        assert_eq!(indexes(&mut store).await, (31..=40).collect::<Vec<_>>());
    }
    let after = chunk_files(&wal_dir(dir.path())).unwrap();
    assert!(
        after.len() + 5 <= before.len(),
        "chunks behind the purge point are gone: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.first(),
        before.iter().find(|f| after.contains(f)),
        "the oldest files went"
    );

    let mut store = LogStore::open_with(dir.path(), &small_chunks()).unwrap();
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(lid(1, 30)));
    assert_eq!(indexes(&mut store).await, (31..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn appends_issued_during_a_flush_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    let n = 300;
    let mut pending = Vec::new();
    // One append per entry, without waiting: as openraft does under load.
    for i in 1..=n {
        let (tx, rx) = TypeConfig::oneshot();
        store.append(entries(i, i), IOFlushed::signal(tx)).await.unwrap();
        pending.push(rx);
    }
    for rx in pending {
        rx.await.unwrap().unwrap();
    }
    let stats = store.flush_stats();
    assert!(stats.write_requests >= n, "{stats:?}");
    assert!(
        stats.synced_batches * 4 <= stats.write_requests,
        "expected batched fsyncs: {stats:?}"
    );
    assert_eq!(indexes(&mut store).await, (1..=n).collect::<Vec<_>>());
}
