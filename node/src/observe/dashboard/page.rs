//! The page and its assets, embedded in the binary. The page is static except one part: for a
//! browser without JavaScript, a `<noscript>` block rendered here from the same service calls
//! as the API (the cluster, the queues' counts, the newest dead tasks), when the caller may
//! read them.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CACHE_CONTROL;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::ops_service_server::OpsService;
use flotilla_proto::v1::queue_service_server::QueueService;
use tonic::Request;

use super::Dashboard;
use super::api::cluster_json;
use super::api::queues_json;
use super::api::task_json;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// Where the page takes the server-rendered block.
const NOSCRIPT_MARK: &str = "<!--NOSCRIPT-->";

/// Dead tasks the page without JavaScript lists.
const NOSCRIPT_DEAD: u32 = 20;

pub(super) async fn index(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    let block = if dash.may_read(&headers) {
        noscript(&dash).await
    } else {
        "<p>This node asks a token for its dashboard: a browser without JavaScript cannot send \
         one. Use <code>flotilla list</code> and <code>flotilla get</code>, or enable \
         JavaScript and enter a token.</p>"
            .to_string()
    };
    let page = INDEX.replacen(NOSCRIPT_MARK, &format!("<noscript>{block}</noscript>"), 1);
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

pub(super) async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

pub(super) async fn style() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Text made safe for HTML.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The value of `v` as table-cell text.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => escape(s),
        serde_json::Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

fn table(out: &mut String, rows: &[serde_json::Value], columns: &[&str]) {
    out.push_str("<table><tr>");
    for c in columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for c in columns {
            let _ = write!(out, "<td>{}</td>", cell(&row[*c]));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

async fn noscript(dash: &Dashboard) -> String {
    let mut out = String::from("<div class=\"static\">");
    match dash
        .queue
        .cluster_status(Request::new(pb::ClusterStatusRequest {}))
        .await
    {
        Ok(c) => {
            let c = cluster_json(&c.into_inner());
            let _ = write!(
                out,
                "<h2>Cluster</h2><p>Node {} answering; leader {}; term {}; commit {}.</p>",
                cell(&c["node_id"]),
                cell(&c["leader_id"]),
                cell(&c["term"]),
                cell(&c["commit_index"])
            );
            let members = c["members"].as_array().cloned().unwrap_or_default();
            table(&mut out, &members, &["id", "addr", "role", "zone", "lag"]);
        }
        Err(e) => {
            let _ = write!(out, "<p>Cluster: {}</p>", escape(e.message()));
        }
    }
    out.push_str("<h2>Queues</h2>");
    match dash
        .queue
        .queue_stats(Request::new(pb::QueueStatsRequest {}))
        .await
    {
        Ok(q) => {
            let q = queues_json(&q.into_inner());
            let rows = q["queues"].as_array().cloned().unwrap_or_default();
            let columns = [
                "queue",
                "paused",
                "scheduled",
                "pending",
                "leased",
                "retrying",
                "succeeded",
                "dead",
                "cancelled",
            ];
            table(&mut out, &rows, &columns);
        }
        Err(e) => {
            let _ = write!(out, "<p>{}</p>", escape(e.message()));
        }
    }
    let _ = write!(out, "<h2>Dead tasks (newest {NOSCRIPT_DEAD})</h2>");
    let req = pb::ListTasksRequest {
        filter: Some(pb::TaskFilter {
            states: vec![pb::TaskState::Dead as i32],
            ..Default::default()
        }),
        page_size: NOSCRIPT_DEAD,
        stale_ok: true,
        ..Default::default()
    };
    match dash.ops.list_tasks(Request::new(req)).await {
        Ok(page) => {
            let rows: Vec<_> = page.into_inner().tasks.iter().map(task_json).collect();
            table(&mut out, &rows, &["id", "queue", "name", "attempt", "error"]);
            out.push_str("<p>Retry them with <code>flotilla retry ID</code>.</p>");
        }
        Err(e) => {
            let _ = write!(out, "<p>{}</p>", escape(e.message()));
        }
    }
    out.push_str("</div>");
    out
}
