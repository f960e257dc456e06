//! Call records: one per call, written when the call ends, with every attempt the call
//! made. Until the billing issue rates them, they are kept here and served over REST.
//! Records are keyed by end time then call id, so listing newest-first is a scan.

use serde::{Deserialize, Serialize};

use super::{from_json, to_json, Error, Result, Store};
use crate::billing::Money;
use crate::store::{Account, CarrierObject};

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The caller hung up (BYE from the customer side).
    CallerHangup,
    /// The callee hung up (BYE from the vendor side).
    CalleeHangup,
    /// The caller cancelled before answer.
    CallerCancel,
    /// A vendor gave a final answer that ends the call (busy, declined ...).
    CalleeRejected,
    /// Every attempt failed.
    FailoverExhausted,
    /// The module (or its fallback) answered with nothing to try.
    NoRoute,
    /// The module's screen or route rejected the call.
    RejectedByModule,
    /// No module is bound for the call.
    NoPolicy,
    /// A capacity or rate limit refused the call.
    Limit,
    /// The call reached its maximum duration.
    MaxDuration,
    /// The session timer expired without a refresh.
    SessionTimeout,
    /// The caller never acknowledged our 2xx.
    AckTimeout,
    /// The host is shutting down.
    Shutdown,
    /// The account's balance (and credit) does not cover the first increment.
    InsufficientBalance,
    /// The account is billed but has no rate for the number.
    NoRate,
    /// The account is disabled.
    AccountDisabled,
    /// The call used up what the balance allowed at answer.
    BalanceExhausted,
    /// The account's number section limitation does not allow the callee.
    NumberNotAllowed,
}

/// One outbound attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Routing gateway id.
    pub gateway: String,
    /// Call-ID of the outbound leg (empty when the attempt was skipped).
    pub leg_call_id: String,
    /// Callee sent to the vendor.
    pub callee: String,
    /// Caller sent to the vendor.
    pub caller: String,
    /// When the INVITE went out, ms since the epoch.
    pub started_ms: u64,
    /// Post-dial delay: INVITE to first ringing/progress, ms.
    pub pdd_ms: Option<u32>,
    /// Final SIP code from the vendor.
    pub code: Option<u16>,
    /// Reason phrase, or why the attempt was skipped / timed out.
    pub reason: String,
    /// No final answer within the attempt's timeout.
    pub timed_out: bool,
    /// When it ended (its final answer, timeout or skip), ms since the epoch.
    #[serde(default)]
    pub ended_ms: Option<u64>,
}

impl AttemptRecord {
    /// Whether it failed (rather than carried the call or was cut short by it).
    pub fn failed(&self) -> bool {
        !self.code.is_some_and(|c| (200..300).contains(&c))
    }

    /// How it turned out, with the call's meaning of each result.
    pub fn result(&self) -> CallResult {
        match self.code {
            Some(c) if (200..300).contains(&c) => CallResult::Answered,
            Some(486 | 600) => CallResult::Busy,
            Some(408 | 480 | 487) => CallResult::NoAnswer,
            _ if self.timed_out => CallResult::NoAnswer,
            _ => CallResult::Failed,
        }
    }
}

/// A finished call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Call-ID of the customer leg.
    pub call_id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Billed account.
    pub account: String,
    /// Mapping gateway the call came in on.
    pub ingress_gateway: String,
    /// Routing gateway that carried it (the last attempted one when none did).
    pub egress_gateway: Option<String>,
    /// Caller as received.
    pub caller_in: String,
    /// Callee as received.
    pub callee_in: String,
    /// Caller as sent on the carrying (or last) attempt.
    pub caller_out: Option<String>,
    /// Callee as sent on the carrying (or last) attempt.
    pub callee_out: Option<String>,
    /// INVITE received, ms since the epoch.
    pub invite_ms: u64,
    /// First ringing / progress relayed to the caller.
    pub ring_ms: Option<u64>,
    /// Answer.
    pub answer_ms: Option<u64>,
    /// End.
    pub end_ms: u64,
    /// Post-dial delay seen by the caller, ms.
    pub pdd_ms: Option<u32>,
    /// Final SIP code given to the caller (200 for answered calls).
    pub final_code: u16,
    /// Voice codec of the caller's leg: the first in the SDP answer on that leg.
    #[serde(default)]
    pub codec_in: Option<String>,
    /// Voice codec of the vendor's leg.
    #[serde(default)]
    pub codec_out: Option<String>,
    /// Why it ended.
    pub reason: EndReason,
    /// Module that decided the call, `tenant/name`.
    pub module: Option<String>,
    /// Its version id.
    pub module_version: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptRecord>,
    /// What the call was billed, when its account is billed.
    #[serde(default)]
    pub billing: Option<CallCharges>,
}

/// How a call turned out, for queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// Answered.
    Answered,
    /// Rang out or was cancelled unanswered (408, 480, 487) or timed out.
    NoAnswer,
    /// Busy (486, 600).
    Busy,
    /// Anything else.
    Failed,
}

impl CallRecord {
    /// How it turned out.
    pub fn result(&self) -> CallResult {
        if self.answer_ms.is_some() {
            return CallResult::Answered;
        }
        match self.final_code {
            486 | 600 => CallResult::Busy,
            408 | 480 | 487 => CallResult::NoAnswer,
            _ if self.reason == EndReason::CallerCancel => CallResult::NoAnswer,
            _ => CallResult::Failed,
        }
    }
}

/// A search of the call records (`GET /api/v1/calls`).
#[derive(Debug, Clone, Deserialize)]
pub struct CallQuery {
    /// Ended at or after, Unix ms.
    #[serde(default)]
    pub from_ms: Option<u64>,
    /// Ended before, Unix ms.
    #[serde(default)]
    pub to_ms: Option<u64>,
    /// Billed to this account.
    #[serde(default)]
    pub account: Option<String>,
    /// Came in or went out on this gateway (mapping or routing).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Turned out so.
    #[serde(default)]
    pub result: Option<CallResult>,
    /// Caller (as received or as sent) contains this.
    #[serde(default)]
    pub caller: Option<String>,
    /// Callee (as received or as sent) contains this.
    #[serde(default)]
    pub callee: Option<String>,
    /// Page cursor: the `next` of the previous page.
    #[serde(default)]
    pub before: Option<String>,
    /// Records per page.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Only records of these accounts (an agent's subtree); set by the server.
    #[serde(skip)]
    pub within: Option<std::collections::BTreeSet<String>>,
}

fn default_limit() -> usize {
    100
}

impl Default for CallQuery {
    fn default() -> Self {
        CallQuery {
            from_ms: None,
            to_ms: None,
            account: None,
            gateway: None,
            result: None,
            caller: None,
            callee: None,
            before: None,
            limit: default_limit(),
            within: None,
        }
    }
}

impl CallQuery {
    fn matches(&self, r: &CallRecord) -> bool {
        let contains = |want: &Option<String>, a: &str, b: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| a.contains(w) || b.as_deref().is_some_and(|b| b.contains(w)))
        };
        self.account.as_deref().is_none_or(|a| a == r.account)
            && self.within.as_ref().is_none_or(|w| w.contains(&r.account))
            && self
                .gateway
                .as_deref()
                .is_none_or(|g| g == r.ingress_gateway || r.egress_gateway.as_deref() == Some(g))
            && self.result.is_none_or(|want| want == r.result())
            && contains(&self.caller, &r.caller_in, &r.caller_out)
            && contains(&self.callee, &r.callee_in, &r.callee_out)
    }
}

/// The money side of a billed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallCharges {
    /// Seconds billed to the customer (increments applied).
    pub billed_secs: u64,
    /// The customer rate's prefix.
    pub rate_prefix: String,
    /// Charged to the account.
    pub charge: Money,
    /// What the vendor costs (its gateway's cost table), when it has one.
    pub cost: Option<Money>,
    /// Charge minus cost.
    pub profit: Money,
    /// The account's balance after the charge.
    pub balance_after: Money,
}

impl CallRecord {
    /// Seconds between answer and end (0 when unanswered).
    pub fn duration_secs(&self) -> u64 {
        self.answer_ms
            .map_or(0, |a| self.end_ms.saturating_sub(a) / 1000)
    }
}

/// A record's key in `calls`: end time (big-endian, so keys sort by time) then Call-ID.
fn record_key(record: &CallRecord) -> Vec<u8> {
    let mut k = record.end_ms.to_be_bytes().to_vec();
    k.extend_from_slice(record.call_id.as_bytes());
    k
}

impl Store {
    /// Append a finished call. Durable once [`Store::commit`] returns.
    pub fn put_call_record(&self, record: &CallRecord) -> Result<()> {
        let k = record_key(record);
        self.calls.insert(k.as_slice(), to_json(record)?)?;
        // The newest record of a Call-ID wins the index, as lookups promise.
        self.call_index.insert(record.call_id.as_bytes(), k)?;
        Ok(())
    }

    /// The newest records matching `query` (and, when given, of one tenant), newest
    /// first, at most `query.limit`; with the cursor of the next page when there may
    /// be more. The time range narrows the scan (records are keyed by end time); the
    /// other filters are checked record by record.
    pub fn query_calls(
        &self,
        tenant: Option<&str>,
        query: &CallQuery,
    ) -> Result<(Vec<CallRecord>, Option<String>)> {
        let from = query.from_ms.unwrap_or(0).to_be_bytes().to_vec();
        let to = match (&query.before, query.to_ms) {
            (Some(cursor), _) => {
                hex::decode(cursor).map_err(|_| Error::Missing(format!("page {cursor:?}")))?
            }
            (None, Some(to)) => to.to_be_bytes().to_vec(),
            (None, None) => u64::MAX.to_be_bytes().to_vec(),
        };
        let mut out = Vec::new();
        for kv in self.calls.range(from..to).rev() {
            let (k, v) = kv?;
            let r: CallRecord = from_json(&v)?;
            if tenant.is_none_or(|t| t == r.tenant) && query.matches(&r) {
                out.push(r);
                if out.len() >= query.limit {
                    return Ok((out, Some(hex::encode(k))));
                }
            }
        }
        Ok((out, None))
    }

    /// Charge a finished call to its account and store its record, in one atomic
    /// step: the balance and the record never disagree. Durable once
    /// [`Store::commit`] returns. The record's `billing.balance_after` is filled in.
    pub fn settle_call(&self, record: &mut CallRecord, charge: Money) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let account_key = super::key(&[Account::KIND, &record.account]);
        let k = record_key(record);
        // Holding the carrier cache lock keeps a stale account snapshot from landing.
        let mut kinds = self.carrier_cache_lock();
        let result = (&self.carrier, &self.calls, &self.call_index).transaction(
            |(carrier, calls, index)| {
                let abort = |e: Error| ConflictableTransactionError::Abort(e);
                let mut account: Account = match carrier.get(&account_key)? {
                    Some(v) => from_json(&v).map_err(abort)?,
                    None => {
                        return Err(abort(Error::Missing(format!(
                            "account {:?}",
                            record.account
                        ))))
                    }
                };
                account.balance = account.balance - charge;
                carrier.insert(account_key.as_slice(), to_json(&account).map_err(abort)?)?;
                let mut settled = record.clone();
                if let Some(b) = settled.billing.as_mut() {
                    b.balance_after = account.balance;
                }
                calls.insert(k.as_slice(), to_json(&settled).map_err(abort)?)?;
                index.insert(record.call_id.as_bytes(), k.as_slice())?;
                Ok(account.balance)
            },
        );
        kinds.remove(Account::KIND);
        let balance = match result {
            Ok(balance) => balance,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(Error::Db(e)),
        };
        if let Some(b) = record.billing.as_mut() {
            b.balance_after = balance;
        }
        Ok(())
    }

    /// One record by customer Call-ID (newest if repeated).
    pub fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>> {
        let Some(k) = self.call_index.get(call_id.as_bytes())? else {
            return Ok(None);
        };
        self.calls.get(k)?.map(|v| from_json(&v)).transpose()
    }
}
