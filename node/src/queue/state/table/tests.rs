//! Tests of [`Table`]: it behaves like a `BTreeMap`, clones share chunks and never see each
//! other's writes, and memory stays bounded.

use proptest::prelude::*;

use super::*;

fn check<T: fmt::Debug + PartialEq + Clone>(t: &Table<T>, model: &BTreeMap<TaskId, T>) {
    t.check().unwrap();
    assert_eq!(t.len(), model.len());
    let got: Vec<(TaskId, T)> = t.iter().map(|(id, v)| (id, v.clone())).collect();
    let want: Vec<(TaskId, T)> = model.iter().map(|(id, v)| (*id, v.clone())).collect();
    assert_eq!(got, want);
}

/// The memory bound of the module doc: ring at most twice the live slots, its chunks at most
/// two chunks more than the ring.
fn check_memory<T>(t: &Table<T>) {
    let (ring, slots, _) = t.footprint();
    assert!(ring <= 2 * t.ring_live, "ring {ring} for {} live", t.ring_live);
    assert!(slots <= ring + 2 * CHUNK, "{slots} slots for a ring of {ring}");
}

#[test]
fn behaves_like_a_map() {
    let mut t = Table::default();
    let mut m = BTreeMap::new();
    // A fixed pseudo-random order of removals over sequential inserts.
    let mut x: u64 = 7;
    for id in 1..=2000u64 {
        t.insert(id, id * 10);
        m.insert(id, id * 10);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let victim = 1 + (x >> 33) % id;
        assert_eq!(t.remove(victim), m.remove(&victim));
        assert_eq!(t.get(victim), None);
        if id % 97 == 0 {
            check(&t, &m);
        }
    }
    for id in [0, 5, 1999, 2000, 2001, u64::MAX] {
        assert_eq!(t.get(id), m.get(&id));
    }
    *t.get_mut(2000).unwrap() = 1;
    m.insert(2000, 1);
    check(&t, &m);
    while let Some((&id, _)) = m.iter().next() {
        assert_eq!(t.remove(id), m.remove(&id));
    }
    check(&t, &m);
    assert_eq!(t.footprint().0, 0);
    assert_eq!(t.footprint().1, 0, "an empty ring holds no chunk");
}

/// One old task lives on while millions of newer ones come and go: the ring must not keep
/// every slot between it and the newest id.
#[test]
fn memory_stays_bounded_with_a_long_lived_task() {
    let mut t = Table::default();
    t.insert(1, 1u64);
    let mut max_slots = 0;
    for id in 2..=1_000_000u64 {
        t.insert(id, id);
        // 100 tasks in flight at a time (besides task 1).
        if id > 101 {
            assert_eq!(t.remove(id - 100), Some(id - 100));
        }
        max_slots = max_slots.max(t.footprint().1);
    }
    let (ring, _, sparse) = t.footprint();
    assert_eq!(t.len(), 101);
    assert_eq!(t.get(1), Some(&1));
    assert!(ring <= 2 * 101 && sparse == 1, "ring {ring}, side table {sparse}");
    assert!(max_slots <= 2 * CHUNK, "ring chunks reached {max_slots} slots");
    // A drained ring gives its memory back.
    let mut t = Table::default();
    for id in 1..=100_000u64 {
        t.insert(id, id);
    }
    for id in 1..100_000u64 {
        t.remove(id);
    }
    assert!(t.footprint().1 <= CHUNK, "{} slots", t.footprint().1);
    t.check().unwrap();
}

#[test]
fn gaps_do_not_allocate_dead_slots() {
    let mut t = Table::default();
    t.insert(1, ());
    t.insert(1_000_000_000, ());
    let (ring, slots, sparse) = t.footprint();
    assert!(
        ring == 1 && sparse == 1 && slots < CHUNK,
        "{ring} {slots} {sparse}"
    );
    t.check().unwrap();
}

#[test]
fn serializes_like_a_btreemap_whatever_the_split() {
    let mut a = Table::default();
    let mut m = BTreeMap::new();
    for id in 1..=300u64 {
        a.insert(id, id as u32);
        m.insert(id, id as u32);
    }
    for id in 2..=250u64 {
        a.remove(id);
        m.remove(&id);
    }
    assert_eq!(a.footprint().2, 1, "task 1 moved to the side table");
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&a, cfg).unwrap();
    assert_eq!(bytes, bincode::serde::encode_to_vec(&m, cfg).unwrap());
    let (b, _): (Table<u32>, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(a, b);
    check(&b, &m);
    let reversed: BTreeMap<u64, u32> = BTreeMap::from([(1, 1)]);
    let mut bad = bincode::serde::encode_to_vec(&reversed, cfg).unwrap();
    bad[0] = 2; // two entries...
    bad.extend_from_slice(&bincode::serde::encode_to_vec((1u64, 1u32), cfg).unwrap()); // ...the same id twice
    assert!(bincode::serde::decode_from_slice::<Table<u32>, _>(&bad, cfg).is_err());
}

/// A clone shares every chunk; a write copies only the chunk it touches, and only once; a
/// miss or a read copies nothing.
#[test]
fn a_clone_shares_chunks_until_written() {
    let mut t = Table::default();
    for id in 1..=10 * CHUNK as TaskId {
        t.insert(id, id);
    }
    let frozen = t.clone();
    assert_eq!(t.shared_chunks(&frozen), 11);
    assert_eq!(t.get(5), Some(&5));
    assert_eq!(t.get_mut(0), None);
    assert_eq!(t.remove(100_000), None);
    assert_eq!(t.shared_chunks(&frozen), 11, "reads and misses copy nothing");
    *t.get_mut(5).unwrap() = 0;
    *t.get_mut(6).unwrap() = 0;
    assert_eq!(t.shared_chunks(&frozen), 10, "one chunk copied, once");
    t.insert(10 * CHUNK as TaskId + 1, 0);
    assert_eq!(
        t.shared_chunks(&frozen),
        9,
        "the last chunk copied for the append"
    );
    assert_eq!(frozen.get(5), Some(&5));
    assert_eq!(frozen.get(10 * CHUNK as TaskId + 1), None);
    frozen.check().unwrap();
    t.check().unwrap();
}

/// What a property test does to the table.
#[derive(Clone, Debug)]
enum Op {
    /// Append the next id (the usual case).
    Push(u32),
    /// Insert or replace at `next - back` (below the ring: the side table).
    InsertBack(u64, u32),
    /// Jump the next id ahead (a gap, as after removals at the back or a decode).
    Skip(u64),
    /// Remove the `i`-th live id (modulo their number), or a raw id.
    Remove(usize),
    RemoveRaw(u64),
    /// Change the `i`-th live id's value in place.
    Modify(usize, u32),
    /// Keep a clone (a snapshot's frozen copy) and its model, to be checked to the end.
    Clone,
    /// Write to the newest kept clone instead, which the original must never see.
    WriteClone(u64, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any::<u32>().prop_map(Op::Push),
        1 => (0..3000u64, any::<u32>()).prop_map(|(b, v)| Op::InsertBack(b, v)),
        1 => prop_oneof![0..4u64, 0..5000u64].prop_map(Op::Skip),
        6 => any::<usize>().prop_map(Op::Remove),
        1 => any::<u64>().prop_map(Op::RemoveRaw),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Modify(i, v)),
        1 => Just(Op::Clone),
        1 => (0..5000u64, any::<u32>()).prop_map(|(i, v)| Op::WriteClone(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The table is a `BTreeMap` under random operations interleaved with clones: each clone
    /// keeps exactly what it held (whatever the original does next) and the original never
    /// sees what is written to a clone; the table's rules and memory bound hold throughout.
    #[test]
    fn behaves_like_a_btreemap_across_clones(ops in prop::collection::vec(op(), 1..600)) {
        let mut t: Table<u32> = Table::default();
        let mut m: BTreeMap<TaskId, u32> = BTreeMap::new();
        let mut clones: Vec<(Table<u32>, BTreeMap<TaskId, u32>)> = Vec::new();
        let mut next: TaskId = 1;
        for op in ops {
            match op {
                Op::Push(v) => {
                    t.insert(next, v);
                    m.insert(next, v);
                    next += 1;
                }
                Op::InsertBack(back, v) => {
                    let id = next.saturating_sub(back + 1);
                    t.insert(id, v);
                    m.insert(id, v);
                }
                Op::Skip(n) => next += n,
                Op::Remove(i) => {
                    if let Some(&id) = m.keys().nth(i % m.len().max(1)) {
                        prop_assert_eq!(t.remove(id), m.remove(&id));
                    }
                }
                Op::RemoveRaw(id) => prop_assert_eq!(t.remove(id), m.remove(&id)),
                Op::Modify(i, v) => {
                    let n = m.len().max(1);
                    if let Some((&id, mv)) = m.iter_mut().nth(i % n) {
                        *mv = v;
                        *t.get_mut(id).unwrap() = v;
                    }
                }
                Op::Clone => clones.push((t.clone(), m.clone())),
                Op::WriteClone(i, v) => {
                    if let Some((c, cm)) = clones.last_mut() {
                        let id = i % (next + 1);
                        if i % 2 == 0 {
                            c.insert(id, v);
                            cm.insert(id, v);
                        } else {
                            prop_assert_eq!(c.remove(id), cm.remove(&id));
                        }
                    }
                }
            }
            t.check().map_err(TestCaseError::fail)?;
            check_memory(&t);
            prop_assert_eq!(t.len(), m.len());
        }
        check(&t, &m);
        for id in (0..next + 2).step_by(7) {
            prop_assert_eq!(t.get(id), m.get(&id));
        }
        let below = next / 2;
        let got: Vec<(TaskId, u32)> = t.iter_below(below).map(|(id, v)| (id, *v)).collect();
        let want: Vec<(TaskId, u32)> = m.range(..below).rev().map(|(id, v)| (*id, *v)).collect();
        prop_assert_eq!(got, want);
        for (c, cm) in &clones {
            check(c, cm);
            check_memory(c);
        }
    }
}
