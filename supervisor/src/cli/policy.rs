//! `codencer policy explain|check` and `codencer doctor`.

use std::path::Path;
use std::process::ExitCode;

use codencer_policy::PolicySources;
use serde_json::json;

use super::common::*;
use crate::plan::RunPlan;
use crate::spec::TaskSpec;
use crate::text::serde_name;

/// The effective policy of each step of a TaskSpec.
pub fn explain(spec_path: &Path, json: bool) -> ExitCode {
    let spec = match TaskSpec::load(spec_path) {
        Ok(spec) => spec,
        Err(errors) => {
            eprintln!("error: invalid TaskSpec\n{errors}");
            return exit(EXIT_INVALID);
        }
    };
    let plan = match RunPlan::resolve(spec, &PolicySources::from_env()) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: the policy refuses this TaskSpec\n{err}");
            return exit(EXIT_INVALID);
        }
    };
    if json {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                json!({
                    "step": i + 1,
                    "executor": step.spec.executor,
                    "policy": codencer_policy::explain(&step.policy),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "task": plan.spec.name, "steps": steps }))
                .unwrap_or_default()
        );
    } else {
        for (i, step) in plan.steps.iter().enumerate() {
            if plan.steps.len() > 1 {
                println!("== step {} ({}) ==", i + 1, step.spec.executor);
            }
            println!("{}", codencer_policy::explain(&step.policy));
        }
    }
    exit(EXIT_PASSED)
}

/// Validates the policy files of a directory.
pub fn check(dir: &Path) -> ExitCode {
    match codencer_policy::check_dir(dir) {
        Ok(files) => {
            for file in &files {
                let applies = if file.executors.is_empty() {
                    "every executor".to_string()
                } else {
                    file.executors.join(", ")
                };
                let profile = file
                    .profile
                    .as_ref()
                    .map(|p| format!(", profile `{p}`"))
                    .unwrap_or_default();
                println!(
                    "ok  {} ({} key(s), applies to {applies}{profile})",
                    file.path.display(),
                    file.keys
                );
            }
            if files.is_empty() {
                println!("no policy files in {}", dir.display());
            }
            exit(EXIT_PASSED)
        }
        Err(errors) => {
            for err in &errors {
                eprintln!("error: {err}");
            }
            eprintln!("{} problem(s) in {}", errors.len(), dir.display());
            exit(EXIT_INVALID)
        }
    }
}

/// What this host can enforce, per sandbox layer and per limit.
pub fn doctor(json: bool) -> ExitCode {
    let report = codencer_sandbox::probe_host();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return exit(EXIT_PASSED);
    }
    println!(
        "kernel {} · running as {} · landlock ABI {}",
        report.kernel,
        if report.root {
            "root"
        } else {
            "a regular user"
        },
        report
            .landlock_abi
            .map_or_else(|| "none".to_string(), |abi| abi.to_string())
    );
    println!("{:<12} {:<13} detail", "LAYER", "STATUS");
    for layer in &report.layers {
        println!(
            "{:<12} {:<13} {}",
            layer.layer.name(),
            serde_name(&layer.status),
            layer.detail
        );
        if let Some(fix) = &layer.fix {
            println!("{:<12} {:<13} fix: {fix}", "", "");
        }
    }
    println!("{:<12} {:<13} detail", "LIMIT", "MECHANISM");
    for limit in &report.limits {
        println!(
            "{:<12} {:<13} {}",
            serde_name(&limit.kind),
            serde_name(&limit.mechanism),
            limit.detail
        );
    }
    exit(EXIT_PASSED)
}
