//! Landlock rules mirroring the mounted view.

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::fs::View;
use crate::error::SandboxError;
use crate::report::{Enforcement, LayerReport};
use crate::spec::{Layer, NetworkSpec};

/// The newest ABI this code was written and tested against.
pub const TARGET_ABI: ABI = ABI::V7;

/// Restricts the calling process (and its future children) to `view`: read-write beneath
/// `view.read_write`, read/execute beneath `view.read_only`, device files in `/dev`,
/// abstract unix sockets and signals scoped. TCP: with `network: none` inside a network
/// namespace loopback TCP stays usable (test suites start local servers; nothing else is
/// reachable); without a namespace every TCP bind/connect is denied; with a proxy only
/// connecting to its port and to `forward_ports` is allowed. Sets no_new_privs as Landlock
/// requires.
pub fn restrict(
    view: &View,
    network: &NetworkSpec,
    forward_ports: &[u16],
    netns: bool,
) -> Result<LayerReport, SandboxError> {
    let all = AccessFs::from_all(TARGET_ABI);
    let read = AccessFs::from_read(TARGET_ABI);
    let dev = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(SandboxError::Landlock)?
        .scope(Scope::from_all(TARGET_ABI))
        .map_err(SandboxError::Landlock)?;
    let (tcp, ports, net) = match network {
        NetworkSpec::Host => (
            None,
            Vec::new(),
            "tcp unrestricted (host network)".to_owned(),
        ),
        NetworkSpec::None if netns => (
            None,
            Vec::new(),
            "tcp unrestricted inside the empty network namespace (loopback only)".to_owned(),
        ),
        NetworkSpec::None => (
            Some(AccessNet::from_all(TARGET_ABI)),
            Vec::new(),
            "no tcp bind/connect".to_owned(),
        ),
        NetworkSpec::Proxy { port, .. } => {
            let mut ports = vec![*port];
            ports.extend_from_slice(forward_ports);
            let list = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            (
                Some(AccessNet::ConnectTcp.into()),
                ports,
                format!("tcp connect to port {list} only"),
            )
        }
    };
    if let Some(tcp) = tcp {
        ruleset = ruleset.handle_access(tcp).map_err(SandboxError::Landlock)?;
    }
    let mut created = ruleset.create().map_err(SandboxError::Landlock)?;
    let mut rules = 0usize;
    let list = AccessFs::ReadDir.into();
    for (paths, access) in [
        (&view.read_write, all),
        (&view.read_only, read),
        (&view.list_only, list),
    ] {
        for path in paths {
            // A path that vanished is simply not granted.
            let Ok(fd) = PathFd::new(path) else { continue };
            let access = if path.is_dir() {
                access
            } else {
                access & AccessFs::from_file(TARGET_ABI)
            };
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(SandboxError::Landlock)?;
            rules += 1;
        }
    }
    if let Ok(fd) = PathFd::new("/dev") {
        created = created
            .add_rule(PathBeneath::new(fd, dev))
            .map_err(SandboxError::Landlock)?;
        rules += 1;
    }
    for port in ports {
        created = created
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(SandboxError::Landlock)?;
    }
    let status = created.restrict_self().map_err(SandboxError::Landlock)?;
    let (state, what) = match status.ruleset {
        RulesetStatus::FullyEnforced => (Enforcement::Enforced, "fully enforced"),
        RulesetStatus::PartiallyEnforced => (
            Enforcement::Partial,
            "partially enforced (kernel ABI older than the target)",
        ),
        RulesetStatus::NotEnforced => (Enforcement::NotEnforced, "not supported by this kernel"),
    };
    Ok(super::layer(
        Layer::Landlock,
        state,
        format!(
            "{what}: {rules} path rules, {net}, abstract unix sockets and signals scoped, {:?}",
            status.landlock
        ),
    ))
}
