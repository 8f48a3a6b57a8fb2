//! The daemon's configuration: built-in defaults < a TOML file < environment < flags.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `orchestratord` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";
/// Runs executing at once when nothing says otherwise; more wait in the queue.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 4;

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    /// `host:port` to listen on (`None`: no TCP, e.g. only a unix socket).
    pub listen: Option<String>,
    pub socket: Option<PathBuf>,
    pub max_concurrent_runs: usize,
    pub log_json: bool,
    /// Acknowledges a non-loopback `listen` (behind a TLS-terminating proxy, see
    /// docs/deployment.md). Without it such a bind is refused.
    pub allow_remote: bool,
    /// Extra `Host` names the MCP endpoint accepts (a proxy's public name).
    pub public_hosts: Vec<String>,
    /// Write the bound URL here once listening (for scripts that listen on port 0).
    pub addr_file: Option<PathBuf>,
    /// On SIGTERM/SIGINT, how long running attempts may go on before they are killed
    /// (recorded `interrupted`; their runs go on at the next start).
    pub grace: std::time::Duration,
}

/// The file's shape (`$CODENCER_CONFIG/daemon.toml` or `--config`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    pub state_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub socket: Option<PathBuf>,
    pub max_concurrent_runs: Option<usize>,
    pub log_json: Option<bool>,
    pub allow_remote: Option<bool>,
    #[serde(default)]
    pub public_hosts: Vec<String>,
}

/// Why the configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid daemon config", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("`listen = {0}` is not host:port (e.g. 127.0.0.1:8750)")]
    BadListen(String),
    #[error(
        "refusing to listen on non-loopback {0}: put a TLS-terminating proxy in front (docs/deployment.md) and pass --allow-remote"
    )]
    Remote(String),
    #[error("nothing to listen on: give --listen or --socket")]
    NoListener,
}

impl DaemonFile {
    pub fn load(path: &Path) -> Result<DaemonFile, DaemonConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| DaemonConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| DaemonConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl DaemonConfig {
    /// Checks what a listener may be.
    pub fn validate(&self) -> Result<(), DaemonConfigError> {
        if self.listen.is_none() && self.socket.is_none() {
            return Err(DaemonConfigError::NoListener);
        }
        if let Some(listen) = &self.listen {
            let addr: SocketAddr = listen
                .parse()
                .or_else(|_| {
                    // `localhost:PORT`
                    listen
                        .strip_prefix("localhost:")
                        .and_then(|p| p.parse::<u16>().ok())
                        .map(|p| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), p))
                        .ok_or(())
                })
                .map_err(|()| DaemonConfigError::BadListen(listen.clone()))?;
            if !addr.ip().is_loopback() && !self.allow_remote {
                return Err(DaemonConfigError::Remote(listen.clone()));
            }
        }
        Ok(())
    }

    /// `Host` values the MCP endpoint accepts: loopback names, the listen address, and the
    /// configured public names.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if let Some(listen) = &self.listen
            && let Some((host, _)) = listen.rsplit_once(':')
        {
            hosts.push(host.trim_matches(['[', ']']).to_string());
        }
        hosts.extend(self.public_hosts.iter().cloned());
        hosts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(listen: &str, allow_remote: bool) -> DaemonConfig {
        DaemonConfig {
            state_dir: PathBuf::from("/tmp/x"),
            listen: Some(listen.into()),
            socket: None,
            max_concurrent_runs: 4,
            log_json: false,
            allow_remote,
            public_hosts: Vec::new(),
            addr_file: None,
            grace: std::time::Duration::from_secs(10),
        }
    }

    #[test]
    fn loopback_is_fine_remote_needs_acknowledging() {
        assert!(config("127.0.0.1:0", false).validate().is_ok());
        assert!(config("localhost:8750", false).validate().is_ok());
        assert!(matches!(
            config("0.0.0.0:8750", false).validate(),
            Err(DaemonConfigError::Remote(_))
        ));
        assert!(config("0.0.0.0:8750", true).validate().is_ok());
        assert!(matches!(
            config("nonsense", false).validate(),
            Err(DaemonConfigError::BadListen(_))
        ));
    }

    #[test]
    fn file_parses_and_refuses_unknown_keys() {
        let f: DaemonFile =
            toml::from_str("listen = \"127.0.0.1:9\"\nmax_concurrent_runs = 8\n").unwrap();
        assert_eq!(f.max_concurrent_runs, Some(8));
        assert!(toml::from_str::<DaemonFile>("lisen = 1").is_err());
    }
}
