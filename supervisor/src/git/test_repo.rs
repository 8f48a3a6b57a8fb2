//! Throwaway repositories for the git module's tests.

use std::path::{Path, PathBuf};

use super::{AttemptTree, GIT_CONFIG, GitError, create_worktree};

pub(crate) fn sh_git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) async fn add_worktree(
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
pub(crate) fn repo_with_commit(root: &Path) -> (PathBuf, String) {
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
pub(crate) async fn repo_with_attempt(root: &Path) -> (PathBuf, AttemptTree, String) {
    let (repo, base) = repo_with_commit(root);
    let tree = add_worktree(&repo, &root.join("wt"), "codencer/r/1/1", &base)
        .await
        .unwrap();
    (repo, tree, base)
}
