//! `tasks` (the catalogue of task names, declaring more) and `token` (API tokens).

use std::io::Write;

use anyhow::Context;
use flotilla_client::Client;

use crate::cli::{TasksAction, TokenAction};
use crate::output;

pub(crate) async fn tasks(
    client: &Client,
    json: bool,
    action: Option<TasksAction>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        None => {
            let catalogue = client.task_catalogue().await.context("tasks failed")?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "tasks": catalogue.names,
                        "unreachable_nodes": catalogue.unreachable_nodes,
                    })
                )?;
            } else {
                write!(out, "{}", output::task_names_human(&catalogue))?;
            }
        }
        Some(TasksAction::Declare {
            names,
            queue,
            declarer,
        }) => {
            let recorded = client
                .declare_task_names(&declarer, &queue, &names)
                .await
                .context("tasks declare failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "recorded": recorded }))?;
            } else {
                writeln!(
                    out,
                    "{} names declared by {declarer} on queue {queue} ({recorded} new)",
                    names.len()
                )?;
            }
        }
    }
    Ok(())
}

pub(crate) async fn token(client: &Client, action: TokenAction, out: &mut impl Write) -> anyhow::Result<()> {
    match action {
        TokenAction::Create {
            role,
            ttl,
            label,
            json,
        } => {
            let (id, token) = client
                .create_token(role, &label, ttl)
                .await
                .context("token create failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({"id": id, "token": token}))?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!(
                    "token {id} ({}): shown once; the cluster keeps only its hash",
                    role.name()
                );
            }
        }
        TokenAction::List { json } => {
            let tokens = client.list_tokens().await.context("token list failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "tokens": tokens }))?;
            } else {
                write!(out, "{}", output::tokens_human(&tokens))?;
            }
        }
        TokenAction::Revoke { id, json } => {
            if client.revoke_token(id).await.context("token revoke failed")? {
                let value = serde_json::json!({ "id": id, "revoked": true });
                output::ack(out, json, &format!("token {id} revoked"), value)?;
            } else {
                anyhow::bail!("no token {id}");
            }
        }
    }
    Ok(())
}
