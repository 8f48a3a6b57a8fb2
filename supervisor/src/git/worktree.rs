//! An attempt's worktree: created in two steps (registered, then checked out), and the git
//! files in it that the supervisor restores before it runs git there.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::{GitError, RepoLock, common_dir, git, plain_config, read_object_id};

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
/// No git process for a plain repository ([`register`]); otherwise one without children,
/// `git worktree add --detach --no-checkout` (`git worktree add -b` would run two more,
/// `git branch` and `git reset --hard`, in series).
pub async fn create_worktree(
    repo: &Path,
    path: &Path,
    branch: &str,
    base_commit: &str,
) -> Result<AttemptTree, GitError> {
    let common = common_dir(repo).await?;
    let (admin, back_link) = {
        let _lock = RepoLock::acquire(&common).await?;
        match admin_name(path).filter(|_| plain_config(&common)) {
            Some(name) => register(&common, name, path, base_commit)?,
            None => {
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
                read_registration(&common, path)?
            }
        }
    };
    if let Some(dir) = Path::new(branch).parent() {
        for base in ["refs/heads", "logs/refs/heads"] {
            let refs = common.join(base).join(dir);
            std::fs::create_dir_all(&refs).map_err(GitError::io(
                "create the attempt branch's ref directory",
                &refs,
            ))?;
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

/// The admin dir and the back-link git just wrote for the new worktree at `path` (nothing
/// has run in it yet, so its link is git's).
fn read_registration(common: &Path, path: &Path) -> Result<(PathBuf, PathBuf), GitError> {
    let link_path = path.join(".git");
    let link = std::fs::read_to_string(&link_path)
        .map_err(GitError::io("read the new worktree's git link", &link_path))?;
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
    Ok((admin, back_link))
}

/// The admin dir name git would start from for `path`: its base name, when that is made
/// only of characters git keeps as they are.
fn admin_name(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    (!name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(name)
}

/// Registers `path` as a worktree of the repository whose common dir is `common`, detached
/// at `base_commit`, with nothing checked out: the files `git worktree add --detach
/// --no-checkout` writes (gitrepository-layout(5): `worktrees/<name>/` with `gitdir`,
/// `commondir`, `HEAD` and `refs/`; the worktree's `.git` link), in the order git writes
/// them, written here because the attempt's setup waits for them and git took a process
/// and ~2 ms for four small files. The initial reflog entry of the worktree's HEAD is the
/// one thing left out. Only for a repository [`plain_config`] accepts, `name` from
/// [`admin_name`]; callers hold the repository lock. On failure nothing is left.
/// Returns the admin dir and the back-link, resolved as git writes them.
fn register(
    common: &Path,
    name: &str,
    path: &Path,
    base_commit: &str,
) -> Result<(PathBuf, PathBuf), GitError> {
    let worktrees = common.join("worktrees");
    std::fs::create_dir_all(&worktrees)
        .map_err(GitError::io("create the worktrees directory", &worktrees))?;
    // The name git would pick: the base name, else the first free one with a number after it.
    let mut admin = worktrees.join(name);
    let mut n = 0u32;
    loop {
        match std::fs::create_dir(&admin) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {
                n += 1;
                admin = worktrees.join(format!("{name}{n}"));
            }
            Err(e) => {
                return Err(GitError::io(
                    "create the worktree's admin directory",
                    &admin,
                )(e));
            }
        }
    }
    // As git does: `locked` keeps a concurrent `git worktree prune` off the half-written entry.
    let locked = admin.join("locked");
    let written = write(&locked, "initializing\n")
        .and_then(|()| make_worktree_dir(path))
        .and_then(|()| {
            let links = write_links(&admin, path, base_commit);
            if links.is_err() {
                let _ = std::fs::remove_dir_all(path);
            }
            links
        })
        .and_then(|links| {
            std::fs::remove_file(&locked)
                .map_err(GitError::io("unlock the worktree's registration", &locked))?;
            Ok(links)
        });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&admin);
    }
    written
}

fn write(file: &Path, text: &str) -> Result<(), GitError> {
    std::fs::write(file, text).map_err(GitError::io("write the worktree's registration", file))
}

/// As git: the parents are made, and an empty directory is taken as it is.
fn make_worktree_dir(path: &Path) -> Result<(), GitError> {
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| match std::fs::create_dir(path) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::read_dir(path)?.next().is_none() =>
            {
                Ok(())
            }
            other => other,
        })
        .map_err(GitError::io("create the worktree directory", path))
}

/// The worktree's `.git` link and the admin dir's `commondir`, `gitdir`, `HEAD` and
/// `refs/`; both links resolved, as git writes them. Returns the admin dir and back-link.
fn write_links(
    admin: &Path,
    path: &Path,
    base_commit: &str,
) -> Result<(PathBuf, PathBuf), GitError> {
    let real = |p: &Path| std::fs::canonicalize(p).map_err(GitError::io("resolve the path", p));
    let (admin, back_link) = (real(admin)?, real(path)?.join(".git"));
    write(&back_link, &format!("gitdir: {}\n", admin.display()))?;
    write(&admin.join("commondir"), "../..\n")?;
    write(&admin.join("gitdir"), &format!("{}\n", back_link.display()))?;
    write(&admin.join("HEAD"), &format!("{base_commit}\n"))?;
    let refs = admin.join("refs");
    std::fs::create_dir(&refs).map_err(GitError::io("write the worktree's registration", &refs))?;
    Ok((admin, back_link))
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

    /// The files in `dir`, recursively, relative and sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
                if p.is_dir() {
                    todo.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_plain_repository_gets_the_registration_git_writes_and_git_agrees_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, base) = repo_with_commit(tmp.path());
        let common = std::fs::canonicalize(repo.join(".git")).unwrap();
        // Beside it, what git itself writes for the same request.
        sh_git(
            &repo,
            &[
                "worktree",
                "add",
                "--quiet",
                "--detach",
                "--no-checkout",
                tmp.path().join("by-git").to_str().unwrap(),
                &base,
            ],
        );
        let tree = create_worktree(&repo, &tmp.path().join("ours"), "codencer/r/1/1", &base)
            .await
            .unwrap();
        let by_git = common.join("worktrees/by-git");
        assert_eq!(tree.admin, common.join("worktrees/ours"));
        // The same files, but the reflog of the first HEAD (git's `logs/`).
        let without_logs = |dir: &Path| -> Vec<String> {
            files(dir)
                .into_iter()
                .filter(|f| !f.starts_with("logs"))
                .collect()
        };
        assert_eq!(without_logs(&tree.admin), without_logs(&by_git));
        assert_eq!(files(&tree.admin), ["HEAD", "commondir", "gitdir", "refs"]);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        for same in ["HEAD", "commondir"] {
            assert_eq!(
                read(tree.admin.join(same)),
                read(by_git.join(same)),
                "{same}"
            );
        }
        let real_tmp = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(
            read(tree.admin.join("gitdir")),
            format!("{}\n", real_tmp.join("ours/.git").display())
        );
        assert_eq!(
            read(tree.worktree.join(".git")),
            format!("gitdir: {}\n", tree.admin.display())
        );
        assert_eq!(tree.back_link, real_tmp.join("ours/.git"));

        // git lists it like its own, checks it out, and removes it.
        let list = sh_git(&repo, &["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!(
                "worktree {}\nHEAD {base}\ndetached",
                real_tmp.join("ours").display()
            )),
            "{list}"
        );
        tree.check_out(&base).await.unwrap();
        assert_eq!(sh_git(&tree.worktree, &["status", "--porcelain"]), "");
        assert_eq!(
            sh_git(&tree.worktree, &["rev-parse", "--git-dir"]),
            tree.admin.display().to_string()
        );
        sh_git(
            &repo,
            &[
                "worktree",
                "remove",
                "--force",
                tree.worktree.to_str().unwrap(),
            ],
        );
        assert!(!tree.admin.exists() && !tree.worktree.exists());
    }

    #[tokio::test]
    async fn a_name_in_use_gets_a_number_as_git_would_give_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, base) = repo_with_commit(tmp.path());
        let first = create_worktree(&repo, &tmp.path().join("a/1-1"), "codencer/a/1/1", &base)
            .await
            .unwrap();
        let second = create_worktree(&repo, &tmp.path().join("b/1-1"), "codencer/b/1/1", &base)
            .await
            .unwrap();
        assert_eq!(first.admin.file_name().unwrap(), "1-1");
        assert_eq!(second.admin.file_name().unwrap(), "1-11");
        // A worktree directory with something in it is refused, as git refuses it, and
        // leaves no entry behind.
        std::fs::create_dir_all(tmp.path().join("c/1-1")).unwrap();
        std::fs::write(tmp.path().join("c/1-1/x"), "x").unwrap();
        let err = create_worktree(&repo, &tmp.path().join("c/1-1"), "codencer/c/1/1", &base)
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::Io { .. }), "{err}");
        assert!(!first.common.join("worktrees/1-12").exists());
        assert!(tmp.path().join("c/1-1/x").exists());
        // An empty one is taken.
        std::fs::create_dir_all(tmp.path().join("d/1-1")).unwrap();
        let third = create_worktree(&repo, &tmp.path().join("d/1-1"), "codencer/d/1/1", &base)
            .await
            .unwrap();
        assert_eq!(third.admin.file_name().unwrap(), "1-12");
        assert_eq!(
            sh_git(&repo, &["worktree", "list", "--porcelain"])
                .matches("worktree ")
                .count(),
            4
        );
    }

    #[tokio::test]
    async fn a_repository_with_per_worktree_config_is_left_to_git() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, base) = repo_with_commit(tmp.path());
        sh_git(&repo, &["config", "extensions.worktreeConfig", "true"]);
        let tree = create_worktree(&repo, &tmp.path().join("wt"), "codencer/r/1/1", &base)
            .await
            .unwrap();
        // git wrote it: the first HEAD's reflog is git's alone.
        assert!(tree.admin.join("logs/HEAD").is_file());
        tree.check_out(&base).await.unwrap();
        assert_eq!(sh_git(&tree.worktree, &["status", "--porcelain"]), "");
    }
}
