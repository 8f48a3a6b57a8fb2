//! Integrity check: SQLite's own, the whole hash chain, and every artifact's blob.

use std::collections::HashMap;
use std::fmt;

use rusqlite::types::ValueRef;
use serde::Serialize;

use crate::blobs::BlobProblem;
use crate::chain::{GENESIS_HASH, Link, to_hex};
use crate::error::StoreError;
use crate::store::{Store, lock};

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// True when nothing below is wrong.
    pub ok: bool,
    /// What `PRAGMA integrity_check` reported, unless it said "ok".
    pub integrity_errors: Vec<String>,
    /// Events whose link was checked (all of them when the chain is intact).
    pub events_checked: u64,
    /// The first broken link; the walk stops there.
    pub broken_link: Option<BrokenLink>,
    /// Distinct blobs re-hashed.
    pub blobs_checked: u64,
    /// Artifacts whose blob is missing or altered.
    pub blob_problems: Vec<BlobIssue>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BrokenLink {
    /// The first event that does not check out.
    pub seq: u64,
    pub problem: LinkProblem,
    pub expected: String,
    pub found: String,
}

/// What is wrong with a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LinkProblem {
    /// The seq does not follow the previous one (an event is missing).
    Gap,
    /// The stored hash does not match the event's content and the previous event's hash (the
    /// event was altered, or the event before it is not the one it was chained to).
    Hash,
}

/// An artifact whose blob does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BlobIssue {
    pub artifact_id: String,
    pub sha256: String,
    pub problem: BlobProblem,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkProblem::Gap => "seq does not follow the previous event",
            LinkProblem::Hash => "content does not match its hash",
        })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store verify: {}", if self.ok { "OK" } else { "FAILED" })?;
        if self.integrity_errors.is_empty() {
            writeln!(f, "  database integrity: ok")?;
        } else {
            writeln!(
                f,
                "  database integrity: {} problem(s)",
                self.integrity_errors.len()
            )?;
            for e in &self.integrity_errors {
                writeln!(f, "    {e}")?;
            }
        }
        match &self.broken_link {
            None => writeln!(f, "  hash chain: {} events, intact", self.events_checked)?,
            Some(b) => writeln!(
                f,
                "  hash chain: broken at seq {}: {} (expected {}, found {})",
                b.seq, b.problem, b.expected, b.found
            )?,
        }
        if self.blob_problems.is_empty() {
            write!(f, "  blobs: {} checked, intact", self.blobs_checked)
        } else {
            write!(
                f,
                "  blobs: {} checked, {} artifact(s) affected",
                self.blobs_checked,
                self.blob_problems.len()
            )?;
            for b in &self.blob_problems {
                write!(
                    f,
                    "\n    artifact {} blob {}: {}",
                    b.artifact_id, b.sha256, b.problem
                )?;
            }
            Ok(())
        }
    }
}

impl Store {
    /// Check the database, walk the whole hash chain, and re-hash every artifact's blob.
    ///
    /// Problems found are reported, not returned as errors; an error means the check itself
    /// could not run.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let (integrity_errors, events_checked, broken_link, artifacts) = {
            let mut conn = lock(&self.reader);
            // One snapshot for the whole walk; writers carry on meanwhile (WAL).
            let tx = conn.transaction()?;
            let integrity: Vec<String> = tx
                .prepare("PRAGMA main.integrity_check")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let integrity_errors = match integrity.as_slice() {
                [only] if only == "ok" => Vec::new(),
                _ => integrity,
            };
            let (checked, broken) = walk_chain(&tx)?;
            let artifacts: Vec<(String, String, u64)> = tx
                .prepare(
                    "SELECT json_extract(payload, '$.artifact_id'),
                            json_extract(payload, '$.sha256'), json_extract(payload, '$.bytes')
                     FROM main.events WHERE kind = 'artifact.recorded' ORDER BY seq",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            (integrity_errors, checked, broken, artifacts)
        };

        // Blobs are hashed outside the snapshot: files can be large, and an inline blob is read
        // on its own (the reader is locked per blob, not for the whole pass). Blobs are never
        // changed or removed and each is stored before the event naming it, so every blob the
        // snapshot's artifacts name is still there.
        let mut seen: HashMap<(String, u64), Option<BlobProblem>> = HashMap::new();
        let mut blob_problems = Vec::new();
        for (artifact_id, sha256, bytes) in artifacts {
            let problem = seen
                .entry((sha256.clone(), bytes))
                .or_insert_with(|| self.check_blob(&sha256, bytes))
                .clone();
            if let Some(problem) = problem {
                blob_problems.push(BlobIssue {
                    artifact_id,
                    sha256,
                    problem,
                });
            }
        }

        let ok = integrity_errors.is_empty() && broken_link.is_none() && blob_problems.is_empty();
        if !ok {
            tracing::warn!(
                integrity = integrity_errors.len(),
                broken_at = broken_link.as_ref().map(|b| b.seq),
                blobs = blob_problems.len(),
                "store verification failed"
            );
        }
        Ok(VerifyReport {
            ok,
            integrity_errors,
            events_checked,
            broken_link,
            blobs_checked: seen.len() as u64,
            blob_problems,
        })
    }
}

/// Recompute every link in seq order; stop at the first broken one.
fn walk_chain(conn: &rusqlite::Connection) -> Result<(u64, Option<BrokenLink>), StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, ts, run_id, step_id, attempt_id, kind, actor, payload, hash
         FROM main.events ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev_seq = 0u64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0u64;
    while let Some(r) = rows.next()? {
        let seq: u64 = r.get(0)?;
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
        // Stored as 32 bytes; anything else (a hash altered to another type or length) is
        // shown as stored and cannot match.
        let stored_hash = match r.get_ref(8)? {
            ValueRef::Blob(b) => to_hex(b),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        };
        let broken = |problem, expected: String, found: &str| BrokenLink {
            seq,
            problem,
            expected,
            found: found.to_owned(),
        };
        if seq != prev_seq + 1 {
            let link = broken(
                LinkProblem::Gap,
                (prev_seq + 1).to_string(),
                &seq.to_string(),
            );
            return Ok((checked, Some(link)));
        }
        // The link to the previous event is its hash, which this one's hash covers.
        let recomputed = Link {
            prev_hash: &prev_hash,
            seq,
            ts: text(1)?.unwrap_or_default(),
            run_id: text(2)?,
            step_id: text(3)?,
            attempt_id: text(4)?,
            kind: text(5)?.unwrap_or_default(),
            actor: text(6)?.unwrap_or_default(),
            payload: text(7)?.unwrap_or_default(),
        }
        .hash();
        if recomputed != stored_hash {
            return Ok((
                checked,
                Some(broken(LinkProblem::Hash, recomputed, &stored_hash)),
            ));
        }
        checked += 1;
        prev_seq = seq;
        prev_hash = stored_hash;
    }
    Ok((checked, None))
}
