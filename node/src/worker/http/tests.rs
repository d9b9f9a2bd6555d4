//! The `http` task against an HTTP server on loopback, and the allow list on its own.

use std::net::Ipv4Addr;
use std::net::Ipv6Addr;

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::queue::Outcome;

/// A loopback server answering each connection by the request's path: `/ok` 200 with a JSON
/// body, `/missing` 404, `/down` 503 with `Retry-After: 7`, `/flaky` 500, `/slow` after 5 s,
/// `/echo` 200 with the request (method, headers and body) as its body.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let request = String::from_utf8_lossy(&buf).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = match path.as_str() {
                    "/ok" => (
                        "200 OK",
                        "content-type: application/json\r\n",
                        r#"{"ok":true}"#.to_string(),
                    ),
                    "/missing" => ("404 Not Found", "", "no such thing".to_string()),
                    "/down" => (
                        "503 Service Unavailable",
                        "retry-after: 7\r\n",
                        "later".to_string(),
                    ),
                    "/flaky" => ("500 Internal Server Error", "", "oops".to_string()),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ("200 OK", "", String::new())
                    }
                    _ => ("200 OK", "", request),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

fn allow(entries: &[&str], private: bool) -> HttpAllow {
    let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    HttpAllow::parse(&entries, private).unwrap()
}

fn args(method: &str, url: String) -> HttpArgs {
    HttpArgs {
        method: method.into(),
        url,
        headers: BTreeMap::new(),
        body: None,
        timeout_ms: None,
    }
}

#[tokio::test]
async fn statuses_become_results_fatal_or_retryable_failures() {
    let addr = server().await;
    let task = HttpTask::new(allow(&[&addr.to_string()], false)).unwrap();
    let url = |path: &str| format!("http://{addr}{path}");

    let ok = task.call(args("GET", url("/ok"))).await.unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, r#"{"ok":true}"#));
    assert_eq!(ok.headers["content-type"], "application/json");

    let mut post = args("POST", url("/echo"));
    post.headers.insert("x-trace".into(), "abc".into());
    post.body = Some("hello".into());
    let echoed = task.call(post).await.unwrap();
    assert!(echoed.body.starts_with("POST /echo HTTP/1.1"), "{}", echoed.body);
    assert!(
        echoed.body.contains("x-trace: abc") && echoed.body.ends_with("hello"),
        "{}",
        echoed.body
    );

    let missing = task.call(args("GET", url("/missing"))).await.unwrap_err();
    assert!(!missing.is_retryable(), "4xx is dead");
    assert!(missing.message().contains("404") && missing.message().contains("no such thing"));

    let flaky = task.call(args("GET", url("/flaky"))).await.unwrap_err();
    assert!(flaky.is_retryable(), "5xx is retried");
    assert_eq!(
        flaky.clone().into_outcome(),
        Outcome::Failure {
            error: "HTTP 500 Internal Server Error: oops".into(),
            retry: true
        }
    );
    let down = task.call(args("GET", url("/down"))).await.unwrap_err();
    assert_eq!(
        down.into_outcome(),
        Outcome::RetryAfter {
            error: "HTTP 503 Service Unavailable: later".into(),
            delay_ms: 7_000
        },
        "Retry-After asks for its delay"
    );

    let mut slow = args("GET", url("/slow"));
    slow.timeout_ms = Some(100);
    let timed_out = task.call(slow).await.unwrap_err();
    assert!(timed_out.is_retryable(), "a timeout is retried");
    assert!(
        timed_out.message().contains("timed out"),
        "{}",
        timed_out.message()
    );
}

#[tokio::test]
async fn hosts_off_the_list_and_internal_addresses_are_refused_for_good() {
    let addr = server().await;
    let port = addr.port();
    // The default: nothing is allowed.
    let none = HttpTask::new(HttpAllow::default()).unwrap();
    let refused = none
        .call(args("GET", format!("http://{addr}/ok")))
        .await
        .unwrap_err();
    assert!(!refused.is_retryable());
    assert!(
        refused.message().contains("not allowed by --http-allow"),
        "{}",
        refused.message()
    );

    // A name on the list that resolves to loopback: refused when it runs, unless private
    // addresses are allowed.
    let by_name = HttpTask::new(allow(&[&format!("localhost:{port}")], false)).unwrap();
    let refused = by_name
        .call(args("GET", format!("http://localhost:{port}/ok")))
        .await
        .unwrap_err();
    assert!(!refused.is_retryable(), "{}", refused.message());
    assert!(
        refused.message().contains("internal address"),
        "{}",
        refused.message()
    );
    let private = HttpTask::new(allow(&[&format!("localhost:{port}")], true)).unwrap();
    let ok = private
        .call(args("GET", format!("http://localhost:{port}/ok")))
        .await;
    assert_eq!(ok.map(|r| r.status).ok(), Some(200));

    // Another port of an allowed IP, another scheme: refused.
    let ip = allow(&[&addr.to_string()], false);
    assert!(
        ip.check_url(&format!("http://127.0.0.1:{}/", port.wrapping_add(1)))
            .is_err()
    );
    assert!(ip.check_url(&format!("ftp://{addr}/")).is_err());
}

#[test]
fn patterns_match_host_port_and_subdomains() {
    let a = allow(
        &[
            "api.example.com",
            "*.hooks.example.org:8443",
            "[::1]:9000",
            "10.1.2.3",
        ],
        false,
    );
    assert!(a.check_url("https://api.example.com/x").is_ok());
    assert!(
        a.check_url("http://API.example.com:8080/x").is_ok(),
        "any port when none given"
    );
    assert!(a.check_url("https://other.example.com/").is_err());
    assert!(a.check_url("https://a.hooks.example.org:8443/").is_ok());
    assert!(
        a.check_url("https://hooks.example.org:8443/").is_err(),
        "a wildcard is for subdomains"
    );
    assert!(
        a.check_url("https://a.hooks.example.org/").is_err(),
        "443 is not 8443"
    );
    assert!(
        a.check_url("http://[::1]:9000/").is_ok(),
        "named by its IP: allowed though loopback"
    );
    assert!(a.check_url("http://10.1.2.3/").is_ok());
    for bad in ["*", "a:b", "[::1", "ex ample.com", "*.a.*"] {
        assert!(HttpAllow::parse(&[bad.to_string()], false).is_err(), "{bad}");
    }
    let args = br#"{"url":"https://api.example.com/hook","method":"POST","body":"{}"}"#;
    assert_eq!(a.check_args(args).unwrap().method, "POST");
    assert!(
        a.check_args(br#"{"url":"https://evil.example.net/"}"#)
            .unwrap_err()
            .contains("not allowed")
    );
    assert!(
        a.check_args(br#"{"url":"https://api.example.com/","verb":"GET"}"#)
            .is_err()
    );
}

#[test]
fn internal_addresses_are_told_from_public_ones() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    for ip in [
        v4(127, 0, 0, 1),
        v4(10, 0, 0, 1),
        v4(172, 16, 0, 1),
        v4(192, 168, 1, 1),
        v4(169, 254, 169, 254),
        v4(100, 64, 0, 1),
        v4(0, 0, 0, 0),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6("fd00::1".parse().unwrap()),
        IpAddr::V6("fe80::1".parse().unwrap()),
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
    ] {
        assert!(is_internal(ip), "{ip}");
    }
    for ip in [
        v4(8, 8, 8, 8),
        v4(100, 128, 0, 1),
        IpAddr::V6("2606:4700::1111".parse().unwrap()),
    ] {
        assert!(!is_internal(ip), "{ip}");
    }
}
