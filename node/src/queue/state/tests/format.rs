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
