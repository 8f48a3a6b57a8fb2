//! Resource limits: a per-sandbox cgroup where the host lets us create one, rlimits else.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::error::SandboxError;
use crate::report::{Denial, DenialKind, LimitKind, LimitMechanism, LimitReport};
use crate::spec::Limits;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One cgroup directory created for the sandbox.
#[derive(Debug)]
struct Dir {
    /// The hierarchy's directory the cgroup was made in.
    root: std::path::PathBuf,
    parent: OwnedFd,
    name: String,
    /// v2: `cgroup.procs`, written with PID 1's pid by the worker (v1 hierarchies are
    /// joined by PID 1 itself, through [`Cgroup::tasks`]).
    procs: Option<File>,
    events: Vec<(File, &'static str, DenialKind)>,
}

/// The sandbox's cgroups, created by the worker (in the sandbox's user namespace, where
/// the caller's uid owns what it owned outside) while the sandbox's PID 1 builds the view,
/// and joined by PID 1.
#[derive(Debug, Default)]
pub struct Cgroup {
    dirs: Vec<Dir>,
    /// v1 `tasks` files, written `0` by the sandbox's PID 1 itself.
    tasks: Vec<File>,
    /// The mechanism that enforces the pids limit, if a cgroup does.
    pub pids: Option<LimitMechanism>,
    /// The mechanism that enforces the memory limit, if a cgroup does.
    pub memory: Option<LimitMechanism>,
}

impl Cgroup {
    /// Creates cgroups for the pids and memory limits where the host allows it
    /// (v1 controllers, or a delegated v2 subtree). Failing hosts yield no cgroup.
    pub fn create(limits: &Limits, tag: &str) -> Cgroup {
        let mut cg = Cgroup::default();
        let name = format!("codencer-{tag}");
        if let Some(max) = limits.pids
            && let Some((dir, tasks)) = v1_dir(
                "pids",
                &name,
                &[("pids.max", max)],
                &[("pids.events", "max ", DenialKind::PidsLimit)],
            )
        {
            cg.dirs.push(dir);
            cg.tasks.push(tasks);
            cg.pids = Some(LimitMechanism::CgroupV1);
        }
        if let Some(max) = limits.memory_bytes
            && let Some((dir, tasks)) = v1_dir(
                "memory",
                &name,
                &[("memory.limit_in_bytes", max)],
                &[("memory.oom_control", "oom_kill ", DenialKind::MemoryLimit)],
            )
        {
            cg.dirs.push(dir);
            cg.tasks.push(tasks);
            cg.memory = Some(LimitMechanism::CgroupV1);
        }
        let want_pids = limits.pids.filter(|_| cg.pids.is_none());
        let want_mem = limits.memory_bytes.filter(|_| cg.memory.is_none());
        if (want_pids.is_some() || want_mem.is_some())
            && let Some((mut dir, procs, pids, mem)) = v2_dir(&name, want_pids, want_mem)
        {
            dir.procs = Some(procs);
            cg.dirs.push(dir);
            if pids {
                cg.pids = Some(LimitMechanism::CgroupV2);
            }
            if mem {
                cg.memory = Some(LimitMechanism::CgroupV2);
            }
        }
        cg
    }

    /// Moves process `pid` into every created cgroup that the process cannot join itself
    /// (v2). Moving a whole process waits for an RCU grace period in the kernel (the global
    /// threadgroup rwsem; 5-16 ms here unless cgroups are mounted with `favordynmods`), so
    /// the worker does it while the sandbox's PID 1 is busy building the view.
    pub fn attach(&mut self, pid: u32) -> Result<(), SandboxError> {
        for dir in &mut self.dirs {
            let Some(procs) = &mut dir.procs else {
                continue;
            };
            procs
                .write_all(pid.to_string().as_bytes())
                .map_err(|e| SandboxError::sys(format!("joining cgroup {}", dir.name), e))?;
        }
        Ok(())
    }

    /// Moves the calling thread into every v1 cgroup by writing `0` to its `tasks` file.
    /// A thread moving itself skips the global threadgroup rwsem, so there is no grace
    /// period to wait for (tens of microseconds instead of milliseconds). Only for a
    /// single-threaded process (the sandbox's PID 1): its one thread is the whole process,
    /// and every process it forks afterwards starts in these cgroups.
    pub fn join_self(&mut self) -> Result<(), SandboxError> {
        for tasks in &mut self.tasks {
            tasks
                .write_all(b"0")
                .map_err(|e| SandboxError::sys("joining the sandbox's v1 cgroups", e))?;
        }
        Ok(())
    }

    /// What the sandbox's PID 1 needs to join the cgroups, for [`Cgroup::joiner`]: which
    /// limits a cgroup enforces (two bytes) and the v1 `tasks` files.
    pub fn handoff(&self) -> ([u8; 2], Vec<BorrowedFd<'_>>) {
        (
            [mechanism_code(self.pids), mechanism_code(self.memory)],
            self.tasks.iter().map(AsFd::as_fd).collect(),
        )
    }

    /// PID 1's side of [`Cgroup::handoff`]: joins with [`Cgroup::join_self`]; owns no
    /// directory (the worker removes them).
    pub fn joiner(code: [u8; 2], tasks: Vec<OwnedFd>) -> Cgroup {
        Cgroup {
            dirs: Vec::new(),
            tasks: tasks.into_iter().map(File::from).collect(),
            pids: mechanism_from(code[0]),
            memory: mechanism_from(code[1]),
        }
    }

    /// Removes the `codencer-<pid>` cgroups that workers killed outright left beside
    /// ours (their pid is gone; non-empty ones stay). Off the critical path: call it once
    /// the sandbox runs.
    pub fn reap_stale(&self) {
        for dir in &self.dirs {
            reap_stale(&dir.root);
        }
    }

    /// Denials recorded by the cgroups' event counters.
    pub fn denials(&mut self) -> Vec<Denial> {
        let mut out = Vec::new();
        for dir in &mut self.dirs {
            for (file, key, kind) in &mut dir.events {
                let mut text = String::new();
                if file.rewind().is_err() || file.read_to_string(&mut text).is_err() {
                    continue;
                }
                let count = text
                    .lines()
                    .find_map(|l| l.strip_prefix(*key))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                if count > 0 {
                    out.push(Denial {
                        kind: *kind,
                        detail: format!("{}{count} ({})", key, dir.name),
                    });
                }
            }
        }
        out
    }

    /// Removes the cgroups; call after every process in them is gone.
    pub fn remove(self) {
        for dir in self.dirs {
            for _ in 0..50 {
                match unlinkat(&dir.parent, dir.name.as_str(), UnlinkatFlags::RemoveDir) {
                    Err(nix::errno::Errno::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    _ => break,
                }
            }
        }
    }
}

fn mechanism_code(mechanism: Option<LimitMechanism>) -> u8 {
    match mechanism {
        None => 0,
        Some(LimitMechanism::CgroupV1) => 1,
        Some(LimitMechanism::CgroupV2) => 2,
        Some(LimitMechanism::Rlimit) => 3,
        Some(LimitMechanism::NotEnforced) => 4,
    }
}

fn mechanism_from(code: u8) -> Option<LimitMechanism> {
    match code {
        1 => Some(LimitMechanism::CgroupV1),
        2 => Some(LimitMechanism::CgroupV2),
        3 => Some(LimitMechanism::Rlimit),
        4 => Some(LimitMechanism::NotEnforced),
        _ => None,
    }
}

fn v1_dir(
    controller: &str,
    name: &str,
    settings: &[(&str, u64)],
    events: &[(&'static str, &'static str, DenialKind)],
) -> Option<(Dir, File)> {
    let root = Path::new(CGROUP_ROOT).join(controller);
    if !root.join("cgroup.procs").exists() || root.join("cgroup.controllers").exists() {
        return None;
    }
    make_dir(&root, name, settings, events, "tasks")
}

fn v2_dir(name: &str, pids: Option<u64>, mem: Option<u64>) -> Option<(Dir, File, bool, bool)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mount = [CGROUP_ROOT, "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").exists())?;
    let parent = mount.join(rel.trim_start_matches('/'));
    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
    let has = |c: &str| enabled.split_whitespace().any(|x| x == c);
    let mut settings = Vec::new();
    let mut events = Vec::new();
    let use_pids = pids.is_some() && has("pids");
    let use_mem = mem.is_some() && has("memory");
    if let (Some(max), true) = (pids, use_pids) {
        settings.push(("pids.max", max));
        events.push(("pids.events", "max ", DenialKind::PidsLimit));
    }
    if let (Some(max), true) = (mem, use_mem) {
        settings.push(("memory.max", max));
        settings.push(("memory.swap.max", 0));
        events.push(("memory.events", "oom_kill ", DenialKind::MemoryLimit));
    }
    if settings.is_empty() {
        return None;
    }
    make_dir(&parent, name, &settings, &events, "cgroup.procs")
        .map(|(d, procs)| (d, procs, use_pids, use_mem))
}

/// Removes `codencer-<pid>` cgroups left behind by workers that were killed outright
/// (their pid is gone); non-empty ones stay.
fn reap_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("codencer-")) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

fn make_dir(
    root: &Path,
    name: &str,
    settings: &[(&str, u64)],
    events: &[(&'static str, &'static str, DenialKind)],
    join_file: &str,
) -> Option<(Dir, File)> {
    let parent = open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .ok()?;
    nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)).ok()?;
    let dir = root.join(name);
    let cleanup = |parent: &OwnedFd| {
        let _ = unlinkat(parent, name, UnlinkatFlags::RemoveDir);
    };
    for (file, value) in settings {
        // memory.swap.max is optional (no swap accounting): ignore its failure.
        if std::fs::write(dir.join(file), value.to_string()).is_err() && !file.contains("swap") {
            cleanup(&parent);
            return None;
        }
    }
    let Ok(procs) = File::options().write(true).open(dir.join(join_file)) else {
        cleanup(&parent);
        return None;
    };
    let events = events
        .iter()
        .filter_map(|(file, key, kind)| File::open(dir.join(file)).ok().map(|f| (f, *key, *kind)))
        .collect();
    let dir = Dir {
        root: root.to_owned(),
        parent,
        name: name.to_owned(),
        procs: None,
        events,
    };
    Some((dir, procs))
}

/// Applies the rlimits for the limits no cgroup covers, plus `RLIMIT_CORE=0`, and
/// reports every requested limit's mechanism. `outside_root`: the sandbox's uid is root
/// outside, where the kernel ignores `RLIMIT_NPROC`.
pub fn apply_rlimits(
    limits: &Limits,
    cgroup: &Cgroup,
    outside_root: bool,
) -> Result<Vec<LimitReport>, SandboxError> {
    let set = |res: Resource, soft: u64, hard: u64| {
        setrlimit(res, soft, hard).map_err(|e| SandboxError::sys(format!("setrlimit {res:?}"), e))
    };
    set(Resource::RLIMIT_CORE, 0, 0)?;
    let mut out = Vec::new();
    let mut report = |kind, value, mechanism, detail: &str| {
        out.push(LimitReport {
            kind,
            value,
            mechanism,
            detail: detail.to_owned(),
        });
    };
    if let Some(secs) = limits.cpu_seconds {
        set(Resource::RLIMIT_CPU, secs, secs.saturating_add(1))?;
        report(
            LimitKind::CpuSeconds,
            secs,
            LimitMechanism::Rlimit,
            "per process: SIGXCPU, SIGKILL one second later",
        );
    }
    if let Some(bytes) = limits.memory_bytes {
        match cgroup.memory {
            Some(m) => report(LimitKind::MemoryBytes, bytes, m, "whole sandbox, OOM kill"),
            None => {
                set(Resource::RLIMIT_AS, bytes, bytes)?;
                report(
                    LimitKind::MemoryBytes,
                    bytes,
                    LimitMechanism::Rlimit,
                    "address space per process (no writable memory cgroup)",
                );
            }
        }
    }
    if let Some(n) = limits.pids {
        match cgroup.pids {
            Some(m) => report(LimitKind::Pids, n, m, "whole sandbox"),
            None if outside_root => report(
                LimitKind::Pids,
                n,
                LimitMechanism::NotEnforced,
                "no writable pids cgroup, and RLIMIT_NPROC does not apply to uid 0 outside",
            ),
            None => {
                set(Resource::RLIMIT_NPROC, n, n)?;
                report(
                    LimitKind::Pids,
                    n,
                    LimitMechanism::Rlimit,
                    "RLIMIT_NPROC, counted in the sandbox's user namespace",
                );
            }
        }
    }
    if let Some(n) = limits.open_files {
        set(Resource::RLIMIT_NOFILE, n, n)?;
        report(
            LimitKind::OpenFiles,
            n,
            LimitMechanism::Rlimit,
            "per process",
        );
    }
    if let Some(n) = limits.file_size_bytes {
        set(Resource::RLIMIT_FSIZE, n, n)?;
        report(
            LimitKind::FileSizeBytes,
            n,
            LimitMechanism::Rlimit,
            "per file, incl. stdout/stderr when they are files (SIGXFSZ)",
        );
    }
    Ok(out)
}
