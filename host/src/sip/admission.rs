//! Who may call, and how much: the mapping gateway a new INVITE belongs to (by source
//! address and optional tech prefix), its calls-per-second and concurrent-call limits.
//! A call that is admitted holds a [`Slot`]; dropping it frees the concurrent place.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::Store;
use switchyard_model::{Account, MappingGateway};

/// The verdict on a new call.
pub enum Admit {
    /// Accepted, on this gateway.
    Accepted {
        /// Mapping gateway id.
        gateway_id: String,
        /// The gateway (boxed: it is much larger than the other verdicts).
        gateway: Box<MappingGateway>,
        /// The callee with the gateway's tech prefix removed.
        callee: String,
        /// Holds the concurrent-call place.
        slot: Slot,
    },
    /// No mapping gateway matches.
    Unknown,
    /// A limit refused it; the text goes in the 503's Reason header.
    Limited {
        /// Why.
        why: String,
        /// The gateway whose limit it was (id, gateway), when one matched.
        gateway: Option<Box<(String, MappingGateway)>>,
    },
}

impl Admit {
    fn limited(why: impl Into<String>) -> Admit {
        Admit::Limited {
            why: why.into(),
            gateway: None,
        }
    }
}

#[derive(Default)]
struct GatewayUse {
    recent: VecDeque<Instant>,
    active: u32,
}

/// Admission state.
pub struct Admission {
    store: Store,
    usage: Arc<Mutex<HashMap<String, GatewayUse>>>,
}

/// A concurrent-call place on a mapping gateway and on its account.
pub struct Slot {
    gateway: String,
    account: String,
    usage: Arc<Mutex<HashMap<String, GatewayUse>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        for key in [&self.gateway, &self.account] {
            if let Some(u) = usage.get_mut(key) {
                u.active = u.active.saturating_sub(1);
            }
        }
    }
}

impl Admission {
    /// Admission over the carrier objects in `store`.
    pub fn new(store: Store) -> Admission {
        Admission {
            store,
            usage: Arc::default(),
        }
    }

    /// Gateways and accounts with usage tracked, and calls counted active over them.
    pub fn tracked(&self) -> (usize, u64) {
        let usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        (
            usage.len(),
            usage.values().map(|u| u64::from(u.active)).sum(),
        )
    }

    /// Calls in progress of an account (over all its gateways).
    pub fn account_calls(&self, account: &str) -> u32 {
        let usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage
            .get(&format!("account:{account}"))
            .map_or(0, |u| u.active)
    }

    /// Decide on a new call from `source` to `callee`.
    pub fn admit(&self, source: IpAddr, callee: &str) -> Admit {
        let gateways = match self.store.carrier_snapshot::<MappingGateway>() {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "reading mapping gateways");
                return Admit::limited("configuration unavailable");
            }
        };
        // A gateway with a matching tech prefix wins over one without.
        let found = gateways
            .iter()
            .filter(|(_, g)| g.matches_source(source))
            .filter_map(|(id, g)| match &g.tech_prefix {
                Some(p) => callee.strip_prefix(p.as_str()).map(|rest| (1, id, rest, g)),
                None => Some((0, id, callee, g)),
            })
            .max_by_key(|(rank, ..)| *rank);
        let Some((_, gateway_id, callee, gateway)) = found else {
            return Admit::Unknown;
        };
        self.limit(gateway_id.clone(), gateway.clone(), callee.to_string())
    }

    /// Admit a call on a known gateway (an authenticated phone's), applying its limits.
    pub fn admit_on(&self, gateway_id: &str, callee: &str) -> Admit {
        match self.store.carrier_get::<MappingGateway>(gateway_id) {
            Ok(Some(gateway)) => self.limit(gateway_id.to_string(), gateway, callee.to_string()),
            _ => Admit::limited(format!("mapping gateway {gateway_id:?} is missing")),
        }
    }

    fn limit(&self, gateway_id: String, gateway: MappingGateway, callee: String) -> Admit {
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let u = usage.entry(gateway_id.clone()).or_default();
        while u
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            u.recent.pop_front();
        }
        let (recent, active) = (u.recent.len(), u.active);
        // The account's concurrent calls count across all its gateways.
        let account_key = format!("account:{}", gateway.account);
        let account_limit = self
            .store
            .carrier_get::<Account>(&gateway.account)
            .ok()
            .flatten()
            .map_or(0, |a| a.max_calls);
        let account_active = usage.get(&account_key).map_or(0, |u| u.active);
        let refused = if gateway.cps_limit > 0 && recent >= gateway.cps_limit as usize {
            Some(format!("CPS limit {} reached", gateway.cps_limit))
        } else if gateway.max_calls > 0 && active >= gateway.max_calls {
            Some(format!(
                "concurrent call limit {} reached",
                gateway.max_calls
            ))
        } else if account_limit > 0 && account_active >= account_limit {
            Some(format!(
                "account concurrent call limit {account_limit} reached"
            ))
        } else {
            None
        };
        if let Some(why) = refused {
            return Admit::Limited {
                why,
                gateway: Some(Box::new((gateway_id, gateway))),
            };
        }
        if let Some(u) = usage.get_mut(&gateway_id) {
            u.recent.push_back(now);
            u.active += 1;
        }
        usage.entry(account_key.clone()).or_default().active += 1;
        Admit::Accepted {
            slot: Slot {
                gateway: gateway_id.clone(),
                account: account_key,
                usage: self.usage.clone(),
            },
            gateway_id,
            gateway: Box::new(gateway),
            callee,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Admission decisions over a real store in a temporary folder; no sockets.
    use super::*;

    struct Fixture {
        admission: Admission,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Admission over `gateways` (id, gateway) and an account "acct" with `max_calls`.
    fn fixture(tag: &str, gateways: &[(&str, MappingGateway)], max_calls: u32) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("switchyard-admit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("a store");
        let account = Account {
            tenant: "t".into(),
            max_calls,
            ..Account::default()
        };
        store.carrier_put("acct", &account).expect("the account");
        for (id, g) in gateways {
            store.carrier_put(id, g).expect("a gateway");
        }
        Fixture {
            admission: Admission::new(store),
            dir,
        }
    }

    fn gateway(sources: &[&str], tech_prefix: Option<&str>) -> MappingGateway {
        MappingGateway {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            tech_prefix: tech_prefix.map(str::to_string),
            ..MappingGateway::for_account("t", "acct")
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn refused(admit: &Admit) -> Option<&str> {
        match admit {
            Admit::Limited { why, .. } => Some(why),
            _ => None,
        }
    }

    #[test]
    fn the_source_picks_the_gateway_and_a_matching_tech_prefix_wins() {
        let f = fixture(
            "prefix",
            &[
                ("plain", gateway(&["127.0.0.2"], None)),
                ("prefixed", gateway(&["127.0.0.0/24"], Some("99#"))),
            ],
            0,
        );
        let Admit::Accepted {
            gateway_id, callee, ..
        } = f.admission.admit(ip("127.0.0.2"), "99#4420")
        else {
            panic!("a known source is accepted");
        };
        assert_eq!((gateway_id.as_str(), callee.as_str()), ("prefixed", "4420"));
        let Admit::Accepted {
            gateway_id, callee, ..
        } = f.admission.admit(ip("127.0.0.2"), "4420")
        else {
            panic!("a known source is accepted");
        };
        assert_eq!((gateway_id.as_str(), callee.as_str()), ("plain", "4420"));
        assert!(matches!(
            f.admission.admit(ip("127.0.0.9"), "4420"),
            Admit::Unknown
        ));
        assert!(matches!(
            f.admission.admit(ip("10.0.0.1"), "99#4420"),
            Admit::Unknown
        ));
    }

    #[test]
    fn a_gateways_cps_limit_refuses_the_call_past_it_within_one_second() {
        let cps = MappingGateway {
            cps_limit: 2,
            ..gateway(&["127.0.0.2"], None)
        };
        let f = fixture("cps", &[("gw", cps)], 0);
        let first = f.admission.admit(ip("127.0.0.2"), "1");
        let second = f.admission.admit(ip("127.0.0.2"), "2");
        assert!(refused(&first).is_none() && refused(&second).is_none());
        let third = f.admission.admit(ip("127.0.0.2"), "3");
        assert_eq!(refused(&third), Some("CPS limit 2 reached"));
    }

    #[test]
    fn concurrent_limits_hold_until_a_slot_is_dropped() {
        let one_at_a_time = MappingGateway {
            max_calls: 1,
            ..gateway(&["127.0.0.2"], None)
        };
        let f = fixture("concurrent", &[("gw", one_at_a_time)], 0);
        let held = f.admission.admit(ip("127.0.0.2"), "1");
        assert!(matches!(held, Admit::Accepted { .. }));
        let busy = f.admission.admit(ip("127.0.0.2"), "2");
        assert_eq!(refused(&busy), Some("concurrent call limit 1 reached"));
        drop(held);
        assert!(matches!(
            f.admission.admit(ip("127.0.0.2"), "3"),
            Admit::Accepted { .. }
        ));
        assert_eq!(
            f.admission.tracked().1,
            0,
            "every slot dropped frees its places"
        );
    }

    #[test]
    fn an_accounts_limit_counts_its_calls_over_all_its_gateways() {
        let f = fixture(
            "account",
            &[
                ("gw-a", gateway(&["127.0.0.2"], None)),
                ("gw-b", gateway(&["127.0.0.3"], None)),
            ],
            1,
        );
        let held = f.admission.admit(ip("127.0.0.2"), "1");
        assert!(matches!(held, Admit::Accepted { .. }));
        assert_eq!(f.admission.account_calls("acct"), 1);
        let other = f.admission.admit(ip("127.0.0.3"), "2");
        assert_eq!(
            refused(&other),
            Some("account concurrent call limit 1 reached")
        );
        drop(held);
        assert_eq!(f.admission.account_calls("acct"), 0);
    }
}
