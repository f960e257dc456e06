//! A call as the policy decides it, and the decisions: what the SIP layer hands a
//! module and what comes back. The policy engine converts these to and from the WIT
//! records at the sandbox's edge (`policy/convert.rs`), so the rest of the host never
//! names generated bindings. Field and variant names are the WIT ones, so the JSON of
//! the simulate API reads the same as the module's view.

use serde::{Deserialize, Serialize};

/// A SIP header as name and value. Names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Which header the host took the caller's identity from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallerHeader {
    From,
    RemotePartyId,
    Display,
    PAssertedIdentity,
}

/// The calling party as the host understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Caller number (a SIP user part).
    pub user: String,
    pub display: Option<String>,
    /// The header `user` was taken from.
    pub source: CallerHeader,
}

/// One call as offered to the switch, after the mapping gateway's number rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The customer leg's Call-ID.
    pub call_id: String,
    /// Account billed; empty when none matched.
    pub account: String,
    pub tenant: String,
    /// Mapping gateway the call came in through; empty when none.
    pub ingress_gateway: String,
    /// Signalling source as "ip:port".
    pub source_address: String,
    pub caller: Caller,
    /// The called number.
    pub callee: String,
    /// The Request-URI as received.
    pub request_uri: String,
    /// Identity and routing headers as received (those shown to modules).
    pub headers: Vec<Header>,
    /// Codecs the caller offered, in its order.
    pub codecs: Vec<String>,
    /// When the INVITE arrived, Unix ms.
    pub arrived_at_ms: u64,
}

/// A refusal: SIP status and reason phrase (empty: the code's standard phrase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub code: u16,
    pub reason: String,
}

/// One outbound INVITE towards a routing gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Routing gateway id.
    pub gateway: String,
    /// Callee number to send.
    pub callee: String,
    /// Caller number to send; none keeps the caller's.
    pub caller: Option<String>,
    pub display: Option<String>,
    pub p_asserted_identity: Option<String>,
    pub privacy: Option<String>,
    pub p_preferred_identity: Option<String>,
    pub add_headers: Vec<Header>,
    pub remove_headers: Vec<String>,
    /// Give up after this long without an answer; none: the gateway's timeout.
    pub timeout_ms: Option<u32>,
}

impl Attempt {
    /// An attempt to `gateway` for `callee`, everything else as the caller sent it.
    pub fn to(gateway: impl Into<String>, callee: impl Into<String>) -> Attempt {
        Attempt {
            gateway: gateway.into(),
            callee: callee.into(),
            caller: None,
            display: None,
            p_asserted_identity: None,
            privacy: None,
            p_preferred_identity: None,
            add_headers: Vec::new(),
            remove_headers: Vec::new(),
            timeout_ms: None,
        }
    }
}

/// What routing decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Try these in order until one is answered.
    Attempts(Vec<Attempt>),
    Reject(Reject),
}

/// How one attempt ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Zero-based index of the attempt in the call's list.
    pub index: u32,
    /// The vendor's final status; none when none came.
    pub code: Option<u16>,
    pub reason: String,
    pub pdd_ms: Option<u32>,
    /// The attempt's timeout expired.
    pub timed_out: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    /// Go on with the next attempt.
    Continue,
    /// Try this one next, then the rest.
    Insert(Attempt),
    /// Stop and answer the caller with this.
    Stop(Reject),
}

/// Limits a screen may put on a call it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_duration_secs: u32,
}

/// What screening decides, before routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Allow,
    Reject(Reject),
    AllowWithLimits(Limits),
}
