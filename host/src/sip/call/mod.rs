//! One call through the B2BUA: admission, the policy's screen and route, the vendor
//! attempts with failover, then the two dialogs until one side hangs up. The customer
//! leg (A) and each vendor leg (B) are separate dialogs with their own Call-ID, tags,
//! CSeq, Via and Contact: nothing of one side's topology reaches the other.
//!
//! A call is one task. Its events (requests in either dialog, the ACK of our 2xx)
//! arrive on one channel; its client transactions report on their own channels.
//!
//! | file | phase |
//! |---|---|
//! | [`admit`] | checks before any policy, phone auth, refusals |
//! | [`route`] | screen, route, failover over the attempts |
//! | [`attempt`] | one vendor INVITE to its end |
//! | [`media`] | the attempt's media plan, relay and SDP |
//! | [`answer`] | the vendor's answer carried to the caller |
//! | [`established`] | the answered call until a side hangs up |
//! | [`finish`] | statistics, settlement, the call record |

mod admit;
mod answer;
mod attempt;
mod established;
mod finish;
mod media;
mod route;

pub(super) use admit::start;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use switchyard_model::call::{Attempt, Call, Decision, NextStep, Outcome, Reject, Verdict};
use switchyard_model::{
    AttemptRecord, CallRecord, EndReason, G729Mode, ListScope, MediaSettings, RoutingGateway,
};

use super::admission::{Admit, Slot};
use super::dialog::*;
use super::digest::Challenge;
use super::live::{LiveCall, LiveMedia};
use super::message::{param, uri_of, user_of, Message, Outgoing};
use super::record::{answered_codec, offered_call, Origin};
use super::session_timer::{parse_session_expires, LegTimer};
use super::transaction::{AckParts, ClientEvent, ServerTx, T1, T2, TIMER_64T1};
use super::transport::Peer;
use super::{a_key, b_key, parse_address, CallEvent, SipCore};
use super::{new_branch, new_tag};
use crate::media::codec::Codec;
use crate::media::{InfoDigit, Relay, Side};

/// Methods we accept, for Allow headers.
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// Headers of the customer's INVITE carried to the vendor unless the module says otherwise.
const CARRIED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "Privacy",
    "P-Preferred-Identity",
    "Diversion",
];

struct CallTask {
    core: Arc<SipCore>,
    invite: Message,
    tx: Arc<ServerTx>,
    a: Leg,
    a_tag: String,
    events: mpsc::Receiver<CallEvent>,
    events_tx: mpsc::Sender<CallEvent>,
    keys: Vec<String>,
    /// The call as the policy sees it.
    call: Call,
    record: CallRecord,
    relayed_ringing: bool,
    relayed_sdp: bool,
    /// The routing gateway whose live call count this call holds.
    busy_gateway: Option<String>,
    /// The account's rate and reserved money; taken when the call settles.
    billing: Option<crate::billing::Authorization>,
    /// The BYE that ended the call, answered after the record is written: a party
    /// that saw its hang-up accepted finds the call's record even after a crash.
    hangup: Option<(Arc<ServerTx>, Box<Message>)>,
    /// The RTP relay, once an attempt needed one; SDP through it is rewritten while
    /// `relaying` (the current attempt, then the answered call, uses it).
    relay: Option<Relay>,
    relaying: bool,
    /// Codecs of (caller, vendor) when the relay converts between them.
    transcoding: Option<(Codec, Codec)>,
    /// Codecs the (caller's, vendor's) gateways pin, each side offered only its own.
    pinned: (Option<Codec>, Option<Codec>),
    /// Digits the relay converted that go out as SIP INFO.
    info_digits: Option<mpsc::UnboundedReceiver<InfoDigit>>,
    /// Media settings of the (caller's, vendor's) gateways for the current attempt.
    media_settings: (MediaSettings, MediaSettings),
    /// G.729 negotiation modes of the (caller's, vendor's) gateways.
    g729_modes: (G729Mode, G729Mode),
    /// The G.729 name each side used in its own SDP (caller, vendor): Auto mirrors it.
    g729_names: std::sync::Mutex<[Option<String>; 2]>,
    _slot: Slot,
    /// Counts the call among its account's calls in progress while the task lives.
    _live: crate::runtime::live_calls::LiveCallEntry,
    /// Counts the call among its caller number's, for the dynamic blacklist.
    _active_caller: Option<super::auto_blacklist::ActiveCall>,
}

/// Why an attempt on a full routing gateway was skipped.
const AT_CAPACITY: &str = "gateway at capacity";

/// INVITEs one attempt may send after the first: a challenge and a 422, with room for a
/// stale nonce.
const MAX_RESENDS: u32 = 3;

/// What changes when an attempt INVITEs its vendor again.
enum Resend {
    /// Answer this digest challenge.
    Authorize(Challenge),
    /// Offer this session interval (and Min-SE).
    SessionInterval(u32),
}

/// An attempt the vendor answered: its dialog, its INVITE transaction (for 2xx
/// retransmissions) and the answer.
struct Answered {
    b: Leg,
    b_invite: mpsc::Receiver<ClientEvent>,
    answer: Box<Message>,
}

/// How one attempt ended; `A` is what an answered one carries on.
enum AttemptEnd<A = Answered> {
    Answered(A),
    Failed(Outcome),
    Skipped(String),
    /// Skipped because the media plan refuses the caller's codecs for this gateway.
    Unacceptable(String),
    CallerCancelled,
}

impl CallTask {
    /// Our Via towards `peer`, without its branch.
    pub(super) fn via(&self, peer: Peer) -> String {
        self.core.via_base(peer)
    }

    pub(super) fn contact(&self, peer: Peer) -> String {
        self.core.contact("switchyard", peer)
    }

    /// Answer the caller with a final failure, and record it as the call's.
    pub(super) async fn reply(&mut self, code: u16, reason: &str) {
        self.record.final_code = code;
        // An empty phrase is the standard one for the code: nothing to add.
        self.record.final_reason = (!reason.is_empty()).then(|| reason.to_string());
        let resp = Outgoing::response(&self.invite, code, reason, Some(&self.a_tag));
        self.core.txs.respond(&self.tx, resp).await;
    }

    pub(super) async fn run(mut self) {
        self.publish();
        let reason = self.decide_and_connect().await;
        self.finish(reason).await;
    }

    /// Show the call as it stands in the live view.
    pub(super) fn publish(&self) {
        self.core.live.update(LiveCall::of(
            &self.record,
            self.live_media(),
            self.active_relay().map(Relay::counters),
        ));
    }

    /// The relay, while this call's media goes through it.
    pub(super) fn active_relay(&self) -> Option<&Relay> {
        self.relay.as_ref().filter(|_| self.relaying)
    }

    /// What the live view shows of the call's media: whether it is relayed and
    /// transcoded, and the DTMF methods the relay has seen each leg use.
    pub(super) fn live_media(&self) -> LiveMedia {
        let relay = self.active_relay();
        LiveMedia {
            relayed: relay.is_some(),
            transcoded: relay.is_some() && self.transcoding.is_some(),
            dtmf: [Side::Caller, Side::Callee].map(|side| relay.and_then(|r| r.dtmf_method(side))),
        }
    }
}
