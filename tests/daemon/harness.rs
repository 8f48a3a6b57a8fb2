//! A daemon per test: its own repo, state dir and port; a tiny HTTP client (std only).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codencer_tests::{Sandbox, bin};
use serde_json::Value;

pub struct Daemon {
    pub sb: Sandbox,
    pub child: Option<Child>,
    pub url: String,
    /// An `admin` token named `admin`.
    pub admin: String,
    max_runs: usize,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(4)
    }

    pub fn start_with(max_runs: usize) -> Daemon {
        let sb = Sandbox::new();
        let admin = create_token(&sb, "admin", &["admin"]);
        let mut d = Daemon {
            sb,
            child: None,
            url: String::new(),
            admin,
            max_runs,
        };
        d.spawn();
        d
    }

    /// Starts (or restarts) the daemon process on a free port.
    pub fn spawn(&mut self) {
        let addr_file = self.sb.dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::File::create(self.sb.dir.path().join("daemon.log")).unwrap();
        let child = self
            .sb
            .command("orchestratord")
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .args(["--max-concurrent-runs", &self.max_runs.to_string()])
            .env("CODENCER_LOG", "info")
            .env("CODENCER_GRACE", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn orchestratord");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && text.ends_with('\n')
            {
                self.url = text.trim().to_string();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the daemon (SIGKILL: no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sb.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn host_port(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// One request; `token` `None` sends none.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut stream = TcpStream::connect(self.host_port()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host_port(),
            body.len()
        );
        if let Some(token) = token {
            req.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse(&raw)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, Some(&self.admin), None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.request("POST", path, Some(&self.admin), Some(&body))
    }

    /// Reads an SSE stream for `secs` seconds and returns the raw text.
    pub fn sse(&self, path: &str, secs: u64, last_event_id: Option<u64>) -> String {
        sse(&self.url, &self.admin, path, secs, last_event_id)
    }

    /// A TaskSpec for the sandbox's repo with a shell step.
    pub fn spec(&self, name: &str, body: &str) -> String {
        format!(
            "task:\n  name: {name}\n  workspace: {}\n  executor: shell\n{body}",
            self.sb.repo().display()
        )
    }

    /// Submits and returns (run id, step ids).
    pub fn submit(&self, spec: &str, open: bool) -> (String, Vec<String>) {
        let a = self.post(
            "/v1/runs",
            serde_json::json!({ "taskspec": spec, "open": open }),
        );
        assert_eq!(a.status, 201, "{a:?}");
        let v = a.json();
        let steps = v["step_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        (v["run_id"].as_str().unwrap().to_string(), steps)
    }

    /// Waits for a step to be done; returns its ResultSpec.
    pub fn wait_step(&self, run: &str, step: &str) -> Value {
        for _ in 0..20 {
            let a = self.get(&format!("/v1/runs/{run}/steps/{step}/wait?timeout=10"));
            assert_eq!(a.status, 200, "{a:?}");
            let v = a.json();
            if v["done"] == true {
                return v["result"].clone();
            }
        }
        panic!("step {step} of run {run} never finished:\n{}", self.log());
    }

    /// Waits until the run's status is terminal; returns the run view.
    pub fn wait_run(&self, run: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.get(&format!("/v1/runs/{run}")).json();
            let status = v["run"]["status"].as_str().unwrap().to_string();
            if ["passed", "failed", "cancelled"].contains(&status.as_str()) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} still {status}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the run's first attempt is running.
    pub fn wait_first_attempt_running(&self, run: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempts = self.get(&format!("/v1/runs/{run}/attempts")).json();
            if attempts["attempts"][0]["status"] == "running" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "attempt never ran:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every recorded event, read offline from the store.
    pub fn audit(&self) -> Vec<Value> {
        let out = self.sb.ctl(&["audit", "export", "--jsonl"]);
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates a token offline; returns its secret.
pub fn create_token(sb: &Sandbox, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["tokens", "create", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let out = sb.ctl(&args);
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout.trim().to_string()
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// `orchestratorctl` as a client of this daemon.
pub fn ctl_remote(d: &Daemon, token: &str, args: &[&str]) -> codencer_tests::Run {
    codencer_tests::run(
        Command::new(bin("orchestratorctl"))
            .env("CODENCER_URL", &d.url)
            .env("CODENCER_TOKEN", token)
            .env("CODENCER_CONFIG", d.sb.dir.path().join("config"))
            .args(args),
    )
}

/// Reads the SSE stream at `url` + `path` for `secs` seconds and returns the raw text.
pub fn sse(url: &str, token: &str, path: &str, secs: u64, last_event_id: Option<u64>) -> String {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n"
    );
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}
