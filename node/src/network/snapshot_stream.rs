//! The wire format of a streamed snapshot (`RaftService.InstallSnapshotStream`), both ends in
//! one file: the sender cuts the snapshot into [`chunks`], the receiver puts it together again
//! with [`receive`].
//!
//! The first message's `data` is the [`Head`] (bincode of the vote, the snapshot's metadata and
//! its total size in bytes); each later message's `data` is the next piece of the snapshot. The
//! receiver refuses a snapshot over its size limit from the head, before it holds any of it,
//! and its buffer never grows past the size the head announced, so a sender (broken, or lying
//! in its head) cannot make it allocate more than the limit. Each message is also bounded on
//! its own ([`ReceiveLimits::max_chunk_bytes`], [`MAX_CHUNK_BYTES`] unless set lower): the
//! peer service decodes messages of up to 1 GiB (a whole snapshot from a peer of an older build
//! must fit), far more than a chunk of this build ever is. It waits for each chunk at most
//! [`ReceiveLimits::chunk_wait`]: progress, not the length of the whole transfer, is what
//! is bounded.

use std::time::Duration;

use flotilla_proto::v1::RaftMessage;
use futures::Stream;
use futures::StreamExt;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;

use super::codec;
use super::codec::CodecError;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// The first message of a streamed snapshot: the leader's vote, the snapshot's metadata, and
/// how many bytes of snapshot follow.
pub type Head = (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, u64);

/// Largest message of a streamed snapshot a receiver accepts by default: the largest chunk a
/// sender of this build sends (`--snapshot-chunk-bytes` is at most this, `config.rs`).
pub const MAX_CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// What was over its limit, in [`SnapshotStreamError::TooLarge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversized {
    /// The whole snapshot, as its head announced it (`--max-snapshot-bytes`).
    Snapshot,
    /// One message of the stream (its head or a chunk).
    Chunk,
}

/// Why a receiver refused a streamed snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotStreamError {
    #[error("snapshot stream ended before its head")]
    NoHead,
    #[error("snapshot head: {0}")]
    Decode(CodecError),
    #[error("{}", too_large(*.what, *.size, *.limit))]
    TooLarge { what: Oversized, size: u64, limit: u64 },
    /// The chunks carried more or fewer bytes than the head announced (`got` counts up to the
    /// first chunk that went past it).
    #[error("snapshot stream announced {announced} bytes but carried {got}")]
    WrongSize { announced: u64, got: u64 },
    #[error("snapshot stream stalled: no chunk for {0:?}")]
    Stalled(Duration),
    /// The stream itself failed: the sender went away, or sent a message that does not decode.
    #[error("snapshot stream broke: {}", .0.message())]
    Stream(tonic::Status),
}

/// What a receiver accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Largest snapshot, in bytes (`--max-snapshot-bytes`); it is held in memory whole.
    pub max_bytes: u64,
    /// Largest message of the stream (the head or one chunk), in bytes.
    pub max_chunk_bytes: usize,
    /// Longest wait for the next message before the transfer is given up.
    pub chunk_wait: Duration,
}

impl Default for ReceiveLimits {
    fn default() -> Self {
        Self {
            max_bytes: u64::MAX,
            max_chunk_bytes: MAX_CHUNK_BYTES,
            // Far longer than a sender waits for a chunk to be taken (5 s): the sender notices a
            // stall first and says so; this only frees a receiver whose sender vanished.
            chunk_wait: Duration::from_secs(30),
        }
    }
}

impl ReceiveLimits {
    /// `Ok` if a snapshot of `size` bytes may be received.
    pub fn check_size(&self, size: u64) -> Result<(), SnapshotStreamError> {
        if size > self.max_bytes {
            return Err(SnapshotStreamError::TooLarge {
                what: Oversized::Snapshot,
                size,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// `Ok` if a message of the stream carrying `size` bytes may be taken.
    fn check_chunk(&self, size: usize) -> Result<(), SnapshotStreamError> {
        if size > self.max_chunk_bytes {
            return Err(SnapshotStreamError::TooLarge {
                what: Oversized::Chunk,
                size: size as u64,
                limit: self.max_chunk_bytes as u64,
            });
        }
        Ok(())
    }
}

/// The message of [`SnapshotStreamError::TooLarge`]: what was too large, and which setting
/// bounds it.
fn too_large(what: Oversized, size: u64, limit: u64) -> String {
    match what {
        Oversized::Snapshot => format!(
            "snapshot of {size} bytes is over this node's limit of {limit} bytes (--max-snapshot-bytes)"
        ),
        Oversized::Chunk => format!(
            "snapshot stream message of {size} bytes is over the limit of {limit} bytes per chunk \
             (a sender cuts snapshots into --snapshot-chunk-bytes, at most {MAX_CHUNK_BYTES})"
        ),
    }
}

/// `body` in pieces of at most `size` bytes (no copy: each is a slice of `body`).
pub fn chunks(body: bytes::Bytes, size: usize) -> impl Iterator<Item = bytes::Bytes> {
    let size = size.max(1);
    let len = body.len();
    (0..len)
        .step_by(size)
        .map(move |at| body.slice(at..(at + size).min(len)))
}

/// Read one streamed snapshot: its head, then its chunks until the stream ends. Returns the
/// leader's vote and the snapshot.
pub async fn receive<S>(
    mut messages: S,
    limits: ReceiveLimits,
) -> Result<(VoteOf<TypeConfig>, SnapshotOf<TypeConfig, SnapshotData>), SnapshotStreamError>
where
    S: Stream<Item = Result<RaftMessage, tonic::Status>> + Unpin,
{
    let head = next(&mut messages, limits.chunk_wait)
        .await?
        .ok_or(SnapshotStreamError::NoHead)?;
    limits.check_chunk(head.data.len())?;
    let (vote, meta, announced): Head = codec::decode(&head.data).map_err(SnapshotStreamError::Decode)?;
    limits.check_size(announced)?;
    let total = usize::try_from(announced).map_err(|_| SnapshotStreamError::TooLarge {
        what: Oversized::Snapshot,
        size: announced,
        limit: usize::MAX as u64,
    })?;
    // Grown as chunks arrive, never past what the head announced: a claim alone allocates
    // nothing, and a sender that lies about the size is cut off at it.
    let mut data: SnapshotData = Vec::new();
    while let Some(chunk) = next(&mut messages, limits.chunk_wait).await? {
        // Before its bytes are counted: an oversized chunk is refused for what it is, even
        // when the head announced enough room for it.
        limits.check_chunk(chunk.data.len())?;
        let got = data.len() + chunk.data.len();
        if got > total {
            return Err(SnapshotStreamError::WrongSize {
                announced,
                got: got as u64,
            });
        }
        if got > data.capacity() {
            // Double, as a Vec would, but cap at the announced size.
            data.reserve_exact(got.max(data.capacity() * 2).min(total) - data.len());
        }
        data.extend_from_slice(&chunk.data);
    }
    if data.len() != total {
        return Err(SnapshotStreamError::WrongSize {
            announced,
            got: data.len() as u64,
        });
    }
    Ok((
        vote,
        SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: data },
    ))
}

/// The next message, waited for at most `wait`.
async fn next<S>(messages: &mut S, wait: Duration) -> Result<Option<RaftMessage>, SnapshotStreamError>
where
    S: Stream<Item = Result<RaftMessage, tonic::Status>> + Unpin,
{
    match tokio::time::timeout(wait, messages.next()).await {
        Err(_) => Err(SnapshotStreamError::Stalled(wait)),
        Ok(None) => Ok(None),
        Ok(Some(Err(status))) => Err(SnapshotStreamError::Stream(status)),
        Ok(Some(Ok(message))) => Ok(Some(message)),
    }
}

#[cfg(test)]
mod tests {
    use openraft::Vote;

    use super::*;

    fn message(data: Vec<u8>) -> Result<RaftMessage, tonic::Status> {
        Ok(RaftMessage {
            data: data.into(),
            error: Default::default(),
        })
    }

    fn head(announced: u64) -> Result<RaftMessage, tonic::Status> {
        let head: Head = (Vote::new(1, 1), Default::default(), announced);
        message(codec::encode(&head).unwrap())
    }

    /// A head announcing `announced` bytes, then `sent` bytes in chunks of `chunk`.
    fn stream(announced: u64, sent: usize, chunk: usize) -> Vec<Result<RaftMessage, tonic::Status>> {
        let body: Vec<u8> = (0..sent).map(|i| (i % 251) as u8).collect();
        std::iter::once(head(announced))
            .chain(chunks(body.into(), chunk).map(|c| message(c.to_vec())))
            .collect()
    }

    async fn take(
        messages: Vec<Result<RaftMessage, tonic::Status>>,
        max_bytes: u64,
    ) -> Result<SnapshotData, SnapshotStreamError> {
        let limits = ReceiveLimits {
            max_bytes,
            ..Default::default()
        };
        let (_, snapshot) = receive(futures::stream::iter(messages), limits).await?;
        Ok(snapshot.snapshot)
    }

    #[test]
    fn chunks_cover_the_body_in_order_without_gaps() {
        let body = bytes::Bytes::from((0..=255u8).cycle().take(2_500).collect::<Vec<u8>>());
        let pieces: Vec<bytes::Bytes> = chunks(body.clone(), 1_000).collect();
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1_000, 1_000, 500]
        );
        assert_eq!(pieces.concat(), body.to_vec());
        assert_eq!(chunks(bytes::Bytes::new(), 10).count(), 0);
    }

    #[tokio::test]
    async fn a_snapshot_is_put_together_without_growing_past_its_size() {
        for (size, chunk) in [(0, 7), (1, 7), (10_000, 7), (10_000, 4_096), (10_000, 10_000)] {
            let data = take(stream(size as u64, size, chunk), size as u64).await.unwrap();
            assert_eq!(data, (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            assert!(data.capacity() <= size, "{} > {size}", data.capacity());
        }
    }

    #[tokio::test]
    async fn a_snapshot_over_the_limit_or_of_the_wrong_size_is_refused() {
        let refused = |r: Result<SnapshotData, SnapshotStreamError>| r.unwrap_err();
        assert!(matches!(
            refused(take(stream(10_001, 10_001, 1_000), 10_000).await),
            SnapshotStreamError::TooLarge {
                what: Oversized::Snapshot,
                size: 10_001,
                limit: 10_000
            }
        ));
        // A head that claims a small size, then more bytes: cut off at the first chunk past it.
        assert!(matches!(
            refused(take(stream(5_000, 1 << 20, 1_000), 10_000).await),
            SnapshotStreamError::WrongSize {
                announced: 5_000,
                got: 6_000
            }
        ));
        assert!(matches!(
            refused(take(stream(5_000, 3_000, 1_000), 10_000).await),
            SnapshotStreamError::WrongSize {
                announced: 5_000,
                got: 3_000
            }
        ));
        assert!(matches!(
            refused(take(vec![], 10_000).await),
            SnapshotStreamError::NoHead
        ));
        assert!(matches!(
            refused(take(vec![message(vec![0xff; 3])], 10_000).await),
            SnapshotStreamError::Decode(_)
        ));
    }

    #[tokio::test]
    async fn a_message_over_the_chunk_limit_is_refused_even_with_room_announced() {
        let limits = |max_chunk_bytes| ReceiveLimits {
            max_bytes: 100_000,
            max_chunk_bytes,
            ..Default::default()
        };
        let receive_with = |messages, max_chunk| receive(futures::stream::iter(messages), limits(max_chunk));
        // Chunks at the limit pass; one byte more is refused at the first such chunk, although
        // the head announced room for all of it.
        let (_, ok) = receive_with(stream(10_000, 10_000, 1_000), 1_000).await.unwrap();
        assert_eq!(ok.snapshot.len(), 10_000);
        let err = receive_with(stream(10_000, 10_000, 1_001), 1_000)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotStreamError::TooLarge {
                    what: Oversized::Chunk,
                    size: 1_001,
                    limit: 1_000
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--snapshot-chunk-bytes"), "{err}");
        // The head is a message like any other.
        let err = receive_with(stream(10_000, 10_000, 1_000), 8).await.unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotStreamError::TooLarge {
                    what: Oversized::Chunk,
                    limit: 8,
                    ..
                }
            ),
            "{err}"
        );
        // The snapshot limit keeps its own message.
        let err = take(stream(10_001, 10_001, 1_000), 10_000).await.unwrap_err();
        assert!(err.to_string().contains("--max-snapshot-bytes"), "{err}");
    }

    #[test]
    fn the_default_chunk_limit_is_the_largest_chunk_a_sender_may_be_configured_with() {
        assert_eq!(ReceiveLimits::default().max_chunk_bytes, MAX_CHUNK_BYTES);
        let with_chunk = |bytes| {
            crate::config::Config {
                snapshot_chunk_bytes: bytes,
                ..Default::default()
            }
            .validate()
        };
        assert!(with_chunk(MAX_CHUNK_BYTES).is_ok());
        assert!(with_chunk(MAX_CHUNK_BYTES + 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_that_stops_sending_is_given_up() {
        let limits = ReceiveLimits {
            max_bytes: 10_000,
            chunk_wait: Duration::from_secs(30),
            ..Default::default()
        };
        let stuck = futures::stream::iter(stream(5_000, 1_000, 1_000)).chain(futures::stream::pending());
        let started = tokio::time::Instant::now();
        let err = receive(Box::pin(stuck), limits).await.unwrap_err();
        assert!(matches!(err, SnapshotStreamError::Stalled(_)), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
