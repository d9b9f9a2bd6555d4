//! The slots of a [`Cadence`]: the instants (ms since the Unix epoch) at which a schedule is
//! due. Pure and deterministic: a function of the cadence, its anchor and the instant asked
//! about, with the time zone rules compiled into the build (jiff's bundled copy of the IANA
//! database, never the host's), so every replica computes the same slots.
//!
//! # The rule (docs/SCHEDULES.md)
//!
//! - **Interval** `every`, anchored at `anchor` (when the schedule was added): the slots are
//!   `anchor + k·every` for `k ≥ 1`.
//! - **Cron** `expr` in zone `tz`: every local (wall clock) date-time that `expr` matches,
//!   to the second, is turned into one instant:
//!   - a local time that occurs once is that instant;
//!   - a local time that occurs twice (clocks go back) is its **first** instant: the
//!     repeated hour runs once, at its first pass;
//!   - a local time that does not exist (clocks go forward) is the **next valid instant**:
//!     the instant the gap ends (a 02:30 that was skipped runs at 03:00).
//!
//!   The slots are the set of those instants, so several local times that become the same
//!   instant (02:00, 02:30 and 03:00 on a spring-forward night) are one slot. The mapping
//!   from local times to instants never goes backwards, so slots come in the order of the local
//!   times that make them.
//!
//! Cron expressions are parsed and matched by croner on civil (zone-less) date-times: 5
//! fields (minute hour day-of-month month day-of-week), 6 with seconds first, 7 with a year
//! last, and nicknames such as `@daily`. Time zones are jiff's.

use std::str::FromStr;
use std::sync::OnceLock;

use croner::Cron;
use jiff::SignedDuration;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::AmbiguousOffset;
use jiff::tz::TimeZone;
use jiff::tz::TimeZoneDatabase;

use crate::queue::command::Cadence;
use crate::queue::command::MIN_INTERVAL_MS;
use crate::queue::command::ScheduleRefusal;
use crate::queue::command::UnixMs;

/// How many cron matches one search looks at before it gives up (a bound that keeps `apply`
/// total; a search only needs more than one when it starts inside a repeated hour).
const MAX_MATCHES_PER_SEARCH: usize = 1_000;

/// The time zone database compiled into this build: the same on every node of a build,
/// whatever the host has in `/usr/share/zoneinfo`.
fn tz_db() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// The zone named `name` (empty: UTC).
fn time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name == "UTC" {
        return Some(TimeZone::UTC);
    }
    tz_db().get(name).ok()
}

/// A cadence ready to compute slots.
#[derive(Clone, Debug)]
pub enum Slots {
    Cron { cron: Box<Cron>, tz: TimeZone },
    Interval { anchor: UnixMs, every_ms: u64 },
}

impl Slots {
    /// Parse `cadence` (an interval counts from `anchor`), or say why it cannot be.
    pub fn new(cadence: &Cadence, anchor: UnixMs) -> Result<Slots, ScheduleRefusal> {
        match cadence {
            Cadence::Interval { every_ms } => {
                if *every_ms < MIN_INTERVAL_MS {
                    return Err(ScheduleRefusal::IntervalTooShort { every_ms: *every_ms });
                }
                Ok(Slots::Interval {
                    anchor,
                    every_ms: *every_ms,
                })
            }
            Cadence::Cron { expr, tz } => {
                let cron = Cron::from_str(expr).map_err(|e| ScheduleRefusal::BadCron {
                    expr: expr.clone(),
                    why: e.to_string(),
                })?;
                let tz = time_zone(tz).ok_or_else(|| ScheduleRefusal::BadTimeZone { tz: tz.clone() })?;
                Ok(Slots::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
        }
    }

    /// The first slot strictly after `t`; `None` if there is none (a cron expression that never
    /// matches again, or the end of representable time).
    pub fn next_after(&self, t: UnixMs) -> Option<UnixMs> {
        match self {
            Slots::Interval { anchor, every_ms } => {
                let k = if t < *anchor {
                    1
                } else {
                    (t - anchor) / every_ms + 1
                };
                anchor.checked_add(k.checked_mul(*every_ms)?)
            }
            Slots::Cron { cron, tz } => cron_next_after(cron, tz, t),
        }
    }

    /// The first slot at or after `t`.
    pub fn first_from(&self, t: UnixMs) -> Option<UnixMs> {
        match t.checked_sub(1) {
            Some(before) => self.next_after(before),
            // Slots are instants after the epoch; 0 itself is never one of an interval, and a
            // cron slot at exactly 0 is not worth a special case.
            None => self.next_after(0),
        }
    }

    /// The next `n` slots after `t`.
    pub fn upcoming(&self, t: UnixMs, n: usize) -> Vec<UnixMs> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            let Some(next) = self.next_after(at) else { break };
            out.push(next);
            at = next;
        }
        out
    }
}

fn to_ms(ts: Timestamp) -> Option<UnixMs> {
    u64::try_from(ts.as_millisecond()).ok()
}

/// The instant a matched local time `civil` stands for in `tz` (the rule in the module docs).
fn instant_of(tz: &TimeZone, civil: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => ambiguous.earlier().ok(),
        AmbiguousOffset::Gap { .. } => {
            // `earlier` reads the local time with the offset after the gap: an instant before
            // the transition. The transition after it is where the gap ends.
            let before = ambiguous.earlier().ok()?;
            tz.following(before).next().map(|tr| tr.timestamp())
        }
    }
}

/// The local time from which a search for the first slot after instant `t` starts: the
/// local time at `t`, unless `t` falls in the second pass of a repeated hour. There, every
/// local time up to the end of the repeated range already had its slot (at its first pass,
/// before `t`), so the search starts at the last local time before the clocks went back.
fn search_start(tz: &TimeZone, t: Timestamp) -> DateTime {
    let here = tz.to_datetime(t);
    let Some(after_t) = t.checked_add(SignedDuration::from_millis(1)).ok() else {
        return here;
    };
    let Some(last) = tz.preceding(after_t).next() else {
        return here;
    };
    let Ok(just_before) = last.timestamp().checked_sub(SignedDuration::from_millis(1)) else {
        return here;
    };
    here.max(tz.to_datetime(just_before))
}

fn cron_next_after(cron: &Cron, tz: &TimeZone, t: UnixMs) -> Option<UnixMs> {
    let t_ts = Timestamp::from_millisecond(i64::try_from(t).ok()?).ok()?;
    let mut civil = search_start(tz, t_ts);
    for _ in 0..MAX_MATCHES_PER_SEARCH {
        civil = cron.find_next_occurrence(&civil, false).ok()?;
        let slot = instant_of(tz, civil)?;
        if slot > t_ts {
            return to_ms(slot);
        }
    }
    None
}

#[cfg(test)]
mod tests;
