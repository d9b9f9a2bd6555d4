//! Trace context from submit to run: a client submits a task inside a trace of its own; the
//! node, exporting over OTLP to a receiver in this test, sends the submit, commit and run spans
//! of that task in the submitter's trace. A task submitted outside any trace makes no span.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::free_port;
use flotilla_tests::ready;
use opentelemetry::trace::SpanContext;
use opentelemetry::trace::SpanId;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TraceFlags;
use opentelemetry::trace::TraceId;
use opentelemetry::trace::TraceState;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

/// A span as received: name, trace id, parent span id (hex).
#[derive(Clone, Debug)]
struct Received {
    name: String,
    trace_id: String,
    parent: String,
    service: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/gRPC trace collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        parent: hex(&span.parent_span_id),
                        service: service.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_span_is_in_the_submitters_trace() -> Result<()> {
    let receiver = Receiver::default();
    let otlp = format!("127.0.0.1:{}", free_port()?);
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .serve(otlp.parse()?);
    let server = tokio::spawn(server);

    let dir = tempfile::tempdir()?;
    let endpoint = format!("http://{otlp}");
    let node = NodeProcess::start(
        &dir.path().join("n1"),
        &["--otlp-endpoint", &endpoint, "--workers", "2"],
    )?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // Outside any trace: no header, no span.
    let plain = client.submit(client.task("noop")).await?;

    // Inside the submitter's span (as an OpenTelemetry-instrumented caller would be).
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let submitter_span = "00f067aa0ba902b7";
    let traced = {
        let sc = SpanContext::new(
            TraceId::from_hex(trace_id)?,
            SpanId::from_hex(submitter_span)?,
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        );
        let _inside = opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .attach();
        client.task("noop")
    };
    let traced = client.submit(traced).await?;
    for id in [plain, traced] {
        let done = client.wait(id, Duration::from_secs(60)).await?;
        ensure!(done.state == TaskState::Succeeded, "{done:?}");
    }

    let mut spans = Vec::new();
    for _ in 0..300 {
        spans = receiver.spans.lock().unwrap().clone();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        if ["flotilla.submit", "flotilla.commit", "flotilla.run"]
            .iter()
            .all(|n| names.contains(n))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let find = |name: &str| spans.iter().find(|s| s.name == name).cloned();
    let (Some(submit), Some(commit), Some(run)) = (
        find("flotilla.submit"),
        find("flotilla.commit"),
        find("flotilla.run"),
    ) else {
        bail!("spans missing: {spans:?}; node log:\n{}", node.log());
    };
    ensure!(run.trace_id == trace_id, "run span in another trace: {run:?}");
    ensure!(
        run.parent == submitter_span,
        "the run's parent is the submitter's span: {run:?}"
    );
    ensure!(
        submit.trace_id == trace_id && submit.parent == submitter_span,
        "{submit:?}"
    );
    ensure!(commit.trace_id == trace_id, "{commit:?}");
    ensure!(submit.service.contains("flotilla-node"), "{submit:?}");
    ensure!(
        spans.iter().all(|s| s.trace_id == trace_id),
        "a span of the plain task: {spans:?}"
    );
    server.abort();
    Ok(())
}
