//! The data of flow control as the log carries it: what a limit applies to ([`LimitScope`]),
//! what it allows ([`LimitRule`], [`Rate`]), the text forms `100/s` and `queue:emails`, and the
//! bounds that keep a rule sane.
//!
//! The rules themselves (when a task is held back, fair turns between keys) live in
//! `state/limits.rs` and `state/lanes.rs`; these types are here because `SetLimit` and
//! `RemoveLimit` are stored in the log (append-only variants).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::Serialize;

/// Most tokens a rate may name per period (`1000000/s`): keeps the bucket's integer arithmetic
/// (tokens × period) far from overflow.
pub const MAX_RATE_TOKENS: u32 = 1_000_000;

/// Longest period a rate may name: a day.
pub const MAX_RATE_PERIOD_MS: u64 = 24 * 60 * 60 * 1000;

/// Most limits the state holds; a `SetLimit` beyond it is refused.
pub const MAX_LIMITS: usize = 10_000;

/// Longest concurrency key a task may carry (bytes), checked at the gRPC edge.
pub const MAX_CONCURRENCY_KEY_LEN: usize = 256;

/// What a limit applies to. A key limit applies to the tasks carrying that concurrency key;
/// [`LimitScope::AnyKey`] to every key that has no limit of its own (each key counted apart).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LimitScope {
    Queue(String),
    Task(String),
    Key(String),
    AnyKey,
}

/// A token bucket: `tokens` grants per `per_ms`, holding at most `tokens` (a full bucket lets
/// a burst of `tokens` through at once, then one grant every `per_ms / tokens`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rate {
    pub tokens: u32,
    pub per_ms: u64,
}

/// What a limit allows; each part optional (a rule with neither is refused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LimitRule {
    pub rate: Option<Rate>,
    /// At most this many of the scope's tasks leased at once (0 holds every task back).
    pub concurrency: Option<u32>,
}

/// One limit as `flotilla limit list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitInfo {
    pub scope: LimitScope,
    pub rule: LimitRule,
    /// Tasks of the scope leased now (for [`LimitScope::AnyKey`]: over every key it covers).
    pub running: u64,
    /// Pending tasks this limit holds back now.
    pub held: u64,
}

/// Why a limit or its text was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LimitError {
    #[error("a limit needs a rate or a concurrency")]
    Empty,
    #[error("rate must be N/s, N/m, N/h or N/d with 1 <= N <= {MAX_RATE_TOKENS}: {0:?}")]
    BadRate(String),
    #[error("scope must be queue:NAME, task:NAME, key:KEY or key:*: {0:?}")]
    BadScope(String),
    #[error("too many limits (at most {MAX_LIMITS})")]
    TooMany,
}

impl Rate {
    /// A rate within bounds, or why not.
    pub fn new(tokens: u32, per_ms: u64) -> Result<Self, LimitError> {
        if tokens == 0 || tokens > MAX_RATE_TOKENS || per_ms == 0 || per_ms > MAX_RATE_PERIOD_MS {
            return Err(LimitError::BadRate(format!("{tokens}/{per_ms}ms")));
        }
        Ok(Rate { tokens, per_ms })
    }

    /// Within the bounds [`Rate::new`] checks (a rule from the log is checked again in `apply`).
    pub fn is_valid(&self) -> bool {
        Rate::new(self.tokens, self.per_ms).is_ok()
    }
}

impl LimitRule {
    /// Has a part, and its rate is within bounds.
    pub fn check(&self) -> Result<(), LimitError> {
        if self.rate.is_none() && self.concurrency.is_none() {
            return Err(LimitError::Empty);
        }
        match self.rate {
            Some(r) if !r.is_valid() => Err(LimitError::BadRate(r.to_string())),
            _ => Ok(()),
        }
    }
}

/// `100/s`, `10/m`, `5/h`, `1/d` (also `100/1s`-free plain forms only: the unit is one letter).
impl FromStr for Rate {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, LimitError> {
        let bad = || LimitError::BadRate(s.to_owned());
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let tokens: u32 = n.trim().parse().map_err(|_| bad())?;
        let per_ms = match unit.trim() {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => MAX_RATE_PERIOD_MS,
            _ => return Err(bad()),
        };
        Rate::new(tokens, per_ms).map_err(|_| bad())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per_ms {
            1000 => write!(f, "{}/s", self.tokens),
            60_000 => write!(f, "{}/m", self.tokens),
            3_600_000 => write!(f, "{}/h", self.tokens),
            MAX_RATE_PERIOD_MS => write!(f, "{}/d", self.tokens),
            ms => write!(f, "{}/{ms}ms", self.tokens),
        }
    }
}

/// `queue:NAME`, `task:NAME`, `key:KEY`, `key:*` (every key without a limit of its own).
impl FromStr for LimitScope {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, LimitError> {
        let bad = || LimitError::BadScope(s.to_owned());
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(match kind {
            "queue" => LimitScope::Queue(name.to_owned()),
            "task" => LimitScope::Task(name.to_owned()),
            "key" if name == "*" => LimitScope::AnyKey,
            "key" => LimitScope::Key(name.to_owned()),
            _ => return Err(bad()),
        })
    }
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitScope::Queue(n) => write!(f, "queue:{n}"),
            LimitScope::Task(n) => write!(f, "task:{n}"),
            LimitScope::Key(k) => write!(f, "key:{k}"),
            LimitScope::AnyKey => f.write_str("key:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(
            "100/s".parse::<Rate>().unwrap(),
            Rate {
                tokens: 100,
                per_ms: 1000
            }
        );
        assert_eq!(
            "10/m".parse::<Rate>().unwrap(),
            Rate {
                tokens: 10,
                per_ms: 60_000
            }
        );
        assert_eq!(" 5 / h ".parse::<Rate>().unwrap().to_string(), "5/h");
        for bad in ["", "10", "0/s", "10/x", "-1/s", "1000001/s", "a/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_parse_and_print() {
        for s in ["queue:emails", "task:send", "key:tenant-1", "key:*"] {
            assert_eq!(s.parse::<LimitScope>().unwrap().to_string(), s);
        }
        assert_eq!("key:*".parse::<LimitScope>().unwrap(), LimitScope::AnyKey);
        for bad in ["emails", "queue:", "tenant:x"] {
            assert!(bad.parse::<LimitScope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_needs_a_part() {
        assert_eq!(LimitRule::default().check(), Err(LimitError::Empty));
        let bad = LimitRule {
            rate: Some(Rate { tokens: 0, per_ms: 1 }),
            concurrency: None,
        };
        assert!(bad.check().is_err());
    }
}
