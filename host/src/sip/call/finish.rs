//! The end of a call: traffic statistics, billing settlement, the durable call
//! record, and the answer to the BYE that ended it.

use super::*;

/// Store a finished call's record and flush it: call records are money, so they are
/// durable (group commit) before the call is forgotten.
pub(super) async fn save_call_record(core: &SipCore, record: &CallRecord) {
    let written = core.store.record_call(record.clone()).await;
    count_written(&core.runtime.metrics, &record.call_id, written);
}

/// Count a call record written, or log why it was not.
pub(super) fn count_written(
    metrics: &crate::runtime::metrics::Metrics,
    call_id: &str,
    written: crate::store::Result<CallRecord>,
) {
    match written {
        Ok(_) => metrics.cdr_written(),
        Err(e) => tracing::error!(%call_id, error = %e, "writing the call record failed"),
    }
}

/// Count an ended call in the metrics, by its end reason.
pub(super) fn count_ended(core: &SipCore, record: &CallRecord) {
    let reason = serde_json::to_value(record.reason).unwrap_or_default();
    core.runtime.metrics.call_ended(
        reason.as_str().unwrap_or("unknown"),
        record.reason == EndReason::BalanceExhausted,
    );
}

impl CallTask {
    /// Feed the traffic statistics (each attempt sent to its gateway, the call to its
    /// account) and the metrics.
    pub(super) fn count_traffic(&self) {
        use crate::runtime::traffic::Outcome;
        let runtime = &self.core.runtime;
        let r = &self.record;
        let at_ms = r.end_ms;
        count_ended(&self.core, r);
        for a in r.attempts.iter().filter(|a| !a.leg_call_id.is_empty()) {
            runtime
                .metrics
                .attempt_ended(&a.gateway, a.code.unwrap_or(0));
            let answered = a.code.is_some_and(|c| (200..300).contains(&c));
            let duration_secs = if answered { r.duration_secs() } else { 0 };
            runtime.record_attempt(
                &a.gateway,
                Outcome {
                    at_ms,
                    answered,
                    duration_secs,
                    pdd_ms: a.pdd_ms,
                },
            );
        }
        let answered = r.answer_ms.is_some();
        runtime.record_call(
            &r.account,
            Outcome {
                at_ms,
                answered,
                duration_secs: r.duration_secs(),
                pdd_ms: r.pdd_ms,
            },
        );
    }

    /// Let the dynamic blacklist judge the caller number by this call.
    fn judge_caller(&self) {
        let r = &self.record;
        let ended = crate::sip::auto_blacklist::Ended {
            tenant: &r.tenant,
            caller: &self.call.caller.user,
            answered: r.answer_ms.is_some(),
            duration_secs: r.duration_secs(),
            end_ms: r.end_ms,
        };
        let Some(listing) = self.core.auto_blacklist.ended(ended) else {
            return;
        };
        if self.core.auto_blacklist.bans_sources() {
            let (reason, secs) = crate::sip::auto_blacklist::source_reason(&listing);
            self.core
                .shield()
                .ban(self.a.peer.addr.ip(), reason, secs, r.end_ms);
        }
    }

    /// Unregister the dialogs, free the gateway, write the call record.
    pub(super) async fn finish(mut self, reason: EndReason) {
        self.core.live.remove(&self.record.call_id);
        {
            let mut dialogs = self.core.dialogs();
            for k in &self.keys {
                dialogs.remove(k);
            }
        }
        self.release_gateway();
        // Caller pool numbers the module borrowed for this call come back.
        self.core
            .policy
            .runtime()
            .pools
            .release(&self.record.call_id);
        self.record.end_ms = crate::now_ms();
        self.record.reason = reason;
        if self.record.egress_gateway.is_none() {
            if let Some(last) = self
                .record
                .attempts
                .iter()
                .rev()
                .find(|a| !a.leg_call_id.is_empty())
            {
                self.record.egress_gateway = Some(last.gateway.clone());
                self.record.callee_out = Some(last.callee.clone());
                self.record.caller_out = Some(last.caller.clone());
            }
        }
        tracing::info!(reason = ?reason, code = self.record.final_code, attempts = self.record.attempts.len(), "call ended");
        self.count_traffic();
        self.judge_caller();
        match self.billing.take() {
            Some(auth) => self.core.billing.settle(auth, &mut self.record).await,
            None => save_call_record(&self.core, &self.record).await,
        }
        // Once settled: the ledger counts what the call was charged.
        self.core.runtime.ledger.record(&self.record);
        if let Some((tx, bye)) = self.hangup.take() {
            let ok = Outgoing::response(&bye, 200, "OK", None);
            self.core.txs.respond(&tx, ok).await;
        }
    }
}
