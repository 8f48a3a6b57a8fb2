//! Layering, floors, narrowing, bad policies, evaluation and the explain snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod evaluate;
mod load;

use std::path::{Path, PathBuf};
use std::time::Duration;

use codencer_policy::{
    ChangeSummary, Enforcement, FailureKind, HostLayers, Layer, NetworkMode, PolicyError,
    PolicySources, SandboxLayer, TaskNarrowing, ValidationSummary, Verdict, admit, check_changes,
    check_dir, explain, gate_verdicts, load, retry_allowed,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Env {
    _tmp: tempfile::TempDir,
    operator: PathBuf,
    floor: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let operator = tmp.path().join("operator");
        let floor = tmp.path().join("floor");
        Self {
            _tmp: tmp,
            operator,
            floor,
        }
    }

    fn op(&self, name: &str, text: &str) -> String {
        write(&self.operator, name, text).display().to_string()
    }

    fn fl(&self, name: &str, text: &str) -> String {
        write(&self.floor, name, text).display().to_string()
    }

    fn sources(&self) -> PolicySources {
        PolicySources {
            builtin: true,
            operator_dir: Some(self.operator.clone()),
            floor_dir: Some(self.floor.clone()),
        }
    }

    fn load(&self, executor: &str) -> Result<codencer_policy::EffectivePolicy, PolicyError> {
        load(&self.sources(), executor, None)
    }

    fn err(&self, executor: &str) -> String {
        self.load(executor).unwrap_err().to_string()
    }
}
