//! The userspace switch between the run's namespaces: every node's `eth0`, and the clients',
//! is a TAP device whose other end is a file descriptor of this process. Each frame read from
//! one is sent to the port its destination MAC names ([`route`]; broadcasts, i.e. ARP, go to
//! every other port), at the moment [`Links::verdict`] says, or never.
//!
//! Why userspace and not a kernel bridge with `tc netem`: the kernels this runs on (this
//! machine's, CI's) have neither netem nor a priority qdisc, nor iptables/nftables tools, so
//! the kernel can neither delay a packet nor drop one direction. The switch can do all of it,
//! per ordered pair, from one tested model; the nodes still see real interfaces, real TCP and
//! real losses. Frames are at most 1514 bytes: a TAP device without offloads hands over
//! segmented, checksummed frames.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tun::Tun;
use tracing::{debug, warn};

use super::links::{Links, Verdict};
use super::topology::Topology;

/// Largest frame read: an MTU of 1500 and the Ethernet header, with room to spare.
const FRAME_BUF: usize = 2048;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this port.
    One(usize),
    /// To every port but the one it came from (broadcast, multicast).
    Flood,
    /// Nowhere: not IPv4 or ARP (IPv6 neighbour chatter), too short, or an unknown MAC.
    Nowhere,
}

/// Where a frame read from a port goes, by its destination MAC.
pub fn route(frame: &[u8], topology: &Topology) -> Route {
    if frame.len() < 14 || (frame[12..14] != ETHERTYPE_IPV4 && frame[12..14] != ETHERTYPE_ARP) {
        return Route::Nowhere;
    }
    let dst = &frame[..6];
    // The group bit: broadcast or multicast.
    if dst[0] & 1 == 1 {
        return Route::Flood;
    }
    topology.port_of_mac(dst).map_or(Route::Nowhere, Route::One)
}

/// A frame held until its time.
struct Held {
    at: Instant,
    seq: u64,
    port: usize,
    frame: Bytes,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The running switch; dropping it stops it and closes the TAP devices (which then vanish).
pub struct Switch {
    tasks: JoinSet<()>,
}

impl Switch {
    /// Switches frames between `ports` (the nodes' TAP devices in node order, then the
    /// clients'), as `links` says.
    pub fn start(ports: Vec<Tun>, topology: &Topology, links: Arc<Mutex<Links>>) -> Switch {
        let ports: Arc<Vec<Tun>> = Arc::new(ports);
        let (hold_tx, hold_rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        tasks.spawn(delay_line(ports.clone(), hold_rx));
        for from in 0..ports.len() {
            tasks.spawn(read_port(
                from,
                ports.clone(),
                topology.clone(),
                links.clone(),
                hold_tx.clone(),
            ));
        }
        Switch { tasks }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Reads port `from` for good, and sends or holds each frame.
async fn read_port(
    from: usize,
    ports: Arc<Vec<Tun>>,
    topology: Topology,
    links: Arc<Mutex<Links>>,
    hold: mpsc::UnboundedSender<Held>,
) {
    let mut buf = vec![0u8; FRAME_BUF];
    let mut seq = 0u64;
    loop {
        let n = match ports[from].recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                warn!(port = from, error = %e, "switch port failed");
                return;
            }
        };
        let frame = &buf[..n];
        let targets: Vec<usize> = match route(frame, &topology) {
            Route::One(to) if to != from => vec![to],
            Route::Flood => (0..ports.len()).filter(|&p| p != from).collect(),
            Route::One(_) | Route::Nowhere => continue,
        };
        let now = Instant::now();
        for to in targets {
            let verdict = links
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .verdict(from, to, now);
            match verdict {
                Verdict::Drop => {}
                Verdict::Now => send(&ports[to], to, frame),
                Verdict::At(at) => {
                    seq += 1;
                    let held = Held {
                        at,
                        // Per port, so frames of one pair due at the same moment keep their order.
                        seq: seq * ports.len() as u64 + from as u64,
                        port: to,
                        frame: Bytes::copy_from_slice(frame),
                    };
                    if hold.send(held).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends the held frames when they are due.
async fn delay_line(ports: Arc<Vec<Tun>>, mut incoming: mpsc::UnboundedReceiver<Held>) {
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|Reverse(h)| h.at);
        tokio::select! {
            held = incoming.recv() => match held {
                Some(h) => heap.push(Reverse(h)),
                None => return,
            },
            _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(h)| h.at <= now) {
                    if let Some(Reverse(h)) = heap.pop() {
                        send(&ports[h.port], h.port, &h.frame);
                    }
                }
            }
        }
    }
}

/// Hands `frame` to the kernel on `port`; a full queue drops it, as a real one would.
fn send(tun: &Tun, port: usize, frame: &[u8]) {
    if let Err(e) = tun.try_send(frame) {
        debug!(port, error = %e, "switch dropped a frame");
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn frame(dst: [u8; 6], ethertype: [u8; 2]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend([0x02, 0x66, 0x6c, 0, 0, 1]);
        f.extend(ethertype);
        f.extend([0u8; 46]);
        f
    }

    #[test]
    fn frames_go_to_the_port_of_their_mac_or_everywhere_when_broadcast() {
        let t = Topology::new(1, 3, 3, 30..=80, &mut StdRng::seed_from_u64(1));
        assert_eq!(route(&frame(t.mac(2), ETHERTYPE_IPV4), &t), Route::One(2));
        assert_eq!(
            route(&frame(t.mac(t.client_port()), ETHERTYPE_IPV4), &t),
            Route::One(3)
        );
        assert_eq!(route(&frame([0xff; 6], ETHERTYPE_ARP), &t), Route::Flood);
        // IPv6 (neighbour discovery, MLD) is not switched; nor is a stranger's MAC or a runt.
        assert_eq!(
            route(&frame([0x33, 0x33, 0, 0, 0, 1], [0x86, 0xdd]), &t),
            Route::Nowhere
        );
        assert_eq!(
            route(&frame([0x02, 0, 0, 0, 0, 9], ETHERTYPE_IPV4), &t),
            Route::Nowhere
        );
        assert_eq!(route(&[0xff; 10], &t), Route::Nowhere);
    }

    #[test]
    fn held_frames_leave_by_time_then_by_arrival() {
        let now = Instant::now();
        let held = |ms: u64, seq: u64| Held {
            at: now + std::time::Duration::from_millis(ms),
            seq,
            port: 0,
            frame: Bytes::new(),
        };
        let mut heap = BinaryHeap::new();
        for (ms, seq) in [(30, 1), (10, 5), (10, 2), (20, 3)] {
            heap.push(Reverse(held(ms, seq)));
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|Reverse(h)| h.seq)).collect();
        assert_eq!(order, [2, 5, 3, 1]);
    }
}
