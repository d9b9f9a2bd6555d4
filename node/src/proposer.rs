//! [`Proposer`]: the one way this node writes to the replicated queue.
//!
//! Concurrent proposals (client submits, worker leases and completions, ticks) are coalesced
//! into one log entry, so one fsync and one replication round carry many of them; a few
//! entries are kept in flight at once so the disk and the network stay busy. The leader stamps
//! each entry with its clock. On a follower the batch is forwarded to the leader, which
//! coalesces it again with its own traffic. Callers retry briefly through elections.

use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::backoff::Backoff;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tracing::debug;
use tracing::warn;

use crate::clock::SharedClock;
use crate::error::ProposeError;
use crate::network::Peers;
use crate::queue::Command;
use crate::queue::Request;
use crate::queue::Response;
use crate::queue::name::check_commands;
use crate::queue::ops::Op;
use crate::raft::Raft;

/// Most commands in one log entry. A `Submit` command may itself carry a whole client batch.
const MAX_COMMANDS_PER_ENTRY: usize = 4096;
/// Entries written concurrently (each waits for its commit; openraft pipelines them).
const MAX_ENTRIES_IN_FLIGHT: usize = 8;
/// How long a caller keeps retrying while there is no leader (an election lasts ~0.3 s).
const NO_LEADER_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Pauses between those retries: from 10 ms, doubling up to a short cap, so writes resume
/// within a few tens of ms of a new leader (failover is budgeted at one second in all).
const NO_LEADER_BACKOFF: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));

type Reply = oneshot::Sender<Result<Vec<Response>, ProposeError>>;

struct Proposal {
    commands: Vec<Command>,
    /// Already forwarded once by a follower: never forward again (no forwarding loops).
    forwarded: bool,
    reply: Reply,
}

/// Handle to the proposing task; cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Start the batching task on the current tokio runtime.
    pub fn start(raft: Raft, clock: SharedClock, peers: Peers) -> Self {
        Self::start_measured(raft, clock, peers, None)
    }

    /// [`Proposer::start`], measuring each entry it writes into `measured`.
    pub fn start_measured(
        raft: Raft,
        clock: SharedClock,
        peers: Peers,
        measured: Option<EntryMetrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let writer = Writer {
            raft,
            clock,
            peers,
            measured,
            in_flight: Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT)),
            told_removed: Default::default(),
        };
        tokio::spawn(writer.run(rx));
        Self { tx }
    }

    /// Propose one command; resolves once it is committed and applied.
    pub async fn propose(&self, cmd: Command) -> Result<Response, ProposeError> {
        let mut responses = self.propose_many(vec![cmd]).await?;
        responses
            .pop()
            .ok_or_else(|| ProposeError::Fatal("state machine returned no response".into()))
    }

    /// Propose one typed op ([`crate::queue::ops`]); resolves to its typed answer once
    /// committed and applied.
    pub async fn op<O: Op>(&self, op: O) -> Result<O::Answer, ProposeError> {
        let response = self.propose(op.command()).await?;
        Ok(O::answer(response)?)
    }

    /// Propose commands to be applied together, in order, in one entry.
    pub async fn propose_many(&self, commands: Vec<Command>) -> Result<Vec<Response>, ProposeError> {
        let mut backoff = NO_LEADER_BACKOFF;
        let mut waited = Duration::ZERO;
        loop {
            match self.submit(commands.clone(), false).await {
                Err(e @ (ProposeError::NoLeader | ProposeError::Forward(_))) => {
                    if waited >= NO_LEADER_RETRY_WINDOW {
                        return Err(e);
                    }
                    let delay = backoff.next_delay();
                    debug!(error = %e, backoff_ms = delay.as_millis() as u64, "proposal retried");
                    tokio::time::sleep(delay).await;
                    waited += delay;
                }
                other => return other,
            }
        }
    }

    /// Propose commands that a follower forwarded here: no retry, no further forwarding.
    pub async fn propose_forwarded(&self, commands: Vec<Command>) -> Result<Vec<Response>, ProposeError> {
        self.submit(commands, true).await
    }

    async fn submit(&self, commands: Vec<Command>, forwarded: bool) -> Result<Vec<Response>, ProposeError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        // Every write passes here, a peer's forwarded ones too: the one place that keeps names
        // no entry point checked (a lease's, a purge's) out of the log.
        check_commands(&commands).map_err(|e| ProposeError::Invalid(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal {
                commands,
                forwarded,
                reply,
            })
            .await
            .map_err(|_| ProposeError::ShuttingDown)?;
        rx.await.map_err(|_| ProposeError::ShuttingDown)?
    }
}

/// What the proposer measures of the entries it writes (the node's metrics).
#[derive(Clone, Debug)]
pub struct EntryMetrics {
    /// Seconds from handing an entry to Raft to its being committed and applied here.
    pub commit_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Commands per entry written.
    pub entry_commands: prometheus_client::metrics::histogram::Histogram,
}

struct Writer {
    raft: Raft,
    measured: Option<EntryMetrics>,
    clock: SharedClock,
    peers: Peers,
    in_flight: Arc<Semaphore>,
    /// Whether "this node was removed" was logged already (its pool retries for ever).
    told_removed: std::sync::atomic::AtomicBool,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Proposal>) {
        let this = Arc::new(self);
        while let Some(first) = rx.recv().await {
            // Wait for a slot first: while all slots are busy, more proposals pile up in the
            // channel and the next entry carries all of them.
            let Ok(permit) = this.in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            let mut n = batch[0].commands.len();
            while n < MAX_COMMANDS_PER_ENTRY {
                match rx.try_recv() {
                    Ok(p) => {
                        n += p.commands.len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.write(batch).await;
                drop(permit);
            });
        }
    }

    async fn write(&self, batch: Vec<Proposal>) {
        let commands: Vec<Command> = batch.iter().flat_map(|p| p.commands.iter().cloned()).collect();
        let req = Request {
            now_ms: self.clock.now_ms(),
            commands,
        };
        let started = tokio::time::Instant::now();
        let commands = req.commands.len();
        debug!(target: crate::trace::TIMELINE, commands, "entry proposed");
        match self.raft.client_write(req).await {
            Ok(resp) => {
                debug!(target: crate::trace::TIMELINE, commands, "entry applied (proposer answered)");
                if let Some(m) = &self.measured {
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                    m.entry_commands.observe(commands as f64);
                }
                split_replies(batch, resp.data.0)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let leader = f
                    .leader_id
                    .zip(f.leader_node)
                    .filter(|(id, _)| id != self.raft.node_id());
                let (local, forwarded): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| !p.forwarded);
                for p in forwarded {
                    let _ = p.reply.send(Err(ProposeError::NoLeader));
                }
                match leader {
                    None => {
                        for p in local {
                            let _ = p.reply.send(Err(ProposeError::NoLeader));
                        }
                    }
                    Some((leader_id, node)) if !local.is_empty() => {
                        let commands: Vec<Command> =
                            local.iter().flat_map(|p| p.commands.iter().cloned()).collect();
                        let client = self.peers.client(leader_id, &node.addr);
                        match client.forward(&commands).await {
                            Ok(responses) => split_replies(local, responses),
                            Err(e) => {
                                if matches!(e, ProposeError::NotAMember)
                                    && !self.told_removed.swap(true, std::sync::atomic::Ordering::Relaxed)
                                {
                                    warn!(
                                        leader_id,
                                        "the leader refused this node's writes: this node was removed from the cluster"
                                    );
                                } else {
                                    debug!(leader_id, error = %e, "forward to leader failed");
                                }
                                for p in local {
                                    let _ = p.reply.send(Err(e.clone()));
                                }
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
            // The entry may or may not commit: report "no leader" so callers retry; submits
            // carry idempotency keys and completions are fenced, so a retry cannot duplicate.
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                fail_all(batch, ProposeError::NoLeader)
            }
            Err(RaftError::APIError(e)) => fail_all(batch, ProposeError::Invalid(e.to_string())),
            Err(RaftError::Fatal(e)) => {
                warn!(error = %e, "raft stopped; write refused");
                fail_all(batch, ProposeError::Fatal(e.to_string()))
            }
        }
    }
}

fn fail_all(batch: Vec<Proposal>, err: ProposeError) {
    for p in batch {
        let _ = p.reply.send(Err(err.clone()));
    }
}

/// Hand each proposal its own slice of the entry's responses.
fn split_replies(batch: Vec<Proposal>, responses: Vec<Response>) {
    let total: usize = batch.iter().map(|p| p.commands.len()).sum();
    if responses.len() != total {
        let msg = format!(
            "state machine returned {} responses for {total} commands",
            responses.len()
        );
        return fail_all(batch, ProposeError::Fatal(msg));
    }
    let mut rest = responses.into_iter();
    for p in batch {
        let mine: Vec<Response> = rest.by_ref().take(p.commands.len()).collect();
        let _ = p.reply.send(Ok(mine));
    }
}
