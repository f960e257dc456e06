//! Calls in progress per account, with their callee, for modules' concurrency rules
//! (`carrier.live-calls`). A call is counted while its [`LiveCallEntry`] lives, so the
//! count follows the calls themselves: no decrement can be missed or doubled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Accounts {
    next_id: u64,
    /// (tenant, account) → (entry id, callee) of each call in progress.
    calls: HashMap<(String, String), Vec<(u64, String)>>,
}

/// Every account's calls in progress.
#[derive(Default, Clone)]
pub struct LiveCalls {
    inner: Arc<Mutex<Accounts>>,
}

/// One call counted; dropping it (when the call task ends) uncounts it.
pub struct LiveCallEntry {
    calls: LiveCalls,
    key: (String, String),
    id: u64,
}

impl LiveCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a call of `account` to `callee` until the entry is dropped.
    pub fn enter(&self, tenant: &str, account: &str, callee: &str) -> LiveCallEntry {
        let key = (tenant.to_string(), account.to_string());
        let mut all = self.lock();
        all.next_id += 1;
        let id = all.next_id;
        all.calls
            .entry(key.clone())
            .or_default()
            .push((id, callee.to_string()));
        LiveCallEntry {
            calls: self.clone(),
            key,
            id,
        }
    }

    /// Calls of `account` in progress whose callee starts with `prefix`.
    pub fn count(&self, tenant: &str, account: &str, prefix: &str) -> u32 {
        let all = self.lock();
        all.calls
            .get(&(tenant.to_string(), account.to_string()))
            .map_or(0, |calls| {
                calls.iter().filter(|(_, c)| c.starts_with(prefix)).count() as u32
            })
    }

    /// Accounts with calls in progress (for the census: it never holds ended calls).
    pub fn accounts(&self) -> usize {
        self.lock().calls.len()
    }
}

impl Drop for LiveCallEntry {
    fn drop(&mut self) {
        let mut all = self.calls.lock();
        if let Some(calls) = all.calls.get_mut(&self.key) {
            calls.retain(|(id, _)| *id != self.id);
            if calls.is_empty() {
                all.calls.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_prefix_while_their_entries_live() {
        let live = LiveCalls::default();
        let a = live.enter("t", "acct", "4420123");
        let b = live.enter("t", "acct", "4421999");
        let _other = live.enter("t", "other", "4420123");
        let _other_tenant = live.enter("u", "acct", "4420123");
        assert_eq!(live.count("t", "acct", "442"), 2);
        assert_eq!(live.count("t", "acct", "4420"), 1);
        assert_eq!(live.count("t", "acct", ""), 2);
        drop(a);
        assert_eq!(live.count("t", "acct", "4420"), 0);
        drop(b);
        assert_eq!(live.count("t", "acct", ""), 0);
        assert_eq!(
            live.accounts(),
            2,
            "an account with no calls left is forgotten"
        );
    }
}
