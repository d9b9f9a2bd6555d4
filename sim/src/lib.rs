//! flotilla-sim: deterministic simulation, chaos, benchmarks and failover measurement.
//!
//! Module map:
//! - [`bench`](mod@bench): `sim bench`, real `node` processes on loopback under load.
//!   - [`bench::cluster`]: [`bench::cluster::Cluster::start`] spawns nodes on free loopback ports
//!     (or, [`bench::cluster::Cluster::start_placed`], at given addresses in given network
//!     namespaces) with fresh temporary data directories and kills them (by pid) when dropped;
//!     SIGKILL and restart, SIGSTOP and SIGCONT one node; [`bench::cluster::locate_node_bin`] finds the
//!     `node` executable.
//!   - [`bench::load`]: the load generators (batched submits from several clients, waiting for
//!     every result, an open-loop latency stream) and the percentile arithmetic.
//!   - [`bench::procfs`]: CPU seconds and RSS of a process from `/proc`.
//!   - [`bench::report`]: the reports, as JSON (serde) or text.
//! - [`dst`]: `sim dst`, the whole cluster in one process on turmoil's simulated hosts, network
//!   and time, with a simulated disk; faults and invariants drawn from one seed (see
//!   `docs/TESTING.md`).
//! - [`failover`]: `sim failover`, the leader SIGKILLed under a stream of probe tasks: how long
//!   until tasks complete again.
//! - [`chaos`]: `sim chaos`, real nodes under clients while a seeded fault loop kills, restarts,
//!   freezes and thaws them; then a healed phase and the history's verdict.
//!   - [`chaos::faults`]: the fault loop (a minority of nodes faulty at once).
//!   - [`chaos::net`]: `--net`, each node in its own network namespace behind a userspace
//!     switch that delays frames between zones and cuts, loses and delays them for faults.
//!   - [`chaos::failovers`]: after a fault takes the leader away, the time to a new leader and
//!     to a first commit.
//!   - [`chaos::workload`]: the clients (keyed batches, retried with the same keys, waits) and
//!     the healed phase.
//!   - [`chaos::report`]: the report, as JSON or text.
//! - [`history`]: the client-side check, pure and shared with the deterministic simulator:
//!   acknowledged tasks are never lost, a final task never changes, an idempotency key maps to
//!   one id; and the availability measure.
//! - `src/bin/sim.rs`: the `sim` command line.

pub mod bench;
pub mod chaos;
pub mod dst;
pub mod failover;
pub mod history;
