//! The layout of a `sim chaos --net` run, pure: the names of its network namespaces, each
//! node's address, MAC and zone, and the round trip between zones.
//!
//! Every namespace is named `flotilla-chaos-<pid>-…` after the `sim` process that made it, so
//! runs side by side never clash and a later run can tell a leftover of a dead one
//! ([`owner_pid`]). Addresses are all in one private /24 that exists only inside the run's
//! namespaces (the host gets no address or route), so parallel runs may reuse it.
//!
//! Ports of the switch: node `i` is port `i`; the clients' port comes last ([`Topology::client_port`]).

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use serde::Serialize;

/// Every namespace of every run starts with this.
pub const PREFIX: &str = "flotilla-chaos-";
/// The port every node listens on (each has its own address).
pub const NODE_PORT: u16 = 7000;
/// The run's /24, inside its namespaces only.
const SUBNET: [u8; 3] = [10, 77, 0];
/// Host part of the clients' address.
const CLIENT_HOST: u8 = 254;
/// Locally administered MACs, `02:66:6c` ("fl"), the last byte naming the port.
const MAC_PREFIX: [u8; 5] = [0x02, 0x66, 0x6c, 0x00, 0x00];
/// Most nodes: host parts 1..=253 of the /24.
pub const MAX_NODES: usize = 253;

/// The nodes, their zones and the round trip between zones.
#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    /// `flotilla-chaos-<pid>`: the run's namespaces are named after it.
    pub run: String,
    /// Zone of each node: node `i` is in zone `i % zones`, so 3 nodes in 3 zones are one per
    /// zone and 5 nodes are 2-2-1.
    pub zone_of: Vec<usize>,
    /// Round trip between zones (zone × zone, symmetric, zero within a zone), in ms.
    pub rtt_ms: Vec<Vec<u64>>,
}

impl Topology {
    /// `nodes` nodes in `zones` zones for the run of process `pid`; the round trip of each
    /// pair of zones is drawn from `rtt_ms`.
    pub fn new(
        pid: u32,
        nodes: usize,
        zones: usize,
        rtt_ms: RangeInclusive<u64>,
        rng: &mut StdRng,
    ) -> Topology {
        let zones = zones.clamp(1, nodes.max(1));
        // Drawn for each pair a < b in a fixed order, then mirrored.
        let pairs: Vec<(usize, usize)> = (0..zones)
            .flat_map(|a| (a + 1..zones).map(move |b| (a, b)))
            .collect();
        let mut rtt = vec![vec![0; zones]; zones];
        for (a, b) in pairs {
            let ms = rng.random_range(rtt_ms.clone());
            rtt[a][b] = ms;
            rtt[b][a] = ms;
        }
        Topology {
            run: format!("{PREFIX}{pid}"),
            zone_of: (0..nodes).map(|i| i % zones).collect(),
            rtt_ms: rtt,
        }
    }

    pub fn nodes(&self) -> usize {
        self.zone_of.len()
    }

    pub fn zones(&self) -> usize {
        self.rtt_ms.len()
    }

    /// The clients' port of the switch, after the nodes'.
    pub fn client_port(&self) -> usize {
        self.nodes()
    }

    /// The nodes of zone `zone`.
    pub fn zone_members(&self, zone: usize) -> Vec<usize> {
        (0..self.nodes()).filter(|&i| self.zone_of[i] == zone).collect()
    }

    /// The name a node of zone `zone` gets (`--zone`).
    pub fn zone_name(zone: usize) -> String {
        format!("dc{}", zone + 1)
    }

    /// How long a frame from node `a` to node `b` travels: half their zones' round trip.
    pub fn one_way(&self, a: usize, b: usize) -> Duration {
        Duration::from_micros(self.rtt_ms[self.zone_of[a]][self.zone_of[b]] * 500)
    }

    /// Namespace of node `i`.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{}", self.run, i + 1)
    }

    /// Namespace of the clients (and of every call `sim` makes).
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.run)
    }

    /// Every namespace of the run: the nodes', then the clients'.
    pub fn namespaces(&self) -> Vec<String> {
        (0..self.nodes())
            .map(|i| self.node_ns(i))
            .chain([self.client_ns()])
            .collect()
    }

    /// Address of the owner of switch port `port`.
    pub fn ip(&self, port: usize) -> Ipv4Addr {
        let [a, b, c] = SUBNET;
        Ipv4Addr::new(a, b, c, self.host_byte(port))
    }

    /// `host:port` of node `i`.
    pub fn node_addr(&self, i: usize) -> String {
        format!("{}:{NODE_PORT}", self.ip(i))
    }

    /// MAC of the interface on switch port `port`.
    pub fn mac(&self, port: usize) -> [u8; 6] {
        let [a, b, c, d, e] = MAC_PREFIX;
        [a, b, c, d, e, self.host_byte(port)]
    }

    /// The switch port whose interface has `mac`, if it is one of the run's.
    pub fn port_of_mac(&self, mac: &[u8]) -> Option<usize> {
        let (prefix, last) = mac.split_at_checked(5)?;
        if prefix != MAC_PREFIX || last.len() != 1 {
            return None;
        }
        match last[0] {
            CLIENT_HOST => Some(self.client_port()),
            0 => None,
            b => Some(usize::from(b) - 1).filter(|&i| i < self.nodes()),
        }
    }

    fn host_byte(&self, port: usize) -> u8 {
        if port == self.client_port() {
            CLIENT_HOST
        } else {
            u8::try_from(port + 1).unwrap_or(0)
        }
    }
}

/// `aa:bb:…` of `mac`, as `ip link set … address` takes it.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The pid of the `sim` process that made namespace `name`, if it is one of ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn topo(nodes: usize, zones: usize) -> Topology {
        Topology::new(4242, nodes, zones, 30..=80, &mut StdRng::seed_from_u64(7))
    }

    #[test]
    fn three_zones_of_five_nodes_are_two_two_one_with_symmetric_round_trips_in_range() {
        let t = topo(5, 3);
        assert_eq!(t.zone_of, [0, 1, 2, 0, 1]);
        assert_eq!(t.zone_members(0), [0, 3]);
        assert_eq!(t.zone_members(2), [2]);
        for a in 0..3 {
            assert_eq!(t.rtt_ms[a][a], 0);
            for b in 0..3 {
                assert_eq!(t.rtt_ms[a][b], t.rtt_ms[b][a]);
                if a != b {
                    assert!((30..=80).contains(&t.rtt_ms[a][b]), "{:?}", t.rtt_ms);
                }
            }
        }
        // Same zone: no delay; across zones: half the round trip each way.
        assert_eq!(t.one_way(0, 3), Duration::ZERO);
        assert_eq!(t.one_way(0, 1), Duration::from_micros(t.rtt_ms[0][1] * 500));
        // More zones than nodes: one node per zone.
        assert_eq!(topo(3, 5).zones(), 3);
    }

    #[test]
    fn names_addresses_and_macs_name_their_port() {
        let t = topo(3, 3);
        assert_eq!(t.node_ns(0), "flotilla-chaos-4242-n1");
        assert_eq!(t.client_ns(), "flotilla-chaos-4242-client");
        assert_eq!(t.namespaces().len(), 4);
        assert_eq!(t.node_addr(2), "10.77.0.3:7000");
        assert_eq!(t.ip(t.client_port()), Ipv4Addr::new(10, 77, 0, 254));
        for port in 0..=t.client_port() {
            assert_eq!(t.port_of_mac(&t.mac(port)), Some(port));
        }
        assert_eq!(t.port_of_mac(&[0x02, 0x66, 0x6c, 0, 0, 4]), None, "no node 4");
        assert_eq!(t.port_of_mac(&[0xff; 6]), None);
        assert_eq!(mac_text(t.mac(0)), "02:66:6c:00:00:01");
    }

    #[test]
    fn owners_are_read_back_from_names() {
        let t = topo(3, 3);
        for name in t.namespaces() {
            assert_eq!(owner_pid(&name), Some(4242));
        }
        assert_eq!(owner_pid("flotilla-chaos-x-n1"), None);
        assert_eq!(owner_pid("other-4242-n1"), None);
    }

    #[test]
    fn round_trips_depend_on_the_seed_only() {
        let draw = |seed| Topology::new(1, 3, 3, 30..=80, &mut StdRng::seed_from_u64(seed)).rtt_ms;
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
