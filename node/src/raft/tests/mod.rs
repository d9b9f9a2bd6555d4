//! Tests of the Raft storage on real files (tempdirs): openraft's conformance suite, crash and
//! corruption recovery of the WAL, snapshot round trips, and restart of a single-node Raft.

mod crash;
pub(crate) mod format;
mod lost;
mod restart;
mod snapshot;
mod suite;

use openraft::EntryPayload;
use openraft::alias::EntryOf;
use openraft::alias::LogIdOf;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;

use super::log_store::LogStore;
use crate::queue::Command;
use crate::queue::Request;
use crate::types::TypeConfig;

pub(crate) fn lid(term: u64, index: u64) -> LogIdOf<TypeConfig> {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

/// A normal entry whose encoding contains `marker` verbatim, so tests can find it in a file.
pub(crate) fn entry(term: u64, index: u64, marker: &str) -> EntryOf<TypeConfig> {
    let req = Request {
        now_ms: 1_000 + index,
        commands: vec![Command::PurgeQueue {
            queue: marker.to_string(),
        }],
    };
    EntryOf::<TypeConfig>::new(lid(term, index), EntryPayload::Normal(req))
}

pub(crate) fn marker(index: u64) -> String {
    format!("needle-{index:04}")
}

/// Entries `from..=to` of term 1, each with its [`marker`].
pub(crate) fn entries(from: u64, to: u64) -> Vec<EntryOf<TypeConfig>> {
    (from..=to).map(|i| entry(1, i, &marker(i))).collect()
}

/// Append and wait until openraft would be told the entries are on disk.
pub(crate) async fn append_durable(store: &mut LogStore, entries: Vec<EntryOf<TypeConfig>>) {
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flush callback dropped").expect("flush failed");
}

/// Index of every entry the store returns for `0..`.
pub(crate) async fn indexes(store: &mut LogStore) -> Vec<u64> {
    let mut r = store.get_log_reader().await;
    openraft::RaftLogReader::try_get_log_entries(&mut r, 0..)
        .await
        .expect("read")
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

/// Cut `file` to `len` bytes, as a crash or an operator's mistake would.
pub(crate) fn truncate(file: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}
