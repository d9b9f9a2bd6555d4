//! [`ObserveConfig`]: the flags of the HTTP port and of tracing, flattened into
//! [`crate::config::Config`].

use std::net::SocketAddr;

use serde::Deserialize;
use serde::Serialize;

use crate::config::ConfigError;

/// The HTTP port and trace export.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// Serve HTTP on this address: Prometheus /metrics, /healthz, /readyz (default: no HTTP
    /// port). Off loopback it needs --insecure (it serves no TLS), and /metrics then needs a
    /// token with the read right unless --metrics-public.
    #[arg(long, env = "FLOTILLA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,

    /// Let anyone who reaches the HTTP port read /metrics without a token (a scraper on a
    /// trusted network).
    #[arg(long, env = "FLOTILLA_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// Export trace spans (submit, commit, run) over OTLP/gRPC to this collector, e.g.
    /// `http://127.0.0.1:4317` (default: no export).
    #[arg(long, env = "FLOTILLA_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl ObserveConfig {
    /// Check the flags against the node's exposure rule: an HTTP port other machines can reach
    /// carries no TLS, so it needs `--insecure` like a plaintext gRPC port does.
    pub fn validate(&self, insecure: bool) -> Result<(), ConfigError> {
        if let Some(addr) = self.http_listen
            && !addr.ip().is_loopback()
            && !insecure
        {
            return Err(ConfigError::Invalid {
                flag: "http-listen",
                reason: format!(
                    "{addr} is reachable from other machines and the HTTP port has no TLS: bind \
                     it to loopback (127.0.0.1:PORT) behind your own proxy, or give --insecure to \
                     serve it in the clear on purpose"
                ),
            });
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                flag: "otlp-endpoint",
                reason: format!("'{endpoint}' is not an http:// or https:// URL"),
            });
        }
        Ok(())
    }

    /// Whether `/metrics` is open to anyone who reaches the port: on loopback (unless the node
    /// asks tokens of local clients too), or with `--metrics-public`.
    pub fn metrics_open(&self, require_token: bool) -> bool {
        self.metrics_public || self.http_listen.is_some_and(|a| a.ip().is_loopback()) && !require_token
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let all: Vec<&str> = std::iter::once("node").chain(args.iter().copied()).collect();
        Config::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_http_port_unless_asked_and_none_off_loopback_without_insecure() {
        assert_eq!(parse(&[]).unwrap().observe.http_listen, None);
        let c = parse(&["--http-listen", "127.0.0.1:9100"]).unwrap();
        assert!(c.observe.metrics_open(c.require_token), "loopback: open");
        let c = parse(&["--http-listen", "127.0.0.1:9100", "--require-token"]).unwrap();
        assert!(
            !c.observe.metrics_open(c.require_token),
            "tokens asked of local clients too"
        );
        let err = parse(&["--http-listen", "0.0.0.0:9100"]).unwrap_err();
        assert!(
            err.contains("--http-listen") && err.contains("--insecure"),
            "{err}"
        );
        let exposed = [
            "--listen",
            "10.1.2.3:7000",
            "--insecure",
            "--http-listen",
            "0.0.0.0:9100",
        ];
        let c = parse(&exposed).unwrap();
        assert!(!c.observe.metrics_open(c.require_token), "off loopback: a token");
        let mut public = exposed.to_vec();
        public.push("--metrics-public");
        let c = parse(&public).unwrap();
        assert!(c.observe.metrics_open(c.require_token));
    }

    #[test]
    fn the_otlp_endpoint_is_a_url() {
        assert!(parse(&["--otlp-endpoint", "http://127.0.0.1:4317"]).is_ok());
        let err = parse(&["--otlp-endpoint", "127.0.0.1:4317"]).unwrap_err();
        assert!(err.contains("--otlp-endpoint"), "{err}");
    }
}
