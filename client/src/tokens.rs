//! API tokens, for admins: [`Client::create_token`], [`Client::list_tokens`],
//! [`Client::revoke_token`], and the [`TokenRole`] a token has.

use std::time::Duration;

use flotilla_proto::v1 as pb;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::{ClientError, Result};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Submit, cancel and read tasks; read stats and status.
    Submit,
    /// Run tasks over the worker stream; read.
    Worker,
    /// Everything: membership, tokens, and all of the above.
    Admin,
    /// Join the cluster as a new node, nothing else.
    Join,
}

impl TokenRole {
    /// The role's name: `submit`, `worker`, `admin` or `join`.
    pub fn name(self) -> &'static str {
        match self {
            TokenRole::Submit => "submit",
            TokenRole::Worker => "worker",
            TokenRole::Admin => "admin",
            TokenRole::Join => "join",
        }
    }

    fn to_pb(self) -> pb::TokenRole {
        match self {
            TokenRole::Submit => pb::TokenRole::Submit,
            TokenRole::Worker => pb::TokenRole::Worker,
            TokenRole::Admin => pb::TokenRole::Admin,
            TokenRole::Join => pb::TokenRole::Join,
        }
    }

    fn from_pb(role: i32) -> Option<Self> {
        match pb::TokenRole::try_from(role).ok()? {
            pb::TokenRole::Submit => Some(TokenRole::Submit),
            pb::TokenRole::Worker => Some(TokenRole::Worker),
            pb::TokenRole::Admin => Some(TokenRole::Admin),
            pb::TokenRole::Join => Some(TokenRole::Join),
            pb::TokenRole::Unspecified => None,
        }
    }
}

impl std::str::FromStr for TokenRole {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            TokenRole::Submit,
            TokenRole::Worker,
            TokenRole::Admin,
            TokenRole::Join,
        ]
        .into_iter()
        .find(|r| r.name() == s)
        .ok_or_else(|| format!("'{s}' is not a role: submit, worker, admin or join"))
    }
}

/// A token as [`Client::list_tokens`] shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: u64,
    /// `None` for a role this client does not know (a newer cluster).
    pub role: Option<TokenRole>,
    pub label: String,
    /// Creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Expiry time, ms since the Unix epoch; `None`: never.
    pub expires_unix_ms: Option<u64>,
}

impl Client {
    /// Creates a token with `role` (needs an admin token): returns its id and its secret,
    /// which the cluster does not keep (it stores the secret's SHA-256). `ttl`: it expires
    /// that long after it is created; `None`: never.
    pub async fn create_token(
        &self,
        role: TokenRole,
        label: &str,
        ttl: Option<Duration>,
    ) -> Result<(u64, String)> {
        let request = pb::CreateTokenRequest {
            role: role.to_pb() as i32,
            label: label.to_string(),
            ttl_ms: ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
        };
        let reply = self
            .unary(None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.create_token(r).await }
            })
            .await?;
        if reply.token.is_empty() {
            return Err(ClientError::protocol("create token reply without a token"));
        }
        Ok((reply.id, reply.token))
    }

    /// Every token, by id (needs an admin token).
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.list_tokens(with_timeout(pb::ListTokensRequest {}, t)).await
            })
            .await?;
        Ok(reply
            .tokens
            .into_iter()
            .map(|t| ApiToken {
                id: t.id,
                role: TokenRole::from_pb(t.role),
                label: t.label,
                created_unix_ms: t.created_unix_ms,
                expires_unix_ms: t.expires_unix_ms,
            })
            .collect())
    }

    /// Revokes token `id` (needs an admin token); false when there was no such token.
    pub async fn revoke_token(&self, id: u64) -> Result<bool> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.revoke_token(with_timeout(pb::RevokeTokenRequest { id }, t))
                    .await
            })
            .await?;
        Ok(reply.revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_by_name() {
        for role in [
            TokenRole::Submit,
            TokenRole::Worker,
            TokenRole::Admin,
            TokenRole::Join,
        ] {
            assert_eq!(role.name().parse::<TokenRole>().unwrap(), role);
            assert_eq!(TokenRole::from_pb(role.to_pb() as i32), Some(role));
        }
        assert!("root".parse::<TokenRole>().unwrap_err().contains("not a role"));
        assert_eq!(TokenRole::from_pb(0), None);
    }
}
