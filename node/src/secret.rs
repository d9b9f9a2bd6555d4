//! Secrets, in one place: drawing them from the OS, hashing them, comparing them.
//!
//! - API tokens and the cluster's peer secret are 256 random bits from the OS generator
//!   ([`random_token`]), written as `flt_` and 64 hex digits.
//! - Only the SHA-256 of a token is stored ([`hash`]). The secrets are random, not chosen by
//!   people, so a fast hash is enough: a slow KDF (argon2, bcrypt) makes guessing a *weak*
//!   password expensive, but no guessing reaches one of 2^256 values at any speed.
//! - A presented secret is compared by its hash, in constant time ([`ct_eq`]): how long a
//!   comparison takes says nothing about how much of a guess was right.
//!
//! Nothing here logs or formats a secret; errors name a token by its id only.

use rand::TryRng;
use rand::rngs::SysRng;
use sha2::Digest;
use sha2::Sha256;

/// Prefix of every secret this node makes, so one is recognizable in a config file or a leak
/// scanner.
pub const PREFIX: &str = "flt_";

/// Fewest bytes accepted in a token or secret supplied from a file (`--admin-token-file`,
/// `cluster.secret`): 32 hex digits are 128 bits.
pub const MIN_SUPPLIED_LEN: usize = 32;

/// A secret in a message: serialized as the plain string, but never shown by `Debug` (so an
/// error that prints a message never prints the secret).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Why no secret could be drawn.
#[derive(Debug, thiserror::Error)]
#[error("the OS random generator failed: {0}")]
pub struct EntropyError(String);

/// A fresh secret: [`PREFIX`] and 256 random bits in hex.
pub fn random_token() -> Result<String, EntropyError> {
    let mut bytes = [0u8; 32];
    SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| EntropyError(e.to_string()))?;
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

/// SHA-256 of a secret.
pub fn hash(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Equal, in a time that depends on the lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert!(a.starts_with(PREFIX));
        assert!(a[PREFIX.len()..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_secret_is_encoded_as_its_string_and_never_shown() {
        let s = Secret("flt_hidden".into());
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(
            crate::encoding::encode(&s).unwrap(),
            crate::encoding::encode(&"flt_hidden").unwrap()
        );
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let h = hash(b"flt_x");
        assert!(ct_eq(&h, &hash(b"flt_x")));
        assert!(!ct_eq(&h, &hash(b"flt_y")));
        assert!(!ct_eq(b"ab", b"abc"));
        // SHA-256 of "abc" (FIPS 180-2 test vector).
        assert_eq!(hash(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf], "the hash is SHA-256");
    }
}
