//! The key index: idempotency keys across entries, within a batch, until the purge.

use super::*;

#[test]
fn idempotency_across_entries_and_within_a_batch() {
    let mut h = H::default();
    let keyed = |k: &str| {
        let mut s = spec("a");
        s.idempotency_key = Some(k.into());
        s.result_ttl_ms = 100;
        s
    };
    let (r, fx) = h.apply(
        0,
        vec![Command::Submit {
            tasks: vec![keyed("k1"), keyed("k1"), keyed("k2")].into(),
        }],
    );
    assert_eq!(
        r,
        vec![Response::Submitted(vec![
            Submitted {
                id: 1,
                duplicate: false
            },
            Submitted {
                id: 1,
                duplicate: true
            },
            Submitted {
                id: 2,
                duplicate: false
            },
        ])]
    );
    assert_eq!(fx.became_pending, 2);
    // A later entry, and a later command of the same entry.
    let (r, _) = h.apply(
        10,
        vec![
            Command::Submit {
                tasks: vec![keyed("k2")].into(),
            },
            Command::Submit {
                tasks: vec![keyed("k1")].into(),
            },
        ],
    );
    assert_eq!(
        r,
        vec![
            Response::Submitted(vec![Submitted {
                id: 2,
                duplicate: true
            }]),
            Response::Submitted(vec![Submitted {
                id: 1,
                duplicate: true
            }]),
        ]
    );
    assert_eq!(h.s.task_count(), 2);
    // The key outlives the task's completion, but not its purge.
    let l = h.lease(20, 1, 100)[0];
    h.complete(30, l, ok(b""));
    assert_eq!(h.submit(129, vec![keyed("k1")]), vec![1]);
    h.tick(130);
    assert_eq!(h.s.task(1), None);
    let (r, _) = h.apply(
        130,
        vec![Command::Submit {
            tasks: vec![keyed("k1")].into(),
        }],
    );
    assert_eq!(
        r,
        vec![Response::Submitted(vec![Submitted {
            id: 3,
            duplicate: false
        }])]
    );
}

#[test]
fn a_state_whose_tasks_share_a_key_does_not_load() {
    let mut h = H::default();
    let keyed = |k: &str| {
        let mut s = spec("a");
        s.idempotency_key = Some(k.into());
        s
    };
    h.submit(0, vec![keyed("k1"), keyed("k2")]);
    assert_eq!(KeyIndex::build(&h.s.tasks).unwrap().len(), 2);
    // Make task 2 carry task 1's key: the index is rebuilt on load and refuses it.
    let mut bad = h.s.clone();
    bad.tasks.get_mut(2).unwrap().data = Task::pack(b"k1", b"{}");
    let err = KeyIndex::build(&bad.tasks).unwrap_err();
    assert!(err.contains("share an idempotency key"), "{err}");
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&bad, cfg).unwrap();
    assert!(bincode::serde::decode_from_slice::<QueueState, _>(&bytes, cfg).is_err());
}
