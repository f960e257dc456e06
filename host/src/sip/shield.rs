//! The shield: what a packet meets before the switch spends anything on it.
//!
//! - **Address lists**: a denied source (address or CIDR) is dropped unread; an
//!   allowed one is never banned.
//! - **Bans**: a banned source's packets are dropped before parsing, until the ban
//!   lapses or an operator lifts it. Every ban says why and since when.
//! - **Flood control** (as Kamailio's pike): each source may send `flood_limit`
//!   packets per `flood_window_ms`; past that it is banned for `flood_ban_secs`.
//!   Known peers (gateways, registered phones) are exempt when `exempt_known`.
//! - **Scanners**: a request whose User-Agent names a scanner is dropped silently
//!   and its source banned.
//!
//! All of it is one hash lookup under one lock per packet: a flood of tens of
//! thousands of packets a second from one address costs little more than reading
//! them, and customers calling from elsewhere are not held up behind it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Shield settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShieldConfig {
    /// Packets one source may send per window before it is banned; 0 = no limit.
    pub flood_limit: u32,
    /// The window, ms.
    pub flood_window_ms: u32,
    /// How long a flooding source stays banned, s.
    pub flood_ban_secs: u32,
    /// Known peers (mapping and routing gateways, registered phones) are never
    /// banned for flooding or for their User-Agent.
    pub exempt_known: bool,
    /// User-Agent substrings (case-insensitive) that mark a scanner.
    pub scanner_user_agents: Vec<String>,
    /// How long a scanner's source stays banned, s.
    pub scanner_ban_secs: u32,
    /// Sources (addresses or CIDR blocks) whose packets are dropped unread.
    pub deny: Vec<IpNet>,
    /// Sources never banned (and never dropped, unless also denied).
    pub allow: Vec<IpNet>,
    /// Sources tracked at once; past it, the quietest are forgotten first.
    pub max_tracked_sources: usize,
}

/// Scanners' User-Agents as operators list them (SIPVicious and its clones, sipcli,
/// VaxSIPUserAgent, and the rest seen in the wild).
pub const DEFAULT_SCANNER_USER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sip-scan",
    "sipcli",
    "vaxsipuseragent",
    "vaxipuseragent",
    "sundayddr",
    "iwar",
    "sivus",
    "smap",
    "siparmyknife",
    "pplsip",
    "gulp",
    "sipptk",
];

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            flood_limit: 200,
            flood_window_ms: 2_000,
            flood_ban_secs: 300,
            exempt_known: true,
            scanner_user_agents: DEFAULT_SCANNER_USER_AGENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            scanner_ban_secs: 3_600,
            deny: Vec::new(),
            allow: Vec::new(),
            max_tracked_sources: 100_000,
        }
    }
}

/// A ban, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub address: IpAddr,
    /// Why: flooding, a scanner's User-Agent, or an operator's note.
    pub reason: String,
    /// Unix ms.
    pub since_ms: u64,
    /// Unix ms; the ban lapses then.
    pub until_ms: u64,
    /// Packets dropped under this ban.
    pub dropped: u64,
}

/// What the shield has done, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShieldStats {
    pub bans_active: usize,
    pub bans_total: u64,
    pub dropped_denied: u64,
    pub dropped_banned: u64,
    pub dropped_scanner: u64,
    pub tracked_sources: usize,
}

/// Whether an address is a known peer; given by the SIP core, which knows the
/// gateways and the registrations.
pub type KnownPeers = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Where bans are kept across restarts (the store, given by the SIP core).
pub trait BanLog: Send + Sync {
    /// A ban was set.
    fn banned(&self, ban: &Ban);
    /// The ban of `ip` was lifted or lapsed.
    fn lifted(&self, ip: IpAddr);
}

#[derive(Debug, Default)]
struct Source {
    window_start_ms: u64,
    packets: u32,
    ban: Option<Ban>,
}

pub struct Shield {
    config: ShieldConfig,
    /// Scanner patterns, lower-cased once.
    scanners: Vec<String>,
    sources: Mutex<HashMap<IpAddr, Source>>,
    known: OnceLock<KnownPeers>,
    ban_log: OnceLock<Arc<dyn BanLog>>,
    last_prune_ms: AtomicU64,
    bans_total: AtomicU64,
    dropped_denied: AtomicU64,
    dropped_banned: AtomicU64,
    dropped_scanner: AtomicU64,
}

impl Shield {
    pub fn new(config: ShieldConfig) -> Shield {
        Shield {
            scanners: config
                .scanner_user_agents
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            config,
            sources: Mutex::default(),
            known: OnceLock::new(),
            ban_log: OnceLock::new(),
            last_prune_ms: AtomicU64::new(0),
            bans_total: AtomicU64::new(0),
            dropped_denied: AtomicU64::new(0),
            dropped_banned: AtomicU64::new(0),
            dropped_scanner: AtomicU64::new(0),
        }
    }

    /// Tell the shield who the known peers are (once, when the core exists).
    pub fn set_known_peers(&self, known: KnownPeers) {
        let _ = self.known.set(known);
    }

    /// Keep bans in `log` from now on, and put back the ones it kept that are still
    /// in force at `now_ms` (lapsed ones are forgotten there).
    pub fn keep_bans(&self, log: Arc<dyn BanLog>, kept: Vec<Ban>, now_ms: u64) {
        {
            let mut sources = self.lock();
            for ban in kept {
                if ban.until_ms > now_ms {
                    let address = ban.address;
                    sources.entry(address).or_default().ban = Some(ban);
                } else {
                    log.lifted(ban.address);
                }
            }
        }
        let _ = self.ban_log.set(log);
    }

    /// Whether `ip` is a known peer.
    pub fn is_known(&self, ip: IpAddr) -> bool {
        self.known.get().is_some_and(|known| known(ip))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Source>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.config.allow.iter().any(|net| net.contains(&ip))
            || (self.config.exempt_known && self.is_known(ip))
    }

    /// Whether a packet from `ip` may be read at all; counts it against the source's
    /// flood limit, banning the source when it goes over.
    pub fn admit(&self, ip: IpAddr, now_ms: u64) -> bool {
        if self.config.deny.iter().any(|net| net.contains(&ip)) {
            self.dropped_denied.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut sources = self.lock();
        if let Some(ban) = sources.get_mut(&ip).and_then(|s| s.ban.as_mut()) {
            if ban.until_ms > now_ms {
                ban.dropped += 1;
                self.dropped_banned.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            tracing::info!(source = %ip, reason = %ban.reason, dropped = ban.dropped, "ban lapsed");
            // Forgotten with its ban: its count starts afresh.
            sources.remove(&ip);
            if let Some(log) = self.ban_log.get() {
                log.lifted(ip);
            }
        }
        // Without flood control a source is tracked only once banned.
        if self.config.flood_limit == 0 {
            return true;
        }
        let source = sources.entry(ip).or_default();
        if now_ms.saturating_sub(source.window_start_ms) >= u64::from(self.config.flood_window_ms) {
            source.window_start_ms = now_ms;
            source.packets = 0;
        }
        source.packets += 1;
        let over = source.packets > self.config.flood_limit;
        let tracked = sources.len();
        drop(sources);
        if tracked > self.config.max_tracked_sources {
            self.prune(now_ms);
        }
        if !over {
            return true;
        }
        // Over the limit: a known peer is only busy (asked once per window, not per
        // packet: the count is reset below).
        if self.exempt(ip) {
            if let Some(source) = self.lock().get_mut(&ip) {
                source.window_start_ms = now_ms;
                source.packets = 0;
            }
            return true;
        }
        let reason = format!(
            "flood: over {} packets in {} ms",
            self.config.flood_limit, self.config.flood_window_ms
        );
        self.ban(ip, reason, self.config.flood_ban_secs, now_ms);
        false
    }

    /// Whether a request with this User-Agent is a scanner's; if so its source is
    /// banned (unless exempt) and the request must be dropped.
    pub fn is_scanner(&self, ip: IpAddr, user_agent: Option<&str>, now_ms: u64) -> bool {
        let Some(agent) = user_agent else {
            return false;
        };
        let lower = agent.to_ascii_lowercase();
        let Some(pattern) = self.scanners.iter().find(|p| lower.contains(p.as_str())) else {
            return false;
        };
        if self.exempt(ip) {
            return false;
        }
        self.dropped_scanner.fetch_add(1, Ordering::Relaxed);
        let agent: String = agent.chars().take(80).collect();
        let reason = format!("scanner: User-Agent {agent:?} matches {pattern:?}");
        self.ban(ip, reason, self.config.scanner_ban_secs, now_ms);
        true
    }

    /// Ban `ip` for `secs` (an operator's ban, or the shield's own).
    pub fn ban(&self, ip: IpAddr, reason: String, secs: u32, now_ms: u64) -> Ban {
        let ban = Ban {
            address: ip,
            reason,
            since_ms: now_ms,
            until_ms: now_ms + u64::from(secs) * 1_000,
            dropped: 0,
        };
        tracing::warn!(source = %ip, reason = %ban.reason, secs, "source banned");
        self.bans_total.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(ip).or_default().ban = Some(ban.clone());
        if let Some(log) = self.ban_log.get() {
            log.banned(&ban);
        }
        ban
    }

    /// Lift the ban on `ip`, and forget its count so far; whether there was a ban.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let lifted = self.lock().remove(&ip).is_some_and(|s| s.ban.is_some());
        if lifted {
            tracing::info!(source = %ip, "ban lifted");
            if let Some(log) = self.ban_log.get() {
                log.lifted(ip);
            }
        }
        lifted
    }

    /// The bans in force, oldest first.
    pub fn bans(&self, now_ms: u64) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .lock()
            .values()
            .filter_map(|s| s.ban.clone())
            .filter(|b| b.until_ms > now_ms)
            .collect();
        bans.sort_by_key(|b| (b.since_ms, b.address));
        bans
    }

    pub fn stats(&self, now_ms: u64) -> ShieldStats {
        let sources = self.lock();
        ShieldStats {
            bans_active: sources
                .values()
                .filter(|s| s.ban.as_ref().is_some_and(|b| b.until_ms > now_ms))
                .count(),
            bans_total: self.bans_total.load(Ordering::Relaxed),
            dropped_denied: self.dropped_denied.load(Ordering::Relaxed),
            dropped_banned: self.dropped_banned.load(Ordering::Relaxed),
            dropped_scanner: self.dropped_scanner.load(Ordering::Relaxed),
            tracked_sources: sources.len(),
        }
    }

    /// Forget sources with no ban in force and no packet this window, at most once a
    /// window, so a spoofed-source flood costs one sweep per window, not per packet;
    /// at twice the bound, forget every unbanned source at once.
    fn prune(&self, now_ms: u64) {
        let window = u64::from(self.config.flood_window_ms.max(1));
        {
            let mut sources = self.lock();
            if sources.len() > self.config.max_tracked_sources.saturating_mul(2) {
                sources.retain(|_, s| s.ban.is_some());
                return;
            }
        }
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < window
            || self
                .last_prune_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut sources = self.lock();
        let log = self.ban_log.get();
        sources.retain(|ip, s| {
            let lapsed = s.ban.as_ref().is_some_and(|b| b.until_ms <= now_ms);
            if lapsed {
                if let Some(log) = log {
                    log.lifted(*ip);
                }
            }
            s.ban.as_ref().is_some_and(|b| b.until_ms > now_ms)
                || now_ms.saturating_sub(s.window_start_ms) < window
        });
        if sources.len() > self.config.max_tracked_sources {
            // Still full of live sources: forget unbanned ones, whatever their count.
            sources.retain(|_, s| s.ban.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn shield(limit: u32) -> Shield {
        Shield::new(ShieldConfig {
            flood_limit: limit,
            flood_window_ms: 1_000,
            flood_ban_secs: 10,
            ..ShieldConfig::default()
        })
    }

    #[test]
    fn a_source_over_its_limit_is_banned_and_dropped_until_the_ban_lapses() {
        let shield = shield(3);
        let flooder = ip("127.0.0.3");
        assert!((0..3).all(|_| shield.admit(flooder, 1_000)));
        assert!(!shield.admit(flooder, 1_000), "the fourth in the window");
        assert!(!shield.admit(flooder, 5_000), "banned past the window");
        let bans = shield.bans(5_000);
        assert_eq!(bans.len(), 1);
        assert_eq!((bans[0].address, bans[0].since_ms), (flooder, 1_000));
        assert!(bans[0].reason.starts_with("flood"), "{}", bans[0].reason);
        assert_eq!(bans[0].dropped, 1);
        // Another source is untouched, and the ban lapses after 10 s.
        assert!(shield.admit(ip("127.0.0.2"), 5_000));
        assert!(shield.admit(flooder, 11_001));
        assert!(shield.bans(11_001).is_empty());
    }

    #[test]
    fn the_count_starts_again_each_window() {
        let shield = shield(3);
        let phone = ip("127.0.0.4");
        for second in 0..10u64 {
            assert!((0..3).all(|_| shield.admit(phone, second * 1_000)));
        }
        assert!(shield.bans(10_000).is_empty());
    }

    #[test]
    fn known_and_allowed_peers_are_never_banned_and_denied_ones_never_read() {
        let shield = Shield::new(ShieldConfig {
            flood_limit: 2,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["192.0.2.0/24".parse().unwrap()],
            ..ShieldConfig::default()
        });
        let gateway = ip("127.0.0.5");
        shield.set_known_peers(Arc::new(move |a| a == gateway));
        assert!((0..100).all(|_| shield.admit(gateway, 0)));
        assert!((0..100).all(|_| shield.admit(ip("10.1.2.3"), 0)));
        assert!(!shield.is_scanner(gateway, Some("friendly-scanner"), 0));
        assert!(!shield.admit(ip("192.0.2.7"), 0));
        assert_eq!(shield.stats(0).dropped_denied, 1);
        assert!(shield.bans(0).is_empty());
    }

    #[test]
    fn a_scanners_user_agent_bans_its_source_and_an_operator_can_lift_it() {
        let shield = shield(0);
        let scanner = ip("127.0.0.6");
        assert!(!shield.is_scanner(scanner, Some("Linphone/5.0"), 0));
        assert!(!shield.is_scanner(scanner, None, 0));
        assert!(shield.is_scanner(scanner, Some("Friendly-Scanner 1.0"), 0));
        assert!(!shield.admit(scanner, 1));
        assert!(shield.bans(1)[0].reason.contains("friendly-scanner"));
        assert!(shield.unban(scanner));
        assert!(shield.admit(scanner, 2));
        assert!(!shield.unban(scanner));
    }

    #[test]
    fn without_flood_control_only_banned_sources_are_tracked() {
        let shield = shield(0);
        for i in 0..1_000u32 {
            assert!(shield.admit(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), 0));
        }
        assert_eq!(shield.stats(0).tracked_sources, 0);
        shield.ban(ip("127.0.0.7"), "by hand".into(), 1, 0);
        assert!(!shield.admit(ip("127.0.0.7"), 500));
        assert!(shield.admit(ip("127.0.0.7"), 1_000), "lapsed");
        assert_eq!(shield.stats(1_000).tracked_sources, 0);
    }

    #[test]
    fn tracking_stays_bounded_under_spoofed_sources() {
        let shield = Shield::new(ShieldConfig {
            max_tracked_sources: 1_000,
            flood_window_ms: 1_000,
            ..ShieldConfig::default()
        });
        for i in 0..50_000u32 {
            let spoofed = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            shield.admit(spoofed, u64::from(i / 10_000) * 1_000);
        }
        assert!(shield.stats(5_000).tracked_sources <= 2_001);
    }
}
