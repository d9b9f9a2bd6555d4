//! flotilla-proto: the wire protocol of Flotilla.
//!
//! - `flotilla.v1.QueueService` (protos/flotilla/v1/queue.proto): what clients call.
//! - `flotilla.v1.RaftService` (protos/flotilla/v1/raft.proto): what peers call; openraft
//!   messages travel as bincode bytes inside [`v1::RaftMessage`].
//! - `flotilla.v1.WorkerService` (protos/flotilla/v1/worker.proto): how a worker in any language
//!   runs tasks: one bidirectional stream per worker process, which the node serves as a pool.
//! - `flotilla.v1.ScheduleService` (protos/flotilla/v1/schedule.proto): periodic schedules
//!   (cron in a time zone, intervals), kept and fired by the cluster.
//! - `flotilla.v1.LimitService` (protos/flotilla/v1/limits.proto): flow control, rate and
//!   concurrency limits per queue, task name and concurrency key.
//! - `flotilla.v1.EventService` (protos/flotilla/v1/events.proto): the events stream (task,
//!   pool and leader events), resumable from a log position.
//! - `flotilla.v1.WorkflowService` (protos/flotilla/v1/workflows.proto): tasks that wait for
//!   parents, and chain, group and chord on top of them.
//! - `flotilla.v1.OpsService` (protos/flotilla/v1/ops.proto): operating tasks: list and
//!   describe them, retry dead ones, cancel running ones, pause, resume and purge queues.
//! - [`backoff`]: the one retry-delay rule both ends of the wire use (node and client).
//! - [`FILE_DESCRIPTOR_SET`]: the compiled descriptors, for gRPC server reflection.
//!
//! The generated code is re-exported as [`v1`]; domain types live in flotilla-node and convert
//! with `From` impls there, so nothing outside this crate depends on prost's representation.

pub mod backoff;

/// The largest request a node reads (`MAX_REQUEST_BYTES_CAP` in flotilla-node's config: its
/// `--max-batch-tasks` × `--max-payload-bytes` limit goes above it only by what one task of a
/// larger `--max-payload-bytes` needs). A client checks a
/// request that may be larger before sending it: a node refuses an oversized one only
/// mid-stream, which a client saw as a transport failure and retried until it gave up.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// The encoded size of a message, for checks against [`MAX_REQUEST_BYTES`] by crates that do
/// not depend on prost.
pub fn encoded_len(message: &impl prost::Message) -> usize {
    message.encoded_len()
}

/// The encoded `FileDescriptorSet` of every .proto file: what gRPC server reflection serves,
/// so `grpcurl` and other generic clients work without the .proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("flotilla_descriptor");

/// Generated code for package `flotilla.v1`.
#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("flotilla.v1");
}
