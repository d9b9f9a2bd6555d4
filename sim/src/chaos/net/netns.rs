//! The OS side of `sim chaos --net`: network namespaces (made and removed with `ip netns`, by
//! name only), a thread moved into one (setns), and the TAP devices of the switch.
//!
//! Nothing here touches the host's own network: the run's namespaces hold every address and
//! route, and each TAP device is made in the clients' namespace and moved into its node's
//! before it gets an address. [`Namespaces`] removes what it made when dropped (also on an
//! error, a panic or Ctrl-C); a run killed outright leaves its namespaces behind, and the next
//! run removes them ([`clean_stale`]), with any process still inside (a node of the dead run).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio_tun::Tun;
use tracing::{info, warn};

use super::topology::{self, Topology};

/// Runs `ip` with `args`; fails with its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `commands` (one `ip` command a line, without the `ip`) in namespace `netns`.
fn ip_batch(netns: &str, commands: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `ip` (iproute2)")?;
    child
        .stdin
        .take()
        .context("ip's stdin")?
        .write_all(commands.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`ip -n {netns} -batch` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process can make network namespaces: `Err` says why not (not root, no `ip`,
/// no namespaces in this kernel or container).
pub fn available() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("network namespaces need root");
    }
    let probe = format!("{}{}-probe", topology::PREFIX, std::process::id());
    ip(&["netns", "add", &probe])?;
    ip(&["netns", "del", &probe])?;
    Ok(())
}

/// Namespaces made for one run, removed when dropped.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Makes every namespace of `names`; on a failure, removes those already made.
    pub fn create(names: Vec<String>) -> Result<Namespaces> {
        let mut made = Namespaces { names: Vec::new() };
        for name in names {
            ip(&["netns", "add", &name])?;
            made.names.push(name);
        }
        Ok(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &name]) {
                warn!(netns = name, error = %format!("{e:#}"), "could not remove a namespace");
            }
        }
    }
}

/// Removes the namespaces of runs whose `sim` process is gone, first killing (SIGKILL, by
/// pid) any process still in them: nodes a killed run left behind. Returns what it removed.
pub fn clean_stale() -> Result<Vec<String>> {
    let listed = ip(&["netns", "list"])?;
    let mut removed = Vec::new();
    for line in listed.lines() {
        // "name" or "name (id: N)".
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(owner) = topology::owner_pid(name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        for pid in ip(&["netns", "pids", name])
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Some(pid) = pid.parse::<i32>().ok().and_then(Pid::from_raw) {
                warn!(
                    netns = name,
                    pid = pid.as_raw_nonzero().get(),
                    "killing a process of a dead run"
                );
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        ip(&["netns", "del", name])?;
        removed.push(name.to_owned());
    }
    if !removed.is_empty() {
        info!(?removed, "removed namespaces of runs that are gone");
    }
    Ok(removed)
}

/// Moves the calling thread into namespace `name`; threads it spawns afterwards start there
/// too, and so do the sockets they open.
pub fn enter(name: &str) -> Result<()> {
    let file =
        File::open(format!("/run/netns/{name}")).with_context(|| format!("opening namespace {name}"))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .with_context(|| format!("entering namespace {name}"))?;
    Ok(())
}

/// The switch's end of every port: a TAP device per node, moved into its namespace as `eth0`
/// with its address and MAC, then the clients' own in this thread's namespace (which must be
/// the clients' one). Inside a tokio runtime: the devices are registered with it.
pub fn make_ports(topology: &Topology) -> Result<Vec<Tun>> {
    let mut ports = Vec::with_capacity(topology.nodes() + 1);
    for port in 0..=topology.client_port() {
        let client = port == topology.client_port();
        // Made here, in the clients' namespace, under a name no other port has.
        let made_as = if client {
            "eth0".to_owned()
        } else {
            format!("port{port}")
        };
        let tun = Tun::builder()
            .name(&made_as)
            .tap()
            .build()
            .with_context(|| format!("making TAP device {made_as} (is /dev/net/tun there?)"))?
            .pop()
            .context("no TAP device made")?;
        let netns = if client {
            topology.client_ns()
        } else {
            let netns = topology.node_ns(port);
            ip(&[
                "-n",
                &topology.client_ns(),
                "link",
                "set",
                &made_as,
                "netns",
                &netns,
            ])?;
            netns
        };
        let mut commands = String::new();
        if !client {
            commands.push_str(&format!("link set {made_as} name eth0\n"));
        }
        commands.push_str(&format!(
            "link set eth0 address {}\naddr add {}/24 dev eth0\nlink set eth0 up\nlink set lo up\n",
            topology::mac_text(topology.mac(port)),
            topology.ip(port),
        ));
        ip_batch(&netns, &commands)?;
        ports.push(tun);
    }
    Ok(ports)
}
