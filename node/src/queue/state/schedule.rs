//! Periodic schedules in the replicated state: [`Schedules`], the table `AddSchedule`,
//! `RemoveSchedule` and `PauseSchedule` change, and the firing of due slots in `apply`.
//!
//! Rules (deterministic, on the log's time; docs/SCHEDULES.md has examples):
//! - **Slots** are the instants of the schedule's cadence (`schedule/slots.rs`: intervals from
//!   the time the schedule was added, cron expressions in a time zone with the DST rule).
//! - **Firing.** Each schedule keeps its next slot. Whenever an apply advances the clock to
//!   `now` (every entry does, before its commands), each unpaused schedule whose next slot is
//!   `<= now` fires, in order of (next slot, id): a slot `s <= now` is *on time* if `now - s <=
//!   grace`, else *missed*. Every on-time slot enqueues one task (the schedule's task, keyed
//!   [`schedule_key`]`(id, s)`, created at `now`) in slot order; missed slots enqueue nothing
//!   under [`CatchUp::Skip`], and one task together, keyed by the first of them, under
//!   [`CatchUp::Once`]. The next slot becomes the first slot after `now`. So a slot enqueues
//!   at most once (its schedule's next slot only moves forward, and its key is taken), never
//!   before its time (only an apply at `now >= s` fires it), and whichever leader stamps the
//!   entries: the rule reads the log's time and the replicated state only.
//! - **AddSchedule** checks the spec ([`ScheduleRefusal`]) and the bounds ([`MAX_SCHEDULES`],
//!   [`MAX_SCHEDULES_TOTAL_BYTES`]). A new name gets the next id and its first slot after
//!   `now` (an interval counts from `now`). The same name with the same spec changes nothing
//!   (`Unchanged`); with another spec it is refused unless `replace`, which keeps the id and the
//!   paused flag, and counts slots afresh from `now`.
//! - **PauseSchedule** stops firing (slots that pass while paused are not run);
//!   un-pausing takes the first slot after `now`. **RemoveSchedule** forgets the schedule; tasks
//!   it enqueued stay.
//!
//! Serialized as `(next_id, schedules by id)`; the name index, the due set and the byte count
//! are derived and rebuilt on load.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::ApplyEffects;
use super::QueueState;
use crate::queue::command::AddOutcome;
use crate::queue::command::CatchUp;
use crate::queue::command::MAX_GRACE_MS;
use crate::queue::command::MAX_SCHEDULE_BYTES;
use crate::queue::command::MAX_SCHEDULE_NAME_LEN;
use crate::queue::command::MAX_SCHEDULES;
use crate::queue::command::MAX_SCHEDULES_TOTAL_BYTES;
use crate::queue::command::MIN_GRACE_MS;
use crate::queue::command::ScheduleAdded;
use crate::queue::command::ScheduleId;
use crate::queue::command::ScheduleInfo;
use crate::queue::command::ScheduleRefusal;
use crate::queue::command::ScheduleSpec;
use crate::queue::command::TaskSpec;
use crate::queue::command::UnixMs;
use crate::queue::command::schedule_key;

pub mod slots;
#[cfg(test)]
mod tests;

pub use slots::Slots;

/// One stored schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Schedule {
    spec: ScheduleSpec,
    paused: bool,
    /// Added or last replaced: an interval's anchor.
    created_ms: UnixMs,
    /// The first slot not yet handled; `None` when paused or when no slot follows.
    next_ms: Option<UnixMs>,
    last_slot_ms: Option<UnixMs>,
    last_task: Option<u64>,
    fired: u64,
    outages: u64,
}

/// What one firing of a schedule enqueues: the slots, each its own task.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Firing {
    /// Slots to enqueue a task for, in order (a catch-up run first, keyed by its first slot).
    pub slots: Vec<UnixMs>,
    /// Whether slots were missed (passed more than the grace ago).
    pub missed: bool,
    /// The next slot after `now`.
    pub next: Option<UnixMs>,
}

/// The rule of one firing (see the module docs): `first` is the schedule's next slot (`<=
/// now`).
pub fn firing(slots: &Slots, first: UnixMs, now: UnixMs, grace_ms: u64, catch_up: CatchUp) -> Firing {
    let on_time_from = now.saturating_sub(grace_ms);
    let mut out = Firing::default();
    let mut slot = Some(first);
    if first < on_time_from {
        out.missed = true;
        if catch_up == CatchUp::Once {
            out.slots.push(first);
        }
        slot = slots.first_from(on_time_from);
    }
    while let Some(s) = slot.filter(|s| *s <= now) {
        out.slots.push(s);
        slot = slots.next_after(s);
    }
    out.next = slot;
    out
}

/// The schedule table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedules {
    next_id: ScheduleId,
    by_id: BTreeMap<ScheduleId, Schedule>,
    /// Derived: name → id.
    names: BTreeMap<String, ScheduleId>,
    /// Derived: `(next slot, id)` of every unpaused schedule that has one.
    due: BTreeSet<(UnixMs, ScheduleId)>,
    /// Derived: the sum of [`ScheduleSpec::size`].
    bytes: u64,
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            next_id: 1,
            by_id: BTreeMap::new(),
            names: BTreeMap::new(),
            due: BTreeSet::new(),
            bytes: 0,
        }
    }
}

/// Why a scheduled task's options are refused, if they are.
fn check_task(task: &TaskSpec) -> Result<(), ScheduleRefusal> {
    let option = if task.eta_ms.is_some() {
        "eta"
    } else if task.countdown_ms.is_some() {
        "countdown"
    } else if task.idempotency_key.is_some() {
        "idempotency key"
    } else {
        return Ok(());
    };
    Err(ScheduleRefusal::TaskOption {
        option: option.into(),
    })
}

/// Why `spec` cannot be a schedule at `now`, whatever the table holds; else its slots.
pub fn check_spec(spec: &ScheduleSpec, now: UnixMs) -> Result<Slots, ScheduleRefusal> {
    if spec.name.is_empty() || spec.name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(ScheduleRefusal::BadName { len: spec.name.len() });
    }
    if !(MIN_GRACE_MS..=MAX_GRACE_MS).contains(&spec.grace_ms) {
        return Err(ScheduleRefusal::BadGrace {
            grace_ms: spec.grace_ms,
        });
    }
    check_task(&spec.task)?;
    let size = spec.size();
    if size > MAX_SCHEDULE_BYTES {
        return Err(ScheduleRefusal::TooLarge { size });
    }
    let slots = Slots::new(&spec.cadence, now)?;
    if slots.next_after(now).is_none()
        && let crate::queue::command::Cadence::Cron { expr, tz } = &spec.cadence
    {
        return Err(ScheduleRefusal::NoSlot {
            expr: expr.clone(),
            tz: tz.clone(),
        });
    }
    Ok(slots)
}

impl Schedule {
    fn slots(&self) -> Option<Slots> {
        // Checked when added: cannot fail for a stored spec of this build.
        Slots::new(&self.spec.cadence, self.created_ms).ok()
    }

    fn info(&self, id: ScheduleId) -> ScheduleInfo {
        ScheduleInfo {
            id,
            spec: self.spec.clone(),
            paused: self.paused,
            created_ms: self.created_ms,
            next_ms: self.next_ms,
            last_slot_ms: self.last_slot_ms,
            last_task: self.last_task,
            fired: self.fired,
            outages: self.outages,
        }
    }
}

impl Schedules {
    /// No schedule was ever added (the state still fits the snapshot format before schedules).
    pub fn is_pristine(&self) -> bool {
        self.next_id == 1 && self.by_id.is_empty()
    }

    /// Number of schedules.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is no schedule.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every schedule, by name.
    pub fn list(&self) -> Vec<ScheduleInfo> {
        self.names
            .values()
            .filter_map(|id| self.by_id.get(id).map(|s| s.info(*id)))
            .collect()
    }

    /// The schedule named `name`.
    pub fn get(&self, name: &str) -> Option<ScheduleInfo> {
        let id = *self.names.get(name)?;
        self.by_id.get(&id).map(|s| s.info(id))
    }

    /// The earliest next slot of an unpaused schedule.
    pub fn next_due_ms(&self) -> Option<UnixMs> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Why `AddSchedule { spec, replace }` would be refused at `now`, if it would.
    pub fn check_add(&self, spec: &ScheduleSpec, replace: bool, now: UnixMs) -> Result<(), ScheduleRefusal> {
        self.admit(spec, replace, now).map(|_| ())
    }

    /// The checks of an add; the existing schedule of that name, if any, and the new slots.
    fn admit(
        &self,
        spec: &ScheduleSpec,
        replace: bool,
        now: UnixMs,
    ) -> Result<(Option<ScheduleId>, Slots), ScheduleRefusal> {
        let slots = check_spec(spec, now)?;
        let existing = self.names.get(&spec.name).copied();
        let old_size = match existing.and_then(|id| self.by_id.get(&id)) {
            Some(old) if old.spec == *spec => return Ok((existing, slots)),
            Some(_) if !replace => {
                return Err(ScheduleRefusal::Exists {
                    name: spec.name.clone(),
                });
            }
            Some(old) => old.spec.size() as u64,
            None if self.by_id.len() >= MAX_SCHEDULES => return Err(ScheduleRefusal::Full),
            None => 0,
        };
        if self.bytes.saturating_sub(old_size) + spec.size() as u64 > MAX_SCHEDULES_TOTAL_BYTES {
            return Err(ScheduleRefusal::Full);
        }
        Ok((existing, slots))
    }

    pub(super) fn add(
        &mut self,
        spec: &ScheduleSpec,
        replace: bool,
        now: UnixMs,
    ) -> Result<ScheduleAdded, ScheduleRefusal> {
        let (existing, slots) = self.admit(spec, replace, now)?;
        if let Some(id) = existing
            && let Some(old) = self.by_id.get(&id)
            && old.spec == *spec
        {
            return Ok(ScheduleAdded {
                id,
                outcome: AddOutcome::Unchanged,
                next_ms: old.next_ms,
            });
        }
        let (id, outcome, paused) = match existing.and_then(|id| self.by_id.remove(&id).map(|s| (id, s))) {
            Some((id, old)) => {
                self.unlink(id, &old);
                (id, AddOutcome::Replaced, old.paused)
            }
            None => {
                let id = self.next_id;
                // Unreachable in practice (2^64 schedules); saturating keeps apply total.
                self.next_id = self.next_id.saturating_add(1);
                (id, AddOutcome::Added, false)
            }
        };
        let schedule = Schedule {
            spec: spec.clone(),
            paused,
            created_ms: now,
            next_ms: if paused { None } else { slots.next_after(now) },
            last_slot_ms: None,
            last_task: None,
            fired: 0,
            outages: 0,
        };
        let next_ms = schedule.next_ms;
        self.link(id, &schedule);
        self.by_id.insert(id, schedule);
        Ok(ScheduleAdded { id, outcome, next_ms })
    }

    /// Remove the schedule named `name`; whether there was one.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        let Some(id) = self.names.get(name).copied() else {
            return false;
        };
        let Some(old) = self.by_id.remove(&id) else {
            return false;
        };
        self.unlink(id, &old);
        true
    }

    /// Pause or resume the schedule named `name`; whether there was one.
    pub(super) fn pause(&mut self, name: &str, paused: bool, now: UnixMs) -> bool {
        let Some(id) = self.names.get(name).copied() else {
            return false;
        };
        let Some(mut s) = self.by_id.remove(&id) else {
            return false;
        };
        if s.paused != paused {
            self.unlink(id, &s);
            s.paused = paused;
            s.next_ms = if paused {
                None
            } else {
                s.slots().and_then(|slots| slots.next_after(now))
            };
            self.link(id, &s);
        }
        self.by_id.insert(id, s);
        true
    }

    /// Index `s` (stored under `id`) in the derived structures.
    fn link(&mut self, id: ScheduleId, s: &Schedule) {
        self.names.insert(s.spec.name.clone(), id);
        if let Some(next) = s.next_ms.filter(|_| !s.paused) {
            self.due.insert((next, id));
        }
        self.bytes += s.spec.size() as u64;
    }

    fn unlink(&mut self, id: ScheduleId, s: &Schedule) {
        self.names.remove(&s.spec.name);
        if let Some(next) = s.next_ms {
            self.due.remove(&(next, id));
        }
        self.bytes = self.bytes.saturating_sub(s.spec.size() as u64);
    }

    /// The first schedule due by `now`: its id, its firing and the task it enqueues. Moves its
    /// next slot past `now` (and so out of the due set up to `now`).
    fn take_due(&mut self, now: UnixMs) -> Option<(ScheduleId, Firing, TaskSpec)> {
        let now = if crate::bugs::active(crate::bugs::Bug::ScheduleFiresEarly) {
            now.saturating_add(1_000)
        } else {
            now
        };
        let &(first, id) = self.due.first().filter(|(at, _)| *at <= now)?;
        self.due.pop_first();
        let s = self.by_id.get_mut(&id)?;
        let fire = match s.slots() {
            Some(slots) => firing(&slots, first, now, s.spec.grace_ms, s.spec.catch_up),
            None => Firing::default(),
        };
        s.next_ms = fire.next;
        s.outages += u64::from(fire.missed);
        if let Some(next) = fire.next {
            self.due.insert((next, id));
        }
        Some((id, fire, s.spec.task.clone()))
    }

    /// Record that schedule `id` enqueued (or found enqueued) `task` for `slot`.
    fn fired(&mut self, id: ScheduleId, slot: UnixMs, task: u64) {
        if let Some(s) = self.by_id.get_mut(&id) {
            s.fired += 1;
            s.last_slot_ms = Some(slot);
            s.last_task = Some(task);
        }
    }

    /// Rebuild the derived structures (after loading).
    fn rebuilt(next_id: ScheduleId, by_id: BTreeMap<ScheduleId, Schedule>) -> Self {
        let mut out = Schedules {
            next_id,
            ..Schedules::default()
        };
        for (id, s) in &by_id {
            out.link(*id, s);
        }
        out.by_id = by_id;
        out
    }

    /// That the derived structures agree with the table.
    pub(super) fn check(&self) -> Result<(), String> {
        let rebuilt = Schedules::rebuilt(self.next_id, self.by_id.clone());
        if rebuilt != *self {
            return Err("the schedules' name index, due set or byte count disagree with the table".into());
        }
        if self.by_id.keys().any(|id| *id == 0 || *id >= self.next_id) {
            return Err("a schedule id outside 1..next_id".into());
        }
        if self.by_id.len() != self.names.len() {
            return Err("two schedules share a name".into());
        }
        if self.by_id.values().any(|s| s.paused && s.next_ms.is_some()) {
            return Err("a paused schedule has a next slot".into());
        }
        Ok(())
    }
}

impl QueueState {
    /// Fire every schedule due by `now` (see the module docs). Part of advancing the clock.
    pub(super) fn fire_schedules(&mut self, effects: &mut ApplyEffects) {
        let now = self.now_ms;
        // Each turn moves one schedule's next slot past `now`, so this ends.
        while let Some((id, fire, mut task)) = self.schedules.take_due(now) {
            for slot in fire.slots {
                task.idempotency_key = Some(schedule_key(id, slot));
                let submitted = self.submit(&task, effects);
                self.schedules.fired(id, slot, submitted.id);
            }
        }
    }

    /// The schedules.
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }
}

#[derive(Serialize)]
struct SchedulesRef<'a> {
    next_id: ScheduleId,
    by_id: &'a BTreeMap<ScheduleId, Schedule>,
}

#[derive(Deserialize)]
struct SchedulesOwned {
    next_id: ScheduleId,
    by_id: BTreeMap<ScheduleId, Schedule>,
}

impl Serialize for Schedules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SchedulesRef {
            next_id: self.next_id,
            by_id: &self.by_id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Schedules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = SchedulesOwned::deserialize(d)?;
        Ok(Schedules::rebuilt(o.next_id, o.by_id))
    }
}
