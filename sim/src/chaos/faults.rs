//! The fault loop of `sim chaos`: from a seeded RNG, every so often it picks a node and either
//! SIGKILLs it (restarting it after a delay) or freezes it with SIGSTOP (thawing it with SIGCONT
//! after a delay). At most [`ChaosOptions::max_faulty`] nodes are faulty at once; a node counts
//! as faulty until it serves again after its restart or thaw. Restarts and thaws happen on
//! time and never wait for one another: the loop polls recovering nodes instead of blocking on
//! them. Faults drawn after the end of the faulty phase are not injected, and a fault still
//! active then is healed at once, so the loop ends by itself shortly after `until`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use flotilla_client::{Client, RetryPolicy};
use rand::RngExt;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::ChaosOptions;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL, then a restart on the same address and data directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Stop,
    /// Not injected: the node exited by itself (a violation), and was restarted at once.
    Crash,
}

/// One injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultEvent {
    /// Seconds since the faulty phase began.
    pub at_s: f64,
    /// Index of the node (0-based, in start order).
    pub node: usize,
    pub kind: FaultKind,
    /// Whether the node led the cluster as far as a status call could tell.
    pub was_leader: bool,
    /// Seconds until the restart or thaw was begun (the node then still has to catch up).
    pub held_s: f64,
    /// Seconds from the restart or thaw until the node saw a leader again (`None`: it did not
    /// within the ready timeout).
    pub recovered_s: Option<f64>,
}

/// Everything the fault loop did, and what it found wrong on its own.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub events: Vec<FaultEvent>,
    pub kills: usize,
    pub stops: usize,
    /// Faults that hit the node believed to lead.
    pub leader_faults: usize,
    /// Nodes that exited without being killed, nodes that did not serve again in time.
    pub violations: Vec<String>,
}

/// One fault's random choices, drawn together in a fixed order.
struct Draw {
    /// Pause before the fault, after the previous one healed.
    gap: Duration,
    kind: FaultKind,
    hold: Duration,
    at_leader: bool,
    pick: u64,
}

impl Draw {
    fn new(rng: &mut StdRng, kinds: &mut Kinds, max_fault: Duration) -> Draw {
        let max_hold_ms = (max_fault.as_millis() as u64).max(MIN_FAULT_MS);
        Draw {
            gap: Duration::from_millis(rng.random_range(GAP_MS.0..=GAP_MS.1)),
            kind: kinds.next(rng),
            hold: Duration::from_millis(rng.random_range(MIN_FAULT_MS..=max_hold_ms)),
            at_leader: rng.random_bool(LEADER_BIAS),
            pick: rng.random(),
        }
    }
}

/// Fault kinds dealt in shuffled pairs (a kill and a stop, in random order), so every two
/// faults in a row include a kill: a run of a few faults always crashes a node, whatever the
/// seed, instead of only very probably.
#[derive(Default)]
struct Kinds {
    next: Option<FaultKind>,
}

impl Kinds {
    fn next(&mut self, rng: &mut StdRng) -> FaultKind {
        self.next.take().unwrap_or_else(|| {
            let (first, second) = if rng.random_bool(0.5) {
                (FaultKind::Kill, FaultKind::Stop)
            } else {
                (FaultKind::Stop, FaultKind::Kill)
            };
            self.next = Some(second);
            first
        })
    }
}

/// A fault in progress.
struct Active {
    kind: FaultKind,
    /// Index of its [`FaultEvent`] in the log.
    event: usize,
    phase: Phase,
}

enum Phase {
    /// Killed or frozen until `heal_at`.
    Down { heal_at: Instant },
    /// Restarted or thawed at `since`; faulty until it serves again, or `give_up_at`.
    Recovering { since: Instant, give_up_at: Instant },
}

/// Injects faults from `start` until `until`, then heals the ones still active (see the module
/// docs). A drawn fault waits for a free slot (fewer than a minority faulty) and is then
/// injected, so the faults made are the faults drawn. Errors are harness failures (a node
/// could not be signalled or spawned).
pub async fn run(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    opts: &ChaosOptions,
    start: Instant,
    until: Instant,
) -> Result<FaultLog> {
    let mut log = FaultLog::default();
    // A status client that gives up quickly: one node may be frozen.
    let status = Client::builder(cluster.addrs())
        .request_timeout(Duration::from_millis(500))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(2),
            ..RetryPolicy::default()
        })
        .build()
        .await?;
    let mut active: BTreeMap<usize, Active> = BTreeMap::new();
    let mut kinds = Kinds::default();
    let mut draw = Draw::new(rng, &mut kinds, opts.max_fault);
    let mut next_fault = start + draw.gap;
    loop {
        let now = Instant::now();
        let slot_free = active.len() < opts.max_faulty();
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

        // Restart or thaw what is due, all before waiting for any of them.
        let now = Instant::now();
        for (node, a) in active.iter_mut() {
            if let Phase::Down { heal_at } = a.phase
                && heal_at <= now
            {
                info!(node, kind = ?a.kind, "--- heal");
                log.events[a.event].held_s = (now - start).as_secs_f64() - log.events[a.event].at_s;
                match a.kind {
                    FaultKind::Kill | FaultKind::Crash => cluster.spawn_again(*node)?,
                    FaultKind::Stop => cluster.resume(*node)?,
                }
                a.phase = Phase::Recovering {
                    since: now,
                    give_up_at: now + opts.ready_timeout,
                };
            }
        }
        let mut recovered = Vec::new();
        for (node, a) in active.iter() {
            let Phase::Recovering { since, give_up_at } = a.phase else {
                continue;
            };
            match cluster.probe_ready(*node, PROBE_TIMEOUT).await {
                Ok(true) => {
                    log.events[a.event].recovered_s = Some(since.elapsed().as_secs_f64());
                    recovered.push(*node);
                }
                Ok(false) if Instant::now() < give_up_at => {}
                Ok(false) => {
                    warn!(node, "node did not serve again");
                    log.violations.push(format!(
                        "node {node} did not serve within {:?} of its {}; log:\n{}",
                        opts.ready_timeout,
                        a.kind.recovery(),
                        cluster.log_tail(*node)
                    ));
                    recovered.push(*node);
                }
                Err(e) => {
                    warn!(node, error = %format!("{e:#}"), "node exited while recovering");
                    log.violations.push(format!(
                        "node {node} exited after its {}: {e:#}",
                        a.kind.recovery()
                    ));
                    recovered.push(*node);
                }
            }
        }
        for node in recovered {
            active.remove(&node);
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
        if active.len() < opts.max_faulty() && next_fault <= now && now < until {
            let leader = leader_index(cluster, &status).await;
            let candidates: Vec<usize> = (0..opts.nodes).filter(|i| !active.contains_key(i)).collect();
            let victim = match leader {
                Some(l) if draw.at_leader && !active.contains_key(&l) => l,
                _ => candidates[(draw.pick % candidates.len() as u64) as usize],
            };
            let was_leader = leader == Some(victim);
            let at = Instant::now();
            match draw.kind {
                FaultKind::Kill => {
                    cluster.kill9(victim)?;
                    log.kills += 1;
                }
                FaultKind::Stop => {
                    cluster.freeze(victim)?;
                    log.stops += 1;
                }
                // Never drawn: `Kinds` deals kills and stops only.
                FaultKind::Crash => debug_assert!(false, "a crash drawn as a fault"),
            }
            info!(node = victim, kind = ?draw.kind, was_leader, hold_ms = draw.hold.as_millis() as u64, "--- fault");
            log.leader_faults += usize::from(was_leader);
            log.events.push(FaultEvent {
                at_s: (at - start).as_secs_f64(),
                node: victim,
                kind: draw.kind,
                was_leader,
                held_s: 0.0,
                recovered_s: None,
            });
            active.insert(
                victim,
                Active {
                    kind: draw.kind,
                    event: log.events.len() - 1,
                    phase: Phase::Down {
                        // Nothing stays broken past the faulty phase.
                        heal_at: (at + draw.hold).min(until),
                    },
                },
            );
            draw = Draw::new(rng, &mut kinds, opts.max_fault);
            next_fault = at + draw.gap;
        }
    }
    Ok(log)
}

impl FaultKind {
    fn recovery(self) -> &'static str {
        match self {
            FaultKind::Kill | FaultKind::Crash => "restart",
            FaultKind::Stop => "thaw",
        }
    }
}

/// Nodes not under a fault must be running: one that exited by itself crashed. It is reported
/// and restarted, and recovers like a killed node (holding a fault slot meanwhile).
fn check_alive(
    cluster: &mut Cluster,
    active: &mut BTreeMap<usize, Active>,
    log: &mut FaultLog,
    ready_timeout: Duration,
    start: Instant,
) -> Result<()> {
    for node in 0..cluster.addrs().len() {
        if active.contains_key(&node) {
            continue;
        }
        if let Err(e) = cluster.check_alive(node) {
            warn!(node, error = %format!("{e:#}"), "node exited by itself");
            log.violations
                .push(format!("node {node} exited without being killed: {e:#}"));
            cluster.spawn_again(node)?;
            log.events.push(FaultEvent {
                at_s: start.elapsed().as_secs_f64(),
                node,
                kind: FaultKind::Crash,
                was_leader: false,
                held_s: 0.0,
                recovered_s: None,
            });
            active.insert(
                node,
                Active {
                    kind: FaultKind::Crash,
                    event: log.events.len() - 1,
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

/// The index of the node the cluster's leader is, as some node tells; `None` when unknown.
async fn leader_index(cluster: &Cluster, status: &Client) -> Option<usize> {
    let s = status.status().await.ok()?;
    let leader = s.leader_id?;
    let addr = &s.members.iter().find(|m| m.id == leader)?.addr;
    cluster.addrs().iter().position(|a| a == addr)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_two_faults_in_a_row_include_a_kill_and_a_stop() {
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut kinds = Kinds::default();
            let dealt: Vec<FaultKind> = (0..10).map(|_| kinds.next(&mut rng)).collect();
            for pair in dealt.chunks(2) {
                assert!(
                    pair.contains(&FaultKind::Kill) && pair.contains(&FaultKind::Stop),
                    "{dealt:?}"
                );
            }
        }
    }

    #[test]
    fn draws_depend_on_the_seed_only_and_stay_in_bounds() {
        let max = Duration::from_secs(3);
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut kinds = Kinds::default();
            (0..50)
                .map(|_| {
                    let d = Draw::new(&mut rng, &mut kinds, max);
                    (d.gap, d.kind, d.hold, d.at_leader, d.pick)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(9), draws(9));
        assert_ne!(draws(9), draws(10));
        for (gap, _, hold, _, _) in draws(9) {
            assert!(gap >= Duration::from_millis(GAP_MS.0) && gap <= Duration::from_millis(GAP_MS.1));
            assert!(hold >= Duration::from_millis(MIN_FAULT_MS) && hold <= max);
        }
    }
}
