//! The one prompt template shared by every executor, so results are comparable.

/// What goes into the prompt.
#[derive(Debug, Clone, Default)]
pub struct PromptInput<'a> {
    pub goal: &'a str,
    pub context: Option<&'a str>,
    pub constraints: &'a [String],
    pub acceptance: &'a [String],
    pub allowed_paths: &'a [String],
    pub forbidden_paths: &'a [String],
    /// 1-based attempt number.
    pub attempt: u32,
    /// Evidence of earlier attempts' failures (validator output, gate reasons), oldest first.
    pub feedback: &'a [String],
}

/// Renders the prompt. The text is stable: changing it changes every executor's input, so
/// it is covered by a snapshot test and documented in docs/executors.md.
pub fn render_prompt(input: &PromptInput<'_>) -> String {
    let mut out = String::new();
    out.push_str("# Task\n\n");
    out.push_str(input.goal.trim_end());
    out.push('\n');
    if let Some(context) = input.context.filter(|c| !c.trim().is_empty()) {
        out.push_str("\n# Context\n\n");
        out.push_str(context.trim_end());
        out.push('\n');
    }
    section(&mut out, "Constraints", input.constraints);
    section(&mut out, "Acceptance criteria", input.acceptance);
    section(
        &mut out,
        "You may only change these paths",
        input.allowed_paths,
    );
    section(
        &mut out,
        "You must not change these paths",
        input.forbidden_paths,
    );
    if !input.feedback.is_empty() {
        out.push_str(&format!(
            "\n# Earlier attempts failed (this is attempt {})\n",
            input.attempt
        ));
        for (i, evidence) in input.feedback.iter().enumerate() {
            out.push_str(&format!("\n## Failure evidence {}\n\n", i + 1));
            out.push_str(evidence.trim_end());
            out.push('\n');
        }
    }
    out.push_str(
        "\n# Rules\n\nWork only inside the current directory (a git worktree). \
         Do not commit; Codencer records your changes.\n",
    );
    out
}

fn section(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("\n# {title}\n\n"));
    for item in items {
        out.push_str(&format!("- {item}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_snapshot() {
        let constraints = vec!["keep public API".to_string()];
        let allowed = vec!["src/**".to_string()];
        let feedback = vec!["validator `test` failed (exit 1):\nassertion failed".to_string()];
        let text = render_prompt(&PromptInput {
            goal: "Fix the bug.\n",
            context: Some("It is in src/lib.rs."),
            constraints: &constraints,
            acceptance: &[],
            allowed_paths: &allowed,
            forbidden_paths: &[],
            attempt: 2,
            feedback: &feedback,
        });
        assert_eq!(
            text,
            "# Task\n\nFix the bug.\n\n# Context\n\nIt is in src/lib.rs.\n\n# Constraints\n\n\
             - keep public API\n\n# You may only change these paths\n\n- src/**\n\n\
             # Earlier attempts failed (this is attempt 2)\n\n## Failure evidence 1\n\n\
             validator `test` failed (exit 1):\nassertion failed\n\n# Rules\n\n\
             Work only inside the current directory (a git worktree). Do not commit; \
             Codencer records your changes.\n"
        );
    }
}
