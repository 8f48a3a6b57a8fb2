//! Policy files shipped inside the binary.

/// `(file name, contents)` of every built-in policy file.
pub(crate) const FILES: &[(&str, &str)] = &[
    ("default.toml", include_str!("../builtin/default.toml")),
    ("strict.toml", include_str!("../builtin/strict.toml")),
    ("shell.toml", include_str!("../builtin/shell.toml")),
    (
        "claude-code.toml",
        include_str!("../builtin/claude-code.toml"),
    ),
    ("codex.toml", include_str!("../builtin/codex.toml")),
    ("gemini.toml", include_str!("../builtin/gemini.toml")),
    ("qwen.toml", include_str!("../builtin/qwen.toml")),
    ("opencode.toml", include_str!("../builtin/opencode.toml")),
    ("aider.toml", include_str!("../builtin/aider.toml")),
    ("openclaw.toml", include_str!("../builtin/openclaw.toml")),
    (
        "antigravity.toml",
        include_str!("../builtin/antigravity.toml"),
    ),
];

/// Executors that have a built-in policy file.
pub const EXECUTORS: &[&str] = &[
    "shell",
    "claude-code",
    "codex",
    "gemini",
    "qwen",
    "opencode",
    "aider",
    "openclaw",
    "antigravity",
];
