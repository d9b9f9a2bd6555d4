//! API tokens made and revoked through the log, and the first admin token.
//!
//! - [`create`]: a fresh secret from the OS ([`crate::secret`]), its hash proposed as
//!   `CreateToken`; the secret goes back to the caller once and is stored nowhere.
//! - [`keep_an_admin_token`]: while this node leads and the token table holds no live admin
//!   token (a new cluster, or one upgraded from a build before tokens), it creates one from the
//!   admin token file (`<data dir>/admin.token` or `--admin-token-file`): the file's token if
//!   it exists (an operator may choose it), else a fresh one written there first (mode 0600).
//!   The token is never logged; the log names the file.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::ReadPolicy;
use tracing::info;
use tracing::warn;

use super::secrets;
use crate::clock::SharedClock;
use crate::error::ProposeError;
use crate::proposer::Proposer;
use crate::queue::Role;
use crate::queue::TokenHash;
use crate::queue::TokenId;
use crate::queue::ops;
use crate::raft::Raft;
use crate::replica::Replica;
use crate::secret;

/// How often the leader checks that an admin token exists.
const ADMIN_CHECK_EVERY: Duration = Duration::from_millis(250);

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Entropy(#[from] secret::EntropyError),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// A hash already in the table: only a token the caller supplied can collide.
    #[error("a token with the same secret exists")]
    Taken,
    #[error(transparent)]
    File(#[from] super::ClusterError),
}

/// The hash of a token as the table stores it.
pub fn token_hash(token: &[u8]) -> TokenHash {
    TokenHash(secret::hash(token))
}

/// Store `token` with `role` through the log; returns its id.
async fn store(
    proposer: &Proposer,
    token: &str,
    role: Role,
    label: String,
    ttl_ms: Option<u64>,
) -> Result<TokenId, TokenError> {
    let op = ops::CreateToken {
        role,
        hash: token_hash(token.as_bytes()),
        label,
        ttl_ms,
    };
    proposer.op(op).await?.ok_or(TokenError::Taken)
}

/// A new token with `role`: its id and its secret (shown to the caller once).
pub async fn create(
    proposer: &Proposer,
    role: Role,
    label: String,
    ttl_ms: Option<u64>,
) -> Result<(TokenId, String), TokenError> {
    let token = secret::random_token()?;
    let id = store(proposer, &token, role, label, ttl_ms).await?;
    info!(token_id = id, %role, "created a token");
    Ok((id, token))
}

/// Keep a live admin token in the cluster (see the module docs). Runs until aborted.
pub async fn keep_an_admin_token(
    raft: Raft,
    replica: Arc<Replica>,
    proposer: Proposer,
    clock: SharedClock,
    file: PathBuf,
) {
    let has_admin = || replica.read(|q| q.tokens().has_live_admin(clock.now_ms()));
    loop {
        tokio::time::sleep(ADMIN_CHECK_EVERY).await;
        if !raft.is_leader() || has_admin() {
            continue;
        }
        // The replica may lag behind what the log already holds: look again once it has
        // applied everything committed before now.
        if raft.ensure_linearizable(ReadPolicy::ReadIndex).await.is_err() || has_admin() {
            continue;
        }
        match first_admin_token(&proposer, &file).await {
            Ok(id) => info!(
                token_id = id,
                file = %file.display(),
                "the cluster had no admin token: created one; it is in this file (mode 0600)"
            ),
            Err(e) => warn!(error = %e, file = %file.display(), "could not create the first admin token"),
        }
    }
}

/// Store the admin token file's token (writing a fresh one there first if there is none).
async fn first_admin_token(proposer: &Proposer, file: &Path) -> Result<TokenId, TokenError> {
    let token = match secrets::read_secret(file)? {
        Some(token) => token,
        None => {
            let token = secret::random_token()?;
            secrets::write_private(file, &token)?;
            token
        }
    };
    let label = "first admin token".to_string();
    match store(proposer, &token, Role::Admin, label, None).await {
        Err(TokenError::Taken) => {
            // The file's token was stored before and no longer grants anything: replace it.
            let fresh = secret::random_token()?;
            secrets::write_private(file, &fresh)?;
            store(proposer, &fresh, Role::Admin, "first admin token".into(), None).await
        }
        other => other,
    }
}
