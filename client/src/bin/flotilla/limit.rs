//! `flotilla limit set|list|remove`: flow-control limits (docs/LIMITS.md).

use std::io::Write;

use anyhow::Context;
use flotilla_client::{Client, LimitInfo};

use crate::cli::LimitAction;
use crate::output;

/// Carry out one `limit` action.
pub async fn run(client: &Client, action: LimitAction, out: &mut impl Write) -> anyhow::Result<()> {
    match action {
        LimitAction::Set {
            scope,
            rate,
            concurrency,
            json,
        } => {
            if rate.is_none() && concurrency.is_none() {
                anyhow::bail!("give --rate, --concurrency or both");
            }
            client
                .set_limit(&scope, rate.as_deref(), concurrency)
                .await
                .context("limit set failed")?;
            let value = serde_json::json!({ "scope": scope, "rate": rate, "concurrency": concurrency });
            output::ack(out, json, &format!("limit {scope} set"), value)?;
        }
        LimitAction::List { json } => {
            let list = client.limits().await.context("limit list failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "limits": list }))?;
            } else {
                write!(out, "{}", list_human(&list))?;
            }
        }
        LimitAction::Remove { scope, json } => {
            let removed = client.remove_limit(&scope).await.context("limit remove failed")?;
            if removed {
                let value = serde_json::json!({ "scope": scope, "removed": true });
                output::ack(out, json, &format!("limit {scope} removed"), value)?;
            } else {
                anyhow::bail!("no limit {scope}");
            }
        }
    }
    Ok(())
}

/// The limits as a table (`limit list`, and under `stats`).
pub fn list_human(list: &[LimitInfo]) -> String {
    if list.is_empty() {
        return "no limits\n".into();
    }
    let mut s = format!(
        "{:<32} {:>10} {:>12} {:>8} {:>8}\n",
        "SCOPE", "RATE", "CONCURRENCY", "RUNNING", "HELD"
    );
    for l in list {
        let conc = l.concurrency.map_or_else(|| "-".to_string(), |c| c.to_string());
        s.push_str(&format!(
            "{:<32} {:>10} {:>12} {:>8} {:>8}\n",
            l.scope,
            l.rate.as_deref().unwrap_or("-"),
            conc,
            l.running,
            l.held
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_limits_as_a_table() {
        let l = LimitInfo {
            scope: "queue:emails".into(),
            rate: Some("100/s".into()),
            concurrency: None,
            running: 3,
            held: 7,
        };
        let text = list_human(&[l]);
        assert!(
            text.contains("queue:emails") && text.contains("100/s") && text.ends_with("7\n"),
            "{text}"
        );
        assert_eq!(list_human(&[]), "no limits\n");
    }
}
