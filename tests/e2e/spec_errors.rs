//! Invalid TaskSpecs: exit 2, a message naming file, line, field and fix, nothing recorded.

use codencer_tests::Sandbox;

fn assert_rejected(sb: &Sandbox, text: &str, expected: &[&str]) {
    let spec = sb.spec("spec.yaml", text);
    let out = sb.codencer(&["run", spec.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out}");
    for needle in expected {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{out}"
        );
    }
    assert!(out.stderr.contains("fix:"), "no fix given:\n{out}");
    // Nothing recorded half-way: the state dir was not even created.
    assert!(
        !sb.state().exists(),
        "state dir created for an invalid spec"
    );
}

#[test]
fn unknown_field() {
    let sb = Sandbox::new();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: 'true'\n  goal: g\n  retries: 3\n",
        sb.repo().display()
    );
    assert_rejected(&sb, &text, &["spec.yaml:7", "unknown field `retries`"]);
}

#[test]
fn wrong_type() {
    let sb = Sandbox::new();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: 'true'\n  goal: g\n  validators: make test\n",
        sb.repo().display()
    );
    assert_rejected(&sb, &text, &["spec.yaml:7", "invalid type"]);
}

#[test]
fn workspace_not_a_git_repo() {
    let sb = Sandbox::new();
    let plain = sb.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: 'true'\n  goal: g\n",
        plain.display()
    );
    assert_rejected(
        &sb,
        &text,
        &[
            "spec.yaml:3",
            "task.workspace",
            "is not a git repository",
            "git init",
        ],
    );
}

#[test]
fn unknown_executor() {
    let sb = Sandbox::new();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: devin\n  goal: g\n",
        sb.repo().display()
    );
    assert_rejected(
        &sb,
        &text,
        &[
            "spec.yaml:4",
            "task.executor",
            "unknown executor `devin`",
            "shell",
        ],
    );
}

#[test]
fn shell_without_command_and_bad_name() {
    let sb = Sandbox::new();
    let text = format!(
        "task:\n  name: Not Valid\n  workspace: {}\n  executor: shell\n  goal: g\n",
        sb.repo().display()
    );
    assert_rejected(
        &sb,
        &text,
        &["task.name", "task.command", "needs `command`"],
    );
}

#[test]
fn missing_file() {
    let sb = Sandbox::new();
    let out = sb.codencer(&["run", "/nonexistent/spec.yaml"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("/nonexistent/spec.yaml: cannot read the TaskSpec"),
        "{out}"
    );
}
