//! The switch's business clock: what time it is for routing, work calendars and rating.
//! It is the system clock, unless the server was started with a settable clock (labs and
//! tests): then an operator may move it to any instant over REST, and it runs on from
//! there. Timers, timeouts and log timestamps never use it.

use std::sync::atomic::{AtomicI64, Ordering};

/// A clock that is the system clock plus an offset an operator may set.
#[derive(Debug, Default)]
pub struct Clock {
    settable: bool,
    offset_ms: AtomicI64,
}

/// Why the clock was not moved.
#[derive(Debug, thiserror::Error)]
#[error("this server's clock is the system clock; start it with --settable-clock to move it")]
pub struct NotSettable;

impl Clock {
    /// The system clock, fixed.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock an operator may move.
    pub fn settable() -> Clock {
        Clock {
            settable: true,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Whether [`Clock::set_ms`] may move it.
    pub fn is_settable(&self) -> bool {
        self.settable
    }

    /// Milliseconds since the Unix epoch, on this clock.
    pub fn now_ms(&self) -> u64 {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        crate::now_ms().saturating_add_signed(offset)
    }

    /// How far it is from the system clock, milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Make it `at_ms` now; it runs on from there.
    pub fn set_ms(&self, at_ms: u64) -> Result<(), NotSettable> {
        if !self.settable {
            return Err(NotSettable);
        }
        let offset = at_ms as i128 - crate::now_ms() as i128;
        let offset = offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settable_clock_runs_on_from_where_it_was_set() {
        let clock = Clock::settable();
        clock.set_ms(1_798_106_400_000).unwrap();
        let now = clock.now_ms();
        assert!(
            (1_798_106_400_000..1_798_106_460_000).contains(&now),
            "{now}"
        );
        clock.set_ms(0).unwrap();
        assert!(clock.now_ms() < 60_000);
    }

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        assert!(clock.set_ms(0).is_err());
        assert_eq!(clock.offset_ms(), 0);
    }
}
