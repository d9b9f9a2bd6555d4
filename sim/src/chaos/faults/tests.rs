//! The fault deck: each kind dealt once per deck, draws fixed by the seed and in bounds, and the kinds' names.

use rand::SeedableRng;

use super::*;

#[test]
fn every_deck_deals_each_kind_once() {
    for kinds in [&FaultKind::PROCESS[..], &FaultKind::ALL[..]] {
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut deck = Deck::new(kinds);
            let dealt: Vec<FaultKind> = (0..kinds.len() * 5).map(|_| deck.next(&mut rng)).collect();
            for round in dealt.chunks(kinds.len()) {
                let mut round = round.to_vec();
                round.sort();
                assert_eq!(round, kinds, "{dealt:?}");
            }
        }
    }
}

#[test]
fn draws_depend_on_the_seed_only_and_stay_in_bounds() {
    let max = Duration::from_secs(3);
    let draws = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut deck = Deck::new(&FaultKind::ALL);
        (0..50)
            .map(|_| {
                let d = Draw::new(&mut rng, &mut deck, max);
                (d.gap, d.kind, d.hold, d.at_leader, d.pick, d.aux)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(draws(9), draws(9));
    assert_ne!(draws(9), draws(10));
    for (gap, _, hold, _, _, _) in draws(9) {
        assert!(gap >= Duration::from_millis(GAP_MS.0) && gap <= Duration::from_millis(GAP_MS.1));
        assert!(hold >= Duration::from_millis(MIN_FAULT_MS) && hold <= max);
    }
}

#[test]
fn kinds_have_their_command_line_names_and_classes() {
    let names: Vec<String> = FaultKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "kill",
            "stop",
            "partition",
            "zone-partition",
            "one-way",
            "loss",
            "delay"
        ]
    );
    assert_eq!(FaultKind::Crash.name(), "crash");
    assert!(FaultKind::PROCESS.iter().all(|k| !k.is_network() && k.unseats()));
    assert!(FaultKind::Loss.is_network() && !FaultKind::Loss.unseats());
    assert!(FaultKind::OneWay.is_network() && FaultKind::OneWay.unseats());
}
