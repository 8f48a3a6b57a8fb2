//! Bearer tokens: random secrets shown once, stored as SHA-256, with scopes and a name that
//! becomes the actor of every event the token causes.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do. `admin` allows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Scope {
    #[serde(rename = "runs:read")]
    RunsRead,
    #[serde(rename = "runs:write")]
    RunsWrite,
    #[serde(rename = "gates:write")]
    GatesWrite,
    #[serde(rename = "artifacts:read")]
    ArtifactsRead,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::RunsRead,
        Scope::RunsWrite,
        Scope::GatesWrite,
        Scope::ArtifactsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RunsRead => "runs:read",
            Scope::RunsWrite => "runs:write",
            Scope::GatesWrite => "gates:write",
            Scope::ArtifactsRead => "artifacts:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses scope names, refusing unknown ones with the list of valid ones.
pub fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, String> {
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            Scope::parse(n).ok_or_else(|| {
                format!(
                    "unknown scope `{n}`: use runs:read, runs:write, gates:write, artifacts:read or admin"
                )
            })
        })
        .collect()
}

/// Who a request comes from: a valid, unrevoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    /// The token's name: the actor of the events the request causes.
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// A fresh secret: `cdt_` and 64 hex digits (32 random bytes).
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("cdt_{}", hex::encode(bytes)))
}

/// What the store keeps of a secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a token in `store` as `actor`; returns the secret (shown once) and its record.
pub fn create_token(
    store: &codencer_store::Store,
    actor: &str,
    name: &str,
    scopes: &[Scope],
) -> Result<(String, codencer_store::TokenRow), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a token needs a name (it becomes the actor of its events)".into());
    }
    if scopes.is_empty() {
        return Err(
            "a token needs at least one scope: runs:read, runs:write, gates:write, artifacts:read or admin"
                .into(),
        );
    }
    let live = store
        .list_tokens()
        .map_err(|e| crate::text::error_chain(&e))?;
    if live
        .iter()
        .any(|t| t.name == name && t.revoked_at.is_none())
    {
        return Err(format!(
            "a token named `{name}` exists; revoke it first or pick another name"
        ));
    }
    let secret = generate_token().map_err(|e| format!("cannot generate a token: {e}"))?;
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_string()).collect();
    let row = store
        .create_token(actor, name, &scopes, &hash_token(&secret))
        .map_err(|e| crate::text::error_chain(&e))?;
    Ok((secret, row))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scopes_parse_and_admin_allows_all() {
        let scopes = parse_scopes(&["runs:read,gates:write".into()]).unwrap();
        assert_eq!(scopes, vec![Scope::RunsRead, Scope::GatesWrite]);
        assert!(parse_scopes(&["runs:delete".into()]).is_err());
        let p = Principal {
            token_id: "t".into(),
            name: "n".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(Scope::ALL.iter().all(|s| p.allows(*s)));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
