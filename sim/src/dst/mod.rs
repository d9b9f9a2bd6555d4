//! `sim dst`: deterministic simulation of a whole cluster in one process.
//!
//! The real node (Raft, state machine, gRPC, worker actors) and the real client run on
//! turmoil's simulated hosts, network and time; the Raft log lives on a simulated disk that
//! loses unsynced writes in a crash. One seed decides everything ([`plan::Plan`]); the run has
//! a faulty phase ([`faults::Injector`]) and a healed phase that must make progress; the
//! checkers of [`invariants`] judge it. Same seed, same trace ([`trace::Trace`]).
//!
//! - [`plan`]: what a seed decides.
//! - [`node`]: a node on a simulated host, its clock and disk, the simulated task.
//! - [`net`]: tonic over turmoil TCP.
//! - [`workload`]: the clients and what they record.
//! - [`faults`]: the fault injector.
//! - [`invariants`]: one checker per property.
//! - [`trace`]: the hashed event log.
//! - [`seeds`]: many seeds, one child process each, in parallel.

pub mod faults;
pub mod invariants;
pub mod net;
pub mod node;
pub mod plan;
pub mod seeds;
pub mod trace;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use flotilla_client::Client;
use flotilla_node::bugs::Bug;
use serde::Deserialize;
use serde::Serialize;
use turmoil::Sim;

use self::faults::Injector;
use self::invariants::Violation;
use self::invariants::one_leader_per_term::LeaderLog;
use self::node::NodeSlot;
use self::plan::FaultKind;
use self::plan::Plan;
use self::workload::Shared;
use self::workload::now_ms;

/// Log lines of a simulated run carry simulated milliseconds.
pub struct SimTimer;

impl tracing_subscriber::fmt::time::FormatTime for SimTimer {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>8}", t.as_millis()),
            None => write!(w, "  driver"),
        }
    }
}

/// What to run: a seed, and optionally a bug switched on and a narrower fault mix.
#[derive(Clone, Debug, Default)]
pub struct DstOptions {
    pub seed: u64,
    pub bug: Option<Bug>,
    pub faults: Vec<FaultKind>,
    /// Print every trace event to stderr.
    pub echo_trace: bool,
}

impl DstOptions {
    /// The command line that replays this run.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!("sim dst --seed {}", self.seed);
        if let Some(bug) = self.bug {
            cmd.push_str(&format!(" --bug {}", bug.name()));
        }
        if !self.faults.is_empty() {
            cmd.push_str(&format!(" --faults {}", plan::FaultKind::names(&self.faults)));
        }
        cmd
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedOutcome {
    pub seed: u64,
    pub nodes: usize,
    pub faults: Vec<String>,
    /// Faults injected, by kind.
    pub injected: std::collections::BTreeMap<String, u32>,
    pub acknowledged: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub cancelled: usize,
    pub simulated_ms: u64,
    pub trace_events: u64,
    pub trace_hash: String,
    pub violations: Vec<Violation>,
    /// The last events before the end (or the first violation), for a failing seed.
    pub recent_events: Vec<String>,
    pub replay: String,
}

impl SeedOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The outcome of a run the simulator itself could not carry out (or whose process died
    /// without a report): a failure, with `why` and what is known.
    pub fn harness_failure(opts: &DstOptions, why: String, recent_events: Vec<String>) -> SeedOutcome {
        SeedOutcome {
            seed: opts.seed,
            nodes: 0,
            faults: Vec::new(),
            injected: Default::default(),
            acknowledged: 0,
            succeeded: 0,
            dead: 0,
            cancelled: 0,
            simulated_ms: 0,
            trace_events: 0,
            trace_hash: String::new(),
            violations: vec![Violation::new("harness", 0, why)],
            recent_events,
            replay: opts.replay_command(),
        }
    }
}

/// The simulated cluster as the driver holds it.
struct World {
    slots: Vec<NodeSlot>,
    plan: Plan,
    shared: Arc<Shared>,
    dir: tempfile::TempDir,
    replacements: usize,
}

impl World {
    fn add_node(&mut self, sim: &mut Sim<'_>, join: Vec<String>) {
        let name = format!("n{}", self.slots.len() + 1);
        let dir = self.dir.path().join(&name);
        let slot = NodeSlot::new(name.clone(), dir, join, &self.plan);
        sim.host(name.as_str(), slot.host(&self.plan, self.shared.clone()));
        self.slots.push(slot);
    }

    fn live_addrs(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| !s.retired)
            .map(NodeSlot::addr)
            .collect()
    }
}

impl faults::Cluster for World {
    fn slots(&mut self) -> &mut Vec<NodeSlot> {
        &mut self.slots
    }

    fn replace(&mut self, sim: &mut Sim<'_>, index: usize) -> bool {
        // One replacement per run (the clients were given the first nodes' addresses; replace
        // them all and no client could reach the cluster), and only while the cluster is whole
        // (as many voters as planned, every live node among them), as an operator would.
        if self.replacements > 0 {
            return false;
        }
        let live: Vec<node::Running> = self
            .slots
            .iter()
            .filter(|s| !s.retired)
            .filter_map(NodeSlot::running)
            .collect();
        let leader = live
            .iter()
            .map(node::Running::metrics)
            .find(|m| m.state.is_leader());
        let Some(leader) = leader else { return false };
        let voters: Vec<u64> = leader.membership_config.membership().voter_ids().collect();
        let whole = voters.len() == self.plan.nodes
            && live.len() == self.plan.nodes
            && live.iter().all(|r| voters.contains(r.raft.node_id()));
        if !whole {
            return false;
        }
        let Some(running) = self.slots[index].running() else {
            return false;
        };
        let old_id = *running.raft.node_id();
        let old = self.slots[index].name.clone();
        sim.crash(old.as_str());
        let slot = &mut self.slots[index];
        slot.up = false;
        slot.retired = true;
        *slot.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let peers = self.live_addrs();
        self.add_node(sim, peers.clone());
        let new = self.slots.last().map(|s| s.name.clone()).unwrap_or_default();
        self.shared.event(format!(
            "fault: replace {old} (node {old_id}) with a new node {new}"
        ));
        // Someone has to take the dead node out of the membership: an operator's client.
        self.replacements += 1;
        let shared = self.shared.clone();
        let deadline = (self.plan.faulty_phase + self.plan.heal_limit).as_millis() as u64;
        let token = node::admin_token(self.plan.seed);
        sim.client(format!("admin{}", self.replacements).as_str(), async move {
            let client = Client::builder(peers)
                .token(&token)?
                .channel_factory(Arc::new(net::channel))
                .seed(old_id)
                .request_timeout(Duration::from_secs(2))
                .build()
                .await?;
            loop {
                match client.remove_node(old_id).await {
                    Ok(members) => {
                        shared.event(format!("admin removed node {old_id}; members {members:?}"));
                        return Ok(());
                    }
                    Err(e) if now_ms() < deadline => {
                        shared.event(format!("admin remove {old_id}: {e}"));
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Err(e) => {
                        shared.event(format!("admin gave up removing {old_id}: {e}"));
                        return Ok(());
                    }
                }
            }
        });
        true
    }
}

/// Run one seed in this process. Run one seed per process: some state (the tokio runtime's
/// thread locals, the seeded Raft RNG) is process-wide.
pub fn run_seed(opts: &DstOptions) -> SeedOutcome {
    let plan = Plan::from_seed(opts.seed, &opts.faults);
    flotilla_node::runtime::set_seed(opts.seed);
    flotilla_node::bugs::enable(opts.bug);
    let shared = Arc::new(Shared::new(plan.clone(), opts.echo_trace));
    shared.event(format!(
        "plan: {} nodes, faults {:?}, faulty phase {:?}",
        plan.nodes, plan.faults, plan.faulty_phase
    ));
    let limit = plan.faulty_phase + plan.heal_limit + Duration::from_secs(60);
    let mut sim = turmoil::Builder::new()
        .rng_seed(opts.seed)
        .simulation_duration(limit)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(plan.net_min_latency_ms))
        .max_message_latency(Duration::from_millis(plan.net_max_latency_ms))
        .tcp_capacity(1 << 16)
        .build();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return harness_failure(opts, &plan, &shared, format!("no temporary directory: {e}")),
    };
    let token_file = node::admin_token_file(dir.path());
    if let Err(e) = std::fs::write(&token_file, node::admin_token(plan.seed)) {
        return harness_failure(
            opts,
            &plan,
            &shared,
            format!("cannot write {}: {e}", token_file.display()),
        );
    }
    let mut world = World {
        slots: Vec::new(),
        plan: plan.clone(),
        shared: shared.clone(),
        dir,
        replacements: 0,
    };
    world.add_node(&mut sim, Vec::new());
    for _ in 1..plan.nodes {
        world.add_node(&mut sim, vec![world.slots[0].addr()]);
    }
    let addrs = world.live_addrs();
    sim.client("sched", workload::schedules(addrs.clone(), shared.clone()));
    sim.client("limits", workload::limits(addrs.clone(), shared.clone()));
    sim.client("flows", workload::workflows(addrs.clone(), shared.clone()));
    for c in 1..=plan.clients {
        sim.client(
            format!("c{c}").as_str(),
            workload::client(c, addrs.clone(), shared.clone()),
        );
    }

    let mut injector = Injector::new(&plan);
    let mut leaders = LeaderLog::default();
    let mut votes = invariants::durable_vote::VoteCheck::default();
    let mut states = invariants::state_consistent::StateCheck::default();
    let mut violations: Vec<Violation> = Vec::new();
    let mut healed = false;
    let mut last_term = 0;
    let faulty_ms = plan.faulty_phase.as_millis() as u64;
    loop {
        let now = sim.elapsed().as_millis() as u64;
        workload::set_driver_now(now);
        injector.restart_exited(now, &mut world, &shared);
        injector.step(now, now < faulty_ms, &mut sim, &mut world, &shared);
        if now >= faulty_ms && !healed {
            injector.heal(&mut sim, &mut world, &shared);
            healed = true;
        }
        let found = leaders
            .observe(&world.slots, now)
            .into_iter()
            .chain(votes.observe(&world.slots, now))
            .chain(states.observe(&world.slots, now));
        for v in found {
            shared.event(format!("VIOLATION {v}"));
            violations.push(v);
        }
        let new: Vec<(u64, u64)> = leaders.new_leaders_since(last_term).collect();
        for (term, id) in new {
            shared.event(format!("node {id} leads term {term}"));
            last_term = term;
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                violations.push(Violation::new(
                    "all_final",
                    now,
                    format!("the run did not finish: {e}"),
                ));
                break;
            }
        }
    }

    // Every client is done: let the replicas apply the same log, then compare them.
    let end = sim.elapsed().as_millis() as u64;
    workload::set_driver_now(end);
    let converged = converge(&mut sim, &mut world, &mut injector, &shared, end + 30_000);
    let at = sim.elapsed().as_millis() as u64;
    workload::set_driver_now(at);
    violations.extend(states.check_all(&world.slots, at));
    match converged {
        Some(nodes) => {
            violations.extend(invariants::replicas_agree::check(&nodes, at));
            violations.extend(invariants::attempts_agree::check(&nodes, &shared.finals(), at));
            if let Some((_, first)) = nodes.first() {
                violations.extend(invariants::attempts_bounded::check(first, at));
                violations.extend(invariants::schedules_exact::check(first, at));
            }
        }
        None => violations.push(Violation::new(
            "replicas_agree",
            at,
            "the replicas did not reach the same applied index within 30 s after the run",
        )),
    }
    for slot in &world.slots {
        match slot.running() {
            Some(r) => {
                let m = r.metrics();
                shared.event(format!(
                    "{} (node {}): {:?} term {} leader {:?} last log {:?} applied {:?} snapshot {:?} purged {:?}",
                    slot.name,
                    m.id,
                    m.state,
                    m.current_term,
                    m.current_leader,
                    m.last_log_index,
                    m.last_applied.map(|l| l.index),
                    m.snapshot.map(|l| l.index),
                    m.purged.map(|l| l.index)
                ));
            }
            None => shared.event(format!(
                "{}: down{}",
                slot.name,
                if slot.retired { " (retired)" } else { "" }
            )),
        }
    }
    let verdict = shared.history().verdict();
    violations.extend(invariants::acknowledged_not_lost::check(&verdict, at));
    violations.extend(invariants::one_result::check(&verdict, at));
    violations.extend(invariants::no_stale_completion::check(&shared.finals(), at));
    let revoked = shared.revoked();
    violations.extend(invariants::revoked_stay_cancelled::check(
        &revoked,
        &shared.finals(),
        at,
    ));
    violations.extend(invariants::all_final::check(&verdict, &shared.problems(), at));
    for v in &violations {
        shared.event(format!("VIOLATION {v}"));
    }
    shared.event(format!(
        "end: {} acknowledged, {} succeeded, {} dead, {} cancelled",
        verdict.acknowledged, verdict.succeeded, verdict.dead, verdict.cancelled
    ));
    let trace = shared.trace();
    SeedOutcome {
        seed: opts.seed,
        nodes: plan.nodes,
        faults: plan.faults.iter().map(|f| format!("{f:?}")).collect(),
        injected: injector
            .counts
            .iter()
            .map(|(k, v)| (format!("{k:?}"), *v))
            .collect(),
        acknowledged: verdict.acknowledged,
        succeeded: verdict.succeeded,
        dead: verdict.dead,
        cancelled: verdict.cancelled,
        simulated_ms: at,
        trace_events: trace.events(),
        trace_hash: trace.hash(),
        violations,
        recent_events: trace.recent().map(str::to_owned).collect(),
        replay: opts.replay_command(),
    }
}

/// Step until every running node applied the same index (the leader's committed one), up to
/// `deadline_ms`; then the running nodes, by name.
/// Step until every live node has applied what the leader has, restarting nodes that exit
/// meanwhile as during the run (a node whose join gave up just before the clients finished
/// is still to be restarted).
fn converge(
    sim: &mut Sim<'_>,
    world: &mut World,
    injector: &mut Injector,
    shared: &Shared,
    deadline_ms: u64,
) -> Option<Vec<(String, node::Running)>> {
    loop {
        let now = sim.elapsed().as_millis() as u64;
        injector.restart_exited(now, world, shared);
        injector.step(now, false, sim, world, shared);
        let nodes: Vec<(String, node::Running)> = world
            .slots
            .iter()
            .filter(|s| !s.retired)
            .filter_map(|s| s.running().map(|r| (s.name.clone(), r)))
            .collect();
        let all_up = nodes.len() == world.slots.iter().filter(|s| !s.retired).count();
        let applied: Vec<Option<u64>> = nodes
            .iter()
            .map(|(_, r)| invariants::replicas_agree::applied(r))
            .collect();
        let committed = nodes
            .iter()
            .map(|(_, r)| r.metrics())
            .filter(|m| m.state.is_leader())
            .map(|m| m.last_log_index)
            .max()
            .flatten();
        if all_up && committed.is_some() && applied.iter().all(|a| *a == committed) {
            return Some(nodes);
        }
        if sim.elapsed().as_millis() as u64 >= deadline_ms {
            return None;
        }
        if sim.step().is_err() {
            return None;
        }
    }
}

fn harness_failure(opts: &DstOptions, plan: &Plan, shared: &Shared, why: String) -> SeedOutcome {
    SeedOutcome {
        nodes: plan.nodes,
        trace_hash: shared.trace().hash(),
        ..SeedOutcome::harness_failure(opts, why, Vec::new())
    }
}
