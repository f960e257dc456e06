//! RFC 3261 §17 transactions. Client transactions retransmit over UDP (timers A/E),
//! time out (B/F), acknowledge non-2xx final responses to INVITE hop by hop and absorb
//! their retransmissions (D). Server transactions answer INVITE with 100 Trying at
//! once, absorb request retransmissions by resending the last response, retransmit a
//! non-2xx final response to INVITE until the ACK (G/H/I), and linger for J.
//! Transactions are keyed by the topmost Via branch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use super::message::{Message, Outgoing};
use super::transport::{Peer, Transports};

/// RFC 3261 T1: round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: longest retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// RFC 3261 T4: the longest a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);
/// 64*T1: Timer B, F, H and J.
pub const TIMER_64T1: Duration = Duration::from_secs(32);
/// Timer I (§17.2.1): how long a server INVITE transaction absorbs ACK
/// retransmissions once confirmed: T4 over UDP, zero over reliable transports.
pub const TIMER_I: Duration = T4;

/// What a client transaction reports to its owner.
#[derive(Debug)]
pub enum ClientEvent {
    /// A response (provisional or final; 2xx retransmissions too, for INVITE).
    Response(Box<Message>),
    /// Timer B/F fired with no final response.
    Timeout,
}

/// The final response of a non-INVITE client transaction; none when it timed out.
pub async fn final_response(events: &mut mpsc::Receiver<ClientEvent>) -> Option<Box<Message>> {
    loop {
        match events.recv().await? {
            ClientEvent::Response(r) if r.status().is_some_and(|c| c >= 200) => return Some(r),
            ClientEvent::Response(_) => continue,
            ClientEvent::Timeout => return None,
        }
    }
}

/// The parts of an INVITE needed to build the hop-by-hop ACK for a non-2xx answer.
#[derive(Debug, Clone)]
pub struct AckParts {
    /// Request-URI of the INVITE.
    pub uri: String,
    /// Its Via (with the branch).
    pub via: String,
    /// Its From.
    pub from: String,
    /// Its Call-ID.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
}

/// A server transaction: the request's peer and the last response sent.
#[derive(Debug)]
pub struct ServerTx {
    /// Where the request came from (responses go back there).
    pub peer: Peer,
    is_invite: bool,
    last_response: Mutex<Option<(u16, Vec<u8>)>>,
    acked: Notify,
    key: String,
}

/// The transaction layer.
pub struct Transactions {
    transports: Arc<Transports>,
    clients: Mutex<HashMap<String, ClientEntry>>,
    servers: Mutex<HashMap<String, Arc<ServerTx>>>,
    /// Server transactions done but for absorbing retransmissions, forgotten after
    /// 64*T1 by one reaper task instead of a sleeping task each.
    expiring: Mutex<Expiring>,
    /// What we call ourselves in User-Agent and Server; none by default.
    identity: std::sync::OnceLock<String>,
}

/// Server transaction keys with the instant each is forgotten, oldest first (every
/// one waits the same 64*T1, so arrival order is expiry order).
#[derive(Default)]
struct Expiring {
    queue: std::collections::VecDeque<(tokio::time::Instant, String)>,
    /// Whether a reaper task runs; it ends when the queue is empty.
    reaping: bool,
}

/// How late past its expiry the reaper may forget a transaction, so one wake-up
/// forgets many: the reaper wakes about ten times a second under load.
const REAP_SLACK: Duration = Duration::from_millis(100);

struct ClientEntry {
    /// Where responses go; none for a request nobody waits on.
    events: Option<mpsc::Sender<ClientEvent>>,
    /// Set once a response arrived. The transaction's task reads it when its next
    /// timer fires (RFC 3261 changes the retransmission schedule only then) instead
    /// of being woken for each response.
    answered: Arc<AtomicBool>,
    /// For INVITE: how to ACK a non-2xx final.
    ack: Option<AckParts>,
    peer: Peer,
}

/// Resolves when the owner of a client transaction's events stops listening; never
/// for a transaction without one.
async fn owner_gone(events: Option<&mpsc::Sender<ClientEvent>>) {
    match events {
        Some(events) => events.closed().await,
        None => std::future::pending().await,
    }
}

/// A client transaction's state as its timers see it.
enum Progress {
    /// No response yet.
    Waiting,
    /// A response came: any one for an INVITE, a provisional one otherwise.
    Answered,
    /// A non-INVITE's final response came.
    Final,
}

/// The outcome of offering a request to the server side.
pub enum Incoming {
    /// A new request: the transaction to answer it on.
    New(Arc<ServerTx>),
    /// A retransmission or the ACK of a non-2xx final: handled here.
    Absorbed,
    /// An ACK that matches no transaction: the ACK of a 2xx, for the dialog.
    AckFor2xx,
}

impl Transactions {
    /// A transaction layer sending through `transports`.
    pub fn new(transports: Arc<Transports>) -> Arc<Transactions> {
        Arc::new(Transactions {
            transports,
            clients: Mutex::default(),
            servers: Mutex::default(),
            expiring: Mutex::default(),
            identity: std::sync::OnceLock::new(),
        })
    }

    /// Name the software in every request (User-Agent) and response (Server) from now
    /// on; unset, we send neither.
    pub fn identify_as(&self, user_agent: String) {
        let _ = self.identity.set(user_agent);
    }

    /// The transports.
    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServerTx>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientEntry>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live transactions (client, server), for leak checks.
    pub fn counts(&self) -> (usize, usize) {
        (self.clients().len(), self.servers().len())
    }

    /// Offer an incoming request to the server transactions.
    pub async fn incoming_request(self: &Arc<Self>, req: &Message, peer: Peer) -> Incoming {
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        let branch = server_branch(req);
        if method == "ACK" {
            let tx = self.servers().get(&format!("{branch}|INVITE")).cloned();
            return match tx {
                Some(tx) if tx.final_code().is_some_and(|c| c >= 300) => {
                    tx.acked.notify_one();
                    Incoming::Absorbed
                }
                _ => Incoming::AckFor2xx,
            };
        }
        let key = format!("{branch}|{method}");
        let existing = self.servers().get(&key).cloned();
        if let Some(tx) = existing {
            let last = tx
                .last_response
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some((_, bytes)) = last {
                self.transports.send(bytes, peer).await;
            }
            return Incoming::Absorbed;
        }
        let tx = Arc::new(ServerTx {
            peer,
            is_invite: method == "INVITE",
            last_response: Mutex::new(None),
            acked: Notify::new(),
            key: key.clone(),
        });
        self.servers().insert(key, tx.clone());
        // §17.2.1's 100 Trying is sent by the call layer once it has admitted the
        // call: an unknown source may be owed silence.
        Incoming::New(tx)
    }

    /// The server transaction an in-flight request (same branch, same method) lives in.
    pub fn server_tx_for(&self, req: &Message, method: &str) -> Option<Arc<ServerTx>> {
        self.servers()
            .get(&format!("{}|{method}", server_branch(req)))
            .cloned()
    }

    /// Send a response on a server transaction and run its timers.
    pub async fn respond(self: &Arc<Self>, tx: &Arc<ServerTx>, mut response: Outgoing) {
        if let Some(name) = self.identity.get() {
            response.push("Server", name);
        }
        let bytes = response.to_bytes();
        let code = status_of(&bytes);
        {
            let mut last = tx.last_response.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_ref().is_some_and(|(c, _)| *c >= 200) {
                return; // already final: a transaction answers once
            }
            *last = Some((code, bytes.clone()));
        }
        self.transports.send(bytes.clone(), tx.peer).await;
        if code < 200 {
            return;
        }
        let failed_invite = tx.is_invite && code >= 300;
        if !failed_invite {
            if tx.is_invite || !tx.peer.transport.is_reliable() {
                // Timer J for a non-INVITE over UDP: answer its retransmissions from
                // the cache. A 2xx ends an INVITE server transaction, but retransmissions
                // of the INVITE during the 2xx's lifetime are still absorbed a while.
                self.forget_later(tx.key.clone());
            } else {
                self.servers().remove(&tx.key);
            }
            return;
        }
        let me = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            // Timers G and H: retransmit until the ACK, give up after 64*T1.
            let unreliable = !tx.peer.transport.is_reliable();
            let deadline = tokio::time::sleep(TIMER_64T1);
            tokio::pin!(deadline);
            let mut interval = T1;
            loop {
                tokio::select! {
                    _ = tx.acked.notified() => break,
                    _ = &mut deadline => break,
                    _ = tokio::time::sleep(interval), if unreliable => {
                        me.transports.send(bytes.clone(), tx.peer).await;
                        interval = (interval * 2).min(T2);
                    }
                }
            }
            // Timer I: absorb ACK retransmissions a while longer.
            if unreliable {
                tokio::time::sleep(TIMER_I).await;
            }
            me.servers().remove(&tx.key);
        });
    }

    /// Leave a request unanswered (silence for unknown sources); its retransmissions
    /// are absorbed silently for 64*T1, then the transaction is forgotten.
    pub fn abandon(self: &Arc<Self>, tx: &Arc<ServerTx>) {
        self.forget_later(tx.key.clone());
    }

    /// Forget server transaction `key` after 64*T1, starting the reaper if none runs.
    fn forget_later(self: &Arc<Self>, key: String) {
        let mut expiring = self.expiring_lock();
        expiring
            .queue
            .push_back((tokio::time::Instant::now() + TIMER_64T1, key));
        if !std::mem::replace(&mut expiring.reaping, true) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }

    fn expiring_lock(&self) -> std::sync::MutexGuard<'_, Expiring> {
        self.expiring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a client transaction: send `req` to `peer`, retransmitting over UDP until
    /// answered, and report responses and the timeout on the returned channel.
    pub async fn request(
        self: &Arc<Self>,
        req: Outgoing,
        branch: &str,
        method: &str,
        peer: Peer,
        ack: Option<AckParts>,
    ) -> mpsc::Receiver<ClientEvent> {
        let (events, rx) = mpsc::channel(16);
        self.start_request(req, branch, method, peer, ack, Some(events))
            .await;
        rx
    }

    /// Start a client transaction whose answer nobody waits for: it retransmits and
    /// times out as any other, and its responses are dropped.
    pub async fn request_detached(
        self: &Arc<Self>,
        req: Outgoing,
        branch: &str,
        method: &str,
        peer: Peer,
    ) {
        self.start_request(req, branch, method, peer, None, None)
            .await;
    }

    /// Register the transaction, send `req` and run its timers on a task of its own;
    /// responses and the timeout go to `events`, when someone listens.
    async fn start_request(
        self: &Arc<Self>,
        mut req: Outgoing,
        branch: &str,
        method: &str,
        peer: Peer,
        ack: Option<AckParts>,
        events: Option<mpsc::Sender<ClientEvent>>,
    ) {
        let answered = Arc::new(AtomicBool::new(false));
        let key = format!("{branch}|{method}");
        self.clients().insert(
            key.clone(),
            ClientEntry {
                events: events.clone(),
                answered: answered.clone(),
                ack,
                peer,
            },
        );
        if let Some(name) = self.identity.get() {
            req.push("User-Agent", name);
        }
        let bytes = req.to_bytes();
        self.transports.send(bytes.clone(), peer).await;
        let me = self.clone();
        let is_invite = method == "INVITE";
        tokio::spawn(async move {
            let deadline = tokio::time::sleep(TIMER_64T1);
            tokio::pin!(deadline);
            let mut interval = T1;
            let mut retransmit = !peer.transport.is_reliable();
            loop {
                tokio::select! {
                    // The owner hung up on this transaction (call over or gave up).
                    _ = owner_gone(events.as_ref()) => break,
                    _ = &mut deadline, if !deadline.is_elapsed() => {
                        match me.progress(&key, is_invite, &answered) {
                            // An answered INVITE's entry stays while the owner listens,
                            // so late finals, 2xx retransmissions and Timer D's re-ACKs
                            // still find it.
                            Progress::Answered if is_invite => retransmit = false,
                            Progress::Final => break,
                            // Timer B or F.
                            _ => {
                                if let Some(events) = &events {
                                    let _ = events.send(ClientEvent::Timeout).await;
                                }
                                break;
                            }
                        }
                    }
                    _ = tokio::time::sleep(interval), if retransmit => {
                        match me.progress(&key, is_invite, &answered) {
                            // Any response stops INVITE retransmission.
                            Progress::Answered if is_invite => {
                                retransmit = false;
                                continue;
                            }
                            Progress::Final => break,
                            // Proceeding: Timer E is reset to T2 from now on.
                            Progress::Answered => interval = T2,
                            Progress::Waiting => {}
                        }
                        me.transports.send(bytes.clone(), peer).await;
                        interval = if is_invite { interval * 2 } else { (interval * 2).min(T2) };
                    }
                }
            }
            me.clients().remove(&key);
        });
    }

    /// Where a client transaction stands when one of its timers fires.
    fn progress(&self, key: &str, is_invite: bool, answered: &AtomicBool) -> Progress {
        if !answered.load(Ordering::Relaxed) {
            Progress::Waiting
        } else if is_invite || self.clients().contains_key(key) {
            // A non-INVITE's entry goes with its final response.
            Progress::Answered
        } else {
            Progress::Final
        }
    }

    /// Offer an incoming response to the client transactions.
    pub async fn incoming_response(self: &Arc<Self>, resp: Message) {
        let Some(branch) = resp.top_via_branch() else {
            return;
        };
        let method = resp.cseq().1.to_string();
        let key = format!("{branch}|{method}");
        let code = resp.status().unwrap_or(0);
        let (events, answered, ack, peer) = {
            let mut clients = self.clients();
            let Some(entry) = clients.get(&key) else {
                tracing::debug!(%branch, code, "response matches no transaction");
                return;
            };
            let found = (
                entry.events.clone(),
                entry.answered.clone(),
                entry.ack.clone(),
                entry.peer,
            );
            if method != "INVITE" && code >= 200 {
                clients.remove(&key);
            }
            found
        };
        answered.store(true, Ordering::Relaxed);
        if method == "INVITE" && code >= 300 {
            if let Some(parts) = ack {
                let ack = non_2xx_ack(&parts, resp.header("To").unwrap_or_default());
                self.transports.send(ack.to_bytes(), peer).await;
            }
        }
        if let Some(events) = events {
            let _ = events.send(ClientEvent::Response(Box::new(resp))).await;
        }
    }

    /// Send a message outside any transaction (ACK for 2xx, 2xx retransmissions).
    pub async fn send_stateless(&self, msg: &Outgoing, peer: Peer) {
        self.transports.send(msg.to_bytes(), peer).await;
    }
}

/// Forget expired server transactions until none is left to expire (or the
/// transactions are gone).
async fn reap(txs: std::sync::Weak<Transactions>) {
    loop {
        let next = {
            let Some(txs) = txs.upgrade() else { return };
            let now = tokio::time::Instant::now();
            let mut expired = Vec::new();
            let mut expiring = txs.expiring_lock();
            while expiring.queue.front().is_some_and(|(at, _)| *at <= now) {
                expired.extend(expiring.queue.pop_front().map(|(_, key)| key));
            }
            let next = expiring.queue.front().map(|(at, _)| *at);
            expiring.reaping = next.is_some();
            drop(expiring);
            let mut servers = txs.servers();
            for key in &expired {
                servers.remove(key);
            }
            next
        };
        match next {
            Some(at) => tokio::time::sleep_until(at + REAP_SLACK).await,
            None => return,
        }
    }
}

impl ServerTx {
    /// The final status sent, if any.
    pub fn final_code(&self) -> Option<u16> {
        self.last_response
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(c, _)| *c)
            .filter(|c| *c >= 200)
    }
}

/// §17.1.1.3: the ACK for a non-2xx final is part of the INVITE transaction.
fn non_2xx_ack(parts: &AckParts, to: &str) -> Outgoing {
    Outgoing::dialog_request(
        "ACK",
        &parts.uri,
        &parts.via,
        &parts.from,
        to,
        &parts.call_id,
        parts.cseq,
    )
}

/// The branch identifying a server transaction (RFC 2543 peers without a magic-cookie
/// branch are keyed by Call-ID and CSeq number instead).
fn server_branch(req: &Message) -> String {
    match req.top_via_branch() {
        Some(b) if b.starts_with("z9hG4bK") => b.to_string(),
        _ => format!("{}|{}", req.call_id(), req.cseq().0),
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    std::str::from_utf8(&bytes[..bytes.len().min(16)])
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
