//! Real-time billing: a call is authorized against its account before any vendor
//! INVITE (enabled, the callee within its number sections, a rate for the number,
//! funds for the first increment), reserves quotas of its balance while answered, and is
//! settled when it ends: charge, vendor cost and profit, balance debited and the call
//! record written in one atomic, flushed step.
//!
//! Reservations keep concurrent calls of one account from spending the same money,
//! in quotas as prepaid charging does: an answered call holds the charge of its next
//! [`QUOTA_SECS`] (or what is left, if less), asks for another quota when that runs
//! out, and is cut when none is left. So one long call does not lock up a large
//! balance that other calls could use, and no two calls spend the same money.

mod calendar;
mod lookup;
mod rate_table;
mod rating;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchyard_model::Money;

pub use calendar::{Calendar, Days, Period};
pub use lookup::{LookupError, PriceList};
pub use rating::Rate;

use crate::runtime::Runtime;
use crate::store::Store;
use switchyard_model::{Account, CallCharges, CallRecord, EndReason, RoutingGateway};

/// Seconds of talk one reservation covers.
pub const QUOTA_SECS: u64 = 60;

/// Why billing refuses a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// SIP code for the caller.
    pub code: u16,
    /// Reason phrase.
    pub phrase: &'static str,
    /// What the call record says.
    pub reason: EndReason,
    /// Details for the log and the Reason header.
    pub detail: String,
}

/// A call billing let through, with the rate it will be charged at.
#[derive(Debug, Clone)]
pub struct Authorization {
    account: String,
    tenant: String,
    rate: Rate,
    /// Seconds of talk granted so far.
    granted_secs: u64,
    /// Held for them: the charge of `granted_secs`, released at settlement.
    reserved: Money,
}

impl Authorization {
    /// The customer rate.
    pub fn rate(&self) -> &Rate {
        &self.rate
    }
}

/// Billing for every call.
pub struct Billing {
    store: Store,
    runtime: Arc<Runtime>,
    /// Money held by answered calls, by account.
    reserved: Mutex<HashMap<String, Money>>,
}

impl Billing {
    /// Billing over the store's accounts and the runtime' rate tables.
    pub fn new(store: Store, runtime: Arc<Runtime>) -> Billing {
        Billing {
            store,
            runtime,
            reserved: Mutex::default(),
        }
    }

    fn reserved(&self) -> std::sync::MutexGuard<'_, HashMap<String, Money>> {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accounts holding reservations now.
    pub fn reservations(&self) -> usize {
        self.reserved().len()
    }

    /// At call setup, before routing: may `account_id` call `callee`, and at what rate?
    pub fn authorize(&self, account_id: &str, callee: &str) -> Result<Authorization, Refusal> {
        let refuse = |code, phrase, reason, detail: String| Refusal {
            code,
            phrase,
            reason,
            detail,
        };
        let account = match self.store.carrier_get::<Account>(account_id) {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Err(refuse(
                    403,
                    "Forbidden",
                    EndReason::AccountDisabled,
                    format!("account {account_id:?} does not exist"),
                ))
            }
            Err(e) => {
                return Err(refuse(
                    500,
                    "Server Internal Error",
                    EndReason::NoRate,
                    format!("reading the account: {e}"),
                ))
            }
        };
        if !account.enabled {
            return Err(refuse(
                403,
                "Forbidden",
                EndReason::AccountDisabled,
                "account disabled".into(),
            ));
        }
        let may_call = self.store.account_may_call(&account, callee).map_err(|e| {
            refuse(
                500,
                "Server Internal Error",
                EndReason::NoRate,
                format!("reading accounts: {e}"),
            )
        })?;
        if !may_call {
            return Err(refuse(
                403,
                "Forbidden",
                EndReason::NumberNotAllowed,
                format!("{callee} is outside the number sections of the account or its agents"),
            ));
        }
        // Spec decision 16: no call is carried unbilled. A free account says so with a
        // rate of 0.
        let prices = PriceList::of_account(&account);
        if prices.is_empty() {
            return Err(refuse(
                404,
                "No Rate",
                EndReason::NoRate,
                "the account has no rate table".into(),
            ));
        }
        let rate = prices
            .rate(&self.runtime, callee, self.runtime.clock.now_ms())
            .map_err(|e| {
                refuse(
                    500,
                    "Server Internal Error",
                    EndReason::NoRate,
                    e.to_string(),
                )
            })?
            .ok_or_else(|| {
                refuse(
                    404,
                    "No Rate",
                    EndReason::NoRate,
                    format!("no rate for {callee}"),
                )
            })?;
        let available =
            account.funds() - self.reserved().get(account_id).copied().unwrap_or_default();
        // The first increment must be paid for (spec: balance blocking).
        let first = rate.charge(1);
        if available < first {
            return Err(refuse(
                402,
                "Payment Required",
                EndReason::InsufficientBalance,
                format!("balance covers {available}, the first increment costs {first}"),
            ));
        }
        Ok(Authorization {
            account: account_id.to_string(),
            tenant: account.tenant,
            rate,
            granted_secs: 0,
            reserved: Money::ZERO,
        })
    }

    /// At answer, and whenever the last quota runs out: reserve the next quota and
    /// return the seconds it adds (0: the money is gone, end the call; none: the rate
    /// is free, no limit).
    pub fn grant(&self, auth: &mut Authorization) -> Option<u64> {
        let funds = match self.store.carrier_get::<Account>(&auth.account) {
            Ok(Some(a)) => a.funds(),
            _ => Money::ZERO,
        };
        let mut reserved = self.reserved();
        let held = reserved.entry(auth.account.clone()).or_default();
        // What this call could hold: its own reservation plus what nobody holds.
        let reachable = auth.reserved + (funds - *held);
        let affordable = auth.rate.max_duration_secs(reachable)?;
        if affordable == u64::MAX {
            return None;
        }
        let total = affordable
            .min(auth.granted_secs + QUOTA_SECS)
            .max(auth.granted_secs);
        let cost = auth.rate.charge(total);
        *held = *held + (cost - auth.reserved);
        auth.reserved = cost;
        let added = total - auth.granted_secs;
        auth.granted_secs = total;
        Some(added)
    }

    /// At the end: charge the call, work out the vendor's cost, and write the record
    /// and the debit atomically (durable once this returns).
    pub async fn settle(&self, mut auth: Authorization, record: &mut CallRecord) {
        {
            let mut reserved = self.reserved();
            if let Some(held) = reserved.get_mut(&auth.account) {
                *held = *held - auth.reserved;
                if *held <= Money::ZERO {
                    reserved.remove(&auth.account);
                }
            }
            auth.reserved = Money::ZERO;
        }
        let duration = record.duration_secs();
        let charge = auth.rate.charge(duration);
        let cost = self.vendor_cost(record, duration);
        record.billing = Some(CallCharges {
            billed_secs: auth.rate.billed_secs(duration),
            rate_prefix: auth.rate.prefix.clone(),
            charge,
            cost,
            profit: charge - cost.unwrap_or_default(),
            balance_after: Money::ZERO,
        });
        match self.store.record_call(record.clone()).await {
            Ok(stored) => {
                *record = stored;
                self.runtime.metrics.cdr_written();
            }
            Err(e) => {
                tracing::error!(call_id = %record.call_id, error = %e, "settling the call failed");
                return;
            }
        }
        tracing::info!(call_id = %record.call_id, %charge, account = %auth.account, tenant = %auth.tenant, "call charged");
    }

    /// What the carrying vendor charges us: its gateway's cost table (its period's,
    /// when answered in one) at the number sent, less the gateway's tech prefix.
    fn vendor_cost(&self, record: &CallRecord, duration: u64) -> Option<Money> {
        let gateway = record.egress_gateway.as_deref()?;
        let gateway = self.store.carrier_get::<RoutingGateway>(gateway).ok()??;
        let sent = record.callee_out.as_deref().unwrap_or(&record.callee_in);
        let number = gateway
            .tech_prefix
            .as_deref()
            .and_then(|p| sent.strip_prefix(p))
            .unwrap_or(sent);
        let at = record.answer_ms.unwrap_or(record.invite_ms);
        let cost = PriceList::of_vendor(&gateway).rate(&self.runtime, number, at);
        match cost {
            Ok(rate) => rate.map(|r| r.charge(duration)),
            Err(e) => {
                tracing::warn!(call_id = %record.call_id, error = %e, "vendor cost table");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Row, TableInfo};

    fn billing(dir: &std::path::Path, balance: f64) -> Billing {
        let store = Store::open(dir).unwrap();
        let rows = vec![Row {
            key: "44".into(),
            fields: vec!["0.60".into(), "0".into(), "1".into(), "1".into()],
        }];
        let info = TableInfo::of("t", "rates", &rows);
        store.put_table(&info, &rows).unwrap();
        let account = Account {
            tenant: "t".into(),
            rate_table: Some("rates".into()),
            balance: Money::from_units(balance),
            ..Account::default()
        };
        store.carrier_put("acct", &account).unwrap();
        let clock = Arc::new(crate::clock::Clock::system());
        let runtime = Arc::new(Runtime::new(store.clone(), clock));
        Billing::new(store, runtime)
    }

    #[test]
    fn concurrent_calls_take_quotas_from_one_balance_and_never_more() {
        let dir = std::env::temp_dir().join(format!("switchyard-billing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let billing = billing(&dir, 1.0); // 100 s at 0.01/s
        let mut a = billing.authorize("acct", "4420").unwrap();
        let mut b = billing.authorize("acct", "4420").unwrap();
        assert_eq!(billing.grant(&mut a), Some(QUOTA_SECS)); // 0.60 held
        assert_eq!(billing.grant(&mut b), Some(40)); // the 0.40 left
        assert_eq!(billing.grant(&mut a), Some(0)); // nothing left for a second quota
                                                    // A third call cannot even start: the first second is not covered.
        let refused = billing.authorize("acct", "4420").unwrap_err();
        assert_eq!(
            (refused.code, refused.reason),
            (402, EndReason::InsufficientBalance)
        );
        assert_eq!(
            billing.authorize("acct", "1212").unwrap_err().reason,
            EndReason::NoRate
        );
        drop(billing);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_calendar_period_picks_the_rate_table_and_falls_back_to_the_default() {
        let dir =
            std::env::temp_dir().join(format!("switchyard-billing-cal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let billing = billing(&dir, 1.0);
        let store = &billing.store;
        let default = vec![
            Row {
                key: "44".into(),
                fields: vec!["0.60".into()],
            },
            Row {
                key: "33".into(),
                fields: vec!["0.90".into()],
            },
        ];
        let info = TableInfo::of("t", "rates", &default);
        store.put_table(&info, &default).unwrap();
        let peak = vec![Row {
            key: "44".into(),
            fields: vec!["0.30".into()],
        }];
        let info = TableInfo::of("t", "peak-rates", &peak);
        store.put_table(&info, &peak).unwrap();
        let calendar: Calendar = serde_json::from_value(serde_json::json!({
            "tenant": "t", "time_zone": "Europe/London",
            "periods": [{ "name": "peak", "start": "08:00", "end": "18:00", "days": "working" }]
        }))
        .unwrap();
        store.carrier_put("uk", &calendar).unwrap();
        let mut account = store.carrier_get::<Account>("acct").unwrap().unwrap();
        account.calendar = Some("uk".into());
        account
            .period_rate_tables
            .insert("peak".into(), "peak-rates".into());
        // Monday 23 November 2026, 09:30 and 20:00 in London (UTC in winter).
        let (morning, evening) = (1_795_426_200_000u64, 1_795_464_000_000u64);
        let price = |at: u64, number: &str| {
            PriceList::of_account(&account)
                .rate(&billing.runtime, number, at)
                .unwrap()
                .map(|r| r.per_minute)
        };
        assert_eq!(price(morning, "4420"), Some(Money::from_units(0.30)));
        assert_eq!(price(evening, "4420"), Some(Money::from_units(0.60)));
        // Not in the peak table: the default table's rate; in neither: none.
        assert_eq!(price(morning, "3312"), Some(Money::from_units(0.90)));
        assert_eq!(price(morning, "1212"), None);
        // The boundary: 17:59:59.999 is still peak, 18:00 is not.
        let six_pm = 1_795_456_800_000u64;
        assert_eq!(price(six_pm - 1, "4420"), Some(Money::from_units(0.30)));
        assert_eq!(price(six_pm, "4420"), Some(Money::from_units(0.60)));
        // A call crossing the boundary keeps the rate it started under: two minutes
        // from 17:59:30 cost two peak minutes.
        let crossing = PriceList::of_account(&account)
            .rate(&billing.runtime, "4420", six_pm - 30_000)
            .unwrap()
            .unwrap();
        assert_eq!(crossing.charge(120), Money::from_units(0.60));
        account.calendar = Some("missing".into());
        let missing = PriceList::of_account(&account).rate(&billing.runtime, "4420", morning);
        assert!(
            matches!(missing, Err(LookupError::NotFound(_))),
            "{missing:?}"
        );
        drop(billing);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
