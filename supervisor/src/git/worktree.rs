//! An attempt's worktree: created in two steps (registered, then checked out), and the git
//! files in it that the supervisor restores before it runs git there.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::{GitError, RepoLock, common_dir, git, read_object_id};

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
    pub(super) async fn branch_head(&self) -> Result<String, GitError> {
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
    pub(super) fn scoped<'a>(&'a self, args: &[&'a str]) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = vec![
            format!("--git-dir={}", self.admin.display()).into(),
            format!("--work-tree={}", self.worktree.display()).into(),
        ];
        out.extend(args.iter().map(|a| (*a).into()));
        out
    }
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
    let link_path = path.join(".git");
    let link = std::fs::read_to_string(&link_path).map_err(|source| GitError::Io {
        what: "read the new worktree's git link",
        path: link_path.display().to_string(),
        source,
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
            std::fs::create_dir_all(&refs).map_err(|source| GitError::Io {
                what: "create the attempt branch's ref directory",
                path: refs.display().to_string(),
                source,
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

#[cfg(test)]
mod tests {
    use super::super::test_repo::{repo_with_commit, sh_git};
    use super::*;

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
}
