//! Where a decision runs: on the tokio worker that asked for it, or on the blocking pool.
//!
//! Handing every decision to the blocking pool and its answer back costs two thread
//! wake-ups, and new pool threads pay again for their first instance (a first decision
//! on a fresh thread once took 7.9 ms of CPU against a 5 ms deadline). A module version
//! that has shown itself fast therefore runs on the calling worker, in the inline lane,
//! which holds one decision per core at a time. A version stopped for time, trapping or
//! out of memory runs on the pool for good at once; one that keeps using more than a
//! quarter of its deadline does after its third such decision (a slow decision is a
//! strike, forgiven over the next 64 fast ones), so it stalls at most that many
//! workers, for at most its deadline, three times. Versions not yet seen, and any
//! decision while the lane is full, run on the pool as before. (A lane of one left the
//! other worker free, but at 1,000 calls per second with two decisions each, most
//! decisions found it taken.)
//!
//! One slow decision used to be enough. But a version as fast as the stock router
//! (about 50 µs) now and then took 1.8 ms of CPU once (page faults, a fresh pooled
//! slot), and the whole process then decided on the pool: in one of five
//! `scripts/bench-sip` rounds at 500 calls/s, with a context switch per call more.
//!
//! The lane is open only on a runtime with more than one worker: on a current-thread
//! runtime (the tests' `#[tokio::test]`) a decision run inline stops the only thread,
//! and with it SIP reading and transaction timers, for as long as the guest runs.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use super::health::FailureKind;

/// A version counts as fast while its decisions use at most this share of their
/// CPU deadline (1/n).
const FAST_SHARE: u64 = 4;

const UNPROVEN: u8 = 0;
const FAST: u8 = 1;
const SLOW: u8 = 2;

/// Whether the runtime we are on has other workers to keep serving while this one
/// runs a guest: a multi-thread runtime with at least two workers.
pub(crate) fn runtime_has_other_workers() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|handle| {
        handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && handle.metrics().num_workers() > 1
    })
}

/// What one slow decision adds to a version's strikes; each fast one takes one away.
const STRIKE: u32 = 64;

/// Strikes that send a version to the pool for good.
const SLOW_STRIKES: u32 = 3 * STRIKE;

/// What a module version's decisions have shown so far.
#[derive(Debug, Default)]
pub(crate) struct LaneRecord {
    state: AtomicU8,
    strikes: AtomicU32,
}

impl LaneRecord {
    /// Whether its next decision may run on the calling worker.
    pub(crate) fn may_run_inline(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FAST
    }

    /// Learn from one decision: fast and successful proves the version (unless it was
    /// sent to the pool before) and works off a strike; slow is a strike; stopped for
    /// time, a trap or memory sends it to the pool for good, as do enough strikes.
    /// True when this decision sent it there.
    pub(crate) fn learn(
        &self,
        cpu_us: u64,
        deadline_ms: u32,
        failure: Option<FailureKind>,
    ) -> bool {
        if matches!(
            failure,
            Some(FailureKind::Deadline | FailureKind::Trap | FailureKind::Memory)
        ) {
            return self.send_to_pool();
        }
        let deadline_us = u64::from(deadline_ms) * 1_000;
        if cpu_us * FAST_SHARE > deadline_us {
            let strikes = self.strikes.fetch_add(STRIKE, Ordering::Relaxed) + STRIKE;
            return strikes >= SLOW_STRIKES && self.send_to_pool();
        }
        if failure.is_none() {
            let _ = self
                .strikes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
            let _ =
                self.state
                    .compare_exchange(UNPROVEN, FAST, Ordering::Relaxed, Ordering::Relaxed);
        }
        false
    }

    /// True unless it was there already.
    fn send_to_pool(&self) -> bool {
        self.state.swap(SLOW, Ordering::Relaxed) != SLOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_lane_is_shut_on_a_current_thread_runtime() {
        assert!(!runtime_has_other_workers());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_lane_is_shut_on_a_runtime_of_one_worker() {
        assert!(!runtime_has_other_workers());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lane_is_open_on_a_runtime_of_two_workers() {
        assert!(runtime_has_other_workers());
    }

    #[test]
    fn the_lane_is_shut_outside_any_runtime() {
        assert!(!runtime_has_other_workers());
    }

    #[test]
    fn a_version_runs_inline_once_fast_and_never_again_after_three_slow_decisions() {
        let lane = LaneRecord::default();
        assert!(!lane.may_run_inline(), "unproven versions run on the pool");
        assert!(!lane.learn(200, 5, None));
        assert!(lane.may_run_inline());
        assert!(
            !lane.learn(1_300, 5, None),
            "over a quarter of the deadline is a strike"
        );
        assert!(!lane.learn(1_300, 5, None));
        assert!(lane.may_run_inline());
        assert!(
            lane.learn(1_300, 5, None),
            "the third strike sends it away, and says so"
        );
        assert!(!lane.may_run_inline());
        assert!(!lane.learn(2_000, 5, None), "once only");
        for _ in 0..1_000 {
            assert!(!lane.learn(100, 5, None));
        }
        assert!(!lane.may_run_inline(), "sent away for good");
    }

    #[test]
    fn a_slow_decision_now_and_then_is_forgiven() {
        let lane = LaneRecord::default();
        lane.learn(200, 5, None);
        for _ in 0..10 {
            assert!(!lane.learn(1_800, 5, None));
            for _ in 0..STRIKE {
                lane.learn(50, 5, None);
            }
        }
        assert!(lane.may_run_inline());
        // Slow one decision in two: out after a handful.
        let out = (0..10).any(|_| lane.learn(1_800, 5, None) | lane.learn(50, 5, None));
        assert!(out && !lane.may_run_inline());
    }

    #[test]
    fn failures_for_time_or_traps_send_a_version_to_the_pool() {
        let lane = LaneRecord::default();
        lane.learn(100, 5, Some(FailureKind::Malformed));
        assert!(!lane.may_run_inline(), "a malformed answer proves nothing");
        lane.learn(100, 5, None);
        assert!(lane.may_run_inline());
        lane.learn(100, 5, Some(FailureKind::Trap));
        assert!(!lane.may_run_inline());
    }
}
