//! A cluster of real `node` processes on loopback, each with a fresh temporary data directory,
//! killed (SIGKILL, by the pid this harness started) when the [`Cluster`] is dropped — also
//! when a benchmark fails or panics.
//!
//! Faults for `sim failover` and `sim chaos`: SIGKILL and restart a node, or freeze it with
//! SIGSTOP and thaw it with SIGCONT. Signals only ever go to the pids this harness spawned.
//!
//! [`Cluster::start_placed`] puts nodes elsewhere than on loopback (`sim chaos --net`: each in
//! its own network namespace, at its own address); nodes off loopback want a token from every
//! client, so the harness presents the one it is given.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_client::{Client, ClientBuilder, RetryPolicy};
use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;
use tokio::time::Instant;
use tracing::{debug, info};

use super::procfs::{self, ProcSample};

/// How to start the nodes of a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `node` executable.
    pub node_bin: PathBuf,
    /// `--workers` of every node (0: the node runs no tasks).
    pub workers: usize,
    /// How long a node may take to lead (or to serve after a restart).
    pub ready_timeout: Duration,
    /// Further flags for every node (e.g. `--lease-ms 2000`).
    pub node_args: Vec<String>,
}

/// Where a node of [`Cluster::start_placed`] runs.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The address it listens on, and is reached at.
    pub addr: String,
    /// The network namespace it runs in (through `ip netns exec`); `None`: this process's.
    pub netns: Option<String>,
    /// Flags for this node alone (e.g. `--zone`).
    pub args: Vec<String>,
}

/// Running nodes and their data directories. Dropping it kills the nodes, then removes the
/// directories (fields drop in declaration order).
pub struct Cluster {
    nodes: Vec<NodeProcess>,
    dir: TempDir,
    token: Option<String>,
}

impl Cluster {
    /// Starts `nodes` nodes (the first founds the cluster, the others `--join` it) and waits
    /// until every node sees all of them as members under one leader.
    pub async fn start(nodes: usize, opts: &ClusterOptions) -> Result<Cluster> {
        let placements = (0..nodes)
            .map(|_| {
                Ok(Placement {
                    addr: format!("127.0.0.1:{}", free_port()?),
                    netns: None,
                    args: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Cluster::start_placed(placements, None, opts).await
    }

    /// Starts a node at each placement, like [`Cluster::start`]. With a `token`, joining nodes
    /// show it (`--token`) and every call of the harness presents it: the first node must make
    /// it its admin token (`--admin-token-file` in `opts.node_args`).
    pub async fn start_placed(
        placements: Vec<Placement>,
        token: Option<String>,
        opts: &ClusterOptions,
    ) -> Result<Cluster> {
        let nodes = placements.len();
        if nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        let dir = tempfile::Builder::new()
            .prefix("flotilla-bench-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let mut args = vec!["--workers".to_owned(), opts.workers.to_string()];
        args.extend(opts.node_args.iter().cloned());
        let mut placements = placements.into_iter();
        let first = placements.next().context("no placement")?;
        let first = NodeProcess::start(
            &opts.node_bin,
            &dir.path().join("n1"),
            first,
            args.clone(),
            &token,
        )?;
        info!(addr = %first.addr, pid = first.pid(), workers = opts.workers, dir = %dir.path().display(), "started node");
        let join = first.addr.clone();
        let mut cluster = Cluster {
            nodes: vec![first],
            dir,
            token: token.clone(),
        };
        // The founder serves first: a joiner is refused until the founder's admin token (the
        // one a joiner shows) is in force.
        cluster.wait_ready(opts.ready_timeout).await?;
        // One at a time: each joins (catches up, becomes a voter) before the next starts.
        for (i, place) in (2..=nodes).zip(placements) {
            let mut args = args.clone();
            args.extend(["--join".to_owned(), join.clone()]);
            if let Some(token) = &token {
                args.extend(["--token".to_owned(), token.clone()]);
            }
            let dir = cluster.dir.path().join(format!("n{i}"));
            let node = NodeProcess::start(&opts.node_bin, &dir, place, args, &token)?;
            info!(addr = %node.addr, pid = node.pid(), "started joining node");
            cluster.nodes.push(node);
            cluster.wait_ready(opts.ready_timeout).await?;
        }
        cluster.wait_ready(opts.ready_timeout).await?;
        Ok(cluster)
    }

    /// The nodes' data directories, in node order.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.data_dir.clone()).collect()
    }

    /// The nodes' client addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// The token every call presents (nodes off loopback need one), if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A client builder for `addrs` that presents the cluster's token, if any.
    pub fn client_builder(&self, addrs: Vec<String>) -> Result<ClientBuilder> {
        with_token(Client::builder(addrs), self.token.as_deref())
    }

    /// Where the nodes' data and logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the data directories and node logs when the cluster is dropped (the nodes are
    /// still killed), for a post-mortem; returns where they are.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    /// A client of every node, sending `batch` tasks per request with up to `in_flight`
    /// requests of one `submit_batch` in flight.
    pub async fn client(&self, batch: usize, in_flight: usize) -> Result<Client> {
        self.client_gathering(batch, in_flight, true).await
    }

    /// [`Cluster::client`], with concurrent single calls gathered or not
    /// (`ClientBuilder::gather_calls`).
    pub async fn client_gathering(&self, batch: usize, in_flight: usize, gather: bool) -> Result<Client> {
        Ok(self
            .client_builder(self.addrs())?
            .gather_calls(gather)
            .max_batch_size(batch)
            .max_in_flight_batches(in_flight)
            .request_timeout(Duration::from_secs(30))
            .retry_policy(RetryPolicy {
                max_elapsed: Duration::from_secs(30),
                ..RetryPolicy::default()
            })
            .build()
            .await?)
    }

    /// CPU and memory counters of every node, in node order.
    pub fn sample(&self) -> Result<Vec<ProcSample>> {
        self.nodes
            .iter()
            .map(|n| {
                let pid = n.pid().context("node is not running")?;
                procfs::sample(pid).with_context(|| format!("sampling node at {}", n.addr))
            })
            .collect()
    }

    /// SIGKILLs node `i` and starts it again on the same address and data directory; returns
    /// the moment the new process was spawned.
    pub fn kill9_and_restart(&mut self, i: usize) -> Result<Instant> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        node.kill9();
        node.spawn()
    }

    /// SIGKILLs node `i` (no chance to flush anything).
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        self.nodes.get_mut(i).context("no such node")?.kill9();
        Ok(())
    }

    /// Starts node `i` again on its address and data directory, and waits until every node
    /// sees all members under a leader.
    pub async fn restart(&mut self, i: usize, timeout: Duration) -> Result<()> {
        self.nodes.get_mut(i).context("no such node")?.spawn()?;
        self.wait_ready(timeout).await
    }

    /// Starts node `i` again on its address and data directory, without waiting for it (see
    /// [`Cluster::probe_ready`]).
    pub fn spawn_again(&mut self, i: usize) -> Result<()> {
        self.nodes.get_mut(i).context("no such node")?.spawn()?;
        Ok(())
    }

    /// Freezes node `i` with SIGSTOP: its process keeps its sockets and state but runs nothing
    /// (a GC pause, a VM migration, an overloaded host) until [`Cluster::resume`].
    pub fn freeze(&mut self, i: usize) -> Result<()> {
        self.nodes
            .get_mut(i)
            .context("no such node")?
            .signal(Signal::STOP)
    }

    /// Thaws node `i` (SIGCONT) after [`Cluster::freeze`].
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.nodes
            .get_mut(i)
            .context("no such node")?
            .signal(Signal::CONT)
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        self.nodes.get(i).map(NodeProcess::log_tail).unwrap_or_default()
    }

    /// Fails with the node's log when node `i` has exited.
    pub fn check_alive(&mut self, i: usize) -> Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        node.check_alive()
    }

    /// Whether node `i` sees all members under a leader now (one status call, up to
    /// `timeout`); fails with the node's log when it has exited.
    pub async fn probe_ready(&mut self, i: usize, timeout: Duration) -> Result<bool> {
        let members = self.nodes.len();
        let node = self.nodes.get_mut(i).context("no such node")?;
        let client = node.status_client(timeout).await?;
        if node.is_ready(&client, members).await {
            return Ok(true);
        }
        node.check_alive()?;
        Ok(false)
    }

    /// Waits until every node reports that the cluster has a leader.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let members = self.nodes.len();
        let deadline = Instant::now() + timeout;
        for node in &mut self.nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            node.wait_ready(members, left).await?;
        }
        Ok(())
    }
}

/// `builder` presenting `token`, if any.
fn with_token(builder: ClientBuilder, token: Option<&str>) -> Result<ClientBuilder> {
    Ok(match token {
        Some(token) => builder.token(token)?,
        None => builder,
    })
}

/// One `node` process. Dropping it kills the process.
struct NodeProcess {
    bin: PathBuf,
    addr: String,
    netns: Option<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<String>,
    token: Option<String>,
    child: Option<Child>,
}

impl NodeProcess {
    fn start(
        bin: &Path,
        data_dir: &Path,
        place: Placement,
        mut args: Vec<String>,
        token: &Option<String>,
    ) -> Result<NodeProcess> {
        args.extend(place.args);
        let mut node = NodeProcess {
            bin: bin.to_path_buf(),
            addr: place.addr,
            netns: place.netns,
            data_dir: data_dir.to_path_buf(),
            log_path: data_dir.with_extension("log"),
            args,
            token: token.clone(),
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    /// Spawns the process (appending to its log file); returns the moment it was spawned.
    fn spawn(&mut self) -> Result<Instant> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        // Node logs cost CPU on the measured path: warnings only, unless asked.
        let filter = std::env::var("SIM_NODE_LOG").unwrap_or_else(|_| "warn".into());
        let spawned_at = Instant::now();
        // `ip netns exec` execs the node in place: the pid spawned is the node's own.
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = command
            .arg("--listen")
            .arg(&self.addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(spawned_at)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to this node's own process (never to a process group).
    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
            .with_context(|| format!("node at {} is not running", self.addr))?;
        kill_process(pid, signal).with_context(|| format!("sending {signal:?} to node at {}", self.addr))
    }

    /// A client of this node alone that makes one attempt per call.
    async fn status_client(&self, timeout: Duration) -> Result<Client> {
        Ok(
            with_token(Client::builder([self.addr.clone()]), self.token.as_deref())?
                .retry_policy(RetryPolicy::never())
                .request_timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .await?,
        )
    }

    /// Whether this node answers that it sees `members` members, all voters (a joiner is a
    /// learner until promoted), under a leader.
    async fn is_ready(&self, client: &Client, members: usize) -> bool {
        match client.status().await {
            Ok(s)
                if s.leader_id.is_some()
                    && s.members.len() == members
                    && s.members.iter().all(|m| m.role != "learner") =>
            {
                debug!(addr = %self.addr, leader = ?s.leader_id, "node ready");
                true
            }
            _ => false,
        }
    }

    /// Waits until this node sees `members` voters under a leader, or fails after `timeout`.
    async fn wait_ready(&mut self, members: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let client = self.status_client(Duration::from_secs(1)).await?;
        loop {
            if self.is_ready(&client, members).await {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "node at {} did not get a leader within {timeout:?}; log:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails with the log's tail once the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!(
                "node at {} exited ({status}); log:\n{}",
                self.addr,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// SIGKILL (no chance to flush anything) and reap.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the node's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            debug!(pid, addr = %self.addr, "killing node");
        }
        self.kill9();
    }
}

/// A free port on 127.0.0.1 (the OS picks it; the tiny race with other processes is accepted).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `node` executable: `explicit` if given, else `node` next to the running executable
/// (`target/<profile>/node` beside `target/<profile>/sim`).
pub fn locate_node_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating the running executable")?
            .parent()
            .context("the running executable has no directory")?
            .join("node"),
    };
    if !path.is_file() {
        bail!(
            "no `node` binary at {}: build it first: cargo build --release --bin node \
             (or pass --node-bin PATH)",
            path.display()
        );
    }
    Ok(path)
}
