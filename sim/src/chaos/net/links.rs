//! The link model of the switch, pure: what a frame from one port to another meets. The base
//! is the WAN: half the round trip between the two nodes' zones. Network faults lay
//! [`Overlay`]s on top (a cut, loss, extra delay and jitter) and lift them when they heal.
//!
//! Overlays concern frames between nodes only: the clients' port always reaches every node at
//! once (the harness's clients stand for clients in every data center; a node cut off from its
//! peers still answers its own clients, and must not acknowledge what it cannot commit).
//!
//! Frames of one ordered pair leave in the order they came ([`Links::verdict`] never lets a
//! frame overtake an earlier one): a WAN path reorders little, and TCP takes reordering for
//! loss. Time and randomness come from the caller, so every rule is tested without a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::time::Instant;

use super::topology::Topology;

/// What frames of one ordered pair of ports meet.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shape {
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much more, uniformly.
    pub jitter: Duration,
    /// Chance that a frame is lost.
    pub loss: f64,
    /// Every frame is dropped.
    pub cut: bool,
}

/// A network fault's effect, until it is removed.
#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    /// Frames between any node of `side` and any node outside it are dropped, both ways;
    /// frames within either side still flow.
    Split { side: BTreeSet<usize> },
    /// Frames from any node of `from` to any node of `to` are dropped (one way).
    Cut {
        from: BTreeSet<usize>,
        to: BTreeSet<usize>,
    },
    /// Frames between any of `nodes` and any other node are lost with chance `chance`.
    Loss { nodes: BTreeSet<usize>, chance: f64 },
    /// Frames between any of `nodes` and any other node take `extra` longer, plus up to
    /// `jitter`.
    Delay {
        nodes: BTreeSet<usize>,
        extra: Duration,
        jitter: Duration,
    },
}

/// What becomes of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Lost: cut, or drawn as lost.
    Drop,
    /// Delivered at once.
    Now,
    /// Delivered at this moment.
    At(Instant),
}

/// Frames the switch handled, by fate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FrameCounts {
    pub delivered_at_once: u64,
    pub delayed: u64,
    pub cut: u64,
    pub lost: u64,
}

/// The link model: the WAN base, the overlays of the faults in force, and per pair the time
/// its last frame leaves.
pub struct Links {
    /// One-way delay between nodes (node × node).
    base: Vec<Vec<Duration>>,
    overlays: BTreeMap<u64, Overlay>,
    tails: BTreeMap<(usize, usize), Instant>,
    rng: StdRng,
    pub counts: FrameCounts,
}

impl Links {
    /// The WAN of `topology`, no fault in force; loss and jitter draw from `rng`.
    pub fn new(topology: &Topology, rng: StdRng) -> Links {
        let n = topology.nodes();
        Links {
            base: (0..n)
                .map(|a| (0..n).map(|b| topology.one_way(a, b)).collect())
                .collect(),
            overlays: BTreeMap::new(),
            tails: BTreeMap::new(),
            rng,
            counts: FrameCounts::default(),
        }
    }

    /// Puts `overlay` in force under `id` (the fault's).
    pub fn add(&mut self, id: u64, overlay: Overlay) {
        self.overlays.insert(id, overlay);
    }

    /// Lifts the overlay of fault `id`.
    pub fn remove(&mut self, id: u64) {
        self.overlays.remove(&id);
    }

    /// What a frame from port `from` to port `to` meets now.
    pub fn shape(&self, from: usize, to: usize) -> Shape {
        let nodes = self.base.len();
        if from >= nodes || to >= nodes {
            // The clients' port: never delayed nor faulted.
            return Shape::default();
        }
        let mut shape = Shape {
            delay: self.base[from][to],
            ..Shape::default()
        };
        let touches = |set: &BTreeSet<usize>| set.contains(&from) || set.contains(&to);
        for overlay in self.overlays.values() {
            match overlay {
                Overlay::Split { side } => shape.cut |= side.contains(&from) != side.contains(&to),
                Overlay::Cut { from: f, to: t } => shape.cut |= f.contains(&from) && t.contains(&to),
                Overlay::Loss { nodes, chance } if touches(nodes) => {
                    // Independent losses: a frame survives both.
                    shape.loss = 1.0 - (1.0 - shape.loss) * (1.0 - chance);
                }
                Overlay::Delay { nodes, extra, jitter } if touches(nodes) => {
                    shape.delay += *extra;
                    shape.jitter += *jitter;
                }
                Overlay::Loss { .. } | Overlay::Delay { .. } => {}
            }
        }
        shape
    }

    /// The fate of a frame from port `from` to port `to` that arrived at `now`.
    pub fn verdict(&mut self, from: usize, to: usize, now: Instant) -> Verdict {
        let shape = self.shape(from, to);
        if shape.cut {
            self.counts.cut += 1;
            return Verdict::Drop;
        }
        if shape.loss > 0.0 && self.rng.random_bool(shape.loss.min(1.0)) {
            self.counts.lost += 1;
            return Verdict::Drop;
        }
        let jitter = if shape.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rng.random_range(0..=shape.jitter.as_micros() as u64))
        };
        let due = now + shape.delay + jitter;
        // Never before the pair's previous frame.
        let tail = self.tails.entry((from, to)).or_insert(now);
        let at = due.max(*tail);
        *tail = at;
        if at <= now {
            self.counts.delivered_at_once += 1;
            Verdict::Now
        } else {
            self.counts.delayed += 1;
            Verdict::At(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn links(nodes: usize) -> (Topology, Links) {
        let mut rng = StdRng::seed_from_u64(1);
        let topology = Topology::new(1, nodes, 3, 30..=80, &mut rng);
        let links = Links::new(&topology, StdRng::seed_from_u64(2));
        (topology, links)
    }

    fn set(nodes: &[usize]) -> BTreeSet<usize> {
        nodes.iter().copied().collect()
    }

    #[test]
    fn the_base_is_the_wan_and_the_clients_port_is_never_touched() {
        let (t, mut l) = links(3);
        let now = Instant::now();
        assert_eq!(l.verdict(0, 1, now), Verdict::At(now + t.one_way(0, 1)));
        assert!(t.one_way(0, 1) >= Duration::from_millis(15));
        let client = t.client_port();
        l.add(
            1,
            Overlay::Cut {
                from: set(&[0, 1, 2]),
                to: set(&[0, 1, 2]),
            },
        );
        l.add(
            2,
            Overlay::Loss {
                nodes: set(&[0, 1, 2]),
                chance: 1.0,
            },
        );
        assert_eq!(l.verdict(client, 0, now), Verdict::Now);
        assert_eq!(l.verdict(2, client, now), Verdict::Now);
        assert_eq!(l.verdict(0, 2, now), Verdict::Drop);
    }

    #[test]
    fn a_one_way_cut_drops_one_direction_until_it_is_lifted() {
        let (t, mut l) = links(3);
        let now = Instant::now();
        l.add(
            7,
            Overlay::Cut {
                from: set(&[0]),
                to: set(&[1, 2]),
            },
        );
        assert_eq!(l.verdict(0, 1, now), Verdict::Drop);
        assert_eq!(l.verdict(0, 2, now), Verdict::Drop);
        assert_ne!(l.verdict(1, 0, now), Verdict::Drop);
        assert_ne!(l.verdict(2, 1, now), Verdict::Drop);
        l.remove(7);
        assert_eq!(l.verdict(0, 1, now), Verdict::At(now + t.one_way(0, 1)));
        assert_eq!((l.counts.cut, l.counts.delayed), (2, 3));
    }

    #[test]
    fn a_split_cuts_across_it_both_ways_and_not_within_a_side() {
        let (_, mut l) = links(5);
        let now = Instant::now();
        l.add(1, Overlay::Split { side: set(&[0, 3]) });
        for (from, to, cut) in [
            (0, 1, true),
            (1, 0, true),
            (3, 4, true),
            (2, 3, true),
            (0, 3, false),
            (3, 0, false),
            (1, 2, false),
        ] {
            assert_eq!(l.verdict(from, to, now) == Verdict::Drop, cut, "{from} -> {to}");
        }
        l.remove(1);
        assert_ne!(l.verdict(0, 1, now), Verdict::Drop);
    }

    #[test]
    fn loss_drops_about_its_share_of_the_victims_frames_only() {
        let (_, mut l) = links(3);
        l.add(
            1,
            Overlay::Loss {
                nodes: set(&[2]),
                chance: 0.2,
            },
        );
        let now = Instant::now();
        let lost = (0..10_000)
            .filter(|i| l.verdict(2, i % 2, now) == Verdict::Drop)
            .count();
        assert!((1_700..2_300).contains(&lost), "{lost}");
        assert!((0..1_000).all(|_| l.verdict(0, 1, now) != Verdict::Drop));
        assert_eq!(l.counts.lost, lost as u64);
    }

    #[test]
    fn delay_and_jitter_add_up_and_never_reorder_a_pair() {
        let (t, mut l) = links(3);
        let extra = Duration::from_millis(100);
        let jitter = Duration::from_millis(50);
        l.add(
            1,
            Overlay::Delay {
                nodes: set(&[1]),
                extra,
                jitter,
            },
        );
        let start = Instant::now();
        let mut last = start;
        for i in 0..1_000u64 {
            let now = start + Duration::from_millis(i);
            let Verdict::At(at) = l.verdict(0, 1, now) else {
                panic!("not delayed");
            };
            let least = now + t.one_way(0, 1) + extra;
            assert!(at >= least, "too early");
            // Later than the jitter allows only to wait for the pair's previous frame.
            assert!(at <= least + jitter || at == last, "too late");
            assert!(at >= last, "reordered");
            last = at;
        }
        // Another pair is not held back by this one.
        assert_eq!(l.verdict(2, 0, start), Verdict::At(start + t.one_way(2, 0)));
    }

    #[test]
    fn overlapping_losses_combine_and_a_lifted_delay_keeps_the_order() {
        let (t, mut l) = links(3);
        l.add(
            1,
            Overlay::Loss {
                nodes: set(&[0]),
                chance: 0.5,
            },
        );
        l.add(
            2,
            Overlay::Loss {
                nodes: set(&[1]),
                chance: 0.5,
            },
        );
        assert!((l.shape(0, 1).loss - 0.75).abs() < 1e-9);
        assert!((l.shape(0, 2).loss - 0.5).abs() < 1e-9);
        l.remove(1);
        l.remove(2);
        l.add(
            3,
            Overlay::Delay {
                nodes: set(&[0]),
                extra: Duration::from_secs(1),
                jitter: Duration::ZERO,
            },
        );
        let now = Instant::now();
        let held = l.verdict(0, 1, now);
        l.remove(3);
        // The next frame would be due at once, but the held one goes first.
        assert_eq!(l.verdict(0, 1, now), held);
        assert_eq!(
            l.verdict(0, 1, now + Duration::from_secs(2)),
            Verdict::At(now + Duration::from_secs(2) + t.one_way(0, 1))
        );
    }
}
