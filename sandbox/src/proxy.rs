//! The sandbox's way out: an HTTP proxy (CONNECT and plain HTTP, served by hyper) on a
//! unix socket that checks every host against the allow list, and relays for `forward`
//! entries (host loopback services). `codencer-worker` bridges both into the sandbox's
//! network namespace; nothing else leaves it. Every connection is logged.
//!
//! Runs on the caller's tokio runtime: [`Egress::start`] before the sandboxed process,
//! [`Egress::stop`] after it, which returns the connection log.

mod forward;
mod host;
mod io;
mod server;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::error::SandboxError;
use crate::spec::{ForwardSpec, NetworkSpec, SandboxSpec};

pub use io::Counters;

/// Decides whether `host:port` may be reached: `host` is canonical (a lowercase name, a
/// dotted IPv4 address, or `[v6]`); the answer names the allowing rule.
pub type AllowFn = dyn Fn(&str, u16) -> Option<String> + Send + Sync;

/// The proxy's rules.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The allow list.
    pub allow: Arc<AllowFn>,
    /// Fixed answers for host names (canonical, lowercase), used instead of DNS. Their
    /// addresses count as explicitly allowed, even loopback or private ones: this is the
    /// hook tests use to stand a local server in for a remote host.
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("resolve", &self.resolve)
            .finish_non_exhaustive()
    }
}

/// What to run for one sandbox.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Directory for the unix sockets (private to the caller; short path: sockets are
    /// limited to 107 bytes).
    pub dir: PathBuf,
    /// The allow-list proxy, if any.
    pub proxy: Option<ProxyConfig>,
    /// Host loopback services made reachable at the same address inside.
    pub forwards: Vec<SocketAddr>,
}

/// How a connection came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// `CONNECT host:port` (a tunnel, usually TLS).
    Connect,
    /// A plain HTTP request through the proxy.
    Http,
    /// A `forward` relay to a host loopback service.
    Forward,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Allowed and connected.
    Allowed,
    /// Refused by the rules.
    Denied,
    /// Allowed, but the target could not be reached.
    Failed,
}

/// One logged connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// How it came in.
    pub kind: ConnectionKind,
    /// The host as the sandboxed process asked for it.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// The canonical host the rules were checked against, when it parsed.
    pub canonical: Option<String>,
    /// The address actually connected to.
    pub addr: Option<SocketAddr>,
    /// The verdict.
    pub verdict: Verdict,
    /// The allowing rule, or why it was denied or failed.
    pub reason: String,
    /// Bytes sent to the target.
    pub bytes_sent: u64,
    /// Bytes received from the target.
    pub bytes_received: u64,
    /// Milliseconds since the egress started.
    pub started_ms: u64,
    /// How long the connection lasted, when it ended before [`Egress::stop`].
    pub duration_ms: Option<u64>,
}

/// The connection log, shared by the connection tasks.
#[derive(Debug)]
pub(crate) struct Log {
    started: Instant,
    entries: Mutex<Vec<(Connection, Option<Arc<Counters>>)>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// More than this many log entries are not kept.
const MAX_ENTRIES: usize = 100_000;

impl Log {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            entries: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// A new entry; `counters` are read when the log is taken. Returns its index (past
    /// the end, so [`Log::finish`] ignores it, when the log is full).
    pub(crate) fn push(&self, mut conn: Connection, counters: Option<Arc<Counters>>) -> usize {
        conn.started_ms = self.started.elapsed().as_millis() as u64;
        // A std mutex: nothing awaits under it.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let index = entries.len();
        if index < MAX_ENTRIES {
            entries.push((conn, counters));
        }
        index
    }

    /// An entry that ended as it was made (denied or failed).
    pub(crate) fn record(&self, conn: Connection) {
        let index = self.push(conn, None);
        self.finish(index);
    }

    /// Marks entry `index` as ended.
    pub(crate) fn finish(&self, index: usize) {
        let now = self.started.elapsed().as_millis() as u64;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((conn, _)) = entries.get_mut(index) {
            conn.duration_ms = Some(now.saturating_sub(conn.started_ms));
        }
    }

    /// Keeps a task that must not outlive the egress.
    pub(crate) fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }

    fn take(&self) -> Vec<Connection> {
        let entries =
            std::mem::take(&mut *self.entries.lock().unwrap_or_else(PoisonError::into_inner));
        entries
            .into_iter()
            .map(|(mut conn, counters)| {
                if let Some(c) = counters {
                    (conn.bytes_sent, conn.bytes_received) = c.get();
                }
                conn
            })
            .collect()
    }
}

/// The running proxy and forward relays of one sandbox.
#[derive(Debug)]
pub struct Egress {
    network: NetworkSpec,
    forwards: Vec<ForwardSpec>,
    shutdown: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
    log: Arc<Log>,
}

/// The loopback port the proxy is bridged to inside, unless a forward takes it.
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// How long connections still open at [`Egress::stop`] get to finish.
const GRACE: Duration = Duration::from_secs(2);

impl Egress {
    /// Binds the sockets in `config.dir` and starts serving. Needs a tokio runtime.
    pub fn start(config: EgressConfig) -> Result<Egress, SandboxError> {
        let (shutdown, watch) = watch::channel(false);
        let log = Arc::new(Log::new());
        let mut egress = Egress {
            network: NetworkSpec::None,
            forwards: Vec::new(),
            shutdown,
            loops: Vec::new(),
            log: log.clone(),
        };
        for addr in &config.forwards {
            let path = config.dir.join(format!("f{}.sock", addr.port()));
            let listener = bind(&path)?;
            let (addr, log) = (*addr, log.clone());
            egress
                .loops
                .push(tokio::spawn(serve(listener, watch.clone(), move |s| {
                    forward::relay(s, addr, log.clone())
                })));
            egress.forwards.push(ForwardSpec {
                addr,
                unix_socket: path,
            });
        }
        if let Some(proxy) = config.proxy {
            let path = config.dir.join("proxy.sock");
            let listener = bind(&path)?;
            let state = Arc::new(server::State::new(proxy, log));
            egress
                .loops
                .push(tokio::spawn(serve(listener, watch, move |s| {
                    server::serve_client(s, state.clone())
                })));
            let mut port = DEFAULT_PROXY_PORT;
            while config.forwards.iter().any(|f| f.port() == port) {
                port += 1;
            }
            egress.network = NetworkSpec::Proxy {
                unix_socket: path,
                port,
            };
        }
        Ok(egress)
    }

    /// The sandbox's network: `Proxy` when an allow-list proxy runs, else `None`.
    pub fn network(&self) -> &NetworkSpec {
        &self.network
    }

    /// The forwards to list in the sandbox spec.
    pub fn forwards(&self) -> &[ForwardSpec] {
        &self.forwards
    }

    /// Points `spec` at this egress and adds the proxy variables to `env`
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and lowercase forms; `NO_PROXY` for
    /// loopback, where forwards are).
    pub fn apply(&self, spec: &mut SandboxSpec, env: &mut Vec<(String, String)>) {
        spec.network = self.network.clone();
        spec.forwards = self.forwards.clone();
        let NetworkSpec::Proxy { port, .. } = &self.network else {
            return;
        };
        let url = format!("http://127.0.0.1:{port}");
        let no_proxy = "localhost,127.0.0.1,::1".to_owned();
        for (name, value) in [
            ("HTTPS_PROXY", &url),
            ("HTTP_PROXY", &url),
            ("ALL_PROXY", &url),
            ("https_proxy", &url),
            ("http_proxy", &url),
            ("all_proxy", &url),
            ("NO_PROXY", &no_proxy),
            ("no_proxy", &no_proxy),
        ] {
            env.retain(|(k, _)| k != name);
            env.push((name.to_owned(), value.clone()));
        }
    }

    /// Stops accepting, gives open connections a moment, ends the rest, and returns the
    /// connection log in order.
    pub async fn stop(self) -> Vec<Connection> {
        let _ = self.shutdown.send(true);
        for task in self.loops {
            let _ = task.await;
        }
        let deadline = Instant::now() + GRACE;
        loop {
            let open = {
                let tasks = self
                    .log
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                tasks.iter().any(|t| !t.is_finished())
            };
            if !open || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in self
            .log
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        self.log.take()
    }
}

fn bind(path: &Path) -> Result<UnixListener, SandboxError> {
    if path.as_os_str().len() > 107 {
        return Err(SandboxError::InvalidSpec(format!(
            "socket path {} is longer than a unix socket allows (107 bytes); use a shorter state directory",
            path.display()
        )));
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
        .map_err(|e| SandboxError::sys(format!("binding {}", path.display()), e))
}

/// Accepts until shutdown; then gives open connections [`GRACE`] and ends them.
async fn serve<F, Fut>(listener: UnixListener, mut shutdown: watch::Receiver<bool>, handle: F)
where
    F: Fn(UnixStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut open = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    open.spawn(handle(stream));
                }
                // Out of descriptors or similar: do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, async { while open.join_next().await.is_some() {} }).await;
    open.abort_all();
}
