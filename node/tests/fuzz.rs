//! Fuzzing every decoder a stranger or a disk can reach (`flotilla_node::encoding::fuzz`) under
//! an allocation cap: each input is decoded with the global allocator limited to what the
//! target may take ([`fuzz::allocation_budget`]); one allocation past it aborts this test.
//! Inputs are random bytes and valid encodings (the checked-in WAL and snapshot fixtures, a
//! submit, a worker hello) with random damage, drawn by proptest from a fixed seed.
//!
//! `cargo test -p flotilla-node --test fuzz` runs a few thousand cases per target (seconds).
//! Longer runs: `FLOTILLA_FUZZ_CASES=1000000 FLOTILLA_FUZZ_SEED=7 cargo test --release -p
//! flotilla-node --test fuzz -- --nocapture` (docs/TESTING.md, "Fuzzing"). If it aborts, the
//! input that did it is in `target/tmp/fuzz-last-input`.

use std::alloc::System;
use std::path::Path;
use std::path::PathBuf;

use cap::Cap;
use flotilla_node::encoding::fuzz;
use flotilla_proto::v1 as pb;
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest::test_runner::RngAlgorithm;
use proptest::test_runner::TestRng;
use proptest::test_runner::TestRunner;
use prost::Message;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Run `f` with the allocator limited to `budget` bytes beyond what is allocated now.
fn capped<T>(budget: usize, f: impl FnOnce() -> T) -> T {
    let base = ALLOC.allocated();
    ALLOC
        .set_limit(base.saturating_add(budget))
        .expect("a limit above what is allocated");
    let out = f();
    ALLOC.set_limit(usize::MAX).expect("no limit");
    out
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture_files() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/raft/tests/fixtures");
    let mut files: Vec<PathBuf> = Vec::new();
    for fixture in std::fs::read_dir(&root).expect("fixtures") {
        let dir = fixture.expect("fixture").path();
        files.push(dir.join("snapshot/current.snap"));
        for chunk in std::fs::read_dir(dir.join("wal")).expect("wal") {
            files.push(chunk.expect("chunk").path());
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect()
}

/// Valid inputs to damage: the fixtures (log entries of every command, snapshots) and
/// protobuf requests with every field set.
fn seeds() -> Vec<Vec<u8>> {
    let submit = fuzz::full_submit();
    let hello = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Hello(pb::Hello {
            name: "w".into(),
            queues: vec!["q".into()],
            tasks: vec![pb::TaskDecl {
                name: "t".into(),
                ..Default::default()
            }],
            concurrency: 4,
            ..Default::default()
        })),
    };
    let mut seeds = fixture_files();
    seeds.push(submit.encode_to_vec());
    seeds.push(hello.encode_to_vec());
    seeds.push(b"Bearer flt_0123456789abcdef0123456789abcdef".to_vec());
    seeds
}

fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let damage = (any::<u8>(), any::<usize>(), any::<u8>()).prop_map(fuzz::Damage::draw);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => (prop::sample::select(seeds), prop::collection::vec(damage, 1..16))
            .prop_map(|(seed, d)| fuzz::damaged(seed, &d)),
    ]
}

/// One test only: the cap is global, so nothing else may allocate while it is set.
#[test]
fn every_decoder_survives_hostile_bytes_within_its_allocation_budget() {
    // A target allocating past its budget would not pass unnoticed: a 64 MiB request under a
    // 1 MiB cap is refused (`try_reserve` reports it where a plain allocation would abort).
    let refused = capped(1 << 20, || Vec::<u8>::new().try_reserve(64 << 20).is_err());
    assert!(refused, "the cap is not enforced");

    let cases = u32::try_from(env("FLOTILLA_FUZZ_CASES", 1_000)).unwrap_or(u32::MAX);
    let seed = env("FLOTILLA_FUZZ_SEED", 14);
    let last_input = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-last-input");
    let strategy = input(seeds());
    for (name, target) in fuzz::TARGETS {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let tag = &name.as_bytes()[..name.len().min(24)];
        seed_bytes[8..8 + tag.len()].copy_from_slice(tag);
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng);
        let largest = std::cell::Cell::new(0);
        let result = runner.run(&strategy, |bytes| {
            std::fs::write(&last_input, &bytes).expect("write the input");
            largest.set(largest.get().max(bytes.len()));
            capped(fuzz::allocation_budget(bytes.len()), || target(&bytes));
            Ok(())
        });
        if let Err(e) = result {
            panic!("{name}: {e}");
        }
        let largest = largest.get();
        println!("{name}: {cases} cases, inputs up to {largest} bytes, no panic, within budget");
    }
}
