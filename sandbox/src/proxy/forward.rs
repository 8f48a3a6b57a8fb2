//! `forward` relays: a unix socket per forward, relayed to the host loopback service.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};

use super::io::{Counted, Counters};
use super::{Connection, ConnectionKind, Log, Verdict};
use crate::proxy::host::ip_rule_form;

/// Relays one bridged connection to `addr` on the host.
pub(super) async fn relay(mut inside: UnixStream, addr: SocketAddr, log: Arc<Log>) {
    let entry = |verdict, reason: String| Connection {
        kind: ConnectionKind::Forward,
        host: ip_rule_form(addr.ip()),
        port: addr.port(),
        canonical: Some(ip_rule_form(addr.ip())),
        addr: Some(addr),
        verdict,
        reason,
        bytes_sent: 0,
        bytes_received: 0,
        started_ms: 0,
        duration_ms: None,
    };
    let target = match TcpStream::connect(addr).await {
        Ok(target) => target,
        Err(err) => {
            log.record(entry(Verdict::Failed, format!("forward {addr}: {err}")));
            return;
        }
    };
    let counters = Arc::new(Counters::default());
    let index = log.push(
        entry(Verdict::Allowed, format!("forward {addr}")),
        Some(counters.clone()),
    );
    let mut target = Counted {
        inner: target,
        counters,
    };
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut target).await;
    log.finish(index);
}
