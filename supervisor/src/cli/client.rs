//! `orchestratorctl` as a client of the daemon: the HTTP calls behind its commands.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::common::*;
use super::render;
use crate::result::RunResult;

/// The daemon's URL and the token to use.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Result<Client, String> {
        let token = token.filter(|t| !t.is_empty()).ok_or(
            "no token: set CODENCER_TOKEN (or --token); create one with `orchestratorctl --state-dir DIR tokens create NAME --scope admin`",
        )?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("cannot reach the daemon at {}: {e}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["code"].as_str().unwrap_or("error");
        let message = body["message"].as_str().unwrap_or("");
        Err(format!("{message} [{code}, HTTP {}]", status.as_u16()))
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        resp.json()
            .await
            .map_err(|e| format!("bad answer from the daemon: {e}"))
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let resp = self
            .send(self.http.post(self.url(path)).json(&body))
            .await?;
        resp.json()
            .await
            .map_err(|e| format!("bad answer from the daemon: {e}"))
    }

    pub async fn delete(&self, path: &str) -> Result<Value, String> {
        let resp = self.send(self.http.delete(self.url(path))).await?;
        resp.json()
            .await
            .map_err(|e| format!("bad answer from the daemon: {e}"))
    }

    /// Streams an artifact's content to `out`.
    pub async fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<(), String> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
            out.write_all(&chunk)
                .map_err(|e| format!("cannot write the artifact: {e}"))?;
        }
        Ok(())
    }

    /// Submits a TaskSpec file; with `wait`, waits for the run to stop and prints its result.
    pub async fn submit(
        &self,
        text: &str,
        open: bool,
        wait: bool,
        json: bool,
    ) -> Result<u8, String> {
        let base_dir = std::env::current_dir().ok();
        let created = self
            .post(
                "/v1/runs",
                json!({ "taskspec": text, "open": open, "base_dir": base_dir }),
            )
            .await?;
        let run_id = created["run_id"].as_str().unwrap_or_default().to_string();
        if !wait {
            print_json_or(json, &created, || println!("run {run_id} submitted"));
            return Ok(EXIT_PASSED);
        }
        if !json {
            eprintln!("run {run_id} submitted; waiting");
        }
        let steps: Vec<String> = created["step_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for step in &steps {
            loop {
                let wait = self
                    .get(&format!("/v1/runs/{run_id}/steps/{step}/wait?timeout=60"))
                    .await?;
                if wait["done"].as_bool() == Some(true) {
                    break;
                }
            }
            // A failed or waiting step stops the run there.
            let run = self.get(&format!("/v1/runs/{run_id}")).await?;
            if run["run"]["status"] != "running" && run["slot"].is_null() {
                break;
            }
        }
        let result = self.get(&format!("/v1/runs/{run_id}/result")).await?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            );
        } else if let Ok(result) = serde_json::from_value::<RunResult>(result.clone()) {
            render::result_summary(&result);
        }
        Ok(match result["status"].as_str() {
            Some("passed") => EXIT_PASSED,
            Some("awaiting_approval") => EXIT_AWAITING_APPROVAL,
            Some("running") if open => EXIT_PASSED,
            Some("cancelled") => EXIT_INTERRUPTED,
            _ => EXIT_FAILED,
        })
    }

    /// Follows a run's event stream, printing progress (or JSON lines), then its tree.
    pub async fn watch(&self, run: &str, after: u64, json: bool) -> Result<u8, String> {
        let view = self.get(&format!("/v1/runs/{run}")).await?;
        let run_id = view["run"]["id"].as_str().unwrap_or(run).to_string();
        let mut step_ids: Vec<String> = step_ids_of(&view);
        if !json {
            eprintln!("watching run {run_id} (Ctrl-C to stop)");
        }
        let mut cursor = after;
        'stream: loop {
            let resp = self
                .send(
                    self.http
                        .get(self.url(&format!("/v1/runs/{run_id}/events?after={cursor}")))
                        .header("accept", "text/event-stream"),
                )
                .await?;
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let Some(data) = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("data:"))
                        .map(str::trim)
                    else {
                        continue;
                    };
                    let Ok(event) = serde_json::from_str::<codencer_store::Event>(data) else {
                        continue;
                    };
                    cursor = event.seq;
                    if let codencer_store::EventBody::StepCreated { .. } = event.body
                        && let Some(step) = &event.step_id
                        && !step_ids.contains(step)
                    {
                        step_ids.push(step.clone());
                    }
                    if json {
                        println!("{data}");
                    } else if let Some(line) = render::progress_line(&event, &step_ids) {
                        println!("{line}");
                    }
                    let stopped = matches!(
                        event.body,
                        codencer_store::EventBody::RunCompleted { .. }
                            | codencer_store::EventBody::StepAwaitingApproval { .. }
                    );
                    if stopped {
                        break 'stream;
                    }
                }
            }
            // The connection dropped: resume from the last event seen.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !json {
            let view = self.get(&format!("/v1/runs/{run_id}")).await?;
            if let Ok(tree) = serde_json::from_value::<codencer_store::RunTree>(view) {
                print!("{}", render::draw_tree(&tree));
            }
        }
        Ok(EXIT_PASSED)
    }
}

fn step_ids_of(view: &Value) -> Vec<String> {
    view["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["step"]["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints `value` as pretty JSON with `--json`, else runs `human`.
pub fn print_json_or<T: serde::Serialize + ?Sized>(json: bool, value: &T, human: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        human();
    }
}
