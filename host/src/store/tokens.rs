//! API tokens. Only a sha256 of each token is stored; the token itself is shown once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{from_json, to_json, Result, Store};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every tenant.
    Admin,
    /// Only its own tenant's objects.
    Tenant,
    /// An agent (reseller): only its account's subtree, as its flags allow.
    Agent,
}

/// A stored token (without the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token name (unique), shown in audit fields such as `uploaded_by`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its tenant (admins act on "default" unless they name another).
    pub tenant: String,
    /// The account an agent token acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
}

/// Who is calling the API.
pub type Principal = TokenInfo;

/// Hex sha256 of a secret.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// The token whose secret is `secret`.
    pub fn token_by_secret(&self, secret: &str) -> Result<Option<TokenInfo>> {
        self.tokens
            .get(hash_secret(secret))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// Store a token under the hash of `secret`.
    pub fn put_token(&self, secret: &str, info: &TokenInfo) -> Result<()> {
        self.tokens.insert(hash_secret(secret), to_json(info)?)?;
        Ok(())
    }

    /// Every token.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.tokens.iter().map(|kv| from_json(&kv?.1)).collect()
    }

    /// Remove the token named `name`; false when there is none.
    pub fn delete_token(&self, name: &str) -> Result<bool> {
        for kv in self.tokens.iter() {
            let (k, v) = kv?;
            if from_json::<TokenInfo>(&v)?.name == name {
                self.tokens.remove(k)?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
