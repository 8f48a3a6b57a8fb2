//! What an attempt changed: staged, diffed against its base and committed to its branch.

use super::{AttemptTree, GitError, RepoLock, git};

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::test_repo::{repo_with_attempt, sh_git};
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
