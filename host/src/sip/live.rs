//! The calls in progress, for the operator's live view: who, where, since when, and
//! each leg's codec and media path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::media::dtmf::Method;
use crate::media::{LegCounters, LegRtp};
use switchyard_model::CallRecord;

/// One call in progress.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCall {
    /// Customer Call-ID.
    pub call_id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Billed account.
    pub account: String,
    /// Mapping gateway it came in on.
    pub ingress_gateway: String,
    /// Routing gateway it is trying or talking on.
    pub egress_gateway: Option<String>,
    /// Caller as received.
    pub caller: String,
    /// Callee as received.
    pub callee: String,
    /// Caller as sent to the vendor, after the module's and gateways' transforms
    /// (once answered).
    pub caller_out: Option<String>,
    /// Callee as sent to the vendor (once answered).
    pub callee_out: Option<String>,
    /// INVITE received, Unix ms.
    pub invite_ms: u64,
    /// Answered, Unix ms.
    pub answer_ms: Option<u64>,
    /// The caller leg's codec.
    pub codec_in: Option<String>,
    /// The vendor leg's codec.
    pub codec_out: Option<String>,
    /// Media goes through the host's relay.
    pub relayed: bool,
    /// The relay converts between the legs' codecs.
    pub transcoded: bool,
    /// DTMF method the caller's leg is using (once it has sent a digit through the
    /// relay): "Caller DTMF" of the VOS3000 current-call view.
    pub caller_dtmf: Option<Method>,
    /// DTMF method the vendor's leg is using ("Callee DTMF").
    pub callee_dtmf: Option<Method>,
    /// Each leg's RTP figures as the relay counts them, read when the call is
    /// listed; none when media does not go through the relay.
    pub rtp: Option<CallRtp>,
    /// Where `rtp` is read from.
    #[serde(skip)]
    counters: Option<[Arc<LegCounters>; 2]>,
}

/// Both legs' RTP figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CallRtp {
    /// The customer's leg: `received` is what the customer sent.
    pub caller: LegRtp,
    /// The vendor's leg.
    pub callee: LegRtp,
}

/// What the live view shows of a call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct LiveMedia {
    /// Media goes through the relay.
    pub relayed: bool,
    /// The relay converts codecs.
    pub transcoded: bool,
    /// The DTMF methods the (caller's, vendor's) legs use.
    pub dtmf: [Option<Method>; 2],
}

impl LiveCall {
    /// The live view of a call whose record so far is `record`, its RTP figures read
    /// from `counters` (the relay's, while it relays).
    pub(super) fn of(
        record: &CallRecord,
        media: LiveMedia,
        counters: Option<[Arc<LegCounters>; 2]>,
    ) -> LiveCall {
        LiveCall {
            call_id: record.call_id.clone(),
            tenant: record.tenant.clone(),
            account: record.account.clone(),
            ingress_gateway: record.ingress_gateway.clone(),
            egress_gateway: record
                .egress_gateway
                .clone()
                .or_else(|| record.attempts.last().map(|a| a.gateway.clone())),
            caller: record.caller_in.clone(),
            callee: record.callee_in.clone(),
            caller_out: record.caller_out.clone(),
            callee_out: record.callee_out.clone(),
            invite_ms: record.invite_ms,
            answer_ms: record.answer_ms,
            codec_in: record.codec_in.clone(),
            codec_out: record.codec_out.clone(),
            relayed: media.relayed,
            transcoded: media.transcoded,
            caller_dtmf: media.dtmf[0],
            callee_dtmf: media.dtmf[1],
            rtp: None,
            counters,
        }
    }

    /// This view with its RTP figures as they are now.
    fn read(&self) -> LiveCall {
        let mut call = self.clone();
        call.rtp = self.counters.as_ref().map(|[caller, callee]| CallRtp {
            caller: caller.read(),
            callee: callee.read(),
        });
        call
    }
}

/// Every call in progress by Call-ID.
#[derive(Default)]
pub struct LiveCalls(Mutex<HashMap<String, LiveCall>>);

impl LiveCalls {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCall>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add or refresh a call.
    pub(super) fn update(&self, call: LiveCall) {
        self.calls().insert(call.call_id.clone(), call);
    }

    /// Forget an ended call.
    pub(super) fn remove(&self, call_id: &str) {
        self.calls().remove(call_id);
    }

    /// Calls listed.
    pub fn len(&self) -> usize {
        self.calls().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call `call_id`, if it is in progress.
    pub fn get(&self, call_id: &str) -> Option<LiveCall> {
        self.calls().get(call_id).map(LiveCall::read)
    }

    /// How many calls `keep` accepts.
    pub fn count(&self, keep: impl Fn(&LiveCall) -> bool) -> usize {
        self.calls().values().filter(|c| keep(c)).count()
    }

    /// The calls `keep` accepts, oldest first.
    pub fn list(&self, keep: impl Fn(&LiveCall) -> bool) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .calls()
            .values()
            .filter(|c| keep(c))
            .map(LiveCall::read)
            .collect();
        calls.sort_by_key(|c| c.invite_ms);
        calls
    }
}
