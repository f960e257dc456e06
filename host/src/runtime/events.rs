//! Events modules raise for operators (`log.event`: fraud warnings and blocks), kept
//! in a bounded ring the API lists and the web manager will show.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Events kept; the oldest go first.
pub const MAX_EVENTS: usize = 10_000;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Ordinal, rising: a client polls with `after`.
    pub seq: u64,
    /// Unix ms.
    pub at_ms: u64,
    /// Tenant of the module that raised it.
    pub tenant: String,
    /// Module name.
    pub module: String,
    /// The call it was raised on.
    pub call_id: String,
    /// "trace" … "error".
    pub level: &'static str,
    /// What happened ("fraud").
    pub kind: String,
    /// Whom it concerns (an account).
    pub subject: String,
    /// In words.
    pub detail: String,
}

#[derive(Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Event>,
}

/// The ring of recent events.
#[derive(Default)]
pub struct Events {
    ring: Mutex<Ring>,
}

/// What a listing asks for.
#[derive(Debug, Default, Clone)]
pub struct EventFilter<'a> {
    /// Only this tenant's (None: every tenant's, for admins).
    pub tenant: Option<&'a str>,
    /// Only this kind.
    pub kind: Option<&'a str>,
    /// Only this subject.
    pub subject: Option<&'a str>,
    /// Only events after this ordinal.
    pub after: u64,
    /// Only events at or after this Unix ms.
    pub since_ms: u64,
}

impl Events {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep an event (its `seq` is assigned here).
    pub fn push(&self, mut event: Event) {
        let mut ring = self.ring();
        ring.next_seq += 1;
        event.seq = ring.next_seq;
        if ring.events.len() >= MAX_EVENTS {
            ring.events.pop_front();
        }
        ring.events.push_back(event);
    }

    /// Matching events, newest first, at most `limit`.
    pub fn list(&self, filter: &EventFilter<'_>, limit: usize) -> Vec<Event> {
        let ring = self.ring();
        ring.events
            .iter()
            .rev()
            .take_while(|e| e.seq > filter.after && e.at_ms >= filter.since_ms)
            .filter(|e| filter.tenant.is_none_or(|t| e.tenant == t))
            .filter(|e| filter.kind.is_none_or(|k| e.kind == k))
            .filter(|e| filter.subject.is_none_or(|s| e.subject == s))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.ring().events.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: &str, kind: &str) -> Event {
        Event {
            seq: 0,
            at_ms: 1,
            tenant: tenant.into(),
            module: "m".into(),
            call_id: "c".into(),
            level: "warn",
            kind: kind.into(),
            subject: "a".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_ring_is_bounded_and_lists_newest_first_by_filter() {
        let events = Events::default();
        for i in 0..MAX_EVENTS + 5 {
            events.push(event(if i % 2 == 0 { "t" } else { "u" }, "fraud"));
        }
        assert_eq!(events.len(), MAX_EVENTS);
        let listed = events.list(
            &EventFilter {
                tenant: Some("t"),
                ..Default::default()
            },
            3,
        );
        assert_eq!(listed.len(), 3);
        assert!(listed[0].seq > listed[1].seq);
        assert!(listed.iter().all(|e| e.tenant == "t"));
        let after = events.list(
            &EventFilter {
                after: listed[0].seq - 2,
                ..Default::default()
            },
            100,
        );
        assert_eq!(after.len(), 2, "only what came after the ordinal");
    }
}
