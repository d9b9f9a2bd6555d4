//! [`Trace`]: the run's events in order (faults, client calls and what they returned, leader
//! changes, final states), hashed as they come. Two runs of one seed must give one hash.

use std::fmt::Write as _;

use sha2::Digest;
use sha2::Sha256;

/// How many of the latest events a trace keeps in memory, to show around a violation.
const KEEP: usize = 40;

/// A hashed log of events; see the module docs.
pub struct Trace {
    hasher: Sha256,
    events: u64,
    recent: std::collections::VecDeque<String>,
    echo: bool,
}

impl Trace {
    /// A new trace; with `echo`, every event is also printed to stderr as it happens.
    pub fn new(echo: bool) -> Trace {
        Trace {
            hasher: Sha256::new(),
            events: 0,
            recent: std::collections::VecDeque::with_capacity(KEEP),
            echo,
        }
    }

    /// Record one event that happened at `at_ms` of simulated time.
    pub fn event(&mut self, at_ms: u64, what: impl AsRef<str>) {
        let line = format!("{at_ms:>8} {}", what.as_ref());
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.events += 1;
        if self.echo {
            eprintln!("{line}");
        }
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    /// Events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The latest events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &str> {
        self.recent.iter().map(String::as_str)
    }

    /// The hash of every event so far, as hex.
    pub fn hash(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
