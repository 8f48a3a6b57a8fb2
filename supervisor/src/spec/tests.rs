use std::path::Path;
use std::process::Command;

use super::*;

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    run(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README"), "hi\n").unwrap();
    run(&["add", "."]);
    run(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "init",
    ]);
    dir
}

fn parse(text: &str, dir: &Path) -> Result<TaskSpec, SpecErrors> {
    TaskSpec::parse(text, "spec.yaml", dir)
}

fn one_error(text: &str, dir: &Path) -> SpecError {
    let errors = parse(text, dir).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    errors.0.into_iter().next().unwrap()
}

#[test]
fn full_spec_resolves_steps_with_task_defaults() {
    let repo = repo();
    let text = format!(
        "task:\n  name: fix-it\n  workspace: {}\n  base: main\n  executor: shell\n  command: ./fix.sh\n  goal: do it\n  constraints: [keep api]\n  validators:\n    - cargo test\n    - {{name: lint, run: make lint, timeout: 90s}}\n  timeout: 1h30m\n  max_attempts: 2\n  policy: strict\n",
        repo.path().display()
    );
    let spec = parse(&text, Path::new("/")).unwrap();
    assert_eq!(spec.name, "fix-it");
    assert_eq!(spec.workspace, std::fs::canonicalize(repo.path()).unwrap());
    assert_eq!(spec.policy.as_deref(), Some("strict"));
    assert_eq!(spec.steps.len(), 1);
    let step = &spec.steps[0];
    assert_eq!(
        step.validators,
        vec![
            ValidatorSpec {
                name: "cargo-1".into(),
                run: "cargo test".into(),
                timeout: DEFAULT_VALIDATOR_TIMEOUT
            },
            ValidatorSpec {
                name: "lint".into(),
                run: "make lint".into(),
                timeout: Duration::from_secs(90)
            },
        ]
    );
    assert_eq!(step.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(step.max_attempts, Some(2));
    assert_eq!(step.constraints, vec!["keep api".to_string()]);
}

#[test]
fn steps_override_and_inherit() {
    let repo = repo();
    let text = format!(
        "task:\n  name: plan\n  workspace: {}\n  executor: shell\n  command: echo\n  validators: [true]\n  steps:\n    - goal: one\n    - goal: two\n      command: echo two\n      validators: []\n",
        repo.path().display()
    );
    let spec = parse(&text, Path::new("/")).unwrap();
    assert_eq!(spec.steps.len(), 2);
    assert_eq!(spec.steps[0].command.as_deref(), Some("echo"));
    assert_eq!(spec.steps[0].validators.len(), 1);
    assert_eq!(spec.steps[1].command.as_deref(), Some("echo two"));
    assert!(spec.steps[1].validators.is_empty());
}

#[test]
fn json_spec_is_accepted() {
    let repo = repo();
    let text = format!(
        r#"{{"task": {{"name": "j", "workspace": "{}", "executor": "shell", "command": "true", "goal": "g"}}}}"#,
        repo.path().display()
    );
    assert_eq!(parse(&text, Path::new("/")).unwrap().name, "j");
}

#[test]
fn relative_workspace_resolves_against_spec_dir() {
    let repo = repo();
    let parent = repo.path().parent().unwrap();
    let name = repo.path().file_name().unwrap().to_str().unwrap();
    let text = format!(
        "task:\n  name: r\n  workspace: ./{name}\n  executor: shell\n  command: 'true'\n  goal: g\n"
    );
    assert_eq!(
        parse(&text, parent).unwrap().workspace,
        std::fs::canonicalize(repo.path()).unwrap()
    );
}

#[test]
fn unknown_field_names_line_and_field() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  comand: x\n  goal: g\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!(err.line, Some(5), "{err}");
    assert_eq!(err.field, "task");
    assert!(err.message.contains("unknown field `comand`"), "{err}");
    assert!(err.fix.contains("spelling"), "{err}");
}

#[test]
fn wrong_type_is_reported_with_line() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  goal: g\n  max_attempts: lots\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!(err.line, Some(7), "{err}");
    assert!(err.message.contains("invalid type"), "{err}");
}

#[test]
fn bad_validator_shape_says_what_is_accepted() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  goal: g\n  validators:\n    - [1, 2]\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert!(
        err.message
            .contains("a command string or a map {name, run, timeout}"),
        "{err}"
    );
}

#[test]
fn not_a_git_repo() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  goal: g\n",
        dir.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!(err.field, "task.workspace");
    assert_eq!(err.line, Some(3));
    assert!(err.message.contains("is not a git repository"), "{err}");
    assert!(err.fix.contains("git init"), "{err}");
}

#[test]
fn missing_workspace_dir() {
    let text = "task:\n  name: a\n  workspace: /nonexistent/codencer\n  executor: shell\n  command: x\n  goal: g\n";
    let err = one_error(text, Path::new("/"));
    assert!(err.message.contains("does not exist"), "{err}");
}

#[test]
fn unknown_executor_lists_known_ones() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: cursor\n  goal: g\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!(err.field, "task.executor");
    assert_eq!(err.line, Some(4));
    assert!(err.message.contains("unknown executor `cursor`"), "{err}");
    assert!(err.fix.contains("shell"), "{err}");
}

#[test]
fn semantic_errors_are_all_reported() {
    let repo = repo();
    let text = format!(
        "task:\n  name: Bad_Name\n  workspace: {}\n  base: no-such-branch\n  executor: shell\n  timeout: soon\n  max_attempts: 0\n",
        repo.path().display()
    );
    let errors = parse(&text, Path::new("/")).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "task.name",
            "task.base",
            "task.timeout",
            "task.max_attempts",
            "task.goal",
            "task.command"
        ]
    );
    let rendered = errors.to_string();
    assert!(
        rendered.contains("spec.yaml:2: task.name: `Bad_Name` is not a valid name"),
        "{rendered}"
    );
    assert!(
        rendered.contains("spec.yaml:6: task.timeout: `soon` is not a duration"),
        "{rendered}"
    );
}

#[test]
fn step_without_goal_names_the_step() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  steps:\n    - goal: one\n    - name: second\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!(err.field, "task.steps[1].goal");
}

#[test]
fn missing_task_key() {
    let err = one_error("name: a\n", Path::new("/"));
    assert!(err.fix.contains("top-level `task:`"), "{err}");
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let err = one_error("task:\n  name: [unclosed\n  goal: x\n", Path::new("/"));
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("90"), None);
    assert_eq!(parse_duration("0s"), None);
    assert_eq!(parse_duration("m"), None);
    assert_eq!(parse_duration("5x"), None);
}

#[test]
fn step_errors_point_at_their_own_step() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  timeout: 1h\n  steps:\n    - goal: one\n      timeout: 5m\n    - goal: two\n      timeout: soon\n    - name: three\n",
        repo.path().display()
    );
    let errors = parse(&text, Path::new("/")).unwrap_err();
    let found: Vec<(String, Option<usize>)> =
        errors.0.iter().map(|e| (e.field.clone(), e.line)).collect();
    assert_eq!(
        found,
        vec![
            ("task.steps[1].timeout".to_string(), Some(11)),
            // A missing key points at the step's first line.
            ("task.steps[2].goal".to_string(), Some(12)),
        ]
    );
}

#[test]
fn task_errors_skip_the_steps_block() {
    let repo = repo();
    let text = format!(
        "task:\n  name: a\n  workspace: {}\n  executor: shell\n  command: x\n  steps:\n    - goal: one\n      timeout: 5m\n  timeout: never\n",
        repo.path().display()
    );
    let err = one_error(&text, Path::new("/"));
    assert_eq!((err.field.as_str(), err.line), ("task.timeout", Some(9)));
}
