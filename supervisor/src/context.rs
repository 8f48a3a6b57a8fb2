//! What every actor of one supervisor shares: the record, the state dir, cancellation, the
//! policy actor, and how to confine a process.

use std::path::{Path, PathBuf};

use codencer_policy::{
    EffectivePolicy, Enforcement as PolicyEnforcement, HostLayers, NetworkMode, SandboxLayer,
    SecretSource,
};
use codencer_sandbox::{Enforcement, HostReport, Layer, Limits, NetworkSpec, SandboxSpec};
use codencer_store::AttemptStatus;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::actors::policy::{PolicyCheck, PolicyMsg, PolicyVerdict};
use crate::record::Recorder;
use crate::supervisor_error::SupervisorError;

/// Shared by the actors of one supervisor (behind an `Arc`).
#[derive(Debug)]
pub struct Context {
    pub recorder: Recorder,
    pub state_dir: PathBuf,
    /// Flips to `true` on cancellation (an API cancel; SIGINT/SIGTERM once the grace
    /// period is over): running processes are killed.
    pub cancel: watch::Receiver<bool>,
    /// Whether new attempts and steps may start (SIGINT/SIGTERM drain).
    pub stop: watch::Receiver<Stop>,
    pub policy: ActorRef<PolicyMsg>,
    /// The `codencer-worker` binary.
    pub worker: PathBuf,
}

/// Whether the supervisor is stopping: on SIGINT/SIGTERM no new attempt or step starts,
/// running attempts get a grace period, then they are cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stop {
    /// Business as usual.
    #[default]
    Go,
    /// `codencer run`: the run ends `cancelled` once its running attempt ends.
    Drain,
    /// The daemon: runs are left unfinished (attempts killed after the grace period are
    /// recorded `interrupted`) and go on at its next start.
    Suspend,
}

/// Where `codencer-worker` is: `$CODENCER_WORKER`, else beside the running binary.
pub fn worker_binary() -> Result<PathBuf, SupervisorError> {
    if let Some(path) = std::env::var_os("CODENCER_WORKER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| {
        SupervisorError::io("find the running binary", Path::new("/proc/self/exe"), e)
    })?;
    let worker = exe.with_file_name("codencer-worker");
    if !worker.exists() {
        return Err(SupervisorError::Infrastructure(format!(
            "codencer-worker not found at {} (install it beside codencer, or set CODENCER_WORKER)",
            worker.display()
        )));
    }
    Ok(worker)
}

/// What this host can enforce, in the policy's terms.
pub fn host_layers(report: &HostReport) -> HostLayers {
    let mut layers = HostLayers::new();
    for host in &report.layers {
        let enforcement = match host.status {
            Enforcement::Enforced => PolicyEnforcement::Enforced,
            Enforcement::Partial => PolicyEnforcement::Partial,
            Enforcement::NotEnforced => PolicyEnforcement::NotEnforced,
        };
        layers.set(policy_layer(host.layer), enforcement);
    }
    layers
}

fn policy_layer(layer: Layer) -> SandboxLayer {
    match layer {
        Layer::Namespaces => SandboxLayer::Namespaces,
        Layer::Filesystem => SandboxLayer::Root,
        Layer::Landlock => SandboxLayer::Landlock,
        Layer::Seccomp => SandboxLayer::Seccomp,
        Layer::Privileges => SandboxLayer::Privileges,
        Layer::Limits => SandboxLayer::Limits,
        Layer::Network => SandboxLayer::Network,
    }
}

fn sandbox_layer(layer: SandboxLayer) -> Option<Layer> {
    Some(match layer {
        SandboxLayer::Namespaces => Layer::Namespaces,
        SandboxLayer::Root => Layer::Filesystem,
        SandboxLayer::Landlock => Layer::Landlock,
        SandboxLayer::Seccomp => Layer::Seccomp,
        SandboxLayer::Privileges => Layer::Privileges,
        SandboxLayer::Limits => Layer::Limits,
        SandboxLayer::Network => Layer::Network,
        _ => return None,
    })
}

impl Context {
    /// Whether (and how) the supervisor is stopping.
    pub fn stopping(&self) -> Stop {
        *self.stop.borrow()
    }

    /// How an attempt whose processes were killed by a cancel ends: `killed`, or
    /// `interrupted` when the daemon suspends its runs for its next start.
    pub fn cancelled_status(&self) -> (AttemptStatus, &'static str) {
        match self.stopping() {
            Stop::Suspend => (
                AttemptStatus::Interrupted,
                "the daemon stopped and its grace period ran out; the run goes on at its next start",
            ),
            Stop::Go | Stop::Drain => (AttemptStatus::Killed, "cancelled"),
        }
    }

    /// `<state>/worktrees/<run>/<step>-<attempt>`.
    pub fn worktree_dir(&self, run_id: &str, step_index: u32, attempt: u32) -> PathBuf {
        self.state_dir
            .join("worktrees")
            .join(run_id)
            .join(format!("{step_index}-{attempt}"))
    }

    /// Per-attempt scratch space outside the worktree (output files, private home).
    pub fn scratch_dir(&self, attempt_id: &str) -> Result<PathBuf, SupervisorError> {
        let dir = self.state_dir.join("attempts").join(attempt_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SupervisorError::io("create the attempt's scratch directory", &dir, e))?;
        Ok(dir)
    }

    /// The environment an executor or validator starts from: nothing of the operator's
    /// but a standard PATH, locale and the variables policy passes; a private HOME.
    pub fn base_env(&self, home: &Path, policy: &EffectivePolicy) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("HOME".to_string(), home.display().to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("TERM".to_string(), "dumb".to_string()),
            ("CODENCER".to_string(), "1".to_string()),
        ];
        let values = policy.values();
        for name in &values.env.pass {
            if let Ok(value) = std::env::var(name) {
                env.retain(|(k, _)| k != name);
                env.push((name.clone(), value));
            }
        }
        for (name, value) in &values.env.set {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value.clone()));
        }
        if let Some(name) = &values.env.config_home {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), home.display().to_string()));
        }
        // Secrets are read now, for this executor only, and never recorded.
        for (name, source) in &values.env.secrets {
            let value = match source {
                SecretSource::File(path) => std::fs::read_to_string(path)
                    .ok()
                    .map(|v| v.trim_end_matches('\n').to_string()),
                SecretSource::Env(var) => std::env::var(var).ok(),
                _ => None,
            };
            match value {
                Some(value) => {
                    env.retain(|(k, _)| k != name);
                    env.push((name.clone(), value));
                }
                None => tracing::warn!(secret = %name, "policy secret unavailable; not set"),
            }
        }
        env
    }

    /// The confinement of an attempt's processes, from its effective policy.
    pub fn sandbox_spec(
        &self,
        tree: &crate::git::AttemptTree,
        home: &Path,
        policy: &EffectivePolicy,
    ) -> SandboxSpec {
        let values = policy.values();
        let mut read_write = values.filesystem.read_write.clone();
        read_write.push(home.to_path_buf());
        SandboxSpec {
            git_dirs: vec![tree.common.clone()],
            git_branch: Some(tree.branch.clone()),
            read_only: values.filesystem.read_only.clone(),
            read_write,
            hidden: values.filesystem.hidden.clone(),
            network: match values.network.mode {
                NetworkMode::Host => NetworkSpec::Host,
                // `allow` and `forward` are wired by the attempt's egress (the proxy and
                // relays it starts, see attempt/network.rs); without it: no network.
                _ => NetworkSpec::None,
            },
            limits: Limits {
                cpu_seconds: values.limits.cpu.map(|d| d.as_secs().max(1)),
                memory_bytes: values.limits.memory,
                pids: values.limits.pids,
                open_files: values.limits.open_files,
                file_size_bytes: values.limits.output,
            },
            required: values
                .required_layers
                .iter()
                .filter_map(|l| sandbox_layer(*l))
                .collect(),
            strict: values.strict,
            ..SandboxSpec::new(&tree.worktree)
        }
    }

    /// Asks the policy actor.
    pub async fn policy_check(&self, check: PolicyCheck) -> Result<PolicyVerdict, SupervisorError> {
        ractor::call!(self.policy, PolicyMsg::Check, check)
            .map_err(|err| SupervisorError::Actor(format!("policy actor did not answer: {err}")))
    }
}
