//! What the supervisor asks for: the process to run and the confinement around it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One process to run inside a sandbox. Handed to `codencer-worker` on a pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Program and arguments; `argv[0]` is resolved against `PATH` from `env` when it has no `/`.
    pub argv: Vec<String>,
    /// Working directory, as seen inside the sandbox (normally the worktree or below it).
    pub cwd: PathBuf,
    /// The complete environment of the process, already filtered by the caller.
    pub env: Vec<(String, String)>,
    /// The confinement.
    pub sandbox: SandboxSpec,
    /// Build the sandbox, then wait for the go byte on [`GO_FD`] before starting the
    /// process (see [`WorkerHandle::take_go`]); end of file there: start nothing. Lets
    /// the caller set a sandbox up while it still works in the worktree.
    ///
    /// [`GO_FD`]: crate::GO_FD
    /// [`WorkerHandle::take_go`]: crate::WorkerHandle::take_go
    #[serde(default)]
    pub hold: bool,
    /// Keep the sandbox after the process: once it and everything it started are gone,
    /// PID 1 reports its exit and waits for further commands on [`CMD_FD`]
    /// ([`WorkerHandle::run_next`]), each run the same way in the same sandbox; end of
    /// file there ends the sandbox. Only with `hold`.
    ///
    /// [`CMD_FD`]: crate::CMD_FD
    /// [`WorkerHandle::run_next`]: crate::WorkerHandle::run_next
    #[serde(default)]
    pub more: bool,
}

/// A further command for a sandbox kept with [`ExecSpec::more`]; its stdout and stderr
/// travel beside it as descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextCommand {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// The confinement around an [`ExecSpec`]. Paths are host paths; they appear at the same
/// place inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxSpec {
    /// Read-write; the executor's whole world.
    pub worktree: PathBuf,
    /// Git common dirs (`<repo>/.git`) the worktree's `.git` file points into. Mounted
    /// read-only; `objects` and this worktree's own admin dir (`worktrees/<name>`) are
    /// writable, and of `refs` and `logs` only the directory of `git_branch`; the worktree's
    /// `.git` link and its admin dir's `commondir` and `gitdir` stay read-only; the other
    /// worktrees' admin dirs are hidden; `config` and `hooks` stay read-only.
    pub git_dirs: Vec<PathBuf>,
    /// The worktree's branch (without `refs/heads/`): its ref directory is the only
    /// writable part of `refs/heads`, so committing works and no other branch can move.
    /// `None`: every ref is read-only.
    pub git_branch: Option<String>,
    /// Extra read-only (and executable) paths, e.g. the executor's install dir.
    pub read_only: Vec<PathBuf>,
    /// Extra read-write paths.
    pub read_write: Vec<PathBuf>,
    /// Paths that must never be visible, even below a mounted path.
    pub hidden: Vec<PathBuf>,
    /// Network access.
    pub network: NetworkSpec,
    /// Host loopback services reachable inside (with `None` or `Proxy`; ignored with
    /// `Host`, where host loopback is reachable anyway).
    pub forwards: Vec<ForwardSpec>,
    /// Resource limits; wall and idle time are the caller's (it calls `WorkerHandle::kill`).
    pub limits: Limits,
    /// Layers that must be enforced or the worker refuses to start the process.
    pub required: Vec<Layer>,
    /// Every layer is required (the `strict` profile).
    pub strict: bool,
    /// Private (tmpfs) home directory inside the sandbox; the caller sets `HOME` to it.
    pub home: PathBuf,
    /// Host name inside the sandbox.
    pub hostname: String,
    /// User name written to the sandbox's `/etc/passwd` for `uid`.
    pub user_name: String,
    /// uid of the process inside; mapped to the caller's uid outside.
    pub uid: u32,
    /// gid of the process inside; mapped to the caller's gid outside.
    pub gid: u32,
    /// Size of each private tmpfs (`/tmp`, home, `/dev/shm`), in bytes.
    pub tmpfs_bytes: u64,
}

impl Default for SandboxSpec {
    fn default() -> Self {
        Self {
            worktree: PathBuf::new(),
            git_dirs: Vec::new(),
            git_branch: None,
            read_only: Vec::new(),
            read_write: Vec::new(),
            hidden: Vec::new(),
            network: NetworkSpec::None,
            forwards: Vec::new(),
            limits: Limits::default(),
            required: Vec::new(),
            strict: false,
            home: PathBuf::from("/home/codencer"),
            hostname: "codencer".to_owned(),
            user_name: "codencer".to_owned(),
            uid: 1000,
            gid: 1000,
            tmpfs_bytes: 512 << 20,
        }
    }
}

impl SandboxSpec {
    /// A spec with defaults around `worktree`.
    pub fn new(worktree: impl Into<PathBuf>) -> Self {
        Self {
            worktree: worktree.into(),
            ..Self::default()
        }
    }

    /// Whether `layer` must be enforced (listed in `required`, or `strict`).
    pub fn requires(&self, layer: Layer) -> bool {
        self.strict || self.required.contains(&layer)
    }
}

/// Network access of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum NetworkSpec {
    /// Empty network namespace with only loopback up; no TCP at all (Landlock).
    #[default]
    None,
    /// The host's network (refused by `strict`: the Network layer is then not enforced).
    Host,
    /// Empty network namespace; the worker bridges `127.0.0.1:<port>` inside to the
    /// allow-list proxy listening on `unix_socket` outside (see [`crate::Egress`]). TCP
    /// connect is allowed to `port` and the forwards' ports only.
    Proxy {
        /// The proxy's unix socket on the host.
        unix_socket: PathBuf,
        /// The loopback port the executor connects to inside.
        port: u16,
    },
}

/// A host loopback service made reachable inside the sandbox at the same address: the
/// worker listens on `addr` in the sandbox's network namespace and relays each connection
/// to `unix_socket`, where the caller relays it on to `addr` on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardSpec {
    /// The loopback address and port, inside and on the host.
    pub addr: SocketAddr,
    /// The caller's relay socket on the host.
    pub unix_socket: PathBuf,
}

/// Resource limits. `None` means not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPU time of each process (`RLIMIT_CPU`: SIGXCPU, then SIGKILL one second later).
    pub cpu_seconds: Option<u64>,
    /// Memory of the whole sandbox (memory cgroup), else address space per process.
    pub memory_bytes: Option<u64>,
    /// Number of processes (tasks) in the sandbox (pids cgroup, else `RLIMIT_NPROC`).
    pub pids: Option<u64>,
    /// Open file descriptors per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Largest file a process may write, including stdout/stderr when they are files
    /// (`RLIMIT_FSIZE`: SIGXFSZ). Output to a pipe is the caller's to cap.
    pub file_size_bytes: Option<u64>,
}

/// A confinement layer, reported and required individually.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// user, mount, pid, net, ipc, uts (and cgroup) namespaces.
    Namespaces,
    /// The bind-mount + `pivot_root` filesystem view.
    Filesystem,
    /// Landlock filesystem, network and scope rules.
    Landlock,
    /// The seccomp deny list.
    Seccomp,
    /// no_new_privs, capabilities, securebits, session, fds.
    Privileges,
    /// Resource limits.
    Limits,
    /// Network isolation.
    Network,
}

impl Layer {
    /// All layers, in report order.
    pub const ALL: [Layer; 7] = [
        Layer::Namespaces,
        Layer::Filesystem,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Privileges,
        Layer::Limits,
        Layer::Network,
    ];

    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Namespaces => "namespaces",
            Layer::Filesystem => "filesystem",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Privileges => "privileges",
            Layer::Limits => "limits",
            Layer::Network => "network",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_json_fills_defaults() {
        let spec: ExecSpec = serde_json::from_str(
            r#"{"argv":["true"],"cwd":"/w","env":[["PATH","/usr/bin"]],"sandbox":{"worktree":"/w"}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.sandbox,
            SandboxSpec {
                worktree: "/w".into(),
                ..SandboxSpec::default()
            }
        );
        assert_eq!(spec.sandbox.network, NetworkSpec::None);
        assert!(!spec.sandbox.requires(Layer::Seccomp));
    }

    #[test]
    fn network_and_layers_wire_format() {
        let net = NetworkSpec::Proxy {
            unix_socket: "/run/p.sock".into(),
            port: 3128,
        };
        assert_eq!(
            serde_json::to_value(&net).unwrap(),
            serde_json::json!({"mode": "proxy", "unix_socket": "/run/p.sock", "port": 3128})
        );
        assert_eq!(
            serde_json::to_value(Layer::Namespaces).unwrap(),
            serde_json::json!("namespaces")
        );
        let spec = SandboxSpec {
            strict: true,
            ..SandboxSpec::new("/w")
        };
        assert!(Layer::ALL.iter().all(|l| spec.requires(*l)));
    }
}
