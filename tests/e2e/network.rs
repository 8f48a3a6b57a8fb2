//! The network allow list through the binaries: the proxy (a local server standing in for
//! `api.example.test` via `CODENCER_PROXY_RESOLVE`), look-alike and numeric-IP tricks,
//! direct connections, forwards, and the record of every connection.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use codencer_tests::{Run, Sandbox, git, wait_for_port_file};

/// A host loopback HTTP server answering `served <path>`; returns its port and the
/// request lines it saw.
fn server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            let line = text.lines().next().unwrap_or("").to_owned();
            let path = line.split(' ').nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(line);
            let body = format!("served {path}\n");
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, seen)
}

fn run_shell(sb: &Sandbox, command: &str) -> (Run, serde_json::Value) {
    let spec = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: net\n  workspace: {}\n  executor: shell\n  goal: g\n  command: |\n    {}\n",
            sb.repo().display(),
            // /bin/sh is dash: the script wants bash's /dev/tcp.
            format!("bash <<'SCRIPT'\n{command}\nSCRIPT").replace('\n', "\n    ")
        ),
    );
    let out = codencer_tests::run(
        sb.command("codencer")
            .env("CODENCER_PROXY_RESOLVE", "api.example.test=127.0.0.1")
            .args(["run", "--json", spec.to_str().unwrap()]),
    );
    let json =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
    (out, json)
}

fn file(sb: &Sandbox, result: &serde_json::Value, name: &str) -> String {
    let branch = result["steps"][0]["branch"].as_str().unwrap();
    git(&sb.repo(), &["show", &format!("{branch}:{name}")])
}

fn connections(sb: &Sandbox) -> Vec<serde_json::Value> {
    sb.ctl(&["audit", "export", "--jsonl"])
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "network.connection")
        .map(|e| e["result"].clone())
        .collect()
}

#[test]
fn allow_list_through_the_proxy() {
    let sb = Sandbox::new();
    let (port, seen) = server();
    let (model, model_seen) = server();
    sb.policy(
        "shell.toml",
        &format!(
            "[network]\nmode = \"allow\"\nallow = [\"api.example.test:{port}\", \"localhost:{port}\"]\nforward = [\"127.0.0.1:{model}\"]\n"
        ),
    );
    let tricks = [
        "api.example.test.evil.net",
        "evilapi.example.test",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "localhost",
    ];
    let command = format!(
        r#"curl -sS --max-time 10 http://api.example.test:{port}/plain > plain.txt 2>&1
curl -sS --max-time 10 -p http://API.example.test.:{port}/tunnel > tunnel.txt 2>&1
for h in {tricks}; do
  exec 3<>/dev/tcp/127.0.0.1/${{HTTP_PROXY##*:}}
  printf 'CONNECT %s:{port} HTTP/1.1\r\nhost: x\r\n\r\n' "$h" >&3
  head -c 12 <&3; echo " $h"
  exec 3>&-
done > denied.txt
curl -sS --max-time 5 --noproxy '*' http://127.0.0.1:{port}/direct > direct.txt 2>&1; echo "exit $?" >> direct.txt
curl -sS --max-time 10 http://127.0.0.1:{model}/v1/messages > forward.txt 2>&1
env | grep -i '_proxy=' | sort > proxyenv.txt"#,
        tricks = tricks.map(|t| format!("'{t}'")).join(" ")
    );
    let (out, result) = run_shell(&sb, &command);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(file(&sb, &result, "plain.txt"), "served /plain\n");
    assert_eq!(file(&sb, &result, "tunnel.txt"), "served /tunnel\n");
    assert_eq!(file(&sb, &result, "forward.txt"), "served /v1/messages\n");
    let denied = file(&sb, &result, "denied.txt");
    assert_eq!(denied.lines().count(), tricks.len(), "{denied}");
    assert!(
        denied.lines().all(|l| l.starts_with("HTTP/1.1 403")),
        "{denied}"
    );
    let direct = file(&sb, &result, "direct.txt");
    assert!(
        !direct.contains("served") && !direct.contains("exit 0"),
        "{direct}"
    );
    let env = file(&sb, &result, "proxyenv.txt");
    assert!(env.contains("HTTPS_PROXY=http://127.0.0.1:3128\n"), "{env}");
    assert!(env.contains("NO_PROXY=localhost,127.0.0.1,::1\n"), "{env}");
    // Only the allowed requests reached the server (the tunnel's GET is origin-form).
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /plain HTTP/1.1", "GET /tunnel HTTP/1.1"]
    );
    assert_eq!(*model_seen.lock().unwrap(), ["GET /v1/messages HTTP/1.1"]);
    // Every connection is recorded: allowed, denied, forwarded.
    let conns = connections(&sb);
    let with = |verdict: &str, kind: &str| {
        conns
            .iter()
            .filter(|c| c["verdict"] == verdict && c["kind"] == kind)
            .collect::<Vec<_>>()
    };
    let allowed = [with("allowed", "http"), with("allowed", "connect")].concat();
    assert_eq!(allowed.len(), 2, "{conns:#?}");
    for c in &allowed {
        assert_eq!(c["canonical"], "api.example.test");
        assert_eq!(c["reason"], format!("api.example.test:{port}"));
        assert!(c["bytes_received"].as_u64().unwrap() > 0, "{c}");
    }
    let denied = with("denied", "connect");
    assert_eq!(denied.len(), tricks.len(), "{conns:#?}");
    for (c, trick) in denied.iter().zip(tricks) {
        let host = c["host"].as_str().unwrap();
        let bare = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_owned();
        assert_eq!(bare(host), bare(trick), "{c}");
    }
    let numeric: Vec<_> = denied[2..8]
        .iter()
        .map(|c| c["canonical"].clone())
        .collect();
    assert!(
        numeric.iter().all(|c| c == "127.0.0.1" || c == "[::1]"),
        "{numeric:?}"
    );
    assert!(
        denied[8]["reason"].as_str().unwrap().contains("non-public"),
        "{}",
        denied[8]
    );
    assert_eq!(with("allowed", "forward").len(), 1, "{conns:#?}");
    let tree = sb.tree(result["run_id"].as_str().unwrap());
    let kinds = tree["steps"][0]["attempts"][0]["artifacts"].to_string();
    assert!(kinds.contains("network_log"), "{kinds}");
}

#[test]
fn forward_works_for_exactly_the_listed_port() {
    let sb = Sandbox::new();
    let (forwarded, forwarded_seen) = server();
    let (other, other_seen) = server();
    sb.policy(
        "shell.toml",
        &format!("[network]\nmode = \"none\"\nforward = [\"127.0.0.1:{forwarded}\"]\n"),
    );
    let (out, result) = run_shell(
        &sb,
        &format!(
            "curl -sS --max-time 10 http://127.0.0.1:{forwarded}/ok > ok.txt 2>&1\ncurl -sS --max-time 5 http://127.0.0.1:{other}/other > other.txt 2>&1; echo \"exit $?\" >> other.txt\nenv | grep -ci _proxy= > proxies.txt; true"
        ),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(file(&sb, &result, "ok.txt"), "served /ok\n");
    assert!(!file(&sb, &result, "other.txt").contains("exit 0"));
    // `none` runs no proxy.
    assert_eq!(file(&sb, &result, "proxies.txt"), "0\n");
    assert_eq!(*forwarded_seen.lock().unwrap(), ["GET /ok HTTP/1.1"]);
    assert!(other_seen.lock().unwrap().is_empty());
    let conns = connections(&sb);
    assert_eq!(conns.len(), 1, "{conns:#?}");
    assert_eq!(conns[0]["kind"], "forward");
    assert_eq!(conns[0]["addr"], format!("127.0.0.1:{forwarded}"));
}

#[test]
fn strict_refuses_the_host_network() {
    let sb = Sandbox::new();
    sb.policy(
        "shell.toml",
        "strict = true\n\n[network]\nmode = \"host\"\n",
    );
    let spec = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: s\n  workspace: {}\n  executor: shell\n  goal: g\n  command: touch RAN\n",
            sb.repo().display()
        ),
    );
    let out = sb.codencer(&["run", spec.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("strict") && out.stderr.contains("host"),
        "{out}"
    );
    assert!(!sb.state().join("worktrees").exists(), "{out}");
}

/// A loopback HTTPS server (Python's `ssl`) with a self-signed certificate for
/// `api.example.test`; killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS_SERVER: &str = r#"
import http.server, os, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"served {self.path} over tls\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
server.serve_forever()
"#;

fn tls_server(sb: &Sandbox) -> TlsServer {
    let dir = sb.dir.path();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=api.example.test"])
        .args(["-addext", "subjectAltName=DNS:api.example.test"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let port_file = dir.join("tls.port");
    let child = std::process::Command::new("python3")
        .args(["-c", TLS_SERVER])
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .arg(&port_file)
        .spawn()
        .expect("python3");
    let port = wait_for_port_file(&port_file, "TLS server");
    TlsServer { child, port }
}

#[test]
fn https_through_the_proxy_checks_the_real_certificate() {
    let sb = Sandbox::new();
    let server = tls_server(&sb);
    let port = server.port;
    // The certificate is the only trust anchor the client gets (committed into the repo).
    std::fs::copy(sb.dir.path().join("cert.pem"), sb.repo().join("cert.pem")).unwrap();
    git(&sb.repo(), &["add", "cert.pem"]);
    git(&sb.repo(), &["commit", "-q", "-m", "test ca"]);
    sb.policy(
        "shell.toml",
        &format!("[network]\nmode = \"allow\"\nallow = [\"api.example.test:{port}\"]\n"),
    );
    let (out, result) = run_shell(
        &sb,
        &format!(
            "curl -sS --max-time 10 --cacert cert.pem https://api.example.test:{port}/secure > tls.txt 2>&1\ncurl -sS --max-time 10 --cacert cert.pem https://127.0.0.1:{port}/by-ip > by-ip.txt 2>&1; true"
        ),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(file(&sb, &result, "tls.txt"), "served /secure over tls\n");
    // By address: no rule names 127.0.0.1 (NO_PROXY sends it direct, where nothing is).
    assert!(!file(&sb, &result, "by-ip.txt").contains("served"));
    let conns = connections(&sb);
    let allowed: Vec<_> = conns.iter().filter(|c| c["verdict"] == "allowed").collect();
    assert_eq!(allowed.len(), 1, "{conns:#?}");
    assert_eq!(allowed[0]["kind"], "connect");
    assert!(
        allowed[0]["bytes_sent"].as_u64().unwrap() > 100,
        "{}",
        allowed[0]
    );
}
