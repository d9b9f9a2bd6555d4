//! [`Injector`]: starts a fault now and then during the faulty phase (kind, victims and length
//! drawn from the run's seed and the cluster as it is), undoes each when its time is up, and
//! [`Injector::heal`]s everything when the faulty phase ends.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use turmoil::Sim;

use super::node::NodeSlot;
use super::plan::FaultKind;
use super::plan::Plan;
use super::workload::Shared;

/// How to end a fault.
#[derive(Debug)]
enum Undo {
    Restart(usize),
    Repair(Vec<(String, String)>),
    RepairOneway(Vec<(String, String)>),
    Lossless(Vec<(String, String)>),
    Latency(Vec<(String, String)>),
    Release(Vec<(String, String)>),
    DiskSpeed(usize),
    /// Replacement in progress: bring the new node up once the old one is out.
    Replace,
}

#[derive(Debug)]
struct Active {
    until_ms: u64,
    undo: Undo,
}

/// Node slots that a fault may need to add (a replacement node).
pub trait Cluster {
    fn slots(&mut self) -> &mut Vec<NodeSlot>;
    /// Remove node `index` from the cluster, crash it for good, and start a fresh node that
    /// joins in its place. Returns false when it could not start (e.g. no leader to ask yet).
    fn replace(&mut self, sim: &mut Sim<'_>, index: usize) -> bool;
}

/// See the module docs.
pub struct Injector {
    rng: SmallRng,
    next_at_ms: u64,
    active: Vec<Active>,
    pub counts: BTreeMap<FaultKind, u32>,
    base_latency: Duration,
}

impl Injector {
    pub fn new(plan: &Plan) -> Injector {
        Injector {
            rng: SmallRng::seed_from_u64(plan.seed ^ 0xfa17_5eed),
            // Let the cluster form first.
            next_at_ms: 3_000,
            active: Vec::new(),
            counts: BTreeMap::new(),
            base_latency: Duration::from_millis(plan.net_max_latency_ms),
        }
    }

    /// End the faults (and restarts) due at `now_ms`; with `start`, start one if it is time.
    pub fn step(
        &mut self,
        now_ms: u64,
        start: bool,
        sim: &mut Sim<'_>,
        cluster: &mut dyn Cluster,
        shared: &Shared,
    ) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].until_ms <= now_ms {
                let fault = self.active.swap_remove(i);
                self.undo(fault.undo, sim, cluster, shared);
            } else {
                i += 1;
            }
        }
        if start && now_ms >= self.next_at_ms {
            let plan = &shared.plan;
            let (lo, hi) = plan.fault_every_ms;
            self.next_at_ms = now_ms + self.rng.random_range(lo..=hi);
            let kind = plan.faults[self.rng.random_range(0..plan.faults.len())];
            self.start(kind, now_ms, sim, cluster, shared);
        }
    }

    /// Restart, half a second from now, every node whose process stopped with an error.
    pub fn restart_exited(&mut self, now_ms: u64, cluster: &mut dyn Cluster, shared: &Shared) {
        for i in 0..cluster.slots().len() {
            let slot = &mut cluster.slots()[i];
            if slot.exited.swap(false, Ordering::SeqCst) && slot.up && !slot.retired {
                slot.up = false;
                *slot.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
                shared.event(format!("{} will be restarted", slot.name));
                self.active.push(Active {
                    until_ms: now_ms + 500,
                    undo: Undo::Restart(i),
                });
            }
        }
    }

    /// End every fault and restart every crashed node: the healed phase begins.
    pub fn heal(&mut self, sim: &mut Sim<'_>, cluster: &mut dyn Cluster, shared: &Shared) {
        for fault in std::mem::take(&mut self.active) {
            self.undo(fault.undo, sim, cluster, shared);
        }
        for i in 0..cluster.slots().len() {
            let slot = &mut cluster.slots()[i];
            if !slot.up && !slot.retired {
                restart(sim, slot, shared);
            }
            slot.disk
                .set_sync_latency(Duration::from_micros(shared.plan.disk_sync_us));
        }
        shared.event("healed: every fault undone, every node up");
    }

    fn start(
        &mut self,
        kind: FaultKind,
        now_ms: u64,
        sim: &mut Sim<'_>,
        cluster: &mut dyn Cluster,
        shared: &Shared,
    ) {
        let live: Vec<usize> = (0..cluster.slots().len())
            .filter(|&i| !cluster.slots()[i].retired)
            .collect();
        let up: Vec<usize> = live.iter().copied().filter(|&i| cluster.slots()[i].up).collect();
        if up.is_empty() {
            return;
        }
        let leader = up.iter().copied().find(|&i| {
            cluster.slots()[i]
                .running()
                .is_some_and(|r| r.metrics().state.is_leader())
        });
        // Half the time a fault aims at the leader, when there is one.
        let victim = match leader {
            Some(l) if self.rng.random_bool(0.5) => l,
            _ => up[self.rng.random_range(0..up.len())],
        };
        let names: Vec<String> = live.iter().map(|&i| cluster.slots()[i].name.clone()).collect();
        let victim_name = cluster.slots()[victim].name.clone();
        let others: Vec<String> = names.iter().filter(|n| **n != victim_name).cloned().collect();
        let duration = |rng: &mut SmallRng, lo: u64, hi: u64| now_ms + rng.random_range(lo..=hi);
        let undo = match kind {
            FaultKind::Crash if self.rng.random_bool(0.15) => {
                // A power cut: every node at once. Whatever was acknowledged must have been
                // synced by a quorum, so it survives.
                for &i in &up {
                    let slot = &mut cluster.slots()[i];
                    sim.crash(slot.name.as_str());
                    slot.up = false;
                    *slot.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let until_ms = duration(&mut self.rng, 100, 2_000);
                    self.active.push(Active {
                        until_ms,
                        undo: Undo::Restart(i),
                    });
                }
                shared.event("fault: power cut, every node crashes");
                *self.counts.entry(kind).or_default() += 1;
                return;
            }
            FaultKind::Crash => {
                let down = live.len() - up.len();
                // A majority may go down too (safety must hold regardless), but rarely.
                let majority_ok = self.rng.random_bool(0.25);
                if live.len() > 1 && down + 1 > (live.len() - 1) / 2 && !majority_ok {
                    return;
                }
                let slot = &mut cluster.slots()[victim];
                sim.crash(slot.name.as_str());
                slot.up = false;
                *slot.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
                shared.event(format!("fault: crash {}", slot.name));
                Active {
                    until_ms: duration(&mut self.rng, 100, 3_000),
                    undo: Undo::Restart(victim),
                }
            }
            FaultKind::Partition => {
                // A minority side that holds the victim; the rest on the other side.
                let mut side = vec![victim_name.clone()];
                let extra = (names.len() - 1) / 2;
                for n in &others {
                    if side.len() <= extra && self.rng.random_bool(0.5) {
                        side.push(n.clone());
                    }
                }
                let pairs = cross(&side, &names);
                for (a, b) in &pairs {
                    sim.partition(a.as_str(), b.as_str());
                }
                shared.event(format!("fault: partition {side:?} from the rest"));
                Active {
                    until_ms: duration(&mut self.rng, 300, 4_000),
                    undo: Undo::Repair(pairs),
                }
            }
            FaultKind::AsymmetricPartition => {
                let outbound = self.rng.random_bool(0.5);
                let pairs: Vec<(String, String)> = others
                    .iter()
                    .map(|o| {
                        if outbound {
                            (victim_name.clone(), o.clone())
                        } else {
                            (o.clone(), victim_name.clone())
                        }
                    })
                    .collect();
                for (from, to) in &pairs {
                    sim.partition_oneway(from.as_str(), to.as_str());
                }
                let dir = if outbound { "cannot send" } else { "cannot hear" };
                shared.event(format!("fault: {victim_name} {dir} (one-way partition)"));
                Active {
                    until_ms: duration(&mut self.rng, 300, 3_000),
                    undo: Undo::RepairOneway(pairs),
                }
            }
            FaultKind::MessageLoss => {
                let rate = self.rng.random_range(0.01..0.2);
                let pairs = cross(std::slice::from_ref(&victim_name), &others);
                for (a, b) in &pairs {
                    sim.set_link_fail_rate(a.as_str(), b.as_str(), rate);
                }
                shared.event(format!(
                    "fault: {victim_name}'s links drop {:.0}% of messages",
                    rate * 100.0
                ));
                Active {
                    until_ms: duration(&mut self.rng, 300, 3_000),
                    undo: Undo::Lossless(pairs),
                }
            }
            FaultKind::Delay => {
                let max = Duration::from_millis(self.rng.random_range(20..=400));
                let pairs = cross(std::slice::from_ref(&victim_name), &others);
                for (a, b) in &pairs {
                    sim.set_link_max_message_latency(a.as_str(), b.as_str(), max);
                }
                shared.event(format!(
                    "fault: {victim_name}'s links delay messages up to {max:?}"
                ));
                Active {
                    until_ms: duration(&mut self.rng, 500, 4_000),
                    undo: Undo::Latency(pairs),
                }
            }
            FaultKind::Hold => {
                let pairs = cross(std::slice::from_ref(&victim_name), &others);
                for (a, b) in &pairs {
                    sim.hold(a.as_str(), b.as_str());
                }
                shared.event(format!("fault: hold {victim_name}'s messages"));
                Active {
                    until_ms: duration(&mut self.rng, 100, 2_000),
                    undo: Undo::Release(pairs),
                }
            }
            FaultKind::SlowDisk => {
                let latency = Duration::from_millis(self.rng.random_range(20..=300));
                cluster.slots()[victim].disk.set_sync_latency(latency);
                shared.event(format!("fault: {victim_name}'s disk syncs take {latency:?}"));
                Active {
                    until_ms: duration(&mut self.rng, 500, 4_000),
                    undo: Undo::DiskSpeed(victim),
                }
            }
            FaultKind::ClockJump => {
                let jump = self.rng.random_range(-3_000i64..=5_000);
                let slot = &cluster.slots()[victim];
                let skew = slot.clock.skew_ms.fetch_add(jump, Ordering::Relaxed) + jump;
                shared.event(format!(
                    "fault: {victim_name}'s clock jumps {jump} ms (skew now {skew} ms)"
                ));
                *self.counts.entry(kind).or_default() += 1;
                return;
            }
            FaultKind::Replace => {
                if live.len() < 3
                    || up.len() < live.len()
                    || self.active.iter().any(|a| matches!(a.undo, Undo::Replace))
                {
                    return;
                }
                if !cluster.replace(sim, victim) {
                    return;
                }
                Active {
                    until_ms: now_ms,
                    undo: Undo::Replace,
                }
            }
        };
        *self.counts.entry(kind).or_default() += 1;
        self.active.push(undo);
    }

    fn undo(&mut self, undo: Undo, sim: &mut Sim<'_>, cluster: &mut dyn Cluster, shared: &Shared) {
        match undo {
            Undo::Restart(i) => {
                let slot = &mut cluster.slots()[i];
                if !slot.up && !slot.retired {
                    restart(sim, slot, shared);
                }
            }
            Undo::Repair(pairs) => {
                for (a, b) in &pairs {
                    sim.repair(a.as_str(), b.as_str());
                }
                shared.event("repaired partition");
            }
            Undo::RepairOneway(pairs) => {
                for (a, b) in &pairs {
                    sim.repair_oneway(a.as_str(), b.as_str());
                }
                shared.event("repaired one-way partition");
            }
            Undo::Lossless(pairs) => {
                for (a, b) in &pairs {
                    sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                    sim.repair(a.as_str(), b.as_str());
                }
                shared.event("links lossless again");
            }
            Undo::Latency(pairs) => {
                for (a, b) in &pairs {
                    sim.set_link_max_message_latency(a.as_str(), b.as_str(), self.base_latency);
                }
                shared.event("link latency back to normal");
            }
            Undo::Release(pairs) => {
                for (a, b) in &pairs {
                    sim.release(a.as_str(), b.as_str());
                }
                shared.event("released held messages");
            }
            Undo::DiskSpeed(i) => {
                let slot = &cluster.slots()[i];
                slot.disk
                    .set_sync_latency(Duration::from_micros(shared.plan.disk_sync_us));
                shared.event(format!("{}'s disk fast again", slot.name));
            }
            Undo::Replace => {}
        }
    }
}

fn restart(sim: &mut Sim<'_>, slot: &mut NodeSlot, shared: &Shared) {
    sim.bounce(slot.name.as_str());
    slot.up = true;
    shared.event(format!("restart {}", slot.name));
}

/// Every pair (a, b) with a in `side` and b in `all` but not in `side`.
fn cross(side: &[String], all: &[String]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for a in side {
        for b in all.iter().filter(|b| !side.contains(b)) {
            pairs.push((a.clone(), b.clone()));
        }
    }
    pairs
}
