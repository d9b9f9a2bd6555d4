//! The JavaScript example (client/examples/js): a worker and a client on @grpc/grpc-js that
//! load the .proto files as they are, run with node's test runner against a real node.
//!
//! Set-up, like the Python SDK's: `npm ci` of the example's package-lock.json into
//! `target/js-example` (the source tree stays clean), again only when the lock file changes;
//! the test runs with `NODE_PATH` pointing there. Needs Node.js ≥ 18 and npm (and, the first
//! time, the npm registry).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::Context;
use anyhow::Result;
use flotilla_tests::binary;

use crate::repo;
use crate::run_checked;
use crate::target_dir;

fn example_dir() -> PathBuf {
    repo().join("client").join("examples").join("js")
}

/// `node_modules` of the example, installed with `npm ci` on first use.
fn node_modules() -> Result<PathBuf> {
    static MODULES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MODULES
        .get_or_init(|| install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn install() -> Result<PathBuf> {
    let dir = target_dir().join("js-example");
    let lock = std::fs::read(example_dir().join("package-lock.json"))?;
    let stamp_path = dir.join("installed.lock");
    if std::fs::read(&stamp_path).ok().as_deref() != Some(lock.as_slice()) {
        std::fs::create_dir_all(&dir)?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(example_dir().join(file), dir.join(file))?;
        }
        run_checked(
            Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )
        .context("npm ci of client/examples/js (Node.js and npm needed)")?;
        std::fs::write(&stamp_path, &lock)?;
    }
    Ok(dir.join("node_modules"))
}

#[test]
fn the_javascript_example_runs_against_a_real_node() -> Result<()> {
    let out = run_checked(
        Command::new("node")
            .args(["--test", "test/"])
            .env("NODE_PATH", node_modules()?)
            .env("FLOTILLA_NODE_BIN", binary("node")?)
            .current_dir(example_dir()),
    )?;
    let report = String::from_utf8_lossy(&out.stdout);
    // node's runner ends with "# pass N" / "# fail N"; a run that found no test passes 0.
    let passed = report
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 1, "node --test ran no test: {report}");
    println!("node --test: {passed} passed");
    Ok(())
}
