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
    let config = std::fs::read_to_string(git_dir.join("config")).ok()?;
    let unusual = config.lines().any(|line| {
        let line = line.trim().to_ascii_lowercase();
        let value = line.split_once('=').map(|(_, v)| v.trim());
        ["worktree", "refstorage", "[include"]
            .iter()
            .any(|key| line.starts_with(key))
            || (line.starts_with("bare") && value != Some("false"))
    });
    if unusual {
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

/// An attempt's worktree and the git files that decide what git does in it, as the
/// supervisor created them. The executor can rewrite anything in its worktree (the `.git`
/// link included) and in its admin dir, so none of it is read back to decide where git
/// writes: [`AttemptTree::restore`] puts it back before the supervisor runs git there,
/// and the supervisor names the git dir and work tree explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTree {
    pub worktree: PathBuf,
    /// The repository's common git dir.
    pub common: PathBuf,
    /// The worktree's own git dir (`<common>/worktrees/<name>`: HEAD, index).
    pub admin: PathBuf,
    /// The attempt's branch (without `refs/heads/`).
    pub branch: String,
    /// The worktree's `.git` as the admin dir's `gitdir` names it (git writes it resolved).
    pub back_link: PathBuf,
}

impl AttemptTree {
    /// Finds the admin dir of an existing attempt worktree by the `gitdir` back-links of
    /// the repository's worktrees (used on resume, when the creation is long past).
    pub async fn find(repo: &Path, worktree: &Path, branch: &str) -> Result<AttemptTree, GitError> {
        let common = common_dir(repo).await?;
        // Compared canonical: git writes the real path.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        let link = real(worktree).join(".git");
        let admin = std::fs::read_dir(common.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find_map(|admin| {
                let back = std::fs::read_to_string(admin.join("gitdir")).ok()?;
                let back = PathBuf::from(back.trim());
                (back.parent().map(real).map(|p| p.join(".git")).as_ref() == Some(&link))
                    .then_some((admin, back))
            });
        let Some((admin, back_link)) = admin else {
            return Err(GitError::NotAWorktree {
                worktree: worktree.display().to_string(),
                common: common.display().to_string(),
            });
        };
        Ok(AttemptTree {
            worktree: worktree.to_owned(),
            common,
            admin,
            branch: branch.to_owned(),
            back_link,
        })
    }

    /// Puts back what `git worktree add` wrote and git in the worktree trusts: the `.git`
    /// link, the admin dir's `HEAD` (on the attempt branch), `commondir` and `gitdir`, and
    /// no `config.worktree`. Call it once every process of the attempt is gone and before
    /// any git command of the supervisor runs in the worktree: otherwise a rewritten link
    /// would have the supervisor stage and commit into another repository or branch
    /// (the user's). Commits the executor made on a detached HEAD are not on the branch;
    /// their content is still in the worktree, so the capture keeps it.
    pub fn restore(&self) -> Result<(), GitError> {
        let link = self.worktree.join(".git");
        replace_file(&link, &format!("gitdir: {}\n", self.admin.display()))?;
        replace_file(
            &self.admin.join("HEAD"),
            &format!("ref: refs/heads/{}\n", self.branch),
        )?;
        replace_file(&self.admin.join("commondir"), "../..\n")?;
        replace_file(
            &self.admin.join("gitdir"),
            &format!("{}\n", self.back_link.display()),
        )?;
        let extra = self.admin.join("config.worktree");
        if std::fs::symlink_metadata(&extra).is_ok() {
            remove_any(&extra).map_err(|e| restore_err(&extra, e))?;
        }
        Ok(())
    }

    /// Creates the attempt branch at `base_commit` and checks it out into the worktree
    /// [`create_worktree`] registered: the index and every file, as `git worktree add`
    /// would have. Fails when the branch already exists. It writes only this worktree's
    /// and this branch's files (git's lock files included), so it needs no [`RepoLock`].
    pub async fn check_out(&self, base_commit: &str) -> Result<(), GitError> {
        git(
            &self.worktree,
            self.scoped(&[
                "checkout",
                "--quiet",
                "--force",
                "-b",
                &self.branch,
                base_commit,
            ]),
        )
        .await?;
        Ok(())
    }

    /// Whether the attempt branch exists yet ([`AttemptTree::check_out`] makes it).
    pub async fn branch_exists(&self) -> bool {
        self.branch_head().await.is_ok()
    }

    /// The commit the attempt branch points at, from its ref file when it is a plain loose
    /// ref (no process), else from git.
    async fn branch_head(&self) -> Result<String, GitError> {
        let loose = self.common.join("refs/heads").join(&self.branch);
        if let Some(id) = read_object_id(&loose) {
            return Ok(id);
        }
        let full = format!("refs/heads/{}", self.branch);
        let out = git(
            &self.worktree,
            self.scoped(&["rev-parse", "--verify", "--end-of-options", &full]),
        )
        .await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// `args` for git run against this worktree, its git dir named explicitly.
    fn scoped<'a>(&'a self, args: &[&'a str]) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = vec![
            format!("--git-dir={}", self.admin.display()).into(),
            format!("--work-tree={}", self.worktree.display()).into(),
        ];
        out.extend(args.iter().map(|a| (*a).into()));
        out
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

/// Replaces whatever is at `path` (a file, a symlink, a directory) by a new file, unless
/// it is already a plain file with exactly `contents` (then it stays: a sandbox being set
/// up meanwhile may be opening it).
fn replace_file(path: &Path, contents: &str) -> Result<(), GitError> {
    use std::io::Write;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_file()
            && meta.len() == contents.len() as u64
            && std::fs::read(path).is_ok_and(|now| now == contents.as_bytes())
        {
            return Ok(());
        }
        remove_any(path).map_err(|e| restore_err(path, e))?;
    }
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| restore_err(path, e))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn restore_err(path: &Path, source: std::io::Error) -> GitError {
    GitError::Restore {
        path: path.display().to_string(),
        source,
    }
}

/// Registers a worktree at `path` for the attempt branch `branch`, detached at
/// `base_commit` and not checked out yet ([`AttemptTree::check_out`] does that), so that
/// the executor's sandbox, which binds the worktree and its git metadata, can be built
/// while git writes the files. The directories of the branch's ref and reflog are made
/// here for the same reason: the sandbox binds them writable.
///
/// One git process without children: `git worktree add -b` runs two more (`git branch`,
/// `git reset --hard`) in series.
pub async fn create_worktree(
    repo: &Path,
    path: &Path,
    branch: &str,
    base_commit: &str,
) -> Result<AttemptTree, GitError> {
    let common = common_dir(repo).await?;
    {
        let _lock = RepoLock::acquire(&common).await?;
        git(
            repo,
            [
                OsStr::new("worktree"),
                OsStr::new("add"),
                OsStr::new("--quiet"),
                OsStr::new("--detach"),
                OsStr::new("--no-checkout"),
                path.as_os_str(),
                OsStr::new(base_commit),
            ],
        )
        .await?;
    }
    // Nothing has run in the worktree yet: its link is what git just wrote.
    let link = std::fs::read_to_string(path.join(".git")).map_err(|e| GitError::Failed {
        args: "worktree add".into(),
        dir: repo.display().to_string(),
        stderr: format!("no .git link in the new worktree: {e}"),
    })?;
    let admin = link
        .strip_prefix("gitdir:")
        .map(|p| PathBuf::from(p.trim()))
        .ok_or_else(|| GitError::NotAWorktree {
            worktree: path.display().to_string(),
            common: common.display().to_string(),
        })?;
    let back_link = std::fs::read_to_string(admin.join("gitdir"))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_else(|_| path.join(".git"));
    if let Some(dir) = Path::new(branch).parent() {
        for base in ["refs/heads", "logs/refs/heads"] {
            let refs = common.join(base).join(dir);
            std::fs::create_dir_all(&refs).map_err(|e| GitError::Failed {
                args: "worktree add".into(),
                dir: repo.display().to_string(),
                stderr: format!("cannot create {}: {e}", refs.display()),
            })?;
        }
    }
    Ok(AttemptTree {
        worktree: path.to_owned(),
        common,
        admin,
        branch: branch.to_owned(),
        back_link,
    })
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
/// `base_commit` and commits it to the attempt branch, so no executor change is lost.
/// Restores the worktree's git links first (see [`AttemptTree::restore`]); run it only
/// when no process of the attempt is left.
pub async fn capture(
    tree: &AttemptTree,
    base_commit: &str,
    message: &str,
) -> Result<Capture, GitError> {
    tree.restore()?;
    let wt = &tree.worktree;
    // Ignored files (build output, dependencies) stay in the worktree, kept for evidence,
    // but out of the diff: `.gitignore` is the repository's own statement of what matters.
    git(wt, tree.scoped(&["add", "--all", "--", "."])).await?;
    // The paths with their line counts and the patch, from one process: `--numstat -z`
    // prints `ins\tdel\tpath\0` per file, then an empty record, then the patch.
    let out = git(
        wt,
        tree.scoped(&[
            "diff",
            "--cached",
            "--binary",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--numstat",
            "-z",
            "--patch",
            base_commit,
        ]),
    )
    .await?;
    let (files, insertions, deletions, diff) = split_numstat_patch(&out);

    let mut commit = None;
    let head = tree.branch_head().await?;
    if !files.is_empty() || head != base_commit {
        let _lock = RepoLock::acquire(&tree.common).await?;
        // Changes against the base with the branch still at the base are staged changes;
        // once the executor committed, only git can tell whether anything is left.
        if head == base_commit || staged_changes(tree).await {
            git(
                wt,
                tree.scoped(&[
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "--allow-empty-message",
                    "-m",
                    message,
                ]),
            )
            .await?;
        }
        commit = Some(tree.branch_head().await?);
    }
    Ok(Capture {
        commit,
        diff,
        files,
        insertions,
        deletions,
    })
}

/// Whether the index differs from the branch (the executor may have committed part of its
/// work, so an empty diff against the base does not settle it).
async fn staged_changes(tree: &AttemptTree) -> bool {
    git(
        &tree.worktree,
        tree.scoped(&["diff", "--cached", "--quiet"]),
    )
    .await
    .is_err()
}

/// Splits `git diff --numstat -z --patch` output into the numstat records (files,
/// insertions, deletions) and the patch, byte for byte what `git diff` alone prints.
fn split_numstat_patch(out: &[u8]) -> (Vec<String>, u64, u64, Vec<u8>) {
    // Records end in NUL and are never empty, so the first "\0\0" ends the last of them.
    let (records, patch) = match out.windows(2).position(|w| w == b"\0\0") {
        Some(at) => (&out[..=at], &out[at + 2..]),
        None => (out, &[][..]),
    };
    let (files, insertions, deletions) = parse_numstat_z(records);
    (files, insertions, deletions, patch.to_vec())
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

    #[test]
    fn numstat_and_patch_split_at_the_empty_record() {
        let out = b"2\t1\tf.txt\x001\t0\tsp ace\0\0diff --git a/f.txt b/f.txt\n\0binary\0";
        let (files, ins, del, patch) = split_numstat_patch(out);
        assert_eq!(files, vec!["f.txt".to_string(), "sp ace".to_string()]);
        assert_eq!((ins, del), (3, 1));
        assert_eq!(patch, b"diff --git a/f.txt b/f.txt\n\0binary\0".to_vec());
        assert_eq!(split_numstat_patch(b""), (Vec::new(), 0, 0, Vec::new()));
    }

    fn sh_git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(GIT_CONFIG)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Adds a worktree at `path` on a new `branch` starting at `base_commit`, checked out.
    async fn add_worktree(
        repo: &Path,
        path: &Path,
        branch: &str,
        base_commit: &str,
    ) -> Result<AttemptTree, GitError> {
        let tree = create_worktree(repo, path, branch, base_commit).await?;
        tree.check_out(base_commit).await?;
        Ok(tree)
    }

    /// A repository with one commit (`a.txt`) on `main`, and that commit.
    fn repo_with_commit(root: &Path) -> (PathBuf, String) {
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        sh_git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        sh_git(&repo, &["add", "-A"]);
        sh_git(&repo, &["commit", "-q", "-m", "init"]);
        let base = sh_git(&repo, &["rev-parse", "HEAD"]);
        (repo, base)
    }

    /// A repository with one commit and an attempt worktree made by `add_worktree`.
    async fn repo_with_attempt(root: &Path) -> (PathBuf, AttemptTree, String) {
        let (repo, base) = repo_with_commit(root);
        let tree = add_worktree(&repo, &root.join("wt"), "codencer/r/1/1", &base)
            .await
            .unwrap();
        (repo, tree, base)
    }

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

    #[tokio::test]
    async fn a_worktree_is_registered_first_and_checked_out_onto_its_new_branch_after() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, base) = repo_with_commit(tmp.path());
        let tree = create_worktree(&repo, &tmp.path().join("wt"), "codencer/r/1/1", &base)
            .await
            .unwrap();
        // Registered and detached at the base; nothing checked out and no branch yet, but
        // the branch's ref directories are there for the sandbox to bind.
        let names: Vec<_> = std::fs::read_dir(&tree.worktree)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [".git"]);
        assert_eq!(
            std::fs::read_to_string(tree.admin.join("HEAD"))
                .unwrap()
                .trim(),
            base
        );
        assert!(!tree.branch_exists().await);
        for dir in ["refs/heads/codencer/r/1", "logs/refs/heads/codencer/r/1"] {
            assert!(tree.common.join(dir).is_dir(), "{dir}");
        }

        tree.check_out(&base).await.unwrap();
        assert!(tree.branch_exists().await);
        assert_eq!(
            std::fs::read_to_string(tree.worktree.join("a.txt")).unwrap(),
            "a\n"
        );
        assert_eq!(sh_git(&tree.worktree, &["status", "--porcelain"]), "");
        assert_eq!(
            sh_git(&tree.worktree, &["symbolic-ref", "HEAD"]),
            "refs/heads/codencer/r/1/1"
        );
        assert_eq!(sh_git(&repo, &["rev-parse", "codencer/r/1/1"]), base);
        // The user's checkout stays on its branch.
        assert_eq!(sh_git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        // The attempt branch is new or nothing: a second checkout is refused.
        assert!(tree.check_out(&base).await.is_err());
    }

    #[tokio::test]
    async fn capture_never_follows_a_rewritten_git_link_into_the_users_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, tree, base) = repo_with_attempt(tmp.path()).await;
        // What a hostile executor leaves behind: the worktree's link pointing at the
        // user's repository, HEAD on the user's branch, and a change.
        std::fs::write(
            tree.worktree.join(".git"),
            format!("gitdir: {}\n", repo.join(".git").display()),
        )
        .unwrap();
        std::fs::write(tree.admin.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            tree.admin.join("config.worktree"),
            "[core]\n\tfsmonitor = true\n",
        )
        .unwrap();
        std::fs::write(tree.worktree.join("evil.txt"), "x\n").unwrap();

        let capture = capture(&tree, &base, "m").await.unwrap();

        assert_eq!(capture.files, vec!["evil.txt".to_string()]);
        let commit = capture.commit.expect("the change is committed");
        assert_eq!(
            sh_git(&repo, &["rev-parse", "refs/heads/codencer/r/1/1"]),
            commit
        );
        // The user's branch, index and checkout are untouched.
        assert_eq!(sh_git(&repo, &["rev-parse", "refs/heads/main"]), base);
        assert_eq!(sh_git(&repo, &["status", "--porcelain"]), "");
        assert!(!tree.admin.join("config.worktree").exists());
        assert_eq!(
            std::fs::read_to_string(tree.worktree.join(".git")).unwrap(),
            format!("gitdir: {}\n", tree.admin.display())
        );
    }

    #[tokio::test]
    async fn capture_keeps_what_the_executor_committed_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let (_repo, tree, base) = repo_with_attempt(tmp.path()).await;
        std::fs::write(tree.worktree.join("b.txt"), "b\n").unwrap();
        sh_git(&tree.worktree, &["add", "-A"]);
        sh_git(&tree.worktree, &["commit", "-q", "-m", "by the executor"]);
        let own = sh_git(&tree.worktree, &["rev-parse", "HEAD"]);

        let capture = capture(&tree, &base, "m").await.unwrap();

        // Nothing left to stage: the branch stays at the executor's own commit.
        assert_eq!(capture.commit.as_deref(), Some(own.as_str()));
        assert_eq!(capture.files, vec!["b.txt".to_string()]);
        assert!(String::from_utf8_lossy(&capture.diff).contains("+b"));
    }

    #[tokio::test]
    async fn capture_of_an_untouched_worktree_makes_no_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let (_repo, tree, base) = repo_with_attempt(tmp.path()).await;
        // Links already right stay the same files (a sandbox may be binding them).
        use std::os::unix::fs::MetadataExt;
        let links = [
            tree.worktree.join(".git"),
            tree.admin.join("gitdir"),
            tree.admin.join("commondir"),
            tree.admin.join("HEAD"),
        ];
        let inodes = |paths: &[PathBuf]| -> Vec<u64> {
            paths
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().ino())
                .collect()
        };
        let before = inodes(&links);
        let capture = capture(&tree, &base, "m").await.unwrap();
        assert_eq!(inodes(&links), before);
        assert_eq!(capture, Capture::default());
        assert_eq!(
            AttemptTree::find(&tmp.path().join("repo"), &tree.worktree, &tree.branch)
                .await
                .unwrap(),
            tree
        );
    }
}
