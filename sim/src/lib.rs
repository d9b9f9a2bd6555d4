//! flotilla-sim: deterministic simulation, chaos and benchmarks (in progress).
