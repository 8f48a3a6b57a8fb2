//! The filesystem view: a tmpfs root filled with bind mounts, then `pivot_root`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, pivot_root};

use super::mount::{
    ATTR_NODEV, ATTR_NOSUID, ATTR_RDONLY, bind_fd, build_dev, hide, make_mount_point, mount_err,
    mount_tmpfs, set_attrs,
};
use crate::error::SandboxError;
use crate::spec::SandboxSpec;

/// Where the new root is assembled before `pivot_root` (the host's directory is only
/// covered in the sandbox's own mount namespace).
const STAGE: &str = "/tmp";

const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

/// `/etc` entries the sandbox sees (read-only, symlinks resolved).
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "pki",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
];

/// `/etc` files up to this size are copied into the view rather than bind-mounted: a
/// copy of a small file is cheaper than a mount; a large one (`mime.types`, 70 KiB, took
/// 0.35 ms to copy) is not.
const MAX_COPIED_ETC_FILE: u64 = 16 << 10;

/// Paths of the finished view, by access, for the Landlock rules that mirror it.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// Read-write (and executable) trees.
    pub read_write: Vec<PathBuf>,
    /// Read-only (and executable) trees.
    pub read_only: Vec<PathBuf>,
    /// Trees whose directories may be listed, files not read (the new root: it holds
    /// nothing but our mounts).
    pub list_only: Vec<PathBuf>,
    /// Number of mounts made.
    pub mounts: usize,
}

#[derive(Debug)]
enum Kind {
    Bind { fd: OwnedFd, dir: bool, attrs: u64 },
    Tmpfs { mode: u32, read_only: bool },
    Symlink(PathBuf),
    File(Vec<u8>),
}

#[derive(Debug)]
struct Entry {
    target: PathBuf,
    kind: Kind,
}

/// The host paths the view is made of, resolved and opened (before anything is covered).
#[derive(Debug)]
pub struct Plan {
    entries: Vec<Entry>,
    hidden: Vec<PathBuf>,
    view: View,
    passwd: String,
    group: String,
    tmpfs_bytes: u64,
}

impl Plan {
    /// Resolves and opens everything `spec` exposes.
    pub fn new(spec: &SandboxSpec) -> Result<Self, SandboxError> {
        let mut plan = Plan {
            entries: Vec::new(),
            hidden: Vec::new(),
            view: View::default(),
            passwd: format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n{u}:x:{uid}:{gid}:{u}:{h}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                u = spec.user_name,
                uid = spec.uid,
                gid = spec.gid,
                h = spec.home.display()
            ),
            group: format!(
                "root:x:0:\n{u}:x:{gid}:\nnogroup:x:65534:\n",
                u = spec.user_name,
                gid = spec.gid
            ),
            tmpfs_bytes: spec.tmpfs_bytes,
        };
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => plan.entries.push(Entry {
                    target: path.to_owned(),
                    kind: Kind::Symlink(target),
                }),
                Err(_) if path.is_dir() => plan.bind(path, path, false)?,
                Err(_) => {}
            }
        }
        for name in ETC_ENTRIES {
            plan.etc(name)?;
        }
        plan.view.read_only.push(PathBuf::from("/etc"));
        plan.tmpfs(&spec.home, 0o700);
        plan.tmpfs(Path::new("/tmp"), 0o1777);
        plan.view.read_write.push(spec.home.clone());
        plan.view.read_write.push(PathBuf::from("/tmp"));
        plan.view.read_write.push(PathBuf::from("/dev/shm"));
        let worktree = canonical(&spec.worktree)?;
        plan.bind(&worktree, &worktree, true)?;
        plan.git(spec, &worktree)?;
        for path in &spec.read_only {
            let real = canonical(path)?;
            plan.bind(&real, &real, false)?;
        }
        for path in &spec.read_write {
            let real = canonical(path)?;
            plan.bind(&real, &real, true)?;
        }
        plan.hidden = spec
            .hidden
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        // Parents before children: a mount point inside a mount is created after it.
        plan.entries.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(plan)
    }

    /// An `/etc` entry: small files are copied (cheaper than a mount), directories bound
    /// read-only. Symlinks are followed (e.g. resolv.conf into /run). One open, one fstat
    /// and one read per file: this runs for every entry of every sandbox.
    fn etc(&mut self, name: &str) -> Result<(), SandboxError> {
        let path = Path::new("/etc").join(name);
        // Non-blocking and no controlling tty: opening must have no effect even if an
        // entry is a fifo or a device.
        let Ok(file) = File::options()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
        else {
            return Ok(());
        };
        let meta = file
            .metadata()
            .map_err(|e| SandboxError::sys(format!("stat {}", path.display()), e))?;
        if meta.is_file() && meta.len() <= MAX_COPIED_ETC_FILE {
            let mut content = Vec::with_capacity(meta.len() as usize);
            (&file)
                .take(meta.len())
                .read_to_end(&mut content)
                .map_err(|e| SandboxError::sys(format!("reading {}", path.display()), e))?;
            self.entries.push(Entry {
                target: path,
                kind: Kind::File(content),
            });
            return Ok(());
        }
        self.push_bind(file.into(), meta.is_dir(), &path, false, false);
        Ok(())
    }

    fn tmpfs(&mut self, target: &Path, mode: u32) {
        self.entries.push(Entry {
            target: target.to_owned(),
            kind: Kind::Tmpfs {
                mode,
                read_only: false,
            },
        });
    }

    fn bind(&mut self, source: &Path, target: &Path, writable: bool) -> Result<(), SandboxError> {
        self.bind_at(source, target, writable, true)
    }

    fn bind_at(
        &mut self,
        source: &Path,
        target: &Path,
        writable: bool,
        record: bool,
    ) -> Result<(), SandboxError> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(source)
            .map_err(|e| SandboxError::sys(format!("opening {}", source.display()), e))?;
        let dir = file
            .metadata()
            .map_err(|e| SandboxError::sys(format!("stat {}", source.display()), e))?
            .is_dir();
        self.push_bind(file.into(), dir, target, writable, record);
        Ok(())
    }

    fn push_bind(&mut self, fd: OwnedFd, dir: bool, target: &Path, writable: bool, record: bool) {
        let mut attrs = ATTR_NOSUID | ATTR_NODEV;
        if !writable {
            attrs |= ATTR_RDONLY;
        }
        if record {
            let list = if writable {
                &mut self.view.read_write
            } else {
                &mut self.view.read_only
            };
            list.push(target.to_owned());
        }
        self.entries.push(Entry {
            target: target.to_owned(),
            kind: Kind::Bind { fd, dir, attrs },
        });
    }

    /// The worktree's git metadata: the common dir read-only; writable only what a commit
    /// on the worktree's own branch writes (objects, the branch's ref and log directories,
    /// the worktree's admin dir); the links that say which repository and branch this is
    /// (the worktree's `.git`, the admin dir's `commondir` and `gitdir`) read-only; the
    /// other worktrees' admin dirs hidden; hooks and config read-only.
    fn git(&mut self, spec: &SandboxSpec, worktree: &Path) -> Result<(), SandboxError> {
        let dot_git = worktree.join(".git");
        if dot_git.is_dir() {
            for name in ["hooks", "config"] {
                let path = dot_git.join(name);
                if path.exists() {
                    self.bind(&path, &path, false)?;
                }
            }
        }
        let admin = std::fs::read_to_string(&dot_git)
            .ok()
            .and_then(|s| s.strip_prefix("gitdir:").map(|p| PathBuf::from(p.trim())))
            .and_then(|p| p.canonicalize().ok());
        // The branch's own directory below refs/heads (and logs/refs/heads).
        let branch_dir = spec
            .git_branch
            .as_deref()
            .map(|b| Path::new(b).parent().unwrap_or(Path::new("")).to_owned());
        for git_dir in &spec.git_dirs {
            let common = canonical(git_dir)?;
            self.bind(&common, &common, false)?;
            let objects = common.join("objects");
            if objects.is_dir() {
                self.bind(&objects, &objects, true)?;
            }
            if let Some(dir) = &branch_dir {
                for base in ["refs/heads", "logs/refs/heads"] {
                    let path = common.join(base).join(dir);
                    if path.is_dir() {
                        self.bind(&path, &path, true)?;
                    }
                }
            }
            let worktrees = common.join("worktrees");
            if worktrees.is_dir() {
                self.tmpfs(&worktrees, 0o755);
                if let Some(admin) = admin.as_ref().filter(|a| a.starts_with(&worktrees)) {
                    self.bind(admin, admin, true)?;
                    for name in ["commondir", "gitdir"] {
                        let path = admin.join(name);
                        if path.is_file() {
                            self.bind_at(&path, &path, false, false)?;
                        }
                    }
                    if dot_git.is_file() {
                        self.bind_at(&dot_git, &dot_git, false, false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Builds the view and pivots into it. The process must be in a new mount namespace.
    pub fn enter(self) -> Result<View, SandboxError> {
        let mut view = self.view;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| mount_err(Path::new("/"), e))?;
        let stage = Path::new(STAGE);
        mount_tmpfs(stage, 0o755, self.tmpfs_bytes)?;
        // /etc's copied files are written through one descriptor of the staged directory.
        let etc = staged(Path::new("/etc"));
        make_mount_point(&etc, true)?;
        let etc_dir = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&etc)
            .map_err(|e| SandboxError::sys(format!("opening {}", etc.display()), e))?;
        for entry in &self.entries {
            let target = staged(&entry.target);
            match &entry.kind {
                Kind::Bind { fd, dir, attrs } => {
                    make_mount_point(&target, *dir)?;
                    bind_fd(fd, &target, *attrs)?;
                }
                Kind::Tmpfs { mode, read_only } => {
                    make_mount_point(&target, true)?;
                    mount_tmpfs(&target, *mode, self.tmpfs_bytes)?;
                    if *read_only {
                        set_attrs(&target, ATTR_RDONLY, false)?;
                    }
                }
                Kind::File(content) => {
                    write_new(&etc_dir, &entry.target, content)?;
                    continue;
                }
                Kind::Symlink(to) => {
                    std::os::unix::fs::symlink(to, &target).map_err(|e| {
                        SandboxError::sys(format!("symlink {}", target.display()), e)
                    })?;
                    continue;
                }
            }
            view.mounts += 1;
        }
        build_dev(&staged(Path::new("/dev")), self.tmpfs_bytes)?;
        let proc_dir = staged(Path::new("/proc"));
        make_mount_point(&proc_dir, true)?;
        mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| mount_err(&proc_dir, e))?;
        view.read_only.push(PathBuf::from("/proc"));
        write_new(&etc_dir, Path::new("/etc/passwd"), self.passwd.as_bytes())?;
        write_new(&etc_dir, Path::new("/etc/group"), self.group.as_bytes())?;
        drop(etc_dir);
        for hidden in &self.hidden {
            hide(&staged(hidden), &staged(Path::new("/dev/null")))?;
        }
        set_attrs(stage, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV, false)?;
        chdir(stage).map_err(|e| SandboxError::sys("chdir to new root", e))?;
        pivot_root(".", ".").map_err(|e| SandboxError::PivotRoot {
            path: stage.to_owned(),
            source: e.into(),
        })?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| mount_err(Path::new("old root"), e))?;
        chdir("/").map_err(|e| SandboxError::sys("chdir /", e))?;
        // Everything below the new root is ours; listing it reveals nothing of the host.
        view.list_only.push(PathBuf::from("/"));
        Ok(view)
    }
}

/// The Landlock-only view when no mount namespace is available.
pub fn host_view(spec: &SandboxSpec) -> View {
    let mut ro: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    ro.extend(["/etc", "/proc", "/dev"].map(PathBuf::from));
    ro.extend(spec.read_only.iter().cloned());
    ro.extend(spec.git_dirs.iter().cloned());
    let mut rw = vec![spec.worktree.clone()];
    rw.extend(spec.read_write.iter().cloned());
    View {
        read_write: rw,
        read_only: ro,
        list_only: Vec::new(),
        mounts: 0,
    }
}

/// Creates the file named like `path` in the staged `/etc` (`etc_dir`) with `content`:
/// open, write, close.
fn write_new(etc_dir: &File, path: &Path, content: &[u8]) -> Result<(), SandboxError> {
    let err = |e: nix::Error| SandboxError::sys(format!("writing {}", path.display()), e);
    let name = path.file_name().unwrap_or(path.as_os_str());
    let fd = nix::fcntl::openat(
        etc_dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(err)?;
    File::from(fd)
        .write_all(content)
        .map_err(|e| SandboxError::sys(format!("writing {}", path.display()), e))
}

fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    path.canonicalize()
        .map_err(|e| SandboxError::sys(format!("resolving {}", path.display()), e))
}

fn staged(path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    Path::new(STAGE).join(rel)
}
