//! Today's and this month's totals per account (UTC days): calls, minutes, income,
//! cost and profit, fed by every ended call. The dashboard sums a tenant's; "top
//! customers" ranks its accounts. Held in memory, one entry per account that called:
//! a restart starts the day's figures again (the call records keep the truth).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

use switchyard_model::{CallRecord, Money};

/// One period's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Calls that ended.
    pub calls: u64,
    /// Of them, answered.
    pub answered: u64,
    /// Talk time, seconds.
    pub talk_secs: u64,
    /// Billed seconds.
    pub billed_secs: u64,
    /// Charged to the customers.
    pub income: Money,
    /// Paid to the vendors.
    pub cost: Money,
    /// Income less cost.
    pub profit: Money,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.calls += o.calls;
        self.answered += o.answered;
        self.talk_secs += o.talk_secs;
        self.billed_secs += o.billed_secs;
        self.income = self.income + o.income;
        self.cost = self.cost + o.cost;
        self.profit = self.profit + o.profit;
    }

    fn of(r: &CallRecord) -> Totals {
        let b = r.billing.as_ref();
        Totals {
            calls: 1,
            answered: u64::from(r.answer_ms.is_some()),
            talk_secs: r.duration_secs(),
            billed_secs: b.map_or(0, |b| b.billed_secs),
            income: b.map_or(Money::default(), |b| b.charge),
            cost: b.and_then(|b| b.cost).unwrap_or_default(),
            profit: b.map_or(Money::default(), |b| b.profit),
        }
    }
}

/// Which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    ThisMonth,
}

/// (day number, month number) of a Unix ms time, UTC.
fn periods(at_ms: u64) -> (i64, i64) {
    let t = Utc
        .timestamp_millis_opt(at_ms as i64)
        .single()
        .unwrap_or_default();
    (
        (at_ms / 86_400_000) as i64,
        i64::from(t.year()) * 12 + i64::from(t.month0()),
    )
}

struct Book {
    tenant: String,
    day: i64,
    month: i64,
    today: Totals,
    this_month: Totals,
}

impl Book {
    /// Forget the periods that are over at `now`.
    fn roll(&mut self, (day, month): (i64, i64)) {
        if day != self.day {
            self.day = day;
            self.today = Totals::default();
        }
        if month != self.month {
            self.month = month;
            self.this_month = Totals::default();
        }
    }
}

/// The books of every account that called, by account id.
#[derive(Default)]
pub struct Ledger(Mutex<HashMap<String, Book>>);

impl Ledger {
    fn books(&self) -> std::sync::MutexGuard<'_, HashMap<String, Book>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count an ended call.
    pub fn record(&self, r: &CallRecord) {
        let now = periods(r.end_ms);
        let mut books = self.books();
        let book = books.entry(r.account.clone()).or_insert_with(|| Book {
            tenant: r.tenant.clone(),
            day: now.0,
            month: now.1,
            today: Totals::default(),
            this_month: Totals::default(),
        });
        book.roll(now);
        let t = Totals::of(r);
        book.today.add(&t);
        book.this_month.add(&t);
    }

    /// Each of `tenant`'s accounts that `keep` accepts with its totals for `period` as
    /// of `now_ms`.
    pub fn accounts(
        &self,
        tenant: &str,
        period: Period,
        now_ms: u64,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<(String, Totals)> {
        let now = periods(now_ms);
        let mut books = self.books();
        books
            .iter_mut()
            .filter(|(id, b)| b.tenant == tenant && keep(id))
            .map(|(id, b)| {
                b.roll(now);
                let t = match period {
                    Period::Today => b.today,
                    Period::ThisMonth => b.this_month,
                };
                (id.clone(), t)
            })
            .filter(|(_, t)| t.calls > 0)
            .collect()
    }

    /// The sum of [`Ledger::accounts`].
    pub fn total(
        &self,
        tenant: &str,
        period: Period,
        now_ms: u64,
        keep: impl Fn(&str) -> bool,
    ) -> Totals {
        let mut sum = Totals::default();
        for (_, t) in self.accounts(tenant, period, now_ms, keep) {
            sum.add(&t);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(account: &str, end_ms: u64, secs: u64, charge: i64) -> CallRecord {
        let mut r: CallRecord = serde_json::from_value(serde_json::json!({
            "call_id": format!("c{end_ms}"), "tenant": "t", "account": account,
            "ingress_gateway": "in", "caller_in": "1", "callee_in": "2",
            "invite_ms": end_ms - secs * 1000, "end_ms": end_ms,
            "final_code": 200, "reason": "caller_hangup", "attempts": [],
        }))
        .unwrap();
        r.answer_ms = Some(end_ms - secs * 1000);
        r.billing = Some(switchyard_model::CallCharges {
            billed_secs: secs,
            rate_prefix: "2".into(),
            charge: Money(charge),
            cost: Some(Money(charge / 2)),
            profit: Money(charge - charge / 2),
            balance_after: Money(0),
        });
        r
    }

    #[test]
    fn a_new_day_starts_today_again_but_not_the_month() {
        let ledger = Ledger::default();
        let day = 86_400_000;
        // 2026-12-01 and -02 (UTC).
        let first = 20_423 * day + 3_600_000;
        ledger.record(&call("a", first, 60, 100));
        ledger.record(&call("b", first, 30, 40));
        ledger.record(&call("a", first + day, 120, 200));
        let today = ledger.total("t", Period::Today, first + day, |_| true);
        assert_eq!(
            (today.calls, today.talk_secs, today.income),
            (1, 120, Money(200))
        );
        let month = ledger.accounts("t", Period::ThisMonth, first + day, |_| true);
        let a = month.iter().find(|(id, _)| id == "a").unwrap().1;
        assert_eq!(
            (a.calls, a.income, a.cost, a.profit),
            (2, Money(300), Money(150), Money(150))
        );
        assert_eq!(
            ledger
                .total("t", Period::ThisMonth, first + day, |id| id == "b")
                .talk_secs,
            30
        );
        assert_eq!(
            ledger.total("other", Period::Today, first, |_| true).calls,
            0
        );
    }
}
