//! The executor's side of the last fork: restore signals and exec.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use codencer_sandbox::ExecSpec;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::{AccessFlags, access};

/// The exec arguments, built before the fork.
#[derive(Debug)]
pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// Resolves `argv[0]` against the spec's `PATH` and encodes everything for execve.
pub fn prepare(exec: &ExecSpec) -> Result<Prepared, String> {
    prepare_command(&exec.argv, &exec.env)
}

/// [`prepare`] for a command given apart from a spec (a kept sandbox's next command).
pub fn prepare_command(argv: &[String], env: &[(String, String)]) -> Result<Prepared, String> {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| "NUL byte in argv or env".to_owned());
    let Some(program) = argv.first() else {
        return Err("argv is empty".to_owned());
    };
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        let search = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        search
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .find(|p| access(p, AccessFlags::X_OK).is_ok())
            .ok_or_else(|| format!("{program}: not found in PATH={search} inside the sandbox"))?
    };
    Ok(Prepared {
        path: cstr(path.as_os_str().as_bytes())?,
        argv: argv
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_, _>>()?,
        env: env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
            .collect::<Result<_, _>>()?,
    })
}

/// In the forked child: default signal handling, own process group, exec.
pub fn exec(prepared: &Prepared) -> ! {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGPIPE, Signal::SIGXFSZ, Signal::SIGXCPU] {
        // SAFETY: installing SIG_DFL runs no handler code.
        let _ = unsafe { sigaction(sig, &default) };
    }
    let _ = SigSet::all().thread_unblock();
    let _ = nix::unistd::setsid();
    let err = match nix::unistd::execve(&prepared.path, &prepared.argv, &prepared.env) {
        Err(err) => err,
        Ok(never) => match never {},
    };
    let _ = writeln!(
        std::io::stderr(),
        "codencer-worker: exec {}: {err}",
        prepared.path.to_string_lossy()
    );
    std::process::exit(127)
}
