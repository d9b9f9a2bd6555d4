//! The node's one bincode configuration, and decoding under a size limit.
//!
//! Everything a node stores or sends is bincode 2 serde with [`config`] (little-endian,
//! variable-length integers): log entries (in the WAL and in AppendEntries), snapshot bodies,
//! peer messages. Every decode of bytes that a peer or a disk supplies goes through [`decode`].
//! The versions of these formats are described in `docs/adr/002-format-versions.md`.
//!
//! # Why a limit, and which
//!
//! bincode decodes a byte string (a `String`, `Vec<u8>`, `Bytes`) by reading its length and
//! allocating that many bytes *before* reading them, so 11 bytes whose length prefix says 2^40
//! made a node allocate 1 TiB and abort. A decoder configured `with_limit::<N>()` counts what it
//! claims (each integer's width in memory, each byte string's length) and refuses past `N`,
//! before allocating. The limit here follows the input: a legitimate encoding claims at most 16
//! bytes per byte it consumes (a one-byte varint claims its type's width, at most 16; a byte
//! string claims its length, which it consumes), so `16 × input length` never refuses a real
//! value, and bounds what a hostile one can make a node allocate at once. bincode takes the
//! limit as a const generic: [`decode`] uses the smallest of a few steps, 16× apart from 64 KiB,
//! that is at least that.
//!
//! What the limit does not count: elements of a sequence decoded through serde (serde caps
//! their preallocation at 1 MiB; each element consumes at least a byte), so a message can still
//! cost its length times the in-memory size of one element. The gRPC message limit
//! (`config::MAX_GRPC_MESSAGE_BYTES`) bounds that.
//!
//! [`fuzz`] lists every decoder a stranger or a disk can reach, for the fuzz tests.

use bincode::config::Configuration;
use bincode::error::DecodeError;
use bincode::error::EncodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The configuration of every encoding (without a limit: limits only apply to decoding).
pub fn config() -> Configuration {
    bincode::config::standard()
}

/// Most bytes a legitimate encoding claims per byte it consumes (see the module docs).
pub const CLAIM_PER_BYTE: usize = 16;

/// Encode `value` with [`config`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(value, config())
}

/// Decode a `T` that fills all of `bytes` (trailing bytes are an error: they mean the two
/// sides disagree on the layout), claiming at most a step above [`CLAIM_PER_BYTE`] × its length.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(DecodeError::OtherString(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Decode a `T` from the start of `bytes`; also returns how many bytes it took. Limited as
/// [`decode`].
fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), DecodeError> {
    match step(bytes.len()) {
        0 => limited::<T, { STEPS[0] }>(bytes),
        1 => limited::<T, { STEPS[1] }>(bytes),
        2 => limited::<T, { STEPS[2] }>(bytes),
        3 => limited::<T, { STEPS[3] }>(bytes),
        4 => limited::<T, { STEPS[4] }>(bytes),
        5 => limited::<T, { STEPS[5] }>(bytes),
        6 => limited::<T, { STEPS[6] }>(bytes),
        _ => limited::<T, { STEPS[7] }>(bytes),
    }
}

/// The limits [`decode`] chooses from. The last one is for inputs over 64 GiB: only a snapshot
/// file could be that large, and then it is what is on disk.
const STEPS: [usize; 8] = [
    1 << 16,
    1 << 20,
    1 << 24,
    1 << 28,
    1 << 32,
    1 << 36,
    1 << 40,
    usize::MAX,
];

/// The limit [`decode`] applies to an input of `len` bytes.
pub fn limit_for(len: usize) -> usize {
    STEPS[step(len)]
}

/// Index of the smallest step that allows [`CLAIM_PER_BYTE`] × `len`.
fn step(len: usize) -> usize {
    let budget = len.saturating_mul(CLAIM_PER_BYTE);
    STEPS
        .iter()
        .position(|&limit| budget <= limit)
        .unwrap_or(STEPS.len() - 1)
}

fn limited<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<(T, usize), DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
}

pub mod fuzz;
#[cfg(test)]
mod tests;
