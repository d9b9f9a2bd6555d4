//! The `node` binary: parse flags, validate, run one Flotilla node until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use flotilla_node::config::Config;
use flotilla_node::trace::Exporter;
use flotilla_node::worker::TaskRegistry;
use flotilla_node::worker::builtins::register_builtins;
use flotilla_node::worker::http::register_http;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let config = match Config::parse().validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (`RUST_LOG`), and with `--otlp-endpoint` the node's trace spans over OTLP
/// (their export is a task on `runtime`).
fn init_logs(config: &Config, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Option<Exporter>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let exporter = match &config.observe.otlp_endpoint {
        Some(endpoint) => {
            let _entered = runtime.enter();
            Some(Exporter::start(endpoint, "flotilla-node")?)
        }
        None => None,
    };
    let otel = exporter.as_ref().map(|e| e.layer());
    tracing_subscriber::registry().with(fmt).with(otel).init();
    if let Some(endpoint) = &config.observe.otlp_endpoint {
        tracing::info!(%endpoint, "exporting trace spans over otlp");
    }
    Ok(exporter)
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let exporter = init_logs(&config, &runtime)?;
    // Every client and peer connection is a file descriptor: use all the hard limit allows.
    match flotilla_node::grpc::conn::raise_open_files_limit() {
        Ok((before, after)) => tracing::info!(?before, ?after, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let mut registry = TaskRegistry::new();
        register_builtins(&mut registry);
        let allow = config
            .http_allow()
            .map_err(|e| anyhow::anyhow!("--http-allow: {e}"))?;
        register_http(&mut registry, allow).map_err(|e| anyhow::anyhow!("{e}"))?;
        flotilla_node::server::run(config, registry, listener, shutdown_signal()).await?;
        Ok(())
    });
    // The last spans go out while the runtime still runs the exporter.
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    served
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::SignalKind;
    use tokio::signal::unix::signal;
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers the node can still be stopped by SIGKILL; never exit early.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
