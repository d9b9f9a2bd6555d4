//! The client library against an in-process fake node (tests/fake_node/fake.rs) on loopback.
//!
//! Files by priority: t10 basic calls, t20 waits, t50 faults (UNAVAILABLE, refused connections,
//! lost replies, broken streams).

mod fake;
mod t10_calls;
mod t20_wait;
mod t50_faults;

use std::time::Duration;

use flotilla_client::{Client, RetryPolicy};

/// A client of `addrs` with short backoffs, so retry tests run fast.
async fn client_of(addrs: &[std::net::SocketAddr]) -> Client {
    Client::builder(addrs.iter().map(|a| a.to_string()))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        })
        .build()
        .await
        .expect("client")
}
