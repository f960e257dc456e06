//! The time budget of one run. The deadline counts CPU time spent by the running thread,
//! not wall time: on a loaded machine the OS may preempt a worker for longer than a
//! whole deadline, and a module that did little work must not fail a call for it. A
//! wall-clock backstop still stops a module that idles inside host calls without
//! using CPU (WASI timers already fire at once: see `host/timers.rs`).
//!
//! A run asks the epoch ticker ([`super::epoch`]) for its first check when its whole CPU
//! deadline could have been spent; then [`RunBudget::on_epoch_deadline`] reads the clocks
//! and either says when to look again, once the CPU time still left could be spent (CPU
//! time never runs faster than wall time, so no check is late), or stops the module.

use std::time::{Duration, Instant};

use rustix::time::{clock_gettime, ClockId};

use super::limits::{WALL_BACKSTOP_FACTOR, WALL_BACKSTOP_SLACK_MS};

/// Why a run was stopped for time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Overrun {
    /// It used more CPU than its deadline.
    #[error("ran past its {deadline_ms} ms CPU deadline")]
    Cpu { deadline_ms: u32 },
    /// It used little CPU but held its worker past the wall-clock backstop.
    #[error("held its worker past {wall_ms} ms of wall time (CPU deadline {deadline_ms} ms)")]
    Wall { deadline_ms: u32, wall_ms: u64 },
}

/// The clocks of one run, started before the module is instantiated.
#[derive(Debug, Clone)]
pub(crate) struct RunBudget {
    deadline_ms: u32,
    cpu_limit: Duration,
    wall_limit: Duration,
    cpu_started: Duration,
    wall_started: Instant,
}

impl RunBudget {
    /// Starts the clocks for a run with this CPU deadline.
    pub(crate) fn start(deadline_ms: u32) -> Self {
        let cpu_limit = Duration::from_millis(u64::from(deadline_ms));
        let wall_limit = Duration::from_millis(
            u64::from(deadline_ms) * WALL_BACKSTOP_FACTOR + WALL_BACKSTOP_SLACK_MS,
        );
        RunBudget {
            deadline_ms,
            cpu_limit,
            wall_limit,
            cpu_started: thread_cpu_time(),
            wall_started: Instant::now(),
        }
    }

    /// When the first check is due: once the whole CPU deadline could have been spent.
    pub(crate) fn first_check(&self) -> Instant {
        self.wall_started + self.cpu_limit.min(self.wall_limit)
    }

    /// CPU time the run has used so far.
    pub(crate) fn cpu_used(&self) -> Duration {
        thread_cpu_time() - self.cpu_started
    }

    /// Called by wasmtime when the epoch deadline comes due: when to check again, or
    /// why the run stops.
    pub(crate) fn on_epoch_deadline(&self) -> Result<Instant, Overrun> {
        let wait = self.check(self.cpu_used(), self.wall_started.elapsed())?;
        Ok(Instant::now() + wait)
    }

    /// How long the run may go on before its next check.
    fn check(&self, cpu_used: Duration, wall_used: Duration) -> Result<Duration, Overrun> {
        if cpu_used >= self.cpu_limit {
            return Err(Overrun::Cpu {
                deadline_ms: self.deadline_ms,
            });
        }
        if wall_used >= self.wall_limit {
            return Err(Overrun::Wall {
                deadline_ms: self.deadline_ms,
                wall_ms: self.wall_limit.as_millis() as u64,
            });
        }
        Ok((self.cpu_limit - cpu_used).min(self.wall_limit - wall_used))
    }
}

/// CPU time the calling thread has used. Runs execute on one blocking thread from
/// instantiate to return, so differences of this clock are the run's own CPU time.
fn thread_cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(deadline_ms: u32) -> RunBudget {
        RunBudget::start(deadline_ms)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_preempted_run_with_cpu_left_goes_on_for_what_is_left() {
        // 40 ms of wall time went by, but the module used only 2 of its 5 CPU ms.
        assert_eq!(budget(5).check(ms(2), ms(40)), Ok(ms(3)));
        // Near the wall backstop, the next look comes at the backstop instead.
        let wall_ms = 5 * WALL_BACKSTOP_FACTOR + WALL_BACKSTOP_SLACK_MS;
        assert_eq!(budget(5).check(ms(2), ms(wall_ms - 1)), Ok(ms(1)));
    }

    #[test]
    fn cpu_past_the_deadline_stops_the_run() {
        assert_eq!(
            budget(5).check(ms(5), ms(5)).err(),
            Some(Overrun::Cpu { deadline_ms: 5 })
        );
    }

    #[test]
    fn idling_past_the_wall_backstop_stops_the_run() {
        let wall_ms = 5 * WALL_BACKSTOP_FACTOR + WALL_BACKSTOP_SLACK_MS;
        assert!(budget(5).check(ms(1), ms(wall_ms - 1)).is_ok());
        assert_eq!(
            budget(5).check(ms(1), ms(wall_ms)).err(),
            Some(Overrun::Wall {
                deadline_ms: 5,
                wall_ms
            })
        );
    }

    #[test]
    fn the_thread_clock_counts_work_not_sleep() {
        let start = thread_cpu_time();
        std::thread::sleep(ms(30));
        let slept = thread_cpu_time() - start;
        let (start, wall) = (thread_cpu_time(), Instant::now());
        let mut x = 0u64;
        while thread_cpu_time() - start < ms(10) && wall.elapsed() < Duration::from_secs(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spun = thread_cpu_time() - start;
        assert!(slept < ms(10), "sleeping used {slept:?} of CPU");
        assert!(spun >= ms(10), "spinning used only {spun:?} of CPU");
    }
}
