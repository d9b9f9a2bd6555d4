//! Flow control: rate and concurrency limits per queue, per task name and per concurrency key,
//! enforced where tasks are granted (`Lease` and standing capacity), on the log's time.
//!
//! # Rules
//!
//! - A **limit** names a scope (`queue:Q`, `task:N`, `key:K`, or `key:*` for every key without
//!   a limit of its own, each key counted apart) and a rule: a **concurrency** (at most C of the
//!   scope's tasks leased at once) and/or a **rate** (a token bucket of `tokens` per `per_ms`,
//!   holding at most `tokens`; a grant takes one). `key:*` takes a concurrency only.
//! - A task is granted only if every limit that covers it allows it: its queue's, its name's,
//!   its key's. One that is not is **held back**: it stays `Pending` (counted as pending in
//!   `stats`), is not leased, and is counted as held by the limit that holds it
//!   ([`QueueState::limits`]).
//! - **Buckets** are integers on the log's clock: a bucket holds `level` in units of
//!   1/`per_ms` token, gains `tokens` units per millisecond up to `tokens × per_ms`, and a grant
//!   takes `per_ms` units. So over any span of W ms a limit grants at most
//!   `tokens + ⌊W × tokens / per_ms⌋` tasks, exactly, with no floats. A new limit starts full;
//!   setting a limit again keeps its bucket's level (capped at the new size).
//! - **Waking.** A task held by a rate waits for the bucket's next token: that time joins
//!   [`QueueState::next_deadline_ms`], so the leader proposes a `Tick` then and the task is
//!   granted to standing capacity or wakes idle pools, with no new submit. A task held by a
//!   concurrency is woken when a task of the same limit leaves `Leased` (completed, failed,
//!   released, expired). Changing or removing a limit wakes everything it held.
//! - **Lanes and fair turns** (`lanes.rs`): the tasks of a queue that carry a concurrency key
//!   or a limited name wait in *lanes*, one per (key, limited name); lanes and the queue's plain
//!   tasks take turns, the one served least recently first, so a burst of one key delays another
//!   key's task by at most one grant. Within a lane (and among plain tasks): priority, then id.
//! - A plain task pays nothing: with no limit set and no keyed task, every hook here is one
//!   emptiness check; a task's key is a side map entry, not a field.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::Index;
use super::QueueState;
use super::lanes::Holder;
use super::lanes::Lanes;
use crate::bugs;
use crate::queue::command::*;

/// A token bucket's state (see the module doc): `level` in 1/`per_ms` tokens, as of `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Bucket {
    level: u64,
    at_ms: UnixMs,
}

fn size(rate: Rate) -> u64 {
    u64::from(rate.tokens).saturating_mul(rate.per_ms)
}

impl Bucket {
    fn full(rate: Rate, now: UnixMs) -> Self {
        Bucket {
            level: size(rate),
            at_ms: now,
        }
    }

    fn level_at(&self, rate: Rate, now: UnixMs) -> u64 {
        let gained = now
            .saturating_sub(self.at_ms)
            .saturating_mul(u64::from(rate.tokens));
        self.level.saturating_add(gained).min(size(rate))
    }

    pub(super) fn has_token(&self, rate: Rate, now: UnixMs) -> bool {
        self.level_at(rate, now) >= rate.per_ms
    }

    /// Take one token if there is one.
    pub(super) fn take(&mut self, rate: Rate, now: UnixMs) -> bool {
        let level = self.level_at(rate, now);
        self.at_ms = self.at_ms.max(now);
        self.level = level;
        if level < rate.per_ms {
            return false;
        }
        self.level = level - rate.per_ms;
        true
    }

    /// The first time at or after `now` at which the bucket holds a token.
    pub(super) fn next_token_ms(&self, rate: Rate, now: UnixMs) -> UnixMs {
        let missing = rate.per_ms.saturating_sub(self.level_at(rate, now));
        now.saturating_add(missing.div_ceil(u64::from(rate.tokens.max(1))))
    }
}

/// One declared limit and what it counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RuleState {
    pub(super) rule: LimitRule,
    pub(super) bucket: Option<Bucket>,
    /// Task rules: tasks of the name leased now. (Queues count in their `QueueData`, keys in
    /// their `KeyState`.)
    pub(super) running: u64,
    /// Lanes held back by this rule.
    pub(super) parked: BTreeSet<u64>,
    /// When a wake of this rule is registered in `Flow::wakes`.
    pub(super) wake_at: Option<UnixMs>,
}

impl RuleState {
    fn new(rule: LimitRule, now: UnixMs) -> Self {
        RuleState {
            rule,
            bucket: rule.rate.map(|r| Bucket::full(r, now)),
            running: 0,
            parked: BTreeSet::new(),
            wake_at: None,
        }
    }

    /// Change the rule, keeping the bucket's level (capped at the new size).
    fn set(&mut self, rule: LimitRule, now: UnixMs) {
        self.bucket = match (self.rule.rate.zip(self.bucket), rule.rate) {
            (Some((old, b)), Some(new)) => Some(Bucket {
                level: b.level_at(old, now).min(size(new)),
                at_ms: now,
            }),
            (_, Some(new)) => Some(Bucket::full(new, now)),
            (_, None) => None,
        };
        self.rule = rule;
    }

    /// Why this rule holds a task back now (`running` of its scope given), if it does.
    pub(super) fn holds(&self, running: u64, now: UnixMs) -> Option<Held> {
        // The deliberate bug (for the simulator to catch) counts one task too few.
        let running = if bugs::active(bugs::Bug::LimitOffByOne) {
            running.saturating_sub(1)
        } else {
            running
        };
        if self.rule.concurrency.is_some_and(|c| running >= u64::from(c)) {
            return Some(Held::Running);
        }
        match self.rule.rate.zip(self.bucket) {
            Some((rate, b)) if !b.has_token(rate, now) => Some(Held::Rate(b.next_token_ms(rate, now))),
            _ => None,
        }
    }

    /// A grant of a task this rule covers: take its token.
    pub(super) fn take(&mut self, now: UnixMs) {
        if let (Some(rate), Some(b)) = (self.rule.rate, self.bucket.as_mut()) {
            b.take(rate, now);
        }
    }
}

/// Why a limit holds a task back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Its concurrency is reached.
    Running,
    /// Its bucket is empty until then.
    Rate(UnixMs),
}

/// The declared limits, the lanes of the tasks they cover, and when to wake them. Held in
/// [`Index`] (its hooks run as tasks change state) but serialized on its own (`format.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Flow {
    pub(super) queue_rules: BTreeMap<Box<str>, RuleState>,
    pub(super) task_rules: BTreeMap<Box<str>, RuleState>,
    pub(super) key_rules: BTreeMap<Box<str>, RuleState>,
    /// The concurrency of `key:*`.
    pub(super) any_key: Option<u32>,
    /// Queue slots that have a rule (queue slots live while the queue holds a task).
    pub(super) limited_queues: BTreeMap<u32, Box<str>>,
    /// Task name slots that have a rule.
    pub(super) limited_names: BTreeMap<u32, Box<str>>,
    pub(super) lanes: Lanes,
    /// `(time, holder)`: a rate-held holder to wake when its bucket has a token again.
    pub(super) wakes: BTreeSet<(UnixMs, Holder)>,
    /// Tasks woken (held back before, grantable now) since the last `take_woke`: not state,
    /// a signal for `apply` to grant to standing capacity and wake idle pools.
    #[serde(skip)]
    pub(super) woke: u64,
}

impl Flow {
    /// No limit and no keyed task: every hook is a no-op.
    pub(super) fn is_idle(&self) -> bool {
        self.queue_rules.is_empty()
            && self.task_rules.is_empty()
            && self.key_rules.is_empty()
            && self.any_key.is_none()
            && self.lanes.is_empty()
    }

    /// Never used (as a new state): a snapshot without flow control holds it.
    pub(super) fn is_pristine(&self) -> bool {
        *self == Flow::default()
    }

    fn count(&self) -> usize {
        self.queue_rules.len()
            + self.task_rules.len()
            + self.key_rules.len()
            + usize::from(self.any_key.is_some())
    }

    pub(super) fn take_woke(&mut self) -> u64 {
        std::mem::take(&mut self.woke)
    }

    /// Register a wake of `holder` at `at` (once per rule: a later one replaces none).
    pub(super) fn wake_at(&mut self, holder: Holder, at: UnixMs) {
        let rule = match &holder {
            Holder::Queue(n) => self.queue_rules.get_mut(n),
            Holder::Task(n) => self.task_rules.get_mut(n),
            Holder::KeyRule(n) => self.key_rules.get_mut(n),
            Holder::Key(_) => None,
        };
        let Some(rule) = rule else { return };
        if rule.wake_at.is_some() {
            return;
        }
        rule.wake_at = Some(at);
        self.wakes.insert((at, holder));
    }

    /// The earliest registered wake.
    pub(super) fn next_wake_ms(&self) -> Option<UnixMs> {
        self.wakes.first().map(|(at, _)| *at)
    }
}

impl Index {
    /// Fire every wake due by `now`: the holder's held tasks may be granted again.
    pub(super) fn fire_wakes(&mut self, now: UnixMs) {
        while let Some((at, _)) = self.flow.wakes.first() {
            if *at > now {
                break;
            }
            let Some((_, holder)) = self.flow.wakes.pop_first() else {
                break;
            };
            let rule = match &holder {
                Holder::Queue(n) => self.flow.queue_rules.get_mut(n),
                Holder::Task(n) => self.flow.task_rules.get_mut(n),
                Holder::KeyRule(n) => self.flow.key_rules.get_mut(n),
                Holder::Key(_) => None,
            };
            if let Some(r) = rule {
                r.wake_at = None;
            }
            self.release_holder(&holder);
        }
    }

    /// The queue rule of slot `q`, if any.
    pub(super) fn queue_rule(&self, q: u32) -> Option<&RuleState> {
        let name = self.flow.limited_queues.get(&q)?;
        self.flow.queue_rules.get(name)
    }

    /// Whether queue `q`'s own limit lets a task through now; registers a wake if a rate
    /// holds it.
    pub(super) fn queue_open(&mut self, q: u32, now: UnixMs) -> bool {
        let running = self
            .queues
            .get(q as usize)
            .map_or(0, |d| d.counts[TaskState::Leased as usize]);
        match self.queue_rule(q).and_then(|r| r.holds(running, now)) {
            None => true,
            Some(Held::Running) => false,
            Some(Held::Rate(at)) => {
                if let Some(name) = self.flow.limited_queues.get(&q).cloned() {
                    self.flow.wake_at(Holder::Queue(name), at);
                }
                false
            }
        }
    }

    /// [`Self::queue_open`] without registering anything (for reads).
    pub(super) fn queue_open_now(&self, q: u32, now: UnixMs) -> bool {
        let running = self
            .queues
            .get(q as usize)
            .map_or(0, |d| d.counts[TaskState::Leased as usize]);
        self.queue_rule(q).and_then(|r| r.holds(running, now)).is_none()
    }
}

/// Rules as `SetLimit` and `RemoveLimit` change them.
impl QueueState {
    pub(super) fn set_limit(&mut self, scope: &LimitScope, rule: &LimitRule) -> Result<(), LimitError> {
        rule.check()?;
        if matches!(scope, LimitScope::AnyKey) && rule.rate.is_some() {
            return Err(LimitError::BadScope("key:* takes a concurrency only".into()));
        }
        let flow = &self.idx.flow;
        let exists = match scope {
            LimitScope::Queue(n) => flow.queue_rules.contains_key(n.as_str()),
            LimitScope::Task(n) => flow.task_rules.contains_key(n.as_str()),
            LimitScope::Key(k) => flow.key_rules.contains_key(k.as_str()),
            LimitScope::AnyKey => flow.any_key.is_some(),
        };
        if !exists && flow.count() >= MAX_LIMITS {
            return Err(LimitError::TooMany);
        }
        let now = self.now_ms;
        let rules = match scope {
            LimitScope::Queue(n) => Some((&mut self.idx.flow.queue_rules, super::queue_name(n))),
            LimitScope::Task(n) => Some((&mut self.idx.flow.task_rules, n.as_str())),
            LimitScope::Key(k) => Some((&mut self.idx.flow.key_rules, k.as_str())),
            LimitScope::AnyKey => None,
        };
        match rules {
            Some((rules, name)) => match rules.get_mut(name) {
                Some(r) => r.set(*rule, now),
                None => {
                    rules.insert(name.into(), RuleState::new(*rule, now));
                }
            },
            None => self.idx.flow.any_key = rule.concurrency,
        }
        // A replaced bucket may be short of a token: its queue's tasks need a wake then.
        if let LimitScope::Queue(n) = scope
            && let Some(r) = self.idx.flow.queue_rules.get(super::queue_name(n))
            && let Some(Held::Rate(at)) = r.holds(0, now)
        {
            let holder = Holder::Queue(super::queue_name(n).into());
            self.idx.flow.wake_at(holder, at);
        }
        self.rule_changed(scope, true);
        Ok(())
    }

    pub(super) fn remove_limit(&mut self, scope: &LimitScope) -> bool {
        let flow = &mut self.idx.flow;
        let removed = match scope {
            LimitScope::Queue(n) => flow.queue_rules.remove(super::queue_name(n)),
            LimitScope::Task(n) => flow.task_rules.remove(n.as_str()),
            LimitScope::Key(k) => flow.key_rules.remove(k.as_str()),
            LimitScope::AnyKey => flow.any_key.take().map(|c| {
                RuleState::new(
                    LimitRule {
                        rate: None,
                        concurrency: Some(c),
                    },
                    0,
                )
            }),
        };
        let Some(removed) = removed else { return false };
        if let Some(at) = removed.wake_at {
            let holder = match scope {
                LimitScope::Queue(n) => Holder::Queue(super::queue_name(n).into()),
                LimitScope::Task(n) => Holder::Task(n.as_str().into()),
                LimitScope::Key(k) => Holder::KeyRule(k.as_str().into()),
                LimitScope::AnyKey => return true,
            };
            self.idx.flow.wakes.remove(&(at, holder));
        }
        // Lanes it held go back to their rings (the rule is gone, the lanes stay).
        for lane in removed.parked {
            self.idx.unpark(lane);
        }
        self.rule_changed(scope, false);
        true
    }

    /// After a rule of `scope` was set (`added`) or removed: bind or unbind the slots of the
    /// queue or name, re-lane a name's tasks, and wake everything held (it is re-checked when
    /// next granted).
    fn rule_changed(&mut self, scope: &LimitScope, added: bool) {
        match scope {
            LimitScope::Queue(n) => {
                let name = super::queue_name(n);
                if let Some(q) = self.idx.queue_names.get(name) {
                    if added {
                        self.idx.flow.limited_queues.insert(q, name.into());
                    } else {
                        self.idx.flow.limited_queues.remove(&q);
                    }
                }
            }
            LimitScope::Task(n) => {
                if let Some(slot) = self.task_names.get(n.as_str())
                    && self.idx.flow.limited_names.contains_key(&slot) != added
                {
                    self.relane_name(slot, added.then(|| n.as_str().into()));
                }
            }
            LimitScope::Key(_) | LimitScope::AnyKey => {}
        }
        self.idx.unpark_all();
    }

    /// Move the pending tasks of name `slot` between plain and laned (unlink them, change the
    /// name's mark, link them again) and count its leased ones. O(tasks): an admin command's
    /// cost.
    fn relane_name(&mut self, slot: u32, limited: Option<Box<str>>) {
        let mut pending = Vec::new();
        let mut leased = 0;
        for (id, t) in self.tasks.iter().filter(|(_, t)| t.name == slot) {
            match t.state {
                TaskState::Pending => pending.push(id),
                TaskState::Leased => leased += 1,
                _ => {}
            }
        }
        for id in &pending {
            if let Some(t) = self.tasks.get(*id) {
                self.idx.unlink(*id, t);
            }
        }
        let flow = &mut self.idx.flow;
        match limited {
            Some(name) => {
                if let Some(r) = flow.task_rules.get_mut(&name) {
                    r.running = leased;
                }
                flow.limited_names.insert(slot, name);
            }
            None => {
                flow.limited_names.remove(&slot);
            }
        }
        for id in pending {
            if let Some(t) = self.tasks.get(id) {
                self.idx.link(id, t);
            }
        }
    }

    /// A task name slot was just acquired for a submit: mark it if its name has a rule.
    pub(super) fn mark_name(&mut self, slot: u32, name: &str) {
        if !self.idx.flow.task_rules.is_empty()
            && self.idx.flow.task_rules.contains_key(name)
            && !self.idx.flow.limited_names.contains_key(&slot)
        {
            self.idx.flow.limited_names.insert(slot, name.into());
        }
    }

    /// No concurrency is exceeded, counted afresh from the task table (not from the counts the
    /// limits keep): what `sim dst`'s `limits_respected` checks at every applied index. Holds
    /// when every limit was set before the tasks it covers were leased (a limit set lower than
    /// what runs holds new grants back; it does not stop running tasks). O(tasks).
    pub fn limits_respected(&self) -> Result<(), String> {
        let flow = &self.idx.flow;
        let mut by_queue: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_key: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, t) in self.tasks.iter().filter(|(_, t)| t.state == TaskState::Leased) {
            *by_queue.entry(self.idx.queue_names.name(t.queue)).or_default() += 1;
            *by_name.entry(self.task_names.name(t.name)).or_default() += 1;
            if let Some(key) = flow.lanes.key_of(id) {
                *by_key.entry(key).or_default() += 1;
            }
        }
        let over = |rules: &BTreeMap<Box<str>, RuleState>, running: &BTreeMap<&str, u64>, kind: &str| {
            rules.iter().find_map(|(name, r)| {
                let (c, n) = (r.rule.concurrency?, running.get(&**name).copied().unwrap_or(0));
                (n > u64::from(c)).then(|| format!("{kind}:{name} has {n} tasks leased, its limit is {c}"))
            })
        };
        let keys = by_key.iter().find_map(|(key, n)| {
            let c = flow
                .key_rules
                .get(*key)
                .and_then(|r| r.rule.concurrency)
                .or(flow.any_key)?;
            (*n > u64::from(c)).then(|| format!("key:{key} has {n} tasks leased, its limit is {c}"))
        });
        match over(&flow.queue_rules, &by_queue, "queue")
            .or_else(|| over(&flow.task_rules, &by_name, "task"))
            .or(keys)
        {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every limit with what it holds back now.
    pub fn limits(&self) -> Vec<LimitInfo> {
        let now = self.now_ms;
        let flow = &self.idx.flow;
        let mut out = Vec::new();
        for (name, r) in &flow.queue_rules {
            let d = self
                .idx
                .queue_names
                .get(name)
                .and_then(|q| self.idx.queues.get(q as usize).map(|d| (q, d)));
            let running = d.map_or(0, |(_, d)| d.counts[TaskState::Leased as usize]);
            let held = match d {
                Some((q, d)) if r.holds(running, now).is_some() => {
                    d.pending.len() + flow.lanes.pending_of_queue(q)
                }
                _ => 0,
            };
            out.push(info(LimitScope::Queue(name.to_string()), r, running, held));
        }
        for (name, r) in &flow.task_rules {
            let held = flow.lanes.pending_of(&r.parked);
            out.push(info(LimitScope::Task(name.to_string()), r, r.running, held));
        }
        for (key, r) in &flow.key_rules {
            let (running, by_key) = flow.lanes.key_counts(key);
            let held = by_key + flow.lanes.pending_of(&r.parked);
            out.push(info(LimitScope::Key(key.to_string()), r, running, held));
        }
        if let Some(c) = flow.any_key {
            let own = |k: &str| {
                flow.key_rules
                    .get(k)
                    .is_some_and(|r| r.rule.concurrency.is_some())
            };
            let (running, held) = flow.lanes.unruled_key_counts(own);
            let rule = LimitRule {
                rate: None,
                concurrency: Some(c),
            };
            out.push(LimitInfo {
                scope: LimitScope::AnyKey,
                rule,
                running,
                held,
            });
        }
        out
    }
}

fn info(scope: LimitScope, r: &RuleState, running: u64, held: u64) -> LimitInfo {
    LimitInfo {
        scope,
        rule: r.rule,
        running,
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_grants_its_size_then_its_rate() {
        let rate = Rate {
            tokens: 3,
            per_ms: 1000,
        };
        let mut b = Bucket::full(rate, 0);
        assert!(b.take(rate, 0) && b.take(rate, 0) && b.take(rate, 0));
        assert!(!b.take(rate, 0));
        // One token per 333.3 ms: the next at 334 (the first whole millisecond with a token).
        assert_eq!(b.next_token_ms(rate, 0), 334);
        assert!(!b.take(rate, 333));
        assert!(b.take(rate, 334));
        assert!(!b.take(rate, 334));
        assert_eq!(b.next_token_ms(rate, 334), 667);
        // It never holds more than its size.
        assert!((0..3).all(|_| b.take(rate, 1_000_000)));
        assert!(!b.take(rate, 1_000_000));
    }
}
