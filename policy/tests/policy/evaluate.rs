//! Evaluation: admission, change checks, gates, retries, explain, check.

use super::*;

#[test]
fn strict_refuses_a_host_lacking_a_layer() {
    let env = Env::new();
    let policy = load(&env.sources(), "claude-code", Some("strict")).unwrap();
    assert!(policy.values().strict);
    assert_eq!(
        admit(&policy, &HostLayers::all_enforced()).verdict,
        Verdict::Allow
    );
    let mut host = HostLayers::all_enforced();
    host.set(SandboxLayer::Landlock, Enforcement::Partial);
    let eval = admit(&policy, &host);
    assert_eq!(eval.verdict, Verdict::Deny);
    let deny = eval
        .decisions
        .iter()
        .find(|d| d.verdict == Verdict::Deny)
        .unwrap();
    assert_eq!(deny.rule, "strict");
    assert!(
        deny.reason.contains("`landlock` is only partly enforced"),
        "{}",
        deny.reason
    );
    assert_eq!(deny.origin.as_ref().unwrap().file, "builtin:strict.toml");
    // Without strict, landlock is not required by default.
    let relaxed = env.load("claude-code").unwrap();
    assert_eq!(admit(&relaxed, &host).verdict, Verdict::Allow);
    // ... but a network promise needs the network layer.
    host.set(SandboxLayer::Network, Enforcement::NotEnforced);
    let eval = admit(&relaxed, &host);
    assert_eq!(eval.verdict, Verdict::Deny);
    assert!(
        eval.decisions
            .iter()
            .any(|d| d.verdict == Verdict::Deny && d.rule == "network.mode")
    );
}

#[test]
fn disabled_executor_is_not_admitted() {
    let env = Env::new();
    let floor = env.fl("antigravity.toml", "enabled = false\n");
    let policy = env.load("antigravity").unwrap();
    let eval = admit(&policy, &HostLayers::all_enforced());
    assert_eq!(eval.verdict, Verdict::Deny);
    assert_eq!(eval.decisions[0].origin.as_ref().unwrap().file, floor);
}

#[test]
fn change_checks_forbidden_protected_and_size() {
    let env = Env::new();
    env.op(
        "shell.toml",
        "[gates]\nmax_files_changed = 2\nmax_diff_lines = 10\n",
    );
    let policy = env.load("shell").unwrap();
    let eval = |files: &[&str], lines: u64| {
        check_changes(
            &policy,
            &ChangeSummary {
                files: files.iter().map(|f| (*f).to_owned()).collect(),
                insertions: lines,
                deletions: 0,
            },
        )
    };
    assert_eq!(eval(&["src/a.rs"], 3).verdict, Verdict::Allow);
    assert_eq!(eval(&[".git/config"], 1).verdict, Verdict::Deny);
    assert_eq!(eval(&["../outside"], 1).verdict, Verdict::Deny);
    let protected = eval(&["app/Cargo.lock"], 1);
    assert_eq!(protected.verdict, Verdict::NeedsApproval);
    assert_eq!(protected.decisions[0].rule, "filesystem.protected_paths");
    assert_eq!(
        protected.decisions[0].origin.as_ref().unwrap().file,
        "builtin:default.toml"
    );
    let big = eval(&["a", "b", "c"], 11);
    let rules: Vec<&str> = big.decisions.iter().map(|d| d.rule.as_str()).collect();
    assert_eq!(rules, ["gates.max_files_changed", "gates.max_diff_lines"]);
    assert_eq!(big.verdict, Verdict::Deny);

    env.op(
        "shell.toml",
        "[gates]\nrequire_approval = \"never\"\non_violation = \"approval\"\nmax_diff_lines = 10\n",
    );
    let policy = env.load("shell").unwrap();
    let c = |f: &str, n| {
        check_changes(
            &policy,
            &ChangeSummary {
                files: vec![f.into()],
                insertions: n,
                deletions: 0,
            },
        )
        .verdict
    };
    assert_eq!(c(".github/workflows/ci.yml", 1), Verdict::Deny);
    assert_eq!(c("src/a.rs", 11), Verdict::NeedsApproval);
}

#[test]
fn gates_and_retries() {
    let env = Env::new();
    let strict = load(&env.sources(), "codex", Some("strict")).unwrap();
    let none = ChangeSummary {
        files: vec!["src/a.rs".into()],
        insertions: 1,
        deletions: 0,
    };
    let v = |run, passed| gate_verdicts(&strict, &none, ValidationSummary { run, passed }).verdict;
    assert_eq!(v(0, 0), Verdict::Deny, "strict requires validators");
    assert_eq!(v(2, 1), Verdict::Deny);
    assert_eq!(v(2, 2), Verdict::Allow);
    let lock = ChangeSummary {
        files: vec!["Cargo.lock".into()],
        insertions: 1,
        deletions: 0,
    };
    let eval = gate_verdicts(&strict, &lock, ValidationSummary { run: 1, passed: 1 });
    assert_eq!(eval.verdict, Verdict::NeedsApproval);
    assert!(
        eval.decisions
            .iter()
            .any(|d| d.rule == "gates.require_approval" && d.verdict == Verdict::NeedsApproval)
    );

    let policy = env.load("codex").unwrap();
    assert_eq!(
        retry_allowed(&policy, FailureKind::Crashed, 1).verdict,
        Verdict::Allow
    );
    let used = retry_allowed(&policy, FailureKind::Crashed, 3);
    assert_eq!(
        (used.verdict, used.rule.as_str()),
        (Verdict::Deny, "retry.max_attempts")
    );
    env.op("codex.toml", "[retry]\non = [\"crashed\"]\n");
    let policy = env.load("codex").unwrap();
    let no = retry_allowed(&policy, FailureKind::TimedOut, 1);
    assert_eq!((no.verdict, no.rule.as_str()), (Verdict::Deny, "retry.on"));
}

#[test]
fn every_builtin_executor_and_profile_loads() {
    let sources = PolicySources {
        builtin: true,
        operator_dir: None,
        floor_dir: None,
    };
    for executor in codencer_policy::BUILTIN_EXECUTORS {
        for profile in [None, Some("strict")] {
            let policy = load(&sources, executor, profile).unwrap();
            assert!(policy.values().enabled);
            assert_ne!(policy.values().network.mode, NetworkMode::Host);
            assert!(
                policy.files().contains(&format!("builtin:{executor}.toml")),
                "{executor}"
            );
        }
    }
}

#[test]
fn check_dir_reports_every_bad_file() {
    let env = Env::new();
    env.op(
        "good.toml",
        "executors = [\"codex\"]\n[limits]\npids = 10\n",
    );
    let checked = check_dir(&env.operator).unwrap();
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0].executors, ["codex"]);
    env.op("bad1.toml", "[limits]\nwall = \"soon\"\n");
    env.op("bad2.toml", "[network]\nmood = \"none\"\n");
    env.op(
        "worse.toml",
        "executors = [\"gemini\"]\n[filesystem]\nread_only = [\"/a\"]\nhidden = [\"/a\"]\n",
    );
    let errors: Vec<String> = check_dir(&env.operator)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("bad1.toml:2: [limits] wall"),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains("bad2.toml:2: [network] mood: unknown key"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("is both mounted and hidden"),
        "{errors:#?}"
    );
}

#[test]
fn explain_snapshot() {
    let fixtures = Path::new("tests/fixtures");
    let sources = PolicySources {
        builtin: true,
        operator_dir: Some(fixtures.join("operator")),
        floor_dir: Some(fixtures.join("floor")),
    };
    let mut policy = load(&sources, "claude-code", None).unwrap();
    policy
        .narrow(&TaskNarrowing {
            source: "spec.yaml".into(),
            allowed_paths: Some(vec!["src/**".into(), "tests/**".into()]),
            timeout: Some(Duration::from_secs(1200)),
            ..TaskNarrowing::default()
        })
        .unwrap();
    let text = explain(&policy).to_string();
    let expected_path = fixtures.join("explain-claude-code.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&expected_path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(
        text, expected,
        "rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    );
}

#[test]
fn documented_example_is_valid() {
    let doc = std::fs::read_to_string("../docs/policy.md").unwrap();
    let example = doc.split("## Complete example").nth(1).unwrap();
    let mut blocks = example
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap());
    let (operator, floor) = (blocks.next().unwrap(), blocks.next().unwrap());
    let env = Env::new();
    env.op("claude-code.toml", operator);
    env.fl("org.toml", floor);
    let policy = env.load("claude-code").unwrap();
    let v = policy.values();
    assert_eq!(v.network.allow.rules().len(), 2);
    assert_eq!(v.retry.max_attempts, 3);
    assert_eq!(
        admit(&policy, &HostLayers::all_enforced()).verdict,
        Verdict::Allow
    );
}
