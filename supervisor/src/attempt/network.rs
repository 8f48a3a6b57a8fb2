//! The attempt's way out: the allow-list proxy (`network.mode = "allow"`) and the
//! `network.forward` relays, started before the executor, stopped after the validators,
//! their connection log recorded (an artifact and one `network.connection` event each).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use codencer_policy::{EffectivePolicy, NetworkMode};
use codencer_sandbox::{Connection, ConnectionKind, Egress, EgressConfig, ProxyConfig, Verdict};
use codencer_store::{ArtifactKind, EventBody};

use super::Workspace;
use crate::context::Context;
use crate::record::{Ids, NewArtifact};
use crate::supervisor_error::SupervisorError;

/// Fixed name resolutions for the proxy, `host=ip[,ip];host=ip`: for tests (a local
/// server standing in for a remote host) and split-horizon setups. Their addresses count
/// as explicitly allowed.
pub const RESOLVE_ENV: &str = "CODENCER_PROXY_RESOLVE";

/// Starts what the policy's network needs and points the workspace's sandbox and
/// environment at it; `None` when nothing is needed (`none` without forwards, `host`).
pub(super) fn start(
    policy: &EffectivePolicy,
    ws: &mut Workspace<'_>,
) -> Result<Option<Egress>, SupervisorError> {
    let network = &policy.values().network;
    let forwards: Vec<_> = network.forward.iter().map(|f| f.addr()).collect();
    let proxy = match network.mode {
        NetworkMode::Host => return Ok(None),
        NetworkMode::None if forwards.is_empty() => return Ok(None),
        NetworkMode::None => None,
        NetworkMode::Allow => {
            let rules = network.allow.clone();
            Some(ProxyConfig {
                allow: Arc::new(move |host: &str, port: u16| {
                    rules.matches(host, port).map(ToString::to_string)
                }),
                resolve: match std::env::var(RESOLVE_ENV) {
                    Ok(text) => parse_resolve(&text)?,
                    Err(_) => BTreeMap::new(),
                },
            })
        }
        // A mode this supervisor does not know: fail closed, no network.
        _ => return Ok(None),
    };
    let dir = ws.scratch.join("net");
    std::fs::create_dir_all(&dir)
        .map_err(|e| SupervisorError::io("create the attempt's network directory", &dir, e))?;
    let egress = Egress::start(EgressConfig {
        dir,
        proxy,
        forwards,
    })
    .map_err(|e| {
        SupervisorError::Infrastructure(format!(
            "could not start the network proxy: {}",
            crate::text::error_chain(&e)
        ))
    })?;
    egress.apply(&mut ws.sandbox, &mut ws.env);
    Ok(Some(egress))
}

/// Stops the proxy and relays and records their connection log.
pub(super) async fn finish(
    ctx: &Context,
    ids: &Ids,
    egress: Option<Egress>,
) -> Result<(), SupervisorError> {
    let Some(egress) = egress else {
        return Ok(());
    };
    let log = egress.stop().await;
    let mut lines = Vec::new();
    for conn in &log {
        if let Ok(line) = serde_json::to_vec(conn) {
            lines.extend_from_slice(&line);
            lines.push(b'\n');
        }
    }
    let events = log.into_iter().map(|c| (ids.clone(), event(c))).collect();
    let artifact = NewArtifact::bytes(ArtifactKind::NetworkLog, None, &lines);
    ctx.recorder.record(ids, &[artifact], |_| events)?;
    Ok(())
}

fn event(conn: Connection) -> EventBody {
    EventBody::NetworkConnection {
        kind: match conn.kind {
            ConnectionKind::Connect => "connect",
            ConnectionKind::Http => "http",
            ConnectionKind::Forward => "forward",
        }
        .to_owned(),
        host: conn.host,
        port: conn.port,
        canonical: conn.canonical,
        addr: conn.addr.map(|a| a.to_string()),
        verdict: match conn.verdict {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Failed => "failed",
        }
        .to_owned(),
        reason: conn.reason,
        bytes_sent: conn.bytes_sent,
        bytes_received: conn.bytes_received,
    }
}

/// Parses [`RESOLVE_ENV`].
fn parse_resolve(text: &str) -> Result<BTreeMap<String, Vec<IpAddr>>, SupervisorError> {
    let mut map = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            SupervisorError::Infrastructure(format!(
                "{RESOLVE_ENV}: `{entry}` is not `host=ip[,ip]`"
            ))
        };
        let (host, ips) = entry.split_once('=').ok_or_else(bad)?;
        let ips = ips
            .split(',')
            .map(|ip| ip.trim().parse::<IpAddr>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        let host = host.trim().to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        map.insert(host, ips);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_overrides_parse() {
        let map = parse_resolve(" API.Example.test.=127.0.0.1, ::1 ; b.test=10.0.0.5;").unwrap();
        assert_eq!(
            map,
            BTreeMap::from([
                (
                    "api.example.test".to_owned(),
                    vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]
                ),
                ("b.test".to_owned(), vec!["10.0.0.5".parse().unwrap()]),
            ])
        );
        assert!(parse_resolve("a.test").is_err());
        assert!(parse_resolve("a.test=localhost").is_err());
    }
}
