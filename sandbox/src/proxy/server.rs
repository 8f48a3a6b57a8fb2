//! The HTTP side of the proxy (hyper): `CONNECT host:port` tunnels and plain
//! `GET http://host/...` requests, each checked, resolved once, connected to the checked
//! address only, and logged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use super::host::{Host, ip_rule_form, is_public, unmap};
use super::io::{Counted, Counters};
use super::{Connection, ConnectionKind, Log, ProxyConfig, Verdict};

type Body = BoxBody<Bytes, hyper::Error>;

/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The proxy's rules and log.
#[derive(Debug)]
pub(super) struct State {
    config: ProxyConfig,
    log: Arc<Log>,
}

impl State {
    pub(super) fn new(config: ProxyConfig, log: Arc<Log>) -> Self {
        Self { config, log }
    }
}

/// A checked target.
struct Allowed {
    canonical: String,
    rule: String,
    addrs: Vec<SocketAddr>,
}

/// A refused target: the canonical form when the host parsed, and why.
struct Refused {
    canonical: Option<String>,
    reason: String,
}

/// Serves one client connection (bridged from inside the sandbox).
pub(super) async fn serve_client(stream: UnixStream, state: Arc<State>) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let kind = if req.method() == Method::CONNECT {
        ConnectionKind::Connect
    } else {
        ConnectionKind::Http
    };
    let Some((host, port)) = target(req.uri(), kind) else {
        return text(
            StatusCode::BAD_REQUEST,
            "codencer proxy: expected `CONNECT host:port` or an absolute http:// URI (https goes through CONNECT)",
        );
    };
    let entry = |canonical, addr, verdict, reason| Connection {
        kind,
        host: host.clone(),
        port,
        canonical,
        addr,
        verdict,
        reason,
        bytes_sent: 0,
        bytes_received: 0,
        started_ms: 0,
        duration_ms: None,
    };
    let allowed = match decide(&state.config, &host, port).await {
        Ok(allowed) => allowed,
        Err(refused) => {
            let message = format!("codencer proxy: {host}:{port} denied: {}", refused.reason);
            state.log.record(entry(
                refused.canonical,
                None,
                Verdict::Denied,
                refused.reason,
            ));
            return text(StatusCode::FORBIDDEN, &message);
        }
    };
    let (stream, addr) = match connect(&allowed.addrs).await {
        Ok(connected) => connected,
        Err(err) => {
            let reason = format!(
                "{} (allowed by {}); connect failed: {err}",
                allowed.canonical, allowed.rule
            );
            state.log.record(entry(
                Some(allowed.canonical),
                None,
                Verdict::Failed,
                reason.clone(),
            ));
            return text(
                StatusCode::BAD_GATEWAY,
                &format!("codencer proxy: {reason}"),
            );
        }
    };
    let counters = Arc::new(Counters::default());
    let index = state.log.push(
        entry(
            Some(allowed.canonical.clone()),
            Some(addr),
            Verdict::Allowed,
            allowed.rule,
        ),
        Some(counters.clone()),
    );
    let upstream = Counted {
        inner: stream,
        counters,
    };
    match kind {
        ConnectionKind::Connect => tunnel(state, req, upstream, index),
        ConnectionKind::Http | ConnectionKind::Forward => {
            forward(state, req, upstream, &allowed.canonical, port, index).await
        }
    }
}

/// The host and port a request is for.
fn target(uri: &Uri, kind: ConnectionKind) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let port = match kind {
        ConnectionKind::Connect => authority.port_u16()?,
        ConnectionKind::Http | ConnectionKind::Forward => {
            if uri.scheme_str() != Some("http") {
                return None;
            }
            authority.port_u16().unwrap_or(80)
        }
    };
    Some((authority.host().to_owned(), port))
}

/// Canonicalises, checks the rules, resolves once, and checks every address.
async fn decide(config: &ProxyConfig, raw: &str, port: u16) -> Result<Allowed, Refused> {
    let host = Host::parse(raw).map_err(|reason| Refused {
        canonical: None,
        reason,
    })?;
    let canonical = host.rule_form();
    let refuse = |reason: String| Refused {
        canonical: Some(canonical.clone()),
        reason,
    };
    let rule = (config.allow)(&canonical, port)
        .ok_or_else(|| refuse(format!("no allow rule matches {canonical}:{port}")))?;
    // An address the rules named, or a fixed answer, is explicit; what DNS says is not.
    let (ips, explicit) = match &host {
        Host::Ip(ip) => (vec![*ip], true),
        Host::Name(name) => match config.resolve.get(name) {
            Some(ips) => (ips.clone(), true),
            None => {
                let found = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| refuse(format!("{name} does not resolve: {e}")))?;
                (found.map(|a| a.ip()).collect(), false)
            }
        },
    };
    let ips: Vec<_> = ips.into_iter().map(unmap).collect();
    if ips.is_empty() {
        return Err(refuse(format!("{canonical} resolves to no address")));
    }
    if !explicit {
        for ip in &ips {
            if !is_public(*ip) && (config.allow)(&ip_rule_form(*ip), port).is_none() {
                return Err(refuse(format!(
                    "{canonical} resolves to {ip}, a non-public address that no rule names explicitly"
                )));
            }
        }
    }
    Ok(Allowed {
        canonical,
        rule,
        addrs: ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

async fn connect(addrs: &[SocketAddr]) -> std::io::Result<(TcpStream, SocketAddr)> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, *addr)),
            Ok(Err(err)) => last = err,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        }
    }
    Err(last)
}

/// Answers 200 and splices the upgraded client connection to the target.
fn tunnel(
    state: &Arc<State>,
    req: Request<Incoming>,
    mut upstream: Counted<TcpStream>,
    index: usize,
) -> Response<Body> {
    let log = state.log.clone();
    state.log.track(tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        log.finish(index);
    }));
    Response::new(empty())
}

/// Sends a plain HTTP request on to the target in origin form, one connection per request.
async fn forward(
    state: &Arc<State>,
    req: Request<Incoming>,
    upstream: Counted<TcpStream>,
    canonical: &str,
    port: u16,
    index: usize,
) -> Response<Body> {
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
            Ok(pair) => pair,
            Err(err) => {
                state.log.finish(index);
                return text(StatusCode::BAD_GATEWAY, &format!("codencer proxy: {err}"));
            }
        };
    let log = state.log.clone();
    state.log.track(tokio::spawn(async move {
        let _ = conn.await;
        log.finish(index);
    }));
    let (mut parts, body) = req.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove("keep-alive");
    let host = if port == 80 {
        canonical.to_owned()
    } else {
        format!("{canonical}:{port}")
    };
    if let Ok(value) = HeaderValue::from_str(&host) {
        parts.headers.insert(header::HOST, value);
    }
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(err) => text(StatusCode::BAD_GATEWAY, &format!("codencer proxy: {err}")),
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    // A refused client gets nothing more on this connection.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
