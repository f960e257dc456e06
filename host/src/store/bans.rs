//! The shield's bans, kept so a restart does not lift them. The SIP layer owns the
//! ban's shape; here it is a JSON value under the banned address.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{from_json, to_json, Result, Store};

impl Store {
    /// Keep a ban under `address`, replacing an earlier one.
    pub fn put_ban(&self, address: &str, ban: &impl Serialize) -> Result<()> {
        self.bans.insert(address, to_json(ban)?)?;
        Ok(())
    }

    /// Forget the ban of `address`.
    pub fn remove_ban(&self, address: &str) -> Result<()> {
        self.bans.remove(address)?;
        Ok(())
    }

    /// Every ban kept.
    pub fn stored_bans<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.bans.iter().map(|kv| from_json(&kv?.1)).collect()
    }
}
