//! The audit log: every login (good or bad) and every change made through the API or
//! the web manager, by whom, from where, and how it was answered. Kept by time; it
//! is appended to and never rewritten.

use serde::{Deserialize, Serialize};

use super::{from_json, to_json, Result, Store};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, Unix ms.
    pub at_ms: u64,
    /// The user or token name ("" when the request carried no valid credentials).
    pub who: String,
    /// The tenant it acted for.
    pub tenant: String,
    /// The source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What was done: "login", "logout", or the request's method and path.
    pub action: String,
    /// The HTTP status it was answered with.
    pub status: u16,
}

/// Which entries to list: newest first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Only this tenant's (all, when none).
    #[serde(skip)]
    pub tenant: Option<String>,
    /// Only those older than this, Unix ms (the previous page's last `at_ms`).
    pub before_ms: Option<u64>,
    /// How many at most.
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

impl Store {
    /// Append an entry (durable after [`Store::commit`]).
    pub fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut key = entry.at_ms.to_be_bytes().to_vec();
        key.extend_from_slice(&self.engine.generate_id()?.to_be_bytes());
        self.audit.insert(key, to_json(entry)?)?;
        Ok(())
    }

    /// Entries newest first, as `query` says.
    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut found = Vec::new();
        for kv in self.audit.iter().rev() {
            let (key, value) = kv?;
            let at_ms = key
                .get(..8)
                .and_then(|k| k.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if query.before_ms.is_some_and(|before| at_ms >= before) {
                continue;
            }
            let entry: AuditEntry = from_json(&value)?;
            if query.tenant.as_ref().is_some_and(|t| *t != entry.tenant) {
                continue;
            }
            found.push(entry);
            if found.len() >= query.limit {
                break;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_list_newest_first_by_tenant_and_page() {
        let store = Store::open(&super::super::temp_dir("audit")).unwrap();
        for (at_ms, tenant) in [(1, "a"), (2, "b"), (3, "a"), (4, "a")] {
            let entry = AuditEntry {
                at_ms,
                who: "alice".into(),
                tenant: tenant.into(),
                source: None,
                action: "login".into(),
                status: 200,
            };
            store.audit(&entry).unwrap();
        }
        let at = |q: &AuditQuery| -> Vec<u64> {
            store
                .audit_log(q)
                .unwrap()
                .iter()
                .map(|e| e.at_ms)
                .collect()
        };
        let mut q = AuditQuery {
            tenant: Some("a".into()),
            before_ms: None,
            limit: 2,
        };
        assert_eq!(at(&q), [4, 3]);
        q.before_ms = Some(3);
        assert_eq!(at(&q), [1]);
        q.tenant = None;
        q.limit = 10;
        assert_eq!(at(&q), [2, 1]);
    }
}
