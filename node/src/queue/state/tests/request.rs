//! The log entry's size estimates (`Request::approx_size`, `approx_mem_size`), tested here
//! beside the task specs they measure.

use super::*;

#[test]
fn approx_size_grows_with_payloads() {
    let small = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    };
    let mut big_spec = spec("a");
    big_spec.args = Bytes::from(vec![b'x'; 10_000]);
    let big = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: vec![big_spec].into(),
        }],
    };
    // The small spec carries `{}` (2 bytes): the difference is exactly the extra payload.
    assert_eq!(big.approx_size() - small.approx_size(), 10_000 - 2);
    assert!(
        Request {
            now_ms: 0,
            commands: vec![Command::Tick]
        }
        .approx_size()
            > 0
    );
}

#[test]
fn approx_mem_size_counts_structs_and_heap() {
    let keyed = |i: usize| {
        let mut s = spec("noop");
        s.idempotency_key = Some(format!("{i:032}"));
        s
    };
    let req = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: (0..1000).map(keyed).collect(),
        }],
    };
    let per_task = req.approx_mem_size() / 1000;
    // The spec itself, its name, its args and its 32-byte key (48 with the allocator's header).
    let floor = (std::mem::size_of::<TaskSpec>() + 48) as u64;
    assert!(
        per_task >= floor,
        "{per_task} B per task, expected at least {floor}"
    );
    let encoded = bincode::serde::encode_to_vec(&req, bincode::config::standard())
        .unwrap()
        .len() as u64;
    assert!(
        per_task > 3 * encoded / 1000,
        "memory is several times the encoded size"
    );
}
