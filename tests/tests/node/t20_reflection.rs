//! gRPC server reflection: a generic client (what `grpcurl` does) lists the node's services
//! and fetches a service's schema without the .proto files.

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_tests::NodeProcess;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use flotilla_tests::connect;
use flotilla_tests::ready;

async fn ask(addr: &str, request: MessageRequest) -> Result<MessageResponse> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let reply = replies.next().await.context("no reply")??;
    reply.message_response.context("an empty reply")
}

#[tokio::test]
async fn reflection_lists_every_service_and_serves_their_schema() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &[])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    let MessageResponse::ListServicesResponse(list) =
        ask(&node.addr, MessageRequest::ListServices(String::new())).await?
    else {
        bail!("not a service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for service in [
        "flotilla.v1.QueueService",
        "flotilla.v1.RaftService",
        "flotilla.v1.WorkerService",
        "grpc.health.v1.Health",
    ] {
        ensure!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    let symbol = MessageRequest::FileContainingSymbol("flotilla.v1.WorkerService".into());
    let MessageResponse::FileDescriptorResponse(files) = ask(&node.addr, symbol).await? else {
        bail!("not a file descriptor");
    };
    ensure!(!files.file_descriptor_proto.is_empty());
    let worker_proto = String::from_utf8_lossy(&files.file_descriptor_proto[0]).into_owned();
    ensure!(
        worker_proto.contains("flotilla/v1/worker.proto"),
        "{worker_proto}"
    );
    Ok(())
}
