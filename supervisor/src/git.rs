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

/// Top level of the repository containing `path`, canonical.
pub fn toplevel_blocking(path: &Path) -> Option<PathBuf> {
    let out = std_git(path)
        .args(["rev-parse", "--show-toplevel"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let top = String::from_utf8(out.stdout).ok()?;
    std::fs::canonicalize(top.trim()).ok()
}

/// Commit id that `rev` names in `repo`.
pub fn resolve_commit_blocking(repo: &Path, rev: &str) -> Option<String> {
    let out = std_git(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
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
    let dir = git_text(
        repo,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await?;
    Ok(PathBuf::from(dir))
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

/// Adds a worktree at `path` on a new `branch` starting at `base_commit`; returns the
/// repository's common git dir (the lock lives there, and the sandbox needs it), so callers
/// need not ask git again: every git process is a few milliseconds of an attempt.
pub async fn add_worktree(
    repo: &Path,
    path: &Path,
    branch: &str,
    base_commit: &str,
) -> Result<PathBuf, GitError> {
    let common = common_dir(repo).await?;
    let _lock = RepoLock::acquire(&common).await?;
    git(
        repo,
        [
            OsStr::new("worktree"),
            OsStr::new("add"),
            OsStr::new("--quiet"),
            OsStr::new("-b"),
            OsStr::new(branch),
            path.as_os_str(),
            OsStr::new(base_commit),
        ],
    )
    .await?;
    Ok(common)
}

/// What the executor changed, captured after it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// Commit holding the changes on the attempt branch; `None` when nothing changed.
    pub commit: Option<String>,
    /// `git diff --binary` of the changes against the base, untracked files included.
    pub diff: Vec<u8>,
    pub files: Vec<String>,
    pub insertions: u64,
    pub deletions: u64,
}

/// Stages everything in the worktree (untracked files included), diffs it against
/// `base_commit` and commits it to the worktree's branch, so no executor change is lost.
pub async fn capture(
    worktree: &Path,
    repo: &Path,
    base_commit: &str,
    message: &str,
) -> Result<Capture, GitError> {
    // Ignored files (build output, dependencies) stay in the worktree, kept for evidence,
    // but out of the diff: `.gitignore` is the repository's own statement of what matters.
    git(worktree, ["add", "--all", "--", "."]).await?;
    let diff = git(
        worktree,
        [
            "diff",
            "--cached",
            "--binary",
            "--no-color",
            "--no-ext-diff",
            base_commit,
        ],
    )
    .await?;
    // Paths and line counts from one process: `-z` numstat is `ins\tdel\tpath\0` per file.
    let numstat = git(
        worktree,
        [
            "diff",
            "--cached",
            "--numstat",
            "-z",
            "--no-renames",
            base_commit,
        ],
    )
    .await?;
    let (files, insertions, deletions) = parse_numstat_z(&numstat);

    let mut commit = None;
    if !files.is_empty() || head_moved(worktree, base_commit).await? {
        let common = common_dir(repo).await?;
        let _lock = RepoLock::acquire(&common).await?;
        let staged_changes = git(worktree, ["diff", "--cached", "--quiet"])
            .await
            .is_err();
        if staged_changes {
            git(
                worktree,
                [
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "--allow-empty-message",
                    "-m",
                    message,
                ],
            )
            .await?;
        }
        commit = Some(git_text(worktree, &["rev-parse", "HEAD"]).await?);
    }
    Ok(Capture {
        commit,
        diff,
        files,
        insertions,
        deletions,
    })
}

/// Whether the executor committed by itself (HEAD no longer at the base).
async fn head_moved(worktree: &Path, base_commit: &str) -> Result<bool, GitError> {
    Ok(git_text(worktree, &["rev-parse", "HEAD"]).await? != base_commit)
}

/// Files, insertions and deletions from `git diff --numstat -z --no-renames`: one
/// `ins\tdel\tpath\0` record per file (paths verbatim, never quoted).
fn parse_numstat_z(out: &[u8]) -> (Vec<String>, u64, u64) {
    let mut files = Vec::new();
    let (mut insertions, mut deletions) = (0, 0);
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(3, |b| *b == b'\t');
        // Binary files show `-`; they count as neither.
        let mut count = || {
            parts
                .next()
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        insertions += count();
        deletions += count();
        if let Some(path) = parts.next().filter(|p| !p.is_empty()) {
            files.push(String::from_utf8_lossy(path).into_owned());
        }
    }
    (files, insertions, deletions)
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
mod tests {
    use super::*;

    #[test]
    fn numstat_sums_text_and_skips_binary() {
        assert_eq!(
            parse_numstat_z(b"3\t1\ta.txt\0-\t-\tb.bin\x0010\t0\tdir/c\td.txt\0"),
            (
                vec![
                    "a.txt".to_string(),
                    "b.bin".to_string(),
                    "dir/c\td.txt".to_string()
                ],
                13,
                1
            )
        );
        assert_eq!(parse_numstat_z(b""), (Vec::new(), 0, 0));
    }
}
