//! Worktrees: untracked files in the diff, the user's checkout untouched, concurrent runs.

use codencer_tests::{Sandbox, git};

#[test]
fn diff_includes_untracked_files() {
    let sb = Sandbox::new();
    let path = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: d\n  workspace: {}\n  executor: shell\n  command: 'echo line 2 >> app.txt; mkdir -p src; echo brand new > src/new.rs'\n  goal: g\n",
            sb.repo().display()
        ),
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    let step = &result["steps"][0];
    assert_eq!(
        step["files_changed"],
        serde_json::json!(["app.txt", "src/new.rs"])
    );
    assert_eq!(step["diff"]["insertions"], 2);
    assert_eq!(step["diff"]["deletions"], 0);
    let diff = sb
        .ctl(&[
            "artifacts",
            "get",
            step["diff"]["artifact"].as_str().unwrap(),
        ])
        .stdout;
    assert!(diff.contains("new file mode"), "{diff}");
    assert!(diff.contains("+brand new"), "{diff}");
    assert!(diff.contains("+line 2"), "{diff}");
    // The commit on the attempt branch holds exactly that change.
    let branch = step["branch"].as_str().unwrap();
    assert_eq!(
        git(&sb.repo(), &["show", &format!("{branch}:src/new.rs")]),
        "brand new\n"
    );
    let author = git(&sb.repo(), &["log", "-1", "--format=%an", branch]);
    assert_eq!(author.trim(), "codencer");
}

#[test]
fn run_never_touches_the_users_checkout() {
    let sb = Sandbox::new();
    let repo = sb.repo();
    // The user has work in progress: an unstaged edit, a staged file, an untracked file.
    std::fs::write(repo.join("app.txt"), "user edit\n").unwrap();
    std::fs::write(repo.join("staged.txt"), "staged\n").unwrap();
    git(&repo, &["add", "staged.txt"]);
    std::fs::write(repo.join("scratch.txt"), "untracked\n").unwrap();
    let snapshot = |repo: &std::path::Path| {
        (
            git(repo, &["status", "--porcelain=v1", "--untracked-files=all"]),
            git(repo, &["diff"]),
            git(repo, &["diff", "--cached"]),
            git(repo, &["rev-parse", "HEAD"]),
            git(repo, &["symbolic-ref", "HEAD"]),
            std::fs::read_to_string(repo.join("app.txt")).unwrap(),
        )
    };
    let before = snapshot(&repo);
    let path = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: u\n  workspace: {}\n  executor: shell\n  command: 'echo agent > app.txt; git add -A; rm README.md'\n  goal: g\n  validators: ['true']\n",
            repo.display()
        ),
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        result["steps"][0]["files_changed"],
        serde_json::json!(["README.md", "app.txt"])
    );
    assert_eq!(snapshot(&repo), before);
}

#[test]
fn hostile_executor_cannot_steer_the_capture_into_the_users_branch() {
    let sb = Sandbox::new();
    let repo = sb.repo();
    let main_before = git(&repo, &["rev-parse", "main"]);
    // Everything the executor may still write that decides where git commits: HEAD onto
    // the user's branch, a detached HEAD, a per-worktree config; and an attempt at the
    // `.git` link itself, which the sandbox keeps read-only.
    let path = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: h\n  workspace: {r}\n  executor: shell\n  command: 'git symbolic-ref HEAD refs/heads/main; printf \"gitdir: {r}/.git\\\\n\" > .git; echo evil > evil.txt'\n  goal: g\n",
            r = repo.display()
        ),
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    let step = &result["steps"][0];
    assert_eq!(step["files_changed"], serde_json::json!(["evil.txt"]));
    let branch = step["branch"].as_str().unwrap();
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:evil.txt")]),
        "evil\n"
    );
    // The user's branch, index and checkout are as they were.
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[test]
fn two_concurrent_runs_on_one_repo() {
    let sb = Sandbox::new();
    let mk = |name: &str| {
        sb.spec(
            &format!("{name}.yaml"),
            &format!(
                "task:\n  name: {name}\n  workspace: {}\n  executor: shell\n  command: 'for i in 1 2 3 4 5; do echo {name} $i >> {name}.txt; sleep 0.1; done'\n  goal: g\n  validators: ['test $(wc -l < {name}.txt) -eq 5']\n",
                sb.repo().display()
            ),
        )
    };
    let specs = [mk("alpha"), mk("beta"), mk("gamma")];
    let children: Vec<_> = specs
        .iter()
        .map(|spec| {
            sb.command("codencer")
                .args(["run", "--json"])
                .arg(spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut branches = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(result["status"], "passed");
        branches.push((
            result["task"].as_str().unwrap().to_string(),
            result["steps"][0]["branch"].as_str().unwrap().to_string(),
        ));
    }
    for (name, branch) in &branches {
        let content = git(&sb.repo(), &["show", &format!("{branch}:{name}.txt")]);
        assert_eq!(content.lines().count(), 5, "{content}");
    }
    git(&sb.repo(), &["fsck", "--no-progress"]);
    let list = sb.ctl(&["runs", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let verify = sb.codencer(&["store", "verify"]);
    assert_eq!(verify.code, Some(0), "{verify}");
}

#[test]
fn gc_removes_finished_worktrees_and_keeps_branches() {
    let sb = Sandbox::new();
    let path = sb.spec("spec.yaml", &format!("task:\n  name: g\n  workspace: {}\n  executor: shell\n  command: 'echo x > x.txt'\n  goal: g\n", sb.repo().display()));
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    let branch = result["steps"][0]["branch"].as_str().unwrap().to_string();
    let worktrees = sb.state().join("worktrees");
    assert!(std::fs::read_dir(&worktrees).unwrap().next().is_some());
    let gc = sb.codencer(&["gc", "--json"]);
    assert_eq!(gc.code, Some(0), "{gc}");
    let report: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    assert_eq!(report["worktrees_removed"], 1);
    assert!(std::fs::read_dir(&worktrees).unwrap().next().is_none());
    assert!(!git(&sb.repo(), &["worktree", "list"]).contains("worktrees"));
    assert_eq!(
        git(&sb.repo(), &["branch", "--list", &branch])
            .trim()
            .trim_start_matches("+ ")
            .trim(),
        branch
    );
    let gc = sb.codencer(&["gc", "--branches", "--json"]);
    assert_eq!(gc.code, Some(0), "{gc}");
    assert_eq!(git(&sb.repo(), &["branch", "--list", &branch]).trim(), "");
}
