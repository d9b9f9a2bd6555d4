//! openraft's storage conformance suite against LogStore + StateMachineStore on real files.

use std::sync::Arc;

use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use tempfile::TempDir;

use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachineStore;
use crate::replica::Replica;
use crate::types::TypeConfig;

struct TempStoreBuilder;

fn to_openraft(e: impl std::error::Error) -> openraft::StorageError<TypeConfig> {
    openraft::StorageError::from_io_error(
        ErrorSubject::Store,
        ErrorVerb::Read,
        std::io::Error::other(e.to_string()),
    )
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), openraft::StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(to_openraft)?;
        let log = LogStore::open(dir.path()).map_err(to_openraft)?;
        let sm = StateMachineStore::open(dir.path(), Arc::new(Replica::default())).map_err(to_openraft)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(TempStoreBuilder)
        .await
        .expect("openraft storage suite");
}
