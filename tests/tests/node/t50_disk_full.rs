//! A full disk (issue 14, item 11): the node exits with a clear message instead of lingering
//! with a stopped Raft, and once space is back it starts again with every acknowledged task.
//!
//! Needs root (it mounts a small tmpfs); skipped, saying so, without it.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_tests::NodeProcess;

use flotilla_tests::connect;
use flotilla_tests::ready;

/// A tmpfs of `size` mounted on a fresh directory (a node's data directory; its log file is
/// written beside it, on the real disk); unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Option<SmallDisk>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("n1");
        std::fs::create_dir(&path)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status();
        match status {
            Ok(s) if s.success() => Ok(Some(SmallDisk { path, _dir: dir })),
            _ => Ok(None),
        }
    }

    /// Write a file until the disk is full; returns its path.
    fn fill(&self) -> Result<PathBuf> {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut f = std::fs::File::create(&path)?;
        let block = vec![0xAB_u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block: down to the byte.
        while f.write_all(&[0xAB]).is_ok() {}
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn wait_exit(node: &mut NodeProcess, within: Duration) -> Option<()> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if !node.is_running() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_clearly_and_it_recovers_once_space_is_back() -> Result<()> {
    let Some(disk) = SmallDisk::mount("48m")? else {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return Ok(());
    };
    let data: &Path = &disk.path;
    let mut node = NodeProcess::start(data, &["--workers", "0"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let args = serde_json::json!({ "pad": "x".repeat(16 * 1024) });
    let mut acknowledged = Vec::new();
    for _ in 0..50 {
        acknowledged.push(client.submit(client.task("noop").args(&args)?).await?);
    }

    let filler = disk.fill()?;
    // Writes fail now; the node must notice and exit, not linger.
    let writer = tokio::spawn({
        let client = client.clone();
        async move {
            for _ in 0..200 {
                if client.submit(client.task("noop").args(&args)?).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }
    });
    let exited = tokio::task::spawn_blocking({
        let mut node = node;
        move || (wait_exit(&mut node, Duration::from_secs(60)), node)
    })
    .await?;
    node = exited.1;
    writer.abort();
    let log = node.log();
    ensure!(
        exited.0.is_some(),
        "the node kept running with a full disk; log:\n{log}"
    );
    ensure!(
        log.contains("raft stopped") && log.contains("No space left on device"),
        "the node did not say why it stopped; log:\n{log}"
    );

    // Space is back: the node starts again with everything it acknowledged.
    std::fs::remove_file(filler)?;
    node.restart()?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    for id in acknowledged {
        let task = client.get(id).await?;
        ensure!(task.name == "noop", "task {id}: {task:?}");
    }
    client.submit(client.task("noop")).await?;
    drop(node);
    Ok(())
}
