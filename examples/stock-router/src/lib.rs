//! The stock router: VOS3000-style routing, identity headers and failover, written
//! with the public SDK like any carrier's module. It holds logic only; the data is
//! the host's, set over REST:
//!
//! - data table `routes`: rows `prefix, gateway[, priority[, period]]` (the priority,
//!   when given, overrides the gateway's own for that prefix; a period limits the
//!   route to when the account's work calendar is in it);
//! - routing gateways (`/api/v1/routing-gateways`): priority, capacity, groups, dial
//!   plans, tech prefix, P-Asserted-Identity / Privacy / P-Preferred-Identity modes,
//!   caller pool, extra headers, protect route, switch-until-connect and stop codes;
//! - mapping gateways (`/api/v1/mapping-gateways`): support privacy, switch limit,
//!   LCR order, minimum profit and the ASR threshold;
//! - gateway groups (`/api/v1/gateway-groups`): shared capacity and reserved lines.
//!
//! [`plan`] builds the ordered attempts ([`groups`] keeps reserved lines), [`identity`]
//! and [`headers`] the headers each carries, and [`failover`] decides after a failed
//! attempt. Why each gateway was chosen or skipped goes to the module log, which
//! `simulate` shows.

pub mod failover;
pub mod groups;
pub mod headers;
pub mod identity;
pub mod plan;

use switchyard_sdk::{Attempt, Call, Decision, Host, NextStep, Outcome, Policy};

pub struct StockRouter;

impl Policy for StockRouter {
    fn route(host: &dyn Host, call: &Call) -> Decision {
        plan::route(host, call)
    }

    fn on_attempt_failed(
        host: &dyn Host,
        _call: &Call,
        attempt: &Attempt,
        outcome: &Outcome,
    ) -> NextStep {
        failover::next_step(host, attempt, outcome)
    }
}

switchyard_sdk::export_policy!(StockRouter);

#[cfg(test)]
pub(crate) mod test_support {
    use switchyard_sdk::{Call, Caller, CallerHeader, Gateway, Header};

    /// A call from 1000 to `callee` through mapping gateway `customer`.
    pub fn call(callee: &str) -> Call {
        Call {
            call_id: "c1".into(),
            account: "acme".into(),
            tenant: "default".into(),
            ingress_gateway: "customer".into(),
            source_address: "127.0.0.1:5060".into(),
            caller: Caller {
                user: "1000".into(),
                display: None,
                source: CallerHeader::From,
            },
            callee: callee.into(),
            request_uri: format!("sip:{callee}@192.0.2.1:5060"),
            headers: vec![Header {
                name: "P-Asserted-Identity".into(),
                value: "<sip:1000@customer.example>".into(),
            }],
            codecs: vec!["PCMA".into()],
            arrived_at_ms: 0,
        }
    }

    /// A live gateway record: `up`, `calls` of `capacity`, `priority`.
    pub fn gateway(id: &str, up: bool, calls: u32, capacity: u32, priority: u32) -> Gateway {
        Gateway {
            id: id.into(),
            groups: Vec::new(),
            up,
            capacity,
            current_calls: calls,
            asr: 0.0,
            acd_secs: 0.0,
            window_secs: 300,
            priority,
        }
    }
}
