//! The engine's epoch, bumped only when a running decision's deadline check falls due.
//!
//! Each run says when its budget next needs a look ([`super::budget`] works it out: CPU
//! time never runs faster than wall time, so a check at "now + CPU time left" is never
//! late). The ticker thread sleeps until the earliest such instant and then increments
//! the epoch, which makes every running store check its own budget and say when to look
//! again. An idle engine never wakes; a busy one wakes about once per deadline, where a
//! 1 ms ticker preempted every thirtieth decision (one `scripts/bench-policy` run: 212
//! context switches instead of 3,223; the stock router's p99 53-55 us instead of 61-62).

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::{Engine, EngineWeak};

/// Owns the ticker thread (stopped on drop); [`EpochTicker::watch`] registers a run.
pub(crate) struct EpochTicker {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    due: Mutex<Due>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Due> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move run `id`'s check from `old` (gone already if the ticker signalled it) to
    /// `at`, waking the ticker if it sleeps past it.
    fn schedule(&self, id: u64, old: Option<Instant>, at: Instant) {
        let mut due = self.lock();
        if let Some(old) = old {
            due.checks.remove(&(old, id));
        }
        due.checks.insert((at, id));
        let wake = due.sleeping_until.is_none_or(|t| at < t);
        drop(due);
        if wake {
            self.wake.notify_one();
        }
    }
}

#[derive(Default)]
struct Due {
    /// The next check of each watched run, earliest first; the ticker takes out those
    /// it signals, and their callbacks put in the next.
    checks: BTreeSet<(Instant, u64)>,
    next_id: u64,
    /// What the ticker sleeps until; none while it waits for any check at all.
    sleeping_until: Option<Instant>,
    /// Runs being watched. Each should have one entry in `checks`, except between
    /// the ticker signalling it and its callback scheduling the next.
    watching: usize,
    /// The first check of the latest run watched: the ticker lingers until `LINGER`
    /// after it.
    last_watch: Option<Instant>,
    stop: bool,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> EpochTicker {
        let shared = Arc::new(Shared::default());
        let (engine, thread_shared) = (engine.weak(), shared.clone());
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || tick(&thread_shared, &engine))
            .expect("spawning the epoch thread");
        EpochTicker { shared }
    }

    /// Watch a run whose first check falls due at `first_check`, until the returned
    /// guard is dropped.
    pub(crate) fn watch(&self, first_check: Instant) -> Watch {
        let id = {
            let mut due = self.shared.lock();
            due.next_id += 1;
            due.watching += 1;
            due.last_watch = Some(first_check);
            due.next_id
        };
        self.shared.schedule(id, None, first_check);
        Watch {
            shared: self.shared.clone(),
            id,
            at: first_check,
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

/// The longest a watched run may go without a check scheduled before the ticker bumps
/// the epoch anyway. A signalled run whose callback never ran (it was inside a host
/// call when its check came) has no check left; without this the ticker would sleep
/// for ever and the run spin past its deadline (seen once in
/// `hostile::a_thousand_ordinary_decisions_succeed_while_hostile_guests_run`).
const UNSCHEDULED_BACKSTOP: Duration = Duration::from_millis(50);

/// How long after the latest run began the ticker, with nothing due, still wakes
/// every `LINGER_TICK` instead of sleeping until a run wakes it.
const LINGER: Duration = Duration::from_secs(1);

/// While runs keep coming the ticker is never more than this from waking anyway, so
/// a run whose first check is at least this far off (every run with the default
/// deadline) registers it without waking the ticker. Waking it for each decision cost
/// the deciding worker a futex call and the ticker a context switch, about one per
/// call at 500 calls/s; lingering costs 200 wake-ups a second, and only while calls
/// come.
const LINGER_TICK: Duration = Duration::from_millis(super::limits::DEFAULT_DEADLINE_MS as u64);

/// The ticker thread: sleep until the earliest check, then signal every run due.
fn tick(shared: &Shared, engine: &EngineWeak) {
    let mut due = shared.lock();
    while !due.stop {
        let now = Instant::now();
        // A watched run without a check: look again soon, and bump if it still has none.
        let unscheduled = due.watching > due.checks.len();
        match due.checks.first().map(|&(at, _)| at) {
            None if unscheduled => {
                due.sleeping_until = Some(now + UNSCHEDULED_BACKSTOP);
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(due, UNSCHEDULED_BACKSTOP)
                    .unwrap_or_else(|e| e.into_inner());
                due = guard;
                if waited.timed_out() && due.watching > due.checks.len() {
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            }
            None if due.last_watch.is_some_and(|at| now < at + LINGER) => {
                due.sleeping_until = Some(now + LINGER_TICK);
                due = shared
                    .wake
                    .wait_timeout(due, LINGER_TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None => {
                due.sleeping_until = None;
                due = shared.wake.wait(due).unwrap_or_else(|e| e.into_inner());
            }
            Some(at) if at > now => {
                let wait = match unscheduled {
                    true => (at - now).min(UNSCHEDULED_BACKSTOP),
                    false => at - now,
                };
                due.sleeping_until = Some(now + wait);
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(due, wait)
                    .unwrap_or_else(|e| e.into_inner());
                due = guard;
                let still_unscheduled = due.watching > due.checks.len();
                if waited.timed_out() && unscheduled && still_unscheduled && wait < at - now {
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            }
            Some(_) => {
                // Signalled once each; their callbacks schedule their next checks.
                while due.checks.first().is_some_and(|&(at, _)| at <= now) {
                    due.checks.pop_first();
                }
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        }
    }
}

/// One run's registration with the ticker, owned by its store's epoch callback;
/// dropping it ends the watch.
pub(crate) struct Watch {
    shared: Arc<Shared>,
    id: u64,
    /// Its entry in `checks`, unless the ticker has taken it out since.
    at: Instant,
}

impl Watch {
    /// Look at the run's budget again at `at`.
    pub(crate) fn reschedule(&mut self, at: Instant) {
        self.shared.schedule(self.id, Some(self.at), at);
        self.at = at;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut due = self.shared.lock();
        due.checks.remove(&(self.at, self.id));
        due.watching -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    use wasmtime::{Module, Store, UpdateDeadline};

    /// `(module (func (export "spin") (loop (br 0))))`: runs until interrupted.
    const SPIN: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // one function of that type
        0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export "spin"
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
    ];

    /// An engine with its ticker, and a store ready to call [`SPIN`].
    fn spinner() -> (Engine, EpochTicker, Store<()>, wasmtime::TypedFunc<(), ()>) {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("engine");
        let ticker = EpochTicker::start(&engine);
        let module = Module::new(&engine, SPIN).expect("module");
        let mut store = Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .expect("spin");
        (engine, ticker, store, spin)
    }

    /// Should the ticker never bump, this does after 10 s (and says so), so a test
    /// fails instead of hanging.
    fn watchdog(engine: &Engine) -> Arc<std::sync::atomic::AtomicBool> {
        let rescued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, weak) = (rescued.clone(), engine.weak());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            while let Some(engine) = weak.upgrade() {
                flag.store(true, Ordering::SeqCst);
                engine.increment_epoch();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        rescued
    }

    #[test]
    fn a_spinning_run_is_signalled_when_each_check_it_schedules_falls_due() {
        let (engine, ticker, mut store, spin) = spinner();

        // Nothing else bumps the epoch: only the ticker can end this loop, and it
        // does so once per check the run schedules (two reschedules, then stop).
        let mut watch = ticker.watch(Instant::now() + Duration::from_millis(20));
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                watch.reschedule(Instant::now() + Duration::from_millis(5));
                Ok(UpdateDeadline::Continue(1))
            } else {
                Err(wasmtime::Error::msg("budget spent"))
            }
        });
        let rescued = watchdog(&engine);
        let stopped = spin.call(&mut store, ());
        assert!(stopped.is_err(), "the loop ended by itself");
        assert!(
            !rescued.load(Ordering::SeqCst),
            "the ticker never signalled"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // The run's watch ends with its store: nothing is left for the ticker to signal.
        drop(store);
        assert!(ticker.shared.lock().checks.is_empty());
    }

    #[test]
    fn a_run_whose_check_was_signalled_while_it_was_not_running_is_still_stopped() {
        let (engine, ticker, mut store, spin) = spinner();
        // The check falls due, and is signalled, before the run's deadline is armed:
        // no callback sees that bump, so nothing schedules a next check.
        let watch = ticker.watch(Instant::now());
        let signalled = Instant::now() + Duration::from_secs(5);
        while !ticker.shared.lock().checks.is_empty() {
            assert!(
                Instant::now() < signalled,
                "the ticker never took the check"
            );
            std::thread::yield_now();
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let _ = &watch;
            Err(wasmtime::Error::msg("budget spent"))
        });
        let rescued = watchdog(&engine);
        assert!(
            spin.call(&mut store, ()).is_err(),
            "the loop ended by itself"
        );
        assert!(
            !rescued.load(Ordering::SeqCst),
            "only the watchdog stopped the run"
        );
    }
}
