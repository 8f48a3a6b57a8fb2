//! How the model's enums are stored: as their serde names (`"awaiting_approval"`, `"timed_out"`),
//! so the SQL and the JSON vocabularies are one and the same.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{ArtifactKind, AttemptStatus, GateStatus, RunStatus, ValidationStatus};

macro_rules! serde_name_column {
    ($($ty:ty),+ $(,)?) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(name)) => Ok(ToSqlOutput::from(name)),
                    Ok(other) => Err(rusqlite::Error::ToSqlConversionFailure(
                        format!("{} serialized as {other}, not a string", stringify!($ty)).into(),
                    )),
                    Err(err) => Err(rusqlite::Error::ToSqlConversionFailure(Box::new(err))),
                }
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let name = value.as_str()?;
                serde_json::from_value(serde_json::Value::String(name.to_owned()))
                    .map_err(|err| FromSqlError::Other(Box::new(err)))
            }
        }
    )+};
}

serde_name_column!(
    RunStatus,
    AttemptStatus,
    ValidationStatus,
    GateStatus,
    ArtifactKind
);

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn enums_round_trip_through_their_serde_names() {
        let conn = Connection::open_in_memory().unwrap();
        let (text, back): (String, AttemptStatus) = conn
            .query_row("SELECT ?1, ?1", [AttemptStatus::TimedOut], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(text, "timed_out");
        assert_eq!(back, AttemptStatus::TimedOut);
        let kind: ArtifactKind = conn
            .query_row("SELECT 'changed_files'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, ArtifactKind::ChangedFiles);
        let bad: rusqlite::Result<RunStatus> = conn.query_row("SELECT 'nope'", [], |r| r.get(0));
        assert!(bad.is_err());
    }
}
