//! One policy file: TOML text -> typed entries with their lines, or an error naming
//! file, line and key.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::PolicyError;
use crate::model::Layer;
use crate::schema::{self, META_KEYS, OPEN_TABLES};
use crate::value::{self, Value, ValueError};

/// One key's value in one file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) line: usize,
}

/// A parsed policy file.
#[derive(Debug, Clone)]
pub(crate) struct ParsedFile {
    /// Display name: `builtin:claude-code.toml` or the path.
    pub(crate) name: String,
    pub(crate) layer: Layer,
    /// Executor names, or `*` for all.
    pub(crate) executors: Vec<String>,
    /// Set when the file is a named profile, applied only when a TaskSpec selects it.
    pub(crate) profile: Option<String>,
    pub(crate) entries: BTreeMap<String, Entry>,
}

impl ParsedFile {
    pub(crate) fn applies_to(&self, executor: &str) -> bool {
        self.executors.iter().any(|e| e == "*" || e == executor)
    }

    pub(crate) fn is_generic(&self) -> bool {
        self.executors.iter().any(|e| e == "*")
    }
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn value_error(&self, key: &str, err: ValueError) -> PolicyError {
        match err {
            ValueError::WrongType {
                expected,
                found,
                span,
            } => PolicyError::WrongType {
                file: self.file.to_owned(),
                line: self.line(span.start),
                key: key.to_owned(),
                expected,
                found,
            },
            ValueError::Invalid {
                value,
                problem,
                span,
            } => PolicyError::InvalidValue {
                file: self.file.to_owned(),
                line: self.line(span.start),
                key: key.to_owned(),
                value,
                problem,
            },
        }
    }

    /// `raw` as a table, else a wrong-type error for `key`.
    fn table<'v, 'de>(
        &self,
        key: &str,
        raw: &'v Spanned<DeValue<'de>>,
    ) -> Result<&'v DeTable<'de>, PolicyError> {
        raw.get_ref()
            .as_table()
            .ok_or_else(|| PolicyError::WrongType {
                file: self.file.to_owned(),
                line: self.line(raw.span().start),
                key: key.to_owned(),
                expected: "a table",
                found: raw.get_ref().type_str(),
            })
    }

    fn unknown(&self, prefix: &str, key: &str, offset: usize) -> PolicyError {
        PolicyError::UnknownKey {
            file: self.file.to_owned(),
            line: self.line(offset),
            key: join(prefix, key),
            known: schema::known_under(prefix),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Parses `src`. `stem` is the file name without `.toml`, used when the file has no
/// `executors` key.
pub(crate) fn parse_file(
    name: &str,
    layer: Layer,
    stem: &str,
    src: &str,
) -> Result<ParsedFile, PolicyError> {
    let ctx = Ctx { file: name, src };
    let table = DeTable::parse(src).map_err(|err| PolicyError::Syntax {
        file: name.to_owned(),
        line: ctx.line(err.span().map_or(0, |s| s.start)),
        message: err.message().to_owned(),
    })?;
    let mut file = ParsedFile {
        name: name.to_owned(),
        layer,
        executors: Vec::new(),
        profile: None,
        entries: BTreeMap::new(),
    };
    let mut executors = None;
    for (key, raw) in table.get_ref().iter() {
        match key.get_ref().as_ref() {
            "executors" => executors = Some(parse_names(&ctx, "executors", raw, true)?),
            "profile" => {
                let mut names = parse_names(&ctx, "profile", raw, false)?;
                file.profile = names.pop();
            }
            _ => walk(&ctx, "", key, raw, &mut file.entries)?,
        }
    }
    file.executors = match executors {
        Some(list) => list,
        None if stem == "default" || file.profile.is_some() => vec!["*".to_owned()],
        None => vec![stem.to_owned()],
    };
    Ok(file)
}

fn walk(
    ctx: &Ctx<'_>,
    prefix: &str,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    raw: &Spanned<DeValue<'_>>,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), PolicyError> {
    let full = join(prefix, key.get_ref());
    let line = ctx.line(raw.span().start);
    if let Some(spec) = schema::lookup(&full) {
        let value = value::parse(spec.kind, raw).map_err(|e| ctx.value_error(&full, e))?;
        out.insert(full, Entry { value, line });
        return Ok(());
    }
    if let Some(open) = OPEN_TABLES.iter().find(|spec| spec.key == full) {
        let table = ctx.table(&full, raw)?;
        for (name, item) in table.iter() {
            let item_key = join(&full, name.get_ref());
            let value = value::parse(open.kind, item).map_err(|e| ctx.value_error(&item_key, e))?;
            let line = ctx.line(item.span().start);
            out.insert(item_key, Entry { value, line });
        }
        return Ok(());
    }
    let is_section = schema::SCHEMA
        .iter()
        .chain(OPEN_TABLES)
        .any(|spec| spec.key.starts_with(&format!("{full}.")));
    if !is_section {
        return Err(ctx.unknown(prefix, key.get_ref(), key.span().start));
    }
    let table = ctx.table(&full, raw)?;
    for (child_key, child) in table.iter() {
        walk(ctx, &full, child_key, child, out)?;
    }
    Ok(())
}

/// `executors = ["claude-code", "*"]` (list) or `profile = "strict"` (single).
fn parse_names(
    ctx: &Ctx<'_>,
    key: &str,
    raw: &Spanned<DeValue<'_>>,
    list: bool,
) -> Result<Vec<String>, PolicyError> {
    let wrong = |span: std::ops::Range<usize>, found| PolicyError::WrongType {
        file: ctx.file.to_owned(),
        line: ctx.line(span.start),
        key: key.to_owned(),
        expected: if list {
            "an array of executor names"
        } else {
            "a profile name"
        },
        found,
    };
    let items: Vec<&Spanned<DeValue<'_>>> = if list {
        let array = raw
            .get_ref()
            .as_array()
            .ok_or_else(|| wrong(raw.span(), raw.get_ref().type_str()))?;
        array.iter().collect()
    } else {
        vec![raw]
    };
    let mut names = Vec::new();
    for item in items {
        let text = item
            .get_ref()
            .as_str()
            .ok_or_else(|| wrong(item.span(), item.get_ref().type_str()))?;
        let valid = (list && text == "*")
            || (!text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        if !valid {
            return Err(PolicyError::InvalidValue {
                file: ctx.file.to_owned(),
                line: ctx.line(item.span().start),
                key: key.to_owned(),
                value: format!("{text:?}"),
                problem:
                    "names use lowercase letters, digits and `-` (or \"*\" for every executor)"
                        .into(),
            });
        }
        names.push(text.to_owned());
    }
    debug_assert!(META_KEYS.contains(&key));
    Ok(names)
}
