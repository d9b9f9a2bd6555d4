//! The Python SDK's own checks (client/python), run by `cargo test --workspace`: ruff, mypy
//! --strict and pytest, against a real `node` built by the harness; and the JavaScript
//! example (client/examples/js, `t20_js.rs`) with node's test runner. Files by priority: t10
//! basic.
//!
//! Set-up, once per machine and again whenever the SDK's sources change: a virtualenv under
//! `target/sdk-venv` with `pip install ./client/python[test]` (from PyPI: grpcio, protobuf and
//! the test tools). It needs CPython ≥ 3.9 as `python3` (or `$FLOTILLA_PYTHON`) and, the first
//! time, network access to PyPI. A content stamp of the SDK's sources decides whether to
//! reinstall, so an unchanged SDK costs no pip run.

mod t10_python;
mod t20_js;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The SDK's directory.
pub fn sdk_dir() -> PathBuf {
    repo().join("client").join("python")
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from)
}

/// `bin/<tool>` of the SDK's virtualenv, which is made (or refreshed) on first use.
pub fn venv_tool(tool: &str) -> Result<PathBuf> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = VENV
        .get_or_init(|| prepare_venv().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(venv.join("bin").join(tool))
}

fn prepare_venv() -> Result<PathBuf> {
    let venv = target_dir().join("sdk-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let host = std::env::var("FLOTILLA_PYTHON").unwrap_or_else(|_| "python3".into());
        run_checked(Command::new(&host).args(["-m", "venv"]).arg(&venv))
            .with_context(|| format!("creating a virtualenv with {host} (CPython >= 3.9 needed)"))?;
    }
    let stamp_path = venv.join("flotilla-sdk.stamp");
    let stamp = sources_stamp(&sdk_dir())?;
    if std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
        run_checked(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("{}[test]", sdk_dir().display())),
        )
        .context("pip install ./client/python[test]")?;
        std::fs::write(&stamp_path, &stamp)?;
    }
    Ok(venv)
}

/// A digest of the files pip installs from (sources and packaging), not of tests or caches.
fn sources_stamp(dir: &Path) -> Result<String> {
    let mut files = BTreeMap::new();
    for name in ["pyproject.toml", "README.md"] {
        files.insert(dir.join(name), std::fs::read(dir.join(name))?);
    }
    collect(&dir.join("src"), &mut files)?;
    let mut hasher = DefaultHasher::new();
    for (path, bytes) in &files {
        path.hash(&mut hasher);
        bytes.hash(&mut hasher);
    }
    let mut stamp = String::new();
    let _ = write!(stamp, "{:016x} {} files", hasher.finish(), files.len());
    Ok(stamp)
}

fn collect(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "__pycache__" && !name.ends_with(".egg-info") {
                collect(&path, files)?;
            }
        } else if !name.ends_with(".pyc") {
            files.insert(path.clone(), std::fs::read(&path)?);
        }
    }
    Ok(())
}

/// Runs `cmd`; fails with its output when it does not exit 0.
pub fn run_checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
