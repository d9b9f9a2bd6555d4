//! Harness for integration tests: build the real binaries once, start `node` processes on
//! loopback ports with their own data directories, kill them (-9) and restart them.
//!
//! Tests live in `tests/<area>/main.rs` + `tNN_*.rs` (t10 basic, t50 environment, t90
//! regressions), one test binary per area.

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::OnceLock;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;

/// Path of a workspace binary (`node`, `flotilla`), built once per test process with the same
/// profile as the tests. `FLOTILLA_TEST_NODE_BIN` runs the tests against another `node` (an
/// older build, to see a test fail without the change it covers).
pub fn binary(name: &str) -> Result<PathBuf> {
    if name == "node"
        && let Some(path) = std::env::var_os("FLOTILLA_TEST_NODE_BIN")
    {
        return Ok(PathBuf::from(path));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "flotilla-node",
                    "-p",
                    "flotilla-client",
                    "--bins",
                ])
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of the binaries failed: {status}"));
            }
            // The test executable is target/<profile>/deps/<name>; binaries sit one level up.
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("no target dir")?
                .to_path_buf();
            Ok(dir)
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("binary {} was not built", path.display());
    }
    Ok(path)
}

/// A free port on 127.0.0.1 (the OS picks it; the tiny race with other processes is accepted).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One `node` process with its own data directory and log file.
pub struct NodeProcess {
    pub addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl NodeProcess {
    /// Start a node listening on a fresh loopback port with data in `data_dir`.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Result<NodeProcess> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut node = NodeProcess {
            addr,
            data_dir: data_dir.to_path_buf(),
            log_path: data_dir.with_extension("log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(binary("node")?)
            .arg("--listen")
            .arg(&self.addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning node")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL the process (no chance to flush anything) and reap it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Start again on the same address and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(child.wait()?.code())
    }

    /// The node's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Run `node` with `args` to completion (for flag errors); returns (exit code, stderr).
pub fn run_node(args: &[&str]) -> Result<(Option<i32>, String)> {
    let out = Command::new(binary("node")?)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Start the `flotilla` CLI with `args`, its stdout going to `stdout_path`.
pub fn spawn_cli(args: &[&str], stdout_path: &Path) -> Result<Child> {
    let out = std::fs::File::create(stdout_path)?;
    let child = Command::new(binary("flotilla")?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning flotilla")?;
    Ok(child)
}

impl NodeProcess {
    /// Whether the process is still running (false after it exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// Poll the status `client` reads from `node` until `ok` holds (bounded: 60 s); the error
/// carries the node's log.
pub async fn wait_for_status(
    node: &NodeProcess,
    client: &flotilla_client::Client,
    ok: impl Fn(&flotilla_client::ClusterStatus) -> bool,
) -> Result<flotilla_client::ClusterStatus> {
    for _ in 0..600 {
        if let Ok(s) = client.status().await
            && ok(&s)
        {
            return Ok(s);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!(
        "node {} never reached the expected status; log:\n{}",
        node.addr,
        node.log()
    )
}

/// A client of `node` that keeps retrying long enough for a node to (re)start.
pub async fn connect(node: &NodeProcess) -> Result<flotilla_client::Client> {
    let policy = flotilla_client::RetryPolicy {
        max_elapsed: std::time::Duration::from_secs(60),
        initial_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(500),
    };
    Ok(flotilla_client::Client::builder([node.addr.clone()])
        .retry_policy(policy)
        .build()
        .await?)
}

/// Wait (bounded: 60 s) until `node` leads its single-node cluster.
pub async fn ready(client: &flotilla_client::Client, node: &NodeProcess) -> Result<()> {
    wait_for_status(node, client, |s| s.leader_id == Some(s.node_id))
        .await
        .map(drop)
}

/// Submit `n` `noop` tasks in one batch; their ids in order.
pub async fn submit_noops(
    client: &flotilla_client::Client,
    n: usize,
) -> Result<Vec<flotilla_client::TaskId>> {
    let tasks = (0..n).map(|_| client.task("noop")).collect();
    Ok(client
        .submit_batch(tasks)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// The first admin token, once the founding node has written it to `<data>/admin.token`
/// (bounded: 30 s).
pub async fn admin_token(data_dir: &Path) -> Result<String> {
    let file = data_dir.join("admin.token");
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(line) = text.lines().next()
            && !line.is_empty()
        {
            return Ok(line.to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("no admin token appeared in {}", file.display())
}

/// One plain HTTP/1.1 GET on loopback (the node's HTTP port), with an optional bearer token:
/// `(status code, body)`. Bounded: 10 s.
pub async fn http_get(addr: &str, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let exchange = async {
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n");
        sock.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).await?;
        anyhow::Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .context("http get timed out")??;
    let (head, body) = reply.split_once("\r\n\r\n").context("no http head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    // Small bodies come in one chunk when the server chunks them: keep the chunk only.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the sample `series` (name and labels exactly as rendered) in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
