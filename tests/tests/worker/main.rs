//! Integration tests of remote workers: a Rust client speaks `flotilla.v1.WorkerService` to a
//! real `node` process (with no workers of its own) on loopback. Files by priority: t10 basic.

mod remote;
mod t10_session;
mod t20_task_data;
mod t30_attempts;
