//! Loading and layering: built-in < operator, clamped by the floor, then contradictions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::builtin;
use crate::effective::{EffectivePolicy, Setting};
use crate::error::{FloorViolation, PolicyError, display_key};
use crate::model::{Layer, Origin};
use crate::parse::{self, ParsedFile};
use crate::schema::{self, Narrow};
use crate::value::{self, Value};

/// Where policy files are read from. The supervisor resolves the environment and passes
/// paths; a missing directory counts as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySources {
    /// Whether the built-in files apply (tests may turn them off).
    pub builtin: bool,
    /// The operator's directory, normally `$CODENCER_CONFIG/policy`.
    pub operator_dir: Option<PathBuf>,
    /// The organisation-wide floor, normally `/etc/codencer/policy`.
    pub floor_dir: Option<PathBuf>,
}

impl PolicySources {
    /// The floor directory used by [`PolicySources::from_env`].
    pub const SYSTEM_FLOOR_DIR: &'static str = "/etc/codencer/policy";

    /// Built-in files, `$CODENCER_CONFIG/policy` (else `$XDG_CONFIG_HOME/codencer/policy`,
    /// else `$HOME/.config/codencer/policy`), and `/etc/codencer/policy`.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let config = var("CODENCER_CONFIG")
            .or_else(|| var("XDG_CONFIG_HOME").map(|x| x.join("codencer")))
            .or_else(|| var("HOME").map(|h| h.join(".config").join("codencer")));
        Self {
            builtin: true,
            operator_dir: config.map(|c| c.join("policy")),
            floor_dir: Some(PathBuf::from(Self::SYSTEM_FLOOR_DIR)),
        }
    }
}

pub(crate) fn builtin_files() -> Result<Vec<ParsedFile>, PolicyError> {
    builtin::FILES
        .iter()
        .map(|(name, text)| {
            let stem = name.trim_end_matches(".toml");
            parse::parse_file(&format!("builtin:{name}"), Layer::Builtin, stem, text)
        })
        .collect()
}

/// Parses every `*.toml` in `dir`, sorted by name. A missing directory is empty.
pub(crate) fn dir_files(dir: &Path, layer: Layer) -> Result<Vec<ParsedFile>, PolicyError> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PolicyError::ReadDir {
                dir: dir.to_owned(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| PolicyError::ReadDir {
            dir: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|path| read_file(path, layer)).collect()
}

pub(crate) fn read_file(path: &Path, layer: Layer) -> Result<ParsedFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse::parse_file(&path.display().to_string(), layer, &stem, &text)
}

/// Reads every file the sources name.
pub(crate) fn all_files(sources: &PolicySources) -> Result<Vec<ParsedFile>, PolicyError> {
    let mut files = if sources.builtin {
        builtin_files()?
    } else {
        Vec::new()
    };
    if let Some(dir) = &sources.operator_dir {
        files.extend(dir_files(dir, Layer::Operator)?);
    }
    if let Some(dir) = &sources.floor_dir {
        files.extend(dir_files(dir, Layer::Floor)?);
    }
    Ok(files)
}

/// Resolves the effective policy of `executor`, with `profile` if the TaskSpec names one.
pub fn load(
    sources: &PolicySources,
    executor: &str,
    profile: Option<&str>,
) -> Result<EffectivePolicy, PolicyError> {
    resolve(&all_files(sources)?, executor, profile)
}

/// Precedence inside one layer: generic < executor-specific < generic profile <
/// executor-specific profile.
fn rank(file: &ParsedFile) -> u8 {
    u8::from(file.profile.is_some()) * 2 + u8::from(!file.is_generic())
}

fn origin(file: &ParsedFile, key: &str, line: usize) -> Origin {
    Origin {
        layer: file.layer,
        file: file.name.clone(),
        key: key.to_owned(),
        line: Some(line),
    }
}

pub(crate) fn resolve(
    files: &[ParsedFile],
    executor: &str,
    profile: Option<&str>,
) -> Result<EffectivePolicy, PolicyError> {
    if let Some(wanted) = profile
        && !files.iter().any(|f| f.profile.as_deref() == Some(wanted))
    {
        let mut known: Vec<&str> = files.iter().filter_map(|f| f.profile.as_deref()).collect();
        known.sort_unstable();
        known.dedup();
        return Err(PolicyError::UnknownProfile {
            profile: wanted.to_owned(),
            known: known.join(", "),
        });
    }
    let mut applicable: Vec<&ParsedFile> = files
        .iter()
        .filter(|f| f.applies_to(executor))
        .filter(|f| f.profile.is_none() || f.profile.as_deref() == profile)
        .collect();
    applicable.sort_by_key(|f| (f.layer, rank(f)));

    let mut merged = merge(applicable.iter().filter(|f| f.layer != Layer::Floor))?;
    let floor = merge(applicable.iter().filter(|f| f.layer == Layer::Floor))?;
    apply_floor(&mut merged, floor)?;
    check_contradictions(&merged)?;
    let names = applicable.iter().map(|f| f.name.clone()).collect();
    Ok(EffectivePolicy::new(
        executor.to_owned(),
        profile.map(str::to_owned),
        names,
        merged,
    ))
}

/// Later files override earlier ones; two files of the same layer and rank must agree.
fn merge<'a>(
    files: impl Iterator<Item = &'a &'a ParsedFile>,
) -> Result<BTreeMap<String, Setting>, PolicyError> {
    let mut out: BTreeMap<String, (Setting, u8)> = BTreeMap::new();
    for file in files {
        for (key, entry) in &file.entries {
            let new = Setting {
                value: entry.value.clone(),
                origin: origin(file, key, entry.line),
            };
            if let Some((old, old_rank)) = out.get(key)
                && old.origin.layer == file.layer
                && *old_rank == rank(file)
                && old.value != entry.value
            {
                return Err(PolicyError::Conflict {
                    key: key.clone(),
                    first: old.origin.location(),
                    second: new.origin.location(),
                    values: format!("{} vs {}", old.value, entry.value),
                });
            }
            out.insert(key.clone(), (new, rank(file)));
        }
    }
    Ok(out.into_iter().map(|(k, (s, _))| (k, s)).collect())
}

fn apply_floor(
    merged: &mut BTreeMap<String, Setting>,
    floor: BTreeMap<String, Setting>,
) -> Result<(), PolicyError> {
    for (key, bound) in floor {
        let narrow = schema::lookup_any(&key).map_or(Narrow::Free, |spec| spec.narrow);
        let Some(current) = merged.get_mut(&key) else {
            merged.insert(key, bound);
            continue;
        };
        if narrow == Narrow::Free {
            *current = bound;
            continue;
        }
        if value::within(&current.value, &bound.value, narrow) {
            continue;
        }
        if current.origin.layer == Layer::Operator {
            return Err(PolicyError::WidensFloor(Box::new(FloorViolation {
                file: current.origin.file.clone(),
                line: current.origin.line.unwrap_or(0),
                key,
                value: current.value.to_string(),
                floor_file: bound.origin.file.clone(),
                floor_line: bound.origin.line.unwrap_or(0),
                floor_value: bound.value.to_string(),
                hint: widen_hint(narrow).to_owned(),
            })));
        }
        // A built-in default looser than the floor is not the operator's choice:
        // clamp it and credit the floor.
        current.value = value::meet(&current.value, &bound.value, narrow);
        current.origin = bound.origin;
    }
    Ok(())
}

pub(crate) fn widen_hint(narrow: Narrow) -> &'static str {
    match narrow {
        Narrow::Smaller => "use a value no larger than the floor's, or remove the key",
        Narrow::TrueNarrower => "the floor requires `true`; remove the key",
        Narrow::FalseNarrower => "the floor requires `false`; remove the key",
        Narrow::Stricter => "use a value at least as strict as the floor's, or remove the key",
        Narrow::Subset => "list only entries the floor allows, or remove the key",
        Narrow::Superset => "keep every entry of the floor's list, or remove the key",
        Narrow::Free => "remove the key",
    }
}

fn contradiction(a: &Setting, b: &Setting, problem: String) -> PolicyError {
    let at = |s: &Setting| format!("{}: {}", s.origin.location(), display_key(&s.origin.key));
    PolicyError::Contradiction {
        first: at(a),
        second: at(b),
        problem,
    }
}

/// Values that cannot all hold at once, or that `strict` forbids.
pub(crate) fn check_contradictions(s: &BTreeMap<String, Setting>) -> Result<(), PolicyError> {
    let strict = s.get("strict").filter(|st| st.value == Value::Bool(true));
    if let Some(strict) = strict {
        if let Some(mode) = s.get("network.mode")
            && mode.value == Value::Mode(crate::model::NetworkMode::Host)
        {
            return Err(contradiction(
                mode,
                strict,
                "`strict` refuses network mode \"host\"; use \"none\" or \"allow\"".into(),
            ));
        }
        if let Some(approval) = s.get("gates.require_approval")
            && approval.value == Value::Approval(crate::model::ApprovalMode::Never)
        {
            return Err(contradiction(
                approval,
                strict,
                "`strict` requires approval for protected paths; use \"protected-paths\" or \"always\"".into(),
            ));
        }
    }
    if let Some(hidden) = s.get("filesystem.hidden")
        && let Value::Paths(hidden_paths) = &hidden.value
    {
        for key in ["filesystem.read_only", "filesystem.read_write"] {
            let Some(mounted) = s.get(key) else { continue };
            let Value::Paths(paths) = &mounted.value else {
                continue;
            };
            if let Some(p) = paths
                .iter()
                .find(|p| hidden_paths.iter().any(|h| p.starts_with(h)))
            {
                return Err(contradiction(
                    mounted,
                    hidden,
                    format!(
                        "`{}` is both mounted and hidden; remove it from one list",
                        p.display()
                    ),
                ));
            }
        }
    }
    if let (Some(ro), Some(rw)) = (
        s.get("filesystem.read_only"),
        s.get("filesystem.read_write"),
    ) && let (Value::Paths(a), Value::Paths(b)) = (&ro.value, &rw.value)
        && let Some(p) = a.iter().find(|p| b.contains(p))
    {
        return Err(contradiction(
            ro,
            rw,
            format!(
                "`{}` is both read-only and read-write; keep one",
                p.display()
            ),
        ));
    }
    if let (Some(allowed), Some(forbidden)) = (
        s.get("filesystem.allowed_paths"),
        s.get("filesystem.forbidden_paths"),
    ) && let (Value::Strings(a), Value::Strings(f)) = (&allowed.value, &forbidden.value)
        && let Some(glob) = a.iter().find(|g| f.contains(g))
    {
        return Err(contradiction(
            allowed,
            forbidden,
            format!("glob {glob:?} is both allowed and forbidden; keep one"),
        ));
    }
    if let (Some(idle), Some(wall)) = (s.get("limits.idle"), s.get("limits.wall"))
        && let (Value::Duration(i), Value::Duration(w)) = (&idle.value, &wall.value)
        && i > w
        && idle.origin.file == wall.origin.file
    {
        return Err(contradiction(
            idle,
            wall,
            "the idle limit is longer than the wall limit and could never fire; shorten it".into(),
        ));
    }
    for (key, setting) in s {
        let Some(name) = key.strip_prefix("env.set.") else {
            continue;
        };
        if let Some(secret) = s.get(&format!("env.secrets.{name}")) {
            return Err(contradiction(
                setting,
                secret,
                format!("`{name}` is both a fixed value and a secret; keep one"),
            ));
        }
    }
    if let Some(pass) = s.get("env.pass")
        && let Value::Strings(names) = &pass.value
    {
        for name in names {
            let fixed = s
                .get(&format!("env.set.{name}"))
                .or_else(|| s.get(&format!("env.secrets.{name}")));
            if let Some(fixed) = fixed {
                return Err(contradiction(
                    pass,
                    fixed,
                    format!("`{name}` is both passed through and set by the policy; keep one"),
                ));
            }
        }
    }
    Ok(())
}
