//! Lockout of sources that keep presenting bad credentials: after `max_failures`
//! within `window_secs`, a source is refused with 429 for `lock_secs`, whatever it
//! sends. The REST API's tokens use one, the web manager's logins another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Bad credentials from one source before it is locked out; 0 = never.
    pub max_failures: u32,
    /// The window they are counted over, s.
    pub window_secs: u32,
    /// How long a source stays locked out, s.
    pub lock_secs: u32,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 10,
            window_secs: 60,
            lock_secs: 300,
        }
    }
}

/// Sources tracked at most; past it, those not locked are forgotten.
const MAX_SOURCES: usize = 100_000;

#[derive(Debug, Default)]
struct Failures {
    first_ms: u64,
    count: u32,
    locked_until_ms: u64,
}

pub struct Lockout {
    config: LockoutConfig,
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

impl Lockout {
    pub fn new(config: LockoutConfig) -> Lockout {
        Lockout {
            config,
            sources: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds `ip` is still locked out for, if it is.
    pub fn locked_for(&self, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let sources = self.lock();
        let until = sources.get(&ip)?.locked_until_ms;
        (until > now_ms).then(|| (until - now_ms).div_ceil(1_000))
    }

    /// Count a failure from `ip`; whether it is now locked out.
    pub fn failed(&self, ip: IpAddr, now_ms: u64) -> bool {
        if self.config.max_failures == 0 {
            return false;
        }
        let mut sources = self.lock();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            sources.retain(|_, f| f.locked_until_ms > now_ms);
        }
        let f = sources.entry(ip).or_default();
        if now_ms.saturating_sub(f.first_ms) > u64::from(self.config.window_secs) * 1_000 {
            f.first_ms = now_ms;
            f.count = 0;
        }
        f.count += 1;
        if f.count >= self.config.max_failures {
            f.locked_until_ms = now_ms + u64::from(self.config.lock_secs) * 1_000;
            f.count = 0;
            tracing::warn!(source = %ip, failures = self.config.max_failures,
                secs = self.config.lock_secs, "source locked out after bad credentials");
            return true;
        }
        false
    }

    /// Good credentials from `ip`: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Some(f) = self.lock().get_mut(&ip) {
            f.count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_locked_after_its_failures_and_only_it() {
        let lockout = Lockout::new(LockoutConfig {
            max_failures: 3,
            window_secs: 60,
            lock_secs: 10,
        });
        let (bad, good): (IpAddr, IpAddr) =
            ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert!(!lockout.failed(bad, 0));
        assert!(!lockout.failed(bad, 1_000));
        assert_eq!(lockout.locked_for(bad, 1_000), None);
        assert!(lockout.failed(bad, 2_000));
        assert_eq!(lockout.locked_for(bad, 2_000), Some(10));
        assert_eq!(lockout.locked_for(good, 2_000), None);
        assert_eq!(lockout.locked_for(bad, 12_001), None, "lapsed");
        // Failures spread wider than the window never lock.
        for minute in 0..10 {
            assert!(!lockout.failed(good, minute * 61_000));
        }
        // A success forgets the failures so far.
        lockout.failed(bad, 20_000);
        lockout.failed(bad, 20_000);
        lockout.succeeded(bad);
        assert!(!lockout.failed(bad, 20_000));
    }
}
