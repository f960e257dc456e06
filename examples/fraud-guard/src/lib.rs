//! The stock fraud rules, bound for `screen` (`?hook=screen`) beside any router. Every
//! rule has a warn and a block threshold; a warning lets the call through and raises
//! a `fraud` event, a block refuses it (403, or 503 for rates) and raises one too.
//! Rules come from the tenant's data tables; a threshold that is empty or 0 is off,
//! so without tables the module lets every call through.
//!
//! | table | key | fields |
//! |---|---|---|
//! | `fraud-accounts` | account id, or empty for every account | calls/min warn, block; sequential numbers warn, block |
//! | `fraud-destinations` | callee prefix (longest wins) | calls/min per account+prefix warn, block; concurrent per account+prefix warn, block; max duration s |
//! | `fraud-high-risk` | callee prefix (longest wins) | `warn` or `block` |
//!
//! Counters are the host's sliding windows (`incr`), so they expire by themselves and
//! never go below zero; concurrency is the host's count of calls in progress
//! (`live_calls`), not a counter kept here. Every key of an account starts with
//! `a:<account>:`, so `POST /api/v1/modules/fraud-guard/reset {"prefix": "a:<account>:"}`
//! resets one account.

use switchyard_sdk::{Call, Host, Level, Limits, Policy, Reject, Row, Verdict};

pub struct FraudGuard;

/// The per-account rules' table.
pub const ACCOUNTS: &str = "fraud-accounts";
/// The per-destination rules' table.
pub const DESTINATIONS: &str = "fraud-destinations";
/// High-risk destinations.
pub const HIGH_RISK: &str = "fraud-high-risk";

/// A warn and a block threshold; 0 is off.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Thresholds {
    warn: u64,
    block: u64,
}

impl Thresholds {
    fn from_fields(fields: &[String], at: usize) -> Thresholds {
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.trim().parse().ok())
                .unwrap_or(0)
        };
        Thresholds {
            warn: field(at),
            block: field(at + 1),
        }
    }

    fn is_off(&self) -> bool {
        self.warn == 0 && self.block == 0
    }

    /// What `value` amounts to under these thresholds.
    fn judge(&self, value: u64) -> Judgement {
        if self.block > 0 && value > self.block {
            Judgement::Block
        } else if self.warn > 0 && value > self.warn {
            Judgement::Warn
        } else {
            Judgement::Pass
        }
    }
}

#[derive(Debug, PartialEq)]
enum Judgement {
    Pass,
    Warn,
    Block,
}

/// One call's screening: rules are checked in order, the first block ends it, every
/// warning is raised.
struct Screening<'a> {
    host: &'a dyn Host,
    call: &'a Call,
}

impl Screening<'_> {
    fn key(&self, rest: &str) -> String {
        format!("a:{}:{rest}", self.call.account)
    }

    /// Raise the event for `judgement` and say whether the call is refused.
    fn judged(&self, judgement: Judgement, rule: &str, detail: String) -> bool {
        let account = &self.call.account;
        match judgement {
            Judgement::Pass => false,
            Judgement::Warn => {
                let detail = format!("warn {rule}: {detail} (callee {})", self.call.callee);
                self.host.event(Level::Warn, "fraud", account, &detail);
                false
            }
            Judgement::Block => {
                let detail = format!("block {rule}: {detail} (callee {})", self.call.callee);
                self.host.event(Level::Error, "fraud", account, &detail);
                true
            }
        }
    }

    fn row(&self, table: &str, key: &str, prefix: bool) -> Option<Row> {
        let rows = if prefix {
            self.host.table_longest_prefix(table, key)
        } else {
            self.host.table_exact(table, key)
        };
        rows.ok().and_then(|rows| rows.into_iter().next())
    }

    /// The account's row, or the table's default row (empty key).
    fn account_rules(&self) -> Option<Row> {
        self.row(ACCOUNTS, &self.call.account, false)
            .or_else(|| self.row(ACCOUNTS, "", false))
    }

    fn high_risk(&self) -> Option<Verdict> {
        let row = self.row(HIGH_RISK, &self.call.callee, true)?;
        let action = row.fields.first().map(|f| f.trim().to_ascii_lowercase());
        let judgement = match action.as_deref() {
            Some("block") => Judgement::Block,
            _ => Judgement::Warn,
        };
        let detail = format!("high-risk destination {}", row.key);
        self.judged(judgement, "high-risk", detail)
            .then(|| reject(403, "High-Risk Destination"))
    }

    fn account_rate(&self, rules: &Row) -> Option<Verdict> {
        let limits = Thresholds::from_fields(&rules.fields, 0);
        if limits.is_off() {
            return None;
        }
        let calls = self.host.incr(&self.key("cpm"), 60).unwrap_or(0);
        let detail = format!("{calls} calls in the last minute");
        self.judged(limits.judge(calls), "calls-per-minute", detail)
            .then(|| reject(503, "Call Rate Limit"))
    }

    /// Sequential dialling: each callee one above the last, counted as a run.
    fn sequential(&self, rules: &Row) -> Option<Verdict> {
        let limits = Thresholds::from_fields(&rules.fields, 2);
        if limits.is_off() {
            return None;
        }
        let key = self.key("seq");
        let callee = self.call.callee.as_str();
        let run = match self.host.state_get(&key).as_deref().and_then(parse_run) {
            Some((last, run)) if follows(last, callee) => run + 1,
            _ => 1,
        };
        // A write refused by the state quota only loses the run, never the call.
        let _ = self.host.state_set(&key, &format!("{callee} {run}"));
        let detail = format!("{run} numbers dialled in sequence");
        self.judged(limits.judge(run), "sequential", detail)
            .then(|| reject(403, "Sequential Dialling"))
    }

    fn destination(&self, rules: &Row) -> Result<Option<Limits>, Verdict> {
        let prefix = rules.key.as_str();
        let rate = Thresholds::from_fields(&rules.fields, 0);
        if !rate.is_off() {
            let calls = self
                .host
                .incr(&self.key(&format!("dest:{prefix}")), 60)
                .unwrap_or(0);
            let detail = format!("{calls} calls to {prefix} in the last minute");
            if self.judged(rate.judge(calls), "destination-rate", detail) {
                return Err(reject(503, "Destination Rate Limit"));
            }
        }
        let concurrent = Thresholds::from_fields(&rules.fields, 2);
        if !concurrent.is_off() {
            let calls = u64::from(self.host.live_calls(&self.call.account, prefix));
            let detail = format!("{calls} calls to {prefix} at once");
            if self.judged(concurrent.judge(calls), "concurrent", detail) {
                return Err(reject(503, "Too Many Concurrent Calls"));
            }
        }
        let cap = rules
            .fields
            .get(4)
            .and_then(|f| f.trim().parse::<u32>().ok())
            .filter(|&secs| secs > 0);
        Ok(cap.map(|max_duration_secs| Limits { max_duration_secs }))
    }

    fn verdict(&self) -> Verdict {
        if let Some(refused) = self.high_risk() {
            return refused;
        }
        if let Some(rules) = self.account_rules() {
            if let Some(refused) = self
                .account_rate(&rules)
                .or_else(|| self.sequential(&rules))
            {
                return refused;
            }
        }
        match self.row(DESTINATIONS, &self.call.callee, true) {
            None => Verdict::Allow,
            Some(rules) => match self.destination(&rules) {
                Err(refused) => refused,
                Ok(Some(limits)) => Verdict::AllowWithLimits(limits),
                Ok(None) => Verdict::Allow,
            },
        }
    }
}

fn reject(code: u16, reason: &str) -> Verdict {
    Verdict::Reject(Reject {
        code,
        reason: reason.into(),
    })
}

/// `"<last callee> <run>"` as stored.
fn parse_run(stored: &str) -> Option<(&str, u64)> {
    let (last, run) = stored.split_once(' ')?;
    Some((last, run.parse().ok()?))
}

/// Whether `next` is `last` plus one, as digit strings of the same length.
fn follows(last: &str, next: &str) -> bool {
    if last.len() != next.len() || last.is_empty() {
        return false;
    }
    // Compare the last 18 digits numerically (fits u64); the rest must be equal.
    let split = last.len().saturating_sub(18);
    let (head_a, tail_a) = last.split_at(split);
    let (head_b, tail_b) = next.split_at(split);
    match (tail_a.parse::<u64>(), tail_b.parse::<u64>()) {
        (Ok(a), Ok(b)) => head_a == head_b && a.checked_add(1) == Some(b),
        _ => false,
    }
}

impl Policy for FraudGuard {
    fn screen(host: &dyn Host, call: &Call) -> Verdict {
        Screening { host, call }.verdict()
    }
}

switchyard_sdk::export_policy!(FraudGuard);

#[cfg(test)]
mod tests;
