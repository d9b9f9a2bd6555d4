//! Parsing tests: no cluster needed.

use clap::CommandFactory;
use clap::error::ErrorKind;

use super::*;
use flotilla_tls::generate::LEAF_DAYS;
use std::path::PathBuf;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("flotilla").chain(args.iter().copied()))
}

#[test]
fn limit_set_takes_a_scope_a_rate_and_a_concurrency() {
    let cli = parse(&[
        "limit",
        "set",
        "task:send",
        "--rate",
        "10/m",
        "--concurrency",
        "2",
    ])
    .unwrap();
    let Command::Limit {
        action:
            LimitAction::Set {
                scope,
                rate,
                concurrency,
                ..
            },
    } = cli.command
    else {
        panic!("not limit set")
    };
    assert_eq!(
        (scope.as_str(), rate.as_deref(), concurrency),
        ("task:send", Some("10/m"), Some(2))
    );
    let cli = parse(&["submit", "echo", "--key", "tenant-1"]).unwrap();
    let Command::Submit(s) = cli.command else {
        panic!("not submit")
    };
    assert_eq!(s.key.as_deref(), Some("tenant-1"));
}

#[test]
fn schedule_add_takes_a_cron_or_an_interval() {
    let cli = parse(&[
        "schedule",
        "add",
        "nightly",
        "report",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--catch-up",
        "once",
        "--grace",
        "5m",
    ])
    .unwrap();
    let Command::Schedule {
        action: ScheduleAction::Add(a),
    } = cli.command
    else {
        panic!("not schedule add")
    };
    assert_eq!(
        (a.cron.as_deref(), a.tz.as_deref(), a.catch_up, a.grace),
        (
            Some("30 2 * * *"),
            Some("Europe/Berlin"),
            flotilla_client::CatchUp::Once,
            Some(std::time::Duration::from_secs(300))
        )
    );
    assert!(parse(&["schedule", "add", "s", "t", "--every", "10s"]).is_ok());
    // Exactly one of the two; a zone only with a cron expression.
    assert!(parse(&["schedule", "add", "s", "t"]).is_err());
    assert!(
        parse(&[
            "schedule",
            "add",
            "s",
            "t",
            "--every",
            "1s",
            "--cron",
            "* * * * *"
        ])
        .is_err()
    );
    assert!(parse(&["schedule", "add", "s", "t", "--every", "1s", "--tz", "UTC"]).is_err());
    assert!(parse(&["schedule", "add", "s", "t", "--every", "1s", "--catch-up", "all"]).is_err());
    assert!(parse(&["schedule", "pause", "s"]).is_ok());
    assert!(parse(&["schedule", "list", "--next", "3", "--json"]).is_ok());
}

#[test]
fn args_come_inline_from_a_file_or_from_stdin() {
    let args = |a: &str| {
        let Command::Submit(s) = parse(&["submit", "echo", "--args", a]).unwrap().command else {
            panic!("not submit")
        };
        s.args
    };
    assert_eq!(args("-"), ArgsSource::Stdin);
    assert_eq!(args("@big.json"), ArgsSource::File("big.json".into()));
    assert_eq!(args("[1]"), ArgsSource::Inline(serde_json::json!([1])));
    assert!(parse(&["submit", "echo", "--args", "@"]).is_err());
    assert!(parse(&["submit", "echo", "--args", "{bad"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    std::fs::write(&file, r#"{"big": true}"#).unwrap();
    assert_eq!(
        ArgsSource::File(file.clone()).read().unwrap(),
        serde_json::json!({"big": true})
    );
    std::fs::write(&file, "{oops").unwrap();
    assert!(ArgsSource::File(file).read().is_err());
    assert!(ArgsSource::File(dir.path().join("missing")).read().is_err());
}

#[test]
fn operating_commands_parse() {
    let cli = parse(&[
        "list",
        "--queue",
        "emails",
        "--state",
        "dead",
        "--state",
        "cancelled",
        "--since",
        "2h",
    ])
    .unwrap();
    let Command::List(l) = cli.command else {
        panic!("not list")
    };
    assert_eq!(l.filter.states, vec![StateArg::Dead, StateArg::Cancelled]);
    assert_eq!(l.filter.since, Some(std::time::Duration::from_secs(7200)));
    assert_eq!((l.limit, l.all, l.json), (50, false, false));
    assert!(parse(&["list", "--limit", "1001"]).is_err());
    assert!(parse(&["list", "--state", "lost"]).is_err());
    assert!(parse(&["list", "--all", "--cursor", "v1.9"]).is_err());
    let cli = parse(&["cancel", "--terminate", "--reason", "stuck", "4", "5"]).unwrap();
    let Command::Cancel {
        ids,
        terminate,
        reason,
        ..
    } = cli.command
    else {
        panic!("not cancel")
    };
    assert_eq!(
        (ids, terminate, reason.as_deref()),
        (vec![4, 5], true, Some("stuck"))
    );
    assert!(
        parse(&["cancel", "--reason", "x", "4"]).is_err(),
        "a reason needs --terminate"
    );
    let cli = parse(&["retry", "--queue", "q", "--state", "dead", "--all"]).unwrap();
    let Command::Retry(r) = cli.command else {
        panic!("not retry")
    };
    assert!(r.ids.is_empty() && r.all && r.filter.queue.as_deref() == Some("q"));
    assert!(parse(&["retry", "1", "2"]).is_ok());
    assert!(parse(&["pause", "q"]).is_ok() && parse(&["resume", "q"]).is_ok());
    assert!(parse(&["purge"]).is_err());
    assert!(parse(&["purge", "q", "--yes", "--json"]).is_ok());
}

#[test]
fn submit_defaults_and_options() {
    let cli = parse(&["submit", "echo"]).unwrap();
    assert_eq!(cli.nodes, ["127.0.0.1:7000"]);
    let Command::Submit(s) = cli.command else {
        panic!("not submit")
    };
    assert_eq!(
        (s.name.as_str(), s.count, s.priority, s.wait, s.json),
        ("echo", 1, 0, false, false)
    );
    assert_eq!(s.args, ArgsSource::Inline(serde_json::Value::Null));

    let cli = parse(&[
        "--nodes",
        "10.0.0.1:7000,10.0.0.2:7000",
        "submit",
        "sum",
        "--args",
        r#"{"a": [1, 2]}"#,
        "--queue",
        "math",
        "--priority",
        "255",
        "--countdown-ms",
        "1500",
        "--max-retries",
        "3",
        "--count",
        "1000",
        "--wait",
        "--timeout-s",
        "5",
        "--json",
    ])
    .unwrap();
    assert_eq!(cli.nodes, ["10.0.0.1:7000", "10.0.0.2:7000"]);
    let Command::Submit(s) = cli.command else {
        panic!("not submit")
    };
    assert_eq!(s.args, ArgsSource::Inline(serde_json::json!({"a": [1, 2]})));
    assert_eq!(
        (s.queue.as_deref(), s.priority, s.countdown_ms),
        (Some("math"), 255, Some(1500))
    );
    assert_eq!(
        (s.max_retries, s.count, s.wait, s.timeout_s, s.json),
        (Some(3), 1000, true, 5, true)
    );
}

#[test]
fn bad_input_is_a_usage_error_with_exit_status_2() {
    for args in [
        &["submit", "echo", "--args", "{not json"][..],
        &["submit", "echo", "--priority", "256"],
        &["submit", "echo", "--count", "0"],
        &["cancel"],
        &["get", "abc"],
        &["frobnicate"],
    ] {
        let err = parse(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
        assert_ne!(err.kind(), ErrorKind::DisplayHelp);
    }
}

#[test]
fn other_commands_parse() {
    let cli = parse(&["get", "17", "--wait", "--json", "--nodes", "h:1"]).unwrap();
    assert_eq!(cli.nodes, ["h:1"], "--nodes is accepted after the subcommand too");
    let Command::Get(g) = cli.command else {
        panic!("not get")
    };
    assert_eq!((g.id, g.wait, g.json, g.timeout_s), (17, true, true, 60));
    let Command::Cancel { ids, json, .. } = parse(&["cancel", "1", "2", "3"]).unwrap().command else {
        panic!("not cancel")
    };
    assert_eq!((ids, json), (vec![1, 2, 3], false));
    assert!(matches!(
        parse(&["stats", "--json"]).unwrap().command,
        Command::Stats { json: true }
    ));
    assert!(matches!(
        parse(&["status"]).unwrap().command,
        Command::Status { json: false }
    ));
}

#[test]
fn tls_and_certs_parse() {
    let cli = parse(&["--tls-ca", "ca.pem", "status"]).unwrap();
    assert_eq!(cli.tls_ca, Some(PathBuf::from("ca.pem")));
    assert_eq!(
        parse(&["status", "--tls-cert", "c.pem"]).unwrap_err().exit_code(),
        2
    );
    let cli = parse(&[
        "certs",
        "node",
        "--ca",
        "ca",
        "--cluster",
        "prod",
        "--name",
        "n1.example,10.0.0.1",
        "--out",
        "n1",
    ])
    .unwrap();
    let Command::Certs {
        action: CertsAction::Node { name, days, .. },
    } = cli.command
    else {
        panic!("not certs node")
    };
    assert_eq!(
        (name, days),
        (vec!["n1.example".to_string(), "10.0.0.1".to_string()], LEAF_DAYS)
    );
    assert!(parse(&["certs", "node", "--ca", "ca", "--cluster", "c", "--out", "o"]).is_err());
}

#[test]
fn token_commands_parse() {
    let cli = parse(&["token", "create", "--role", "join", "--ttl", "2h", "--token", "t"]).unwrap();
    assert_eq!(cli.token.as_deref(), Some("t"));
    let Command::Token {
        action: TokenAction::Create { role, ttl, .. },
    } = cli.command
    else {
        panic!("not token create")
    };
    assert_eq!(role, flotilla_client::TokenRole::Join);
    assert_eq!(ttl, Some(std::time::Duration::from_secs(7200)));
    assert!(parse(&["token", "create", "--role", "root"]).is_err());
    assert!(parse(&["token", "create", "--role", "admin", "--ttl", "5y"]).is_err());
    assert!(parse(&["token", "create", "--role", "admin", "--ttl", "0s"]).is_err());
    assert!(matches!(
        parse(&["token", "revoke", "3"]).unwrap().command,
        Command::Token {
            action: TokenAction::Revoke { id: 3, .. }
        }
    ));
    let cmd = Cli::command();
    let token = cmd.get_arguments().find(|a| a.get_id() == "token").unwrap();
    assert_eq!(token.get_env().and_then(|e| e.to_str()), Some("FLOTILLA_TOKEN"));
}

#[test]
fn tasks_commands_parse() {
    assert!(matches!(
        parse(&["tasks"]).unwrap().command,
        Command::Tasks {
            json: false,
            action: None
        }
    ));
    assert!(matches!(
        parse(&["tasks", "--json"]).unwrap().command,
        Command::Tasks { json: true, .. }
    ));
    let Command::Tasks {
        action:
            Some(TasksAction::Declare {
                names,
                queue,
                declarer,
            }),
        ..
    } = parse(&["tasks", "declare", "a", "b", "--queue", "q"])
        .unwrap()
        .command
    else {
        panic!("not tasks declare")
    };
    assert_eq!(
        (names, queue, declarer.as_str()),
        (vec!["a".into(), "b".into()], "q".into(), "operator")
    );
    assert!(parse(&["tasks", "declare"]).is_err());
}

#[test]
fn nodes_come_from_the_environment_too() {
    let cmd = Cli::command();
    let nodes = cmd.get_arguments().find(|a| a.get_id() == "nodes").unwrap();
    assert_eq!(nodes.get_env().and_then(|e| e.to_str()), Some("FLOTILLA_NODES"));
    Cli::command().debug_assert();
}

/// Every command that talks to a cluster or writes files takes `--json`; only `completions`
/// (it prints a shell script) does not. A new command without it fails here.
#[test]
fn every_command_takes_json() {
    fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
        if cmd.get_subcommands().next().is_none() {
            let json = cmd.get_arguments().any(|a| a.get_long() == Some("json"));
            out.push((path, json));
            return;
        }
        // A command with optional subcommands runs on its own too (`tasks`).
        if !cmd.is_subcommand_required_set() && !path.is_empty() {
            let json = cmd.get_arguments().any(|a| a.get_long() == Some("json"));
            out.push((path.clone(), json));
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            leaves(sub, format!("{path} {}", sub.get_name()).trim().to_string(), out);
        }
    }
    let mut all = Vec::new();
    let mut cli = Cli::command();
    cli.build();
    leaves(&cli, String::new(), &mut all);
    assert!(all.len() > 30, "{all:?}");
    let without: Vec<&str> = all
        .iter()
        .filter(|(_, json)| !json)
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(without, ["completions"]);
}

#[test]
fn workers_and_completions_parse() {
    assert!(matches!(
        parse(&["workers", "--json"]).unwrap().command,
        Command::Workers { json: true }
    ));
    assert!(matches!(
        parse(&["completions", "zsh"]).unwrap().command,
        Command::Completions {
            shell: clap_complete::Shell::Zsh
        }
    ));
    assert_eq!(parse(&["completions", "tcsh"]).unwrap_err().exit_code(), 2);
    assert!(parse(&["pause", "q", "--json"]).is_ok());
    assert!(parse(&["cluster", "remove", "3", "--json"]).is_ok());
    assert!(matches!(
        parse(&["tasks", "declare", "a", "--json"]).unwrap().command,
        Command::Tasks { json: true, .. }
    ));
}
