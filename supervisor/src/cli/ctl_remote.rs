//! `orchestratorctl` against the daemon: every command over HTTP, as the token's name; and
//! token management offline, against the store.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{Client, print_json_or};
use super::common::*;
use super::ctl::{
    ArtifactsCommand, AuditCommand, Cli, Command, GatesCommand, RunsCommand, StepsCommand,
    TokensCommand,
};
use super::render;
use crate::daemon::{Scope, create_token, parse_scopes};
use crate::result::RunResult;

/// Fills `--url` and `--token` from `$CODENCER_CONFIG/client.toml` (`url = ...`,
/// `token = ...`) when neither a flag nor the environment gave them.
pub fn fill_from_config(cli: &mut Cli) {
    let Some(dir) = std::env::var_os("CODENCER_CONFIG").filter(|d| !d.is_empty()) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(Path::new(&dir).join("client.toml")) else {
        return;
    };
    let Ok(file) = toml::from_str::<toml::Table>(&text) else {
        eprintln!("warning: ignoring client.toml: not valid TOML");
        return;
    };
    if cli.url.is_none() {
        cli.url = file.get("url").and_then(|v| v.as_str()).map(str::to_string);
    }
    if cli.token.is_none() {
        cli.token = file
            .get("token")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
}

/// Tokens, offline: the operator of the state dir is the admin.
pub fn tokens_offline(state: &Path, command: TokensCommand) -> ExitCode {
    let store = match codencer_store::Store::open(state) {
        Ok(store) => store,
        Err(err) => {
            eprintln!(
                "error: cannot open the store at {}: {}",
                state.display(),
                error_chain(&err)
            );
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    let actor = local_actor();
    let result: Result<(), String> = match command {
        TokensCommand::Create { name, scopes, json } => parse_scopes(&scopes).and_then(|scopes| {
            let (secret, row) = create_token(&store, &actor, &name, &scopes)?;
            print_created(
                json,
                &secret,
                &serde_json::to_value(row).unwrap_or_default(),
            );
            Ok(())
        }),
        TokensCommand::List { json } => store
            .list_tokens()
            .map_err(|e| error_chain(&e))
            .map(|rows| print_tokens(json, &serde_json::to_value(rows).unwrap_or_default())),
        TokensCommand::Revoke { id, json } => (|| {
            let rows = store.list_tokens().map_err(|e| error_chain(&e))?;
            let token = rows
                .iter()
                .find(|t| t.id == id)
                .or_else(|| rows.iter().find(|t| t.name == id && t.revoked_at.is_none()))
                .ok_or_else(|| {
                    format!("no token `{id}` (list them with `orchestratorctl tokens list`)")
                })?;
            let row = store
                .revoke_token(&actor, &token.id)
                .map_err(|e| error_chain(&e))?
                .ok_or_else(|| format!("token `{id}` is already revoked"))?;
            print_json_or(
                json,
                &serde_json::to_value(&row).unwrap_or_default(),
                || println!("token {} ({}) revoked", row.id, row.name),
            );
            Ok(())
        })(),
    };
    match result {
        Ok(()) => exit(EXIT_PASSED),
        Err(err) => {
            eprintln!("error: {err}");
            exit(EXIT_INVALID)
        }
    }
}

fn print_created(json: bool, secret: &str, row: &Value) {
    print_json_or(json, &json!({ "token": secret, "record": row }), || {
        println!("{secret}");
        eprintln!(
            "token `{}` created with {}; the secret above is shown once: keep it (e.g. export CODENCER_TOKEN=...)",
            row["name"].as_str().unwrap_or_default(),
            row["scopes"]
        );
    });
}

fn print_tokens(json: bool, rows: &Value) {
    print_json_or(json, rows, || {
        println!("{:<26}  {:<20}  {:<8}  scopes", "ID", "NAME", "STATE");
        for t in rows.as_array().into_iter().flatten() {
            println!(
                "{:<26}  {:<20}  {:<8}  {}",
                t["id"].as_str().unwrap_or_default(),
                t["name"].as_str().unwrap_or_default(),
                if t["revoked_at"].is_null() {
                    "active"
                } else {
                    "revoked"
                },
                t["scopes"]
                    .as_array()
                    .map(|s| s
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            );
        }
    });
}

/// Every command, against the daemon at `url`.
pub fn main(url: &str, cli: Cli) -> ExitCode {
    let client = match Client::new(url, cli.token.clone()) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return exit(EXIT_INVALID);
        }
    };
    block_on(async {
        match dispatch(&client, cli.command).await {
            Ok(code) => exit(code),
            Err(err) => {
                eprintln!("error: {err}");
                exit(EXIT_INVALID)
            }
        }
    })
}

async fn dispatch(c: &Client, command: Command) -> Result<u8, String> {
    match command {
        Command::Submit {
            spec,
            wait,
            open,
            json,
        } => {
            let text = std::fs::read_to_string(&spec)
                .map_err(|e| format!("cannot read {}: {e}", spec.display()))?;
            c.submit(&text, open, wait, json).await
        }
        Command::Steps {
            command: StepsCommand::Append { run, step, json },
        } => {
            let text = std::fs::read_to_string(&step)
                .map_err(|e| format!("cannot read {}: {e}", step.display()))?;
            let added = c
                .post(&format!("/v1/runs/{run}/steps"), json!({ "step": text }))
                .await?;
            print_json_or(json, &added, || {
                println!(
                    "step {} ({}) appended to run {}",
                    added["index"],
                    added["step_id"].as_str().unwrap_or_default(),
                    added["run_id"].as_str().unwrap_or_default()
                )
            });
            Ok(EXIT_PASSED)
        }
        Command::Tokens { command } => tokens(c, command).await,
        Command::Runs { command } => runs(c, command).await,
        Command::Artifacts {
            command: ArtifactsCommand::Get { id, output },
        } => {
            match output {
                Some(path) => {
                    let mut file = std::fs::File::create(&path)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    c.download(&format!("/v1/artifacts/{id}/content"), &mut file)
                        .await?;
                }
                None => {
                    let mut out = std::io::stdout();
                    c.download(&format!("/v1/artifacts/{id}/content"), &mut out)
                        .await?;
                }
            }
            Ok(EXIT_PASSED)
        }
        Command::Gates { command } => gates(c, command).await,
        Command::Audit {
            command: AuditCommand::Export { .. },
        } => {
            Err("audit export reads the store: run it with --state-dir on the daemon's host".into())
        }
    }
}

async fn tokens(c: &Client, command: TokensCommand) -> Result<u8, String> {
    match command {
        TokensCommand::Create { name, scopes, json } => {
            let scopes: Vec<&str> = parse_scopes(&scopes)?
                .iter()
                .map(|s: &Scope| s.as_str())
                .collect();
            let created = c
                .post("/v1/tokens", json!({ "name": name, "scopes": scopes }))
                .await?;
            print_created(
                json,
                created["token"].as_str().unwrap_or_default(),
                &created["record"],
            );
        }
        TokensCommand::List { json } => {
            let list = c.get("/v1/tokens").await?;
            print_tokens(json, &list["tokens"]);
        }
        TokensCommand::Revoke { id, json } => {
            let row = c.delete(&format!("/v1/tokens/{id}")).await?;
            print_json_or(json, &row, || {
                println!(
                    "token {} ({}) revoked",
                    row["id"].as_str().unwrap_or_default(),
                    row["name"].as_str().unwrap_or_default()
                )
            });
        }
    }
    Ok(EXIT_PASSED)
}

async fn runs(c: &Client, command: RunsCommand) -> Result<u8, String> {
    match command {
        RunsCommand::List {
            json,
            status,
            limit,
        } => {
            let mut path = format!("/v1/runs?limit={limit}");
            if let Some(status) = status {
                super::ctl::parse_status(&status)?;
                path.push_str(&format!("&status={status}"));
            }
            let list = c.get(&path).await?;
            print_json_or(json, &list["runs"], || {
                let runs = list["runs"].as_array().cloned().unwrap_or_default();
                if runs.is_empty() {
                    println!("no runs");
                    return;
                }
                println!(
                    "{:<26}  {:<17}  {:<24}  {:<12}  created",
                    "ID", "STATUS", "NAME", "EXECUTOR"
                );
                for r in runs {
                    println!(
                        "{:<26}  {:<17}  {:<24}  {:<12}  {}",
                        r["id"].as_str().unwrap_or_default(),
                        r["status"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default(),
                        r["executor"].as_str().unwrap_or_default(),
                        r["created_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        RunsCommand::Show { id, json } => {
            let result = c.get(&format!("/v1/runs/{id}/result")).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                );
            } else {
                let result: RunResult =
                    serde_json::from_value(result).map_err(|e| e.to_string())?;
                render::result_summary(&result);
            }
        }
        RunsCommand::Tree { id, json } => {
            let view = c.get(&format!("/v1/runs/{id}")).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&view).unwrap_or_default()
                );
            } else {
                let tree: codencer_store::RunTree =
                    serde_json::from_value(view).map_err(|e| e.to_string())?;
                print!("{}", render::draw_tree(&tree));
            }
        }
        RunsCommand::Watch { id, after, json } => return c.watch(&id, after, json).await,
        RunsCommand::Cancel { id, json } => {
            let out = c.post(&format!("/v1/runs/{id}/cancel"), json!({})).await?;
            print_json_or(json, &out, || {
                println!(
                    "run {} cancelling",
                    out["run_id"].as_str().unwrap_or_default()
                )
            });
        }
        RunsCommand::Resume { id, json } => {
            let out = c.post(&format!("/v1/runs/{id}/resume"), json!({})).await?;
            print_json_or(json, &out, || {
                println!(
                    "run {} resuming",
                    out["run_id"].as_str().unwrap_or_default()
                )
            });
        }
        RunsCommand::Close { id, json } => {
            let out = c.post(&format!("/v1/runs/{id}/close"), json!({})).await?;
            print_json_or(json, &out, || {
                println!(
                    "run {} closed: {}",
                    out["run_id"].as_str().unwrap_or_default(),
                    out["status"].as_str().unwrap_or_default()
                )
            });
        }
    }
    Ok(EXIT_PASSED)
}

async fn gates(c: &Client, command: GatesCommand) -> Result<u8, String> {
    match command {
        GatesCommand::List { run, status, json } => {
            let mut query = Vec::new();
            if let Some(run) = run {
                query.push(format!("run={run}"));
            }
            if let Some(status) = status {
                query.push(format!("status={status}"));
            }
            let list = c.get(&format!("/v1/gates?{}", query.join("&"))).await?;
            print_json_or(json, &list["gates"], || {
                let gates = list["gates"].as_array().cloned().unwrap_or_default();
                if gates.is_empty() {
                    println!("no gates");
                    return;
                }
                println!(
                    "{:<26}  {:<10}  {:<9}  {:<26}  reason",
                    "ID", "NAME", "STATUS", "RUN"
                );
                for g in gates {
                    println!(
                        "{:<26}  {:<10}  {:<9}  {:<26}  {}",
                        g["id"].as_str().unwrap_or_default(),
                        g["name"].as_str().unwrap_or_default(),
                        g["status"].as_str().unwrap_or_default(),
                        g["run_id"].as_str().unwrap_or_default(),
                        g["reason"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        GatesCommand::Approve { id, reason } => {
            let gate = c
                .post(
                    &format!("/v1/gates/{id}/approve"),
                    json!({ "reason": reason }),
                )
                .await?;
            println!(
                "gate {} approved; the daemon continues run {}",
                id,
                gate["run_id"].as_str().unwrap_or_default()
            );
        }
        GatesCommand::Reject { id, reason } => {
            let gate = c
                .post(
                    &format!("/v1/gates/{id}/reject"),
                    json!({ "reason": reason }),
                )
                .await?;
            println!(
                "gate {} rejected; the daemon ends the step of run {}",
                id,
                gate["run_id"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(EXIT_PASSED)
}
