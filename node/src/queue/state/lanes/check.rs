//! The invariant of the lanes (`check_flow`), apart from the rules it checks.

use std::collections::BTreeMap;

use super::super::Index;
use super::super::Task;
use super::super::TaskState;
use super::Holder;
use crate::queue::command::TaskId;

impl Index {
    /// Lanes agree with the tasks: `pending` holds each pending laned task once, running counts
    /// match `leased` (tasks as `(id, task)`), each lane is in exactly one place.
    pub(in crate::queue::state) fn check_flow<'a>(
        &self,
        tasks: impl Iterator<Item = (TaskId, &'a Task)>,
    ) -> Result<(), String> {
        let flow = &self.flow;
        let lanes = &flow.lanes;
        let mut laned = 0u64;
        let mut key_refs: BTreeMap<u64, u64> = BTreeMap::new();
        let mut key_running: BTreeMap<u64, u64> = BTreeMap::new();
        let mut name_running: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, t) in tasks {
            if let Some(k) = lanes.task_keys.get(&id) {
                *key_refs.entry(*k).or_default() += 1;
                if t.state == TaskState::Leased {
                    *key_running.entry(*k).or_default() += 1;
                }
            }
            let name = flow.limited_names.get(&t.name);
            if t.state == TaskState::Leased
                && let Some(n) = name
            {
                *name_running.entry(n).or_default() += 1;
            }
            if t.state == TaskState::Pending
                && let Some(key) = flow.lane_key(id, t)
            {
                laned += 1;
                let held = lanes
                    .lane_ids
                    .get(&key)
                    .and_then(|l| lanes.lanes.get(l))
                    .is_some_and(|l| l.pending.contains(t.priority, id));
                if !held {
                    return Err(format!("task {id} is pending but not in its lane {key:?}"));
                }
            }
        }
        let in_lanes: u64 = lanes.lanes.values().map(|l| l.pending.len()).sum();
        if in_lanes != laned {
            return Err(format!("lanes hold {in_lanes} tasks, {laned} are laned"));
        }
        for (k, s) in &lanes.keys {
            let (refs, running) = (key_refs.get(k).copied(), key_running.get(k).copied().unwrap_or(0));
            if refs != Some(s.refs) || running != s.running || lanes.key_ids.get(&s.name) != Some(k) {
                return Err(format!(
                    "key {:?}: refs {} running {} vs tasks {refs:?} {running}",
                    s.name, s.refs, s.running
                ));
            }
        }
        if lanes.key_ids.len() != lanes.keys.len() {
            return Err("key names and keys disagree".into());
        }
        for (name, r) in &flow.task_rules {
            let want = name_running.get(&**name).copied().unwrap_or(0);
            let marked = flow.limited_names.values().any(|n| n == name);
            if r.running != if marked { want } else { 0 } {
                return Err(format!("task rule {name}: running {} vs {want}", r.running));
            }
        }
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for (lid, l) in &lanes.lanes {
            l.pending.check()?;
            if l.pending.is_empty() || lanes.lane_ids.get(&l.key) != Some(lid) {
                return Err(format!("lane {lid} is empty or not indexed"));
            }
            *counts.entry(l.key.0).or_default() += 1;
            let in_ring = lanes
                .rings
                .get(&l.key.0)
                .is_some_and(|r| r.lanes.contains(&(l.turn, *lid)));
            let in_park = match &l.parked {
                None => false,
                Some(Holder::Task(n)) => flow.task_rules.get(n).is_some_and(|r| r.parked.contains(lid)),
                Some(Holder::KeyRule(n)) => flow.key_rules.get(n).is_some_and(|r| r.parked.contains(lid)),
                Some(Holder::Key(k)) => lanes.keys.get(k).is_some_and(|s| s.parked.contains(lid)),
                Some(Holder::Queue(_)) => return Err(format!("lane {lid} parked on a queue")),
            };
            if in_ring == l.parked.is_some() || in_park != l.parked.is_some() {
                return Err(format!("lane {lid} is not in exactly one place"));
            }
            if l.turn >= lanes.next_turn {
                return Err(format!("lane {lid} has a turn from the future"));
            }
        }
        let parked: usize = flow.task_rules.values().map(|r| r.parked.len()).sum::<usize>()
            + flow.key_rules.values().map(|r| r.parked.len()).sum::<usize>()
            + lanes.keys.values().map(|s| s.parked.len()).sum::<usize>();
        let ringed: usize = lanes.rings.values().map(|r| r.lanes.len()).sum();
        if parked + ringed != lanes.lanes.len() {
            return Err(format!(
                "{parked} parked + {ringed} in rings vs {} lanes",
                lanes.lanes.len()
            ));
        }
        for (q, r) in &lanes.rings {
            if counts.get(q).copied() != Some(r.count) {
                return Err(format!("ring of queue {q} counts {} lanes", r.count));
            }
        }
        if counts.len() != lanes.rings.len() {
            return Err("a queue with lanes has no ring".into());
        }
        for (slot, name) in &flow.limited_names {
            if !flow.task_rules.contains_key(name) {
                return Err(format!(
                    "task name slot {slot} marked for {name}, which has no rule"
                ));
            }
        }
        for (slot, name) in &flow.limited_queues {
            if !flow.queue_rules.contains_key(name) || self.queue_names.name(*slot) != &**name {
                return Err(format!("queue slot {slot} marked for {name}"));
            }
        }
        Ok(())
    }
}
