//! The task record: its size, and its key and args in one allocation.

use super::*;

#[test]
fn task_struct_stays_compact() {
    let size = std::mem::size_of::<Task>();
    println!("size_of::<Task>() = {size} bytes");
    // key + args (16) + output box (8) + 3 u64 (24) + 7 u32 (28) + 4 bytes. It was 120 with the
    // options inline, the args as `Bytes` and the key in a box of its own.
    assert!(size <= 80, "Task grew to {size} bytes");
    // A slot of the task table costs no more than the task.
    assert_eq!(std::mem::size_of::<Option<Task>>(), size);
}

#[test]
fn key_and_args_share_one_allocation_and_split_back() {
    let t = |key: Option<&str>, args: &[u8]| {
        let k = key.unwrap_or_default().as_bytes();
        let mut s = QueueState::new();
        let mut spec = spec("a");
        spec.idempotency_key = key.map(str::to_owned);
        spec.args = Bytes::copy_from_slice(args);
        s.apply(
            &Request {
                now_ms: 0,
                commands: vec![Command::Submit {
                    tasks: vec![spec].into(),
                }],
            },
            &mut ApplyEffects::default(),
        );
        let task = s.tasks.get(1).unwrap().clone();
        assert_eq!(&*task.data, [k, args].concat().as_slice());
        task
    };
    let keyed = t(Some("key"), b"args");
    assert_eq!(
        (keyed.idempotency_key(), keyed.args()),
        (Some(&b"key"[..]), &b"args"[..])
    );
    // An empty key is a key (it deduplicates), distinct from none.
    let empty = t(Some(""), b"x");
    assert_eq!(
        (empty.idempotency_key(), empty.args()),
        (Some(&b""[..]), &b"x"[..])
    );
    let none = t(None, b"");
    assert_eq!((none.idempotency_key(), none.args()), (None, &b""[..]));
    assert!(none.data.is_empty());
}

#[test]
fn the_packed_bytes_serialize_as_one_byte_string_and_read_back_from_a_sequence() {
    let mut h = H::default();
    let mut s = spec("a");
    s.idempotency_key = Some("k".into());
    h.submit(0, vec![s]);
    let task = h.s.tasks.get(1).unwrap().clone();
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&task, cfg).unwrap();
    let (back, _): (Task, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, task);
    // JSON writes bytes as a sequence of numbers: the reader takes that too.
    let json = serde_json::to_string(&task).unwrap();
    assert!(json.contains("[107,123,125]"), "{json}");
    assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), task);
}
