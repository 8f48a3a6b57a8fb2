//! Mount primitives for the filesystem view: tmpfs, fd-sourced binds with
//! `mount_setattr`, the minimal `/dev`, hiding.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::error::SandboxError;

const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

pub(super) const ATTR_RDONLY: u64 = 0x1;
pub(super) const ATTR_NOSUID: u64 = 0x2;
pub(super) const ATTR_NODEV: u64 = 0x4;
pub(super) const ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

pub(super) fn mount_err(path: &Path, e: nix::Error) -> SandboxError {
    SandboxError::Mount {
        path: path.to_owned(),
        source: e.into(),
    }
}

pub(super) fn make_mount_point(path: &Path, dir: bool) -> Result<(), SandboxError> {
    let err = |e| SandboxError::sys(format!("creating mount point {}", path.display()), e);
    if dir {
        return std::fs::create_dir_all(path).map_err(err);
    }
    // Usually the parent exists and the file does not: one open.
    let create = || File::options().write(true).create_new(true).open(path);
    match create() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(err)?;
            }
            create().map(drop).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

pub(super) fn mount_tmpfs(target: &Path, mode: u32, bytes: u64) -> Result<(), SandboxError> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("mode={mode:o},size={bytes}").as_str()),
    )
    .map_err(|e| mount_err(target, e))
}

pub(super) fn bind_fd(fd: &OwnedFd, target: &Path, attrs: u64) -> Result<(), SandboxError> {
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| mount_err(target, e))?;
    set_attrs(target, attrs, true)
}

/// mount_setattr(2): unlike a remount it needs no knowledge of the locked flags, and it
/// covers submounts with `AT_RECURSIVE`.
pub(super) fn set_attrs(target: &Path, attrs: u64, recursive: bool) -> Result<(), SandboxError> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| SandboxError::InvalidSpec(format!("NUL in {}", target.display())))?;
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: path is a valid C string and attr a properly sized mount_attr that outlive
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(SandboxError::Mount {
            path: target.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

pub(super) fn build_dev(dev: &Path, bytes: u64) -> Result<(), SandboxError> {
    make_mount_point(dev, true)?;
    mount_tmpfs(dev, 0o755, 1 << 20)?;
    for name in DEV_NODES {
        let host = Path::new("/dev").join(name);
        let Ok(file) = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&host)
        else {
            continue;
        };
        let target = dev.join(name);
        make_mount_point(&target, false)?;
        bind_fd(&file.into(), &target, ATTR_NOSUID | ATTR_NOEXEC)?;
    }
    let pts = dev.join("pts");
    make_mount_point(&pts, true)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(|e| mount_err(&pts, e))?;
    let shm = dev.join("shm");
    make_mount_point(&shm, true)?;
    mount_tmpfs(&shm, 0o1777, bytes)?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| SandboxError::sys(format!("symlink /dev/{link}"), e))?;
    }
    Ok(())
}

/// Covers an existing path: an empty read-only tmpfs over a directory, `/dev/null` over a
/// file.
pub(super) fn hide(path: &Path, dev_null: &Path) -> Result<(), SandboxError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        mount_tmpfs(path, 0o000, 4096)?;
        return set_attrs(path, ATTR_RDONLY | ATTR_NOEXEC, false);
    }
    let null = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(dev_null)
        .map_err(|e| SandboxError::sys("opening /dev/null", e))?;
    bind_fd(&null.into(), path, ATTR_RDONLY | ATTR_NOEXEC | ATTR_NOSUID)
}
