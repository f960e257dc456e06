//! Alarms (VOS3000's alarm monitor): conditions an operator must look at, raised when a
//! watched figure crosses its threshold and cleared when it comes back. The watcher
//! (in the API layer, which sees every part of the switch) measures each gateway,
//! account, tenant's modules and call, and hands the conditions that hold now to
//! [`Alarms::observe`]; this keeps which alarms are active, when they were raised,
//! and the recently cleared ones.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Cleared alarms kept for the listing; the oldest go first.
pub const MAX_CLEARED: usize = 1_000;

/// What is watched and when it alarms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmConfig {
    /// Seconds between two looks.
    pub interval_secs: u64,
    /// Thresholds of every gateway and account without their own.
    pub thresholds: Thresholds,
    /// Thresholds of particular routing gateways, by id.
    pub gateways: BTreeMap<String, Thresholds>,
    /// Thresholds of particular accounts, by id.
    pub accounts: BTreeMap<String, Thresholds>,
    /// A tenant's module decisions failing more than this share over one interval
    /// (percent, once it made `min_decisions`).
    pub module_failure_percent: f64,
    /// Decisions an interval needs before its failure share counts.
    pub min_decisions: u64,
    /// A fraud event keeps its subject's alarm raised this long.
    pub fraud_hold_secs: u64,
    /// Each alarm raised and cleared is posted here as JSON.
    pub webhook: Option<String>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            interval_secs: 10,
            thresholds: Thresholds::default(),
            gateways: BTreeMap::new(),
            accounts: BTreeMap::new(),
            module_failure_percent: 5.0,
            min_decisions: 20,
            fraud_hold_secs: 600,
            webhook: None,
        }
    }
}

impl AlarmConfig {
    /// The thresholds of routing gateway `id`.
    pub fn for_gateway(&self, id: &str) -> &Thresholds {
        self.gateways.get(id).unwrap_or(&self.thresholds)
    }

    /// The thresholds of account `id`.
    pub fn for_account(&self, id: &str) -> &Thresholds {
        self.accounts.get(id).unwrap_or(&self.thresholds)
    }
}

/// The figures a gateway or account alarms on. ASR, ACD and PDD are its statistics
/// window's (5 minutes), judged once it holds `min_attempts`; loss and jitter are its
/// calls' legs' now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// ASR below this (0 … 1).
    pub asr_below: f32,
    /// ACD below this many seconds.
    pub acd_below_secs: f32,
    /// PDD above this many ms.
    pub pdd_above_ms: f32,
    /// Attempts the window needs before ASR, ACD and PDD are judged.
    pub min_attempts: u64,
    /// A call leg losing more than this share of its packets, percent.
    pub loss_above_percent: f64,
    /// A call leg's jitter above this many ms.
    pub jitter_above_ms: f64,
    /// An account's balance (less its credit, postpaid) below this, in money units.
    pub balance_below: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            asr_below: 0.3,
            acd_below_secs: 10.0,
            pdd_above_ms: 8_000.0,
            min_attempts: 20,
            loss_above_percent: 5.0,
            jitter_above_ms: 50.0,
            balance_below: 10.0,
        }
    }
}

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    LowAsr,
    LowAcd,
    HighPdd,
    PacketLoss,
    Jitter,
    GatewayDown,
    LowBalance,
    ModuleFailures,
    Fraud,
}

impl AlarmKind {
    /// How bad it is (the alarm monitor's severities).
    pub fn severity(self) -> Severity {
        match self {
            AlarmKind::GatewayDown | AlarmKind::Fraud | AlarmKind::ModuleFailures => {
                Severity::Major
            }
            _ => Severity::Warning,
        }
    }
}

/// An alarm's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Major,
}

/// What an alarm concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Gateway,
    Account,
    Modules,
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub tenant: String,
    pub kind: AlarmKind,
    pub scope: Scope,
    /// The gateway's or account's id; the tenant's for its modules.
    pub subject: String,
    /// The figure measured.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// In words.
    pub detail: String,
}

/// An alarm, active or cleared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub tenant: String,
    pub kind: AlarmKind,
    pub severity: Severity,
    pub scope: Scope,
    pub subject: String,
    /// The figure when it was last seen (its worst is not kept).
    pub value: f64,
    pub threshold: f64,
    pub detail: String,
    /// Unix ms.
    pub raised_ms: u64,
    /// Unix ms; none while active.
    pub cleared_ms: Option<u64>,
}

type Key = (String, AlarmKind, Scope, String);

#[derive(Default)]
struct State {
    active: HashMap<Key, Alarm>,
    cleared: VecDeque<Alarm>,
}

/// The switch's alarms.
#[derive(Default)]
pub struct Alarms {
    state: Mutex<State>,
}

/// An alarm that was raised or cleared by one look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `raised` or `cleared`.
    pub event: &'static str,
    pub alarm: Alarm,
}

impl Alarms {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one look's conditions: those new raise an alarm, those still holding
    /// refresh theirs, and active alarms whose condition is gone are cleared.
    pub fn observe(&self, conditions: Vec<Condition>, now_ms: u64) -> Vec<Change> {
        let mut state = self.state();
        let mut changes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in conditions {
            let key = (c.tenant.clone(), c.kind, c.scope, c.subject.clone());
            seen.insert(key.clone());
            match state.active.get_mut(&key) {
                Some(a) => {
                    a.value = c.value;
                    a.threshold = c.threshold;
                    a.detail = c.detail;
                }
                None => {
                    let alarm = Alarm {
                        tenant: c.tenant,
                        kind: c.kind,
                        severity: c.kind.severity(),
                        scope: c.scope,
                        subject: c.subject,
                        value: c.value,
                        threshold: c.threshold,
                        detail: c.detail,
                        raised_ms: now_ms,
                        cleared_ms: None,
                    };
                    tracing::warn!(kind = ?alarm.kind, subject = %alarm.subject, detail = %alarm.detail, "alarm raised");
                    changes.push(Change {
                        event: "raised",
                        alarm: alarm.clone(),
                    });
                    state.active.insert(key, alarm);
                }
            }
        }
        let gone: Vec<Key> = state
            .active
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let Some(mut alarm) = state.active.remove(&key) else {
                continue;
            };
            alarm.cleared_ms = Some(now_ms);
            tracing::info!(kind = ?alarm.kind, subject = %alarm.subject, "alarm cleared");
            changes.push(Change {
                event: "cleared",
                alarm: alarm.clone(),
            });
            if state.cleared.len() >= MAX_CLEARED {
                state.cleared.pop_front();
            }
            state.cleared.push_back(alarm);
        }
        changes
    }

    /// `tenant`'s active alarms (every tenant's for none), oldest first, then the
    /// cleared ones newest first, at most `cleared_limit`.
    pub fn list(&self, tenant: Option<&str>, cleared_limit: usize) -> (Vec<Alarm>, Vec<Alarm>) {
        let state = self.state();
        let mine = |a: &&Alarm| tenant.is_none_or(|t| a.tenant == t);
        let mut active: Vec<Alarm> = state.active.values().filter(mine).cloned().collect();
        active.sort_by(|a, b| {
            (a.raised_ms, a.kind, &a.subject).cmp(&(b.raised_ms, b.kind, &b.subject))
        });
        let cleared = state
            .cleared
            .iter()
            .rev()
            .filter(mine)
            .take(cleared_limit)
            .cloned()
            .collect();
        (active, cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(subject: &str) -> Condition {
        Condition {
            tenant: "t".into(),
            kind: AlarmKind::GatewayDown,
            scope: Scope::Gateway,
            subject: subject.into(),
            value: 1.0,
            threshold: 0.0,
            detail: "down".into(),
        }
    }

    #[test]
    fn an_alarm_is_raised_once_kept_while_it_holds_and_cleared_when_it_goes() {
        let alarms = Alarms::default();
        let changes = alarms.observe(vec![down("a"), down("b")], 10);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.event == "raised"));
        assert!(alarms.observe(vec![down("a"), down("b")], 20).is_empty());
        let changes = alarms.observe(vec![down("b")], 30);
        assert_eq!(
            (
                changes.len(),
                changes[0].event,
                changes[0].alarm.subject.as_str()
            ),
            (1, "cleared", "a")
        );
        let (active, cleared) = alarms.list(Some("t"), 10);
        assert_eq!(active.len(), 1);
        assert_eq!((active[0].subject.as_str(), active[0].raised_ms), ("b", 10));
        assert_eq!(cleared[0].cleared_ms, Some(30));
        assert_eq!(alarms.list(Some("other"), 10), (vec![], vec![]));
    }
}
