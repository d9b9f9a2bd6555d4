//! The identity file `node.json`: `{format, cluster_id, node_id, pending_join}`.
//!
//! A fresh directory without `--join` founds a new cluster (id from the OS RNG via `uuid`) in
//! which this node is member 1. A joining node stores the id the cluster gave it with
//! `pending_join: true` before it starts Raft, and clears the flag once it is a voter, so a
//! crash in between resumes the join instead of founding or forgetting. A restart reads the
//! file back: the node keeps its id and cluster and rejoins by itself. The file is written to a
//! temporary name, fsync'd and renamed, so a crash never leaves half a file.

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
    /// The cluster gave this node its id, but it is not a voter yet.
    #[serde(default)]
    pub pending_join: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data directory {path}: identity file is unreadable: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
    #[error("data directory {path} holds other files but no {FILE}; use an empty or new directory")]
    Foreign { path: PathBuf },
    #[error(
        "{path} is missing: this data directory predates peer authentication. Give every member \
         the same secret (e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE` on one node, copied \
         to the others) and start them again"
    )]
    NoPeerSecret { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Identity {
    /// The identity stored in `dir`, or `None` when `dir` is new (missing or empty).
    pub fn load(dir: &Path) -> Result<Option<Identity>, ClusterError> {
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
                Ok(Some(id))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A crash while the identity was first written leaves only its temporary file:
                // the directory is still new.
                // A crash while founding may also have left the peer secret (written first).
                let tmp = format!("{FILE}.tmp");
                let leftovers = [tmp.as_str(), super::secrets::SECRET_FILE, "cluster.tmp"];
                let non_empty = match fs::read_dir(dir) {
                    Ok(entries) => entries
                        .filter_map(Result::ok)
                        .any(|e| !leftovers.iter().any(|l| e.file_name() == *l)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    Err(e) => return Err(io(dir)(e)),
                };
                if non_empty {
                    return Err(ClusterError::Foreign {
                        path: dir.to_path_buf(),
                    });
                }
                Ok(None)
            }
            Err(e) => Err(io(&file)(e)),
        }
    }

    /// A new cluster founded by this node (member 1).
    pub fn found() -> Identity {
        Identity {
            format: FORMAT,
            cluster_id: uuid::Uuid::new_v4().to_string(),
            node_id: 1,
            pending_join: false,
        }
    }

    /// An id given by an existing cluster to this joining node.
    pub fn joining(cluster_id: String, node_id: NodeId) -> Identity {
        Identity {
            format: FORMAT,
            cluster_id,
            node_id,
            pending_join: true,
        }
    }

    /// Write the identity to `dir` durably (creating `dir`).
    pub fn store(&self, dir: &Path) -> Result<(), ClusterError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
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
    fn a_new_directory_has_no_identity_and_a_stored_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(Identity::load(&data).unwrap(), None);
        let founded = Identity::found();
        assert_eq!(founded.node_id, 1);
        founded.store(&data).unwrap();
        assert_eq!(Identity::load(&data).unwrap(), Some(founded.clone()));
        let mut joined = Identity::joining(founded.cluster_id.clone(), 4);
        assert!(joined.pending_join);
        joined.pending_join = false;
        joined.store(&data).unwrap();
        assert_eq!(Identity::load(&data).unwrap(), Some(joined));
    }

    #[test]
    fn a_crash_while_founding_leaves_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("node.json.tmp"), b"{\"format\":1,").unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), None);
        Identity::found().store(dir.path()).unwrap();
        assert!(Identity::load(dir.path()).unwrap().is_some());
    }

    #[test]
    fn a_directory_with_other_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("something"), b"x").unwrap();
        let err = Identity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no node.json"), "{err}");
    }

    #[test]
    fn a_corrupt_identity_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let err = Identity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("identity file is unreadable"), "{err}");
    }
}
