//! Call records: one per call, written when the call ends, with every attempt the call
//! made. Until the billing issue rates them, they are kept here and served over REST.
//! Records are keyed by end time then call id, so listing newest-first is a scan.

use serde::Deserialize;
use switchyard_model::CallRecord;
use switchyard_model::CallResult;

use super::engine::Batch;
use super::{from_json, to_json, Error, Result, Store};
use crate::store::CarrierObject;
use switchyard_model::Account;
use switchyard_model::Money;

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
                .is_none_or(|g| r.gateways().contains(g))
            && self.result.is_none_or(|want| want == r.result())
            && contains(&self.caller, &r.caller_in, &r.caller_out)
            && contains(&self.callee, &r.callee_in, &r.callee_out)
    }
}

/// Most records one journal write takes: a batch is one write and one sync.
const MAX_BATCH: usize = 4096;

/// Key in the `meta` tree: the sequence number of the first call record whose charge
/// is not yet in the balances (big-endian u64). Written with the balances it covers.
pub(super) const CHARGES_APPLIED: &[u8] = b"call_charges_applied";

/// A finished call waiting for the call writer.
pub(super) struct CallJob {
    /// The writer works on the store the job came from, and holds none while idle.
    store: Store,
    record: CallRecord,
    done: Box<dyn FnOnce(Result<CallRecord>) + Send>,
}

/// How long a small batch stays open for more records while calls are ending in a
/// stream. Without it a batch at 1,000 calls/s held one or two records, each paying
/// for a sync of its own (fdatasync alone was about 6 % of the switch's CPU in a perf
/// profile) and for waking the writer. At 4 ms a batch at 500 calls/s still held two
/// or three records; at 10 ms it holds about five, and the writer syncs about 100
/// times a second at any rate below `FULL_ENOUGH_BATCH` records per window. The answer
/// to the BYE that ended a call waits for its record, so this is also the most it
/// waits longer: 10 ms on a hang-up is not something a party notices.
const GROUP_COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

/// A batch at least this large shows records arriving faster than syncs: the next
/// batch fills while this one syncs, and waiting would only cost throughput (200
/// writers each awaiting its record would be held to 200 records per window).
const FULL_ENOUGH_BATCH: usize = 16;

/// Write batches of finished calls until every `Store` is gone: one journal append
/// and sync per batch (group commit), then the batch's charges into the balances.
/// A record that arrives within the window after a small batch (calls end one by one
/// but steadily) waits out the window for others to share its sync; one after a quiet
/// spell, or after a large batch, is written at once.
pub(super) fn run_call_writer(jobs: std::sync::mpsc::Receiver<CallJob>) {
    let mut last_small_batch: Option<std::time::Instant> = None;
    while let Ok(first) = jobs.recv() {
        let opened = std::time::Instant::now();
        if last_small_batch.is_some_and(|at| opened.duration_since(at) < GROUP_COMMIT_WINDOW) {
            std::thread::sleep(GROUP_COMMIT_WINDOW);
        }
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        let small = batch.len() < FULL_ENOUGH_BATCH;
        let store = batch[0].store.clone();
        store.write_calls(batch);
        last_small_batch = small.then(std::time::Instant::now);
    }
}

/// What a call charges its account: its billing's charge (unbilled calls nothing).
fn charge_of(record: &CallRecord) -> Option<Money> {
    record
        .billing
        .as_ref()
        .map(|b| b.charge)
        .filter(|c| *c != Money::ZERO)
}

impl Store {
    /// Keep a finished call's record and, when it is billed, debit its charge
    /// (`billing.charge`) from its account, atomically: once this returns the record
    /// is durable and the balance will never disagree with it. The record comes back
    /// with `billing.balance_after` filled in.
    pub async fn record_call(&self, record: CallRecord) -> Result<CallRecord> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.record_call_then(record, move |r| drop(tx.send(r)));
        rx.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// [`Store::record_call`] for code off the async reactor.
    pub fn record_call_blocking(&self, record: CallRecord) -> Result<CallRecord> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.record_call_then(record, move |r| drop(tx.send(r)));
        rx.recv().unwrap_or_else(|_| Err(writer_gone()))
    }

    /// As [`record_call`](Self::record_call), without waiting: `done` is called once
    /// with the outcome, on the call writer's thread when the record is durable (or
    /// failed), or here and now when the writer is gone.
    pub fn record_call_then(
        &self,
        record: CallRecord,
        done: impl FnOnce(Result<CallRecord>) + Send + 'static,
    ) {
        let job = CallJob {
            store: self.clone(),
            record,
            done: Box::new(done),
        };
        if let Err(std::sync::mpsc::SendError(job)) = self.call_writer.send(job) {
            (job.done)(Err(writer_gone()));
        }
    }

    /// One batch: work out each billed call's balance after it, append the batch to
    /// the journal (durable), then write the new balances with the journal position
    /// they cover in one sled transaction. sled need not flush it: a crash before its
    /// flush is repaired on opening by [`Store::replay_charges`]. The carrier cache
    /// lock is held from the first balance read to the write, as payments hold it.
    fn write_calls(&self, batch: Vec<CallJob>) {
        // A batch whose balances failed to store (its records are in the journal)
        // left the marker behind: catch up first, or this batch's marker would skip
        // those charges.
        if let Err(e) = self.catch_up_charges() {
            let why = e.to_string();
            for job in batch {
                (job.done)(Err(Error::Write(format!("storing earlier charges: {why}"))));
            }
            return;
        }
        let billed = batch.iter().any(|j| charge_of(&j.record).is_some());
        let mut kinds = billed.then(|| self.carrier_cache_lock());
        let mut accounts: std::collections::BTreeMap<String, Account> = Default::default();
        let mut accepted = Vec::with_capacity(batch.len());
        for CallJob {
            mut record, done, ..
        } in batch
        {
            if let Some(charge) = charge_of(&record) {
                let account = match accounts.entry(record.account.clone()) {
                    std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        match self.stored_account(&record.account) {
                            Ok(Some(account)) => Some(e.insert(account)),
                            Ok(None) => None,
                            Err(err) => {
                                done(Err(err));
                                continue;
                            }
                        }
                    }
                };
                let Some(account) = account else {
                    done(Err(Error::Missing(format!("account {:?}", record.account))));
                    continue;
                };
                account.balance = account.balance - charge;
                if let Some(b) = record.billing.as_mut() {
                    b.balance_after = account.balance;
                }
            }
            accepted.push((record, done));
        }
        let written = accepted
            .iter()
            .map(|(r, _)| Ok((r, super::call_log::encode(r)?)))
            .collect::<Result<Vec<_>>>()
            .and_then(|payloads| self.call_log.append(&payloads))
            .and_then(|(first, sealed)| {
                // The marker moves with every batch, billed or not, so replay and
                // retention know where the journal's effects end.
                self.write_balances(&accounts, first + accepted.len() as u64)?;
                Ok(sealed)
            });
        if let Some(kinds) = kinds.as_mut() {
            kinds.remove(Account::KIND);
        }
        drop(kinds);
        if let Ok(true) = written {
            // A segment was sealed: the oldest may now be past the retention.
            if let Err(e) = self.expire_call_records() {
                tracing::error!(error = %e, "deleting old call records failed");
            }
        }
        let failure = written.err().map(|e| e.to_string());
        for (record, done) in accepted {
            match &failure {
                None => done(Ok(record)),
                Some(why) => done(Err(Error::Write(why.clone()))),
            }
        }
    }

    /// An account as stored (not from the cache).
    fn stored_account(&self, id: &str) -> Result<Option<Account>> {
        self.carrier
            .get(super::key(&[Account::KIND, id]))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// Store these balances and the journal position they include, atomically.
    fn write_balances(
        &self,
        accounts: &std::collections::BTreeMap<String, Account>,
        applied_to: u64,
    ) -> Result<()> {
        if accounts.is_empty() {
            // No balance moved (unbilled or free calls): the marker alone, as a plain
            // insert. A sled batch rolls its log buffer twice, each a new buffer and
            // a write on sled's I/O pool that wakes all its threads; per call that was
            // about 5 of the 11 context switches a call cost (1,000 calls/s, counted
            // over /proc/<pid>/task).
            // Recovery keeps a prefix of sled's log, so a marker that survives a crash
            // comes with every balance written before it.
            self.meta
                .insert(CHARGES_APPLIED, applied_to.to_be_bytes())?;
            return Ok(());
        }
        let mut batch = Batch::default();
        for (id, account) in accounts {
            batch.insert(
                &self.carrier,
                super::key(&[Account::KIND, id]),
                to_json(account)?,
            );
        }
        batch.insert(&self.meta, CHARGES_APPLIED, applied_to.to_be_bytes());
        self.engine.apply(batch)
    }

    /// The first journal position whose charge is not in the balances.
    pub(super) fn charges_applied(&self) -> Result<u64> {
        Ok(self
            .meta
            .get(CHARGES_APPLIED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Replay charges when the marker is behind the journal (one read when it is not).
    fn catch_up_charges(&self) -> Result<()> {
        if self.charges_applied()? < self.call_log.next_seq() {
            tracing::warn!("call charges lag the journal; replaying them");
            self.replay_charges()?;
        }
        Ok(())
    }

    /// On opening, and after a failed balance write: debit the charges of calls whose
    /// records reached the journal but whose balances did not reach sled.
    pub(super) fn replay_charges(&self) -> Result<()> {
        let applied = self.charges_applied()?;
        let next = self.call_log.next_seq();
        if applied >= next {
            return Ok(());
        }
        let mut charges: std::collections::BTreeMap<String, Money> = Default::default();
        let mut calls = 0u64;
        self.call_log.records_from(applied, |_, record| {
            if let Some(charge) = charge_of(&record) {
                let total = charges.entry(record.account).or_default();
                *total = *total + charge;
                calls += 1;
            }
            Ok(())
        })?;
        let mut kinds = self.carrier_cache_lock();
        let mut accounts = std::collections::BTreeMap::new();
        for (id, charge) in charges {
            match self.stored_account(&id)? {
                Some(mut account) => {
                    account.balance = account.balance - charge;
                    accounts.insert(id, account);
                }
                None => {
                    tracing::warn!(account = %id, %charge, "a replayed charge's account is gone")
                }
            }
        }
        self.write_balances(&accounts, next)?;
        kinds.remove(Account::KIND);
        drop(kinds);
        self.engine.flush()?;
        if calls > 0 {
            tracing::info!(calls, "replayed call charges the last run had not stored");
        }
        Ok(())
    }

    /// The newest records matching `query` (and, when given, of one tenant), newest
    /// first, at most `query.limit`; with the cursor of the next page when there may
    /// be more. Segments outside the time range are skipped; an account or gateway
    /// filter reads only that one's records (each segment indexes them); the other
    /// filters are checked record by record.
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
        let from = query.from_ms.unwrap_or(0);
        let to = query.to_ms.unwrap_or(u64::MAX);
        // A cursor is the journal position the next page starts below.
        let before = query
            .before
            .as_deref()
            .map(|c| u64::from_str_radix(c, 16).map_err(|_| Error::Missing(format!("page {c:?}"))))
            .transpose()?;
        let owner = query.account.as_deref().or(query.gateway.as_deref());
        // A caller or callee search must find its text in the stored bytes (strings
        // are stored as they are): records without it are skipped undecoded.
        let needles: Vec<memchr::memmem::Finder<'_>> = [&query.caller, &query.callee]
            .into_iter()
            .flatten()
            .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
            .collect();
        let mut out = Vec::new();
        let mut next = None;
        let mut read = 0;
        self.call_log
            .walk_newest_first(before, from, to, owner, |seq, payload| {
                if read == budget {
                    // Out of budget: the next page starts at this record.
                    next = Some(seq + 1);
                    return Ok(false);
                }
                read += 1;
                if needles.iter().any(|n| n.find(payload).is_none()) {
                    return Ok(true);
                }
                let r = super::call_log::decode(payload)?;
                if r.end_ms >= from
                    && r.end_ms < to
                    && tenant.is_none_or(|t| t == r.tenant)
                    && query.matches(&r)
                {
                    out.push(r);
                    if out.len() >= query.limit {
                        next = Some(seq);
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
        Ok((out, next.map(|seq| format!("{seq:x}"))))
    }

    /// One record by customer Call-ID (newest if repeated).
    pub fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>> {
        self.call_log.find(call_id)
    }

    /// What the call-record journal holds.
    pub fn call_log_stats(&self) -> super::CallLogStats {
        self.call_log.stats()
    }

    /// Move call records from the sled trees of earlier versions into the journal,
    /// once: their charges are already in the balances. A crash part way leaves the
    /// trees in place and the marker unset, and the next opening starts over.
    pub(super) fn migrate_sled_call_records(&mut self, dir: &std::path::Path) -> Result<()> {
        const OLD_TREES: [&str; 4] = [
            "calls",
            "call_index",
            "calls_by_account",
            "calls_by_gateway",
        ];
        let names = self.engine.tree_names()?;
        if !names.iter().any(|n| n == "calls") {
            return Ok(());
        }
        let old = self.engine.tree("calls")?;
        if self.meta.get(MIGRATED)?.is_none() && old.key_count()? > 0 {
            if self.call_log.next_seq() > 0 {
                // An earlier migration stopped part way: begin it again.
                self.call_log = std::sync::Arc::new(super::call_log::CallLog::reset(
                    &dir.join(super::CALL_LOG_DIR),
                    self.options.segment_bytes,
                )?);
            }
            let mut moved = 0u64;
            let mut batch: Vec<CallRecord> = Vec::new();
            let flush = |batch: &mut Vec<CallRecord>, log: &super::call_log::CallLog| {
                let payloads = batch
                    .iter()
                    .map(|r| Ok((r, super::call_log::encode(r)?)))
                    .collect::<Result<Vec<_>>>()?;
                log.append(&payloads)?;
                batch.clear();
                Ok::<_, Error>(())
            };
            for kv in old.iter() {
                let (_, v) = kv?;
                batch.push(from_json(&v)?);
                moved += 1;
                if batch.len() == MAX_BATCH {
                    flush(&mut batch, &self.call_log)?;
                }
            }
            flush(&mut batch, &self.call_log)?;
            let next = self.call_log.next_seq();
            self.meta.insert(CHARGES_APPLIED, next.to_be_bytes())?;
            self.meta.insert(MIGRATED, [1])?;
            self.engine.flush()?;
            tracing::info!(
                records = moved,
                "moved call records from sled to the call journal"
            );
        }
        drop(old);
        for name in OLD_TREES {
            self.engine.drop_tree(name)?;
        }
        self.engine.flush()?;
        Ok(())
    }
}

/// Key in the `meta` tree: the call records of sled trees were moved to the journal.
const MIGRATED: &[u8] = b"call_records_migrated";

fn writer_gone() -> Error {
    Error::Write("the call writer thread stopped".into())
}

#[cfg(test)]
mod tests;
