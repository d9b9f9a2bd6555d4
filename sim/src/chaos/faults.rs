//! The fault loop of `sim chaos`: from a seeded RNG, every so often it picks a node and breaks
//! it in one of the ways of [`ChaosOptions::faults`], then heals it after a delay:
//!
//! - process faults: SIGKILL (then a restart) or SIGSTOP (then SIGCONT);
//! - network faults (`--net` only, [`super::net`]): cut a node, or its whole zone, off from the
//!   other nodes; cut one direction only; lose a share of its frames; delay them more, with
//!   jitter.
//!
//! At most [`ChaosOptions::max_faulty`] nodes are faulty at once (a zone cut counts each of
//! its nodes); a node counts as faulty until it serves again after the heal. Heals happen on
//! time and never wait for one another: the loop polls recovering nodes instead of blocking on
//! them. Faults drawn after the end of the faulty phase are not injected, and a fault still
//! active then is healed at once, so the loop ends by itself shortly after `until`.
//!
//! A fault that takes the leader away starts a [`Probe`] that measures the failover.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use flotilla_client::{Client, RetryPolicy};
use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::ChaosOptions;
use super::failovers::{FailoverSample, Probe};
use super::net::Net;
use crate::bench::cluster::Cluster;

/// Shortest and longest pause between two fault draws.
const GAP_MS: (u64, u64) = (300, 1500);
/// Shortest fault.
const MIN_FAULT_MS: u64 = 200;
/// Half the faults go to the node believed to lead: failovers are where bugs live.
const LEADER_BIAS: f64 = 0.5;
/// How often a recovering node is asked whether it serves again.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Deadline of one such probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What was done to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL, then a restart on the same address and data directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Stop,
    /// The node cut off from every other node, both ways (`--net`).
    Partition,
    /// Every node of one zone cut off from the other zones, both ways (`--net`).
    ZonePartition,
    /// One direction only: the node's frames to the other nodes, or theirs to it (`--net`).
    OneWay,
    /// A share (5-30 %) of the frames between the node and the others lost (`--net`).
    Loss,
    /// Frames between the node and the others 50-300 ms later, with as much jitter again (`--net`).
    Delay,
    /// Not injected: the node exited by itself (a violation), and was restarted at once.
    #[value(skip)]
    Crash,
}

impl FaultKind {
    /// The process faults, what `sim chaos` deals without `--net`.
    pub const PROCESS: [FaultKind; 2] = [FaultKind::Kill, FaultKind::Stop];
    /// Every fault `sim chaos --net` deals unless told otherwise.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Partition,
        FaultKind::ZonePartition,
        FaultKind::OneWay,
        FaultKind::Loss,
        FaultKind::Delay,
    ];

    /// Whether it acts on the network (and needs `--net`).
    pub fn is_network(self) -> bool {
        !matches!(self, FaultKind::Kill | FaultKind::Stop | FaultKind::Crash)
    }

    /// Whether it stops the process (a node under it is not expected to be running).
    fn is_process(self) -> bool {
        !self.is_network()
    }

    /// Whether it takes a leader's leadership away, so that a failover is measured.
    fn unseats(self) -> bool {
        !matches!(self, FaultKind::Loss | FaultKind::Delay | FaultKind::Crash)
    }

    /// The command-line name.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_else(|| "crash".to_owned())
    }

    fn recovery(self) -> &'static str {
        match self {
            FaultKind::Kill | FaultKind::Crash => "restart",
            FaultKind::Stop => "thaw",
            _ => "heal",
        }
    }
}

/// One injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultEvent {
    /// Seconds since the faulty phase began.
    pub at_s: f64,
    /// Index of the node (0-based, in start order); a zone cut's first node.
    pub node: usize,
    pub kind: FaultKind,
    /// Whether the node led the cluster as far as a status call could tell.
    pub was_leader: bool,
    /// What exactly, for network faults (the direction, the loss, the delay, the zone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Seconds until the restart, thaw or heal was begun (the node then still has to catch up).
    pub held_s: f64,
    /// Seconds from the restart, thaw or heal until the node saw a leader again (`None`: it
    /// did not within the ready timeout).
    pub recovered_s: Option<f64>,
}

/// Everything the fault loop did, and what it found wrong on its own.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub events: Vec<FaultEvent>,
    /// Faults injected, by kind (crashes are not injected but counted here too).
    pub by_kind: BTreeMap<FaultKind, usize>,
    /// Faults that hit the node believed to lead.
    pub leader_faults: usize,
    /// Failovers measured after faults that took the leader away.
    pub failovers: Vec<FailoverSample>,
    /// Nodes that exited without being killed, nodes that did not serve again in time.
    pub violations: Vec<String>,
}

impl FaultLog {
    /// How many faults of `kind` were made.
    pub fn count(&self, kind: FaultKind) -> usize {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }
}

/// One fault's random choices, drawn together in a fixed order.
struct Draw {
    /// Pause before the fault, after the previous one healed.
    gap: Duration,
    kind: FaultKind,
    hold: Duration,
    at_leader: bool,
    pick: u64,
    /// The network fault's own choices (direction, loss, delay).
    aux: u64,
}

impl Draw {
    fn new(rng: &mut StdRng, deck: &mut Deck, max_fault: Duration) -> Draw {
        let max_hold_ms = (max_fault.as_millis() as u64).max(MIN_FAULT_MS);
        Draw {
            gap: Duration::from_millis(rng.random_range(GAP_MS.0..=GAP_MS.1)),
            kind: deck.next(rng),
            hold: Duration::from_millis(rng.random_range(MIN_FAULT_MS..=max_hold_ms)),
            at_leader: rng.random_bool(LEADER_BIAS),
            pick: rng.random(),
            aux: rng.random(),
        }
    }
}

/// Fault kinds dealt from a shuffled deck holding each kind once, so every run of as many
/// faults as there are kinds includes each kind (with the process faults alone: every two
/// faults in a row include a kill), whatever the seed, instead of only very probably.
struct Deck {
    kinds: Vec<FaultKind>,
    left: Vec<FaultKind>,
}

impl Deck {
    fn new(kinds: &[FaultKind]) -> Deck {
        Deck {
            kinds: kinds.to_vec(),
            left: Vec::new(),
        }
    }

    fn next(&mut self, rng: &mut StdRng) -> FaultKind {
        if self.left.is_empty() {
            self.left = self.kinds.clone();
            self.left.shuffle(rng);
        }
        self.left.pop().unwrap_or(FaultKind::Kill)
    }
}

/// A fault in progress.
struct Active {
    kind: FaultKind,
    /// Index of its [`FaultEvent`] in the log (also its overlay's id on the network).
    event: usize,
    /// The nodes it holds: one, or a zone's.
    nodes: Vec<usize>,
    phase: Phase,
}

enum Phase {
    /// Broken until `heal_at`.
    Down { heal_at: Instant },
    /// Healed at `since`; faulty until every node of it serves again, or `give_up_at`.
    Recovering { since: Instant, give_up_at: Instant },
}

/// What the loop works on.
pub struct Target<'a> {
    pub cluster: &'a mut Cluster,
    /// The network, with `--net`.
    pub net: Option<&'a Net>,
}

/// Injects faults from `start` until `until`, then heals the ones still active (see the module
/// docs). A drawn fault waits for free slots and is then injected, so the faults made are the
/// faults drawn. Errors are harness failures (a node could not be signalled or spawned).
pub async fn run(
    target: Target<'_>,
    rng: &mut StdRng,
    opts: &ChaosOptions,
    start: Instant,
    until: Instant,
) -> Result<FaultLog> {
    let Target { cluster, net } = target;
    let mut log = FaultLog::default();
    // A status client that gives up quickly: one node may be frozen.
    let status = cluster
        .client_builder(cluster.addrs())?
        .request_timeout(Duration::from_millis(500))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(2),
            ..RetryPolicy::default()
        })
        .build()
        .await?;
    let mut active: BTreeMap<usize, Active> = BTreeMap::new();
    let mut probes = JoinSet::new();
    let mut deck = Deck::new(&opts.faults);
    let mut draw = Draw::new(rng, &mut deck, opts.max_fault);
    let mut next_fault = start + draw.gap;
    loop {
        let now = Instant::now();
        let slot_free = faulty(&active).len() < opts.max_faulty();
        let wake = active
            .values()
            .map(|a| match a.phase {
                Phase::Down { heal_at } => heal_at,
                Phase::Recovering { .. } => now + PROBE_EVERY,
            })
            .chain((slot_free && next_fault < until).then_some(next_fault))
            .min();
        let Some(wake) = wake else { break };
        tokio::time::sleep_until(wake).await;

        // Heal what is due, all before waiting for any of them.
        let now = Instant::now();
        for a in active.values_mut() {
            if let Phase::Down { heal_at } = a.phase
                && heal_at <= now
            {
                info!(nodes = ?a.nodes, kind = ?a.kind, "--- heal");
                let event = &mut log.events[a.event];
                event.held_s = (now - start).as_secs_f64() - event.at_s;
                heal(cluster, net, a)?;
                a.phase = Phase::Recovering {
                    since: now,
                    give_up_at: now + opts.ready_timeout,
                };
            }
        }
        let mut recovered = Vec::new();
        for (&id, a) in active.iter() {
            if let Some(done) = recovery(cluster, a, &mut log, opts.ready_timeout).await {
                if done {
                    let Phase::Recovering { since, .. } = a.phase else {
                        continue;
                    };
                    log.events[a.event].recovered_s = Some(since.elapsed().as_secs_f64());
                }
                recovered.push(id);
            }
        }
        for id in recovered {
            active.remove(&id);
            // The next fault keeps its gap after the cluster is whole again.
            next_fault = next_fault.max(Instant::now() + draw.gap);
        }
        check_alive(cluster, &mut active, &mut log, opts.ready_timeout, start)?;

        let now = Instant::now();
        // A fault too close to the end to last its shortest hold is not worth making: no
        // more faults then.
        if next_fault <= now && now + Duration::from_millis(MIN_FAULT_MS) > until {
            next_fault = until;
        }
        let busy = faulty(&active);
        if busy.len() < opts.max_faulty() && next_fault <= now && now < until {
            let leader = leader(cluster, &status).await;
            let Some(victims) = choose(&draw, leader.map(|(l, _)| l), &busy, opts, net) else {
                // A zone that fits is not free yet: try again once something heals.
                next_fault = now + PROBE_EVERY;
                continue;
            };
            let victim = victims[0];
            let was_leader = leader.is_some_and(|(l, _)| victims.contains(&l));
            let at = Instant::now();
            let id = log.events.len();
            let detail = inject(cluster, net, draw.kind, &victims, draw.aux, id)?;
            *log.by_kind.entry(draw.kind).or_default() += 1;
            info!(nodes = ?victims, kind = ?draw.kind, was_leader, hold_ms = draw.hold.as_millis() as u64, detail, "--- fault");
            log.leader_faults += usize::from(was_leader);
            let at_s = (at - start).as_secs_f64();
            log.events.push(FaultEvent {
                at_s,
                node: victim,
                kind: draw.kind,
                was_leader,
                detail,
                held_s: 0.0,
                recovered_s: None,
            });
            // Nothing stays broken past the faulty phase.
            let heal_at = (at + draw.hold).min(until);
            if let Some((leader, term)) = leader
                && was_leader
                && draw.kind.unseats()
            {
                let key = format!("chaos-failover-{:016x}-{id}", opts.seed);
                match Probe::new(cluster, draw.kind, leader, &victims, term, at, at_s, heal_at, key).await {
                    Ok(probe) => {
                        probes.spawn(probe.run());
                    }
                    Err(e) => warn!(error = %format!("{e:#}"), "could not start a failover probe"),
                }
            }
            active.insert(
                id,
                Active {
                    kind: draw.kind,
                    event: id,
                    nodes: victims,
                    phase: Phase::Down { heal_at },
                },
            );
            draw = Draw::new(rng, &mut deck, opts.max_fault);
            next_fault = at + draw.gap;
        }
    }
    while let Some(sample) = probes.join_next().await {
        log.failovers.push(sample?);
    }
    log.failovers.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(log)
}

/// The nodes under some fault.
fn faulty(active: &BTreeMap<usize, Active>) -> BTreeSet<usize> {
    active.values().flat_map(|a| a.nodes.iter().copied()).collect()
}

/// The nodes the drawn fault hits: the leader or a node drawn among the free ones, or for a
/// zone cut the zone of that node if it fits (else a zone that does); `None` when no zone
/// fits now.
fn choose(
    draw: &Draw,
    leader: Option<usize>,
    busy: &BTreeSet<usize>,
    opts: &ChaosOptions,
    net: Option<&Net>,
) -> Option<Vec<usize>> {
    let free: Vec<usize> = (0..opts.nodes).filter(|i| !busy.contains(i)).collect();
    let victim = match leader {
        Some(l) if draw.at_leader && !busy.contains(&l) => l,
        _ => free[(draw.pick % free.len() as u64) as usize],
    };
    let (FaultKind::ZonePartition, Some(net)) = (draw.kind, net) else {
        return Some(vec![victim]);
    };
    let room = opts.max_faulty() - busy.len();
    let fits = |zone: &Vec<usize>| zone.len() <= room && zone.iter().all(|n| !busy.contains(n));
    let topology = &net.topology;
    let own = topology.zone_members(topology.zone_of[victim]);
    if fits(&own) {
        return Some(own);
    }
    let zones: Vec<Vec<usize>> = (0..topology.zones())
        .map(|z| topology.zone_members(z))
        .filter(fits)
        .collect();
    (!zones.is_empty()).then(|| zones[(draw.aux % zones.len() as u64) as usize].clone())
}

/// Breaks `victims` as `kind` says; returns the detail of a network fault.
fn inject(
    cluster: &mut Cluster,
    net: Option<&Net>,
    kind: FaultKind,
    victims: &[usize],
    aux: u64,
    id: usize,
) -> Result<Option<String>> {
    for &victim in victims {
        match kind {
            FaultKind::Kill => cluster.kill9(victim)?,
            FaultKind::Stop => cluster.freeze(victim)?,
            // Never drawn: the deck deals the kinds asked for, and a crash is not one.
            FaultKind::Crash => debug_assert!(false, "a crash drawn as a fault"),
            _ => {}
        }
    }
    if !kind.is_network() {
        return Ok(None);
    }
    let net = net.ok_or_else(|| anyhow::anyhow!("a network fault without --net"))?;
    Ok(Some(net.inject(id as u64, kind, victims, aux)))
}

/// Ends the fault `a`: restarts, thaws or lifts it.
fn heal(cluster: &mut Cluster, net: Option<&Net>, a: &Active) -> Result<()> {
    for &node in &a.nodes {
        match a.kind {
            FaultKind::Kill | FaultKind::Crash => cluster.spawn_again(node)?,
            FaultKind::Stop => cluster.resume(node)?,
            _ => {}
        }
    }
    if let (true, Some(net)) = (a.kind.is_network(), net) {
        net.heal(a.event as u64);
    }
    Ok(())
}

/// For a healed fault: `Some(true)` when all its nodes serve again, `Some(false)` when one
/// did not in time or exited (a violation, logged), `None` while they are still recovering
/// (or the fault is not healed yet).
async fn recovery(
    cluster: &mut Cluster,
    a: &Active,
    log: &mut FaultLog,
    ready_timeout: Duration,
) -> Option<bool> {
    let Phase::Recovering { give_up_at, .. } = a.phase else {
        return None;
    };
    let mut all_ready = true;
    for &node in &a.nodes {
        match cluster.probe_ready(node, PROBE_TIMEOUT).await {
            Ok(true) => {}
            Ok(false) if Instant::now() < give_up_at => all_ready = false,
            Ok(false) => {
                warn!(node, "node did not serve again");
                log.violations.push(format!(
                    "node {node} did not serve within {ready_timeout:?} of its {}; log:\n{}",
                    a.kind.recovery(),
                    cluster.log_tail(node)
                ));
                return Some(false);
            }
            Err(e) => {
                warn!(node, error = %format!("{e:#}"), "node exited while recovering");
                log.violations.push(format!(
                    "node {node} exited after its {}: {e:#}",
                    a.kind.recovery()
                ));
                return Some(false);
            }
        }
    }
    all_ready.then_some(true)
}

/// Nodes whose process is not under a fault must be running: one that exited by itself
/// crashed. It is reported and restarted, and recovers like a killed node (holding a fault
/// slot meanwhile, unless a network fault holds it already).
fn check_alive(
    cluster: &mut Cluster,
    active: &mut BTreeMap<usize, Active>,
    log: &mut FaultLog,
    ready_timeout: Duration,
    start: Instant,
) -> Result<()> {
    let stopped: BTreeSet<usize> = active
        .values()
        .filter(|a| a.kind.is_process())
        .flat_map(|a| a.nodes.iter().copied())
        .collect();
    let held = faulty(active);
    for node in 0..cluster.addrs().len() {
        if stopped.contains(&node) {
            continue;
        }
        if let Err(e) = cluster.check_alive(node) {
            warn!(node, error = %format!("{e:#}"), "node exited by itself");
            log.violations
                .push(format!("node {node} exited without being killed: {e:#}"));
            cluster.spawn_again(node)?;
            *log.by_kind.entry(FaultKind::Crash).or_default() += 1;
            if held.contains(&node) {
                continue;
            }
            let id = log.events.len();
            log.events.push(FaultEvent {
                at_s: start.elapsed().as_secs_f64(),
                node,
                kind: FaultKind::Crash,
                was_leader: false,
                detail: None,
                held_s: 0.0,
                recovered_s: None,
            });
            active.insert(
                id,
                Active {
                    kind: FaultKind::Crash,
                    event: id,
                    nodes: vec![node],
                    phase: Phase::Recovering {
                        since: Instant::now(),
                        give_up_at: Instant::now() + ready_timeout,
                    },
                },
            );
        }
    }
    Ok(())
}

/// The index of the node the cluster's leader is, and its term, as some node tells; `None`
/// when unknown.
async fn leader(cluster: &Cluster, status: &Client) -> Option<(usize, u64)> {
    let s = status.status().await.ok()?;
    let leader = s.leader_id?;
    let addr = &s.members.iter().find(|m| m.id == leader)?.addr;
    let index = cluster.addrs().iter().position(|a| a == addr)?;
    Some((index, s.term))
}

#[cfg(test)]
mod tests;
