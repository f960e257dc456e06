//! The registrar: phones REGISTER with digest credentials (401 challenge), their
//! contacts are bound with an expiry, and a new registration from another address
//! replaces the old one when `register_replace` is on (SS_ENDPOINT_REGISTER_REPLACE)
//! or is refused with 403 while the old one lives when it is off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::digest::Refusal;
use super::message::{param, uri_of, user_of, Message, Outgoing};
use super::transaction::ServerTx;
use super::transport::Peer;
use super::SipCore;
use switchyard_model::credentials::Algorithm;
use switchyard_model::Phone;

/// A registered contact.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The Contact URI.
    pub contact: String,
    /// Where the REGISTER came from (requests to the phone go there).
    pub peer: Peer,
    /// When it lapses.
    pub expires_at: Instant,
}

/// Live registrations by username.
#[derive(Default)]
pub struct Registrar {
    by_user: Mutex<HashMap<String, Registration>>,
}

impl Registrar {
    /// The live registration of `user`.
    pub fn lookup(&self, user: &str) -> Option<Registration> {
        let regs = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        regs.get(user)
            .filter(|r| r.expires_at > Instant::now())
            .cloned()
    }

    /// Whether a phone registered from `ip` is live.
    pub fn has_peer(&self, ip: std::net::IpAddr) -> bool {
        let now = Instant::now();
        let regs = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        regs.values()
            .any(|r| r.peer.addr.ip() == ip && r.expires_at > now)
    }

    /// Number of live registrations.
    pub fn count(&self) -> usize {
        let now = Instant::now();
        let regs = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        regs.values().filter(|r| r.expires_at > now).count()
    }
}

/// Whose credentials a request naming `user` is checked against.
pub(super) enum Credentials {
    /// A phone of ours.
    Phone(Box<Phone>),
    /// No phone, but phones exist and unknown sources are answered: a decoy no
    /// password matches, so an unknown user is challenged, refused and suspended
    /// exactly as a known one with a wrong password, and scanning for extensions
    /// learns nothing.
    Decoy,
    /// No phone, and nothing to hide: the caller is an unknown source.
    Unknown,
}

pub(super) fn credentials_of(core: &SipCore, user: &str) -> Credentials {
    match core.store.carrier_get::<Phone>(user) {
        Ok(Some(phone)) => Credentials::Phone(Box::new(phone)),
        _ if core.config.reply_unauthorized
            && core
                .store
                .carrier_snapshot::<Phone>()
                .is_ok_and(|phones| !phones.is_empty()) =>
        {
            Credentials::Decoy
        }
        _ => Credentials::Unknown,
    }
}

/// The stored HA1 for an algorithm of a phone (none for a decoy).
pub(super) fn ha1_for(credentials: &Credentials) -> impl Fn(Algorithm) -> Option<String> + '_ {
    move |a| match credentials {
        Credentials::Phone(phone) => ha1_of(phone)(a),
        _ => None,
    }
}

/// The stored HA1 of a phone for an algorithm.
pub(super) fn ha1_of(phone: &Phone) -> impl Fn(Algorithm) -> Option<String> + '_ {
    move |a| {
        let h = match a {
            Algorithm::Md5 => &phone.ha1_md5,
            Algorithm::Sha256 => &phone.ha1_sha256,
        };
        (!h.is_empty()).then(|| h.clone())
    }
}

/// Answer a REGISTER.
pub(super) async fn handle(core: &Arc<SipCore>, req: Message, tx: Arc<ServerTx>) {
    let peer = tx.peer;
    let to = req.header("To").unwrap_or_default();
    let user = user_of(uri_of(to)).to_string();
    let reply =
        |code: u16, reason: &str| Outgoing::response(&req, code, reason, Some(&super::new_tag()));
    let credentials = credentials_of(core, &user);
    if let Credentials::Unknown = credentials {
        // Spec decision 1: an unknown user from an unknown source is an unknown source.
        if core.config.reply_unauthorized {
            core.txs.respond(&tx, reply(403, "Forbidden")).await;
        } else {
            core.txs.abandon(&tx);
        }
        return;
    }
    match core.auth.verify(
        req.header("Authorization"),
        "REGISTER",
        peer.addr.ip(),
        &user,
        ha1_for(&credentials),
    ) {
        Ok(()) => {}
        Err(Refusal::Suspended) => {
            tracing::info!(%user, source = %peer.addr, "REGISTER refused: suspended after failed authentication");
            return core.txs.respond(&tx, reply(403, "Suspended")).await;
        }
        Err(Refusal::Challenge | Refusal::Wrong) => {
            let mut resp = reply(401, "Unauthorized");
            for c in core.auth.challenges() {
                resp.push("WWW-Authenticate", c);
            }
            return core.txs.respond(&tx, resp).await;
        }
    }

    let contact = req.header("Contact");
    let default_expires = req
        .header("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(3600);
    let expires = contact
        .and_then(|c| param(c, "expires"))
        .and_then(|e| e.parse::<u64>().ok())
        .unwrap_or(default_expires);
    let config = &core.config;
    if contact.is_none() {
        // A query: answer with the current binding.
        let mut resp = reply(200, "OK");
        if let Some(r) = core.registrar.lookup(&user) {
            let left = r
                .expires_at
                .saturating_duration_since(Instant::now())
                .as_secs();
            resp.push("Contact", format!("<{}>;expires={left}", r.contact));
        }
        return core.txs.respond(&tx, resp).await;
    }
    let contact = contact.unwrap_or_default();
    if expires == 0 || contact.trim() == "*" {
        core.registrar
            .by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
        tracing::info!(%user, "unregistered");
        return core.txs.respond(&tx, reply(200, "OK")).await;
    }
    if expires < u64::from(config.register_min_expires_secs) {
        let resp = reply(423, "Interval Too Brief")
            .header("Min-Expires", config.register_min_expires_secs.to_string());
        return core.txs.respond(&tx, resp).await;
    }
    let expires = expires.min(u64::from(config.register_max_expires_secs));
    let binding = Registration {
        contact: uri_of(contact).to_string(),
        peer,
        expires_at: Instant::now() + Duration::from_secs(expires),
    };
    let refused = {
        let mut regs = core
            .registrar
            .by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let live_elsewhere = regs
            .get(&user)
            .is_some_and(|r| r.expires_at > Instant::now() && r.peer.addr != peer.addr);
        if live_elsewhere && !config.register_replace {
            true
        } else {
            if live_elsewhere {
                tracing::info!(%user, source = %peer.addr, "registration replaced");
            }
            regs.insert(user.clone(), binding.clone());
            false
        }
    };
    if refused {
        tracing::info!(%user, source = %peer.addr, "REGISTER refused: registered elsewhere and replace is off");
        return core
            .txs
            .respond(&tx, reply(403, "Registered Elsewhere"))
            .await;
    }
    tracing::info!(%user, contact = %binding.contact, expires, "registered");
    let resp = reply(200, "OK").header(
        "Contact",
        format!("<{}>;expires={expires}", binding.contact),
    );
    core.txs.respond(&tx, resp).await;
}
