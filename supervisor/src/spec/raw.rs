//! The TaskSpec as written: serde shapes with unknown fields denied.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::validate::{SpecError, SpecErrors};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub task: RawTask,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub name: String,
    pub workspace: String,
    pub base: Option<String>,
    pub executor: String,
    pub command: Option<String>,
    pub goal: Option<String>,
    pub context: Option<String>,
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub acceptance: Vec<String>,
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    #[serde(default)]
    pub forbidden_paths: Vec<String>,
    #[serde(default)]
    pub validators: Vec<RawValidator>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub policy: Option<String>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Option<String>,
    pub goal: Option<String>,
    pub executor: Option<String>,
    pub command: Option<String>,
    pub context: Option<String>,
    pub constraints: Option<Vec<String>>,
    pub acceptance: Option<Vec<String>>,
    pub allowed_paths: Option<Vec<String>>,
    pub forbidden_paths: Option<Vec<String>>,
    pub validators: Option<Vec<RawValidator>>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
}

/// A validator: a bare command string, or `{name, run, timeout}`.
#[derive(Debug)]
pub(super) enum RawValidator {
    Command(String),
    Full(RawValidatorFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValidatorFull {
    pub name: Option<String>,
    pub run: String,
    pub timeout: Option<String>,
}

// Hand-written so a wrong shape says what is accepted, instead of serde's untagged
// "data did not match any variant".
impl<'de> Deserialize<'de> for RawValidator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValidatorVisitor;

        impl<'de> Visitor<'de> for ValidatorVisitor {
            type Value = RawValidator;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a command string or a map {name, run, timeout}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValidator, E> {
                Ok(RawValidator::Command(v.to_string()))
            }

            // YAML reads an unquoted `true` or `false` as a boolean; as a validator it can
            // only mean the shell command of that name.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValidator, E> {
                Ok(RawValidator::Command(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawValidator, A::Error> {
                RawValidatorFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawValidator::Full)
            }
        }

        deserializer.deserialize_any(ValidatorVisitor)
    }
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses the whole file (YAML, or JSON when it starts with `{`).
pub(super) fn parse(text: &str, origin: &str) -> Result<RawFile, SpecErrors> {
    parse_as(text, origin, "task")
}

/// Parses one step (for steps a planner appends to an open run): `{goal, ...}`.
pub(super) fn parse_step(text: &str, origin: &str) -> Result<RawStep, SpecErrors> {
    parse_as(text, origin, "step")
}

fn parse_as<T: for<'de> Deserialize<'de>>(
    text: &str,
    origin: &str,
    what: &str,
) -> Result<T, SpecErrors> {
    if looks_like_json(text) {
        serde_json::from_str(text).map_err(|err| {
            SpecErrors::one(SpecError {
                file: origin.to_string(),
                line: Some(err.line()),
                field: String::new(),
                message: strip_position(&err.to_string()),
                fix: fix_for(&err.to_string(), what),
            })
        })
    } else {
        serde_yaml_ng::from_str(text).map_err(|err| {
            let line = err.location().map(|l| l.line());
            let message = strip_position(&err.to_string());
            SpecErrors::one(SpecError {
                file: origin.to_string(),
                line,
                field: field_of(&message),
                fix: fix_for(&message, what),
                message,
            })
        })
    }
}

/// serde_yaml_ng messages read "task.validators[0]: unknown field `x` ... at line 3 column 5";
/// the position is reported separately, so it is cut from the message.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn field_of(message: &str) -> String {
    match message.split_once(": ") {
        Some((path, _)) if !path.contains(' ') => path.to_string(),
        _ => String::new(),
    }
}

fn fix_for(message: &str, what: &str) -> String {
    if message.contains("missing field `task`") || message.contains("expected `task`") {
        "put the TaskSpec under a top-level `task:` key".to_string()
    } else if message.contains("unknown field") {
        "remove the field or fix its spelling; docs/taskspec.md lists every field".to_string()
    } else if message.contains("missing field") {
        format!("add the missing field to the {what}; docs/taskspec.md lists the required ones")
    } else if message.contains("invalid type") {
        "give the field a value of the type docs/taskspec.md shows".to_string()
    } else {
        "fix the syntax at that line (YAML or JSON)".to_string()
    }
}
