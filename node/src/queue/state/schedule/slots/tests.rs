//! The slot rule in real zones (DST both ways in Europe/Berlin and America/New_York), and
//! against an independent oracle: every matching local minute of a window, each mapped by
//! walking forward out of a gap.

use std::collections::BTreeSet;
use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::AmbiguousOffset;
use proptest::prelude::*;

use super::*;

/// `s` (RFC 3339, UTC) in ms.
fn at(s: &str) -> UnixMs {
    let ts: Timestamp = s.parse().expect("timestamp");
    ts.as_millisecond() as UnixMs
}

fn cron(expr: &str, tz: &str) -> Slots {
    Slots::new(
        &Cadence::Cron {
            expr: expr.into(),
            tz: tz.into(),
        },
        0,
    )
    .expect("valid cadence")
}

/// The slots after `from`, as UTC strings.
fn after(slots: &Slots, from: &str, n: usize) -> Vec<String> {
    slots
        .upcoming(at(from), n)
        .into_iter()
        .map(|ms| Timestamp::from_millisecond(ms as i64).unwrap().to_string())
        .collect()
}

#[test]
fn a_daily_time_that_does_not_exist_runs_when_the_gap_ends() {
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00Z); 02:30 does not exist.
    let s = cron("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        after(&s, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST: the first instant after the gap
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ]
    );
    // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00Z).
    let s = cron("30 2 * * *", "America/New_York");
    assert_eq!(
        after(&s, "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
}

#[test]
fn a_daily_time_that_occurs_twice_runs_once_at_its_first_instant() {
    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00Z); 02:30 occurs twice.
    let s = cron("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        after(&s, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00Z); 01:00 occurs twice.
    let s = cron("0 1 * * *", "America/New_York");
    assert_eq!(
        after(&s, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z"]
    );
}

#[test]
fn every_half_hour_across_both_changes() {
    let s = cron("*/30 * * * *", "Europe/Berlin");
    // Spring: 02:00 and 02:30 do not exist; both are 03:00 CEST, one slot with 03:00 itself.
    assert_eq!(
        after(&s, "2026-03-28T23:45:00Z", 4),
        [
            "2026-03-29T00:00:00Z", // 01:00 CET
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:00:00Z", // 02:00, 02:30 (gap) and 03:00 CEST
            "2026-03-29T01:30:00Z", // 03:30 CEST
        ]
    );
    // Autumn: the second pass of 02:00-02:59 runs nothing.
    assert_eq!(
        after(&s, "2026-10-24T23:45:00Z", 4),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T02:00:00Z", // 03:00 CET
            "2026-10-25T02:30:00Z", // 03:30 CET
        ]
    );
}

#[test]
fn a_search_from_inside_the_repeated_hour_skips_its_second_pass() {
    let s = cron("*/30 * * * *", "Europe/Berlin");
    // 02:15 CET (the second pass) and 02:45 CEST (the first): either way 03:00 CET is next.
    assert_eq!(after(&s, "2026-10-25T01:15:00Z", 1), ["2026-10-25T02:00:00Z"]);
    assert_eq!(after(&s, "2026-10-25T00:45:00Z", 1), ["2026-10-25T02:00:00Z"]);
    // Every second in the second pass: still one step to 03:00:00 CET.
    let s = cron("* * * * * *", "Europe/Berlin");
    assert_eq!(
        after(&s, "2026-10-25T01:59:58Z", 2),
        ["2026-10-25T02:00:00Z", "2026-10-25T02:00:01Z"]
    );
    assert_eq!(after(&s, "2026-10-25T01:00:00Z", 1), ["2026-10-25T02:00:00Z"]);
}

#[test]
fn seconds_nicknames_and_utc() {
    let s = cron("*/15 * * * * *", "");
    assert_eq!(
        after(&s, "2026-01-01T00:00:00.500Z", 2),
        ["2026-01-01T00:00:15Z", "2026-01-01T00:00:30Z"]
    );
    let s = cron("@daily", "UTC");
    assert_eq!(after(&s, "2026-01-01T00:00:00Z", 1), ["2026-01-02T00:00:00Z"]);
}

#[test]
fn intervals_count_from_their_anchor() {
    let s = Slots::new(&Cadence::Interval { every_ms: 1_000 }, 10_500).unwrap();
    assert_eq!(s.next_after(0), Some(11_500));
    assert_eq!(s.next_after(10_500), Some(11_500));
    assert_eq!(s.next_after(11_499), Some(11_500));
    assert_eq!(s.next_after(11_500), Some(12_500));
    assert_eq!(s.first_from(11_500), Some(11_500));
    assert_eq!(s.next_after(u64::MAX - 10), None);
}

#[test]
fn bad_cadences_are_refused_by_name() {
    let refuse = |c: Cadence| Slots::new(&c, 0).unwrap_err();
    let cron = |expr: &str, tz: &str| Cadence::Cron {
        expr: expr.into(),
        tz: tz.into(),
    };
    assert!(matches!(
        refuse(cron("61 * * * *", "")),
        ScheduleRefusal::BadCron { .. }
    ));
    assert!(matches!(
        refuse(cron("* * *", "")),
        ScheduleRefusal::BadCron { .. }
    ));
    assert!(matches!(
        refuse(cron("* * * * *", "Mars/Olympus")),
        ScheduleRefusal::BadTimeZone { .. }
    ));
    assert!(matches!(
        refuse(Cadence::Interval { every_ms: 999 }),
        ScheduleRefusal::IntervalTooShort { .. }
    ));
}

/// The oracle: every local minute of `[from, to)` that `expr` matches, each mapped to its
/// instant by the rule written the plain way (a local time in a gap walks forward a minute at
/// a time until it exists; one that occurs twice takes its earlier instant).
fn oracle(expr: &str, tz: &str, from: DateTime, minutes: i64) -> BTreeSet<UnixMs> {
    let cron = Cron::from_str(expr).unwrap();
    let tz = time_zone(tz).unwrap();
    let mut out = BTreeSet::new();
    for m in 0..minutes {
        let civil = from + jiff::Span::new().minutes(m);
        if !cron.is_time_matching(&civil).unwrap() {
            continue;
        }
        let mut c = civil;
        loop {
            let amb = tz.to_ambiguous_timestamp(c);
            if !matches!(amb.offset(), AmbiguousOffset::Gap { .. }) {
                out.insert(amb.earlier().unwrap().as_millisecond() as UnixMs);
                break;
            }
            c += jiff::Span::new().minutes(1);
        }
    }
    out
}

const EXPRS: [&str; 8] = [
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",
    "0,30 1-3 * * *",
    "15 * * * *",
    "0 0 * * 0",
    "45 2 25-31 3,10 *",
    "0 */2 * * *",
];
const ZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
    "Asia/Kolkata",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Around each DST change of 2026 in Berlin and New York (and plain days elsewhere), the
    /// slots are exactly the oracle's instants, in order, none skipped, none twice.
    #[test]
    fn slots_are_the_oracles_instants(
        expr in prop::sample::select(&EXPRS[..]),
        tz in prop::sample::select(&ZONES[..]),
        start in prop::sample::select(&["2026-03-07T20:00", "2026-03-28T20:00", "2026-10-24T20:00", "2026-10-31T20:00", "2026-04-04T20:00"][..]),
    ) {
        let from: DateTime = start.parse().unwrap();
        let expected = oracle(expr, tz, from, 2 * 24 * 60);
        let slots = cron(expr, tz);
        // From just before the window's first local time: its instant (earliest of a fold).
        let begin = time_zone(tz).unwrap().to_ambiguous_timestamp(from).earlier().unwrap().as_millisecond() as UnixMs;
        let end = time_zone(tz).unwrap().to_ambiguous_timestamp(from + jiff::Span::new().hours(47)).earlier().unwrap().as_millisecond() as UnixMs;
        let got: BTreeSet<UnixMs> = slots
            .upcoming(begin - 1, expected.len() + 2)
            .into_iter()
            .filter(|s| *s < end)
            .collect();
        let expected: BTreeSet<UnixMs> = expected.into_iter().filter(|s| *s < end).collect();
        prop_assert_eq!(got, expected);
    }

    /// From any instant, the next slot is later, and any instant before it has the same next
    /// slot (nothing between is skipped).
    #[test]
    fn next_after_is_the_first_slot_after(
        expr in prop::sample::select(&EXPRS[..]),
        tz in prop::sample::select(&ZONES[..]),
        t in at("2026-01-01T00:00:00Z")..at("2027-01-01T00:00:00Z"),
        back in 1u64..3_600_000,
    ) {
        let slots = cron(expr, tz);
        let next = slots.next_after(t).unwrap();
        prop_assert!(next > t);
        let earlier = next.saturating_sub(back).max(t);
        prop_assert_eq!(slots.next_after(earlier), Some(next));
        prop_assert_eq!(slots.first_from(next), Some(next));
    }

    #[test]
    fn interval_slots_are_the_anchors_multiples(anchor in 0u64..1 << 45, every in 1_000u64..1 << 30, t in 0u64..1 << 46) {
        let slots = Slots::new(&Cadence::Interval { every_ms: every }, anchor).unwrap();
        let next = slots.next_after(t).unwrap();
        prop_assert!(next > t && next > anchor);
        prop_assert_eq!((next - anchor) % every, 0);
        prop_assert!(next - every <= t.max(anchor));
    }
}
