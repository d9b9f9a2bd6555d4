//! How members prove to each other that they are members, on every peer call: [`PeerAuth`].
//!
//! A caller stamps its proof on each outgoing call ([`PeerAuth::stamp`]); the receiving node
//! checks it ([`PeerAuth::verify`]) from the call's headers and connection extensions alone,
//! before the body is read (`grpc/auth.rs`). Two proofs fill this interface:
//!
//! - [`SharedSecret`] (here): the cluster's peer secret, made by the founder, kept in each
//!   member's data directory (`cluster.secret`, mode 0600) and handed to a joining node only in
//!   exchange for a valid join token. Sent as the `flotilla-peer-secret` header and compared by
//!   hash in constant time. Without TLS it crosses the network in the clear: that is what
//!   `--insecure` accepts.
//! - mutual TLS (the TLS layer): the peer's certificate, signed by the cluster's CA and naming
//!   the cluster, read from the connection's extensions.

use std::fmt;

use tonic::codegen::http::Extensions;
use tonic::codegen::http::HeaderMap;
use tonic::metadata::Ascii;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;

use crate::secret;
use crate::secret::Secret;

/// The header carrying the peer secret.
pub const PEER_SECRET: &str = "flotilla-peer-secret";

/// What a call's credentials say about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerVerdict {
    /// The sender proved it is a member of this cluster.
    Member,
    /// The call carries no peer proof at all (a client, or a joining node).
    NoProof,
    /// The call carries a proof that does not hold.
    BadProof,
}

/// A member's proof of membership, stamped and checked on every peer call.
pub trait PeerAuth: Send + Sync + 'static {
    /// Add this node's proof to an outgoing call.
    fn stamp(&self, metadata: &mut MetadataMap);
    /// Judge an incoming call from its headers and its connection's extensions (where TLS
    /// puts the peer's certificates).
    fn verify(&self, headers: &HeaderMap, extensions: &Extensions) -> PeerVerdict;
}

/// The cluster's shared peer secret.
#[derive(Clone)]
pub struct SharedSecret {
    value: MetadataValue<Ascii>,
    hash: [u8; 32],
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// A secret that cannot be sent as a header (not printable ASCII).
#[derive(Debug, thiserror::Error)]
#[error("the peer secret is not printable ASCII")]
pub struct BadSecret;

impl SharedSecret {
    pub fn new(secret: &str) -> Result<Self, BadSecret> {
        let mut value: MetadataValue<Ascii> = secret.parse().map_err(|_| BadSecret)?;
        value.set_sensitive(true);
        Ok(Self {
            value,
            hash: secret::hash(secret.as_bytes()),
        })
    }

    /// The secret itself, to hand to a joining node.
    pub fn value(&self) -> Secret {
        Secret(self.value.to_str().unwrap_or_default().to_string())
    }

    /// Whether `presented` is this secret (constant time).
    pub fn matches(&self, presented: &[u8]) -> bool {
        secret::ct_eq(&secret::hash(presented), &self.hash)
    }
}

impl PeerAuth for SharedSecret {
    fn stamp(&self, metadata: &mut MetadataMap) {
        metadata.insert(PEER_SECRET, self.value.clone());
    }

    fn verify(&self, headers: &HeaderMap, _extensions: &Extensions) -> PeerVerdict {
        match headers.get(PEER_SECRET) {
            None => PeerVerdict::NoProof,
            Some(v) if self.matches(v.as_bytes()) => PeerVerdict::Member,
            Some(_) => PeerVerdict::BadProof,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_stamped_is_the_secret_verified() {
        let ours = SharedSecret::new("flt_ours").unwrap();
        let mut metadata = MetadataMap::new();
        ours.stamp(&mut metadata);
        let headers = metadata.into_headers();
        let ext = Extensions::new();
        assert_eq!(ours.verify(&headers, &ext), PeerVerdict::Member);
        let theirs = SharedSecret::new("flt_theirs").unwrap();
        assert_eq!(theirs.verify(&headers, &ext), PeerVerdict::BadProof);
        assert_eq!(ours.verify(&HeaderMap::new(), &ext), PeerVerdict::NoProof);
        assert!(SharedSecret::new("new\nline").is_err());
        assert_eq!(
            format!("{ours:?}"),
            "SharedSecret(..)",
            "debug output hides the secret"
        );
    }
}
