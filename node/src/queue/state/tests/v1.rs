//! Reading snapshots of format version 1.

use super::*;

#[test]
fn version_1_snapshots_are_read_and_converted() {
    let mut h = H::default();
    let mut keyed = spec("a");
    keyed.idempotency_key = Some("k".into());
    keyed.eta_ms = Some(500);
    let mut limited = in_queue(spec("b"), "q");
    limited.time_limit_ms = Some(30);
    limited.max_retries = 2;
    limited.backoff_ms = 7;
    let mut empty_key = spec("c");
    empty_key.idempotency_key = Some(String::new());
    h.submit(0, vec![keyed, limited, empty_key, spec("d"), spec("e")]);
    let l = h.lease(1, 2, 100);
    h.complete(2, l[0], ok(b"{\"x\":1}"));
    h.pause(3, "q", true);
    let cfg = bincode::config::standard();
    let old = bincode::serde::encode_to_vec(downgrade_to_v1(&h.s), cfg).unwrap();
    let (decoded, _): (QueueStateV1, usize) = bincode::serde::decode_from_slice(&old, cfg).unwrap();
    let upgraded = QueueState::try_from(decoded).unwrap();
    upgraded.check_invariants().unwrap();
    assert_eq!(upgraded, h.s);
    // And it carries on like the original.
    let mut dup = spec("z");
    dup.idempotency_key = Some("k".into());
    let mut a = h.s.clone();
    let mut b = upgraded;
    let req = Request {
        now_ms: 10,
        commands: vec![Command::Submit {
            tasks: vec![dup].into(),
        }],
    };
    let mut fx = ApplyEffects::default();
    assert_eq!(
        a.apply(&req, &mut fx),
        b.apply(&req, &mut ApplyEffects::default())
    );
    assert_eq!(a, b);
}
