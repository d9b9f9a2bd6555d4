//! Lint, type-check and test the Python SDK; each fails with the tool's own output.

use std::process::Command;

use anyhow::Result;
use flotilla_tests::binary;

use crate::{run_checked, sdk_dir, venv_tool};

#[test]
fn ruff_and_mypy_strict_are_clean() -> Result<()> {
    let dir = sdk_dir();
    run_checked(Command::new(venv_tool("ruff")?).arg("check").current_dir(&dir))?;
    run_checked(
        Command::new(venv_tool("ruff")?)
            .args(["format", "--check"])
            .current_dir(&dir),
    )?;
    run_checked(Command::new(venv_tool("mypy")?).current_dir(&dir))?;
    Ok(())
}

#[test]
fn pytest_passes_against_a_real_node_and_the_fake_worker_service() -> Result<()> {
    let node = binary("node")?;
    let out = run_checked(
        Command::new(venv_tool("pytest")?)
            .args(["-q", "-p", "no:cacheprovider"])
            .env("FLOTILLA_NODE_BIN", &node)
            // `flotilla certs` makes the TLS tests' certificates.
            .env("FLOTILLA_CLI_BIN", binary("flotilla")?)
            .current_dir(sdk_dir()),
    )?;
    let summary = String::from_utf8_lossy(&out.stdout);
    let last = summary.lines().last().unwrap_or_default();
    // A run that collected nothing exits 5 (an error above); this guards against a silent 0.
    assert!(last.contains(" passed"), "pytest ran no test: {summary}");
    println!("pytest: {last}");
    Ok(())
}
