//! `codencer policy check DIR`: validate a directory of policy files.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::builtin;
use crate::error::PolicyError;
use crate::model::Layer;
use crate::resolve;

/// A file that passed the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedFile {
    /// The file.
    pub path: PathBuf,
    /// Executors it applies to (`*` for all).
    pub executors: Vec<String>,
    /// The profile it defines, if any.
    pub profile: Option<String>,
    /// Number of keys it sets.
    pub keys: usize,
}

/// Parses every `*.toml` in `dir` and resolves it as the operator layer over the built-in
/// files for every executor and profile it mentions (and every built-in executor), so
/// conflicts and contradictions are found too. Returns every error, not just the first.
pub fn check_dir(dir: &Path) -> Result<Vec<CheckedFile>, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(source) => {
            return Err(vec![PolicyError::ReadDir {
                dir: dir.to_owned(),
                source,
            }]);
        }
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    for path in &paths {
        match resolve::read_file(path, Layer::Operator) {
            Ok(file) => parsed.push((path.clone(), file)),
            Err(err) => errors.push(err),
        }
    }
    let mut files = match resolve::builtin_files() {
        Ok(files) => files,
        Err(err) => return Err(vec![err]),
    };
    files.extend(parsed.iter().map(|(_, f)| f.clone()));

    let mut executors: Vec<String> = builtin::EXECUTORS.iter().map(|e| (*e).to_owned()).collect();
    let mut profiles: Vec<Option<String>> = vec![None];
    for file in &files {
        executors.extend(file.executors.iter().filter(|e| *e != "*").cloned());
        profiles.push(file.profile.clone());
    }
    executors.sort();
    executors.dedup();
    profiles.sort();
    profiles.dedup();
    let mut seen = Vec::new();
    for executor in &executors {
        for profile in &profiles {
            if let Err(err) = resolve::resolve(&files, executor, profile.as_deref()) {
                let text = err.to_string();
                if !seen.contains(&text) {
                    seen.push(text);
                    errors.push(err);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(parsed
        .into_iter()
        .map(|(path, file)| CheckedFile {
            path,
            executors: file.executors,
            profile: file.profile,
            keys: file.entries.len(),
        })
        .collect())
}
