//! [`Entropy`]: the client's one source of randomness, for idempotency keys and retry jitter.
//!
//! Seeded from the OS by default; [`crate::ClientBuilder::seed`] fixes the seed so a simulation
//! run makes the same keys and waits every time.

use std::fmt::Write as _;
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A shared, seedable random generator.
#[derive(Debug)]
pub(crate) struct Entropy {
    rng: Mutex<StdRng>,
}

impl Entropy {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            // Unseeded on purpose (clippy.toml bans OS seeding elsewhere): a real client's keys
            // must differ from every other process's.
            #[allow(clippy::disallowed_methods)]
            None => rand::make_rng(),
        };
        Entropy { rng: Mutex::new(rng) }
    }

    /// A fresh idempotency key: 16 random bytes as 32 lowercase hex digits.
    pub(crate) fn idempotency_key(&self) -> String {
        let bytes: [u8; 16] = self.lock().random();
        hex(&bytes)
    }

    /// A number in `[0, 1)` to spread retry waits.
    pub(crate) fn jitter(&self) -> f64 {
        self.lock().random()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        // The generator holds no invariant a panicking holder could break.
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A key for a request built without a client (see [`crate::TaskRequest::new`]).
pub(crate) fn thread_idempotency_key() -> String {
    // OS-seeded on purpose, as an unseeded client's keys (no client, so no seed to take).
    #[allow(clippy::disallowed_methods)]
    let bytes: [u8; 16] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn keys_are_32_hex_digits_and_unique() {
        let e = Entropy::new(None);
        let keys: BTreeSet<String> = (0..10_000).map(|_| e.idempotency_key()).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(
            keys.iter()
                .all(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert_ne!(thread_idempotency_key(), thread_idempotency_key());
    }

    #[test]
    fn a_seed_fixes_keys_and_jitter() {
        let (a, b) = (Entropy::new(Some(42)), Entropy::new(Some(42)));
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert_eq!(a.jitter(), b.jitter());
        assert_ne!(
            Entropy::new(Some(43)).idempotency_key(),
            Entropy::new(Some(42)).idempotency_key()
        );
        let j = a.jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
