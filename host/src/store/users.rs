//! The web manager's users. Only an argon2id hash of each password is stored (a PHC
//! string, salt and parameters included), so a stolen database gives no passwords.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use serde::{Deserialize, Serialize};

use super::{from_json, to_json, Principal, Result, Store};

/// A user, without the password: the principal it logs in as, so it has exactly a
/// token's role, tenant and agent account (its name is the login name).
pub type UserInfo = Principal;

#[derive(Serialize, Deserialize)]
struct StoredUser {
    #[serde(flatten)]
    info: UserInfo,
    password_hash: String,
}

/// An argon2id hash of `password` with a fresh salt (tens of ms of CPU: call it off
/// the async workers).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only an output buffer too small fails, and the default's is not.
        .unwrap_or_default()
}

/// Whether `password` matches the stored `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl Store {
    /// Store (or replace) a user with its password's hash.
    pub fn put_user(&self, info: &UserInfo, password_hash: &str) -> Result<()> {
        let stored = StoredUser {
            info: info.clone(),
            password_hash: password_hash.into(),
        };
        self.users.insert(info.name.as_bytes(), to_json(&stored)?)?;
        Ok(())
    }

    /// The user called `name` and its password hash.
    pub fn user(&self, name: &str) -> Result<Option<(UserInfo, String)>> {
        Ok(self
            .users
            .get(name.as_bytes())?
            .map(|v| from_json::<StoredUser>(&v))
            .transpose()?
            .map(|s| (s.info, s.password_hash)))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        self.users
            .iter()
            .map(|kv| Ok(from_json::<StoredUser>(&kv?.1)?.info))
            .collect()
    }

    /// Remove a user; false when there is none.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        Ok(self.users.remove(name.as_bytes())?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }
}
