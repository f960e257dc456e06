//! Constructors for the WIT records, so modules read like routing rules.

use crate::{Attempt, Decision, Reject};

impl Attempt {
    /// An attempt to `gateway` with `callee`, everything else left as the host would send it.
    pub fn to(gateway: impl Into<String>, callee: impl Into<String>) -> Self {
        Attempt {
            gateway: gateway.into(),
            callee: callee.into(),
            caller: None,
            display: None,
            p_asserted_identity: None,
            privacy: None,
            p_preferred_identity: None,
            add_headers: Vec::new(),
            remove_headers: Vec::new(),
            timeout_ms: None,
        }
    }
}

impl Decision {
    /// Refuse the call with `code` and `reason`.
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        Decision::Reject(Reject {
            code,
            reason: reason.into(),
        })
    }
}

impl crate::Call {
    /// The first header named `name` (case-insensitive), if the call carries one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}
