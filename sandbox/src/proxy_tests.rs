//! The proxy and forward relays, driven over their unix sockets as the worker's bridge
//! would, against local test servers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

use crate::{Connection, ConnectionKind, Egress, EgressConfig, NetworkSpec, ProxyConfig, Verdict};

/// A loopback server answering every connection with one HTTP response naming `who`.
async fn server(who: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let first = String::from_utf8_lossy(&seen)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let body = format!("{who} got {first}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

fn start(allow: Vec<String>, forwards: Vec<SocketAddr>) -> (tempfile::TempDir, Egress) {
    let dir = tempfile::tempdir().unwrap();
    let mut resolve = BTreeMap::new();
    resolve.insert(
        "api.example.test".to_owned(),
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    );
    let egress = Egress::start(EgressConfig {
        dir: dir.path().to_owned(),
        proxy: Some(ProxyConfig {
            allow: Arc::new(move |host: &str, port: u16| {
                let want = format!("{host}:{port}");
                allow.iter().find(|r| **r == want).cloned()
            }),
            resolve,
        }),
        forwards,
    })
    .unwrap();
    (dir, egress)
}

/// Sends `request` through the proxy socket; returns everything read back.
async fn through(egress: &Egress, request: &str) -> String {
    let NetworkSpec::Proxy { unix_socket, .. } = egress.network() else {
        panic!("no proxy")
    };
    let mut s = UnixStream::connect(unix_socket).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connect_and_plain_http_to_an_allowed_host() {
    let port = server("upstream").await;
    let (_dir, egress) = start(vec![format!("api.example.test:{port}")], Vec::new());
    let tunnel = through(
        &egress,
        &format!(
            "CONNECT API.Example.TEST.:{port} HTTP/1.1\r\nhost: x\r\n\r\nGET /inner HTTP/1.1\r\nhost: x\r\n\r\n"
        ),
    )
    .await;
    assert!(tunnel.starts_with("HTTP/1.1 200"), "{tunnel}");
    assert!(
        tunnel.contains("upstream got GET /inner HTTP/1.1"),
        "{tunnel}"
    );
    let plain = through(
        &egress,
        &format!("GET http://api.example.test:{port}/plain?q=1 HTTP/1.1\r\nhost: api.example.test:{port}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        plain.contains("upstream got GET /plain?q=1 HTTP/1.1"),
        "{plain}"
    );
    let log = egress.stop().await;
    assert_eq!(log.len(), 2, "{log:?}");
    let rule = format!("api.example.test:{port}");
    for (conn, kind) in log
        .iter()
        .zip([ConnectionKind::Connect, ConnectionKind::Http])
    {
        assert_eq!(conn.kind, kind);
        assert_eq!(conn.verdict, Verdict::Allowed);
        assert_eq!(conn.reason, rule);
        assert_eq!(conn.canonical.as_deref(), Some("api.example.test"));
        assert_eq!(conn.addr, Some(SocketAddr::from(([127, 0, 0, 1], port))));
        assert!(conn.bytes_sent > 20 && conn.bytes_received > 20, "{conn:?}");
    }
}

#[tokio::test]
async fn look_alikes_and_numeric_tricks_are_denied_and_logged() {
    let port = server("upstream").await;
    let (_dir, egress) = start(
        vec![
            format!("api.example.test:{port}"),
            // Allowed by name, but DNS says loopback: not explicit, so refused.
            format!("localhost:{port}"),
        ],
        Vec::new(),
    );
    let hosts = [
        "api.example.test.evil.net".to_owned(),
        "evilapi.example.test".to_owned(),
        "127.1".to_owned(),
        "0x7f.0.0.1".to_owned(),
        "2130706433".to_owned(),
        "0177.0.0.1".to_owned(),
        "[::ffff:127.0.0.1]".to_owned(),
        "[::1]".to_owned(),
        "localhost".to_owned(),
        "169.254.169.254".to_owned(),
    ];
    for host in &hosts {
        let out = through(
            &egress,
            &format!("CONNECT {host}:{port} HTTP/1.1\r\nhost: x\r\n\r\n"),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 403"), "{host}: {out}");
        assert!(!out.contains("upstream"), "{host}: {out}");
    }
    let wrong_port = through(
        &egress,
        &format!(
            "GET http://api.example.test:{}/ HTTP/1.1\r\nhost: x\r\n\r\n",
            port ^ 1
        ),
    )
    .await;
    assert!(wrong_port.starts_with("HTTP/1.1 403"), "{wrong_port}");
    let log = egress.stop().await;
    let denied: Vec<&Connection> = log
        .iter()
        .filter(|c| c.verdict == Verdict::Denied)
        .collect();
    assert_eq!(denied.len(), hosts.len() + 1, "{log:?}");
    for conn in &denied[2..8] {
        let canon = conn.canonical.as_deref().unwrap_or_default();
        assert!(canon == "127.0.0.1" || canon == "[::1]", "{conn:?}");
    }
    assert!(denied[8].reason.contains("non-public"), "{:?}", denied[8]);
    assert_eq!(denied[0].host, "api.example.test.evil.net");
}

#[tokio::test]
async fn forwards_relay_to_host_loopback() {
    let port = server("model").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (_dir, egress) = start(Vec::new(), vec![addr]);
    assert_eq!(egress.forwards().len(), 1);
    let NetworkSpec::Proxy {
        port: proxy_port, ..
    } = egress.network()
    else {
        panic!("no proxy")
    };
    assert_ne!(*proxy_port, port);
    let mut s = UnixStream::connect(&egress.forwards()[0].unix_socket)
        .await
        .unwrap();
    s.write_all(b"GET /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.contains("model got GET /v1/messages"), "{out}");
    let log = egress.stop().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, ConnectionKind::Forward);
    assert_eq!(log[0].addr, Some(addr));
}
