//! The hash chain: canonical encoding of an event, timestamps, payload (de)serialization.
//!
//! `hash = hex(sha256(encoding))`, where `encoding` is the ASCII domain tag
//! `codencer.event.v1` followed by each field in this order:
//! `prev_hash, seq, ts, run_id, step_id, attempt_id, kind, actor, payload`.
//! `seq` is 8 bytes big-endian. Every other field is a string, encoded as one byte `0x01`, its
//! UTF-8 length as 8 bytes big-endian, then its bytes; an absent (NULL) id is the single byte
//! `0x00`. Length prefixes make the encoding injective: no two different events share one.
//! `payload` is hashed exactly as stored (the text column), so verification never re-serializes.
//! The hash is stored as its 32 bytes; `prev_hash` is not stored, it is the previous event's
//! hash (the hex form is what events carry and what is hashed).

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::error::StoreError;
use crate::model::EventBody;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"codencer.event.v1";

/// The hashed fields of one event, borrowed from wherever they live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link<'a> {
    pub prev_hash: &'a str,
    pub seq: u64,
    pub ts: &'a str,
    pub run_id: Option<&'a str>,
    pub step_id: Option<&'a str>,
    pub attempt_id: Option<&'a str>,
    pub kind: &'a str,
    pub actor: &'a str,
    pub payload: &'a str,
}

impl Link<'_> {
    /// The hash, in hex (as events carry it).
    pub(crate) fn hash(&self) -> String {
        to_hex(&self.digest())
    }

    /// The hash, as stored (32 bytes).
    pub(crate) fn digest(&self) -> [u8; 32] {
        // The encoding is laid out in one buffer and hashed in one call: a dozen small
        // `update`s (tag, length, bytes per field) cost more than the compression itself.
        let fields = [
            Some(self.prev_hash),
            Some(self.ts),
            self.run_id,
            self.step_id,
            self.attempt_id,
            Some(self.kind),
            Some(self.actor),
            Some(self.payload),
        ];
        let len = DOMAIN.len()
            + 8
            + fields
                .iter()
                .map(|f| f.map_or(1, |s| 9 + s.len()))
                .sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(DOMAIN);
        put_str(&mut buf, Some(self.prev_hash));
        buf.extend_from_slice(&self.seq.to_be_bytes());
        for field in &fields[1..] {
            put_str(&mut buf, *field);
        }
        Sha256::digest(&buf).into()
    }
}

fn put_str(buf: &mut Vec<u8>, field: Option<&str>) {
    match field {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

/// Lowercase hex, written into one allocation (`hex::encode` collects char by char).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Now, as RFC 3339 UTC with milliseconds (fixed width, so strings sort like instants).
pub(crate) fn now_ts() -> String {
    // Formatting a UTC instant with a fixed description cannot fail for years 0..=9999;
    // fall back to the epoch rather than panic if the clock is absurd.
    OffsetDateTime::now_utc()
        .format(TS_FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// The timestamp of `millis` since the Unix epoch, in the events' format.
pub(crate) fn ts_of_millis(millis: u64) -> Option<String> {
    let nanos = i128::from(millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(TS_FORMAT)
        .ok()
}

/// The payload of `body` as stored: the JSON of its fields, without the kind tag.
pub(crate) fn encode_payload(body: &EventBody) -> Result<String, StoreError> {
    let kind = body.kind();
    let encode = |source| StoreError::Encode { kind, source };
    // Fast path: serde's adjacently tagged form is `{"kind":"<kind>","payload":<payload>}`;
    // slice the payload out instead of building an intermediate `Value`.
    let mut full = serde_json::to_string(body).map_err(encode)?;
    let prefix_len = r#"{"kind":""#.len() + kind.len() + r#"","payload":"#.len();
    let tagged = full
        .strip_prefix(r#"{"kind":""#)
        .and_then(|rest| rest.strip_prefix(kind))
        .is_some_and(|rest| rest.starts_with(r#"","payload":"#));
    if tagged && full.len() > prefix_len && full.ends_with('}') {
        full.truncate(full.len() - 1);
        full.drain(..prefix_len);
        return Ok(full);
    }
    let value = serde_json::to_value(body).map_err(encode)?;
    let payload = value
        .get("payload")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    serde_json::to_string(&payload).map_err(encode)
}

/// Rebuild an [`EventBody`] from its stored kind and payload.
pub(crate) fn decode_body(seq: u64, kind: &str, payload: &str) -> Result<EventBody, StoreError> {
    let decode = |source| StoreError::Decode {
        seq,
        kind: kind.to_owned(),
        source,
    };
    let kind_json = serde_json::to_string(kind).map_err(decode)?;
    let tagged = format!(r#"{{"kind":{kind_json},"payload":{payload}}}"#);
    serde_json::from_str(&tagged).map_err(decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArtifactKind, RunStatus};

    fn link<'a>(payload: &'a str, run_id: Option<&'a str>) -> Link<'a> {
        Link {
            prev_hash: GENESIS_HASH,
            seq: 1,
            ts: "2026-01-01T00:00:00.000Z",
            run_id,
            step_id: None,
            attempt_id: None,
            kind: "run.started",
            actor: "me",
            payload,
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_every_field() {
        let base = link("{}", Some("R"));
        assert_eq!(base.hash(), base.hash());
        assert_eq!(base.hash().len(), 64);
        let variants = [
            Link {
                prev_hash: "1",
                ..base
            },
            Link { seq: 2, ..base },
            Link {
                ts: "2026-01-01T00:00:00.001Z",
                ..base
            },
            Link {
                run_id: None,
                ..base
            },
            Link {
                run_id: Some(""),
                ..base
            },
            Link {
                step_id: Some("R"),
                ..base
            },
            Link {
                attempt_id: Some("R"),
                ..base
            },
            Link {
                kind: "run.created",
                ..base
            },
            Link {
                actor: "you",
                ..base
            },
            Link {
                payload: "{ }",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), base.hash(), "{v:?}");
        }
    }

    /// Expected values computed outside this code (Python's hashlib over the encoding as
    /// docs/store.md describes it), so a change to the hashed bytes cannot go unnoticed.
    #[test]
    fn hash_matches_the_documented_encoding() {
        assert_eq!(
            link("{}", Some("R")).hash(),
            "a73078f29642a9d821898a27ddc6037053105643cca9a0ea124553be95028107"
        );
        let prev = "ab".repeat(32);
        let full = Link {
            prev_hash: &prev,
            seq: 258,
            step_id: Some("S"),
            attempt_id: Some("A"),
            kind: "artifact.recorded",
            ..link(r#"{"name":"é\"}"}"#, Some("R"))
        };
        assert_eq!(
            full.hash(),
            "dabd661e7a9825428ac19f45ab4b3c751259d62b430e05cb3c84b570ddb0f102"
        );
    }

    #[test]
    fn length_prefix_prevents_field_shifting() {
        let a = Link {
            actor: "ab",
            payload: "c",
            ..link("", None)
        };
        let b = Link {
            actor: "a",
            payload: "bc",
            ..link("", None)
        };
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn payload_round_trips_without_the_tag() {
        let bodies = [
            EventBody::RunStarted {},
            EventBody::RunCompleted {
                status: RunStatus::AwaitingApproval,
                reason: None,
            },
            EventBody::ArtifactRecorded {
                artifact_id: "A".into(),
                kind: ArtifactKind::ChangedFiles,
                name: Some("x\"}".into()),
                sha256: "00".into(),
                bytes: 3,
            },
        ];
        for body in bodies {
            let payload = encode_payload(&body).unwrap();
            assert!(!payload.contains("\"kind\":\"run."), "{payload}");
            let back = decode_body(1, body.kind(), &payload).unwrap();
            assert_eq!(back, body);
        }
        assert_eq!(encode_payload(&EventBody::RunStarted {}).unwrap(), "{}");
    }

    #[test]
    fn timestamps_are_fixed_width_utc_millis() {
        let ts = now_ts();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(&ts[19..20], ".");
    }
}
