//! The encodings of [`TaskSpec`] and [`Grant`]: headers ride in the place of `time_limit_ms`,
//! so a spec or grant without headers keeps the bytes it had before headers existed.
//!
//! Both were written before headers: a `TaskSpec` in every `Submit` entry of every log, a
//! `Grant` in every forwarded lease reply. bincode is positional, so a new field would change
//! every one of them and break a rolling upgrade at its first submit. Instead, the
//! `Option<u64>` of `time_limit_ms` is written as [`Limit`]: bincode writes an option as a byte
//! 0 (none) or 1 (then the value), and an enum as its variant index, a varint, so 0 and 1 are
//! the same single bytes. Variants 0 `None` and 1 `Some` are therefore byte for byte the option
//! they replace; variant 2 `WithHeaders` carries the limit and the headers, and is written only
//! when there are headers. A build before headers fails on the byte 2 ("invalid option"), never
//! misreads it; and a log entry holding one is entry format 4 ([`super::Command::format`]), so
//! such a build refuses it by name before it gets that far. A tested property:
//! `encodes_like_an_option_without_headers`.
//!
//! A spec's concurrency key (issue 12) rides the same way: variant 3 `WithKey` carries the
//! limit, the headers and the key, written only when the spec has a key (entry format 7);
//! a spec without one keeps its bytes.

use bytes::Bytes;
use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use super::Grant;
use super::Headers;
use super::LeaseRef;
use super::TaskSpec;
use super::UnixMs;

/// `time_limit_ms` and the headers, in the place of the `Option<u64>` they extend.
#[derive(Serialize)]
enum Limit<'a> {
    None,
    Some(u64),
    WithHeaders(Option<u64>, &'a Headers),
    WithKey(Option<u64>, &'a Headers, &'a str),
}

#[derive(Deserialize)]
enum LimitOwned {
    None,
    Some(u64),
    WithHeaders(Option<u64>, Headers),
    WithKey(Option<u64>, Headers, String),
}

impl<'a> Limit<'a> {
    fn new(time_limit_ms: Option<u64>, headers: &'a Headers) -> Self {
        match (time_limit_ms, headers.is_empty()) {
            (limit, false) => Limit::WithHeaders(limit, headers),
            (None, true) => Limit::None,
            (Some(ms), true) => Limit::Some(ms),
        }
    }
}

impl LimitOwned {
    fn split(self) -> (Option<u64>, Headers, Option<String>) {
        match self {
            LimitOwned::None => (None, Headers::new(), None),
            LimitOwned::Some(ms) => (Some(ms), Headers::new(), None),
            LimitOwned::WithHeaders(limit, headers) => (limit, headers, None),
            LimitOwned::WithKey(limit, headers, key) => (limit, headers, Some(key)),
        }
    }
}

/// `TaskSpec`'s fields in their order of entry format 1, `time_limit_ms` extended.
#[derive(Serialize)]
struct SpecRef<'a> {
    name: &'a str,
    queue: &'a str,
    args: &'a Bytes,
    priority: u8,
    eta_ms: Option<UnixMs>,
    countdown_ms: Option<u64>,
    max_retries: u32,
    backoff_ms: u64,
    time_limit_ms: Limit<'a>,
    idempotency_key: &'a Option<String>,
    result_ttl_ms: u64,
}

#[derive(Deserialize)]
struct SpecOwned {
    name: String,
    queue: String,
    args: Bytes,
    priority: u8,
    eta_ms: Option<UnixMs>,
    countdown_ms: Option<u64>,
    max_retries: u32,
    backoff_ms: u64,
    time_limit_ms: LimitOwned,
    idempotency_key: Option<String>,
    result_ttl_ms: u64,
}

impl Serialize for TaskSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SpecRef {
            name: &self.name,
            queue: &self.queue,
            args: &self.args,
            priority: self.priority,
            eta_ms: self.eta_ms,
            countdown_ms: self.countdown_ms,
            max_retries: self.max_retries,
            backoff_ms: self.backoff_ms,
            time_limit_ms: match &self.concurrency_key {
                Some(key) => Limit::WithKey(self.time_limit_ms, &self.headers, key),
                None => Limit::new(self.time_limit_ms, &self.headers),
            },
            idempotency_key: &self.idempotency_key,
            result_ttl_ms: self.result_ttl_ms,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = SpecOwned::deserialize(d)?;
        let (time_limit_ms, headers, concurrency_key) = o.time_limit_ms.split();
        Ok(TaskSpec {
            name: o.name,
            queue: o.queue,
            args: o.args,
            priority: o.priority,
            eta_ms: o.eta_ms,
            countdown_ms: o.countdown_ms,
            max_retries: o.max_retries,
            backoff_ms: o.backoff_ms,
            time_limit_ms,
            idempotency_key: o.idempotency_key,
            result_ttl_ms: o.result_ttl_ms,
            headers,
            concurrency_key,
        })
    }
}

#[derive(Serialize)]
struct GrantRef<'a> {
    lease: LeaseRef,
    name: &'a str,
    queue: &'a str,
    args: &'a Bytes,
    time_limit_ms: Limit<'a>,
    lease_deadline_ms: UnixMs,
}

#[derive(Deserialize)]
struct GrantOwned {
    lease: LeaseRef,
    name: String,
    queue: String,
    args: Bytes,
    time_limit_ms: LimitOwned,
    lease_deadline_ms: UnixMs,
}

impl Serialize for Grant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        GrantRef {
            lease: self.lease,
            name: &self.name,
            queue: &self.queue,
            args: &self.args,
            time_limit_ms: Limit::new(self.time_limit_ms, &self.headers),
            lease_deadline_ms: self.lease_deadline_ms,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = GrantOwned::deserialize(d)?;
        // A grant never carries a key (`WithKey` is written for specs only).
        let (time_limit_ms, headers, _) = o.time_limit_ms.split();
        Ok(Grant {
            lease: o.lease,
            name: o.name,
            queue: o.queue,
            args: o.args,
            time_limit_ms,
            lease_deadline_ms: o.lease_deadline_ms,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::encoding;

    /// `TaskSpec` as it was derived before headers.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct SpecBefore {
        name: String,
        queue: String,
        args: Bytes,
        priority: u8,
        eta_ms: Option<UnixMs>,
        countdown_ms: Option<u64>,
        max_retries: u32,
        backoff_ms: u64,
        time_limit_ms: Option<u64>,
        idempotency_key: Option<String>,
        result_ttl_ms: u64,
    }

    /// `Grant` as it was derived before headers.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct GrantBefore {
        lease: LeaseRef,
        name: String,
        queue: String,
        args: Bytes,
        time_limit_ms: Option<u64>,
        lease_deadline_ms: UnixMs,
    }

    fn spec(time_limit_ms: Option<u64>, headers: Headers) -> TaskSpec {
        TaskSpec {
            name: "n".into(),
            queue: "q".into(),
            args: Bytes::from_static(b"[1]"),
            priority: 3,
            eta_ms: Some(9),
            countdown_ms: None,
            max_retries: 2,
            backoff_ms: 100,
            time_limit_ms,
            idempotency_key: Some("k".into()),
            result_ttl_ms: 1_000,
            headers,
            concurrency_key: None,
        }
    }

    fn before(s: &TaskSpec) -> SpecBefore {
        SpecBefore {
            name: s.name.clone(),
            queue: s.queue.clone(),
            args: s.args.clone(),
            priority: s.priority,
            eta_ms: s.eta_ms,
            countdown_ms: s.countdown_ms,
            max_retries: s.max_retries,
            backoff_ms: s.backoff_ms,
            time_limit_ms: s.time_limit_ms,
            idempotency_key: s.idempotency_key.clone(),
            result_ttl_ms: s.result_ttl_ms,
        }
    }

    fn grant(time_limit_ms: Option<u64>, headers: Headers) -> Grant {
        Grant {
            lease: LeaseRef { task: 7, attempt: 2 },
            name: "n".into(),
            queue: "q".into(),
            args: Bytes::from_static(b"{}"),
            time_limit_ms,
            lease_deadline_ms: 99,
            headers,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    proptest! {
        /// Without headers, a spec and a grant are the bytes the build before headers wrote
        /// (every varint width of the limit), and read back the same both ways.
        #[test]
        fn encodes_like_an_option_without_headers(limit in prop::option::of(any::<u64>())) {
            let s = spec(limit, Headers::new());
            let bytes = encoding::encode(&s).unwrap();
            prop_assert_eq!(&bytes, &encoding::encode(&before(&s)).unwrap());
            prop_assert_eq!(encoding::decode::<TaskSpec>(&bytes).unwrap(), s.clone());
            prop_assert_eq!(encoding::decode::<SpecBefore>(&bytes).unwrap(), before(&s));

            let g = grant(limit, Headers::new());
            let old = GrantBefore {
                lease: g.lease,
                name: g.name.clone(),
                queue: g.queue.clone(),
                args: g.args.clone(),
                time_limit_ms: limit,
                lease_deadline_ms: g.lease_deadline_ms,
            };
            let bytes = encoding::encode(&g).unwrap();
            prop_assert_eq!(&bytes, &encoding::encode(&old).unwrap());
            prop_assert_eq!(encoding::decode::<Grant>(&bytes).unwrap(), g);
        }

        #[test]
        fn headers_round_trip(limit in prop::option::of(any::<u64>()), k in ".{0,8}", v in ".{0,8}") {
            let s = spec(limit, headers(&[(&k, &v), ("traceparent", "00-ab")]));
            prop_assert_eq!(encoding::decode::<TaskSpec>(&encoding::encode(&s).unwrap()).unwrap(), s);
            let g = grant(limit, headers(&[(&k, &v)]));
            prop_assert_eq!(encoding::decode::<Grant>(&encoding::encode(&g).unwrap()).unwrap(), g);
        }

        #[test]
        fn concurrency_keys_round_trip(limit in prop::option::of(any::<u64>()), key in ".{0,8}", h in any::<bool>()) {
            let mut s = spec(limit, if h { headers(&[("a", "b")]) } else { Headers::new() });
            s.concurrency_key = Some(key);
            let bytes = encoding::encode(&s).unwrap();
            prop_assert_eq!(encoding::decode::<TaskSpec>(&bytes).unwrap(), s);
            // A build before keys refuses the variant rather than misreading it.
            prop_assert!(encoding::decode::<SpecBefore>(&bytes).is_err());
        }
    }

    #[test]
    fn a_build_before_headers_refuses_them_rather_than_misreading() {
        let s = spec(Some(5), headers(&[("a", "b")]));
        assert!(encoding::decode::<SpecBefore>(&encoding::encode(&s).unwrap()).is_err());
        let g = grant(None, headers(&[("a", "b")]));
        assert!(encoding::decode::<GrantBefore>(&encoding::encode(&g).unwrap()).is_err());
    }
}
