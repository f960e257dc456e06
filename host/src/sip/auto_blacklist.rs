//! The dynamic blacklist (VOS3000's): a caller number whose calls over a window are
//! mostly failed or very short, or that holds too many calls at once, is listed for a
//! while and its calls refused; optionally its source address is banned by the
//! shield as well. Off until `min_calls` or `max_concurrent` is set. Listings live in
//! memory, bounded, and lapse by themselves; operators list and lift them over REST.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// When a caller number is listed automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoBlacklistConfig {
    /// Calls a number must have ended within the window before it is judged; 0 = the
    /// pattern rule is off.
    pub min_calls: u32,
    /// The window, seconds.
    pub window_secs: u32,
    /// Listed when this share of its calls (0.0..=1.0) failed or were shorter than
    /// `short_call_secs`.
    pub max_bad_ratio: f64,
    /// An answered call shorter than this counts as bad, seconds.
    pub short_call_secs: u32,
    /// Listed when it holds more calls than this at once; 0 = off.
    pub max_concurrent: u32,
    /// How long a listing lasts, seconds.
    pub list_secs: u32,
    /// Also ban the source address the listing call came from (for phone-facing
    /// switches; a gateway's address carries many customers, so off by default).
    pub ban_sources: bool,
}

impl Default for AutoBlacklistConfig {
    fn default() -> Self {
        AutoBlacklistConfig {
            min_calls: 0,
            window_secs: 600,
            max_bad_ratio: 0.8,
            short_call_secs: 6,
            max_concurrent: 0,
            list_secs: 3_600,
            ban_sources: false,
        }
    }
}

/// Most numbers watched at once; past it the oldest windows are dropped.
pub const MAX_WATCHED: usize = 100_000;

/// A listed number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    /// Tenant whose customer called from it.
    pub tenant: String,
    /// The caller number.
    pub number: String,
    /// Why, in words.
    pub reason: String,
    /// Unix ms.
    pub since_ms: u64,
    /// Unix ms; it lapses then.
    pub until_ms: u64,
}

type Number = (String, String);

#[derive(Default)]
struct State {
    /// Per (tenant, number): (end time, bad) of its calls within the window.
    windows: HashMap<Number, VecDeque<(u64, bool)>>,
    /// Calls in progress per (tenant, number).
    active: HashMap<Number, u32>,
    listed: HashMap<Number, Listing>,
}

/// The dynamic blacklist.
pub struct AutoBlacklist {
    config: AutoBlacklistConfig,
    state: Arc<Mutex<State>>,
}

/// A call counted among its number's calls in progress; dropping it uncounts it.
pub struct ActiveCall {
    state: Arc<Mutex<State>>,
    key: Number,
}

/// What a finished call tells the blacklist.
pub struct Ended<'a> {
    pub tenant: &'a str,
    pub caller: &'a str,
    pub answered: bool,
    pub duration_secs: u64,
    pub end_ms: u64,
}

impl AutoBlacklist {
    pub fn new(config: AutoBlacklistConfig) -> AutoBlacklist {
        AutoBlacklist {
            config,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the config asks for anything at all.
    pub fn is_on(&self) -> bool {
        self.config.min_calls > 0 || self.config.max_concurrent > 0
    }

    /// Whether the address of a listing call is to be banned too.
    pub fn bans_sources(&self) -> bool {
        self.config.ban_sources
    }

    fn list(&self, state: &mut State, key: Number, reason: String, now_ms: u64) -> Listing {
        let listing = Listing {
            tenant: key.0.clone(),
            number: key.1.clone(),
            reason,
            since_ms: now_ms,
            until_ms: now_ms + u64::from(self.config.list_secs) * 1_000,
        };
        tracing::warn!(tenant = %listing.tenant, number = %listing.number, reason = %listing.reason, "caller number blacklisted automatically");
        state.windows.remove(&key);
        state.listed.insert(key, listing.clone());
        listing
    }

    /// The listing of a caller number in force at `now_ms`.
    pub fn listed(&self, tenant: &str, number: &str, now_ms: u64) -> Option<Listing> {
        let mut state = self.lock();
        let key = (tenant.to_string(), number.to_string());
        match state.listed.get(&key) {
            Some(l) if l.until_ms > now_ms => Some(l.clone()),
            Some(_) => {
                state.listed.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Count a new call of `number`; a listing when it now holds too many at once.
    pub fn enter(
        &self,
        tenant: &str,
        number: &str,
        now_ms: u64,
    ) -> (Option<ActiveCall>, Option<Listing>) {
        if self.config.max_concurrent == 0 || number.is_empty() {
            return (None, None);
        }
        let key = (tenant.to_string(), number.to_string());
        let mut state = self.lock();
        let active = state.active.entry(key.clone()).or_default();
        *active += 1;
        let held = *active;
        let entry = ActiveCall {
            state: self.state.clone(),
            key: key.clone(),
        };
        if held <= self.config.max_concurrent {
            return (Some(entry), None);
        }
        let reason = format!(
            "{held} calls at once (more than {})",
            self.config.max_concurrent
        );
        (
            Some(entry),
            Some(self.list(&mut state, key, reason, now_ms)),
        )
    }

    /// Judge a number by a call that ended; a listing when its window now says so.
    pub fn ended(&self, call: Ended<'_>) -> Option<Listing> {
        let c = &self.config;
        if c.min_calls == 0 || call.caller.is_empty() {
            return None;
        }
        let bad = !call.answered || call.duration_secs < u64::from(c.short_call_secs);
        let key = (call.tenant.to_string(), call.caller.to_string());
        let since = call.end_ms.saturating_sub(u64::from(c.window_secs) * 1_000);
        let mut state = self.lock();
        if state.listed.contains_key(&key) {
            return None;
        }
        if state.windows.len() >= MAX_WATCHED && !state.windows.contains_key(&key) {
            // Bounded: forget every window that holds nothing recent, or else all.
            state
                .windows
                .retain(|_, w| w.back().is_some_and(|(t, _)| *t > since));
            if state.windows.len() >= MAX_WATCHED {
                state.windows.clear();
            }
        }
        let window = state.windows.entry(key.clone()).or_default();
        window.push_back((call.end_ms, bad));
        while window.front().is_some_and(|(t, _)| *t <= since) {
            window.pop_front();
        }
        let calls = window.len();
        let bad_calls = window.iter().filter(|(_, b)| *b).count();
        if calls < c.min_calls as usize || (bad_calls as f64) < c.max_bad_ratio * calls as f64 {
            return None;
        }
        let reason = format!(
            "{bad_calls} of {calls} calls in {} s failed or were shorter than {} s",
            c.window_secs, c.short_call_secs
        );
        Some(self.list(&mut state, key, reason, call.end_ms))
    }

    /// Listings in force, oldest first (of one tenant, or all).
    pub fn listings(&self, tenant: Option<&str>, now_ms: u64) -> Vec<Listing> {
        let mut state = self.lock();
        state.listed.retain(|_, l| l.until_ms > now_ms);
        let mut all: Vec<_> = state
            .listed
            .values()
            .filter(|l| tenant.is_none_or(|t| l.tenant == t))
            .cloned()
            .collect();
        all.sort_by_key(|l| l.since_ms);
        all
    }

    /// Lift a listing; whether there was one.
    pub fn lift(&self, tenant: &str, number: &str) -> bool {
        let key = (tenant.to_string(), number.to_string());
        let mut state = self.lock();
        state.windows.remove(&key);
        state.listed.remove(&key).is_some()
    }

    /// (numbers watched, numbers with calls in progress, listings), for the census.
    pub fn census(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (state.windows.len(), state.active.len(), state.listed.len())
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = state.active.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.active.remove(&self.key);
            }
        }
    }
}

/// The reason and length of the source ban that goes with `listing`.
pub fn source_reason(listing: &Listing) -> (String, u32) {
    let secs = (listing.until_ms.saturating_sub(listing.since_ms) / 1_000) as u32;
    (
        format!("auto-blacklist: {} ({})", listing.reason, listing.number),
        secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AutoBlacklistConfig {
        AutoBlacklistConfig {
            min_calls: 4,
            window_secs: 60,
            max_bad_ratio: 0.75,
            short_call_secs: 5,
            max_concurrent: 2,
            list_secs: 10,
            ban_sources: false,
        }
    }

    fn ended(caller: &str, answered: bool, secs: u64, end_ms: u64) -> Ended<'_> {
        Ended {
            tenant: "t",
            caller,
            answered,
            duration_secs: secs,
            end_ms,
        }
    }

    #[test]
    fn mostly_short_or_failed_calls_list_a_number_until_it_lapses() {
        let bl = AutoBlacklist::new(config());
        assert!(bl.ended(ended("100", false, 0, 1_000)).is_none());
        assert!(bl.ended(ended("100", true, 60, 2_000)).is_none());
        assert!(bl.ended(ended("100", true, 2, 3_000)).is_none());
        assert!(
            bl.ended(ended("200", false, 0, 3_500)).is_none(),
            "another number"
        );
        // 3 bad of 4 = 0.75: listed.
        let listing = bl.ended(ended("100", false, 0, 4_000)).expect("listed");
        assert!(listing.reason.contains("3 of 4"), "{}", listing.reason);
        assert!(bl.listed("t", "100", 5_000).is_some());
        assert!(bl.listed("u", "100", 5_000).is_none(), "per tenant");
        assert!(bl.listed("t", "100", 14_000).is_none(), "lapsed after 10 s");
        assert!(bl.listings(None, 14_000).is_empty());
    }

    #[test]
    fn calls_older_than_the_window_do_not_count() {
        let bl = AutoBlacklist::new(config());
        for t in [1_000, 2_000, 3_000] {
            assert!(bl.ended(ended("100", false, 0, t)).is_none());
        }
        assert!(
            bl.ended(ended("100", false, 0, 70_000)).is_none(),
            "the first three fell out of the window"
        );
    }

    #[test]
    fn too_many_calls_at_once_list_a_number_and_ended_calls_stop_counting() {
        let bl = AutoBlacklist::new(config());
        let (a, none) = bl.enter("t", "100", 1);
        assert!(none.is_none());
        let (b, none) = bl.enter("t", "100", 1);
        assert!(none.is_none());
        drop(a);
        let (c, none) = bl.enter("t", "100", 1);
        assert!(none.is_none(), "the ended call no longer counts");
        let (_d, listed) = bl.enter("t", "100", 1);
        assert!(listed.is_some_and(|l| l.reason.contains("3 calls at once")));
        drop((b, c));
        assert!(bl.lift("t", "100"));
        assert!(bl.listed("t", "100", 2).is_none());
    }

    #[test]
    fn off_by_default() {
        let bl = AutoBlacklist::new(AutoBlacklistConfig::default());
        assert!(!bl.is_on());
        for t in 0..100 {
            assert!(bl.ended(ended("100", false, 0, t)).is_none());
        }
        assert!(matches!(bl.enter("t", "100", 1), (None, None)));
    }
}
