//! Property tests of flow control: random workloads under random limits (set from the start),
//! with leases, standing capacity, completions that succeed, fail and retry, releases, lease
//! expiries and time jumps. Checked after every entry (besides the invariants `H` checks):
//! no limit ever has more tasks leased than its concurrency, and no rate grants more than its
//! bucket allows over any span of log time. And fairness: with no limits, a lane with pending
//! tasks waits at most one grant per other lane.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const NAMES: [&str; 2] = ["a", "b"];
const QUEUES: [&str; 2] = ["q1", "q2"];
const KEYS: [Option<&str>; 3] = [None, Some("k1"), Some("k2")];

#[derive(Clone, Debug)]
enum Op {
    Submit(Vec<(usize, usize, usize, u8)>),
    Lease {
        max: u32,
        standing: bool,
    },
    /// Complete the i-th leased task (mod their number): success, retryable or fatal failure.
    Complete(usize, u8),
    Release(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((0..2usize, 0..2usize, 0..3usize, 0..3u8), 1..6).prop_map(Op::Submit),
        3 => (0..5u32, any::<bool>()).prop_map(|(max, standing)| Op::Lease { max, standing }),
        2 => (any::<usize>(), 0..3u8).prop_map(|(i, k)| Op::Complete(i, k)),
        1 => any::<usize>().prop_map(Op::Release),
        2 => prop_oneof![0..50u64, 100..1_500u64].prop_map(Op::Advance),
    ]
}

fn rule() -> impl Strategy<Value = Option<LimitRule>> {
    let rate = prop::option::of((1..4u32, prop_oneof![Just(100u64), Just(1_000)]))
        .prop_map(|r| r.map(|(tokens, per_ms)| Rate { tokens, per_ms }));
    prop::option::of((rate, prop::option::of(0..3u32)))
        .prop_map(|r| r.map(|(rate, concurrency)| LimitRule { rate, concurrency }))
        .prop_filter("a rule needs a part", |r| r.is_none_or(|r| r.check().is_ok()))
}

/// The scope a limit covers, as a test on (name, queue, key).
fn covers(scope: &LimitScope, name: &str, queue: &str, key: Option<&str>, any_key_ruled: &[&str]) -> bool {
    match scope {
        LimitScope::Queue(q) => q == queue,
        LimitScope::Task(n) => n == name,
        LimitScope::Key(k) => key == Some(k.as_str()),
        LimitScope::AnyKey => key.is_some_and(|k| !any_key_ruled.contains(&k)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn limits_hold_through_expiry_retry_and_release(
        rules in prop::collection::vec((0..7usize, rule()), 0..5),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let scopes = [
            LimitScope::Queue("q1".into()),
            LimitScope::Queue("q2".into()),
            LimitScope::Task("a".into()),
            LimitScope::Task("b".into()),
            LimitScope::Key("k1".into()),
            LimitScope::Key("k2".into()),
            LimitScope::AnyKey,
        ];
        let mut h = H::default();
        let mut now = 1_000u64;
        let mut limits: BTreeMap<LimitScope, LimitRule> = BTreeMap::new();
        for (i, r) in rules {
            let Some(mut r) = r else { continue };
            if scopes[i] == LimitScope::AnyKey {
                r.rate = None;
                if r.concurrency.is_none() { continue; }
            }
            let cmd = Command::SetLimit { scope: scopes[i].clone(), rule: r };
            prop_assert_eq!(h.apply(now, vec![cmd]).0, vec![Response::LimitSet(Ok(()))]);
            limits.insert(scopes[i].clone(), r);
        }
        let ruled_keys: Vec<&str> = limits.keys().filter_map(|s| match s {
            LimitScope::Key(k) if limits[s].concurrency.is_some() => Some(k.as_str()),
            _ => None,
        }).collect();
        // (name, queue, key) of every task by id, and every grant's time per scope.
        let mut tasks: BTreeMap<TaskId, (&str, &str, Option<&str>)> = BTreeMap::new();
        let mut grants: BTreeMap<LimitScope, Vec<u64>> = BTreeMap::new();
        let mut leased: Vec<LeaseRef> = Vec::new();
        for op in ops {
            let cmd = match op {
                Op::Submit(input) => {
                    let first = h.s.next_id;
                    let specs: Vec<TaskSpec> = input.iter().enumerate().map(|(i, &(n, q, k, retries))| {
                        tasks.insert(first + i as u64, (NAMES[n], QUEUES[q], KEYS[k]));
                        TaskSpec {
                            queue: QUEUES[q].into(),
                            max_retries: u32::from(retries),
                            concurrency_key: KEYS[k].map(String::from),
                            ..spec(NAMES[n])
                        }
                    }).collect();
                    Command::Submit { tasks: specs.into() }
                }
                Op::Lease { max, standing } => Command::Lease {
                    pool: "w".into(),
                    queues: vec![],
                    max,
                    lease_ms: 500,
                    standing_ticket: standing.then_some(1),
                },
                Op::Complete(i, kind) if !leased.is_empty() => Command::Complete {
                    pool: "w".into(),
                    completions: vec![Completion {
                        lease: leased[i % leased.len()],
                        outcome: match kind {
                            0 => Outcome::Success(Default::default()),
                            k => Outcome::Failure { error: "x".into(), retry: k == 1 },
                        },
                    }],
                },
                Op::Release(i) if !leased.is_empty() => Command::Release {
                    pool: "w".into(),
                    leases: vec![leased[i % leased.len()]],
                },
                Op::Advance(ms) => {
                    now += ms;
                    Command::Tick
                }
                Op::Complete(..) | Op::Release(_) => Command::Tick,
            };
            let (responses, fx) = h.apply(now, vec![cmd]);
            let mut granted: Vec<LeaseRef> = match &responses[0] {
                Response::Leased(g) => g.iter().map(|g| g.lease).collect(),
                _ => Vec::new(),
            };
            granted.extend(fx.pools.values().flat_map(|w| w.grants.iter().map(|g| g.lease)));
            for g in &granted {
                let (name, queue, key) = tasks[&g.task];
                for scope in limits.keys() {
                    if covers(scope, name, queue, key, &ruled_keys) {
                        grants.entry(scope.clone()).or_default().push(now);
                    }
                }
            }
            leased = tasks
                .keys()
                .filter_map(|id| h.s.current_lease(*id).map(|(l, _, _)| l))
                .collect();
            // Never more leased than a concurrency.
            for (scope, rule) in &limits {
                let Some(c) = rule.concurrency else { continue };
                if matches!(scope, LimitScope::AnyKey) {
                    for key in ["k1", "k2"].into_iter().filter(|k| !ruled_keys.contains(k)) {
                        let running = leased.iter().filter(|l| tasks[&l.task].2 == Some(key)).count();
                        prop_assert!(running <= c as usize, "key {} runs {} over key:* {}", key, running, c);
                    }
                    continue;
                }
                let running = leased.iter().filter(|l| {
                    let (n, q, k) = tasks[&l.task];
                    covers(scope, n, q, k, &ruled_keys)
                }).count();
                prop_assert!(running <= c as usize, "{} runs {} over {}", scope, running, c);
            }
        }
        // No rate ever granted more than its bucket: over any span [a, b] of log time,
        // at most tokens + (b - a) * tokens / per_ms.
        for (scope, times) in &grants {
            let Some(rate) = limits[scope].rate else { continue };
            for (i, a) in times.iter().enumerate() {
                for (j, b) in times.iter().enumerate().skip(i) {
                    let allowed = u64::from(rate.tokens) + (b - a) * u64::from(rate.tokens) / rate.per_ms;
                    prop_assert!((j - i + 1) as u64 <= allowed, "{} granted {} in [{}, {}]", scope, j - i + 1, a, b);
                }
            }
        }
    }

    #[test]
    fn every_lane_is_served_within_one_grant_per_other_lane(
        batches in prop::collection::vec((prop::collection::vec(0..4usize, 0..30), 1..6usize), 1..20),
    ) {
        // Lanes: the plain tasks and three keys.
        let keys = [None, Some("x"), Some("y"), Some("z")];
        let mut h = H::default();
        let mut key_of: BTreeMap<TaskId, usize> = BTreeMap::new();
        let mut pending = [0usize; 4];
        // Grants to other lanes since each lane's last grant (or since it had pending tasks).
        let mut waited = [0usize; 4];
        for (submits, leases) in batches {
            let specs: Vec<TaskSpec> = submits.iter().map(|&k| TaskSpec {
                concurrency_key: keys[k].map(String::from),
                ..spec("t")
            }).collect();
            for (id, &k) in h.submit(0, specs).into_iter().zip(&submits) {
                key_of.insert(id, k);
                pending[k] += 1;
            }
            for _ in 0..leases {
                let Some(g) = h.lease(0, 1, 1_000_000).pop() else { break };
                let k = key_of[&g.task];
                pending[k] -= 1;
                waited[k] = 0;
                for other in (0..4).filter(|o| *o != k) {
                    if pending[other] > 0 {
                        waited[other] += 1;
                        prop_assert!(waited[other] <= 3, "lane {} waited {} grants", other, waited[other]);
                    } else {
                        waited[other] = 0;
                    }
                }
            }
        }
    }
}
