//! The data of API tokens as the log carries them: a token's [`Role`], the SHA-256 of its
//! secret ([`TokenHash`]), and the view `flotilla token list` shows ([`TokenInfo`]).
//!
//! The secret itself is never in the log, a snapshot or a reply after creation: only its hash.
//! Secrets are 256 random bits made by the node (`grpc/auth.rs`), so a plain SHA-256 suffices:
//! a slow KDF protects low-entropy passwords from guessing, and 2^256 guesses stay out of reach
//! at any hashing speed.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use super::UnixMs;

/// A token's id: sequential from 1, never reused (shown by `token list`, named by `revoke`).
pub type TokenId = u64;

/// What a token may do. Stored in the log: append new variants at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Submit tasks, read and wait for them, cancel them, read stats and status.
    Submit,
    /// Run tasks (the worker stream) and read.
    Worker,
    /// Everything: membership, tokens, purge and pause, and all of the above (joining too).
    Admin,
    /// Join the cluster as a new node, and nothing else.
    Join,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Submit, Role::Worker, Role::Admin, Role::Join];

    /// The name used on the command line and in `token list`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::Worker => "worker",
            Role::Admin => "admin",
            Role::Join => "join",
        }
    }

    /// The role named `name` (see [`Role::name`]).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SHA-256 of a token's secret (the whole token string).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    /// A prefix only: enough to tell hashes apart in a test failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// One token as `token list` shows it (no hash, no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: TokenId,
    pub role: Role,
    pub label: String,
    pub created_ms: UnixMs,
    /// `None`: never expires.
    pub expires_ms: Option<UnixMs>,
}
