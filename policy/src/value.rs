//! Typed policy values: parsing from TOML, rendering, and the per-key "narrower" order.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use crate::model::{
    ApprovalMode, FailureKind, NetworkMode, SandboxLayer, SecretSource, ViolationAction,
};
use crate::network::{Forward, HostRule};
use crate::schema::{Kind, Narrow};
use crate::units::{parse_bytes, parse_duration, render_bytes, render_duration};

/// A parsed value of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    Count(u64),
    Duration(Duration),
    Bytes(u64),
    Mode(NetworkMode),
    Approval(ApprovalMode),
    OnViolation(ViolationAction),
    Hosts(Vec<HostRule>),
    Forwards(Vec<Forward>),
    Paths(Vec<PathBuf>),
    Strings(Vec<String>),
    Failures(Vec<FailureKind>),
    Layers(Vec<SandboxLayer>),
    Text(String),
    Secret(SecretSource),
}

/// A problem with a value, before file and line are attached.
#[derive(Debug)]
pub(crate) enum ValueError {
    WrongType {
        expected: &'static str,
        found: &'static str,
        span: std::ops::Range<usize>,
    },
    Invalid {
        value: String,
        problem: String,
        span: std::ops::Range<usize>,
    },
}

const MODES: [(&str, NetworkMode); 3] = [
    ("none", NetworkMode::None),
    ("allow", NetworkMode::Allow),
    ("host", NetworkMode::Host),
];
const APPROVALS: [(&str, ApprovalMode); 3] = [
    ("never", ApprovalMode::Never),
    ("protected-paths", ApprovalMode::ProtectedPaths),
    ("always", ApprovalMode::Always),
];
const VIOLATIONS: [(&str, ViolationAction); 2] = [
    ("approval", ViolationAction::Approval),
    ("fail", ViolationAction::Fail),
];

fn expected_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "a boolean",
        Kind::Count { .. } => "an integer",
        Kind::Duration => "a duration string like \"30m\"",
        Kind::Bytes => "a size like \"512MiB\" or an integer of bytes",
        Kind::Mode | Kind::Approval | Kind::OnViolation | Kind::Text => "a string",
        Kind::EnvName => "an environment variable name",
        Kind::Hosts
        | Kind::Forwards
        | Kind::Paths
        | Kind::Globs
        | Kind::EnvNames
        | Kind::Failures
        | Kind::Layers => "an array of strings",
        Kind::Secret => "a table like { file = \"/path\" } or { env = \"NAME\" }",
    }
}

pub(crate) fn parse(kind: Kind, raw: &Spanned<DeValue<'_>>) -> Result<Value, ValueError> {
    let span = raw.span();
    let wrong = || ValueError::WrongType {
        expected: expected_name(kind),
        found: raw.get_ref().type_str(),
        span: span.clone(),
    };
    let invalid = |value: String, problem: String| ValueError::Invalid {
        value,
        problem,
        span: span.clone(),
    };
    match kind {
        Kind::Bool => raw.get_ref().as_bool().map(Value::Bool).ok_or_else(wrong),
        Kind::Count { min } => {
            let int = raw.get_ref().as_integer().ok_or_else(wrong)?;
            match u64::from_str_radix(int.as_str(), int.radix()) {
                Ok(n) if n >= min => Ok(Value::Count(n)),
                _ => Err(invalid(
                    int.to_string(),
                    format!("must be an integer of at least {min}"),
                )),
            }
        }
        Kind::Duration => {
            let text = raw.get_ref().as_str().ok_or_else(wrong)?;
            parse_duration(text).map(Value::Duration).ok_or_else(|| {
                invalid(
                    quote(text),
                    "not a duration (use e.g. \"30m\", \"90s\", \"1h30m\")".into(),
                )
            })
        }
        Kind::Bytes => {
            if let Some(int) = raw.get_ref().as_integer() {
                return match u64::from_str_radix(int.as_str(), int.radix()) {
                    Ok(n) if n > 0 => Ok(Value::Bytes(n)),
                    _ => Err(invalid(
                        int.to_string(),
                        "must be a positive number of bytes".into(),
                    )),
                };
            }
            let text = raw.get_ref().as_str().ok_or_else(wrong)?;
            parse_bytes(text).map(Value::Bytes).ok_or_else(|| {
                invalid(
                    quote(text),
                    "not a size (use e.g. \"512MiB\", \"2GiB\", \"64KB\")".into(),
                )
            })
        }
        Kind::Mode => enumerated(raw, &MODES, wrong, invalid).map(Value::Mode),
        Kind::Approval => enumerated(raw, &APPROVALS, wrong, invalid).map(Value::Approval),
        Kind::OnViolation => enumerated(raw, &VIOLATIONS, wrong, invalid).map(Value::OnViolation),
        Kind::Text => raw
            .get_ref()
            .as_str()
            .map(|s| Value::Text(s.to_owned()))
            .ok_or_else(wrong),
        Kind::Secret => parse_secret(raw).map(Value::Secret),
        Kind::EnvName => {
            let text = raw.get_ref().as_str().ok_or_else(wrong)?;
            parse_env_name(text)
                .map(Value::Text)
                .map_err(|problem| invalid(quote(text), problem))
        }
        Kind::Hosts => list(raw, kind, HostRule::parse).map(Value::Hosts),
        Kind::Forwards => list(raw, kind, Forward::parse).map(Value::Forwards),
        Kind::Paths => list(raw, kind, parse_abs_path).map(Value::Paths),
        Kind::Globs => list(raw, kind, parse_glob).map(Value::Strings),
        Kind::EnvNames => list(raw, kind, parse_env_name).map(Value::Strings),
        Kind::Failures => {
            list(raw, kind, |s| lookup_name(s, &FailureKind::ALL)).map(Value::Failures)
        }
        Kind::Layers => {
            let named = SandboxLayer::ALL.map(|layer| (layer.name(), layer));
            list(raw, kind, |s| lookup_name(s, &named)).map(Value::Layers)
        }
    }
}

fn enumerated<T: Copy>(
    raw: &Spanned<DeValue<'_>>,
    table: &[(&str, T)],
    wrong: impl Fn() -> ValueError,
    invalid: impl Fn(String, String) -> ValueError,
) -> Result<T, ValueError> {
    let text = raw.get_ref().as_str().ok_or_else(wrong)?;
    lookup_name(text, table).map_err(|problem| invalid(quote(text), problem))
}

fn lookup_name<T: Copy>(text: &str, table: &[(&str, T)]) -> Result<T, String> {
    table
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<String> = table.iter().map(|(n, _)| quote(n)).collect();
            format!("not one of {}", names.join(", "))
        })
}

fn list<T: Ord>(
    raw: &Spanned<DeValue<'_>>,
    kind: Kind,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ValueError> {
    let array = raw
        .get_ref()
        .as_array()
        .ok_or_else(|| ValueError::WrongType {
            expected: expected_name(kind),
            found: raw.get_ref().type_str(),
            span: raw.span(),
        })?;
    let mut out = Vec::with_capacity(array.len());
    for element in array.iter() {
        let text = element
            .get_ref()
            .as_str()
            .ok_or_else(|| ValueError::WrongType {
                expected: "a string in this array",
                found: element.get_ref().type_str(),
                span: element.span(),
            })?;
        let parsed = item(text).map_err(|problem| ValueError::Invalid {
            value: quote(text),
            problem,
            span: element.span(),
        })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

fn parse_secret(raw: &Spanned<DeValue<'_>>) -> Result<SecretSource, ValueError> {
    let problem = "write { file = \"/abs/path\" } or { env = \"OPERATOR_VAR\" }";
    let wrong = || ValueError::WrongType {
        expected: expected_name(Kind::Secret),
        found: raw.get_ref().type_str(),
        span: raw.span(),
    };
    let table = raw.get_ref().as_table().ok_or_else(wrong)?;
    let mut entries = table.iter();
    let (Some((key, value)), None) = (entries.next(), entries.next()) else {
        return Err(ValueError::Invalid {
            value: "{ ... }".into(),
            problem: format!("needs exactly one key; {problem}"),
            span: raw.span(),
        });
    };
    let text = value.get_ref().as_str().ok_or_else(wrong)?;
    let invalid = |p: String| ValueError::Invalid {
        value: format!("{{ {} = {} }}", key.get_ref(), quote(text)),
        problem: p,
        span: value.span(),
    };
    match key.get_ref().as_ref() {
        "file" => parse_abs_path(text)
            .map(SecretSource::File)
            .map_err(invalid),
        "env" => parse_env_name(text).map(SecretSource::Env).map_err(invalid),
        other => Err(invalid(format!(
            "unknown secret source `{other}`; {problem}"
        ))),
    }
}

fn parse_abs_path(text: &str) -> Result<PathBuf, String> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err("not an absolute path (write e.g. \"/opt/models\")".into());
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("`..` is not allowed in policy paths; write the resolved path".into());
    }
    Ok(path.components().collect())
}

pub(crate) fn parse_glob(text: &str) -> Result<String, String> {
    if text.starts_with('/') || text.split('/').any(|part| part == "..") {
        return Err("globs are relative to the worktree root (write e.g. \"src/**\")".into());
    }
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map_err(|err| format!("not a glob: {err}"))?;
    Ok(text.to_owned())
}

fn parse_env_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("not an environment variable name (letters, digits, `_`)".into())
    }
}

fn quote(text: &str) -> String {
    format!("{text:?}")
}

fn name_of<T: PartialEq>(value: &T, table: &[(&'static str, T)]) -> &'static str {
    table
        .iter()
        .find(|(_, v)| v == value)
        .map_or("?", |(name, _)| name)
}

fn render_list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    let shown: Vec<String> = items.iter().map(|item| quote(&show(item))).collect();
    format!("[{}]", shown.join(", "))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Value::Bool(b) => b.to_string(),
            Value::Count(n) => n.to_string(),
            Value::Duration(d) => quote(&render_duration(*d)),
            Value::Bytes(n) => quote(&render_bytes(*n)),
            Value::Mode(m) => quote(name_of(m, &MODES)),
            Value::Approval(a) => quote(name_of(a, &APPROVALS)),
            Value::OnViolation(v) => quote(name_of(v, &VIOLATIONS)),
            Value::Hosts(items) => render_list(items, ToString::to_string),
            Value::Forwards(items) => render_list(items, ToString::to_string),
            Value::Paths(items) => render_list(items, |p| p.display().to_string()),
            Value::Strings(items) => render_list(items, Clone::clone),
            Value::Failures(items) => {
                render_list(items, |k| name_of(k, &FailureKind::ALL).to_owned())
            }
            Value::Layers(items) => render_list(items, |l| l.name().to_owned()),
            Value::Text(text) => quote(text),
            Value::Secret(SecretSource::File(path)) => {
                format!("{{ file = {:?} }}", path.display().to_string())
            }
            Value::Secret(SecretSource::Env(name)) => format!("{{ env = {name:?} }}"),
        };
        f.write_str(&text)
    }
}

/// Per-element "x is within y": a host covered by a rule, a path under a path, equality.
trait Within {
    fn within(&self, bound: &Self) -> bool;
}

impl Within for HostRule {
    fn within(&self, bound: &Self) -> bool {
        self.covered_by(bound)
    }
}

impl Within for PathBuf {
    fn within(&self, bound: &Self) -> bool {
        self.starts_with(bound)
    }
}

macro_rules! within_by_eq {
    ($($t:ty),*) => {$(impl Within for $t {
        fn within(&self, bound: &Self) -> bool { self == bound }
    })*};
}
within_by_eq!(Forward, String, FailureKind, SandboxLayer);

fn subset<T: Within>(value: &[T], bound: &[T]) -> bool {
    value.iter().all(|x| bound.iter().any(|y| x.within(y)))
}

fn intersect<T: Within + Clone>(value: &[T], bound: &[T]) -> Vec<T> {
    value
        .iter()
        .filter(|x| bound.iter().any(|y| x.within(y)))
        .cloned()
        .collect()
}

fn union<T: Within + Clone>(value: &[T], bound: &[T]) -> Vec<T> {
    let mut out = value.to_vec();
    out.extend(
        bound
            .iter()
            .filter(|y| !value.iter().any(|x| y.within(x)))
            .cloned(),
    );
    out
}

macro_rules! on_lists {
    ($value:expr, $bound:expr, $f:ident, $wrap:ident) => {
        match ($value, $bound) {
            (Value::Hosts(a), Value::Hosts(b)) => $wrap!(Hosts, $f(a, b)),
            (Value::Forwards(a), Value::Forwards(b)) => $wrap!(Forwards, $f(a, b)),
            (Value::Paths(a), Value::Paths(b)) => $wrap!(Paths, $f(a, b)),
            (Value::Strings(a), Value::Strings(b)) => $wrap!(Strings, $f(a, b)),
            (Value::Failures(a), Value::Failures(b)) => $wrap!(Failures, $f(a, b)),
            (Value::Layers(a), Value::Layers(b)) => $wrap!(Layers, $f(a, b)),
            _ => None,
        }
    };
}
macro_rules! plain {
    ($variant:ident, $e:expr) => {
        Some($e)
    };
}
macro_rules! wrapped {
    ($variant:ident, $e:expr) => {
        Some(Value::$variant($e))
    };
}

fn scalar_order(value: &Value) -> Option<u128> {
    match value {
        Value::Count(n) | Value::Bytes(n) => Some(u128::from(*n)),
        Value::Duration(d) => Some(d.as_millis()),
        Value::Mode(NetworkMode::Host) => Some(0),
        Value::Mode(NetworkMode::Allow) => Some(1),
        Value::Mode(NetworkMode::None) => Some(2),
        Value::Approval(ApprovalMode::Never) => Some(0),
        Value::Approval(ApprovalMode::ProtectedPaths) => Some(1),
        Value::Approval(ApprovalMode::Always) => Some(2),
        Value::OnViolation(ViolationAction::Approval) => Some(0),
        Value::OnViolation(ViolationAction::Fail) => Some(1),
        Value::Bool(b) => Some(u128::from(*b)),
        _ => None,
    }
}

/// Whether `value` is at least as narrow as `bound` under `narrow`.
pub(crate) fn within(value: &Value, bound: &Value, narrow: Narrow) -> bool {
    let order = || scalar_order(value).zip(scalar_order(bound));
    match narrow {
        Narrow::Free => true,
        Narrow::Smaller | Narrow::FalseNarrower => order().is_some_and(|(v, b)| v <= b),
        Narrow::Stricter | Narrow::TrueNarrower => order().is_some_and(|(v, b)| v >= b),
        Narrow::Subset => on_lists!(value, bound, subset, plain).unwrap_or(false),
        Narrow::Superset => on_lists!(value, bound, flipped_subset, plain).unwrap_or(false),
    }
}

fn flipped_subset<T: Within>(value: &[T], bound: &[T]) -> bool {
    bound.iter().all(|y| value.iter().any(|x| y.within(x)))
}

/// The narrowest combination of `value` and `bound`: what a built-in value becomes
/// under a floor it exceeds.
pub(crate) fn meet(value: &Value, bound: &Value, narrow: Narrow) -> Value {
    if within(value, bound, narrow) {
        return value.clone();
    }
    let clamped = match narrow {
        Narrow::Subset => on_lists!(value, bound, intersect, wrapped),
        Narrow::Superset => on_lists!(value, bound, union, wrapped),
        Narrow::Free
        | Narrow::Smaller
        | Narrow::FalseNarrower
        | Narrow::Stricter
        | Narrow::TrueNarrower => None,
    };
    clamped.unwrap_or_else(|| bound.clone())
}
