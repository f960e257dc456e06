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
    /// A side of a relayed call sent no RTP for `rtp_timeout_secs`.
    RtpTimeout,
    /// The caller's offer lacks the codec its mapping gateway requires.
    CodecNotOffered,
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
    /// Why, in words, when the call was refused or failed: the reason a module gave
    /// ("No route", "All gateways busy"), the last vendor's phrase, or the host's
    /// explanation of a refusal (the text of its `Reason` header).
    #[serde(default)]
    pub final_reason: Option<String>,
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
    /// Came in on, went out on or was tried on this gateway (mapping or routing).
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

/// Records one query reads at most. A search that matches little over a large store
/// (a callee substring and no time range over 10 million records) would otherwise
/// read all of it, for many minutes when the store is larger than memory; instead the
/// page ends early with a cursor, and each request costs a bounded time (about 0.2 s
/// from the page cache).
const SCAN_BUDGET: usize = 200_000;

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
                .is_none_or(|g| record_gateways(r).contains(g))
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

/// A record's key in an index by `owner` (an account or a gateway id): the owner, a
/// NUL, then the record's key, so one owner's records are one range in time order.
fn index_key(owner: &str, record_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 1 + record_key.len());
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k.extend_from_slice(record_key);
    k
}

/// The gateways a record is found under: where it came in and every gateway it tried.
fn record_gateways(record: &CallRecord) -> std::collections::BTreeSet<&str> {
    std::iter::once(record.ingress_gateway.as_str())
        .chain(record.egress_gateway.as_deref())
        .chain(record.attempts.iter().map(|a| a.gateway.as_str()))
        .collect()
}

/// The trees a record is written to, inside a transaction or not.
trait RecordTrees {
    type Error;
    fn put(&self, tree: usize, key: &[u8], value: &[u8]) -> std::result::Result<(), Self::Error>;
}

/// Write `record` under `k` with its Call-ID, account and gateway index entries; trees
/// in the order calls, call_index, by_account, by_gateway.
fn write_record<T: RecordTrees>(
    trees: &T,
    record: &CallRecord,
    k: &[u8],
    value: &[u8],
) -> std::result::Result<(), T::Error> {
    trees.put(0, k, value)?;
    // The newest record of a Call-ID wins the index, as lookups promise.
    trees.put(1, record.call_id.as_bytes(), k)?;
    write_owner_indexes(trees, record, k)
}

/// The account and gateway index entries of the record stored under `k`.
fn write_owner_indexes<T: RecordTrees>(
    trees: &T,
    record: &CallRecord,
    k: &[u8],
) -> std::result::Result<(), T::Error> {
    trees.put(2, &index_key(&record.account, k), &[])?;
    for gateway in record_gateways(record) {
        trees.put(3, &index_key(gateway, k), &[])?;
    }
    Ok(())
}

impl RecordTrees for [&sled::Tree; 4] {
    type Error = sled::Error;
    fn put(&self, tree: usize, key: &[u8], value: &[u8]) -> std::result::Result<(), sled::Error> {
        self[tree].insert(key, value).map(drop)
    }
}

impl RecordTrees for [&sled::transaction::TransactionalTree; 4] {
    type Error = sled::transaction::UnabortableTransactionError;
    fn put(&self, tree: usize, key: &[u8], value: &[u8]) -> std::result::Result<(), Self::Error> {
        self[tree].insert(key, value).map(drop)
    }
}

impl Store {
    /// Append a finished call. Durable once [`Store::commit`] returns.
    pub fn put_call_record(&self, record: &CallRecord) -> Result<()> {
        let trees = [
            &self.calls,
            &self.call_index,
            &self.calls_by_account,
            &self.calls_by_gateway,
        ];
        write_record(&trees, record, &record_key(record), &to_json(record)?)?;
        Ok(())
    }

    /// Index every record written before the account and gateway indexes existed.
    pub(super) fn index_old_call_records(&self) -> Result<()> {
        if !self.calls_by_account.is_empty() || self.calls.is_empty() {
            return Ok(());
        }
        let trees = [
            &self.calls,
            &self.call_index,
            &self.calls_by_account,
            &self.calls_by_gateway,
        ];
        let mut records = 0;
        for kv in self.calls.iter() {
            let (k, v) = kv?;
            write_owner_indexes(&trees, &from_json::<CallRecord>(&v)?, &k)?;
            records += 1;
        }
        tracing::info!(records, "indexed call records by account and gateway");
        Ok(())
    }

    /// The newest records matching `query` (and, when given, of one tenant), newest
    /// first, at most `query.limit`; with the cursor of the next page when there may
    /// be more. The time range narrows the scan (records are keyed by end time); an
    /// account or gateway filter reads only that one's index range; the other filters
    /// are checked record by record.
    pub fn query_calls(
        &self,
        tenant: Option<&str>,
        query: &CallQuery,
    ) -> Result<(Vec<CallRecord>, Option<String>)> {
        self.query_calls_within(tenant, query, SCAN_BUDGET)
    }

    /// [`Store::query_calls`] reading at most `budget` records: a page that runs out
    /// of budget before it is full ends early, with the cursor where it stopped.
    fn query_calls_within(
        &self,
        tenant: Option<&str>,
        query: &CallQuery,
        budget: usize,
    ) -> Result<(Vec<CallRecord>, Option<String>)> {
        let from = query.from_ms.unwrap_or(0).to_be_bytes().to_vec();
        let to = match (&query.before, query.to_ms) {
            (Some(cursor), _) => {
                hex::decode(cursor).map_err(|_| Error::Missing(format!("page {cursor:?}")))?
            }
            (None, Some(to)) => to.to_be_bytes().to_vec(),
            (None, None) => u64::MAX.to_be_bytes().to_vec(),
        };
        // Record keys newest first: from one account's or gateway's index range when
        // the query names one, else from the whole table.
        let indexed = match (&query.account, &query.gateway) {
            (Some(account), _) => Some((&self.calls_by_account, account)),
            (None, Some(gateway)) => Some((&self.calls_by_gateway, gateway)),
            (None, None) => None,
        };
        // Each entry: a record's key, and its value when the scan already read it.
        type Entry = Result<(sled::IVec, Option<sled::IVec>)>;
        let entries: Box<dyn Iterator<Item = Entry>> = match indexed {
            Some((index, owner)) => {
                let skip = owner.len() + 1;
                Box::new(
                    index
                        .range(index_key(owner, &from)..index_key(owner, &to))
                        .rev()
                        .map(move |kv| {
                            let (k, _) = kv?;
                            Ok((sled::IVec::from(&k[skip..]), None))
                        }),
                )
            }
            None => Box::new(self.calls.range(from..to).rev().map(|kv| {
                let (k, v) = kv?;
                Ok((k, Some(v)))
            })),
        };
        // A caller or callee search must find its text in the stored JSON: records
        // without it are skipped unparsed (text JSON would escape is not prefiltered).
        let needles: Vec<memchr::memmem::Finder<'_>> = [&query.caller, &query.callee]
            .into_iter()
            .flatten()
            .filter(|n| !n.contains(|c: char| c == '"' || c == '\\' || c.is_control()))
            .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
            .collect();
        let mut out = Vec::new();
        for (read, entry) in entries.enumerate() {
            let (k, v) = entry?;
            if read == budget {
                // Out of budget: the next page starts at this record.
                let mut cursor = k.to_vec();
                cursor.push(0);
                return Ok((out, Some(hex::encode(cursor))));
            }
            let Some(v) = v.map_or_else(|| self.calls.get(&k), |v| Ok(Some(v)))? else {
                continue;
            };
            if needles.iter().any(|n| n.find(&v).is_none()) {
                continue;
            }
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
        let result = (
            &self.carrier,
            &self.calls,
            &self.call_index,
            &self.calls_by_account,
            &self.calls_by_gateway,
        )
            .transaction(|(carrier, calls, index, by_account, by_gateway)| {
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
                let value = to_json(&settled).map_err(abort)?;
                write_record(
                    &[calls, index, by_account, by_gateway],
                    &settled,
                    &k,
                    &value,
                )?;
                Ok(account.balance)
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, account: &str, ingress: &str, tried: &[&str]) -> CallRecord {
        CallRecord {
            call_id: format!("call-{n}"),
            tenant: "t".into(),
            account: account.into(),
            ingress_gateway: ingress.into(),
            egress_gateway: tried.last().map(|g| g.to_string()),
            caller_in: "1000".into(),
            callee_in: format!("44{n:02}"),
            caller_out: None,
            callee_out: None,
            invite_ms: n,
            ring_ms: None,
            answer_ms: None,
            end_ms: 1_000 + n,
            pdd_ms: None,
            final_code: 503,
            final_reason: None,
            codec_in: None,
            codec_out: None,
            reason: EndReason::FailoverExhausted,
            module: None,
            module_version: None,
            attempts: tried
                .iter()
                .map(|g| AttemptRecord {
                    gateway: g.to_string(),
                    leg_call_id: String::new(),
                    callee: "4420".into(),
                    caller: "1000".into(),
                    started_ms: n,
                    pdd_ms: None,
                    code: Some(503),
                    reason: String::new(),
                    timed_out: false,
                    ended_ms: None,
                })
                .collect(),
            billing: None,
        }
    }

    fn ids(found: &[CallRecord]) -> Vec<&str> {
        found.iter().map(|r| r.call_id.as_str()).collect()
    }

    #[test]
    fn account_and_gateway_queries_read_their_index_and_page_through_it() {
        let dir = std::env::temp_dir().join(format!("switchyard-calls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            for n in 0..30 {
                let (account, tried): (&str, &[&str]) = match n % 3 {
                    0 => ("a", &["v1"]),
                    1 => ("b", &["v1", "v2"]),
                    _ => ("c", &[]),
                };
                store
                    .put_call_record(&record(n, account, "in", tried))
                    .unwrap();
            }
            let query = |q: CallQuery| store.query_calls(Some("t"), &q).unwrap();
            let (found, next) = query(CallQuery {
                account: Some("b".into()),
                limit: 3,
                ..CallQuery::default()
            });
            assert_eq!(ids(&found), ["call-28", "call-25", "call-22"]);
            let (found, _) = query(CallQuery {
                account: Some("b".into()),
                before: next,
                limit: 2,
                ..CallQuery::default()
            });
            assert_eq!(ids(&found), ["call-19", "call-16"]);
            // v2 was only ever tried, never the last gateway of a's calls.
            let (found, _) = query(CallQuery {
                gateway: Some("v2".into()),
                from_ms: Some(1_010),
                to_ms: Some(1_020),
                ..CallQuery::default()
            });
            assert_eq!(ids(&found), ["call-19", "call-16", "call-13", "call-10"]);
            let (found, next) = query(CallQuery {
                account: Some("nobody".into()),
                ..CallQuery::default()
            });
            assert!(found.is_empty() && next.is_none());
            // A search reading more than its budget ends early with where it stopped,
            // and the next page goes on from there.
            let search = |before| CallQuery {
                callee: Some("5".into()),
                before,
                ..CallQuery::default()
            };
            let (found, next) = store
                .query_calls_within(Some("t"), &search(None), 12)
                .unwrap();
            assert_eq!(ids(&found), ["call-25"]);
            let (found, next) = store
                .query_calls_within(Some("t"), &search(next), 12)
                .unwrap();
            assert_eq!(ids(&found), ["call-15"]);
            let (found, next) = store
                .query_calls_within(Some("t"), &search(next), 12)
                .unwrap();
            assert_eq!((ids(&found), next), (vec!["call-5"], None));
            // Records from before the indexes existed are indexed on opening.
            store.calls_by_account.clear().unwrap();
            store.calls_by_gateway.clear().unwrap();
            store.commit_blocking().unwrap();
        }
        let store = Store::reopen(&dir).unwrap();
        let (found, _) = store
            .query_calls(
                None,
                &CallQuery {
                    gateway: Some("v2".into()),
                    limit: 1,
                    ..CallQuery::default()
                },
            )
            .unwrap();
        assert_eq!(ids(&found), ["call-28"]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
