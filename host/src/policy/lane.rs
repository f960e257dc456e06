//! Where a decision runs: on the tokio worker that asked for it, or on the blocking pool.
//!
//! Handing every decision to the blocking pool and its answer back costs two thread
//! wake-ups, and new pool threads pay again for their first instance (a first decision
//! on a fresh thread once took 7.9 ms of CPU against a 5 ms deadline). A module version
//! that has shown itself fast therefore runs on the calling worker, in the inline lane,
//! which holds one decision per core at a time: a module that turns slow stalls at
//! most that many workers, for at most its deadline, once; after that it runs on the
//! pool for good. Versions not yet seen, and any decision while the lane is full, run
//! on the pool as before. (A lane of one left the other worker free, but at 1,000
//! calls per second with two decisions each, most decisions found it taken.)
//!
//! The lane is open only on a runtime with more than one worker: on a current-thread
//! runtime (the tests' `#[tokio::test]`) a decision run inline stops the only thread,
//! and with it SIP reading and transaction timers, for as long as the guest runs.

use std::sync::atomic::{AtomicU8, Ordering};

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

/// What a module version's decisions have shown so far.
#[derive(Debug, Default)]
pub(crate) struct LaneRecord(AtomicU8);

impl LaneRecord {
    /// Whether its next decision may run on the calling worker.
    pub(crate) fn may_run_inline(&self) -> bool {
        self.0.load(Ordering::Relaxed) == FAST
    }

    /// Learn from one decision: fast and successful proves the version (unless it was
    /// slow before); slow, or stopped for time or a trap, sends it to the pool for good.
    pub(crate) fn learn(&self, cpu_us: u64, deadline_ms: u32, failure: Option<FailureKind>) {
        let deadline_us = u64::from(deadline_ms) * 1_000;
        let slow = cpu_us * FAST_SHARE > deadline_us
            || matches!(
                failure,
                Some(FailureKind::Deadline | FailureKind::Trap | FailureKind::Memory)
            );
        if slow {
            self.0.store(SLOW, Ordering::Relaxed);
        } else if failure.is_none() {
            let _ = self
                .0
                .compare_exchange(UNPROVEN, FAST, Ordering::Relaxed, Ordering::Relaxed);
        }
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
    fn a_version_runs_inline_once_fast_and_never_again_once_slow() {
        let lane = LaneRecord::default();
        assert!(!lane.may_run_inline(), "unproven versions run on the pool");
        lane.learn(200, 5, None);
        assert!(lane.may_run_inline());
        lane.learn(1_300, 5, None);
        assert!(
            !lane.may_run_inline(),
            "over a quarter of the deadline is slow"
        );
        lane.learn(100, 5, None);
        assert!(!lane.may_run_inline(), "slow is for good");
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
