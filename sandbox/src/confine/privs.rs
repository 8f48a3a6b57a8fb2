//! Privileges: securebits, capabilities, no_new_privs, session, dumpability, fds.

use caps::CapSet;
use nix::sys::prctl;

use crate::error::SandboxError;
use crate::report::{Enforcement, LayerReport};
use crate::spec::Layer;

// linux/securebits.h
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Locks securebits, empties the bounding, ambient and inheritable sets (needs
/// CAP_SETPCAP, so call it while the namespace capabilities are still held), then sets
/// no_new_privs. Effective and permitted are emptied by [`drop_remaining_caps`].
pub fn lock_down() -> Result<(), SandboxError> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: PR_SET_SECUREBITS takes an integer argument; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } < 0 {
        return Err(SandboxError::sys(
            "PR_SET_SECUREBITS",
            std::io::Error::last_os_error(),
        ));
    }
    caps::clear(None, CapSet::Ambient).map_err(SandboxError::Caps)?;
    drop_bounding_set()?;
    caps::clear(None, CapSet::Inheritable).map_err(SandboxError::Caps)?;
    prctl::set_no_new_privs().map_err(|e| SandboxError::sys("PR_SET_NO_NEW_PRIVS", e))?;
    // Not dumpable: the executor cannot ptrace us or read our /proc entries.
    prctl::set_dumpable(false).map_err(|e| SandboxError::sys("PR_SET_DUMPABLE", e))?;
    Ok(())
}

/// Drops every capability from the bounding set, up to the last one the kernel knows (it
/// answers EINVAL past it): one prctl per capability, where the `caps` crate reads each
/// before dropping it, and only those it knows of.
fn drop_bounding_set() -> Result<(), SandboxError> {
    for cap in 0..=u8::MAX {
        // SAFETY: PR_CAPBSET_DROP takes an integer argument; no memory is passed.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } == 0 {
            continue;
        }
        let err = std::io::Error::last_os_error();
        if cap > 0 && err.raw_os_error() == Some(libc::EINVAL) {
            return Ok(());
        }
        return Err(SandboxError::sys(format!("PR_CAPBSET_DROP {cap}"), err));
    }
    Ok(())
}

/// Empties the effective and permitted sets; nothing can be regained afterwards.
pub fn drop_remaining_caps() -> Result<LayerReport, SandboxError> {
    caps::clear(None, CapSet::Effective).map_err(SandboxError::Caps)?;
    caps::clear(None, CapSet::Permitted).map_err(SandboxError::Caps)?;
    let nnp = prctl::get_no_new_privs().unwrap_or(false);
    let left: usize = [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ]
    .into_iter()
    .map(|set| caps::read(None, set).map(|s| s.len()).unwrap_or(usize::MAX))
    .sum();
    let status = if nnp && left == 0 {
        Enforcement::Enforced
    } else {
        Enforcement::Partial
    };
    Ok(super::layer(
        Layer::Privileges,
        status,
        format!(
            "no_new_privs={nnp}, capabilities left={left}, securebits locked, new session, fds closed, env from spec only"
        ),
    ))
}

/// Closes every descriptor from `first` up.
pub fn close_fds_from(first: u32) -> Result<(), SandboxError> {
    // SAFETY: close_range only closes descriptors; the caller owns none above `first`.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc < 0 {
        return Err(SandboxError::sys(
            "close_range",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
