//! `codencer executors`: every adapter, whether its binary is installed, its version, and
//! its built-in default policy.

use std::process::ExitCode;

use codencer_policy::PolicySources;
use serde::Serialize;

use super::common::*;
use crate::text::serde_name;

#[derive(Debug, Serialize)]
struct Listed {
    name: &'static str,
    binary: &'static str,
    found: bool,
    path: Option<String>,
    version: Option<String>,
    experimental: bool,
    install: &'static str,
    default_policy: DefaultPolicy,
}

#[derive(Debug, Serialize)]
struct DefaultPolicy {
    network: String,
    allow: Vec<String>,
    config_home_env: Option<String>,
    wall: Option<String>,
}

pub fn list(json: bool) -> ExitCode {
    let builtin = PolicySources {
        builtin: true,
        operator_dir: None,
        floor_dir: None,
    };
    let listed: Vec<Listed> = codencer_adapters::adapters()
        .iter()
        .map(|adapter| {
            let located = crate::executors::locate(*adapter).ok();
            let version = located
                .as_ref()
                .and_then(|l| crate::executors::version(&l.binary, adapter.version_args()));
            let policy = codencer_policy::load(&builtin, adapter.name(), None).ok();
            let values = policy.as_ref().map(|p| p.values());
            Listed {
                name: adapter.name(),
                binary: adapter.binary(),
                found: located.is_some(),
                path: located.map(|l| l.binary.display().to_string()),
                version,
                experimental: adapter.experimental(),
                install: adapter.install_hint(),
                default_policy: DefaultPolicy {
                    network: values
                        .map(|v| serde_name(&v.network.mode))
                        .unwrap_or_default(),
                    allow: values
                        .map(|v| {
                            v.network
                                .allow
                                .rules()
                                .iter()
                                .map(|r| r.to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                    config_home_env: values
                        .and_then(|v| v.env.config_home.clone())
                        .or_else(|| adapter.config_home_env().map(str::to_string)),
                    wall: values
                        .and_then(|v| v.limits.wall)
                        .map(|d| format!("{}s", d.as_secs())),
                },
            }
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
        return exit(EXIT_PASSED);
    }
    println!(
        "{:<12} {:<9} {:<28} {:<22} network",
        "EXECUTOR", "FOUND", "VERSION", "CONFIG HOME"
    );
    for e in &listed {
        let found = if e.found { "yes" } else { "no" };
        let tag = if e.experimental {
            " (experimental)"
        } else {
            ""
        };
        let network = if e.default_policy.allow.is_empty() {
            e.default_policy.network.clone()
        } else {
            format!(
                "{} {}",
                e.default_policy.network,
                e.default_policy.allow.join(",")
            )
        };
        println!(
            "{:<12} {:<9} {:<28} {:<22} {network}{tag}",
            e.name,
            found,
            e.version
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(27)
                .collect::<String>(),
            e.default_policy.config_home_env.as_deref().unwrap_or("-"),
        );
        if !e.found {
            println!("{:<12} install: {}", "", e.install);
        }
    }
    exit(EXIT_PASSED)
}
