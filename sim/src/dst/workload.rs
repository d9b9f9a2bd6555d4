//! The clients of a simulated run: each submits batches of [`TASK`] tasks
//! through the real `flotilla_client`, reads some back, cancels a few, and records every
//! acknowledgement and observation in the shared [`History`]. After the faulty phase each
//! client proves the healed cluster makes progress (a new submit must be acknowledged and
//! finish), then waits for all its tasks and reads each one's final state linearizably.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use flotilla_client::Client;
use flotilla_client::RetryPolicy;
use flotilla_client::RevokeOutcome;
use flotilla_client::TaskId;
use flotilla_client::TaskInfo;
use flotilla_client::TaskRequest;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::net;
use super::node::TASK;
use super::node::TaskArgs;
use super::plan::Plan;
use super::trace::Trace;
use crate::history::History;

/// What the clients and the driver share.
pub struct Shared {
    pub plan: Plan,
    pub trace: Mutex<Trace>,
    pub history: Mutex<History>,
    /// The last linearizable read of every acknowledged task, after the healed phase.
    pub finals: Mutex<BTreeMap<TaskId, TaskInfo>>,
    /// Properties the clients found broken on their own (no progress after healing).
    pub problems: Mutex<Vec<String>>,
    /// Tasks an operator's revoke (`cancel --terminate`) answered it cancelled or terminated.
    pub revoked: Mutex<std::collections::BTreeSet<TaskId>>,
    /// The `limits` client's limits are acknowledged: submits carry concurrency keys from
    /// now on (so every limit is in the log before the tasks it covers).
    pub limits_set: std::sync::atomic::AtomicBool,
}

/// Simulated milliseconds since the start (inside a simulated host).
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

/// The driver's time, set before each step: `turmoil::sim_elapsed` answers only inside hosts.
static DRIVER_NOW_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tell the trace the simulation's time as the driver sees it.
pub fn set_driver_now(ms: u64) {
    DRIVER_NOW_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

fn event_time_ms() -> u64 {
    turmoil::sim_elapsed()
        .map(|d| d.as_millis() as u64)
        .unwrap_or_else(|| DRIVER_NOW_MS.load(std::sync::atomic::Ordering::Relaxed))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(plan: Plan, echo: bool) -> Shared {
        Shared {
            plan,
            trace: Mutex::new(Trace::new(echo)),
            history: Mutex::new(History::new()),
            finals: Mutex::default(),
            problems: Mutex::default(),
            revoked: Mutex::default(),
            limits_set: Default::default(),
        }
    }

    pub fn event(&self, what: impl AsRef<str>) {
        lock(&self.trace).event(event_time_ms(), what);
    }

    pub fn trace(&self) -> std::sync::MutexGuard<'_, Trace> {
        lock(&self.trace)
    }

    pub fn history(&self) -> std::sync::MutexGuard<'_, History> {
        lock(&self.history)
    }

    pub fn finals(&self) -> std::sync::MutexGuard<'_, BTreeMap<TaskId, TaskInfo>> {
        lock(&self.finals)
    }

    /// The tasks a revoke answered it cancelled or terminated.
    pub fn revoked(&self) -> std::collections::BTreeSet<TaskId> {
        lock(&self.revoked).clone()
    }

    pub fn problems(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        lock(&self.problems)
    }

    /// A simulated handler started `attempt` of the task tagged `tag` (in the trace: which
    /// attempt ran when, e.g. one granted long ago and heard of late through a lagging replica).
    pub fn started(&self, tag: &str, attempt: u32) {
        self.event(format!("started {tag} attempt {attempt}"));
    }

    fn problem(&self, what: String) {
        self.event(format!("PROBLEM {what}"));
        lock(&self.problems).push(what);
    }

    fn observed(&self, who: &str, info: &TaskInfo) {
        self.event(format!(
            "{who} saw task {} {:?} attempt {} result {}",
            info.id,
            info.state,
            info.attempt,
            String::from_utf8_lossy(&info.result)
        ));
        let anomaly = lock(&self.history).observed(info);
        self.anomaly(anomaly);
    }

    /// A client-side property broke just now: say so in the trace as it happens (the verdict
    /// at the end counts it).
    fn anomaly(&self, anomaly: Option<crate::history::Anomaly>) {
        if let Some(a) = anomaly {
            self.event(format!("ANOMALY task {}: {a}", a.id));
        }
    }
}

/// One client host's run; `addrs` are the nodes it may call.
pub async fn client(index: usize, addrs: Vec<String>, shared: Arc<Shared>) -> turmoil::Result {
    let plan = &shared.plan;
    let who = format!("c{index}");
    let mut rng = SmallRng::seed_from_u64(plan.seed.wrapping_mul(31).wrapping_add(index as u64 + 1));
    let client = Client::builder(addrs)
        .token(&super::node::admin_token(plan.seed))?
        .channel_factory(Arc::new(net::channel))
        .seed(rng.random())
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(8),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        })
        .build()
        .await?;
    let mut mine: Vec<TaskId> = Vec::new();
    let faulty_ms = plan.faulty_phase.as_millis() as u64;
    let gap_ms = (faulty_ms / plan.submits_per_client.max(1) as u64).max(1);

    for round in 0..plan.submits_per_client {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=gap_ms))).await;
        if now_ms() >= faulty_ms {
            break;
        }
        submit_batch(&client, &shared, &who, round, &mut rng, &mut mine).await;
        if !mine.is_empty() && rng.random_bool(0.3) {
            let id = mine[rng.random_range(0..mine.len())];
            match client.get(id).await {
                Ok(info) => shared.observed(&who, &info),
                Err(e) => shared.event(format!("{who} get {id} failed: {e}")),
            }
        }
        if !mine.is_empty() && rng.random_bool(0.05) {
            let id = mine[rng.random_range(0..mine.len())];
            match client.cancel([id]).await {
                Ok(flags) => shared.event(format!("{who} cancel {id}: {flags:?}")),
                Err(e) => shared.event(format!("{who} cancel {id} failed: {e}")),
            }
        }
        // An operator's revoke, running tasks too (`revoked_stay_cancelled`).
        if !mine.is_empty() && rng.random_bool(0.05) {
            let id = mine[rng.random_range(0..mine.len())];
            match client.revoke([id], true, "dst").await {
                Ok(outcomes) => {
                    shared.event(format!("{who} revoke {id}: {outcomes:?}"));
                    if outcomes.iter().any(|o| *o != RevokeOutcome::Unchanged) {
                        lock(&shared.revoked).insert(id);
                    }
                }
                Err(e) => shared.event(format!("{who} revoke {id} failed: {e}")),
            }
        }
    }

    // The healed phase: the driver has repaired everything by now.
    let now = now_ms();
    if now < faulty_ms {
        tokio::time::sleep(Duration::from_millis(faulty_ms - now)).await;
    }
    let heal_deadline = now_ms() + plan.heal_limit.as_millis() as u64;
    let before = mine.len();
    let mut round = plan.submits_per_client;
    while mine.len() == before && now_ms() < heal_deadline {
        submit_batch(&client, &shared, &who, round, &mut rng, &mut mine).await;
        round += 1;
    }
    if mine.len() == before {
        shared.problem(format!("{who}: no submit acknowledged after the cluster healed"));
    }

    // Every acknowledged task must reach a final state; then read each one linearizably.
    let ids: Vec<TaskId> = shared.history().acknowledged_ids();
    let ids: Vec<TaskId> = ids.into_iter().filter(|id| mine.contains(id)).collect();
    for &id in &ids {
        loop {
            let left = heal_deadline.saturating_sub(now_ms());
            if left == 0 {
                break;
            }
            match client.wait(id, Duration::from_millis(left.min(5_000))).await {
                Ok(info) => {
                    shared.observed(&who, &info);
                    break;
                }
                Err(flotilla_client::ClientError::NotFound(_)) => {
                    shared.event(format!("{who} wait {id}: not found"));
                    let anomaly = shared.history().observed_not_found(id);
                    shared.anomaly(anomaly);
                    break;
                }
                Err(e) => shared.event(format!("{who} wait {id}: {e}")),
            }
        }
    }
    for &id in &ids {
        let mut tries = 0;
        loop {
            match client.get(id).await {
                Ok(info) => {
                    shared.observed(&who, &info);
                    shared.finals().insert(id, info);
                    break;
                }
                Err(e) if tries < 10 => {
                    tries += 1;
                    shared.event(format!("{who} final get {id}: {e}"));
                }
                Err(e) => {
                    shared.problem(format!("{who}: could not read task {id} after healing: {e}"));
                    break;
                }
            }
        }
    }
    shared.event(format!("{who} done: {} tasks", ids.len()));
    Ok(())
}

async fn submit_batch(
    client: &Client,
    shared: &Shared,
    who: &str,
    round: usize,
    rng: &mut SmallRng,
    mine: &mut Vec<TaskId>,
) {
    let plan = &shared.plan;
    let n = rng.random_range(1..=plan.max_batch);
    let mut requests: Vec<TaskRequest> = Vec::with_capacity(n);
    for j in 0..n {
        let fail = if rng.random_bool(plan.failing_share) {
            2
        } else if rng.random_bool(plan.flaky_share) {
            1
        } else {
            0
        };
        let args = TaskArgs {
            tag: format!("{who}-{round}-{j}"),
            ms: rng.random_range(0..=plan.max_task_ms),
            fail,
        };
        let mut request = client
            .task(TASK)
            .args(&args)
            .expect("task arguments encode")
            .max_retries(3)
            .retry_backoff(Duration::from_millis(100));
        // Half the tasks carry one of three keys once the limits are in (no draw from the
        // rng: the rest of the run stays what the seed made it).
        if j % 2 == 0 && shared.limits_set.load(std::sync::atomic::Ordering::Relaxed) {
            request = request.concurrency_key(format!("tenant-{}", (round + j) % 3));
        }
        requests.push(request);
    }
    let keys: Vec<String> = requests.iter().map(|r| r.key().to_owned()).collect();
    match client.submit_batch(requests).await {
        Ok(submitted) => {
            for (s, key) in submitted.iter().zip(&keys) {
                let anomaly = shared.history().acknowledged(s.id, key);
                shared.anomaly(anomaly);
                if !mine.contains(&s.id) {
                    mine.push(s.id);
                }
            }
            let ids: Vec<String> = submitted
                .iter()
                .map(|s| format!("{}{}", s.id, if s.duplicate { "(dup)" } else { "" }))
                .collect();
            shared.event(format!("{who} submit {round} acknowledged: {}", ids.join(" ")));
        }
        Err(e) => shared.event(format!("{who} submit {round} failed: {e}")),
    }
}

/// The limits the `limits` client sets: (scope, rate, concurrency). Loose enough that every
/// task still ends within the healed phase; tight enough that keys wait on them.
pub const LIMITS: [(&str, Option<&str>, Option<u32>); 2] =
    [("key:*", None, Some(2)), ("key:tenant-0", Some("50/s"), Some(1))];

/// The `limits` client: sets [`LIMITS`] at the start of the run (each retried until
/// acknowledged: setting is idempotent), then lets the other clients submit keyed tasks.
pub async fn limits(addrs: Vec<String>, shared: Arc<Shared>) -> turmoil::Result {
    let plan = &shared.plan;
    let client = Client::builder(addrs)
        .token(&super::node::admin_token(plan.seed))?
        .channel_factory(Arc::new(net::channel))
        .seed(plan.seed ^ 0x1d_1e55)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await?;
    let deadline = (plan.faulty_phase + plan.heal_limit).as_millis() as u64;
    for (scope, rate, concurrency) in LIMITS {
        loop {
            match client.set_limit(scope, rate, concurrency).await {
                Ok(()) => {
                    shared.event(format!("limits set {scope}"));
                    break;
                }
                Err(e) if now_ms() < deadline => {
                    shared.event(format!("limits set {scope} failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    shared.problem(format!("limits: {scope} never set: {e}"));
                    return Ok(());
                }
            }
        }
    }
    shared
        .limits_set
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The schedules the `sched` client adds: (name, cadence, grace, catch-up). Two with a grace
/// longer than any run, whose every slot is due (`invariants::schedules_exact` checks each is
/// enqueued once); one with the shortest grace and catch-up `once`, which outages make miss
/// slots.
pub const SCHEDULES: [(&str, SimCadence, Duration, flotilla_client::CatchUp); 3] = [
    (
        "sim-every",
        SimCadence::Every(1_300),
        Duration::from_secs(3_600),
        flotilla_client::CatchUp::Skip,
    ),
    (
        "sim-cron",
        SimCadence::EverySecondsCron(2),
        Duration::from_secs(3_600),
        flotilla_client::CatchUp::Skip,
    ),
    (
        "sim-tight",
        SimCadence::Every(1_000),
        Duration::from_secs(1),
        flotilla_client::CatchUp::Once,
    ),
];

/// The cadences the simulator uses: ones whose slots the checker computes by plain arithmetic.
#[derive(Clone, Copy, Debug)]
pub enum SimCadence {
    /// Every so many ms from when the schedule was added.
    Every(u64),
    /// `*/n * * * * *` in Europe/Berlin: every whole multiple of `n` seconds (a zone's offset
    /// is whole minutes, so it moves no second-of-minute).
    EverySecondsCron(u64),
}

/// The `sched` client: adds [`SCHEDULES`] at the start of the run (each retried until
/// acknowledged: adding is idempotent), then leaves the cluster to fire them.
pub async fn schedules(addrs: Vec<String>, shared: Arc<Shared>) -> turmoil::Result {
    let plan = &shared.plan;
    let client = Client::builder(addrs)
        .token(&super::node::admin_token(plan.seed))?
        .channel_factory(Arc::new(net::channel))
        .seed(plan.seed ^ 0x5c4e_d01e)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await?;
    let faulty_ms = plan.faulty_phase.as_millis() as u64;
    let deadline = faulty_ms + plan.heal_limit.as_millis() as u64;
    for (name, cadence, grace, catch_up) in SCHEDULES {
        let args = TaskArgs {
            tag: format!("schedule-{name}"),
            ms: 0,
            fail: 0,
        };
        let task = client
            .task(TASK)
            .args(&args)
            .expect("task arguments encode")
            .max_retries(3)
            .result_ttl(Duration::from_secs(24 * 3_600));
        let request = match cadence {
            SimCadence::Every(ms) => client.schedule_every(name, Duration::from_millis(ms), task),
            SimCadence::EverySecondsCron(n) => {
                client.schedule_cron(name, format!("*/{n} * * * * *"), "Europe/Berlin", task)
            }
        }
        .grace(grace)
        .catch_up(catch_up);
        loop {
            match client.add_schedule(request.clone()).await {
                Ok(added) => {
                    shared.event(format!("sched add {name}: {} id {}", added.outcome, added.id));
                    break;
                }
                Err(e) if now_ms() < deadline => {
                    shared.event(format!("sched add {name} failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    shared.problem(format!("sched: schedule {name} never added: {e}"));
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Workflows the `flows` client submits: how many, and how far apart (simulated ms).
pub const WORKFLOWS: u64 = 4;
pub const WORKFLOW_EVERY_MS: u64 = 700;

/// The `flows` client: submits [`WORKFLOWS`] workflows through the faulty phase, each a chain
/// of one task, then a chord of three (one of which always fails in every other workflow)
/// with a callback, with an error callback: what `invariants::callbacks_exact` looks at.
/// Fixed arguments (no draw from the seed's rng: the rest of the run stays what it made).
pub async fn workflows(addrs: Vec<String>, shared: Arc<Shared>) -> turmoil::Result {
    use flotilla_client::workflow::{chain, chord, group};
    let plan = &shared.plan;
    let client = Client::builder(addrs)
        .token(&super::node::admin_token(plan.seed))?
        .channel_factory(Arc::new(net::channel))
        .seed(plan.seed ^ 0xf10_f10)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await?;
    let deadline = plan.faulty_phase.as_millis() as u64;
    let task = |tag: String, ms: u64, fail: u8| {
        client
            .task(TASK)
            .args(&TaskArgs { tag, ms, fail })
            .expect("task arguments encode")
            .max_retries(3)
            .retry_backoff(Duration::from_millis(100))
            .result_ttl(Duration::from_secs(24 * 3_600))
    };
    for w in 0..WORKFLOWS {
        tokio::time::sleep(Duration::from_millis(WORKFLOW_EVERY_MS)).await;
        let fail = if w % 2 == 1 { 2 } else { 0 };
        let members =
            group((0..3u64).map(|j| task(format!("wf{w}-m{j}"), 20 + 30 * j, if j == 1 { fail } else { 0 })));
        let canvas = chain([
            task(format!("wf{w}-first"), 10, 0).into(),
            chord(members, task(format!("wf{w}-body"), 5, 0)),
        ]);
        let on_error = task(format!("wf{w}-errback"), 5, 0);
        loop {
            match client
                .submit_workflow(canvas.clone(), Some(on_error.clone()))
                .await
            {
                Ok(s) => {
                    shared.event(format!("flows workflow {} tasks {:?}", s.id, s.task_ids));
                    break;
                }
                Err(e) if now_ms() < deadline => {
                    shared.event(format!("flows submit {w} failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    shared.event(format!("flows submit {w} given up: {e}"));
                    break;
                }
            }
        }
    }
    Ok(())
}
