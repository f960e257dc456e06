//! Registration to routing gateways that want it: we act as a user agent of the
//! vendor's (VOS3000's SS_SIP_USER_AGENT_* parameters). Each gateway with `register` set
//! gets a task that registers, answers 401/407 with the gateway's credentials, refreshes
//! halfway through what the gateway granted, waits the retry delay after a failure,
//! and unregisters (Expires: 0, same Call-ID and From tag) when the gateway is removed
//! or changed and on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::digest::Challenge;
use super::message::{param, uri_of, Message, Outgoing};
use super::transaction::final_response;
use super::{new_branch, new_tag, parse_address, Peer, SipCore};
use switchyard_model::RoutingGateway;

/// How one upstream registration stands, for operators (`GET /api/v1/sip/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpstreamStatus {
    /// The gateway accepted our last REGISTER.
    pub registered: bool,
    /// Seconds it granted.
    pub granted_secs: u32,
    /// Successful registrations and refreshes so far.
    pub registrations: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When this changed, Unix ms.
    pub updated_ms: u64,
}

/// How often the gateway list is compared with the running registrations.
const SCAN_EVERY: Duration = Duration::from_millis(250);
/// Longest shutdown waits for the unregistrations.
const UNREGISTER_WAIT: Duration = Duration::from_secs(5);
/// Challenges answered per REGISTER before giving up (a wrong password loops otherwise).
const MAX_CHALLENGES: u32 = 2;

/// Keep registrations in step with the routing gateways until `shutdown` turns true;
/// then unregister everywhere (bounded by [`UNREGISTER_WAIT`]).
pub(super) async fn run(core: Arc<SipCore>, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<String, (RoutingGateway, watch::Sender<bool>)> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut scan = tokio::time::interval(SCAN_EVERY);
    loop {
        tokio::select! {
            _ = scan.tick() => {}
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
        let gateways = match core.store.carrier_snapshot::<RoutingGateway>() {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "upstream registration: reading routing gateways");
                continue;
            }
        };
        // Removed or changed: unregister (the task finishes on its own).
        running.retain(|id, (config, stop)| {
            let same = gateways.get(id).is_some_and(|g| g.register && g == config);
            if !same {
                let _ = stop.send(true);
            }
            same
        });
        for (id, gateway) in gateways.iter().filter(|(_, g)| g.register) {
            if running.contains_key(id) {
                continue;
            }
            let Some(registration) = Registration::new(&core, id, gateway) else {
                continue;
            };
            let (stop, stopped) = watch::channel(false);
            running.insert(id.clone(), (gateway.clone(), stop));
            tasks.spawn(keep_registered(core.clone(), registration, stopped));
        }
    }
    for (_, stop) in running.values() {
        let _ = stop.send(true);
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(UNREGISTER_WAIT, all_done)
        .await
        .is_err()
    {
        tracing::warn!("upstream registration: unregistering took too long; giving up");
    }
}

/// Register, refresh and retry until `stop` turns true, then unregister.
async fn keep_registered(
    core: Arc<SipCore>,
    mut reg: Registration,
    mut stop: watch::Receiver<bool>,
) {
    let config = &core.config;
    let asked = reg
        .expires_asked
        .unwrap_or(config.ua_register_expires_secs)
        .clamp(20, 7200);
    let retry = Duration::from_secs(u64::from(
        config.ua_register_retry_delay_secs.clamp(30, 600),
    ));
    loop {
        let wait = tokio::select! {
            result = reg.send(&core, asked) => match result {
                Ok(granted) => {
                    tracing::info!(gateway = %reg.gateway, granted_secs = granted, "registered upstream");
                    core.set_upstream(&reg.gateway, |s| {
                        s.registered = true;
                        s.granted_secs = granted;
                        s.registrations += 1;
                        s.last_error = None;
                    });
                    Duration::from_secs(u64::from(granted.max(2) / 2))
                }
                Err(why) => {
                    tracing::warn!(gateway = %reg.gateway, %why, retry_secs = retry.as_secs(), "upstream registration failed");
                    core.set_upstream(&reg.gateway, |s| {
                        s.registered = false;
                        s.last_error = Some(why);
                    });
                    retry
                }
            },
            _ = stop.changed() => break,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    // Even after a failure or a REGISTER cut short: the gateway may hold our binding.
    if config.ua_send_unregister {
        match reg.send(&core, 0).await {
            Ok(_) => tracing::info!(gateway = %reg.gateway, "unregistered upstream"),
            Err(why) => {
                tracing::warn!(gateway = %reg.gateway, %why, "upstream unregistration failed")
            }
        }
    }
    core.upstream().remove(&reg.gateway);
}

/// One registration binding: the same Call-ID and From tag for its whole life.
struct Registration {
    gateway: String,
    peer: Peer,
    /// Request-URI: the gateway's domain.
    uri: String,
    /// Address of record, in From and To.
    aor: String,
    contact: String,
    user: String,
    password: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires_asked: Option<u32>,
    /// The last challenge, answered up front on refreshes.
    challenge: Option<Challenge>,
}

impl Registration {
    fn new(core: &SipCore, id: &str, gateway: &RoutingGateway) -> Option<Registration> {
        let address = gateway.address.as_deref()?;
        let addr = parse_address(address)?;
        let user = gateway.auth_user.clone()?;
        let peer = Peer {
            addr,
            transport: gateway.transport,
        };
        Some(Registration {
            gateway: id.to_string(),
            peer,
            uri: format!("sip:{address}"),
            aor: format!("<sip:{user}@{address}>"),
            contact: core.contact(&user, peer),
            password: gateway.auth_password.clone().unwrap_or_default(),
            user,
            call_id: core.new_call_id(),
            from_tag: new_tag(),
            cseq: 0,
            expires_asked: gateway.register_expires_secs,
            challenge: None,
        })
    }

    /// One REGISTER asking for `expires` seconds (0 = unregister), through challenges
    /// and 423s; the seconds granted.
    async fn send(&mut self, core: &SipCore, mut expires: u32) -> Result<u32, String> {
        let mut challenges = 0;
        loop {
            self.cseq += 1;
            let branch = new_branch();
            let mut req = Outgoing::dialog_request(
                "REGISTER",
                &self.uri,
                &core.via(self.peer, &branch),
                &format!("{};tag={}", self.aor, self.from_tag),
                &self.aor,
                &self.call_id,
                self.cseq,
            )
            .header("Contact", &self.contact)
            .header("Expires", expires.to_string());
            if let Some(c) = &mut self.challenge {
                c.authorize(&mut req, &self.user, &self.password, "REGISTER", &self.uri);
            }
            let mut events = core
                .txs
                .request(req, &branch, "REGISTER", self.peer, None)
                .await;
            let resp = final_response(&mut events)
                .await
                .ok_or_else(|| "no response".to_string())?;
            match resp.status().unwrap_or(0) {
                200..=299 => return Ok(self.granted(&resp, expires)),
                401 | 407 if challenges < MAX_CHALLENGES => {
                    challenges += 1;
                    self.challenge = Some(Challenge::of(&resp).ok_or_else(|| {
                        "challenged with no digest challenge we support".to_string()
                    })?);
                }
                423 => {
                    let min = resp
                        .header("Min-Expires")
                        .and_then(|v| v.trim().parse().ok())
                        .filter(|m| *m > expires)
                        .ok_or_else(|| "423 without a usable Min-Expires".to_string())?;
                    expires = min;
                }
                code => {
                    self.challenge = None;
                    return Err(format!("{code} {}", resp.reason()));
                }
            }
        }
    }

    /// What the gateway granted: our Contact's `expires`, else the Expires header, else
    /// what we asked.
    fn granted(&self, resp: &Message, asked: u32) -> u32 {
        let ours = uri_of(&self.contact);
        resp.headers_named("Contact")
            .find(|c| uri_of(c) == ours)
            .and_then(|c| param(c, "expires"))
            .or_else(|| resp.header("Expires"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(asked)
    }
}
