//! The seccomp deny list: what namespaces and Landlock do not cover.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use crate::error::SandboxError;
use crate::report::{Enforcement, LayerReport};
use crate::spec::Layer;

/// Syscalls refused outright with EPERM.
const DENIED: &[libc::c_long] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_personality,
];

/// ioctl requests that push input into a terminal.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// Compiles the filter. Allocates; call it before the final steps.
pub fn build() -> Result<BpfProgram, SandboxError> {
    let arch = target_arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|nr| (*nr, Vec::new())).collect();
    let newuser = libc::CLONE_NEWUSER as u64;
    let flag_rule = |arg: u8| -> Result<SeccompRule, SandboxError> {
        SeccompRule::new(vec![cond(
            arg,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(newuser),
            newuser,
        )?])
        .map_err(SandboxError::SeccompBuild)
    };
    // clone(flags, ...) on x86_64 and aarch64 both take the flags first.
    rules.insert(libc::SYS_clone, vec![flag_rule(0)?]);
    rules.insert(libc::SYS_unshare, vec![flag_rule(0)?]);
    let ioctl_rule = |request: u64| -> Result<SeccompRule, SandboxError> {
        // Compare only the low 32 bits: the kernel truncates the request to an int.
        SeccompRule::new(vec![cond(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            request,
        )?])
        .map_err(SandboxError::SeccompBuild)
    };
    rules.insert(
        libc::SYS_ioctl,
        vec![ioctl_rule(TIOCSTI)?, ioctl_rule(TIOCLINUX)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(SandboxError::SeccompBuild)?;
    let mut program: BpfProgram = filter.try_into().map_err(SandboxError::SeccompBuild)?;
    // clone3 passes its flags in memory, out of a filter's reach: make it look absent so
    // libc falls back to clone(2), which the rule above inspects.
    let clone3 = [
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_clone3 as u32, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    // x32 syscall numbers (bit 30) would bypass every number comparison above.
    let x32 = [
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    // The first three instructions are seccompiler's architecture check.
    let tail = program.split_off(3);
    program.extend(clone3);
    if arch == TargetArch::x86_64 {
        program.extend(x32);
    }
    program.extend(tail);
    Ok(program)
}

/// Installs `program` on the calling thread (and its future children).
/// Requires no_new_privs (or CAP_SYS_ADMIN).
pub fn apply(program: &BpfProgram) -> Result<LayerReport, SandboxError> {
    seccompiler::apply_filter(program).map_err(SandboxError::Seccomp)?;
    Ok(super::layer(
        Layer::Seccomp,
        Enforcement::Enforced,
        format!(
            "{} syscalls denied (EPERM), clone/unshare of user namespaces, TIOCSTI/TIOCLINUX, clone3 as ENOSYS",
            DENIED.len()
        ),
    ))
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(SandboxError::InvalidSpec(format!(
            "seccomp filter not available on {other}"
        ))),
    }
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(SandboxError::SeccompBuild)
}

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_with_the_extra_checks_after_the_arch_check() {
        let program = build().unwrap();
        // seccompiler's arch check (3), then our clone3 check.
        assert_eq!(program[3].code, BPF_LD | BPF_W | BPF_ABS);
        assert_eq!(program[4].k, libc::SYS_clone3 as u32);
        assert!(program.len() < 4096);
    }
}
