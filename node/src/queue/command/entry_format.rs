//! The format of a log entry ([`Request`]) and its version: what the next command must follow.
//!
//! A log entry is stored (raft-log WAL) and replicated (AppendEntries) as the same bytes, so
//! its encoding carries its own version, wherever it is.
//!
//! # Formats
//!
//! Format 2 added `CreateToken` and `RevokeToken` (API tokens), format 3 `DeclareTasks` (the
//! task catalogue), format 4 submit headers (a `Submit` with a task that has headers; without
//! any it keeps format 1: `command/wire.rs`) `Outcome::RetryAfter` (a `Complete` holding
//! one) and `Progress`, format 5 `AddSchedule`, `RemoveSchedule` and `PauseSchedule`
//! (periodic schedules), format 7 `SetLimit`, `RemoveLimit` and a submitted task's concurrency
//! key (flow control; format 6 belongs to another branch), format 8 `Retry` and `Revoke`
//! (operating tasks: an operator's retry, cancelling running tasks), format 9
//! `SubmitWorkflow` (workflows), format 10 `RecordAttempts` (the switch that starts attempt
//! histories; the leader proposes it once every member reads format 10); every other command is
//! still written in format 1.
//!
//! ```text
//! format 1 (no tag):  varint now_ms | varint n | n × command
//! format N ≥ 2:       0xFF | varint N | varint now_ms | varint n | n × command
//! command:            varint variant index | fields       (bincode 2 serde, standard config)
//! ```
//!
//! Format 1 is exactly what builds before versioning wrote (the derived encoding of
//! `Request { now_ms, commands }`), so their logs stay readable and they can read ours. No
//! varint starts with `0xFF`, so a tagged entry is never mistaken for an untagged one, and a
//! build that predates the tag fails on it at once ("invalid varint discriminant") instead of
//! misreading it. [`ENTRY_FORMAT`] is the newest format this build reads; an entry of a newer
//! one is refused with [`EntryFormatError::Newer`], never skipped.
//!
//! # The rule: the oldest format that holds the entry
//!
//! An entry is written in the oldest format that can encode it: the highest
//! [`Command::format`] of its commands. Entries that use only old commands keep their old
//! bytes, so a cluster in the middle of a rolling upgrade (or rolled back) keeps working as
//! long as nobody proposes a new command.
//!
//! # Adding a command (or a variant of an enum inside one)
//!
//! 1. Append the variant at the **end** of [`Command`] (or of the nested enum). bincode writes
//!    a variant's *index*: inserting one shifts every later index and misreads every old
//!    entry. Never reorder, remove, or change the fields of a variant that was ever written;
//!    make a new variant instead (`SubmitV2`) and keep decoding the old one.
//! 2. Bump [`ENTRY_FORMAT`] to N and return N for the new variant in [`Command::format`] (its
//!    match is exhaustive, so the compiler asks).
//! 3. Never change what `apply` does for an existing command: replicas on two builds apply the
//!    same entries, and a restarted node re-applies old ones; a behaviour change is a new
//!    command (or a new variant) too.
//! 4. Propose the new command only once every member runs a build that reads format N (until
//!    then an older member refuses the entry: it stops accepting the log there, and the
//!    cluster stalls if too few members can take it). docs/OPERATIONS.md, "Upgrading".
//! 5. Write a fixture of format N (`raft/tests/format.rs`) and keep the older ones.
//!
//! `docs/adr/002-format-versions.md` gives the reasons.

use std::fmt;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use serde::de::Error as _;
use serde::de::SeqAccess;
use serde::de::Visitor;
use serde::ser::SerializeTuple;

use super::Command;
use super::Outcome;
use super::Request;

/// The newest log entry format this build reads (and the newest it may write).
pub const ENTRY_FORMAT: u32 = 10;

/// First byte of a tagged entry (format 2 and later). No bincode varint starts with it.
const TAG: u8 = 0xFF;

/// Why an entry's bytes are not an entry this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryFormatError {
    /// Written by a newer build, with a command this build does not know.
    #[error(
        "log entry format version {found} is newer than this build reads (up to {ENTRY_FORMAT}); \
         upgrade this node"
    )]
    Newer { found: u32 },
    /// Tagged with a version that no build writes.
    #[error("log entry format version {0} does not exist")]
    Invalid(u32),
    /// The entry's clock is not a valid varint.
    #[error("log entry time starts with an invalid varint byte {0:#04x}")]
    BadTime(u8),
}

impl EntryFormatError {
    const NEWER_PREFIX: &str = "log entry format version ";
    const NEWER_MARK: &str = " is newer than this build reads";

    /// Whether a decode error's text is [`EntryFormatError::Newer`]. serde hands errors on as
    /// text, and a store must tell "written by a newer build" (stop, keep everything) from
    /// damage (a torn tail may be cut).
    pub fn is_newer(message: &str) -> bool {
        message.starts_with(Self::NEWER_PREFIX) && message.contains(Self::NEWER_MARK)
    }
}

impl Command {
    /// The oldest entry format that can encode this command: the format that introduced its
    /// variant (and the variants of enums inside it). See the module docs before adding one.
    pub fn format(&self) -> u32 {
        match self {
            // Format 4 (issue 11): headers, in the place of a spec's time limit (`wire.rs`); a
            // worker's retry delay.
            // Format 7 (issue 12): a task's concurrency key (`wire.rs`).
            Command::Submit { tasks } if tasks.iter().any(|t| t.concurrency_key.is_some()) => 7,
            Command::Submit { tasks } if tasks.iter().any(|t| !t.headers.is_empty()) => 4,
            Command::Complete { completions, .. }
                if completions
                    .iter()
                    .any(|c| matches!(c.outcome, Outcome::RetryAfter { .. })) =>
            {
                4
            }
            Command::Submit { .. }
            | Command::Lease { .. }
            | Command::Complete { .. }
            | Command::Heartbeat { .. }
            | Command::Release { .. }
            | Command::ReleasePool { .. }
            | Command::ClearStanding { .. }
            | Command::Cancel { .. }
            | Command::Tick
            | Command::PurgeQueue { .. }
            | Command::PauseQueue { .. }
            | Command::AllocateNodeId => 1,
            // Format 2: API tokens (issue 14).
            Command::CreateToken { .. } | Command::RevokeToken { .. } => 2,
            // Format 3: the task catalogue (issue 11).
            Command::DeclareTasks { .. } => 3,
            Command::Progress { .. } => 4,
            // Format 5: periodic schedules (issue 12).
            Command::AddSchedule { .. } | Command::RemoveSchedule { .. } | Command::PauseSchedule { .. } => 5,
            // Format 7: flow-control limits (issue 12).
            Command::SetLimit { .. } | Command::RemoveLimit { .. } => 7,
            // Format 8: operating tasks (issue 13): an operator's retry, cancelling running tasks.
            Command::Retry { .. } | Command::Revoke { .. } => 8,
            // Format 9: workflows (issue 12).
            Command::SubmitWorkflow { .. } => 9,
            // Format 10: attempt histories (issue 13).
            Command::RecordAttempts => 10,
        }
    }
}

impl Request {
    /// The format this entry is written in: the oldest that holds all its commands.
    pub fn format(&self) -> u32 {
        self.commands
            .iter()
            .map(Command::format)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Serialize untagged (format 1) or tagged with `tag`.
    fn serialize_as<S: Serializer>(&self, tag: Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        let Some(format) = tag else {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&self.now_ms)?;
            t.serialize_element(&self.commands)?;
            return t.end();
        };
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&TAG)?;
        t.serialize_element(&format)?;
        t.serialize_element(&self.now_ms)?;
        t.serialize_element(&self.commands)?;
        t.end()
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.format() {
            1 => self.serialize_as(None, s),
            format => self.serialize_as(Some(format), s),
        }
    }
}

/// An entry serialized tagged with a given format (for tests of the tagged form, which no
/// command of this build needs yet).
#[cfg(test)]
pub(crate) struct AsFormat<'a>(pub &'a Request, pub u32);

#[cfg(test)]
impl Serialize for AsFormat<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_as(Some(self.1), s)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A tuple is bincode's struct: its elements back to back, no length. Reading the first
        // byte alone (a `u8` is one raw byte) tells a tag from the varint of an untagged entry.
        d.deserialize_tuple(4, RequestVisitor)
    }
}

struct RequestVisitor;

fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A, what: &'static str) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| A::Error::custom(format_args!("log entry ends before its {what}")))
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flotilla log entry")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Request, A::Error> {
        let first: u8 = next(&mut seq, "first byte")?;
        let now_ms = if first == TAG {
            let format: u32 = next(&mut seq, "format")?;
            match format {
                0 => return Err(A::Error::custom(EntryFormatError::Invalid(format))),
                // Every format so far only appended variants: today's `Command` reads them all.
                1..=ENTRY_FORMAT => {}
                _ => return Err(A::Error::custom(EntryFormatError::Newer { found: format })),
            }
            next(&mut seq, "time")?
        } else {
            // Format 1: `first` starts bincode's varint of `now_ms` (little-endian).
            match first {
                0..=250 => u64::from(first),
                251 => u64::from(u16::from_le_bytes(next(&mut seq, "time")?)),
                252 => u64::from(u32::from_le_bytes(next(&mut seq, "time")?)),
                253 => u64::from_le_bytes(next(&mut seq, "time")?),
                _ => return Err(A::Error::custom(EntryFormatError::BadTime(first))),
            }
        };
        let commands = next(&mut seq, "commands")?;
        Ok(Request { now_ms, commands })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::encoding;

    /// `Request` as it was derived before versioning: format 1 must stay exactly this.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Derived {
        now_ms: u64,
        commands: Vec<Command>,
    }

    fn req(now_ms: u64) -> Request {
        Request {
            now_ms,
            commands: vec![
                Command::Tick,
                Command::PauseQueue {
                    queue: "q".into(),
                    paused: true,
                },
                Command::Cancel { ids: vec![1, 2] },
            ],
        }
    }

    fn derived(r: &Request) -> Vec<u8> {
        encoding::encode(&Derived {
            now_ms: r.now_ms,
            commands: r.commands.clone(),
        })
        .unwrap()
    }

    proptest! {
        /// Every width of bincode's varint, both ways.
        #[test]
        fn format_1_is_the_derived_encoding(now_ms in prop_oneof![
            0u64..=250, 251u64..=u16::MAX as u64, 0u64..=u32::MAX as u64, any::<u64>()
        ]) {
            let r = req(now_ms);
            let bytes = encoding::encode(&r).unwrap();
            prop_assert_eq!(&bytes, &derived(&r));
            prop_assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        }

        #[test]
        fn tagged_entries_round_trip(now_ms in any::<u64>()) {
            let r = req(now_ms);
            let bytes = encoding::encode(&AsFormat(&r, ENTRY_FORMAT.max(2))).unwrap();
            prop_assert_eq!(bytes[0], TAG);
            let decoded = encoding::decode::<Request>(&bytes);
            if ENTRY_FORMAT >= 2 {
                prop_assert_eq!(decoded.unwrap(), r);
            } else {
                prop_assert!(decoded.is_err());
            }
        }
    }

    #[test]
    fn every_command_of_this_build_is_written_untagged() {
        // Until a command needs format 2, this build writes what builds before it read.
        let r = req(1_700_000_000_000);
        assert_eq!(r.format(), 1);
        assert_ne!(encoding::encode(&r).unwrap()[0], TAG);
    }

    #[test]
    fn an_entry_with_a_token_command_is_written_as_format_2() {
        let mut r = req(42);
        r.commands.push(Command::RevokeToken { id: 1 });
        assert_eq!(r.format(), 2);
        let bytes = encoding::encode(&r).unwrap();
        assert_eq!(bytes[..2], [TAG, 2]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        // The build before tokens refuses it by name (as `Newer`), never misreads it.
        assert!(encoding::decode::<Derived>(&bytes).is_err());
    }

    #[test]
    fn an_entry_with_a_declaration_is_written_as_format_3() {
        let mut r = req(42);
        r.commands.push(Command::RevokeToken { id: 1 });
        r.commands.push(Command::DeclareTasks {
            declarer: "node:1".into(),
            tasks: vec![super::super::TaskDecl {
                name: "noop".into(),
                queue: String::new(),
            }],
        });
        assert_eq!(r.format(), 3);
        let bytes = encoding::encode(&r).unwrap();
        assert_eq!(bytes[..2], [TAG, 3]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        // Without the declaration, the same entry keeps format 2's bytes.
        r.commands.pop();
        assert_eq!(encoding::encode(&r).unwrap()[..2], [TAG, 2]);
    }

    #[test]
    fn an_entry_with_submit_headers_is_written_as_format_4() {
        let spec = |headers: &[(&str, &str)]| super::super::TaskSpec {
            name: "n".into(),
            queue: String::new(),
            args: bytes::Bytes::new(),
            priority: 0,
            eta_ms: None,
            countdown_ms: None,
            max_retries: 0,
            backoff_ms: 0,
            time_limit_ms: Some(5),
            idempotency_key: None,
            result_ttl_ms: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            concurrency_key: None,
        };
        let mut r = req(42);
        r.commands.push(Command::Submit {
            tasks: vec![spec(&[])].into(),
        });
        assert_eq!(r.format(), 1, "a submit without headers keeps format 1");
        assert_eq!(encoding::encode(&r).unwrap(), derived(&r));
        r.commands.push(Command::Submit {
            tasks: vec![spec(&[]), spec(&[("traceparent", "00-1")])].into(),
        });
        assert_eq!(r.format(), 4);
        let bytes = encoding::encode(&r).unwrap();
        assert_eq!(bytes[..2], [TAG, 4]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        assert!(encoding::decode::<Derived>(&bytes).is_err());
    }

    #[test]
    fn an_entry_with_a_schedule_command_is_written_as_format_5() {
        let mut r = req(42);
        r.commands.push(Command::PauseSchedule {
            name: "nightly".into(),
            paused: true,
        });
        assert_eq!(r.format(), 5);
        let bytes = encoding::encode(&r).unwrap();
        assert_eq!(bytes[..2], [TAG, 5]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        // Without it, the same entry keeps format 1's bytes.
        r.commands.pop();
        assert_ne!(encoding::encode(&r).unwrap()[0], TAG);
    }

    #[test]
    fn an_entry_with_the_attempts_switch_is_written_as_format_10() {
        let mut r = req(42);
        r.commands.push(Command::RecordAttempts);
        assert_eq!(r.format(), 10);
        let bytes = encoding::encode(&r).unwrap();
        assert_eq!(bytes[..2], [TAG, 10]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
        r.commands.pop();
        assert_ne!(encoding::encode(&r).unwrap()[0], TAG);
    }

    #[test]
    fn a_tagged_entry_of_a_known_format_is_read() {
        let r = req(42);
        let bytes = encoding::encode(&AsFormat(&r, 1)).unwrap();
        assert_eq!(bytes[..2], [TAG, 1]);
        assert_eq!(encoding::decode::<Request>(&bytes).unwrap(), r);
    }

    #[test]
    fn a_newer_entry_is_refused_by_name() {
        let r = req(42);
        let bytes = encoding::encode(&AsFormat(&r, ENTRY_FORMAT + 1)).unwrap();
        let text = |bytes: &[u8]| match encoding::decode::<Request>(bytes).unwrap_err() {
            bincode::error::DecodeError::OtherString(m) => m,
            other => other.to_string(),
        };
        let err = text(&bytes);
        assert!(EntryFormatError::is_newer(&err), "{err}");
        assert!(err.contains("upgrade this node"), "{err}");
        // Damage is not mistaken for a newer build.
        let err = text(&[254, 0, 0]);
        assert!(!EntryFormatError::is_newer(&err), "{err}");
        let err = encoding::decode::<Request>(&encoding::encode(&AsFormat(&r, 0)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn a_build_before_versioning_refuses_a_tagged_entry() {
        // What the old, derived decoder does with a tagged entry: an error, not a misread.
        let bytes = encoding::encode(&AsFormat(&req(42), 2)).unwrap();
        assert!(encoding::decode::<Derived>(&bytes).is_err());
    }
}
