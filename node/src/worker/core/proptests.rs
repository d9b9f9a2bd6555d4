//! The core against the real queue state machine, under random event orders: proposals
//! applied in any order or never, replies lost or late, replica events late or lost (then a
//! resync), runs finishing, failing or aborted, ticks, timers, leases expiring, drains.
//!
//! After every step: what the pool runs, holds, stands for in the log, has granted on the
//! way to it, or may still be granted by a lease not yet applied never exceeds its capacity
//! (its slots and the most its lease-ahead allows), and the core never counts less than that.
//! The one exception is a lease the core was told failed (or gave up on) while it did apply:
//! from then on the pool may stand for more than it holds, and the test only checks that it
//! never runs or buffers beyond its capacity (the excess grants are released). No lease asks
//! beyond the slots while lease-ahead is off (long runs); a drain gives back what waits at
//! once; a grant of the pool's own lease starts only while the log's lease on it has
//! the time to start left (one clock for the log and the pool). At the end the drain finishes,
//! and every grant the pool took ended in one completion or one release (or was lost).
//!
//! With a runner that queues (a remote worker's `queue_ahead`, `core/queued.rs`) the runner is
//! modelled as the worker is: it starts what it holds in the order it got it, as its slots free;
//! it answers a take-back with a release if the task has not started (else with its result), and
//! an abort of a queued task by dropping it. Then: it never runs more than its slots nor holds
//! more than its slots and queue, nothing it is handed runs twice, and every task handed to it
//! ends in one completion or one release.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::queue::ApplyEffects;
use crate::queue::Command;
use crate::queue::QueueState;
use crate::queue::Request;
use crate::queue::TaskSpec;
use crate::queue::TaskState;
use crate::replica::holds;
use crate::replica::pool_effects;

const POOL: &str = "pool-1";
const LEASE_MS: u64 = 1_000;
const MIN_LEASE_TO_START_MS: u64 = 100;

#[derive(Clone, Debug)]
enum Fate {
    /// Applied; the reply says so.
    Applied,
    /// Applied; the reply is an error (lost on the way back).
    ReplyLost,
    /// Never applied; the reply is an error.
    NotApplied,
}

#[derive(Clone, Debug)]
enum Action {
    Submit(usize),
    /// Another pool leases (takes pending tasks away from this one).
    OtherLease(u32),
    Apply(usize, Fate),
    Reply(usize),
    Event,
    /// The replica installs a snapshot: the events not yet delivered are never seen.
    LoseEvents,
    Finish(usize, u8),
    HeartbeatTick,
    IdlePoll,
    WorkSignal,
    /// Time passes on the log (a leader's tick): leases and standing capacity may expire.
    Advance(u64),
    Timer(usize),
    Drain(u64),
    /// The runner's answer to a take-back or an abort of a task it had queued arrives.
    Answer(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let fate = prop_oneof![6 => Just(Fate::Applied), 1 => Just(Fate::ReplyLost), 1 => Just(Fate::NotApplied)];
    // Weighted so that most runs see no snapshot install and drain late: those runs are
    // checked to the end.
    prop_oneof![
        12 => (1..4usize).prop_map(Action::Submit),
        2 => (1..3u32).prop_map(Action::OtherLease),
        32 => (any::<usize>(), fate).prop_map(|(i, f)| Action::Apply(i, f)),
        24 => any::<usize>().prop_map(Action::Reply),
        32 => Just(Action::Event),
        1 => Just(Action::LoseEvents),
        24 => (any::<usize>(), any::<u8>()).prop_map(|(i, o)| Action::Finish(i, o)),
        6 => Just(Action::HeartbeatTick),
        6 => Just(Action::IdlePoll),
        3 => Just(Action::WorkSignal),
        2 => (1..LEASE_MS).prop_map(Action::Advance),
        // Round trips and run times, for the lease-ahead rule.
        8 => (1..30u64).prop_map(Action::Advance),
        8 => any::<usize>().prop_map(Action::Timer),
        2 => (0..50u64).prop_map(Action::Drain),
        8 => any::<usize>().prop_map(Action::Answer),
    ]
}

/// Per lease ticket: where its apply and reply are.
#[derive(Default)]
struct TicketLog {
    /// Tasks its apply granted.
    grants: usize,
    /// What its apply granted, if it filled the lease (then no event reports it).
    filled: Vec<LeaseRef>,
    /// Its apply's event is queued, not yet delivered.
    event_pending: bool,
    event_delivered: bool,
    /// Its successful reply is queued, not yet delivered.
    reply_pending: bool,
    /// Heartbeat ticks since its successful reply was delivered.
    ticks_since_reply: Option<u32>,
}

impl TicketLog {
    /// Its grants are on their way to the pool: applied, not yet heard of, and something
    /// still to bring them.
    fn on_the_way(&self) -> usize {
        let heard = self.event_delivered || self.ticks_since_reply.is_some();
        let coming = self.event_pending || self.reply_pending;
        if !heard && coming { self.grants } else { 0 }
    }
}

struct World {
    core: PoolCore,
    slots: usize,
    /// The slots and the most the lease-ahead allows.
    capacity: usize,
    /// Granted by this pool's own leases: their start is bounded by the lease's proposal.
    own_grants: BTreeSet<LeaseRef>,
    q: QueueState,
    now_ms: u64,
    unapplied: Vec<(Token, Proposal)>,
    replies: Vec<(Token, Result<Vec<Response>, ProposeError>)>,
    events: VecDeque<PoolEvent>,
    /// The runner: lease → abort asked.
    running: BTreeMap<LeaseRef, bool>,
    /// Tasks the runner queues beyond its slots (0: it runs what it is given at once).
    runner_queue: usize,
    /// The runner's queue, in the order it got them (only with `runner_queue`).
    waiting: VecDeque<LeaseRef>,
    /// Given back by the runner unstarted (taken back, or aborted while queued): the `Aborted`
    /// end on its way to the core.
    given_back: Vec<LeaseRef>,
    /// Every lease handed to the runner (run or queued).
    handed: BTreeSet<LeaseRef>,
    timers: Vec<Timer>,
    drained: Option<DrainReport>,
    events_lost: bool,
    flush_expired: bool,
    /// The core stopped counting a lease that did apply and whose event it has yet to hear
    /// (its reply failed, or it was swept): from then on the pool may stand for more than its
    /// capacity (the excess grants are released).
    misinformed: bool,
    tickets: BTreeMap<u64, TicketLog>,
    /// Grants of filled leases whose reply was lost: the pool never hears of them (as before
    /// the pool core; they wait out their lease).
    stranded: BTreeSet<LeaseRef>,
    /// The lease ticket each proposal carried.
    token_tickets: BTreeMap<Token, u64>,
    ran: BTreeSet<LeaseRef>,
    completed: BTreeSet<LeaseRef>,
    released: BTreeSet<LeaseRef>,
}

impl World {
    fn new(slots: usize, prefetch: Prefetch, runner_queue: usize) -> Self {
        let core = PoolCore::new(CoreConfig {
            pool: POOL.into(),
            queues: Vec::new(),
            lease_ms: LEASE_MS,
            slots,
            prefetch,
            min_lease_to_start: Duration::from_millis(MIN_LEASE_TO_START_MS),
            max_batch: 3,
            runner_queue,
            drain_flush_timeout: Duration::from_millis(100),
            first_ticket: first_ticket(1_000),
        });
        let capacity = slots + core.pacer.max_allowance();
        let mut w = Self {
            core,
            slots,
            capacity,
            own_grants: BTreeSet::new(),
            q: QueueState::new(),
            now_ms: 1_000,
            unapplied: Vec::new(),
            replies: Vec::new(),
            events: VecDeque::new(),
            running: BTreeMap::new(),
            runner_queue,
            waiting: VecDeque::new(),
            given_back: Vec::new(),
            handed: BTreeSet::new(),
            timers: Vec::new(),
            drained: None,
            events_lost: false,
            flush_expired: false,
            misinformed: false,
            tickets: BTreeMap::new(),
            stranded: BTreeSet::new(),
            token_tickets: BTreeMap::new(),
            ran: BTreeSet::new(),
            completed: BTreeSet::new(),
            released: BTreeSet::new(),
        };
        w.collect();
        w
    }

    /// Apply one entry to the log, queue this pool's event.
    fn log(&mut self, commands: Vec<Command>) -> Vec<Response> {
        let req = Request {
            now_ms: self.now_ms,
            commands,
        };
        let mut fx = ApplyEffects::default();
        let responses = self.q.apply(&req, &mut fx);
        if let Err(e) = self.q.check_invariants() {
            panic!("queue invariants: {e}");
        }
        let mut pools = pool_effects(&req, &responses, fx.pools, |p| p == POOL);
        if let Some(applied) = pools.remove(POOL) {
            for (ticket, grants) in &applied.leases {
                let log = self.tickets.entry(*ticket).or_default();
                log.event_pending = true;
                log.grants = grants.len();
            }
            self.events.push_back(PoolEvent::Applied(applied));
        }
        responses
    }

    /// Carry out the core's decisions.
    fn collect(&mut self) {
        while let Some(d) = self.core.next_decision() {
            assert!(
                self.drained.is_none() || matches!(d, Decision::Stats(_)),
                "{d:?} after drained"
            );
            match d {
                Decision::Propose(token, proposal) => {
                    match &proposal {
                        Proposal::Complete(c) | Proposal::CompleteAndLease(c, _) => {
                            for c in &c.completions {
                                assert!(self.ran.contains(&c.lease), "completed a lease never run");
                                assert!(!self.released.contains(&c.lease), "completed a released lease");
                                self.completed.insert(c.lease);
                            }
                        }
                        Proposal::Release(r) => {
                            for l in &r.leases {
                                assert!(!self.completed.contains(l), "released a completed lease");
                                self.released.insert(*l);
                            }
                        }
                        _ => {}
                    }
                    if let Some((_, max)) = Self::ticket_of(&proposal) {
                        let ahead = self.core.pacer.allowance();
                        assert!(
                            max as usize <= self.slots + ahead,
                            "asked {max} with {ahead} ahead"
                        );
                    }
                    if let Some((ticket, _)) = Self::ticket_of(&proposal) {
                        self.tickets.insert(ticket, TicketLog::default());
                        self.token_tickets.insert(token, ticket);
                    }
                    self.unapplied.push((token, proposal));
                }
                Decision::Run(grant) | Decision::Queue(grant) if self.runner_queue > 0 => {
                    assert!(self.handed.insert(grant.lease), "handed {:?} twice", grant.lease);
                    self.check_lease_left(grant.lease);
                    self.waiting.push_back(grant.lease);
                    assert!(
                        self.running.len() + self.waiting.len() <= self.slots + self.runner_queue,
                        "the runner holds more than its slots and queue"
                    );
                    self.start_waiting();
                }
                Decision::Queue(grant) => panic!("queued {:?} at a runner that does not queue", grant.lease),
                Decision::TakeBack(lease) => {
                    assert!(
                        self.runner_queue > 0,
                        "took back from a runner that does not queue"
                    );
                    assert!(self.handed.contains(&lease), "took back a lease never handed");
                    // Started already: its result answers.
                    if let Some(at) = self.waiting.iter().position(|l| *l == lease) {
                        self.waiting.remove(at);
                        self.given_back.push(lease);
                    }
                }
                Decision::Abort(lease) if self.waiting.contains(&lease) => {
                    self.waiting.retain(|l| *l != lease);
                    self.given_back.push(lease);
                }
                Decision::Run(grant) => {
                    assert!(self.handed.insert(grant.lease), "handed {:?} twice", grant.lease);
                    assert!(self.ran.insert(grant.lease), "ran {:?} twice", grant.lease);
                    self.check_lease_left(grant.lease);
                    self.running.insert(grant.lease, false);
                }
                Decision::Abort(lease) => {
                    if self.runner_queue > 0 && self.given_back.contains(&lease) {
                        // Taken back already: the release on its way answers the abort too.
                        continue;
                    }
                    let asked = self.running.get_mut(&lease).expect("aborted a run not running");
                    assert!(!*asked, "aborted twice");
                    *asked = true;
                }
                Decision::After(_, timer) => self.timers.push(timer),
                Decision::Drained(report) => self.drained = Some(report),
                Decision::Stats(_) | Decision::Acked(_) => {}
            }
        }
    }

    /// A grant of the pool's own lease is handed to the runner only while the log's lease on
    /// it has the time to start left.
    fn check_lease_left(&self, lease: LeaseRef) {
        if self.own_grants.contains(&lease) && !self.misinformed {
            let current = self.q.current_lease(lease.task);
            let Some((held, POOL, deadline)) = current else {
                panic!("ran {lease:?}, which the log holds as {current:?}");
            };
            assert_eq!(held, lease, "ran a lease the log no longer holds");
            assert!(
                deadline >= self.now_ms + MIN_LEASE_TO_START_MS,
                "ran {lease:?} at {} ms, its lease ending at {deadline} ms",
                self.now_ms
            );
        }
    }

    /// The runner that queues starts what it holds, in order, as its slots free.
    fn start_waiting(&mut self) {
        while self.running.len() < self.slots
            && let Some(lease) = self.waiting.pop_front()
        {
            assert!(self.ran.insert(lease), "ran {lease:?} twice");
            self.running.insert(lease, false);
        }
    }

    fn ticket_of(proposal: &Proposal) -> Option<(u64, u32)> {
        match proposal {
            Proposal::Lease(l) | Proposal::CompleteAndLease(_, l) | Proposal::ClearAndLease(_, l) => {
                Some((l.standing_ticket.expect("every lease is ticketed"), l.max))
            }
            _ => None,
        }
    }

    fn step(&mut self, action: Action) {
        // One clock: the log's time is the pool's.
        self.core.at(Duration::from_millis(self.now_ms));
        match action {
            Action::Submit(n) => {
                let spec = TaskSpec {
                    name: "t".into(),
                    queue: String::new(),
                    args: Bytes::new(),
                    priority: 0,
                    eta_ms: None,
                    countdown_ms: None,
                    max_retries: 1,
                    backoff_ms: 0,
                    time_limit_ms: None,
                    idempotency_key: None,
                    result_ttl_ms: 60_000,
                    headers: Default::default(),
                    concurrency_key: None,
                };
                let tasks: Arc<[TaskSpec]> = vec![spec; n].into();
                self.log(vec![Command::Submit { tasks }]);
            }
            Action::OtherLease(max) => {
                let lease = ops::Lease {
                    pool: "other".into(),
                    queues: Vec::new(),
                    max,
                    lease_ms: LEASE_MS,
                    standing_ticket: None,
                };
                self.log(vec![ops::Op::command(lease)]);
            }
            Action::Apply(i, fate) => {
                if self.unapplied.is_empty() {
                    return;
                }
                let (token, proposal) = self.unapplied.remove(i % self.unapplied.len());
                let ticket = Self::ticket_of(&proposal);
                let applied = match fate {
                    Fate::NotApplied => None,
                    Fate::Applied | Fate::ReplyLost => Some(self.log(proposal.into_commands())),
                };
                if let (Some(_), Some(responses)) = (ticket, &applied)
                    && let Some(Response::Leased(grants)) = responses.last()
                {
                    self.own_grants.extend(grants.iter().map(|g| g.lease));
                }
                if let (Some((t, max)), Some(responses)) = (ticket, &applied)
                    && let Some(Response::Leased(grants)) = responses.last()
                    && grants.len() >= max as usize
                {
                    let log = self.tickets.entry(t).or_default();
                    log.grants = grants.len();
                    log.filled = grants.iter().map(|g| g.lease).collect();
                }
                let reply = match (fate, applied) {
                    (Fate::Applied, Some(responses)) => Ok(responses),
                    (Fate::ReplyLost, _) => Err(ProposeError::Forward("reply lost".into())),
                    _ => Err(ProposeError::NoLeader),
                };
                let ticket = ticket.map(|(t, _)| t);
                if let (Some(t), Ok(_)) = (ticket, &reply) {
                    self.tickets.entry(t).or_default().reply_pending = true;
                }
                self.replies.push((token, reply));
            }
            Action::Reply(i) => {
                if self.replies.is_empty() {
                    return;
                }
                let (token, reply) = self.replies.remove(i % self.replies.len());
                if let Some(ticket) = self.token_tickets.remove(&token) {
                    let log = self.tickets.entry(ticket).or_default();
                    log.reply_pending = false;
                    match reply {
                        Ok(_) => log.ticks_since_reply = Some(0),
                        Err(_) => {
                            self.misinformed |= log.event_pending;
                            self.stranded.extend(log.filled.iter().copied());
                        }
                    }
                }
                self.core.replied(token, reply);
            }
            Action::Event => {
                let Some(event) = self.events.pop_front() else {
                    return;
                };
                if let PoolEvent::Applied(fx) = &event {
                    for (ticket, _) in &fx.leases {
                        let log = self.tickets.entry(*ticket).or_default();
                        log.event_pending = false;
                        log.event_delivered = true;
                    }
                }
                let q = &self.q;
                self.core.applied(event, |lease| holds(q, POOL, lease));
            }
            Action::LoseEvents => {
                self.events.clear();
                self.events_lost = true;
                for log in self.tickets.values_mut() {
                    log.event_pending = false;
                }
                let standing = self.q.standing_capacity(POOL);
                self.core.applied(PoolEvent::Resync { standing }, |_| true);
            }
            Action::Finish(i, outcome) => {
                if self.running.is_empty() {
                    return;
                }
                let lease = *self.running.keys().nth(i % self.running.len()).expect("in range");
                let abort_asked = self.running.remove(&lease).expect("running");
                let result = match outcome % 4 {
                    _ if abort_asked && outcome % 2 == 0 => RunResult::Aborted,
                    0 => RunResult::Aborted,
                    1 => RunResult::Finished(Outcome::Failure {
                        error: "boom".into(),
                        retry: true,
                    }),
                    _ => RunResult::Finished(Outcome::Success(Bytes::new())),
                };
                self.core.finished(lease, result);
                if self.runner_queue > 0 {
                    self.start_waiting();
                }
            }
            Action::Answer(i) => {
                if self.given_back.is_empty() {
                    return;
                }
                let lease = self.given_back.remove(i % self.given_back.len());
                self.core.finished(lease, RunResult::Aborted);
            }
            Action::HeartbeatTick => {
                for log in self.tickets.values_mut() {
                    log.ticks_since_reply = log.ticks_since_reply.map(|t| t + 1);
                    // The second tick after its reply ends a ticket whose apply was not seen
                    // (its grants came with the reply; what it left standing is then unknown).
                    self.misinformed |= log.event_pending && log.ticks_since_reply >= Some(2);
                }
                self.core.heartbeat_tick();
            }
            Action::IdlePoll => {
                let shows_work = self.q.leasable(&[]) > 0;
                self.core.idle_poll(shows_work);
            }
            Action::WorkSignal => self.core.work_signal(),
            Action::Advance(ms) => {
                self.now_ms += ms;
                self.log(vec![Command::Tick]);
            }
            Action::Timer(i) => {
                if self.timers.is_empty() {
                    return;
                }
                let mut i = i % self.timers.len();
                // The flush deadline is the grace plus more: it never fires first.
                if self.timers[i] == Timer::FlushDeadline
                    && let Some(grace) = self.timers.iter().position(|t| *t == Timer::GraceOver)
                {
                    i = grace;
                }
                let timer = self.timers.remove(i);
                self.flush_expired |= timer == Timer::FlushDeadline && self.drained.is_none();
                self.core.timer(timer);
            }
            Action::Drain(grace_ms) => {
                self.core.drain(Duration::from_millis(grace_ms));
                assert!(
                    self.core.buffered.is_empty(),
                    "a drain gives back what waits at once"
                );
            }
        }
        self.collect();
    }

    fn check(&self) {
        let c = &self.core;
        assert!(c.running.len() <= self.slots, "runs beyond the slots");
        assert!(
            self.running.len() <= self.slots,
            "the runner runs beyond its slots"
        );
        assert!(
            c.queued.len() <= self.runner_queue,
            "queued beyond the runner's queue"
        );
        // What the runner holds or is giving back, the core holds as running or queued.
        let runner: BTreeSet<&LeaseRef> = self
            .running
            .keys()
            .chain(&self.waiting)
            .chain(&self.given_back)
            .collect();
        let core: BTreeSet<&LeaseRef> = c
            .running
            .keys()
            .chain(c.queued.iter().map(|q| &q.lease))
            .collect();
        assert_eq!(runner, core, "the core and the runner disagree on what it holds");
        assert!(
            c.running.len() + c.buffered.len() + c.queued.len() <= self.capacity,
            "holds beyond capacity"
        );

        assert!(c.outbox.leases_in_flight() <= PIPELINE);
        if !self.misinformed {
            let spoken = c.running.len() + c.buffered.len() + c.queued.len() + c.standing + c.tickets.held();
            let truth = self.committed();
            assert!(
                truth <= self.capacity,
                "the pool may hold {truth} > {}",
                self.capacity
            );
            assert!(
                truth <= spoken,
                "the core counts {spoken}, less than the {truth} it may hold"
            );
        }
    }

    /// What the pool may hold, from the log's side: runs, buffered grants, grants on their
    /// way to it (in a reply or an event not yet heard of), its standing capacity in the log,
    /// and the `max` of its leases not applied yet.
    fn committed(&self) -> usize {
        let to_standing: usize = self
            .events
            .iter()
            .map(|e| match e {
                PoolEvent::Applied(fx) => fx.grants.len(),
                PoolEvent::Resync { .. } => 0,
            })
            .sum();
        let leased: usize = self.tickets.values().map(TicketLog::on_the_way).sum();
        let asked: usize = self
            .unapplied
            .iter()
            .filter_map(|(_, p)| Self::ticket_of(p))
            .map(|(_, max)| max as usize)
            .sum();
        let c = &self.core;
        let standing = self.q.standing_capacity(POOL) as usize;
        c.running.len() + c.buffered.len() + c.queued.len() + to_standing + leased + standing + asked
    }

    /// Faults heal: everything is applied and delivered, runs end, timers fire, until drained.
    fn heal(&mut self) {
        if self.core.drain.is_none() {
            self.step(Action::Drain(0));
        }
        for round in 0..200 {
            if self.drained.is_some() {
                return;
            }
            let step = if !self.unapplied.is_empty() {
                Action::Apply(0, Fate::Applied)
            } else if !self.replies.is_empty() {
                Action::Reply(0)
            } else if !self.events.is_empty() {
                Action::Event
            } else if !self.given_back.is_empty() {
                Action::Answer(0)
            } else if !self.running.is_empty() {
                Action::Finish(0, 2)
            } else if let Some(i) = self.timers.iter().position(|t| *t != Timer::FlushDeadline) {
                Action::Timer(i)
            } else if round > 100 {
                // Stuck: only the deadline can end it now.
                Action::Timer(0)
            } else {
                Action::HeartbeatTick
            };
            self.step(step);
            self.check();
        }
        panic!("the drain never finished");
    }
}

fn run(slots: usize, prefetch: Prefetch, actions: Vec<Action>) {
    run_with(slots, prefetch, 0, actions);
}

fn run_with(slots: usize, prefetch: Prefetch, runner_queue: usize, actions: Vec<Action>) {
    let mut w = World::new(slots, prefetch, runner_queue);
    for a in actions {
        w.step(a);
        w.check();
    }
    w.heal();
    let report = w.drained.expect("drained");
    // Every lease run or released by the pool ended in one completion or one release (the
    // proposal checks above refuse both for one lease), unless it was lost (refused heartbeat).
    if w.events_lost || w.flush_expired {
        return;
    }
    assert!(w.running.is_empty(), "drained with runs left");
    assert!(
        w.waiting.is_empty() && w.given_back.is_empty(),
        "drained with tasks queued"
    );
    assert_eq!(report.unflushed, 0, "{report:?}");
    // Nothing of this pool is left leased in the log, and nothing stands for it.
    for (lease, pool) in leased(&w.q) {
        let left = pool == POOL && !w.stranded.contains(&lease);
        assert!(!left, "{lease:?} still leased to the drained pool");
    }
    assert_eq!(w.q.standing_capacity(POOL), 0);
    for lease in w.ran.iter().chain(&w.handed) {
        let ended = w.completed.contains(lease) || w.released.contains(lease);
        let lost = !holds(&w.q, POOL, *lease);
        assert!(ended || lost, "{lease:?} ran and never ended");
    }
}

/// Every task leased in `q`, with its pool.
fn leased(q: &QueueState) -> Vec<(LeaseRef, String)> {
    // Every step submits at most 3 tasks.
    (1..=1_000)
        .filter(|id| q.task(*id).is_some_and(|t| t.state == TaskState::Leased))
        .filter_map(|id| q.current_lease(id).map(|(l, w, _)| (l, w.to_string())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_pool_never_holds_more_than_its_capacity_and_every_grant_ends(
        slots in 1..4usize,
        actions in proptest::collection::vec(action(), 1..200),
    ) {
        run(slots, Prefetch::Fixed(0), actions);
    }

    #[test]
    fn with_lease_ahead_the_pool_buffers_within_its_capacity(
        slots in 1..3usize,
        prefetch in 1..3u32,
        actions in proptest::collection::vec(action(), 1..200),
    ) {
        run(slots, Prefetch::Fixed(prefetch), actions);
    }

    // Its last regression case (slots 2) failed until 2026-12-02: a restand's `ClearStanding`,
    // applied before a grant to standing capacity but heard of after the drain's own clear
    // committed, was taken for the drain's, which ended with that grant on its way (attempt 3
    // of task 1 left leased). The replica now says which clear an apply held (`Cleared`).
    #[test]
    fn with_lease_ahead_by_measurement_the_pool_buffers_within_its_allowance(
        slots in 1..3usize,
        actions in proptest::collection::vec(action(), 1..200),
    ) {
        run(slots, Prefetch::Auto, actions);
    }

    #[test]
    fn a_runner_that_queues_holds_within_its_queue_and_every_grant_ends_once(
        slots in 1..3usize,
        runner_queue in 1..4usize,
        actions in proptest::collection::vec(action(), 1..200),
    ) {
        run_with(slots, Prefetch::Auto, runner_queue, actions);
    }
}
