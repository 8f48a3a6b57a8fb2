//! Loading: layers, origins, the floor, narrowing, bad files.

use super::*;

#[test]
fn policy_error_stays_small() {
    // Callers return it in `Result`s; clippy's `result_large_err` starts at 128 bytes.
    assert!(std::mem::size_of::<PolicyError>() < 128);
}

#[test]
fn builtin_layers_and_origins() {
    let env = Env::new();
    let policy = env.load("claude-code").unwrap();
    let allow = policy.origin("network.allow").unwrap();
    assert_eq!(
        (
            allow.layer,
            allow.file.as_str(),
            allow.key.as_str(),
            allow.line
        ),
        (
            Layer::Builtin,
            "builtin:claude-code.toml",
            "network.allow",
            Some(4)
        )
    );
    let wall = policy.origin("limits.wall").unwrap();
    assert_eq!(
        (wall.file.as_str(), wall.line),
        ("builtin:default.toml", Some(33))
    );
    assert_eq!(policy.values().network.mode, NetworkMode::Allow);
    assert_eq!(policy.values().limits.wall, Some(Duration::from_secs(1800)));
    assert_eq!(
        policy.files(),
        ["builtin:default.toml", "builtin:claude-code.toml"]
    );
    // Another executor does not see claude-code's file.
    let shell = env.load("shell").unwrap();
    assert_eq!(shell.values().network.mode, NetworkMode::None);
    assert!(shell.values().env.secrets.is_empty());
}

#[test]
fn operator_overrides_builtin_and_specific_beats_generic() {
    let env = Env::new();
    let generic = env.op("default.toml", "[limits]\nwall = \"20m\"\nidle = \"5m\"\n");
    let specific = env.op("claude-code.toml", "\n[limits]\nwall = \"15m\"\n");
    let policy = env.load("claude-code").unwrap();
    let v = policy.values();
    assert_eq!(v.limits.wall, Some(Duration::from_secs(900)));
    assert_eq!(v.limits.idle, Some(Duration::from_secs(300)));
    let wall = policy.origin("limits.wall").unwrap();
    assert_eq!(
        (wall.layer, &wall.file, wall.line),
        (Layer::Operator, &specific, Some(3))
    );
    let idle = policy.origin("limits.idle").unwrap();
    assert_eq!(
        (idle.layer, &idle.file, idle.line),
        (Layer::Operator, &generic, Some(3))
    );
    // codex only gets the generic operator file.
    let codex = env.load("codex").unwrap();
    assert_eq!(codex.values().limits.wall, Some(Duration::from_secs(1200)));
}

#[test]
fn executors_key_selects_files() {
    let env = Env::new();
    env.op(
        "models.toml",
        "executors = [\"codex\", \"aider\"]\n[limits]\npids = 64\n",
    );
    assert_eq!(env.load("codex").unwrap().values().limits.pids, Some(64));
    assert_eq!(env.load("aider").unwrap().values().limits.pids, Some(64));
    assert_eq!(env.load("gemini").unwrap().values().limits.pids, Some(512));
}

#[test]
fn floor_clamps_builtin_values_and_is_credited() {
    let env = Env::new();
    let floor = env.fl(
        "org.toml",
        "executors = [\"*\"]\n[limits]\nwall = \"10m\"\n[network]\nallow = [\"api.openai.com:443\"]\n[filesystem]\nprotected_paths = [\"deploy/**\"]\n",
    );
    let policy = env.load("claude-code").unwrap();
    let v = policy.values();
    assert_eq!(v.limits.wall, Some(Duration::from_secs(600)));
    assert!(
        v.network.allow.is_empty(),
        "anthropic is not in the floor's list"
    );
    assert!(
        v.filesystem
            .protected_paths
            .contains(&"deploy/**".to_owned())
    );
    assert!(
        v.filesystem
            .protected_paths
            .contains(&".github/**".to_owned())
    );
    for key in ["limits.wall", "network.allow", "filesystem.protected_paths"] {
        let origin = policy.origin(key).unwrap();
        assert_eq!(
            (origin.layer, &origin.file),
            (Layer::Floor, &floor),
            "{key}"
        );
    }
    // A floor value that is looser than the built-in one changes nothing.
    assert_eq!(policy.origin("limits.idle").unwrap().layer, Layer::Builtin);
}

#[test]
fn operator_cannot_loosen_the_floor() {
    let cases = [
        (
            "[limits]\nwall = \"10m\"\n",
            "[limits]\nwall = \"2h\"\n",
            "[limits] wall = \"2h\" widens the floor set at",
        ),
        (
            "[network]\nmode = \"allow\"\n",
            "[network]\nmode = \"host\"\n",
            "[network] mode = \"host\" widens",
        ),
        (
            "[network]\nallow = [\"*.corp.example.com:443\"]\n",
            "[network]\nallow = [\"api.anthropic.com:443\"]\n",
            "[network] allow = [\"api.anthropic.com:443\"] widens",
        ),
        (
            "[filesystem]\nhidden = [\"/srv\"]\n",
            "[filesystem]\nhidden = [\"/opt\"]\n",
            "[filesystem] hidden = [\"/opt\"] widens",
        ),
        (
            "[gates]\nrequire_approval = \"always\"\n",
            "[gates]\nrequire_approval = \"never\"\n",
            "[gates] require_approval = \"never\" widens",
        ),
        (
            "strict = true\n",
            "strict = false\n",
            "strict = false widens",
        ),
        (
            "enabled = false\n",
            "enabled = true\n",
            "enabled = true widens",
        ),
        (
            "[retry]\non = [\"crashed\"]\n",
            "[retry]\non = [\"crashed\", \"timed-out\"]\n",
            "[retry] on = [\"crashed\", \"timed-out\"] widens",
        ),
    ];
    for (floor_text, op_text, expected) in cases {
        let env = Env::new();
        let floor = env.fl("org.toml", &format!("executors = [\"*\"]\n{floor_text}"));
        let op = env.op("claude-code.toml", &format!("# operator\n{op_text}"));
        let msg = env.err("claude-code");
        let line = 1 + op_text.lines().count();
        assert!(msg.starts_with(&format!("{op}:{line}: ")), "{msg}");
        assert!(msg.contains(expected), "{msg}");
        assert!(
            msg.contains(&format!("widens the floor set at {floor}:")),
            "{msg}"
        );
    }
}

#[test]
fn operator_may_narrow_below_the_floor() {
    let env = Env::new();
    env.fl("org.toml", "executors = [\"*\"]\n[limits]\nwall = \"1h\"\n[network]\nallow = [\"*.anthropic.com:443\"]\n");
    let op = env.op("claude-code.toml", "[limits]\nwall = \"5m\"\n");
    let policy = env.load("claude-code").unwrap();
    assert_eq!(policy.values().limits.wall, Some(Duration::from_secs(300)));
    assert_eq!(policy.origin("limits.wall").unwrap().file, op);
    // Built-in `api.anthropic.com` is covered by the floor's `*.anthropic.com`.
    assert_eq!(
        policy.origin("network.allow").unwrap().layer,
        Layer::Builtin
    );
}

#[test]
fn task_spec_narrows_but_never_widens() {
    let env = Env::new();
    let mut policy = env.load("claude-code").unwrap();
    let task = TaskNarrowing {
        source: "spec.yaml".into(),
        allowed_paths: Some(vec!["src/*".into()]),
        forbidden_paths: vec!["src/secret.rs".into()],
        timeout: Some(Duration::from_secs(600)),
        max_attempts: Some(1),
        network: Some(NetworkMode::None),
        ..TaskNarrowing::default()
    };
    policy.narrow(&task).unwrap();
    let v = policy.values();
    assert_eq!(v.limits.wall, Some(Duration::from_secs(600)));
    assert_eq!(v.network.mode, NetworkMode::None);
    assert_eq!(v.retry.max_attempts, 1);
    let wall = policy.origin("limits.wall").unwrap();
    assert_eq!(
        (wall.layer, wall.file.as_str(), wall.line),
        (Layer::TaskSpec, "spec.yaml", None)
    );

    let widen = [
        TaskNarrowing {
            timeout: Some(Duration::from_secs(3600)),
            ..TaskNarrowing::default()
        },
        TaskNarrowing {
            network: Some(NetworkMode::Allow),
            ..TaskNarrowing::default()
        },
        TaskNarrowing {
            max_attempts: Some(5),
            ..TaskNarrowing::default()
        },
        TaskNarrowing {
            require_approval: Some(codencer_policy::ApprovalMode::Never),
            ..TaskNarrowing::default()
        },
    ];
    for mut task in widen {
        task.source = "spec.yaml".into();
        let before = policy.values().clone();
        let err = policy.narrow(&task).unwrap_err().to_string();
        assert!(err.starts_with("spec.yaml: "), "{err}");
        assert!(err.contains("a TaskSpec may only narrow"), "{err}");
        assert_eq!(
            policy.values(),
            &before,
            "a refused narrowing changes nothing"
        );
    }

    let mut fresh = env.load("claude-code").unwrap();
    let err = fresh
        .narrow(&TaskNarrowing {
            source: "spec.yaml".into(),
            allow_hosts: Some(vec!["evil.example.com:443".into()]),
            ..TaskNarrowing::default()
        })
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "spec.yaml: [network] allow = [\"evil.example.com:443\"] would widen the policy ([\"api.anthropic.com:443\"], set at builtin:claude-code.toml:4); a TaskSpec may only narrow"
    );
}

#[test]
fn task_allowed_paths_intersect_with_policy() {
    let env = Env::new();
    env.op(
        "shell.toml",
        "[filesystem]\nallowed_paths = [\"src/**\", \"docs/**\"]\n",
    );
    let mut policy = env.load("shell").unwrap();
    policy
        .narrow(&TaskNarrowing {
            source: "spec.yaml".into(),
            allowed_paths: Some(vec!["src/*".into(), "tests/**".into()]),
            ..TaskNarrowing::default()
        })
        .unwrap();
    let verdict = |file: &str| {
        check_changes(
            &policy,
            &ChangeSummary {
                files: vec![file.into()],
                insertions: 1,
                deletions: 0,
            },
        )
        .verdict
    };
    assert_eq!(verdict("src/a.rs"), Verdict::Allow);
    assert_eq!(
        verdict("src/a/b.rs"),
        Verdict::Deny,
        "literal separator: src/* is one level"
    );
    assert_eq!(
        verdict("tests/x.rs"),
        Verdict::Deny,
        "the task cannot add tests/** to the policy"
    );
    assert_eq!(
        verdict("docs/x.md"),
        Verdict::Deny,
        "the task did not allow docs/**"
    );
    let eval = check_changes(
        &policy,
        &ChangeSummary {
            files: vec!["tests/x.rs".into()],
            ..ChangeSummary::default()
        },
    );
    assert_eq!(eval.decisions[0].rule, "filesystem.allowed_paths");
}

fn bad(env: &Env, text: &str) -> (String, String) {
    let file = env.op("claude-code.toml", text);
    (file, env.err("claude-code"))
}

#[test]
fn bad_policies_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[limits]\nwal = \"3m\"\n",
            ":2: [limits] wal: unknown key (known here: wall, idle, cpu, memory, pids, open_files, output)",
        ),
        (
            "colour = 1\n",
            ":1: colour: unknown key (known here: enabled, strict, filesystem, network, limits, env, gates, retry, sandbox, executors, profile)",
        ),
        (
            "[network.proxy]\nx = 1\n",
            ":1: [network] proxy: unknown key",
        ),
        (
            "[limits]\n\nwall = \"3x\"\n",
            ":3: [limits] wall = \"3x\": not a duration (use e.g. \"30m\", \"90s\", \"1h30m\")",
        ),
        (
            "[limits]\nwall = 30\n",
            ":2: [limits] wall: expected a duration string like \"30m\", found integer",
        ),
        (
            "[limits]\nmemory = \"4 gigs\"\n",
            ":2: [limits] memory = \"4 gigs\": not a size (use e.g. \"512MiB\", \"2GiB\", \"64KB\")",
        ),
        (
            "[limits]\npids = 0\n",
            ":2: [limits] pids = 0: must be an integer of at least 1",
        ),
        (
            "[network]\nmode = \"open\"\n",
            ":2: [network] mode = \"open\": not one of \"none\", \"allow\", \"host\"",
        ),
        (
            "[network]\nallow = [\n  \"ok.example.com:443\",\n  \"127.1:80\",\n]\n",
            ":4: [network] allow = \"127.1:80\": `127.1` looks like an IP address in disguise",
        ),
        (
            "[network]\nforward = [\"10.1.2.3:11434\"]\n",
            ":2: [network] forward = \"10.1.2.3:11434\": `10.1.2.3` is not on the host's loopback",
        ),
        (
            "[filesystem]\nread_only = [\"relative/dir\"]\n",
            ":2: [filesystem] read_only = \"relative/dir\": not an absolute path",
        ),
        (
            "[filesystem]\nprotected_paths = [\"/abs/**\"]\n",
            ":2: [filesystem] protected_paths = \"/abs/**\": globs are relative to the worktree root",
        ),
        (
            "[filesystem]\nprotected_paths = [\"a[\"]\n",
            ":2: [filesystem] protected_paths = \"a[\": not a glob",
        ),
        (
            "[filesystem]\nhidden = \"/x\"\n",
            ":2: [filesystem] hidden: expected an array of strings, found string",
        ),
        (
            "[env.secrets]\nKEY = { vault = \"x\" }\n",
            ":2: [env.secrets] KEY = { vault = \"x\" }: unknown secret source `vault`",
        ),
        (
            "[env]\npass = [\"NOT-A-NAME\"]\n",
            ":2: [env] pass = \"NOT-A-NAME\": not an environment variable name",
        ),
        (
            "[retry]\non = [\"flaky\"]\n",
            ":2: [retry] on = \"flaky\": not one of \"validation-failed\", \"timed-out\", \"crashed\"",
        ),
        (
            "limits = 3\n",
            ":1: limits: expected a table, found integer",
        ),
        (
            "executors = [\"Claude Code\"]\n",
            ":1: executors = \"Claude Code\": names use lowercase letters",
        ),
        ("[limits\nwall = 1\n", ":1: invalid TOML"),
    ];
    for (text, expected) in cases {
        let env = Env::new();
        let (file, msg) = bad(&env, text);
        assert!(
            msg.starts_with(&format!("{file}{expected}")),
            "got: {msg}\nwant: {file}{expected}"
        );
    }
}

#[test]
fn contradictions_are_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "[filesystem]\nread_write = [\"/data\"]\nhidden = [\"/data\"]\n",
            "`/data` is both mounted and hidden",
        ),
        (
            "[filesystem]\nread_only = [\"/data\"]\nread_write = [\"/data\"]\n",
            "`/data` is both read-only and read-write",
        ),
        (
            "[filesystem]\nallowed_paths = [\"src/**\"]\nforbidden_paths = [\"src/**\"]\n",
            "is both allowed and forbidden",
        ),
        (
            "strict = true\n[network]\nmode = \"host\"\n",
            "`strict` refuses network mode \"host\"",
        ),
        (
            "strict = true\n[gates]\nrequire_approval = \"never\"\n",
            "`strict` requires approval for protected paths",
        ),
        (
            "[limits]\nwall = \"5m\"\nidle = \"10m\"\n",
            "could never fire",
        ),
        (
            "[env.set]\nANTHROPIC_API_KEY = \"x\"\n",
            "is both a fixed value and a secret",
        ),
    ];
    for (text, expected) in cases {
        let env = Env::new();
        let (file, msg) = bad(&env, text);
        assert!(msg.contains(&file), "{msg}");
        assert!(msg.contains(expected), "got: {msg}\nwant: {expected}");
    }
}

#[test]
fn strict_profile_refuses_host_mode_from_any_layer() {
    let env = Env::new();
    let op = env.op("claude-code.toml", "[network]\nmode = \"host\"\n");
    env.load("claude-code").unwrap();
    let err = load(&env.sources(), "claude-code", Some("strict"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{op}:2: [network] mode contradicts builtin:strict.toml:5: strict: `strict` refuses network mode \"host\"; use \"none\" or \"allow\""
        )
    );
}

#[test]
fn same_layer_same_rank_files_must_agree() {
    let env = Env::new();
    let a = env.op("a.toml", "executors = [\"codex\"]\n[limits]\npids = 10\n");
    let b = env.op("b.toml", "executors = [\"codex\"]\n[limits]\npids = 20\n");
    let err = env.err("codex");
    assert_eq!(
        err,
        format!(
            "{a}:3 and {b}:3 both set [limits] pids but disagree (10 vs 20); files of the same layer that apply to the same executor must agree (remove one)"
        )
    );
}

#[test]
fn unknown_profile_is_an_error() {
    let env = Env::new();
    let err = load(&env.sources(), "codex", Some("paranoid")).unwrap_err();
    assert!(matches!(err, PolicyError::UnknownProfile { .. }), "{err}");
    env.op(
        "paranoid.toml",
        "profile = \"paranoid\"\n[limits]\nwall = \"1m\"\n",
    );
    let policy = load(&env.sources(), "codex", Some("paranoid")).unwrap();
    assert_eq!(policy.values().limits.wall, Some(Duration::from_secs(60)));
    assert_eq!(
        env.load("codex").unwrap().values().limits.wall,
        Some(Duration::from_secs(1800))
    );
}
