//! The snapshot format: a state survives a bincode round trip, key index included.

use super::*;

#[test]
fn snapshot_round_trips_through_bincode() {
    let mut h = H::default();
    let mut s = spec("a");
    s.idempotency_key = Some("k".into());
    s.eta_ms = Some(500);
    h.submit(0, vec![s, in_queue(spec("b"), "q"), spec("c")]);
    let l = h.lease(1, 1, 100);
    h.complete(2, l[0], ok(b"{\"x\":1}"));
    h.pause(3, "q", true);
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&h.s, cfg).unwrap();
    let (back, read): (QueueState, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(read, bytes.len());
    assert_eq!(back, h.s);
    back.check_invariants().unwrap();
}

/// Headers are kept beside the task, given with every grant, and forgotten with the task; a
/// state holding some serializes them (format 5) and one holding none keeps format 4's bytes.
#[test]
fn headers_are_granted_kept_in_the_snapshot_and_purged_with_the_task() {
    let mut h = H::default();
    let mut with = spec("a");
    with.headers = [("traceparent".to_string(), "00-ab".to_string())].into();
    with.result_ttl_ms = 100;
    with.max_retries = 1;
    h.submit(0, vec![with.clone(), spec("b")]);
    assert_eq!(h.s.headers(1), with.headers);
    assert!(h.s.headers(2).is_empty());
    let grants = h.lease_from(1, &[], 2, 1_000);
    assert_eq!(grants[0].headers, with.headers);
    assert!(grants[1].headers.is_empty());
    // A retry is granted with the same headers.
    h.complete(2, grants[0].lease, failure(true));
    let again = h.lease_from(3_000, &[], 1, 1_000);
    assert_eq!((again[0].lease.task, &again[0].headers), (1, &with.headers));

    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&h.s, cfg).unwrap();
    let (back, _): (QueueState, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, h.s);
    assert_eq!(back.headers(1), with.headers);
    assert!(
        bincode::serde::encode_to_vec(InFormat(&h.s, 4), cfg).is_err(),
        "format 4 cannot hold headers"
    );

    h.complete(3_001, again[0].lease, ok(b"1"));
    h.tick(3_200);
    assert_eq!(h.state(1), None, "purged after its result TTL");
    assert!(h.s.extras().is_pristine(), "and its headers with it");
    h.s.check_invariants().unwrap();
    // Without extras, format 4's bytes are the state's bytes less the empty extras table.
    let v5 = bincode::serde::encode_to_vec(InFormat(&h.s, 5), cfg).unwrap();
    let v4 = bincode::serde::encode_to_vec(InFormat(&h.s, 4), cfg).unwrap();
    assert_eq!(v5[..v4.len()], v4[..]);
    assert_eq!(v5[v4.len()..], [0], "an empty map is one varint 0");
    let (read, _): (ReadFormat<4>, usize) = bincode::serde::decode_from_slice(&v4, cfg).unwrap();
    assert_eq!(read.0, h.s);
}
