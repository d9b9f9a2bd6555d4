//! Compiles the .proto files with a vendored protoc, so a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Payloads and results stay `Bytes`: a request's buffer is sliced, not copied, per task.
    config.bytes(["."]);
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("flotilla_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .build_server(true)
        .build_client(true)
        .compile_with_config(
            config,
            &[
                "protos/flotilla/v1/queue.proto",
                "protos/flotilla/v1/raft.proto",
                "protos/flotilla/v1/schedule.proto",
                "protos/flotilla/v1/limits.proto",
                "protos/flotilla/v1/worker.proto",
                "protos/flotilla/v1/events.proto",
                "protos/flotilla/v1/workflows.proto",
                "protos/flotilla/v1/ops.proto",
            ],
            &["protos"],
        )?;
    Ok(())
}
