//! flotilla-sim: deterministic simulation, chaos, benchmarks and failover measurement.
//!
//! Module map:
//! - [`bench`]: `sim bench`, real `node` processes on loopback under load.
//!   - [`bench::cluster`]: [`bench::cluster::Cluster::start`] spawns nodes on free loopback ports
//!     with fresh temporary data directories and kills them (by pid) when dropped;
//!     [`bench::cluster::locate_node_bin`] finds the `node` executable.
//!   - [`bench::load`]: the load generators (batched submits from several clients, waiting for
//!     every result, an open-loop latency stream) and the percentile arithmetic.
//!   - [`bench::procfs`]: CPU seconds and RSS of a process from `/proc`.
//!   - [`bench::report`]: the reports, as JSON (serde) or text.
//! - [`dst`]: `sim dst`, the whole cluster in one process on turmoil's simulated hosts, network
//!   and time, with a simulated disk; faults and invariants drawn from one seed (see
//!   `docs/TESTING.md`).
//! - [`history`]: the client-side history check shared by `dst` and `chaos`.
//! - [`failover`]: `sim failover`, the leader SIGKILLed under a stream of probe tasks: how long
//!   until tasks complete again.
//! - `src/bin/sim.rs`: the `sim` command line.

pub mod bench;
pub mod dst;
pub mod failover;
pub mod history;
