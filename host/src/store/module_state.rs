//! Module key-value state (the `state` WIT interface), scoped by tenant and module
//! name. Written from the call path, so it relies on sled's periodic flush rather
//! than a flush per write: it is module bookkeeping, not money or configuration.
//!
//! Each module, and each tenant over all its modules, has a total of keys and bytes
//! ([`StateQuota`]): a write past it is refused and nothing is stored, so a hostile
//! module cannot fill the disk. Usage is counted in memory, loaded from the stored
//! keys the first time a tenant writes.

use std::collections::HashMap;

use super::{key, Error, Result, Store};

/// Totals of module state; the policy engine passes its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    pub module_keys: u64,
    pub module_bytes: u64,
    pub tenant_keys: u64,
    pub tenant_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateUsage {
    pub keys: u64,
    /// Keys and values.
    pub bytes: u64,
}

/// Usage by tenant: its total and each module's.
#[derive(Default)]
pub(super) struct StateUsageBook {
    tenants: HashMap<String, (StateUsage, HashMap<String, StateUsage>)>,
}

impl Store {
    /// The value under `k` for a module.
    pub fn state_get(&self, tenant: &str, module: &str, k: &str) -> Result<Option<String>> {
        Ok(self
            .module_state
            .get(key(&[tenant, module, k]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Set `k` to `value` for a module, within `quota`: past it, nothing is written
    /// and the error says which total.
    pub fn state_set(
        &self,
        tenant: &str,
        module: &str,
        k: &str,
        value: &str,
        quota: &StateQuota,
    ) -> Result<()> {
        let mut book = self.state_usage.lock().unwrap_or_else(|e| e.into_inner());
        let full_key = key(&[tenant, module, k]);
        let old = self.module_state.get(&full_key)?;
        let (tenant_usage, modules) = self.tenant_usage(&mut book, tenant)?;
        let module_usage = modules.get(module).copied().unwrap_or_default();
        let added_key = u64::from(old.is_none());
        let old_bytes = old.map_or(0, |v| (k.len() + v.len()) as u64);
        let new_bytes = (k.len() + value.len()) as u64;
        let grow = |u: StateUsage| StateUsage {
            keys: u.keys + added_key,
            bytes: (u.bytes + new_bytes).saturating_sub(old_bytes),
        };
        let (module_after, tenant_after) = (grow(module_usage), grow(*tenant_usage));
        let over = if module_after.keys > quota.module_keys.max(module_usage.keys) {
            Some(format!("{} keys for the module", quota.module_keys))
        } else if module_after.bytes > quota.module_bytes.max(module_usage.bytes) {
            Some(format!("{} bytes for the module", quota.module_bytes))
        } else if tenant_after.keys > quota.tenant_keys.max(tenant_usage.keys) {
            Some(format!("{} keys for the tenant", quota.tenant_keys))
        } else if tenant_after.bytes > quota.tenant_bytes.max(tenant_usage.bytes) {
            Some(format!("{} bytes for the tenant", quota.tenant_bytes))
        } else {
            None
        };
        if let Some(limit) = over {
            return Err(Error::Quota(format!("module state is limited to {limit}")));
        }
        self.module_state.insert(&full_key, value.as_bytes())?;
        *tenant_usage = tenant_after;
        modules.insert(module.to_string(), module_after);
        Ok(())
    }

    /// Remove `k` for a module.
    pub fn state_delete(&self, tenant: &str, module: &str, k: &str) -> Result<()> {
        let mut book = self.state_usage.lock().unwrap_or_else(|e| e.into_inner());
        let Some(old) = self.module_state.remove(key(&[tenant, module, k]))? else {
            return Ok(());
        };
        let (tenant_usage, modules) = self.tenant_usage(&mut book, tenant)?;
        let freed = StateUsage {
            keys: 1,
            bytes: (k.len() + old.len()) as u64,
        };
        let shrink = |u: &mut StateUsage| {
            u.keys = u.keys.saturating_sub(freed.keys);
            u.bytes = u.bytes.saturating_sub(freed.bytes);
        };
        shrink(tenant_usage);
        if let Some(m) = modules.get_mut(module) {
            shrink(m);
        }
        Ok(())
    }

    /// Remove every key of a module that starts with `prefix` (an operator's reset);
    /// returns how many went.
    pub fn state_delete_prefix(&self, tenant: &str, module: &str, prefix: &str) -> Result<usize> {
        let base = key(&[tenant, module, ""]).len();
        let keys = self
            .module_state
            .scan_prefix(key(&[tenant, module, prefix]))
            .map(|kv| Ok(String::from_utf8_lossy(&kv?.0[base..]).into_owned()))
            .collect::<Result<Vec<_>>>()?;
        for k in &keys {
            self.state_delete(tenant, module, k)?;
        }
        Ok(keys.len())
    }

    /// What a module and its tenant hold.
    pub fn state_usage(&self, tenant: &str, module: &str) -> Result<(StateUsage, StateUsage)> {
        let mut book = self.state_usage.lock().unwrap_or_else(|e| e.into_inner());
        let (total, modules) = self.tenant_usage(&mut book, tenant)?;
        Ok((modules.get(module).copied().unwrap_or_default(), *total))
    }

    /// A tenant's usage, counted from its stored keys the first time.
    fn tenant_usage<'a>(
        &self,
        book: &'a mut StateUsageBook,
        tenant: &str,
    ) -> Result<&'a mut (StateUsage, HashMap<String, StateUsage>)> {
        if !book.tenants.contains_key(tenant) {
            let mut total = StateUsage::default();
            let mut modules: HashMap<String, StateUsage> = HashMap::new();
            let prefix = key(&[tenant, ""]);
            for kv in self.module_state.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let rest = &k[prefix.len()..];
                let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                let module = String::from_utf8_lossy(&rest[..split]).into_owned();
                let bytes = (rest.len() - split).saturating_sub(1) + v.len();
                let u = modules.entry(module).or_default();
                u.keys += 1;
                u.bytes += bytes as u64;
                total.keys += 1;
                total.bytes += bytes as u64;
            }
            book.tenants.insert(tenant.to_string(), (total, modules));
        }
        Ok(book.tenants.get_mut(tenant).expect("inserted above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: StateQuota = StateQuota {
        module_keys: 3,
        module_bytes: 100,
        tenant_keys: 5,
        tenant_bytes: 1_000,
    };

    #[test]
    fn writes_past_a_modules_or_tenants_total_are_refused_and_counted_back() {
        let dir = std::env::temp_dir().join(format!("sy-state-quota-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        for k in ["a", "b", "c"] {
            store.state_set("t", "m1", k, "v", &QUOTA).unwrap();
        }
        let refused = store.state_set("t", "m1", "d", "v", &QUOTA).unwrap_err();
        assert!(
            refused.to_string().contains("3 keys for the module"),
            "{refused}"
        );
        // Overwriting an existing key adds no key; a too-big value is refused.
        store.state_set("t", "m1", "a", "w", &QUOTA).unwrap();
        let big = "x".repeat(200);
        assert!(store.state_set("t", "m1", "a", &big, &QUOTA).is_err());
        assert_eq!(
            store.state_get("t", "m1", "a").unwrap().as_deref(),
            Some("w")
        );
        // The tenant's total spans its modules.
        store.state_set("t", "m2", "a", "v", &QUOTA).unwrap();
        store.state_set("t", "m2", "b", "v", &QUOTA).unwrap();
        let tenant_full = store.state_set("t", "m2", "c", "v", &QUOTA).unwrap_err();
        assert!(
            tenant_full.to_string().contains("for the tenant"),
            "{tenant_full}"
        );
        // Deleting frees room, and a reopened store counts what is stored.
        store.state_delete("t", "m1", "b").unwrap();
        store.state_set("t", "m2", "c", "v", &QUOTA).unwrap();
        drop(store);
        let store = Store::reopen(&dir).unwrap();
        let (m1, tenant) = store.state_usage("t", "m1").unwrap();
        assert_eq!((m1.keys, tenant.keys), (2, 5));
        assert_eq!(m1.bytes, 4, "two one-byte keys with one-byte values");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
