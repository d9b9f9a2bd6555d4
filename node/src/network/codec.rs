//! The bytes of a peer message (`RaftMessage.data` and `.error`): bincode of the openraft
//! message or of ours, in one versioned envelope, decoded under a size limit.
//!
//! # Versions
//!
//! ```text
//! peer format 1 (no tag):  bincode(message)
//! peer format N ≥ 2:       0xFF | N: u8 | bincode(message in format N)
//! ```
//!
//! Format 1 is what every build before versioning sends and reads, and what this build sends.
//! Every peer message starts with a varint, a bool, an option or variant tag, or a sequence
//! length, and none of these can be `0xFF`: so the tag is never mistaken for an untagged
//! message, and a build that predates it fails on a tagged message at once instead of
//! misreading it. A message of a format newer than [`PEER_FORMAT`] is refused by name
//! ([`CodecError::NewerFormat`]). As with log entries, a sender uses the oldest format its
//! message fits in; a future build that changes a message (an openraft upgrade) keeps sending
//! format 1 until every member reads its format.
//!
//! Log entries inside AppendEntries carry their own format ([`crate::queue::entry_format`]); an entry
//! of a newer format fails the decode of the whole message with its own error, so a node never
//! appends (and so never applies or skips) an entry it cannot read.
//!
//! Decoding goes through [`crate::encoding::decode`]: bounded by the message's length, so no
//! length prefix can make a node allocate more than a small multiple of what it received.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::encoding;
use crate::queue::EntryFormatError;

/// The newest peer message format this build reads. It sends format 1.
pub const PEER_FORMAT: u8 = 1;

/// First byte of a tagged message (format 2 and later).
const TAG: u8 = 0xFF;

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode failed: {0}")]
    Decode(bincode::error::DecodeError),
    /// Holds a log entry of a format this build does not read.
    #[error("{0}")]
    NewerEntry(String),
    /// Sent by a newer build in a format this one does not read.
    #[error(
        "peer message format {found} is newer than this build reads (up to {PEER_FORMAT}); upgrade this node"
    )]
    NewerFormat { found: u8 },
    /// Tagged, but with no format after the tag, or with a format that is never tagged.
    #[error("peer message has an invalid format tag")]
    BadTag,
}

impl CodecError {
    /// The message (or an entry in it) was written by a newer build: this node must be upgraded.
    pub fn is_newer_format(&self) -> bool {
        matches!(self, CodecError::NewerFormat { .. } | CodecError::NewerEntry(_))
    }
}

impl From<bincode::error::DecodeError> for CodecError {
    fn from(e: bincode::error::DecodeError) -> Self {
        match e {
            bincode::error::DecodeError::OtherString(m) if EntryFormatError::is_newer(&m) => {
                CodecError::NewerEntry(m)
            }
            e => CodecError::Decode(e),
        }
    }
}

/// Encode `value` as a peer message of format 1.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(encoding::encode(value)?)
}

/// Decode a peer message of any format up to [`PEER_FORMAT`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let result = match bytes {
        [TAG, found, ..] if *found > PEER_FORMAT => Err(CodecError::NewerFormat { found: *found }),
        // Formats 2..=PEER_FORMAT would be read here, once there are any.
        [TAG, ..] => Err(CodecError::BadTag),
        _ => encoding::decode(bytes).map_err(CodecError::from),
    };
    if let Err(e) = &result
        && e.is_newer_format()
    {
        // The operator of this node must act: say so here, not only in the sender's log.
        tracing::error!(error = %e, "refused a peer message from a newer build");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Command;

    #[test]
    fn sends_format_1_untagged() {
        let msg = vec![Command::Tick];
        let bytes = encode(&msg).unwrap();
        assert_eq!(bytes, encoding::encode(&msg).unwrap());
        assert_eq!(decode::<Vec<Command>>(&bytes).unwrap(), msg);
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let mut bytes = vec![TAG, PEER_FORMAT + 1];
        bytes.extend(encode(&vec![Command::Tick]).unwrap());
        let err = decode::<Vec<Command>>(&bytes).unwrap_err();
        assert!(err.is_newer_format(), "{err}");
        assert!(err.to_string().contains("upgrade this node"), "{err}");
        assert!(matches!(decode::<Vec<Command>>(&[TAG]), Err(CodecError::BadTag)));
        assert!(matches!(
            decode::<Vec<Command>>(&[TAG, 1, 0]),
            Err(CodecError::BadTag)
        ));
    }
}
