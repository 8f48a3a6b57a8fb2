//! Verdicts on the executor phase, and the failure evidence fed to the next attempt.

use std::path::Path;
use std::time::Duration;

use codencer_adapters::{ExecutorReport, Outcome};
use codencer_store::AttemptStatus;

use crate::launch::{Ending, ProcessOutcome};

/// How much output a piece of evidence quotes.
const EVIDENCE_TAIL: usize = 4000;

/// A failed validator, as the next attempt is told about it.
#[derive(Debug, Clone)]
pub(crate) struct FailedValidation {
    pub name: String,
    pub command: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub output_tail: String,
}

/// The attempt's status when the executor phase already decides it, and why.
pub(super) fn executor_verdict(
    outcome: &ProcessOutcome,
    report: &ExecutorReport,
    wall: Duration,
) -> (Option<AttemptStatus>, Option<String>) {
    match outcome.ending {
        Ending::WallTimeout => {
            return (
                Some(AttemptStatus::TimedOut),
                Some(format!(
                    "executor timed out after {}s (wall time)",
                    wall.as_secs()
                )),
            );
        }
        Ending::IdleTimeout => {
            return (
                Some(AttemptStatus::TimedOut),
                Some("executor timed out: no output for too long (idle time)".into()),
            );
        }
        Ending::Cancelled => return (Some(AttemptStatus::Killed), Some("cancelled".into())),
        Ending::OutputLimit => {
            return (
                Some(AttemptStatus::Killed),
                Some(format!(
                    "executor killed: output exceeded the limit ({} bytes written)",
                    outcome.output_bytes
                )),
            );
        }
        Ending::Exited => {}
    }
    if let Some(signal) = outcome.exit.signal {
        let status = if signal == 9 {
            AttemptStatus::Killed
        } else {
            AttemptStatus::Crashed
        };
        return (
            Some(status),
            Some(format!("executor killed by signal {signal}")),
        );
    }
    match report.outcome {
        Outcome::Success | Outcome::Unreported => {}
        // Anything but success is a failed turn, including outcomes added later.
        _ => {
            let why = report
                .error
                .clone()
                .unwrap_or_else(|| "no detail given".to_string());
            return (
                Some(AttemptStatus::Failed),
                Some(format!(
                    "executor reported {}: {why}",
                    outcome_name(report.outcome)
                )),
            );
        }
    }
    match outcome.exit.code {
        Some(0) => (None, None),
        Some(code) => (
            Some(AttemptStatus::Failed),
            Some(format!("executor exited with code {code}")),
        ),
        None => (
            Some(AttemptStatus::Crashed),
            Some("executor ended without an exit status".into()),
        ),
    }
}

fn outcome_name(outcome: Outcome) -> String {
    crate::text::serde_name(&outcome)
}

/// Evidence about an executor that failed.
pub(super) fn from_executor(reason: &str, stderr: &Path, stdout: &Path) -> String {
    let mut text = format!("The executor failed: {reason}.\n");
    for (label, path) in [("stderr", stderr), ("stdout", stdout)] {
        let bytes = std::fs::read(path).unwrap_or_default();
        if !bytes.is_empty() {
            text.push_str(&format!(
                "Last {label}:\n{}\n",
                tail_text(&bytes, EVIDENCE_TAIL)
            ));
        }
    }
    text
}

/// Evidence about failed validators.
pub(super) fn from_validations(failed: &[FailedValidation]) -> String {
    let mut text = String::new();
    for v in failed {
        let code = v
            .exit_code
            .map_or_else(|| "no exit code".to_string(), |c| format!("exit code {c}"));
        text.push_str(&format!(
            "Validator `{}` (`{}`) {} ({code}).\n",
            v.name, v.command, v.status
        ));
        if !v.output_tail.is_empty() {
            text.push_str(&format!("Its output ended with:\n{}\n", v.output_tail));
        }
    }
    text
}

/// The last `max` bytes of `bytes` as text, cut at a character boundary.
pub(crate) fn tail_text(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim_end();
    if start > 0 {
        format!("[...]{text}")
    } else {
        text.to_string()
    }
}

pub(super) fn tail_file(path: &Path) -> String {
    tail_text(&std::fs::read(path).unwrap_or_default(), EVIDENCE_TAIL)
}
