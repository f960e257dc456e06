//! Module key-value state (the `state` WIT interface), scoped by tenant and module
//! name. Written from the call path, so it relies on sled's periodic flush rather
//! than a flush per write: it is module bookkeeping, not money or configuration.

use super::{key, Result, Store};

impl Store {
    /// The value under `k` for a module.
    pub fn state_get(&self, tenant: &str, module: &str, k: &str) -> Result<Option<String>> {
        Ok(self
            .module_state
            .get(key(&[tenant, module, k]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Set `k` to `value` for a module.
    pub fn state_set(&self, tenant: &str, module: &str, k: &str, value: &str) -> Result<()> {
        self.module_state
            .insert(key(&[tenant, module, k]), value.as_bytes())?;
        Ok(())
    }

    /// Remove `k` for a module.
    pub fn state_delete(&self, tenant: &str, module: &str, k: &str) -> Result<()> {
        self.module_state.remove(key(&[tenant, module, k]))?;
        Ok(())
    }
}
