//! Traffic statistics over a sliding window, per routing gateway and per account:
//! attempts, answers, ASR, ACD, PDD and calls per second. The SIP layer feeds every
//! finished attempt; modules read a gateway's through the gateway snapshot, operators
//! through `GET /api/v1/stats`.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// Length of the window, seconds.
pub const WINDOW_SECS: u32 = 300;
/// Most outcomes kept per gateway or account (a busy key's window is then shorter).
const MAX_OUTCOMES: usize = 100_000;

/// One finished attempt.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// When it ended, Unix ms.
    pub at_ms: u64,
    /// It was answered.
    pub answered: bool,
    /// Seconds of talk (answered only).
    pub duration_secs: u64,
    /// Post-dial delay, when it rang.
    pub pdd_ms: Option<u32>,
}

/// The window's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Attempts that ended in the window.
    pub attempts: u64,
    /// Of them, answered.
    pub answered: u64,
    /// Answer-seizure ratio, 0-1.
    pub asr: f32,
    /// Average talk time of the answered, seconds.
    pub acd_secs: f32,
    /// Average post-dial delay of those that rang, ms.
    pub pdd_ms: f32,
    /// Attempts per second over the last second.
    pub cps: u32,
    /// The window, seconds.
    pub window_secs: u32,
}

/// One key's outcomes in the window, with running totals so a summary costs no scan:
/// gateway_live() asks for one on every attempt and every module `gateways.get`.
#[derive(Debug, Default)]
struct Window {
    outcomes: VecDeque<Outcome>,
    answered: u64,
    talk_secs: u64,
    rang: u64,
    pdd_ms: u64,
}

impl Window {
    fn add(&mut self, o: Outcome, sign: i64) {
        let apply = |total: &mut u64, by: u64| {
            *total = if sign > 0 {
                total.saturating_add(by)
            } else {
                total.saturating_sub(by)
            }
        };
        if o.answered {
            apply(&mut self.answered, 1);
            apply(&mut self.talk_secs, o.duration_secs);
        }
        if let Some(pdd) = o.pdd_ms {
            apply(&mut self.rang, 1);
            apply(&mut self.pdd_ms, u64::from(pdd));
        }
    }

    fn push(&mut self, o: Outcome) {
        if self.outcomes.len() >= MAX_OUTCOMES {
            self.pop();
        }
        self.outcomes.push_back(o);
        self.add(o, 1);
    }

    fn pop(&mut self) {
        if let Some(old) = self.outcomes.pop_front() {
            self.add(old, -1);
        }
    }

    fn prune(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(u64::from(WINDOW_SECS) * 1_000);
        while self.outcomes.front().is_some_and(|o| o.at_ms < since) {
            self.pop();
        }
    }
}

/// Outcomes per key, pruned to the window.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    by_key: HashMap<String, Window>,
}

impl Windows {
    pub(crate) fn record(&mut self, key: &str, outcome: Outcome) {
        let window = self.by_key.entry(key.to_string()).or_default();
        window.push(outcome);
        window.prune(outcome.at_ms);
    }

    pub(crate) fn summary(&mut self, key: &str, now_ms: u64) -> Summary {
        let Some(w) = self.by_key.get_mut(key) else {
            return Summary {
                window_secs: WINDOW_SECS,
                ..Summary::default()
            };
        };
        w.prune(now_ms);
        let attempts = w.outcomes.len() as u64;
        let average = |sum: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                (sum as f64 / n as f64) as f32
            }
        };
        Summary {
            attempts,
            answered: w.answered,
            asr: average(w.answered, attempts),
            acd_secs: average(w.talk_secs, w.answered),
            pdd_ms: average(w.pdd_ms, w.rang),
            // Only the last second is scanned.
            cps: w
                .outcomes
                .iter()
                .rev()
                .take_while(|o| o.at_ms + 1_000 > now_ms)
                .count() as u32,
            window_secs: WINDOW_SECS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asr_acd_and_pdd_over_the_window_only() {
        let mut w = Windows::default();
        let at = |s: u64| 1_000_000 + s * 1_000;
        w.record(
            "gw",
            Outcome {
                at_ms: at(0),
                answered: true,
                duration_secs: 100,
                pdd_ms: Some(2_000),
            },
        );
        w.record(
            "gw",
            Outcome {
                at_ms: at(10),
                answered: true,
                duration_secs: 20,
                pdd_ms: Some(1_000),
            },
        );
        w.record(
            "gw",
            Outcome {
                at_ms: at(20),
                answered: false,
                duration_secs: 0,
                pdd_ms: None,
            },
        );
        w.record(
            "gw",
            Outcome {
                at_ms: at(20),
                answered: false,
                duration_secs: 0,
                pdd_ms: Some(3_000),
            },
        );
        let s = w.summary("gw", at(20));
        assert_eq!((s.attempts, s.answered, s.cps), (4, 2, 2));
        assert_eq!((s.asr, s.acd_secs, s.pdd_ms), (0.5, 60.0, 2_000.0));
        // 300 s after the second, the first two have left the window.
        let s = w.summary("gw", at(315));
        assert_eq!(
            (s.attempts, s.answered, s.asr, s.acd_secs),
            (2, 0, 0.0, 0.0)
        );
        assert_eq!(w.summary("other", at(0)).attempts, 0);
    }
}
