//! Per-version health: invocations, failures by kind, decision times, recent logs,
//! and the recent outcomes a canary's automatic rollback is judged on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use super::limits::RECENT_LOG_LINES;
use super::state::LogLine;
use crate::store::ModuleKey;

/// Why a module's answer was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, bad memory access).
    Trap,
    /// The guest ran past its CPU deadline.
    Deadline,
    /// The guest tried to grow memory past its cap.
    Memory,
    /// The answer failed validation.
    Malformed,
    /// The instance could not be created (pool exhausted, start-up trap).
    Instantiate,
}

impl FailureKind {
    /// Its name, as the health report and the metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Malformed => "malformed",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

/// Failure counts by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Failures {
    /// Traps.
    pub trap: u64,
    /// Deadline overruns.
    pub deadline: u64,
    /// Memory cap breaches.
    pub memory: u64,
    /// Malformed answers.
    pub malformed: u64,
    /// Instantiation failures.
    pub instantiate: u64,
}

/// What the health endpoint reports for a version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HealthReport {
    /// Decisions asked of it since start.
    pub invocations: u64,
    /// Failed decisions by kind.
    pub failures: Failures,
    /// Median time of instantiate + hook over recent decisions, microseconds.
    pub p50_us: u64,
    /// 99th percentile of the same, microseconds.
    pub p99_us: u64,
    /// Host calls refused because a quota (state keys or bytes) was reached; the
    /// decisions went on, the writes did not happen.
    pub quota_refusals: u64,
    /// Recent log lines, oldest first.
    pub recent_logs: Vec<LogLine>,
}

const RECENT_TIMES: usize = 4_096;
const RECENT_OUTCOMES: usize = 10_000;

#[derive(Default)]
struct VersionHealth {
    invocations: u64,
    failures: Failures,
    quota_refusals: u64,
    times_us: VecDeque<u64>,
    logs: VecDeque<LogLine>,
    /// (Unix ms, failed) of recent decisions.
    outcomes: VecDeque<(u64, bool)>,
}

/// Health of every version that has run.
#[derive(Default)]
pub(crate) struct HealthBoard {
    versions: RwLock<HashMap<ModuleKey, Arc<Mutex<VersionHealth>>>>,
}

impl HealthBoard {
    fn entry(&self, key: &ModuleKey) -> Arc<Mutex<VersionHealth>> {
        if let Some(h) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return h.clone();
        }
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Record one decision.
    pub(crate) fn record(
        &self,
        key: &ModuleKey,
        elapsed_us: u64,
        failure: Option<FailureKind>,
        logs: &[LogLine],
        quota_refusals: u32,
    ) {
        let entry = self.entry(key);
        let mut h = entry.lock().unwrap_or_else(|e| e.into_inner());
        h.invocations += 1;
        h.quota_refusals += u64::from(quota_refusals);
        if let Some(kind) = failure {
            let f = &mut h.failures;
            *match kind {
                FailureKind::Trap => &mut f.trap,
                FailureKind::Deadline => &mut f.deadline,
                FailureKind::Memory => &mut f.memory,
                FailureKind::Malformed => &mut f.malformed,
                FailureKind::Instantiate => &mut f.instantiate,
            } += 1;
        }
        push_bounded(&mut h.times_us, elapsed_us, RECENT_TIMES);
        push_bounded(
            &mut h.outcomes,
            (crate::now_ms(), failure.is_some()),
            RECENT_OUTCOMES,
        );
        for line in logs {
            push_bounded(&mut h.logs, line.clone(), RECENT_LOG_LINES);
        }
    }

    /// (decisions, failures) of `key` since `since_ms`.
    pub(crate) fn window(&self, key: &ModuleKey, since_ms: u64) -> (u64, u64) {
        let entry = self.entry(key);
        let h = entry.lock().unwrap_or_else(|e| e.into_inner());
        h.outcomes
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since_ms)
            .fold((0, 0), |(n, f), (_, failed)| {
                (n + 1, f + u64::from(*failed))
            })
    }

    /// The report for `key`.
    pub(crate) fn report(&self, key: &ModuleKey) -> HealthReport {
        let entry = self.entry(key);
        let h = entry.lock().unwrap_or_else(|e| e.into_inner());
        let mut times: Vec<u64> = h.times_us.iter().copied().collect();
        times.sort_unstable();
        let pct = |p: f64| {
            if times.is_empty() {
                0
            } else {
                times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1]
            }
        };
        HealthReport {
            invocations: h.invocations,
            failures: h.failures.clone(),
            quota_refusals: h.quota_refusals,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            recent_logs: h.logs.iter().cloned().collect(),
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    if q.len() >= max {
        q.pop_front();
    }
    q.push_back(item);
}
