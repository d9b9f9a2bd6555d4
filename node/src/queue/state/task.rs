//! The task record: [`Task`], its interned [`TaskOptions`] and its [`Output`].
//!
//! A queue can hold millions of tasks, so the record is compact: names and options are interned
//! slot numbers (`state/interner.rs`), the idempotency key and the args share one allocation
//! (`data`, serialized as one byte string), the output sits behind an optional box, and
//! `timer_ms` is the one time that matters in the task's current state. The fields are the
//! snapshot format (bincode is positional): their order and types must not change without a
//! new format version.

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use crate::queue::command::TaskState;
use crate::queue::command::UnixMs;

/// One task. `timer_ms` is the ETA, retry time, lease deadline, or purge time once final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Task {
    /// The idempotency key (its first `key_len` bytes), then the args. No allocation if both
    /// are empty.
    #[serde(with = "boxed_bytes")]
    pub(super) data: Box<[u8]>,
    /// The result or the last error, once there is one.
    pub(super) output: Option<Box<Output>>,
    pub(super) created_ms: UnixMs,
    pub(super) updated_ms: UnixMs,
    /// 0 while pending (pending tasks have no timer).
    pub(super) timer_ms: UnixMs,
    pub(super) name: u32,
    pub(super) queue: u32,
    /// [`TaskOptions`] slot in `Index::options`.
    pub(super) options: u32,
    /// The holding pool's slot in `Index::pools` while leased, 0 otherwise.
    pub(super) pool: u32,
    pub(super) attempt: u32,
    pub(super) failures: u32,
    /// 0 unless `keyed`.
    pub(super) key_len: u32,
    /// Leases that expired (worker lost); see [`MAX_LOST_LEASES`](crate::queue::MAX_LOST_LEASES).
    pub(super) lost_leases: u8,
    pub(super) priority: u8,
    pub(super) state: TaskState,
    /// Has an idempotency key (possibly empty).
    pub(super) keyed: bool,
}

impl Task {
    pub(super) fn output(&self) -> Option<&Output> {
        self.output.as_deref()
    }

    pub(super) fn set_output(&mut self, output: Output) {
        match &mut self.output {
            Some(o) => **o = output,
            None => self.output = Some(Box::new(output)),
        }
    }

    pub(super) fn idempotency_key(&self) -> Option<&[u8]> {
        if self.keyed {
            self.data.get(..self.key_len as usize)
        } else {
            None
        }
    }

    pub(super) fn args(&self) -> &[u8] {
        self.data.get(self.key_len as usize..).unwrap_or_default()
    }

    /// `data` for a task with this key (empty if none) and these args: one allocation.
    pub(super) fn pack(key: &[u8], args: &[u8]) -> Box<[u8]> {
        let mut data = Vec::with_capacity(key.len() + args.len());
        data.extend_from_slice(key);
        data.extend_from_slice(args);
        data.into_boxed_slice()
    }
}

/// The per-task options a client rarely varies, interned (tasks hold a slot number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct TaskOptions {
    pub(super) max_retries: u32,
    pub(super) backoff_ms: u64,
    pub(super) result_ttl_ms: u64,
    pub(super) time_limit_ms: Option<u64>,
}

impl From<&TaskOptions> for TaskOptions {
    fn from(o: &TaskOptions) -> Self {
        *o
    }
}

/// The result or the last error: a task shows one or the other, never both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Output {
    Result(Bytes),
    Error(Box<str>),
}

/// `Box<[u8]>` as one serde byte string (serde's default is a sequence of `u8`s).
mod boxed_bytes {
    use std::fmt;

    use serde::Deserializer;
    use serde::Serializer;
    use serde::de::SeqAccess;
    use serde::de::Visitor;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Box<[u8]>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E>(self, v: &[u8]) -> Result<Box<[u8]>, E> {
                Ok(v.into())
            }

            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Box<[u8]>, E> {
                Ok(v.into_boxed_slice())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Box<[u8]>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out.into_boxed_slice())
            }
        }
        d.deserialize_bytes(V)
    }
}
