//! The identity file `node.json`: `{format, cluster_id, node_id}`.
//!
//! A fresh directory founds a new cluster (id from the OS RNG via `uuid`), and this node is
//! member 1. A restart reads the file back, so the node keeps its id and cluster. The file is
//! written to a temporary name, fsync'd and renamed, so a crash never leaves half a file.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

use crate::types::NodeId;

const FILE: &str = "node.json";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub format: u32,
    pub cluster_id: String,
    pub node_id: NodeId,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data directory {path}: identity file is unreadable: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
    #[error("data directory {path} holds data but no {FILE}; it was not made by this version of flotilla")]
    Foreign { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Identity {
    /// Read the identity of `dir`, or found a new single-node cluster there when `dir` is new
    /// (missing or empty). Returns the identity and whether it was just created.
    pub fn load_or_found(dir: &Path) -> Result<(Identity, bool), ClusterError> {
        let file = dir.join(FILE);
        match fs::read(&file) {
            Ok(bytes) => {
                let id: Identity = serde_json::from_slice(&bytes).map_err(|e| ClusterError::BadIdentity {
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
                if id.format != FORMAT {
                    return Err(ClusterError::BadIdentity {
                        path: file,
                        reason: format!("format {} is not supported (expected {FORMAT})", id.format),
                    });
                }
                Ok((id, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io(dir))?;
                if fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                    return Err(ClusterError::Foreign {
                        path: dir.to_path_buf(),
                    });
                }
                let id = Identity {
                    format: FORMAT,
                    cluster_id: uuid::Uuid::new_v4().to_string(),
                    node_id: 1,
                };
                id.store(dir)?;
                Ok((id, true))
            }
            Err(e) => Err(io(&file)(e)),
        }
    }

    fn store(&self, dir: &Path) -> Result<(), ClusterError> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| ClusterError::BadIdentity {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
        fs::rename(&tmp, dir.join(FILE)).map_err(io(dir))?;
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_founds_a_cluster_and_a_restart_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, created) = Identity::load_or_found(&data).unwrap();
        assert!(created);
        assert_eq!(first.node_id, 1);
        let (again, created) = Identity::load_or_found(&data).unwrap();
        assert!(!created);
        assert_eq!(first, again);
    }

    #[test]
    fn a_directory_with_other_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("something"), b"x").unwrap();
        let err = Identity::load_or_found(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no node.json"), "{err}");
    }

    #[test]
    fn a_corrupt_identity_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let err = Identity::load_or_found(dir.path()).unwrap_err();
        assert!(err.to_string().contains("identity file is unreadable"), "{err}");
    }
}
