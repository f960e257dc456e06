//! Traffic statistics over a sliding window, per routing gateway and per account:
//! attempts, answers, ASR, ACD, PDD and calls per second. The SIP layer feeds every
//! finished attempt; modules read a gateway's through the gateway snapshot, operators
//! through `GET /api/v1/stats`.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// Length of the window, seconds.
pub const WINDOW_SECS: u32 = 300;

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

/// One second's totals.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    attempts: u64,
    answered: u64,
    talk_secs: u64,
    rang: u64,
    pdd_ms: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals, sign: i64) {
        let apply = |total: &mut u64, by: u64| {
            *total = if sign > 0 {
                total.saturating_add(by)
            } else {
                total.saturating_sub(by)
            }
        };
        apply(&mut self.attempts, o.attempts);
        apply(&mut self.answered, o.answered);
        apply(&mut self.talk_secs, o.talk_secs);
        apply(&mut self.rang, o.rang);
        apply(&mut self.pdd_ms, o.pdd_ms);
    }

    fn of(o: Outcome) -> Totals {
        Totals {
            attempts: 1,
            answered: u64::from(o.answered),
            talk_secs: if o.answered { o.duration_secs } else { 0 },
            rang: u64::from(o.pdd_ms.is_some()),
            pdd_ms: o.pdd_ms.map_or(0, u64::from),
        }
    }
}

/// One key's outcomes in the window, summed per second (at most [`WINDOW_SECS`]
/// seconds, so a key costs the same memory at 1 or 10,000 calls per second), with
/// running totals so a summary costs no scan: gateway_live() asks for one on every
/// attempt and every module `gateways.get`.
#[derive(Debug, Default)]
struct Window {
    /// (Unix second, its totals), oldest first.
    seconds: VecDeque<(u64, Totals)>,
    total: Totals,
}

impl Window {
    fn push(&mut self, o: Outcome) {
        let second = o.at_ms / 1_000;
        let add = Totals::of(o);
        // Outcomes arrive about in time order; a late one joins the newest second at
        // or before its own (or the oldest kept).
        let at = self.seconds.iter().rposition(|(s, _)| *s <= second);
        match at {
            Some(i) if self.seconds[i].0 == second || i + 1 < self.seconds.len() => {
                self.seconds[i].1.add(&add, 1)
            }
            Some(_) => self.seconds.push_back((second, add)),
            None if self.seconds.is_empty() => self.seconds.push_back((second, add)),
            None => self.seconds[0].1.add(&add, 1),
        }
        self.total.add(&add, 1);
    }

    fn prune(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(u64::from(WINDOW_SECS) * 1_000) / 1_000;
        while let Some((second, totals)) = self.seconds.front().copied() {
            if second >= since {
                break;
            }
            self.total.add(&totals, -1);
            self.seconds.pop_front();
        }
    }

    /// Attempts over the last second: this second's, plus the previous second's in
    /// the share of it still inside the last 1,000 ms.
    fn cps(&self, now_ms: u64) -> u32 {
        let now = now_ms / 1_000;
        let of = |second: u64| {
            self.seconds
                .iter()
                .rev()
                .find(|(s, _)| *s == second)
                .map_or(0, |(_, t)| t.attempts)
        };
        let past_share = 1.0 - (now_ms % 1_000) as f64 / 1_000.0;
        (of(now) as f64 + of(now.saturating_sub(1)) as f64 * past_share).round() as u32
    }
}

/// Outcomes per key, pruned to the window.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    by_key: HashMap<String, Window>,
    /// Records since the last sweep of empty windows.
    since_sweep: u32,
}

/// Records between sweeps that drop the windows of keys with no recent traffic
/// (a deleted gateway's, say).
const SWEEP_EVERY: u32 = 10_000;

impl Windows {
    pub(crate) fn record(&mut self, key: &str, outcome: Outcome) {
        match self.by_key.get_mut(key) {
            Some(window) => window.push(outcome),
            None => {
                let mut window = Window::default();
                window.push(outcome);
                self.by_key.insert(key.to_string(), window);
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.by_key.retain(|_, w| {
                w.prune(outcome.at_ms);
                !w.seconds.is_empty()
            });
        } else if let Some(window) = self.by_key.get_mut(key) {
            window.prune(outcome.at_ms);
        }
    }

    /// Keys tracked and seconds kept over all of them, for the memory census.
    pub(crate) fn census(&self) -> (usize, usize) {
        (
            self.by_key.len(),
            self.by_key.values().map(|w| w.seconds.len()).sum(),
        )
    }

    pub(crate) fn summary(&mut self, key: &str, now_ms: u64) -> Summary {
        let Some(w) = self.by_key.get_mut(key) else {
            return Summary {
                window_secs: WINDOW_SECS,
                ..Summary::default()
            };
        };
        w.prune(now_ms);
        let t = w.total;
        let average = |sum: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                (sum as f64 / n as f64) as f32
            }
        };
        Summary {
            attempts: t.attempts,
            answered: t.answered,
            asr: average(t.answered, t.attempts),
            acd_secs: average(t.talk_secs, t.answered),
            pdd_ms: average(t.pdd_ms, t.rang),
            cps: w.cps(now_ms),
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

    #[test]
    fn a_busy_key_costs_one_entry_a_second_and_cps_slides() {
        let mut w = Windows::default();
        let start = 1_000_000_000;
        // 1,000 attempts a second for 400 s: 400,000 outcomes.
        for ms in 0..400_000u64 {
            w.record(
                "gw",
                Outcome {
                    at_ms: start + ms,
                    answered: ms % 2 == 0,
                    duration_secs: 2,
                    pdd_ms: None,
                },
            );
        }
        let (keys, seconds) = w.census();
        assert_eq!(keys, 1);
        assert!(
            seconds <= WINDOW_SECS as usize + 1,
            "{seconds} seconds kept"
        );
        let now = start + 400_000;
        let s = w.summary("gw", now);
        assert_eq!(s.attempts, 300_000);
        assert_eq!(s.asr, 0.5);
        // At a second's start: the whole second before; half way through the last
        // second: all of it, and half of the one before.
        assert_eq!(w.summary("gw", now).cps, 1_000);
        assert_eq!(w.summary("gw", now - 500).cps, 1_000 + 500);
        assert_eq!(w.summary("gw", now + 1_000).cps, 0);
    }
}
