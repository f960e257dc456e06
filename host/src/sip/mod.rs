//! SIP signalling: a B2BUA between customers (mapping gateways) and vendors (routing
//! gateways), every call decided by the policy engine.
//!
//! - [`wire`] turns bytes into messages (compact forms, size limit, no panics);
//! - [`message`] reads them and builds the ones we send;
//! - [`transport`] owns the UDP/TCP sockets;
//! - [`transaction`] implements RFC 3261 transactions and their timers;
//! - [`admission`] decides who may call and enforces CPS / concurrency limits;
//! - [`digest`] and [`registrar`] authenticate phones and bind their contacts;
//! - [`call`] runs one call: policy, attempts with failover, the two dialogs;
//! - [`session_timer`] keeps RFC 4028 session timers per leg;
//! - [`health`] pings routing gateways with OPTIONS and marks them down / up;
//! - [`upstream`] registers with routing gateways that want REGISTER;
//! - this file routes each incoming message to the transaction or call it belongs to.

pub mod admission;
pub mod auto_blacklist;
mod call;
mod dialog;
pub mod digest;
mod health;
pub mod hep;
pub mod live;
pub mod message;
mod metrics;
mod record;
pub mod registrar;
mod session_timer;
pub mod shield;
pub mod trace;
pub mod transaction;
pub mod transport;
pub mod upstream;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policy::PolicyEngine;
use crate::store::Store;
use message::{Message, Outgoing};
pub use switchyard_model::Transport;
use transaction::{Incoming, ServerTx, Transactions};
pub use transport::Peer;

/// The shield's bans, kept in the core's store. Weak: the transports' tasks hold the
/// shield, and must not keep the store (and its file lock) open once the core stops.
struct StoredBans(std::sync::Weak<SipCore>);

impl shield::BanLog for StoredBans {
    fn banned(&self, ban: &shield::Ban) {
        let Some(core) = self.0.upgrade() else { return };
        if let Err(e) = core.store.put_ban(&ban.address.to_string(), ban) {
            tracing::error!(source = %ban.address, error = %e, "the ban could not be stored");
        }
    }

    fn lifted(&self, ip: IpAddr) {
        let Some(core) = self.0.upgrade() else { return };
        if let Err(e) = core.store.remove_ban(&ip.to_string()) {
            tracing::error!(source = %ip, error = %e, "the lifted ban could not be removed");
        }
    }
}

/// Default SIP listen address: loopback, so a first run exposes nothing.
pub const DEFAULT_SIP_LISTEN: &str = "127.0.0.1:5060";

/// SIP settings. VOS3000's parameter names are given beside ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen addresses (IPv4 and IPv6); towards a peer we advertise the
    /// first of its address family in Via and Contact.
    pub listen: Vec<SocketAddr>,
    /// Answer requests from unknown sources (SS_REPLY_UNAUTHORIZED); off = silence.
    pub reply_unauthorized: bool,
    /// The code unknown sources get when answered (403, or 401).
    pub unauthorized_code: u16,
    /// Most attempts (vendor INVITEs) one call may make (SS_GATEWAY_SWITCH_LIMIT).
    pub gateway_switch_limit: u32,
    /// Default per-attempt INVITE timeout with no provisional answer, ms.
    pub invite_timeout_ms: u32,
    /// Default per-attempt timeout after a provisional answer with no final, ms.
    pub progress_timeout_ms: u32,
    /// An INVITE timeout ends the call instead of failing over
    /// (SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT).
    pub stop_switch_after_invite_timeout: bool,
    /// Longest call when no session timer runs, s; 0 = none
    /// (SS_SIP_NO_TIMER_REINVITE_INTERVAL, see spec decision 4).
    pub no_timer_max_duration_secs: u32,
    /// Digest algorithms offered, most preferred first (RFC 8760).
    pub digest_algorithms: Vec<switchyard_model::credentials::Algorithm>,
    /// Failed authentications before suspension, 0 = no limit (SS_AUTHENTICATION_MAX_RETRY).
    pub auth_max_retry: u32,
    /// Suspension after too many failures, s (SS_AUTHENTICATION_FAILED_SUSPEND, 60-3600).
    pub auth_failed_suspend_secs: u32,
    /// Challenge code for INVITEs from phones: 401 or 407.
    pub auth_challenge_code: u16,
    /// A REGISTER from a new address replaces a live registration
    /// (SS_ENDPOINT_REGISTER_REPLACE).
    pub register_replace: bool,
    /// Shortest registration accepted, s (shorter gets 423).
    pub register_min_expires_secs: u32,
    /// Longest registration granted, s.
    pub register_max_expires_secs: u32,
    /// Session-Expires we offer vendors, s (SS_SIP_SESSION_TTL, 60-86400).
    pub session_ttl_secs: u32,
    /// Smallest session interval accepted; smaller gets 422 (SS_SIP_SESSION_MIN_SE,
    /// 90-3600; RFC 4028 forbids less than 90 outside tests).
    pub session_min_se_secs: u32,
    /// We refresh every interval / this (SS_SIP_SESSION_UPDATE_SEGMENT, 2-10).
    pub session_update_segment: u32,
    /// Hang up this long before an unrefreshed session expires, s
    /// (SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP, 0-3600).
    pub session_timeout_early_hangup_secs: u32,
    /// Unregister (Expires: 0) from routing gateways we registered with, on shutdown
    /// and when the gateway is removed (SS_SIP_USER_AGENT_SEND_UNREGISTER).
    pub ua_send_unregister: bool,
    /// Registration expiry we ask gateways for, s; we keep to whatever they grant
    /// ("auto negotiation") (SS_SIP_USER_AGENT_EXPIRE, 20-7200).
    pub ua_register_expires_secs: u32,
    /// Wait before registering again after a failure, s (SS_SIP_USER_AGENT_RETRY_DELAY,
    /// 30-600).
    pub ua_register_retry_delay_secs: u32,
    /// The User-Agent (and Server) we send; none sends neither, so nothing we send
    /// names the software (SS_SIP_USER_AGENT_PRIVACY).
    pub user_agent: Option<String>,
    /// Bans, flood control, scanners, address lists.
    pub shield: shield::ShieldConfig,
    /// RTP relay settings.
    pub media: crate::media::MediaConfig,
    /// SIP over TLS (off unless set).
    pub tls: Option<SipTls>,
    /// The dynamic blacklist of caller numbers (off unless set).
    pub auto_blacklist: auto_blacklist::AutoBlacklistConfig,
    /// What the SIP trace keeps.
    pub trace: trace::TraceConfig,
}

/// SIP over TLS: a listener with our certificate, and the CAs vendors' must chain to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTls {
    /// Listen address (port 5061 by convention).
    pub listen: SocketAddr,
    /// Our certificate and key.
    #[serde(flatten)]
    pub files: crate::tls::TlsFiles,
    /// CA bundle for vendors reached over TLS; the system's when unset.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec![DEFAULT_SIP_LISTEN.parse().expect("valid default")],
            reply_unauthorized: true,
            unauthorized_code: 403,
            gateway_switch_limit: 5,
            invite_timeout_ms: 8_000,
            progress_timeout_ms: 60_000,
            stop_switch_after_invite_timeout: false,
            no_timer_max_duration_secs: 7_200,
            digest_algorithms: vec![
                switchyard_model::credentials::Algorithm::Sha256,
                switchyard_model::credentials::Algorithm::Md5,
            ],
            auth_max_retry: 6,
            auth_failed_suspend_secs: 180,
            auth_challenge_code: 407,
            register_replace: true,
            register_min_expires_secs: 60,
            register_max_expires_secs: 3_600,
            session_ttl_secs: 600,
            session_min_se_secs: 90,
            session_update_segment: 2,
            session_timeout_early_hangup_secs: 0,
            ua_send_unregister: true,
            ua_register_expires_secs: 3_600,
            ua_register_retry_delay_secs: 60,
            user_agent: None,
            shield: shield::ShieldConfig::default(),
            media: crate::media::MediaConfig::default(),
            tls: None,
            auto_blacklist: Default::default(),
            trace: Default::default(),
        }
    }
}

/// What a call task is told about its dialogs.
#[derive(Debug)]
enum CallEvent {
    /// A request inside one of the call's dialogs (or the caller's CANCEL).
    Request {
        msg: Box<Message>,
        tx: Arc<ServerTx>,
    },
    /// The ACK of a 2xx we sent.
    Ack(Box<Message>),
    /// An operator asks the call to end.
    HangUp,
}

/// What asking a call to end came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// The call is told to end: both legs get a BYE.
    Ending,
    /// It is not answered yet (it ends with its attempts).
    NotAnswered,
    /// No such call in progress.
    NoSuchCall,
}

/// Shared state of the SIP layer.
pub struct SipCore {
    txs: Arc<Transactions>,
    policy: Arc<PolicyEngine>,
    /// Live state: gateways' health and load, traffic windows, caller pools.
    runtime: Arc<crate::runtime::Runtime>,
    store: Store,
    config: SipConfig,
    admission: admission::Admission,
    billing: crate::billing::Billing,
    auth: digest::DigestAuth,
    /// Phones' registrations.
    pub registrar: registrar::Registrar,
    /// Live dialogs: `a:<call-id>:<from-tag>` for customer legs, `b:<call-id>` for ours.
    dialogs: Mutex<HashMap<String, mpsc::Sender<CallEvent>>>,
    /// Our registrations with routing gateways, by gateway id.
    upstream: Mutex<HashMap<String, upstream::UpstreamStatus>>,
    /// RTP relays.
    media: crate::media::MediaEngine,
    /// Calls in progress.
    pub live: live::LiveCalls,
    /// Caller numbers listed by their calls' pattern.
    pub auto_blacklist: auto_blacklist::AutoBlacklist,
}

/// Live counts, for operators and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SipStats {
    /// Calls in progress.
    pub calls: usize,
    /// Dialog routes registered (two per established call).
    pub dialogs: usize,
    /// Client transactions alive.
    pub client_transactions: usize,
    /// Server transactions alive (they linger up to 32 s after answering).
    pub server_transactions: usize,
    /// Phones registered.
    pub registrations: usize,
    /// Relay ports free (each relayed call holds two, with their RTCP ports).
    pub media_ports_free: usize,
    /// RTP relayed and dropped, and the transcoders' load.
    pub media: crate::media::MediaStats,
    /// Bans and what the shield dropped.
    pub shield: shield::ShieldStats,
    /// Messages read past the shield since start.
    pub messages_read: u64,
    /// Of those, messages that did not parse.
    pub messages_malformed: u64,
    /// What is held in memory per call, per peer and per key.
    pub memory: Census,
}

/// Every in-memory structure that could grow with traffic, counted: each entry that
/// belongs to a call is gone once the call and its transactions have ended, and the
/// rest are bounded by configuration (gateways, accounts, the statistics window).
/// A leak check compares it before and after a run of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Calls in the live call view.
    pub live_calls: usize,
    /// Accounts holding billing reservations.
    pub billing_reservations: usize,
    /// Gateways and accounts with admission usage, and the calls counted active.
    pub admission_keys: usize,
    /// Calls counted active by admission.
    pub admission_active: u64,
    /// Digest nonces outstanding (each lives 5 minutes at most).
    pub digest_nonces: usize,
    /// Users and sources with digest failures counted.
    pub digest_failure_keys: usize,
    /// Open TCP connections.
    pub tcp_connections: usize,
    /// The policy runtime' entries.
    pub runtime: crate::runtime::RuntimeCensus,
    /// Records in the call journal's active segment, whose index is in memory (bounded
    /// by the segment size).
    pub call_journal_active_records: u64,
}

/// The running SIP layer.
pub struct SipServer {
    /// The shared core.
    pub core: Arc<SipCore>,
    /// Where it listens (the first address, after port 0 was resolved).
    pub addr: SocketAddr,
    /// Every address it listens on, in the order configured.
    pub addrs: Vec<SocketAddr>,
    /// The SIP over TLS listener's address, when configured.
    pub tls_addr: Option<SocketAddr>,
    health: JoinHandle<()>,
    upstream: JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl SipServer {
    /// Bind the listeners and start handling messages.
    pub async fn start(
        config: SipConfig,
        store: Store,
        policy: Arc<PolicyEngine>,
        runtime: Arc<crate::runtime::Runtime>,
    ) -> anyhow::Result<SipServer> {
        let shield = Arc::new(shield::Shield::new(config.shield.clone()));
        let tls = match &config.tls {
            Some(t) => Some(transport::TlsListen {
                listen: t.listen,
                server: crate::tls::server_config(&t.files)?,
                client: crate::tls::client_config(t.ca.as_deref())?,
            }),
            None => None,
        };
        let transports = transport::Transports::bind(
            &config.listen,
            tls,
            shield,
            !config.reply_unauthorized,
            runtime.metrics.clone(),
            Arc::new(trace::Trace::new(config.trace)?),
        )
        .await?;
        let (addr, addrs) = (transports.advertised, transports.local_addrs());
        let tls_addr = transports.tls_addr();
        let core = Arc::new(SipCore {
            txs: Transactions::new(transports),
            admission: admission::Admission::new(store.clone()),
            billing: crate::billing::Billing::new(store.clone(), runtime.clone()),
            runtime,
            auth: digest::DigestAuth::new(
                config.digest_algorithms.clone(),
                config.auth_max_retry,
                std::time::Duration::from_secs(u64::from(
                    config.auth_failed_suspend_secs.clamp(60, 3600),
                )),
            ),
            registrar: registrar::Registrar::default(),
            media: crate::media::MediaEngine::new(config.media.clone()),
            live: live::LiveCalls::default(),
            policy,
            store,
            auto_blacklist: auto_blacklist::AutoBlacklist::new(config.auto_blacklist.clone()),
            config,
            dialogs: Mutex::default(),
            upstream: Mutex::default(),
        });
        if let Some(name) = &core.config.user_agent {
            core.txs.identify_as(name.clone());
        }
        core.runtime
            .metrics
            .register_collector(Box::new(metrics::SipGauges(Arc::downgrade(&core))));
        let known = Arc::downgrade(&core);
        core.shield().set_known_peers(Arc::new(move |ip| {
            known.upgrade().is_some_and(|core| core.is_known_peer(ip))
        }));
        // Bans outlive a restart: the ones still in force come back.
        let kept = core.store.stored_bans::<shield::Ban>()?;
        core.shield().keep_bans(
            Arc::new(StoredBans(Arc::downgrade(&core))),
            kept,
            crate::now_ms(),
        );
        core.txs
            .transports()
            .start(Box::new(Dispatcher(Arc::downgrade(&core))));
        let health = tokio::spawn(health::run(core.clone()));
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let upstream = tokio::spawn(upstream::run(core.clone(), shutting_down));
        tracing::info!(
            ?addrs,
            ?tls_addr,
            "SIP listening (UDP and TCP; TLS when set)"
        );
        Ok(SipServer {
            core,
            addr,
            addrs,
            tls_addr,
            health,
            upstream,
            shutdown,
        })
    }

    /// Unregister from upstream gateways (messages are still read to take their
    /// answers), then stop taking messages, and wait until the health checker is gone
    /// (it holds the store, which a restart in the same process reopens).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.upstream.await;
        self.core.txs.transports().stop();
        self.health.abort();
        let _ = self.health.await;
    }
}

/// Hands each message the transports read to the core, on the reading task. Holds
/// the core weakly: the transports belong to the core.
struct Dispatcher(std::sync::Weak<SipCore>);

impl transport::Handler for Dispatcher {
    fn handle(
        &self,
        inbound: transport::Inbound,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Some(core) = self.0.upgrade() {
                core.dispatch(inbound.msg, inbound.peer).await;
            }
        })
    }
}

/// A fresh tag.
pub(crate) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A Via of ours (from [`SipCore::via_base`]) for one request: its branch, and
/// `rport` so a peer behind NAT answers where the request came from (RFC 3581).
pub(crate) fn via_with_branch(base: &str, branch: &str) -> String {
    format!("{base};branch={branch};rport")
}

/// A fresh RFC 3261 branch (magic cookie first).
pub(crate) fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

impl SipCore {
    /// Our Via towards `peer` without its branch: the dialog layer adds each
    /// request's own branch to it (see `via_with_branch`).
    fn via_base(&self, peer: Peer) -> String {
        format!(
            "SIP/2.0/{} {}",
            peer.transport.via_name(),
            self.txs.transports().advertised_to(peer)
        )
    }

    /// Our Via for a request to `peer` with `branch`.
    fn via(&self, peer: Peer, branch: &str) -> String {
        via_with_branch(&self.via_base(peer), branch)
    }

    /// Our Contact for `user` in a request to (or response for) `peer`.
    fn contact(&self, user: &str, peer: Peer) -> String {
        let t = peer.transport.uri_param();
        let us = self.txs.transports().advertised_to(peer);
        format!("<sip:{user}@{us}{t}>")
    }

    /// The shield in front of the transports.
    pub fn shield(&self) -> &Arc<shield::Shield> {
        &self.txs.transports().shield
    }

    /// Whether `ip` is a peer the switch knows: a mapping gateway's source, a routing
    /// gateway's address, or a registered phone's. Gateways named by host name are
    /// not resolved here (no DNS on the packet path).
    pub fn is_known_peer(&self, ip: IpAddr) -> bool {
        let mapping = self
            .store
            .carrier_snapshot::<switchyard_model::MappingGateway>()
            .is_ok_and(|all| all.values().any(|g| g.matches_source(ip)));
        mapping
            || self
                .store
                .carrier_snapshot::<switchyard_model::RoutingGateway>()
                .is_ok_and(|all| {
                    all.values().any(|g| {
                        g.address
                            .as_deref()
                            .and_then(literal_address)
                            .map(|a| a.ip())
                            == Some(ip)
                    })
                })
            || self.registrar.has_peer(ip)
    }

    /// A fresh Call-ID of ours.
    fn new_call_id(&self) -> String {
        format!(
            "{:016x}{:08x}@{}",
            rand::random::<u64>(),
            rand::random::<u32>(),
            self.txs.transports().advertised.ip()
        )
    }

    /// Calls in progress of an account.
    pub fn account_calls(&self, account: &str) -> u32 {
        self.admission.account_calls(account)
    }

    /// How our registrations with routing gateways stand, by gateway id.
    pub fn upstream_status(&self) -> std::collections::BTreeMap<String, upstream::UpstreamStatus> {
        self.upstream()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn upstream(&self) -> std::sync::MutexGuard<'_, HashMap<String, upstream::UpstreamStatus>> {
        self.upstream.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_upstream(&self, gateway: &str, change: impl FnOnce(&mut upstream::UpstreamStatus)) {
        let mut all = self.upstream();
        let status = all.entry(gateway.to_string()).or_default();
        change(status);
        status.updated_ms = crate::now_ms();
    }

    fn dialogs(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<CallEvent>>> {
        self.dialogs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The relay port range.
    pub fn media_ports(&self) -> std::ops::Range<u16> {
        self.config.media.port_start..self.config.media.port_end
    }

    /// Every message sent and received, for operators.
    pub fn trace(&self) -> &Arc<trace::Trace> {
        &self.txs.transports().trace
    }

    /// Routing gateways (up, down) by their health checks.
    pub fn routing_gateways_up_down(&self) -> (usize, usize) {
        let ids = self
            .store
            .carrier_list::<switchyard_model::RoutingGateway>(None)
            .unwrap_or_default();
        let down = ids
            .iter()
            .filter(|(id, _)| self.runtime.gateway_live(id).down)
            .count();
        (ids.len() - down, down)
    }

    /// Live counts.
    /// End the answered call `call_id` as an operator asked.
    pub async fn hang_up(&self, call_id: &str) -> HangUp {
        let answered = self.live.get(call_id).map(|c| c.answer_ms.is_some());
        match answered {
            None => return HangUp::NoSuchCall,
            Some(false) => return HangUp::NotAnswered,
            Some(true) => {}
        }
        let prefix = format!("a:{call_id}:");
        let call = {
            let dialogs = self.dialogs.lock().unwrap_or_else(|e| e.into_inner());
            dialogs
                .iter()
                .find(|(key, _)| key.starts_with(&prefix))
                .map(|(_, tx)| tx.clone())
        };
        match call {
            Some(call) if call.send(CallEvent::HangUp).await.is_ok() => HangUp::Ending,
            _ => HangUp::NoSuchCall,
        }
    }

    pub fn stats(&self) -> SipStats {
        let (client_transactions, server_transactions) = self.txs.counts();
        let (messages_read, messages_malformed) = self.txs.transports().read_counts();
        let dialogs = self.dialogs();
        SipStats {
            calls: dialogs.keys().filter(|k| k.starts_with("a:")).count(),
            dialogs: dialogs.len(),
            client_transactions,
            server_transactions,
            registrations: self.registrar.count(),
            media_ports_free: self.media.free_ports(),
            media: self.media.stats(),
            shield: self.shield().stats(crate::now_ms()),
            messages_read,
            messages_malformed,
            memory: self.census(),
        }
    }

    /// The memory census.
    pub fn census(&self) -> Census {
        let (admission_keys, admission_active) = self.admission.tracked();
        let (digest_nonces, digest_failure_keys) = self.auth.tracked();
        Census {
            live_calls: self.live.len(),
            billing_reservations: self.billing.reservations(),
            admission_keys,
            admission_active,
            digest_nonces,
            digest_failure_keys,
            tcp_connections: self.txs.transports().tcp_connections(),
            runtime: self.runtime.census(),
            call_journal_active_records: self.store.call_log_stats().active_records,
        }
    }

    async fn dispatch(self: &Arc<Self>, msg: Message, peer: Peer) {
        if msg.status().is_some() {
            self.txs.incoming_response(msg).await;
            return;
        }
        let tx = match self.txs.incoming_request(&msg, peer).await {
            Incoming::Absorbed => return,
            Incoming::AckFor2xx => {
                if let Some(call) = self.dialog_of(&msg) {
                    let _ = call.send(CallEvent::Ack(Box::new(msg))).await;
                }
                return;
            }
            Incoming::New(tx) => tx,
        };
        let method = msg.method().cloned().unwrap_or(rsip::Method::Options);
        match method {
            rsip::Method::Invite if msg.to_tag().is_none() => {
                call::start(self.clone(), msg, tx).await;
            }
            _ => {
                if let Some(call) = self.dialog_of(&msg) {
                    let _ = call
                        .send(CallEvent::Request {
                            msg: Box::new(msg),
                            tx,
                        })
                        .await;
                } else if method == rsip::Method::Register {
                    registrar::handle(self, msg, tx).await;
                } else if !self.txs.transports().answers(tx.peer.addr.ip()) {
                    // Silence means silence: an unknown source learns nothing, not
                    // even that a SIP stack listens here.
                    self.txs.abandon(&tx);
                } else if method == rsip::Method::Options {
                    let ok = Outgoing::response(&msg, 200, "OK", Some(&new_tag()))
                        .header("Allow", call::ALLOW);
                    self.txs.respond(&tx, ok).await;
                } else {
                    let resp =
                        Outgoing::response(&msg, 481, "Call/Transaction Does Not Exist", None);
                    self.txs.respond(&tx, resp).await;
                }
            }
        }
    }

    /// The call a request belongs to: a customer-leg dialog by Call-ID and From tag,
    /// else one of our vendor legs by Call-ID.
    fn dialog_of(&self, msg: &Message) -> Option<mpsc::Sender<CallEvent>> {
        let dialogs = self.dialogs();
        dialogs
            .get(&a_key(msg.call_id(), msg.from_tag().unwrap_or_default()))
            .or_else(|| dialogs.get(&b_key(msg.call_id())))
            .cloned()
    }
}

fn a_key(call_id: &str, from_tag: &str) -> String {
    format!("a:{call_id}:{from_tag}")
}

fn b_key(call_id: &str) -> String {
    format!("b:{call_id}")
}

/// A gateway address `ip[:port]` without resolving names (port defaults to 5060).
pub fn literal_address(address: &str) -> Option<SocketAddr> {
    address.parse::<SocketAddr>().ok().or_else(|| {
        address
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 5060))
    })
}

/// A gateway address `host:port` (host may be a name; port defaults to 5060).
pub fn parse_address(address: &str) -> Option<SocketAddr> {
    if let Some(a) = literal_address(address) {
        return Some(a);
    }
    let with_port = if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:5060")
    };
    with_port.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_addresses_resolve_with_a_default_port() {
        assert_eq!(
            parse_address("127.0.0.1"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            parse_address("[::1]:5090"),
            Some("[::1]:5090".parse().unwrap())
        );
    }
}
