//! Git, through the git CLI: worktrees, diffs, commits on attempt branches.
//!
//! Mutations of a repository's shared metadata (worktree list, refs) are serialised by a
//! per-repository lock ([`RepoLock`]): an advisory file lock in the repository's common git
//! dir, so two Codencer processes on one repository queue instead of failing on git's own
//! lock files. The user's checkout and index are never touched: every command runs in the
//! attempt's worktree or names refs explicitly.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

mod capture;
mod worktree;

pub use capture::{Capture, capture};
pub use worktree::{AttemptTree, create_worktree};

/// Errors running git.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    #[error("could not run git (is git installed?)")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: String,
        stderr: String,
    },
    #[error("could not lock the repository at {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not {what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not restore the worktree's git link {path}")]
    Restore {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the worktree {worktree} is not registered in {common} (its git link was removed or rewritten)"
    )]
    NotAWorktree { worktree: String, common: String },
}

impl GitError {
    /// A file operation on `path` failed: `map_err(GitError::io("create ...", path))`.
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError {
        let path = path.display().to_string();
        move |source| GitError::Io { what, path, source }
    }
}

/// Configuration every git command gets: no user hooks, no signing prompts, a fixed author.
const GIT_CONFIG: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "user.name=codencer",
    "-c",
    "user.email=codencer@localhost",
    "-c",
    "core.autocrlf=false",
    "-c",
    "safe.directory=*",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "core.fsmonitor=false",
];

fn std_git(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(dir).args(GIT_CONFIG);
    scrub_env_std(&mut cmd);
    cmd
}

fn scrub_env_std(cmd: &mut std::process::Command) {
    for var in GIT_ENV_SCRUB {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0");
}

/// Variables that would point git somewhere else than the directory we name.
const GIT_ENV_SCRUB: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

/// What one `git rev-parse` says about the repository containing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFacts {
    /// Top level of the repository, canonical.
    pub toplevel: PathBuf,
    /// The repository's common git dir (shared by all its worktrees), absolute.
    pub common_dir: PathBuf,
    /// The commit the asked revision names; `None` when it names none.
    pub commit: Option<String>,
}

/// The repository containing `path` and the commit `rev` names there, from one git
/// process (every git process is a few milliseconds of a run); `None` when `path` is not
/// in a git repository. Remembers the common git dir for [`common_dir`].
pub fn inspect_blocking(path: &Path, rev: &str) -> Option<RepoFacts> {
    let facts = inspect_from_files(path, rev).or_else(|| inspect_with_git(path, rev))?;
    remember_common_dir(&facts.toplevel, &facts.common_dir);
    Some(facts)
}

fn inspect_with_git(path: &Path, rev: &str) -> Option<RepoFacts> {
    let out = std_git(path)
        .args([
            "rev-parse",
            "--path-format=absolute",
            "--show-toplevel",
            "--git-common-dir",
            "--verify",
            "--quiet",
            "--end-of-options",
        ])
        .arg(format!("{rev}^{{commit}}"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // 0: all three lines; 1: the revision names no commit (the two paths still printed);
    // anything else: not a repository.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let toplevel = std::fs::canonicalize(lines.next()?).ok()?;
    let common_dir = PathBuf::from(lines.next()?);
    let commit = out
        .status
        .success()
        .then(|| lines.next().map(str::to_owned))
        .flatten();
    Some(RepoFacts {
        toplevel,
        common_dir,
        commit,
    })
}

/// Whether the repository whose git dir is `git_dir` has a config that leaves the work
/// tree, the bareness, the ref storage and the checkout alone: no `core.worktree`,
/// `extensions.worktreeConfig`, `extensions.refStorage`, `[include]`, `core.bare = true`
/// or sparse checkout (checked by key, in any section, so a false positive only means git
/// is asked). Then what git would read or write for the supervisor is plain files.
fn plain_config(git_dir: &Path) -> bool {
    let Ok(config) = std::fs::read_to_string(git_dir.join("config")) else {
        return false;
    };
    !config.lines().any(|line| {
        let line = line.trim().to_ascii_lowercase();
        let value = line.split_once('=').map(|(_, v)| v.trim());
        ["worktree", "refstorage", "[include", "sparsecheckout"]
            .iter()
            .any(|key| line.starts_with(key))
            || (line.starts_with("bare") && value != Some("false"))
    })
}

/// What [`inspect_blocking`] asks git, read from the files instead, for the common case
/// only: `path` is the top level of a repository whose `.git` is a directory, whose config
/// leaves the work tree, the bareness and the ref storage alone, and `rev` is `HEAD`, on a
/// branch held in a loose ref or detached. `None` for anything else (a packed ref, a linked
/// worktree, a subdirectory, an unborn branch, another revision): then git decides. The
/// object itself is not read; a ref naming a missing commit fails the worktree's creation.
fn inspect_from_files(path: &Path, rev: &str) -> Option<RepoFacts> {
    if rev != "HEAD" {
        return None;
    }
    let toplevel = std::fs::canonicalize(path).ok()?;
    let git_dir = toplevel.join(".git");
    if !std::fs::symlink_metadata(&git_dir).ok()?.is_dir() || git_dir.join("commondir").exists() {
        return None;
    }
    if !plain_config(&git_dir) {
        return None;
    }
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let commit = match head.strip_prefix("ref: ") {
        Some(name) => {
            let name = name.strip_suffix('\n')?;
            if !name.starts_with("refs/heads/")
                || name.split('/').any(|c| c.is_empty() || c == "..")
            {
                return None;
            }
            read_object_id(&git_dir.join(name))?
        }
        None => read_object_id(&git_dir.join("HEAD"))?,
    };
    Some(RepoFacts {
        toplevel,
        common_dir: git_dir,
        commit: Some(commit),
    })
}

/// Common git dirs already asked for, by repository top level: they do not change while
/// a process runs, and asking git costs a process.
fn common_dirs() -> &'static std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>> {
    static DIRS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>>,
    > = std::sync::OnceLock::new();
    DIRS.get_or_init(Default::default)
}

fn remember_common_dir(repo: &Path, common: &Path) {
    common_dirs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(repo.to_owned(), common.to_owned());
}

/// Runs `git -C dir args...` and returns stdout.
pub async fn git<I, S>(dir: &Path, args: I) -> Result<Vec<u8>, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(GIT_CONFIG).args(&args);
    for var in GIT_ENV_SCRUB {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            dir: dir.display().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

async fn git_text(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git(dir, args).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// The repository's common git dir (shared by all its worktrees), absolute.
pub async fn common_dir(repo: &Path) -> Result<PathBuf, GitError> {
    let known = common_dirs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(repo)
        .filter(|dir| dir.is_dir())
        .cloned();
    if let Some(dir) = known {
        return Ok(dir);
    }
    let dir = PathBuf::from(
        git_text(
            repo,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .await?,
    );
    remember_common_dir(repo, &dir);
    Ok(dir)
}

/// Commit id `rev` resolves to.
pub async fn resolve_commit(repo: &Path, rev: &str) -> Result<String, GitError> {
    git_text(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .await
}

/// A held per-repository lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

impl RepoLock {
    /// Waits for the repository's lock (`<common git dir>/codencer.lock`).
    pub async fn acquire(common_dir: &Path) -> Result<RepoLock, GitError> {
        let path = common_dir.join("codencer.lock");
        let shown = path.display().to_string();
        let lock_err = |source| GitError::Lock {
            path: shown.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        // A blocking flock in a blocking thread: waits as long as another run holds it.
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|join| lock_err(std::io::Error::other(join)))?
            .map_err(lock_err)?;
        Ok(RepoLock { _file: file })
    }
}

/// An object id in a ref file: 40 or 64 hex digits and a newline, nothing else; `None`
/// for anything else (a symbolic ref, a symlink, a missing file) so the caller asks git.
fn read_object_id(path: &Path) -> Option<String> {
    use std::io::Read;
    // Only a plain file: no process of the attempt is left to swap it after this check.
    if !std::fs::symlink_metadata(path).ok()?.file_type().is_file() {
        return None;
    }
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(80)
        .read_to_string(&mut text)
        .ok()?;
    let id = text.strip_suffix('\n')?;
    (matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id.to_owned())
}

/// Removes a worktree (its branch stays).
pub async fn remove_worktree(repo: &Path, path: &Path) -> Result<(), GitError> {
    let common = common_dir(repo).await?;
    let _lock = RepoLock::acquire(&common).await?;
    git(
        repo,
        [
            OsStr::new("worktree"),
            OsStr::new("remove"),
            OsStr::new("--force"),
            path.as_os_str(),
        ],
    )
    .await?;
    Ok(())
}

/// Deletes a branch.
pub async fn delete_branch(repo: &Path, branch: &str) -> Result<(), GitError> {
    let common = common_dir(repo).await?;
    let _lock = RepoLock::acquire(&common).await?;
    git(repo, ["branch", "--quiet", "-D", branch]).await?;
    Ok(())
}

/// Forgets worktrees whose directories are gone.
pub async fn prune_worktrees(repo: &Path) -> Result<(), GitError> {
    let common = common_dir(repo).await?;
    let _lock = RepoLock::acquire(&common).await?;
    git(repo, ["worktree", "prune"]).await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_repo;

#[cfg(test)]
mod tests {
    use super::test_repo::{repo_with_commit, sh_git};
    use super::*;

    #[test]
    fn the_files_say_what_git_says_or_leave_it_to_git() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, base) = repo_with_commit(tmp.path());
        let agree = |path: &Path| {
            let fast = inspect_from_files(path, "HEAD").expect("read from the files");
            assert_eq!(Some(&fast), inspect_with_git(path, "HEAD").as_ref());
            assert_eq!(fast.commit.as_deref(), Some(base.as_str()));
        };
        // On a branch, through a relative-looking path; then detached.
        agree(&repo.join("../repo"));
        sh_git(&repo, &["checkout", "-q", "--detach"]);
        agree(&repo);
        sh_git(&repo, &["checkout", "-q", "main"]);

        // Everything else is git's: another revision, a subdirectory, a packed ref, a linked
        // worktree, a moved work tree, an unborn branch.
        assert_eq!(inspect_from_files(&repo, "main"), None);
        std::fs::create_dir(repo.join("sub")).unwrap();
        assert_eq!(inspect_from_files(&repo.join("sub"), "HEAD"), None);
        let linked = tmp.path().join("linked");
        sh_git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                linked.to_str().unwrap(),
            ],
        );
        assert_eq!(inspect_from_files(&linked, "HEAD"), None);
        sh_git(&repo, &["config", "core.worktree", repo.to_str().unwrap()]);
        assert_eq!(inspect_from_files(&repo, "HEAD"), None);
        sh_git(&repo, &["config", "--unset", "core.worktree"]);
        agree(&repo);
        sh_git(&repo, &["pack-refs", "--all"]);
        assert_eq!(inspect_from_files(&repo, "HEAD"), None);
        assert_eq!(
            inspect_blocking(&repo, "HEAD").and_then(|f| f.commit),
            Some(base)
        );
        let unborn = tmp.path().join("unborn");
        std::fs::create_dir(&unborn).unwrap();
        sh_git(&unborn, &["init", "-q", "-b", "main"]);
        assert_eq!(inspect_from_files(&unborn, "HEAD"), None);
    }
}
