//! Call records: one per call, written when the call ends, with every attempt the call
//! made and, for a billed call, its charges.

use serde::{Deserialize, Serialize};

use crate::Money;

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
    /// An operator hung the call up (the web manager's or the API's hang-up).
    OperatorHangup,
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
    /// The caller's offer lacks the codec its mapping gateway requires, or every
    /// vendor gateway tried requires a codec it could not be given (488).
    CodecNotOffered,
    /// A number list refused the caller or the callee (the record's `refused_by` says which).
    NumberListed,
    /// The tenant's address list refused the call's source (`final_reason` says which).
    AddressListed,
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
    /// The number list and entry that refused the call, when one did.
    #[serde(default)]
    pub refused_by: Option<crate::ListHit>,
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

impl CallRecord {
    /// Who it is filed under: its account and every gateway it came in on or tried.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.account.as_str()).chain(self.gateways())
    }

    /// The gateways it is found under: where it came in and every gateway it tried.
    pub fn gateways(&self) -> std::collections::BTreeSet<&str> {
        std::iter::once(self.ingress_gateway.as_str())
            .chain(self.egress_gateway.as_deref())
            .chain(self.attempts.iter().map(|a| a.gateway.as_str()))
            .collect()
    }
}
