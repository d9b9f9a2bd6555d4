//! API tokens in the replicated state: [`Tokens`], the table `CreateToken` and `RevokeToken`
//! change. Every node checks a caller's token against its own replica (`grpc/auth.rs`), so a
//! token created or revoked through any node is known to all once applied.
//!
//! Rules (deterministic, on the log's time):
//! - `CreateToken` stores `(role, hash, label, created = now, expires = now + ttl)` under the
//!   next id (ids from 1, never reused) and answers it; a hash already in the table answers
//!   `None` and stores nothing (a token is one secret, one record).
//! - `RevokeToken` removes the record; answers whether there was one.
//! - An expired token stays in the table (until revoked) but grants nothing: expiry is judged
//!   where the token is checked ([`Tokens::find`] takes the time), not by a timer, so the
//!   commands that already exist keep their exact apply.
//!
//! Serialized as `(next_id, records by id)`; the hash index is derived and rebuilt on load.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::queue::command::Role;
use crate::queue::command::TokenHash;
use crate::queue::command::TokenId;
use crate::queue::command::TokenInfo;
use crate::queue::command::UnixMs;

/// One stored token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub role: Role,
    pub hash: TokenHash,
    pub label: String,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
}

impl TokenRecord {
    /// Whether the token grants anything at `now_ms`.
    pub fn live_at(&self, now_ms: UnixMs) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// The token table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    next_id: TokenId,
    by_id: BTreeMap<TokenId, TokenRecord>,
    /// Derived from `by_id`.
    by_hash: BTreeMap<TokenHash, TokenId>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            next_id: 1,
            by_id: BTreeMap::new(),
            by_hash: BTreeMap::new(),
        }
    }
}

impl Tokens {
    /// No token was ever created (the state still fits the snapshot format before tokens).
    pub fn is_pristine(&self) -> bool {
        self.next_id == 1 && self.by_id.is_empty()
    }

    pub(super) fn create(
        &mut self,
        role: Role,
        hash: TokenHash,
        label: &str,
        ttl_ms: Option<u64>,
        now_ms: UnixMs,
    ) -> Option<TokenId> {
        if self.by_hash.contains_key(&hash) {
            return None;
        }
        let id = self.next_id;
        // Unreachable in practice (2^64 tokens); saturating keeps apply total.
        self.next_id = self.next_id.saturating_add(1);
        let record = TokenRecord {
            role,
            hash,
            label: label.to_string(),
            created_ms: now_ms,
            expires_ms: ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
        };
        if let Some(old) = self.by_id.insert(id, record) {
            // Only at the saturated id: the old record gives way; keep the index in step.
            self.by_hash.remove(&old.hash);
        }
        self.by_hash.insert(hash, id);
        Some(id)
    }

    pub(super) fn revoke(&mut self, id: TokenId) -> bool {
        let Some(record) = self.by_id.remove(&id) else {
            return false;
        };
        self.by_hash.remove(&record.hash);
        true
    }

    /// The live token with this hash at `now_ms`.
    pub fn find(&self, hash: &TokenHash, now_ms: UnixMs) -> Option<(TokenId, &TokenRecord)> {
        let id = *self.by_hash.get(hash)?;
        let record = self.by_id.get(&id)?;
        record.live_at(now_ms).then_some((id, record))
    }

    /// The id of the token with this hash, live or expired.
    pub fn id_of(&self, hash: &TokenHash) -> Option<TokenId> {
        self.by_hash.get(hash).copied()
    }

    /// The token `id`, live or expired.
    pub fn get(&self, id: TokenId) -> Option<&TokenRecord> {
        self.by_id.get(&id)
    }

    /// Whether some admin token is live at `now_ms`.
    pub fn has_live_admin(&self, now_ms: UnixMs) -> bool {
        self.by_id
            .values()
            .any(|r| r.role == Role::Admin && r.live_at(now_ms))
    }

    /// Every token, by id.
    pub fn list(&self) -> Vec<TokenInfo> {
        self.by_id
            .iter()
            .map(|(id, r)| TokenInfo {
                id: *id,
                role: r.role,
                label: r.label.clone(),
                created_ms: r.created_ms,
                expires_ms: r.expires_ms,
            })
            .collect()
    }

    /// The hash index holds exactly the records' hashes.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.by_hash.len() != self.by_id.len() {
            return Err(format!(
                "token index holds {} hashes for {} tokens",
                self.by_hash.len(),
                self.by_id.len()
            ));
        }
        for (id, r) in &self.by_id {
            if *id == 0 || *id >= self.next_id {
                return Err(format!("token id {id} outside 1..{}", self.next_id));
            }
            if self.by_hash.get(&r.hash) != Some(id) {
                return Err(format!("token {id} is not indexed by its hash"));
            }
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct TokensRef<'a> {
    next_id: TokenId,
    by_id: &'a BTreeMap<TokenId, TokenRecord>,
}

#[derive(Deserialize)]
struct TokensOwned {
    next_id: TokenId,
    by_id: BTreeMap<TokenId, TokenRecord>,
}

impl Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TokensRef {
            next_id: self.next_id,
            by_id: &self.by_id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = TokensOwned::deserialize(d)?;
        let mut by_hash = BTreeMap::new();
        for (id, r) in &o.by_id {
            if by_hash.insert(r.hash, *id).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "token {id} repeats another token's hash"
                )));
            }
        }
        let tokens = Tokens {
            next_id: o.next_id,
            by_id: o.by_id,
            by_hash,
        };
        tokens.check().map_err(serde::de::Error::custom)?;
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> TokenHash {
        TokenHash([b; 32])
    }

    #[test]
    fn create_find_expire_revoke() {
        let mut t = Tokens::default();
        assert!(t.is_pristine());
        assert_eq!(t.create(Role::Admin, h(1), "first", None, 10), Some(1));
        assert_eq!(t.create(Role::Join, h(2), "", Some(100), 10), Some(2));
        assert!(!t.is_pristine());
        // One secret, one record.
        assert_eq!(t.create(Role::Submit, h(1), "again", None, 10), None);
        assert_eq!(
            t.find(&h(1), 1_000).map(|(id, r)| (id, r.role)),
            Some((1, Role::Admin))
        );
        assert!(t.find(&h(2), 109).is_some());
        assert!(t.find(&h(2), 110).is_none(), "expired at created + ttl");
        assert!(t.find(&h(3), 0).is_none());
        assert!(t.has_live_admin(0));
        assert!(t.revoke(1));
        assert!(!t.revoke(1));
        assert!(t.find(&h(1), 10).is_none());
        assert!(!t.has_live_admin(0));
        // Ids are never reused, and the table stays not pristine.
        assert!(t.revoke(2));
        assert!(!t.is_pristine());
        assert_eq!(t.create(Role::Worker, h(1), "", None, 20), Some(3));
        t.check().unwrap();
        assert_eq!(t.list().iter().map(|i| i.id).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn round_trips_and_refuses_a_repeated_hash() {
        let mut t = Tokens::default();
        t.create(Role::Admin, h(1), "a", None, 0);
        t.create(Role::Submit, h(2), "b", Some(5), 0);
        let bytes = crate::encoding::encode(&t).unwrap();
        let back: Tokens = crate::encoding::decode(&bytes).unwrap();
        assert_eq!(back, t);
        let mut bad = t.by_id.clone();
        bad.get_mut(&2).unwrap().hash = h(1);
        let bytes = crate::encoding::encode(&TokensRef {
            next_id: 3,
            by_id: &bad,
        })
        .unwrap();
        let err = crate::encoding::decode::<Tokens>(&bytes).unwrap_err().to_string();
        assert!(err.contains("repeats"), "{err}");
    }
}
