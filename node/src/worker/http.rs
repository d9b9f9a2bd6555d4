//! The built-in `http` task: a webhook. Args `{method, url, headers, body, timeout_ms}`,
//! result `{status, headers, body}`.
//!
//! **Where it may go.** Only to hosts on `--http-allow` (`host`, `host:port`, `*.domain`,
//! `*.domain:port`, an IP literal such as `127.0.0.1:8080` or `[::1]:8080`); the default, an
//! empty list, refuses every host, so a node cannot be made to send requests into its own
//! network by whoever may submit. The list is checked twice: at submit
//! (`grpc/queue_service.rs`, INVALID_ARGUMENT) and again when the task runs, since a task may
//! run on another node, or wait while the list or DNS changes. When it runs, the host is also
//! resolved, and an address that is loopback, private, link-local, shared (CGNAT),
//! unspecified or multicast is refused unless the allowed entry names that very IP or the node
//! runs with `--http-allow-private`: a public name that resolves into the node's network is
//! still refused. The check sits in the client's resolver, so the addresses checked are the
//! ones connected to. Redirects are not followed (a 3xx is the result: its `Location` is
//! a header of it).
//!
//! **Outcomes.** Any status below 400 succeeds with `{status, headers, body}` (the body as
//! text, cut to [`MAX_RESPONSE_BYTES`]). A 5xx, a timeout or a connection error fails
//! retryably (per the task's retries and backoff; a 5xx with `Retry-After: <seconds>` asks for
//! that delay instead); a 4xx fails for good, and so does a request the task cannot make (bad
//! args, a host off the list).

use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::Addrs;
use reqwest::dns::Name;
use reqwest::dns::Resolve;
use reqwest::dns::Resolving;
use serde::Deserialize;
use serde::Serialize;

use super::registry::TaskError;
use super::registry::TaskRegistry;

/// The task's name.
pub const HTTP_TASK: &str = "http";

/// Request timeout when the args set none.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Most bytes of a response body kept in the result (the rest is cut off).
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// Arguments of `http`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// `GET` unless given.
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as is; none sends no body.
    #[serde(default)]
    pub body: Option<String>,
    /// The whole request, connect to last byte; [`DEFAULT_TIMEOUT_MS`] unless given.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

/// The result of `http`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResult {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// One `--http-allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// Lowercase host; for `*.domain`, the `.domain` suffix.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl Pattern {
    fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim().to_ascii_lowercase();
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            // `[v6]` or `[v6]:port`.
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("'{entry}': an IPv6 address needs its closing ']'"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("'{entry}': unexpected text after ']'")),
            };
            (host.to_string(), port)
        } else {
            match entry.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (entry.clone(), None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| format!("'{entry}': bad port '{p}'")))
            .transpose()?;
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(domain) => (format!(".{domain}"), true),
            None => (host, false),
        };
        let name = host.trim_start_matches('.');
        let ok = !name.is_empty()
            && (name.parse::<IpAddr>().is_ok()
                || name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !ok || host.contains('*') {
            return Err(format!(
                "'{entry}': expected host, host:port, *.domain or an IP address"
            ));
        }
        Ok(Pattern { host, wildcard, port })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.ends_with(&self.host)
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// `--http-allow` and `--http-allow-private`: where the `http` task may send requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpAllow {
    patterns: Vec<Pattern>,
    /// Hosts on the list may resolve to internal addresses.
    private: bool,
}

impl HttpAllow {
    /// Parse the entries of `--http-allow` (`Err`: which entry is wrong and why).
    pub fn parse(entries: &[String], allow_private: bool) -> Result<Self, String> {
        let patterns = entries
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| Pattern::parse(e))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns,
            private: allow_private,
        })
    }

    /// Check a submit's args: they parse, and name a URL this node would call.
    pub fn check_args(&self, args: &[u8]) -> Result<HttpArgs, String> {
        let args: HttpArgs =
            serde_json::from_slice(args).map_err(|e| format!("invalid http task args: {e}"))?;
        self.check_url(&args.url)?;
        reqwest::Method::from_bytes(args.method.as_bytes())
            .map_err(|_| format!("invalid http method '{}'", args.method))?;
        Ok(args)
    }

    /// Check a URL against the list: scheme http(s), its host and port on it.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("invalid url '{url}': {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("url '{url}': only http and https are allowed"));
        }
        let host = host_of(&parsed).ok_or_else(|| format!("url '{url}' has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        if !self.patterns.iter().any(|p| p.matches(&host, port)) {
            return Err(format!(
                "host {host}:{port} is not allowed by --http-allow (the default, an empty list, refuses every host)"
            ));
        }
        // An IP literal does not go through the resolver: its address is checked here.
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_ip(&host, ip)?;
        }
        Ok(parsed)
    }

    /// Whether a request to `host` may connect to `ip`.
    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if !is_internal(ip) || self.private {
            return Ok(());
        }
        let named = self
            .patterns
            .iter()
            .any(|p| !p.wildcard && p.host.parse::<IpAddr>().ok() == Some(ip));
        if named && host.parse::<IpAddr>().ok() == Some(ip) {
            return Ok(());
        }
        Err(format!(
            "host {host} resolves to the internal address {ip}, refused (allow that address by \
             its IP in --http-allow, or all with --http-allow-private)"
        ))
    }
}

/// The URL's host, lowercase, without IPv6 brackets.
fn host_of(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(host.to_ascii_lowercase())
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast, multicast or
/// documentation: anything that is not a public unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The refusal of an address by [`CheckedResolver`], found again in the request's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Resolves with the system resolver and drops what [`HttpAllow::check_ip`] refuses; an error
/// if nothing is left.
struct CheckedResolver(Arc<HttpAllow>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match allow.check_ip(&host, a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                })
                .collect();
            if kept.is_empty() {
                let why = refusal.unwrap_or_else(|| format!("host {host} has no address"));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The `http` task's client: one per node, connections pooled.
#[derive(Clone)]
pub struct HttpTask {
    allow: Arc<HttpAllow>,
    client: reqwest::Client,
}

impl HttpTask {
    pub fn new(allow: HttpAllow) -> Result<Self, String> {
        let allow = Arc::new(allow);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver(allow.clone())))
            .no_proxy()
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self { allow, client })
    }

    /// Run one request.
    pub async fn call(&self, args: HttpArgs) -> Result<HttpResult, TaskError> {
        let url = self.allow.check_url(&args.url).map_err(TaskError::fatal)?;
        let method = reqwest::Method::from_bytes(args.method.as_bytes())
            .map_err(|_| TaskError::fatal(format!("invalid http method '{}'", args.method)))?;
        let timeout = Duration::from_millis(args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
        let mut request = self.client.request(method, url).timeout(timeout);
        for (name, value) in &args.headers {
            request = request.header(name, value);
        }
        if let Some(body) = args.body {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| request_error(&e))?;
        let status = response.status();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(&e))? {
            let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_RESPONSE_BYTES {
                break;
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let code = status.as_u16();
        if status.is_server_error() {
            let message = format!("HTTP {status}: {}", excerpt(&body));
            let retry_after = headers
                .get("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok());
            return Err(match retry_after {
                Some(s) => TaskError::retry_after(message, Duration::from_secs(s)),
                None => TaskError::new(message),
            });
        }
        if status.is_client_error() {
            return Err(TaskError::fatal(format!("HTTP {status}: {}", excerpt(&body))));
        }
        Ok(HttpResult {
            status: code,
            headers,
            body,
        })
    }
}

/// The start of a body, for an error message.
fn excerpt(body: &str) -> &str {
    let mut end = body.len().min(200);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

/// A request that got no response: refused by the resolver (for good), or a timeout or a
/// connection error (worth a retry).
fn request_error(e: &reqwest::Error) -> TaskError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return TaskError::fatal(refused.0.clone());
        }
        source = s.source();
    }
    if e.is_builder() {
        return TaskError::fatal(format!("http request: {e}"));
    }
    let what = if e.is_timeout() { "timed out" } else { "failed" };
    let mut message = format!("http request {what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    TaskError::new(message)
}

/// Register `http` with this node's allow list.
pub fn register_http(registry: &mut TaskRegistry, allow: HttpAllow) -> Result<(), String> {
    let task = HttpTask::new(allow)?;
    registry.register(HTTP_TASK, move |args: HttpArgs| {
        let task = task.clone();
        async move { task.call(args).await }
    });
    Ok(())
}

#[cfg(test)]
mod tests;
