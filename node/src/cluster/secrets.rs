//! The secrets a node keeps in its data directory, each in its own file of mode 0600:
//!
//! - `cluster.secret`: the cluster's peer secret ([`crate::network::SharedSecret`]), made by
//!   the founder, received by a joining node with its id. A data directory with an identity but
//!   no secret predates peer authentication: the node refuses to start and says how to give it
//!   one (the same secret on every member).
//! - `admin.token` (or `--admin-token-file`): the first admin token, written when the cluster
//!   has none (`cluster::tokens`). A file that already exists is used as it is, so an operator
//!   can choose the first token.
//!
//! Files are written to a temporary name with mode 0600 from the start, fsync'd and renamed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;

use super::ClusterError;
use crate::secret;

/// The peer secret's file in the data directory.
pub const SECRET_FILE: &str = "cluster.secret";
/// The default file of the first admin token in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `contents` to `path` durably, readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), ClusterError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// A secret read from `path`: its first line, trimmed; `None` if there is no such file.
pub fn read_secret(path: &Path) -> Result<Option<String>, ClusterError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let value = text.lines().next().unwrap_or_default().trim().to_string();
            if value.len() < secret::MIN_SUPPLIED_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ClusterError::BadIdentity {
                    path: path.to_path_buf(),
                    reason: format!(
                        "a secret must be at least {} printable characters on its first line",
                        secret::MIN_SUPPLIED_LEN
                    ),
                });
            }
            Ok(Some(value))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The peer secret's path in `dir`.
pub fn secret_path(dir: &Path) -> PathBuf {
    dir.join(SECRET_FILE)
}

/// The peer secret of an existing member's data directory.
pub fn load_peer_secret(dir: &Path) -> Result<String, ClusterError> {
    let path = secret_path(dir);
    read_secret(&path)?.ok_or(ClusterError::NoPeerSecret { path })
}

/// Store the peer secret in `dir` (founding, or joining).
pub fn store_peer_secret(dir: &Path, secret: &str) -> Result<(), ClusterError> {
    write_private(&secret_path(dir), secret)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_private_files_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(matches!(
            load_peer_secret(&data),
            Err(ClusterError::NoPeerSecret { .. })
        ));
        let s = secret::random_token().unwrap();
        store_peer_secret(&data, &s).unwrap();
        assert_eq!(load_peer_secret(&data).unwrap(), s);
        let mode = fs::metadata(secret_path(&data)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(data.join("short"), "abc\n").unwrap();
        let err = read_secret(&data.join("short")).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(!err.contains("abc"), "the error quotes the secret: {err}");
    }
}
