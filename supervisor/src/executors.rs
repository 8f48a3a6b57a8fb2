//! Finding executor binaries: where each adapter's CLI is, what it needs mounted, which
//! version it is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use codencer_adapters::{Adapter, AdapterError};

/// Directories searched for executor binaries: `$CODENCER_EXECUTOR_PATH` first, then `PATH`.
pub fn search_path() -> OsString {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in ["CODENCER_EXECUTOR_PATH", "PATH"] {
        if let Some(value) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&value));
        }
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// An executor binary and the directory tree it needs (read-only) inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub binary: PathBuf,
    /// Its installation outside the system directories (an npm prefix, a venv), if any.
    pub install_root: Option<PathBuf>,
}

/// Finds the adapter's binary, or says how to install it.
pub fn locate(adapter: &dyn Adapter) -> Result<Located, AdapterError> {
    let binary = codencer_adapters::require(adapter, Some(&search_path()))?;
    let install_root = install_root(&binary);
    Ok(Located {
        binary,
        install_root,
    })
}

/// System directories are mounted read-only in every sandbox already.
const SYSTEM: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"];

/// The tree a binary needs: for an npm-installed CLI the whole prefix (its `lib/node_modules`
/// holds the package and sibling platform packages), for a venv the venv, else the
/// binary's own directory.
fn install_root(binary: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let root = real
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "node_modules"))
        .and_then(|modules| modules.parent())
        .map(|lib| {
            if lib.file_name().is_some_and(|n| n == "lib") {
                lib.parent().unwrap_or(lib)
            } else {
                lib
            }
            .to_path_buf()
        })
        .or_else(|| {
            real.ancestors()
                .find(|dir| dir.join("pyvenv.cfg").exists())
                .map(Path::to_path_buf)
        })
        .or_else(|| real.parent().map(Path::to_path_buf))?;
    let mut roots = vec![root];
    // The symlink on PATH may live elsewhere than what it points to (e.g. `prefix/bin`).
    if let Some(dir) = binary.parent() {
        roots.push(dir.to_path_buf());
    }
    roots
        .into_iter()
        .find(|r| !SYSTEM.iter().any(|s| r.starts_with(s)))
}

/// The binary's `--version` output (first line), run with a short timeout.
pub fn version(binary: &Path, args: &[&str]) -> Option<String> {
    if args.is_empty() {
        return None;
    }
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_prefix_is_the_install_root() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("lib/node_modules/@acme/cli/bin");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("cli.js"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let link = dir.path().join("bin/acme");
        std::os::unix::fs::symlink(pkg.join("cli.js"), &link).unwrap();
        assert_eq!(
            install_root(&link),
            Some(std::fs::canonicalize(dir.path()).unwrap())
        );
    }

    #[test]
    fn system_binaries_need_nothing_extra() {
        assert_eq!(install_root(Path::new("/bin/sh")), None);
    }
}
