//! Tracing: W3C trace context (`traceparent`, `tracestate`) travels with a task as two of its
//! headers (set by the submitting client, kept in the log like any header, handed to the worker
//! with the grant), and with `--otlp-endpoint` the node exports three spans into the caller's
//! trace over OTLP: `flotilla.submit` (the node taking a submit call), `flotilla.commit` (its
//! entry through Raft, inside the submit) and `flotilla.run` (an attempt on this node's pool).
//!
//! The spans are `tracing` spans of target [`TARGET`], made only while export is on
//! ([`enabled`]) and only for tasks that carry a `traceparent`: a plain task costs one relaxed
//! load. `tracing-opentelemetry` turns them into OpenTelemetry spans (the binary installs its
//! layer, filtered to this target); the sampling decision is the caller's (parent-based).

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::Extractor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::BatchConfigBuilder;
use opentelemetry_sdk::trace::Sampler;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::queue::Headers;

/// The `tracing` target of the exported spans.
pub const TARGET: &str = "flotilla_trace";

/// The `tracing` target of a task's timeline at debug level (issue 15: where an unloaded task's
/// milliseconds go): submit received and answered, entry proposed, handed to the WAL, flushed,
/// received by a follower, applied, the pool told, the run sent and ended, the proposal sent,
/// the result streamed. Off by default; `RUST_LOG=warn,flotilla_timeline=debug` turns it on
/// (a few lines per task: for single tasks at a low rate, not for load).
pub const TIMELINE: &str = "flotilla_timeline";

/// The W3C trace context headers.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// How long finished spans wait to be sent in a batch.
const EXPORT_DELAY: Duration = Duration::from_millis(500);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the process started an [`Exporter`]).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("otlp exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The OTLP export of this process's spans. Shut it down before the runtime stops, so the
/// last batch is sent.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Start exporting to `endpoint` (OTLP/gRPC). Must run inside the tokio runtime: the batch
    /// processor is a task on it (the SDK's thread-based one has no reactor for tonic: ADR 004).
    pub fn start(endpoint: &str, service_name: &str) -> Result<Self, TraceError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| TraceError::Exporter {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter, runtime::Tokio)
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_string())
                    .build(),
            )
            .build();
        ENABLED.store(true, Relaxed);
        Ok(Self { provider })
    }

    /// The `tracing` layer that exports this crate's spans (and no others).
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        let tracer = self.provider.tracer("flotilla");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.target() == TARGET))
    }

    /// Send what is left and stop. Blocks: call it outside the runtime's tasks.
    pub fn shutdown(self) {
        ENABLED.store(false, Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The remote parent a task's headers name, if they carry a valid `traceparent`.
pub fn parent(headers: &Headers) -> Option<Context> {
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// `name` as a span of the task headers' trace, when export is on and they name one.
fn child_of(headers: &Headers, make: impl FnOnce() -> Span) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let cx = parent(headers)?;
    let span = make();
    // Fails only when no OpenTelemetry layer is installed: nothing is exported then anyway.
    let _ = span.set_parent(cx);
    Some(span)
}

/// The span of a submit call, in the trace of its first task that names one.
pub fn submit_span<'a>(mut headers: impl Iterator<Item = &'a Headers>, tasks: usize) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let headers = headers.find(|h| h.contains_key(TRACEPARENT))?;
    child_of(
        headers,
        || tracing::info_span!(target: TARGET, "flotilla.submit", tasks),
    )
}

/// The span of a submit's entry going through Raft, inside its submit span.
pub fn commit_span(submit: &Span) -> Span {
    tracing::info_span!(target: TARGET, parent: submit, "flotilla.commit")
}

/// The span of one attempt of a task on this node's pool.
pub fn run_span(headers: &Headers, name: &str, task: u64, attempt: u32) -> Option<Span> {
    child_of(headers, || {
        tracing::info_span!(
            target: TARGET,
            "flotilla.run",
            task.name = name,
            task.id = task,
            task.attempt = attempt,
            task.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    })
}

/// Say on a run span how the attempt ended (a failure marks the span as an error).
pub fn record_outcome(span: &Span, result: &crate::worker::core::RunResult) {
    use crate::queue::Outcome;
    use crate::worker::core::RunResult;
    let outcome = match result {
        RunResult::Finished(Outcome::Success(_)) => "succeeded",
        RunResult::Finished(_) => "failed",
        RunResult::Aborted => "aborted",
    };
    span.record("task.outcome", outcome);
    if outcome != "succeeded" {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_names_the_parent_and_a_bad_one_nothing() {
        let mut headers = Headers::new();
        assert!(parent(&headers).is_none());
        headers.insert(
            TRACEPARENT.into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        headers.insert(TRACESTATE.into(), "vendor=x".into());
        let cx = parent(&headers).expect("a parent");
        let span = cx.span();
        let sc = span.span_context();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().header(), "vendor=x");
        headers.insert(
            TRACEPARENT.into(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
        );
        assert!(parent(&headers).is_none(), "an all-zero trace id is invalid");
        headers.insert(TRACEPARENT.into(), "garbage".into());
        assert!(parent(&headers).is_none());
    }

    #[test]
    fn no_span_is_made_while_export_is_off() {
        let mut headers = Headers::new();
        headers.insert(
            TRACEPARENT.into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        assert!(!enabled());
        assert!(run_span(&headers, "noop", 1, 1).is_none());
        assert!(submit_span([&headers].into_iter(), 1).is_none());
    }

    /// What a timeline subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn applied_with_filter(filter: &str) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let replica = crate::replica::Replica::default();
        let entry = crate::queue::Request {
            now_ms: 1,
            commands: vec![],
        };
        tracing::subscriber::with_default(subscriber, || replica.apply_entry(7, &entry));
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_timeline_target_logs_an_applied_entry_only_when_asked() {
        let on = applied_with_filter("warn,flotilla_timeline=debug");
        assert!(
            on.contains(TIMELINE) && on.contains("applied") && on.contains("index=7"),
            "{on}"
        );
        let off = applied_with_filter("debug,flotilla_timeline=off");
        assert!(!off.contains(TIMELINE), "off by target: {off}");
    }
}
