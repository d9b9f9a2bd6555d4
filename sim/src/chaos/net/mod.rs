//! `sim chaos --net`: the chaos run with real network faults. Each node runs in its own
//! network namespace at its own address; a userspace switch joins them (and the clients) and
//! shapes every frame between nodes: the WAN delay between zones, and the network faults.
//!
//! - [`topology`]: names, addresses, zones and round trips (pure).
//! - [`links`]: what a frame between two ports meets: delay, jitter, loss, cuts (pure).
//! - [`switch`]: the TAP devices and the tasks that move frames between them.
//! - [`netns`]: namespaces (made, entered, removed, leftovers cleaned), the TAP devices' setup.
//!
//! Where the clients run: in a namespace of their own on the switch, like another data center
//! that reaches every node without delay. The whole run (cluster harness, clients, fault loop,
//! switch) is one tokio runtime on a thread moved into that namespace ([`netns::enter`]), so
//! every socket it opens is there; the host gets no address, route or link. The simplest that
//! is robust: no host veth to collide with a parallel run's, nothing to undo on the host.
//!
//! Clean-up: the run's namespaces are removed when [`run`] returns, fails, panics or is
//! dropped (Ctrl-C); the nodes are killed before, and the TAP devices vanish with the switch.
//! A run killed outright leaves namespaces that the next run removes ([`netns::clean_stale`]).

pub mod links;
pub mod netns;
pub mod switch;
pub mod topology;

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::info;

use super::faults::FaultKind;
use super::{ChaosError, ChaosOptions, ChaosReport, derive_seed};
use crate::bench::cluster::{Cluster, Placement};
use links::{FrameCounts, Links, Overlay};
use switch::Switch;
use topology::Topology;

/// The network of a `--net` run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// Zones (data centers): node `i` is in zone `i % zones`.
    pub zones: usize,
    /// The round trip between two zones is drawn from this range, per pair, in ms.
    pub wan_rtt_ms: RangeInclusive<u64>,
}

impl Default for NetOptions {
    /// Three data centers 30-80 ms apart.
    fn default() -> Self {
        NetOptions {
            zones: 3,
            wan_rtt_ms: 30..=80,
        }
    }
}

/// Raft timeouts for a WAN whose longest round trip is `max_rtt_ms`: the rule of the 3-DC
/// runbook (docs/OPERATIONS.md).
///
/// openraft gives a heartbeat RPC the heartbeat interval as its deadline, so the interval must
/// exceed the round trip with room to spare (twice it); the election timeout is at least three
/// heartbeats (openraft's own rule of thumb), and its upper bound twice its lower bound. Never
/// below the node's LAN defaults (50 ms, 150-300 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RaftTimeouts {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
}

impl RaftTimeouts {
    pub fn for_rtt(max_rtt_ms: u64) -> RaftTimeouts {
        let heartbeat = (2 * max_rtt_ms).max(50);
        let election = (3 * heartbeat).max(150);
        RaftTimeouts {
            heartbeat_interval_ms: heartbeat,
            election_timeout_ms_min: election,
            election_timeout_ms_max: 2 * election,
        }
    }

    /// The node flags that set them.
    pub fn node_args(&self) -> Vec<String> {
        [
            ("--heartbeat-interval-ms", self.heartbeat_interval_ms),
            ("--election-timeout-ms-min", self.election_timeout_ms_min),
            ("--election-timeout-ms-max", self.election_timeout_ms_max),
        ]
        .into_iter()
        .flat_map(|(flag, ms)| [flag.to_owned(), ms.to_string()])
        .collect()
    }
}

/// The network as the fault loop sees it: the layout, and the links to lay faults on.
pub struct Net {
    pub topology: Topology,
    links: Arc<Mutex<Links>>,
}

impl Net {
    /// Lays the fault `kind` on `victims` as overlay `id`; returns what it did, in words.
    pub fn inject(&self, id: u64, kind: FaultKind, victims: &[usize], aux: u64) -> String {
        let (overlay, detail) = overlay(kind, victims, &self.topology, aux);
        self.lock().add(id, overlay);
        detail
    }

    /// Lifts overlay `id`.
    pub fn heal(&self, id: u64) {
        self.lock().remove(id);
    }

    /// The frames switched so far, by fate.
    pub fn counts(&self) -> FrameCounts {
        self.lock().counts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The network of a run, for its report.
#[derive(Clone, Debug, Serialize)]
pub struct NetReport {
    pub topology: Topology,
    pub frames: FrameCounts,
}

/// The overlay of a network fault, and its detail in words. `aux` holds the fault's own draws.
pub fn overlay(kind: FaultKind, victims: &[usize], topology: &Topology, aux: u64) -> (Overlay, String) {
    let set: BTreeSet<usize> = victims.iter().copied().collect();
    let others: BTreeSet<usize> = (0..topology.nodes()).filter(|n| !set.contains(n)).collect();
    match kind {
        FaultKind::Partition | FaultKind::ZonePartition => {
            let zone = Topology::zone_name(topology.zone_of[victims[0]]);
            let detail = match kind {
                FaultKind::ZonePartition => format!("zone {zone} (nodes {victims:?}) cut off"),
                _ => format!("cut off (zone {zone})"),
            };
            (Overlay::Split { side: set }, detail)
        }
        FaultKind::OneWay if aux.is_multiple_of(2) => (
            Overlay::Cut {
                from: set,
                to: others,
            },
            "its frames to the other nodes dropped".to_owned(),
        ),
        FaultKind::OneWay => (
            Overlay::Cut {
                from: others,
                to: set,
            },
            "the other nodes' frames to it dropped".to_owned(),
        ),
        FaultKind::Loss => {
            let percent = 5 + aux % 26;
            (
                Overlay::Loss {
                    nodes: set,
                    chance: percent as f64 / 100.0,
                },
                format!("{percent} % of its frames lost"),
            )
        }
        _ => {
            let extra = 50 + aux % 251;
            (
                Overlay::Delay {
                    nodes: set,
                    extra: Duration::from_millis(extra),
                    jitter: Duration::from_millis(extra),
                },
                format!("+{extra} ms, up to {extra} ms of jitter"),
            )
        }
    }
}

/// Runs the chaos run of `opts` on the network of `net` (see the module docs).
pub async fn run(opts: &ChaosOptions, net: &NetOptions) -> Result<ChaosReport, ChaosError> {
    let began = Instant::now();
    netns::available().map_err(ChaosError::Net)?;
    netns::clean_stale().map_err(ChaosError::Net)?;
    let mut rng = StdRng::seed_from_u64(derive_seed(opts.seed, 1));
    let topology = Topology::new(
        std::process::id(),
        opts.nodes,
        net.zones,
        net.wan_rtt_ms.clone(),
        &mut rng,
    );
    info!(run = topology.run, zones = ?topology.zone_of, rtt_ms = ?topology.rtt_ms, "--- making the network");
    let namespaces = netns::Namespaces::create(topology.namespaces()).map_err(ChaosError::Net)?;
    let (done_tx, done_rx) = oneshot::channel();
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let thread = {
        let opts = opts.clone();
        std::thread::Builder::new()
            .name("chaos-net".into())
            .spawn(move || {
                let result = in_clients_namespace(opts, topology, began, cancel_rx);
                let _ = done_tx.send(result);
            })
            .map_err(|e| ChaosError::Net(e.into()))?
    };
    // Dropped first (declared last): cancels and joins the thread, whose runtime kills the
    // nodes, before `namespaces` removes the namespaces.
    let _thread = CancelOnDrop {
        cancel: Some(cancel_tx),
        thread: Some(thread),
    };
    let outcome = done_rx
        .await
        .unwrap_or_else(|_| Err(ChaosError::Net(anyhow::anyhow!("the network thread panicked"))));
    drop(_thread);
    drop(namespaces);
    outcome
}

/// The thread of a `--net` run: moves into the clients' namespace, then runs everything on a
/// runtime of its own (whose threads start there too), until done or cancelled.
fn in_clients_namespace(
    opts: ChaosOptions,
    topology: Topology,
    began: Instant,
    cancel: oneshot::Receiver<()>,
) -> Result<ChaosReport, ChaosError> {
    netns::enter(&topology.client_ns()).map_err(ChaosError::Net)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ChaosError::Net(e.into()))?;
    runtime.block_on(async move {
        tokio::select! {
            r = on_the_network(&opts, topology, began) => r,
            _ = cancel => Err(ChaosError::Net(anyhow::anyhow!("interrupted"))),
        }
    })
}

/// Inside the clients' namespace: the switch, the cluster, then the run itself.
async fn on_the_network(
    opts: &ChaosOptions,
    topology: Topology,
    began: Instant,
) -> Result<ChaosReport, ChaosError> {
    let links = Links::new(&topology, StdRng::seed_from_u64(derive_seed(opts.seed, 2)));
    let links = Arc::new(Mutex::new(links));
    let ports = netns::make_ports(&topology).map_err(ChaosError::Net)?;
    // Dropped after the cluster (declared before it): nodes die before their network does.
    let _switch = Switch::start(ports, &topology, links.clone());

    // Nodes off loopback want a token from every client: the run's own admin token.
    let secrets = tempfile::Builder::new()
        .prefix("flotilla-chaos-net-")
        .tempdir()
        .map_err(|e| ChaosError::Net(e.into()))?;
    let token = flotilla_node::secret::random_token().map_err(|e| ChaosError::Net(e.into()))?;
    let token_file = secrets.path().join("admin.token");
    flotilla_node::cluster::secrets::write_private(&token_file, &token)
        .map_err(|e| ChaosError::Net(e.into()))?;
    let mut cluster_opts = super::cluster_options(opts);
    cluster_opts.node_args.extend([
        "--insecure".to_owned(),
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
    ]);
    let placements = (0..topology.nodes())
        .map(|i| Placement {
            addr: topology.node_addr(i),
            netns: Some(topology.node_ns(i)),
            args: vec!["--zone".to_owned(), Topology::zone_name(topology.zone_of[i])],
        })
        .collect();
    info!(seed = opts.seed, nodes = opts.nodes, "--- starting the cluster");
    let cluster = Cluster::start_placed(placements, Some(token), &cluster_opts)
        .await
        .map_err(ChaosError::Cluster)?;
    let net = Net { topology, links };
    super::exercise(opts, cluster, Some(&net), began).await
}

/// Cancels the network thread and waits for it, when dropped.
struct CancelOnDrop {
    cancel: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn wan_timeouts_keep_a_heartbeat_above_twice_the_round_trip_and_lan_defaults_below() {
        let wan = RaftTimeouts::for_rtt(80);
        assert_eq!(
            (
                wan.heartbeat_interval_ms,
                wan.election_timeout_ms_min,
                wan.election_timeout_ms_max
            ),
            (160, 480, 960)
        );
        assert_eq!(
            wan.node_args().join(" "),
            "--heartbeat-interval-ms 160 --election-timeout-ms-min 480 --election-timeout-ms-max 960"
        );
        let lan = RaftTimeouts::for_rtt(1);
        assert_eq!(
            (
                lan.heartbeat_interval_ms,
                lan.election_timeout_ms_min,
                lan.election_timeout_ms_max
            ),
            (50, 150, 300),
            "the node's defaults"
        );
        let defaults = flotilla_node::config::Config::default();
        assert_eq!(defaults.heartbeat_interval_ms, lan.heartbeat_interval_ms);
        assert_eq!(defaults.election_timeout_ms_min, lan.election_timeout_ms_min);
        assert_eq!(defaults.election_timeout_ms_max, lan.election_timeout_ms_max);
    }

    #[test]
    fn network_faults_become_overlays_on_their_victims() {
        let topology = Topology::new(1, 5, 3, 30..=80, &mut StdRng::seed_from_u64(1));
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<usize>>();
        let (o, d) = overlay(FaultKind::ZonePartition, &[0, 3], &topology, 0);
        assert_eq!(o, Overlay::Split { side: set(&[0, 3]) });
        assert!(d.contains("dc1"), "{d}");
        let (o, _) = overlay(FaultKind::OneWay, &[2], &topology, 0);
        assert_eq!(
            o,
            Overlay::Cut {
                from: set(&[2]),
                to: set(&[0, 1, 3, 4])
            }
        );
        let (o, _) = overlay(FaultKind::OneWay, &[2], &topology, 1);
        assert_eq!(
            o,
            Overlay::Cut {
                from: set(&[0, 1, 3, 4]),
                to: set(&[2])
            }
        );
        for aux in [0, 25, 1_000_003] {
            let (Overlay::Loss { chance, .. }, _) = overlay(FaultKind::Loss, &[1], &topology, aux) else {
                panic!("not a loss");
            };
            assert!((0.05..=0.30).contains(&chance), "{chance}");
            let (Overlay::Delay { extra, jitter, .. }, _) = overlay(FaultKind::Delay, &[1], &topology, aux)
            else {
                panic!("not a delay");
            };
            assert!(
                (50..=300).contains(&extra.as_millis()) && jitter == extra,
                "{extra:?}"
            );
        }
    }
}
