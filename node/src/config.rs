//! [`Config`]: every setting of a node, in one struct that is both the clap command line (with
//! `FLOTILLA_*` environment variables) and a serde document. Names carry their units.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use serde::Serialize;

use crate::queue::name::check_queue_name;
use crate::secret::Secret;
use crate::worker::Prefetch;

/// Largest task payload accepted by default (args of one task): 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Largest result a remote worker may send by default: 1 MiB, like a payload (a result is
/// kept in the replicated state until its TTL, on every node).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Run a Flotilla node: a member of a Raft cluster whose replicated log is the task queue, with
/// worker actors that run the tasks.
#[derive(Parser, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[command(name = "node", version, about)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, for clients and peers alike.
    #[arg(long, env = "FLOTILLA_LISTEN", default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,

    /// Address that other nodes and clients use to reach this node (default: --listen).
    #[arg(long, env = "FLOTILLA_ADVERTISE")]
    pub advertise: Option<String>,

    /// Directory holding this node's log, snapshots and identity.
    #[arg(long, env = "FLOTILLA_DATA_DIR", default_value = "./flotilla-data")]
    pub data_dir: PathBuf,

    /// Join the cluster of any of these members (`host:port`), instead of founding a new one.
    /// Only needed the first time: a restarted node rejoins from its data directory.
    #[arg(long, env = "FLOTILLA_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,

    /// Zone label of this node (data center or rack), shown in `flotilla status`.
    #[arg(long, env = "FLOTILLA_ZONE", default_value = "")]
    pub zone: String,

    /// How long a joining node waits to catch up and become a voter, in ms.
    #[arg(long, env = "FLOTILLA_JOIN_TIMEOUT_MS", default_value_t = 300_000)]
    pub join_timeout_ms: u64,

    /// Worker actors on this node (default: the number of cores; 0 runs no tasks here).
    #[arg(long, env = "FLOTILLA_WORKERS")]
    pub workers: Option<usize>,

    /// Tasks a worker pool leases ahead of its free workers, held until one is free: `auto`
    /// (what the pool finishes in one commit round trip, from its measured round trips and run
    /// times; none for tasks longer than a round trip), a number, or 0 for none. Applies to
    /// this node's workers and to remote workers whose Hello states none.
    #[arg(long, env = "FLOTILLA_PREFETCH", default_value = "auto")]
    #[serde(default)]
    pub prefetch: Prefetch,

    /// Queues this node's workers take tasks from, in order of preference (default: `default`,
    /// where the node's own task names are declared; other queues are for remote workers).
    #[arg(long, env = "FLOTILLA_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,

    /// Largest accepted task payload (its JSON arguments), in bytes.
    #[arg(long, env = "FLOTILLA_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: usize,

    /// Largest result (or failure message) a remote worker may record, in bytes: a larger one
    /// fails its task, not retried, with an error saying so.
    #[arg(long, env = "FLOTILLA_MAX_RESULT_BYTES", default_value_t = DEFAULT_MAX_RESULT_BYTES)]
    pub max_result_bytes: usize,

    /// Hosts the built-in `http` task may call, comma-separated: `host`, `host:port`,
    /// `*.domain[:port]`, or an IP (`10.0.0.5:8080`, `[::1]:9000`). Empty (the default) refuses
    /// every host. Checked at submit and again when the task runs.
    #[arg(long, env = "FLOTILLA_HTTP_ALLOW", value_delimiter = ',')]
    pub http_allow: Vec<String>,

    /// Let the `http` task reach listed hosts that resolve to loopback, private or link-local
    /// addresses (refused by default: only an entry naming the IP itself allows one).
    #[arg(long, env = "FLOTILLA_HTTP_ALLOW_PRIVATE")]
    pub http_allow_private: bool,

    /// The node pings each remote worker this often, in ms; a worker silent for three pings
    /// loses its stream and its tasks are released.
    #[arg(long, env = "FLOTILLA_WORKER_PING_INTERVAL_MS", default_value_t = 5_000)]
    pub worker_ping_interval_ms: u64,

    /// Most tasks accepted in one submit request.
    #[arg(long, env = "FLOTILLA_MAX_BATCH_TASKS", default_value_t = 10_000)]
    pub max_batch_tasks: usize,

    /// A worker's lease on a task lasts this long without a heartbeat, in ms.
    #[arg(long, env = "FLOTILLA_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,

    /// Time limit of one attempt when the task sets none, in ms.
    #[arg(long, env = "FLOTILLA_DEFAULT_TIME_LIMIT_MS", default_value_t = 300_000)]
    pub default_time_limit_ms: u64,

    /// How long finished tasks and their results are kept when the task sets no TTL, in ms.
    #[arg(long, env = "FLOTILLA_DEFAULT_RESULT_TTL_MS", default_value_t = 24 * 3600 * 1000)]
    pub default_result_ttl_ms: u64,

    /// Base retry delay when the task sets none, in ms (doubles per failed attempt).
    #[arg(long, env = "FLOTILLA_DEFAULT_RETRY_BACKOFF_MS", default_value_t = 1_000)]
    pub default_retry_backoff_ms: u64,

    /// On SIGTERM, running tasks get this long to finish before they are released, in ms.
    #[arg(long, env = "FLOTILLA_DRAIN_GRACE_MS", default_value_t = 10_000)]
    pub drain_grace_ms: u64,

    /// Raft heartbeat interval, in ms.
    #[arg(long, env = "FLOTILLA_HEARTBEAT_INTERVAL_MS", default_value_t = 50)]
    pub heartbeat_interval_ms: u64,

    /// Raft election timeout, lower bound, in ms.
    #[arg(long, env = "FLOTILLA_ELECTION_TIMEOUT_MS_MIN", default_value_t = 150)]
    pub election_timeout_ms_min: u64,

    /// Raft election timeout, upper bound, in ms.
    #[arg(long, env = "FLOTILLA_ELECTION_TIMEOUT_MS_MAX", default_value_t = 300)]
    pub election_timeout_ms_max: u64,

    /// Build a snapshot (and purge the log behind it) once about this many bytes of log were
    /// written since the last one.
    #[arg(long, env = "FLOTILLA_SNAPSHOT_LOG_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub snapshot_log_bytes: u64,

    /// Snapshots go to lagging followers in messages of this many bytes.
    #[arg(long, env = "FLOTILLA_SNAPSHOT_CHUNK_BYTES", default_value_t = 1024 * 1024)]
    pub snapshot_chunk_bytes: usize,

    /// Largest snapshot this node accepts from a leader, in bytes (held in memory as it arrives).
    #[arg(long, env = "FLOTILLA_MAX_SNAPSHOT_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_snapshot_bytes: u64,

    /// A connection that sends nothing (no HTTP/2 or TLS handshake) is closed after this, in ms.
    #[arg(long, env = "FLOTILLA_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,

    /// A connection with no call in progress is closed after this, in ms.
    #[arg(long, env = "FLOTILLA_IDLE_TIMEOUT_MS", default_value_t = 300_000)]
    pub idle_timeout_ms: u64,

    /// Also build a snapshot after this many log entries, whatever their size.
    #[arg(long, env = "FLOTILLA_SNAPSHOT_EVERY_ENTRIES", default_value_t = 20_000)]
    pub snapshot_every_entries: u64,

    /// The token this node shows when it joins a cluster (--join): a join or admin token
    /// (`flotilla token create --role join`). Not needed to restart a member.
    #[arg(long, env = "FLOTILLA_TOKEN", hide_env_values = true)]
    #[serde(default)]
    pub token: Option<Secret>,

    /// Where the first admin token is kept: used as it is if the file exists, else written
    /// there (mode 0600) when the cluster has no admin token (default: admin.token in --data-dir).
    #[arg(long, env = "FLOTILLA_ADMIN_TOKEN_FILE")]
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,

    /// Require a token from every client, also when listening on loopback only (where
    /// anonymous local clients are otherwise served with every right).
    #[arg(long, env = "FLOTILLA_REQUIRE_TOKEN")]
    #[serde(default)]
    pub require_token: bool,

    /// Listen on an address other machines can reach without TLS, on purpose: the peer secret
    /// and client tokens then cross the network in the clear.
    #[arg(long, env = "FLOTILLA_INSECURE")]
    #[serde(default)]
    pub insecure: bool,

    /// TLS on this node's port and mutual TLS to its peers: `None` serves plaintext.
    #[command(flatten)]
    #[serde(default)]
    pub tls: Option<TlsConfig>,

    /// The HTTP port (metrics, health) and trace export.
    #[command(flatten)]
    #[serde(default)]
    pub observe: crate::observe::ObserveConfig,
}

/// A node's TLS files (`flotilla certs ca|node` makes them; docs/OPERATIONS.md "TLS"). All
/// three or none (each flag requires the others; with none, clap leaves `Config::tls` empty):
/// with them, the port serves TLS only, and calls between nodes need mutual
/// TLS with certificates naming the same cluster.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This node's certificate (PEM), naming its cluster and every name it is reached by
    /// (--advertise, --join): served to clients and peers, and shown to the peers it dials.
    #[arg(long = "tls-cert", env = "FLOTILLA_TLS_CERT", required = false, requires_all = ["key", "ca"])]
    pub cert: PathBuf,

    /// The private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", env = "FLOTILLA_TLS_KEY", required = false, requires_all = ["cert", "ca"])]
    pub key: PathBuf,

    /// The CA certificate (PEM) that signed the cluster's nodes: peers and client certificates
    /// are verified against it.
    #[arg(long = "tls-ca", env = "FLOTILLA_TLS_CA", required = false, requires_all = ["cert", "key"])]
    pub ca: PathBuf,
}

/// Whether clients without a token are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Anonymous callers are local users with every right (a node on loopback only).
    Open,
    /// Every client call needs a token.
    Tokens,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid --{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// Largest message the gRPC services accept; a submit batch or a snapshot must fit.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;

/// What one task of a submit may take besides its payload: name, queue and idempotency key
/// (each bounded), options, headers and protobuf framing.
pub const TASK_OVERHEAD_BYTES: usize = 4 * 1024 + crate::queue::MAX_HEADER_BYTES;

/// A client request is bounded by a full batch of full payloads, but never above this unless
/// one task alone needs more (`--max-payload-bytes` up to 64 MiB).
pub const MAX_REQUEST_BYTES_CAP: usize = flotilla_proto::MAX_REQUEST_BYTES;

impl Default for Config {
    fn default() -> Self {
        // One source of defaults: clap's.
        Config::parse_from(["node"])
    }
}

impl Config {
    /// `--http-allow` and `--http-allow-private`, parsed (checked by [`Config::validate`]).
    pub fn http_allow(&self) -> Result<crate::worker::http::HttpAllow, String> {
        crate::worker::http::HttpAllow::parse(&self.http_allow, self.http_allow_private)
    }

    /// Check the settings together; returns the config with derived defaults filled in.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        if self.advertise.is_none() {
            self.advertise = Some(self.listen.to_string());
        }
        if self.listen.ip().is_unspecified() && self.advertise.as_deref() == Some(&self.listen.to_string()) {
            return Err(invalid(
                "advertise",
                format!(
                    "--listen {} is not an address others can reach; give --advertise HOST:PORT",
                    self.listen
                ),
            ));
        }
        let advertise = self.advertise.as_deref().unwrap_or_default();
        match advertise.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
            _ => return Err(invalid("advertise", format!("'{advertise}' is not host:port"))),
        }
        for peer in &self.join {
            match peer.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
                _ => return Err(invalid("join", format!("'{peer}' is not host:port"))),
            }
        }
        if self.zone.len() > 64 {
            return Err(invalid("zone", "is limited to 64 bytes"));
        }
        let workers = self.workers.unwrap_or_else(default_workers);
        if workers > 1024 {
            return Err(invalid("workers", format!("{workers} is more than 1024")));
        }
        self.workers = Some(workers);
        for q in &self.queues {
            check_queue_name(q).map_err(|e| invalid("queues", e.to_string()))?;
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > 64 * 1024 * 1024 {
            return Err(invalid("max-payload-bytes", "must be between 1 and 67108864"));
        }
        if self.max_result_bytes == 0 || self.max_result_bytes > 64 * 1024 * 1024 {
            return Err(invalid("max-result-bytes", "must be between 1 and 67108864"));
        }
        self.http_allow().map_err(|e| invalid("http-allow", e))?;
        if self.worker_ping_interval_ms == 0 {
            return Err(invalid("worker-ping-interval-ms", "must be at least 1"));
        }
        if self.max_batch_tasks == 0 {
            return Err(invalid("max-batch-tasks", "must be at least 1"));
        }
        if self.lease_ms < 100 {
            return Err(invalid("lease-ms", "must be at least 100"));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.election_timeout_ms_min {
            return Err(invalid(
                "heartbeat-interval-ms",
                "must be above 0 and below the election timeout",
            ));
        }
        if self.election_timeout_ms_min >= self.election_timeout_ms_max {
            return Err(invalid(
                "election-timeout-ms-min",
                "must be below --election-timeout-ms-max",
            ));
        }
        if self.snapshot_log_bytes == 0 {
            return Err(invalid("snapshot-log-bytes", "must be at least 1"));
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_chunk_bytes > 64 * 1024 * 1024 {
            return Err(invalid("snapshot-chunk-bytes", "must be between 1 and 67108864"));
        }
        if self.max_snapshot_bytes == 0 {
            return Err(invalid("max-snapshot-bytes", "must be at least 1"));
        }
        if self.handshake_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return Err(invalid(
                if self.handshake_timeout_ms == 0 {
                    "handshake-timeout-ms"
                } else {
                    "idle-timeout-ms"
                },
                "must be at least 1",
            ));
        }
        if self.snapshot_every_entries == 0 {
            return Err(invalid("snapshot-every-entries", "must be at least 1"));
        }
        self.check_exposure(self.has_tls())?;
        self.observe.validate(self.insecure)?;
        Ok(self)
    }

    /// Whether this node serves TLS (the TLS flags).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The secure-defaults rule: a node that other machines can reach serves TLS, unless
    /// `--insecure` says it should not on purpose. (Off loopback, clients always need tokens.)
    pub fn check_exposure(&self, tls: bool) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() || tls || self.insecure {
            return Ok(());
        }
        Err(invalid(
            "insecure",
            format!(
                "--listen {} is reachable from other machines, but this node has no TLS: the \
                 cluster's peer secret and client tokens would cross the network in the clear. \
                 Give --tls-cert, --tls-key and --tls-ca (`flotilla certs` makes them), or \
                 --insecure to run without TLS on purpose (docs/SECURITY.md)",
                self.listen
            ),
        ))
    }

    /// Whether clients need tokens: always, unless the node listens on loopback only and
    /// `--require-token` is not given.
    pub fn client_auth(&self) -> ClientAuth {
        if self.listen.ip().is_loopback() && !self.require_token {
            ClientAuth::Open
        } else {
            ClientAuth::Tokens
        }
    }

    /// One line on how this node is exposed, for its log at start: the secure-defaults rule
    /// said either way. `true` when it deserves a warning.
    pub fn exposure_summary(&self) -> (bool, String) {
        match (self.client_auth(), self.has_tls()) {
            (ClientAuth::Open, _) => (
                false,
                format!(
                    "listening on loopback {} only: local clients need no token (--require-token to ask for one)",
                    self.listen
                ),
            ),
            (ClientAuth::Tokens, true) => (false, "TLS on; every client needs a token".into()),
            (ClientAuth::Tokens, false) if !self.listen.ip().is_loopback() => (
                true,
                "--insecure: no TLS on an address other machines can reach; the peer secret and tokens cross the network in the clear".into(),
            ),
            (ClientAuth::Tokens, false) => (false, "every client needs a token (--require-token)".into()),
        }
    }

    /// The first admin token's file.
    pub fn admin_token_path(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.token"))
    }

    /// The advertised address (after [`Config::validate`]).
    pub fn advertise_addr(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// Largest client request the node decodes: what `--max-batch-tasks` tasks of
    /// `--max-payload-bytes` each need, capped at [`MAX_REQUEST_BYTES_CAP`] (or one full task,
    /// if that is larger). A larger request is refused before it is buffered whole.
    pub fn max_request_bytes(&self) -> usize {
        let task = self.max_payload_bytes.saturating_add(TASK_OVERHEAD_BYTES);
        let cap = MAX_REQUEST_BYTES_CAP.max(task);
        self.max_batch_tasks.saturating_mul(task).min(cap)
    }

    /// The queues of this node's own pool: `--queues`, or the default queue, where the node
    /// declares its built-in task names. Never every queue: a pool takes every task of the
    /// queues it serves, and a Python worker's queue holds names this node cannot run.
    pub fn pool_queues(&self) -> Vec<String> {
        if self.queues.is_empty() {
            vec![crate::queue::DEFAULT_QUEUE.to_string()]
        } else {
            self.queues.clone()
        }
    }

    /// Worker count (after [`Config::validate`]).
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(default_workers)
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["node"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_a_local_single_node() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.advertise_addr(), "127.0.0.1:7000");
        assert_eq!(c.data_dir, PathBuf::from("./flotilla-data"));
        assert!(c.worker_count() >= 1);
        assert_eq!(c.max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        assert!(parse(&["--listen", "nowhere"]).unwrap_err().contains("--listen"));
        assert!(parse(&["--workers", "x"]).unwrap_err().contains("--workers"));
        assert!(
            parse(&["--advertise", "host"])
                .unwrap_err()
                .contains("--advertise")
        );
        assert!(parse(&["--queues", "a,,b"]).unwrap_err().contains("--queues"));
        assert!(
            parse(&["--max-payload-bytes", "0"])
                .unwrap_err()
                .contains("--max-payload-bytes")
        );
        assert!(parse(&["--no-such-flag"]).is_err());
        assert!(
            parse(&["--join", "127.0.0.1:7000,nope"])
                .unwrap_err()
                .contains("--join")
        );
        assert!(
            parse(&["--listen", "0.0.0.0:7000", "--insecure"])
                .unwrap_err()
                .contains("--advertise")
        );
        assert!(
            parse(&[
                "--listen",
                "0.0.0.0:7000",
                "--advertise",
                "10.1.2.3:7000",
                "--insecure"
            ])
            .is_ok()
        );
    }

    #[test]
    fn off_loopback_a_node_needs_tls_or_insecure_and_clients_need_tokens() {
        let exposed = ["--listen", "0.0.0.0:7000", "--advertise", "10.1.2.3:7000"];
        let err = parse(&exposed).unwrap_err();
        assert!(err.contains("--insecure") && err.contains("--tls-cert"), "{err}");
        let mut insecure = exposed.to_vec();
        insecure.push("--insecure");
        let c = parse(&insecure).unwrap();
        assert_eq!(c.client_auth(), ClientAuth::Tokens);
        assert!(c.exposure_summary().0, "--insecure is a warning");
        let c = Config::try_parse_from(["node", "--listen", "10.0.0.1:7000"]).unwrap();
        assert!(c.check_exposure(true).is_ok(), "TLS is enough");

        let local = parse(&[]).unwrap();
        assert_eq!(local.client_auth(), ClientAuth::Open);
        assert!(!local.exposure_summary().0);
        let strict = parse(&["--require-token"]).unwrap();
        assert_eq!(strict.client_auth(), ClientAuth::Tokens);
        let ipv6 = parse(&["--listen", "[::1]:7000"]).unwrap();
        assert_eq!(ipv6.client_auth(), ClientAuth::Open);
    }

    #[test]
    fn the_join_token_is_never_shown() {
        let c = parse(&["--token", "flt_0123456789abcdef0123456789abcdef"]).unwrap();
        assert!(c.token.is_some());
        assert!(!format!("{c:?}").contains("flt_0123"), "{c:?}");
    }

    #[test]
    fn tls_takes_all_three_files_or_none() {
        assert_eq!(parse(&[]).unwrap().tls, None);
        let c = parse(&["--tls-cert", "n.pem", "--tls-key", "n.key", "--tls-ca", "ca.pem"]).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cert: "n.pem".into(),
                key: "n.key".into(),
                ca: "ca.pem".into(),
            })
        );
        let err = parse(&["--tls-cert", "n.pem", "--tls-ca", "ca.pem"]).unwrap_err();
        assert!(err.contains("--tls-key"), "{err}");
        let json = r#"{"tls": {"cert": "n.pem", "key": "n.key", "ca": "ca.pem"}}"#;
        let mut doc: serde_json::Value = serde_json::to_value(Config::default()).unwrap();
        doc["tls"] = serde_json::from_str::<serde_json::Value>(json).unwrap()["tls"].clone();
        let back: Config = serde_json::from_value(doc).unwrap();
        assert_eq!(back.tls, c.tls);
    }

    #[test]
    fn a_client_request_is_bounded_by_a_full_batch_of_full_payloads() {
        let c = |args: &[&str]| parse(args).unwrap().max_request_bytes();
        // Small limits: exactly what a full batch needs.
        assert_eq!(
            c(&["--max-payload-bytes", "1000", "--max-batch-tasks", "10"]),
            10 * (1000 + TASK_OVERHEAD_BYTES)
        );
        // The defaults (1 MiB x 10,000) would allow 10 GB: capped.
        assert_eq!(c(&[]), MAX_REQUEST_BYTES_CAP);
        // One task alone may always be as large as its payload limit allows.
        let big = c(&["--max-payload-bytes", "67108864", "--max-batch-tasks", "5"]);
        assert_eq!(big, 64 * 1024 * 1024 + TASK_OVERHEAD_BYTES);
    }

    #[test]
    fn prefetch_is_auto_unless_told() {
        assert_eq!(parse(&[]).unwrap().prefetch, Prefetch::Auto);
        assert_eq!(parse(&["--prefetch", "0"]).unwrap().prefetch, Prefetch::Fixed(0));
        assert_eq!(
            parse(&["--prefetch", "32"]).unwrap().prefetch,
            Prefetch::Fixed(32)
        );
        assert!(parse(&["--prefetch", "some"]).unwrap_err().contains("--prefetch"));
    }

    #[test]
    fn queues_split_on_commas() {
        let c = parse(&["--queues", "high,default", "--workers", "3"]).unwrap();
        assert_eq!(c.queues, vec!["high".to_string(), "default".to_string()]);
        assert_eq!(c.worker_count(), 3);
    }
}
