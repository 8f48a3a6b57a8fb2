//! API tokens of the daemon: created and revoked by events, read from their projection.

use rusqlite::{OptionalExtension, Row, params};

use crate::error::StoreError;
use crate::model::{EventBody, NewEvent, TokenRow};
use crate::store::{Store, lock, new_id};

const TOKEN_COLS: &str = "id, name, scopes, sha256, created_at, created_by, revoked_at";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    let scopes: String = r.get(2)?;
    let scopes = serde_json::from_str(&scopes).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(err))
    })?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes,
        sha256: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

impl Store {
    /// Record a new token (`token.created`, caused by `actor`). `sha256` is the hash of the
    /// secret; the secret itself is never stored.
    pub fn create_token(
        &self,
        actor: &str,
        name: &str,
        scopes: &[String],
        sha256: &str,
    ) -> Result<TokenRow, StoreError> {
        let token_id = new_id();
        self.append(NewEvent {
            run_id: None,
            step_id: None,
            attempt_id: None,
            actor: actor.to_owned(),
            body: EventBody::TokenCreated {
                token_id: token_id.clone(),
                name: name.to_owned(),
                scopes: scopes.to_vec(),
                sha256: sha256.to_owned(),
            },
        })?;
        self.token(&token_id)?.ok_or(StoreError::UnknownNode {
            kind: "token.created",
            node: "token",
            id: token_id,
        })
    }

    /// Every token, revoked ones included, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let conn = lock(&self.reader);
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM main.tokens ORDER BY seq"
            ))?
            .query_map([], token_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One token by id.
    pub fn token(&self, token_id: &str) -> Result<Option<TokenRow>, StoreError> {
        token_by_id(&lock(&self.reader), token_id)
    }

    /// The token whose secret hashes to `sha256`, revoked or not (the caller checks).
    pub fn find_token_by_hash(&self, sha256: &str) -> Result<Option<TokenRow>, StoreError> {
        let conn = lock(&self.reader);
        let row = conn
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM main.tokens WHERE sha256 = ?1 ORDER BY seq DESC LIMIT 1"
            ))?
            .query_row(params![sha256], token_row)
            .optional()?;
        Ok(row)
    }

    /// Revoke a token (`token.revoked`, caused by `actor`). Returns `None` when there is no
    /// such token or it is already revoked.
    pub fn revoke_token(
        &self,
        actor: &str,
        token_id: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        // Checked and revoked in one transaction: of two concurrent revokes, one revokes
        // and the other finds it revoked.
        let revoked = self.append_if(|tx| {
            let token = token_by_id(tx, token_id)?;
            Ok(token
                .filter(|t| t.revoked_at.is_none())
                .map(|token| NewEvent {
                    run_id: None,
                    step_id: None,
                    attempt_id: None,
                    actor: actor.to_owned(),
                    body: EventBody::TokenRevoked {
                        token_id: token.id,
                        name: token.name,
                    },
                }))
        })?;
        match revoked {
            Some(_) => self.token(token_id),
            None => Ok(None),
        }
    }
}

/// One token by id, read through `conn` (the reader, or a write transaction).
fn token_by_id(
    conn: &rusqlite::Connection,
    token_id: &str,
) -> Result<Option<TokenRow>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM main.tokens WHERE id = ?1"
        ))?
        .query_row([token_id], token_row)
        .optional()?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_created_found_revoked_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scopes = vec!["runs:read".to_string()];
        let created = store
            .create_token("admin@host", "planner", &scopes, "ab")
            .unwrap();
        assert_eq!(created.name, "planner");
        assert_eq!(created.scopes, scopes);
        assert_eq!(created.created_by, "admin@host");
        assert_eq!(
            store.find_token_by_hash("ab").unwrap(),
            Some(created.clone())
        );
        assert_eq!(store.find_token_by_hash("cd").unwrap(), None);
        let revoked = store
            .revoke_token("admin@host", &created.id)
            .unwrap()
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(store.revoke_token("admin@host", &created.id).unwrap(), None);
        assert_eq!(store.list_tokens().unwrap(), vec![revoked]);
        assert!(store.check_projections().unwrap().ok);
    }

    #[test]
    fn concurrent_revokes_revoke_once_and_neither_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scopes = vec!["runs:read".to_string()];
        let ids: Vec<String> = (0..20)
            .map(|i| {
                store
                    .create_token(
                        "admin@host",
                        &format!("t{i}"),
                        &scopes,
                        &format!("{i:064x}"),
                    )
                    .unwrap()
                    .id
            })
            .collect();
        // Two handles, as two processes would have.
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<Vec<bool>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mine = Store::open(dir.path()).unwrap();
                        ids.iter()
                            .map(|id| {
                                barrier.wait();
                                mine.revoke_token("admin@host", id).unwrap().is_some()
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (i, id) in ids.iter().enumerate() {
            assert!(results[0][i] ^ results[1][i], "token {id}: {results:?}");
            assert!(store.token(id).unwrap().unwrap().revoked_at.is_some());
        }
        let revocations = store
            .events_since(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.body, EventBody::TokenRevoked { .. }))
            .count();
        assert_eq!(revocations, ids.len());
    }
}
