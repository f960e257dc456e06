//! The candidate list, in the order of the spec's decision 14: routes matching the
//! callee (and, when a route names a period, the account's work calendar being in
//! it), longest prefix first (a shorter prefix's gateways follow as fallback); within
//! a prefix by priority, then the customer's sort key (cost or ASR), then line usage,
//! and its protect routes after its normal ones; gateways that are unknown, down or
//! full are skipped; a gateway group's reserved lines are not for the first attempt;
//! the caller's mapping gateway may cap how many are tried.

use switchyard_sdk::numbers::apply_gateway_rules;
use switchyard_sdk::{
    Attempt, Call, Decision, Gateway, Host, Level, MappingSettings, RouteBy, RoutingSettings, Row,
};

use crate::groups::Groups;
use crate::{headers, identity};

/// The data table of routes: `prefix, gateway[, priority[, period]]`.
pub const ROUTES_TABLE: &str = "routes";

/// Most route rows one call reads (every prefix of the callee that has routes).
pub const MAX_ROUTE_ROWS: u32 = 64;

/// One routing gateway the call may try.
struct Candidate {
    live: Gateway,
    settings: RoutingSettings,
    /// The route's priority for this prefix (the gateway's own unless the row sets one).
    priority: u32,
    /// The vendor's cost per minute for the callee, when the order or a profit rule
    /// needs it and its cost table has the number.
    cost: Option<f64>,
    /// Its recent answer-seizure ratio, once it has had enough attempts to count.
    asr: Option<f32>,
    /// Its answer-seizure ratio is below the customer's threshold: it goes after the
    /// rest of its prefix.
    demoted: bool,
}

impl Candidate {
    /// Calls in progress over capacity (0 when unlimited): the emptier goes first.
    fn usage(&self) -> f64 {
        match self.live.capacity {
            0 => 0.0,
            c => f64::from(self.live.current_calls) / f64::from(c),
        }
    }

    /// What ordered it, for the module log: `v-a (priority 1, cost 0.03, ASR 0.50, 2 of
    /// 10 lines busy)`, naming cost and ASR only where they were read.
    fn describe(&self) -> String {
        let mut keys = vec![format!("priority {}", self.priority)];
        if let Some(cost) = self.cost {
            keys.push(format!("cost {cost}"));
        }
        if let Some(asr) = self.asr {
            keys.push(format!("ASR {asr:.2}"));
        }
        let (calls, capacity) = (self.live.current_calls, self.live.capacity);
        keys.push(format!("{calls} of {capacity} lines busy"));
        format!("{} ({})", self.live.id, keys.join(", "))
    }

    /// Its place within its prefix: protect routes after the normal ones, and a
    /// gateway demoted for its ASR after the rest of its kind; then priority, the
    /// customer's sort key (cost, unknown last; or ASR, highest first, unmeasured as
    /// 1), usage.
    fn sort_key(&self, order: RouteBy) -> (bool, bool, u32, f64, f64) {
        let rank = match order {
            RouteBy::Priority => 0.0,
            RouteBy::Cost => self.cost.unwrap_or(f64::INFINITY),
            RouteBy::Asr => -f64::from(self.asr.unwrap_or(1.0)),
        };
        let protect = self.settings.protect;
        (protect, self.demoted, self.priority, rank, self.usage())
    }
}

/// What else decides a call's routes: the customer's order and profit rule, and the
/// periods its account's work calendar is in now.
struct Terms {
    order: RouteBy,
    /// (customer's rate per minute, least profit per minute) when a profit rule applies.
    floor: Option<(f64, f64)>,
    /// Read only when a route names a period.
    periods: Vec<String>,
    /// Attempts in the statistics window before a gateway's ASR counts.
    asr_min_attempts: u64,
    /// Demote a gateway whose counted ASR is below this.
    asr_threshold: Option<f32>,
}

impl Terms {
    fn of(host: &dyn Host, call: &Call, customer: Option<&MappingSettings>, rows: &[Row]) -> Terms {
        let order = customer.map_or(RouteBy::Priority, |m| m.route_by);
        let floor = customer.and_then(|m| m.min_profit).and_then(|margin| {
            let rate = host.customer_rate(&call.account, &call.callee).ok()??;
            Some((rate.per_minute, margin))
        });
        let periods = match rows.iter().any(|r| period_of(r).is_some()) {
            true => host.account_periods(&call.account, host.now_ms()),
            false => Vec::new(),
        };
        Terms {
            order,
            floor,
            periods,
            asr_min_attempts: customer.map_or(0, |m| u64::from(m.asr_min_attempts)),
            asr_threshold: customer.and_then(|m| m.asr_threshold),
        }
    }

    fn needs_cost(&self) -> bool {
        self.order == RouteBy::Cost || self.floor.is_some()
    }

    fn needs_asr(&self) -> bool {
        self.order == RouteBy::Asr || self.asr_threshold.is_some()
    }
}

/// `route`: the attempts in order, or why there are none.
pub fn route(host: &dyn Host, call: &Call) -> Decision {
    let rows = match host.table_prefixes(ROUTES_TABLE, &call.callee, MAX_ROUTE_ROWS) {
        Ok(rows) => rows,
        Err(e) => return Decision::reject(503, format!("routes table: {e:?}")),
    };
    if rows.is_empty() {
        host.log(Level::Info, &format!("no route for {}", call.callee));
        return Decision::reject(404, "No route");
    }
    let customer = host.mapping_gateway(&call.ingress_gateway).ok();
    let terms = Terms::of(host, call, customer.as_ref(), &rows);
    let ordered = candidates(host, call, &terms, &rows);
    // Group capacity: the first attempt leaves a group's reserved lines alone.
    let mut groups = Groups::new(host);
    let mut admitted = Vec::with_capacity(ordered.len());
    for c in ordered {
        let first = admitted.is_empty() && !c.settings.protect;
        match groups.refusal(&c.live.groups, first) {
            Some(why) => host.log(Level::Info, &format!("skip {}: {why}", c.live.id)),
            None => admitted.push(c),
        }
    }
    let limit = customer.as_ref().map_or(0, |m| m.switch_limit);
    let supports_privacy = customer.as_ref().is_some_and(|m| m.support_privacy);
    if limit > 0 && admitted.len() > limit as usize {
        host.log(
            Level::Info,
            &format!("switch limit {limit}: later gateways dropped"),
        );
        admitted.truncate(limit as usize);
    }
    let attempts: Vec<Attempt> = admitted
        .iter()
        .filter_map(|c| {
            let attempt = numbers(host, call, c)?;
            host.log(Level::Info, &format!("try {}", c.describe()));
            let attempt = identity::apply(call, supports_privacy, &c.settings, attempt);
            Some(headers::pass_extra(
                call,
                &c.settings.extra_headers,
                attempt,
            ))
        })
        .collect();
    if attempts.is_empty() {
        return Decision::reject(503, "All gateways busy");
    }
    Decision::Attempts(attempts)
}

/// The attempt on `c` with its numbers, in VOS3000's order: the callee through the
/// gateway's callee rules, then its tech prefix; the caller replaced by a number of
/// the gateway's pool (borrowed for the call), then through its caller rules. None
/// when the pool is required and every number is at its limit.
fn numbers(host: &dyn Host, call: &Call, c: &Candidate) -> Option<Attempt> {
    let id = &c.live.id;
    let callee = apply_gateway_rules(&c.settings.callee_rules, &call.callee);
    let tech_prefix = c.settings.tech_prefix.as_deref().unwrap_or("");
    let mut attempt = Attempt::to(id, format!("{tech_prefix}{callee}"));
    let mut caller = call.caller.user.clone();
    if let Some(pool) = &c.settings.caller_pool {
        match host.lease_caller_number(id) {
            Ok(Some(number)) => caller = number,
            _ if pool.required => {
                host.log(
                    Level::Info,
                    &format!("skip {id}: every pool number is in use"),
                );
                return None;
            }
            _ => {}
        }
    }
    let caller = apply_gateway_rules(&c.settings.caller_rules, &caller);
    if caller != call.caller.user {
        attempt.caller = Some(caller);
    }
    Some(attempt)
}

/// The work-calendar period a route applies in (its fourth field), if it names one.
fn period_of(row: &Row) -> Option<&str> {
    row.fields
        .get(2)
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
}

/// Whether `row` names a protect route (unknown gateways count as normal).
fn is_protect(host: &dyn Host, row: &Row) -> bool {
    row.fields
        .first()
        .and_then(|id| host.routing_gateway(id).ok())
        .is_some_and(|s| s.protect)
}

/// The usable gateways of `rows` (longest prefix first) in the order they are tried.
fn candidates(host: &dyn Host, call: &Call, terms: &Terms, rows: &[Row]) -> Vec<Candidate> {
    let mut ordered = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    // `table_prefixes` answers longest prefix first: each run of one key is a group.
    for group in rows.chunk_by(|a, b| a.key == b.key) {
        let mut usable: Vec<Candidate> = group
            .iter()
            .filter_map(|row| {
                let id = row.fields.first()?;
                if seen.contains(&id.as_str()) {
                    return None;
                }
                seen.push(id);
                usable(host, call, terms, id, row)
            })
            .collect();
        usable.sort_by(|a, b| {
            a.sort_key(terms.order)
                .partial_cmp(&b.sort_key(terms.order))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // Sorted, protect routes last: a protect route first means no normal one is
        // usable; the rows' settings are read again only then.
        if usable.first().is_some_and(|c| c.settings.protect)
            && group.iter().all(|r| is_protect(host, r))
        {
            // VOS3000 would try nothing here; the spec's decision 14 uses them, and says so.
            host.log(
                Level::Warn,
                &format!(
                    "every route of prefix {} is a protect route: they carry its normal traffic",
                    group[0].key
                ),
            );
        }
        ordered.extend(usable);
    }
    ordered
}

/// Gateway `id` of route `row` when it can take the call; otherwise None, with the
/// reason logged.
fn usable(host: &dyn Host, call: &Call, terms: &Terms, id: &str, row: &Row) -> Option<Candidate> {
    let skip = |why: &str| {
        host.log(
            Level::Info,
            &format!("skip {id} (prefix {}): {why}", row.key),
        );
        None
    };
    let (live, settings) = match (host.gateway(id), host.routing_gateway(id)) {
        (Ok(live), Ok(settings)) => (live, settings),
        _ => return skip("unknown gateway"),
    };
    let customer = &call.ingress_gateway;
    let allowed = &settings.allowed_customers;
    if (!allowed.is_empty() && !allowed.contains(customer))
        || settings.blocked_customers.contains(customer)
    {
        return skip(&format!("not for customer {customer}"));
    }
    if let Some(period) = period_of(row) {
        if !terms.periods.iter().any(|p| p == period) {
            return skip(&format!("only in period {period}"));
        }
    }
    if !live.up {
        return skip("down");
    }
    if live.capacity > 0 && live.current_calls >= live.capacity {
        return skip("at capacity");
    }
    let cost = match terms.needs_cost() {
        true => host
            .vendor_cost(id, &call.callee)
            .ok()
            .flatten()
            .map(|r| r.per_minute),
        false => None,
    };
    if let (Some(cost), Some((rate, margin))) = (cost, terms.floor) {
        if cost > rate - margin {
            return skip(&format!(
                "cost {cost} is above the customer's rate {rate} less {margin}"
            ));
        }
    }
    let asr = match terms.needs_asr() {
        true => host
            .gateway_traffic(id)
            .ok()
            .filter(|t| t.attempts >= terms.asr_min_attempts)
            .map(|t| t.asr),
        false => None,
    };
    let demoted = match (asr, terms.asr_threshold) {
        (Some(asr), Some(threshold)) if asr < threshold => {
            host.log(
                Level::Info,
                &format!(
                    "{id}: ASR {asr:.2} is below {threshold}, tried after the rest of prefix {}",
                    row.key
                ),
            );
            true
        }
        _ => false,
    };
    let priority = match row
        .fields
        .get(1)
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        None => live.priority,
        Some(p) => p.parse().unwrap_or_else(|_| {
            // The routes table is plain data: a typo must show in simulate, not vanish.
            host.log(
                Level::Warn,
                &format!(
                    "route {},{id}: priority {p:?} is not a number; the gateway's {} applies",
                    row.key, live.priority
                ),
            );
            live.priority
        }),
    };
    Some(Candidate {
        live,
        settings,
        priority,
        cost,
        asr,
        demoted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{call, gateway};
    use switchyard_sdk::fake::{mapping_settings, routing_settings, FakeHost};

    /// Gateways a..e, all up and normal, plus `routes`.
    fn host(routes: &[(&str, &[&str])]) -> FakeHost {
        let mut host = FakeHost::new().with_table(ROUTES_TABLE, routes);
        for (id, priority) in [("a", 1), ("b", 2), ("c", 3), ("d", 1), ("e", 5)] {
            host = host
                .with_gateway_record(gateway(id, true, 0, 10, priority))
                .with_routing_settings(routing_settings(id));
        }
        host
    }

    fn gateways(decision: &Decision) -> Vec<(String, String)> {
        match decision {
            Decision::Attempts(a) => a
                .iter()
                .map(|a| (a.gateway.clone(), a.callee.clone()))
                .collect(),
            Decision::Reject(r) => vec![(r.code.to_string(), r.reason.clone())],
        }
    }

    fn ids(decision: &Decision) -> Vec<String> {
        gateways(decision).into_iter().map(|(g, _)| g).collect()
    }

    #[test]
    fn longest_prefix_first_then_priority_then_the_shorter_prefixes() {
        let host = host(&[
            ("44", &["d"]),
            ("4420", &["b"]),
            ("4420", &["a"]),
            ("4", &["e"]),
        ]);
        assert_eq!(
            ids(&route(&host, &call("442071234567"))),
            ["a", "b", "d", "e"]
        );
    }

    #[test]
    fn a_rows_priority_overrides_the_gateways_and_usage_breaks_ties() {
        // a's own priority 1 is 9 on this route; c's 3 is 2, level with the busier b.
        let host = FakeHost::new()
            .with_table(
                ROUTES_TABLE,
                &[("44", &["a", "9"]), ("44", &["b"]), ("44", &["c", "2"])],
            )
            .with_gateway_record(gateway("a", true, 0, 10, 1))
            .with_gateway_record(gateway("b", true, 8, 10, 2))
            .with_gateway_record(gateway("c", true, 1, 10, 3))
            .with_routing_settings(routing_settings("a"))
            .with_routing_settings(routing_settings("b"))
            .with_routing_settings(routing_settings("c"));
        assert_eq!(ids(&route(&host, &call("4411"))), ["c", "b", "a"]);
    }

    #[test]
    fn a_route_priority_that_is_not_a_number_is_logged_and_the_gateways_applies() {
        // b's own priority 2 stands; a's row priority 9 sends it after b.
        let host = host(&[("44", &["a", "9"]), ("44", &["b", "high"])]);
        assert_eq!(ids(&route(&host, &call("4411"))), ["b", "a"]);
        assert!(host.logs().iter().any(|(level, l)| *level == Level::Warn
            && l == "route 44,b: priority \"high\" is not a number; the gateway's 2 applies"));
    }

    #[test]
    fn down_full_and_unknown_gateways_are_skipped_with_the_reason_logged() {
        let host = FakeHost::new()
            .with_table(
                ROUTES_TABLE,
                &[
                    ("44", &["down"]),
                    ("44", &["full"]),
                    ("44", &["ghost"]),
                    ("44", &["ok"]),
                ],
            )
            .with_gateway_record(gateway("down", false, 0, 10, 1))
            .with_gateway_record(gateway("full", true, 10, 10, 1))
            .with_gateway_record(gateway("ok", true, 0, 0, 9))
            .with_routing_settings(routing_settings("down"))
            .with_routing_settings(routing_settings("full"))
            .with_routing_settings(routing_settings("ok"));
        assert_eq!(ids(&route(&host, &call("4411"))), ["ok"]);
        let logs: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
        for why in [
            "skip down (prefix 44): down",
            "skip full (prefix 44): at capacity",
            "skip ghost (prefix 44): unknown gateway",
        ] {
            assert!(logs.iter().any(|l| l == why), "{why} not in {logs:?}");
        }
    }

    #[test]
    fn protect_routes_follow_the_normal_ones_of_their_prefix_and_serve_alone_with_a_warning() {
        let protect = |id: &str| RoutingSettings {
            protect: true,
            ..routing_settings(id)
        };
        // a (priority 1) is 44's protect route: after b, before the shorter prefix's c.
        let last = host(&[("44", &["a"]), ("44", &["b"]), ("4", &["c"])])
            .with_routing_settings(protect("a"));
        assert_eq!(ids(&route(&last, &call("4411"))), ["b", "a", "c"]);
        assert!(!last.logs().iter().any(|(_, l)| l.contains("protect")));
        // Only protect routes match: they are used, and the module log says so.
        let only = host(&[("44", &["a"]), ("44", &["b"])])
            .with_routing_settings(protect("a"))
            .with_routing_settings(protect("b"));
        assert_eq!(ids(&route(&only, &call("4411"))), ["a", "b"]);
        assert!(only.logs().iter().any(|(level, l)| *level == Level::Warn
            && l == "every route of prefix 44 is a protect route: they carry its normal traffic"));
    }

    #[test]
    fn tech_prefix_goes_before_the_callee_of_that_gateway_only() {
        let host = host(&[("44", &["a"]), ("44", &["b"])]).with_routing_settings(RoutingSettings {
            tech_prefix: Some("*99".into()),
            ..routing_settings("b")
        });
        assert_eq!(
            gateways(&route(&host, &call("4411"))),
            [("a".into(), "4411".into()), ("b".into(), "*994411".into())]
        );
    }

    #[test]
    fn the_gateways_dial_plans_rewrite_callee_before_its_tech_prefix_and_the_caller() {
        use switchyard_sdk::{NumberAction, NumberRule};
        let rule = |prefix: &str, action| NumberRule {
            prefix: prefix.into(),
            exact: None,
            min_len: None,
            max_len: None,
            action,
        };
        let host = host(&[("44", &["a"])]).with_routing_settings(RoutingSettings {
            tech_prefix: Some("*1".into()),
            callee_rules: vec![rule("44", NumberAction::ReplaceMatched("0".into()))],
            caller_rules: vec![rule("", NumberAction::AddPrefix("+44".into()))],
            ..routing_settings("a")
        });
        let Decision::Attempts(a) = route(&host, &call("442071234567")) else {
            panic!("attempts");
        };
        assert_eq!(a[0].callee, "*102071234567");
        assert_eq!(a[0].caller.as_deref(), Some("+441000"));
    }

    #[test]
    fn lcr_orders_a_priority_by_cost_and_min_profit_skips_dear_vendors() {
        use switchyard_sdk::{MappingSettings, Rate, RouteBy};
        let rate = |per_minute| Rate {
            prefix: "44".into(),
            per_minute,
            connection_fee: 0.0,
            first_increment_secs: 60,
            next_increment_secs: 60,
        };
        // Every route at priority 1 (the rows override a..d's own), e at 2.
        let host = host(&[
            ("44", &["e", "2"]),
            ("44", &["a", "1"]),
            ("44", &["b", "1"]),
            ("44", &["c", "1"]),
            ("44", &["d", "1"]),
        ])
        .with_vendor_cost("e", rate(0.01))
        .with_vendor_cost("a", rate(0.05))
        .with_vendor_cost("b", rate(0.02))
        .with_vendor_cost("c", rate(0.09))
        .with_customer_rate("acme", rate(0.10));
        let lcr = MappingSettings {
            route_by: RouteBy::Cost,
            ..mapping_settings("customer", "acme")
        };
        // b is cheapest; d has no cost and goes last of priority 1; e, cheaper than all
        // of them, is of priority 2 (spec decision 14: priority, then the sort key).
        let by_cost = host.with_mapping_settings(lcr.clone());
        assert_eq!(
            ids(&route(&by_cost, &call("4411"))),
            ["b", "a", "c", "d", "e"]
        );
        // A 0.02 margin under the customer's 0.10 leaves out c at 0.09.
        let margin = by_cost.with_mapping_settings(MappingSettings {
            min_profit: Some(0.02),
            ..lcr
        });
        assert_eq!(ids(&route(&margin, &call("4411"))), ["b", "a", "d", "e"]);
        assert!(margin.logs().iter().any(|(_, l)| l
            == "skip c (prefix 44): cost 0.09 is above the customer's rate 0.1 less 0.02"));
        // The module log says what ordered each gateway tried.
        assert!(margin
            .logs()
            .iter()
            .any(|(_, l)| l == "try b (priority 1, cost 0.02, 0 of 10 lines busy)"));
    }

    #[test]
    fn a_route_naming_a_period_applies_only_while_the_calendar_is_in_it() {
        let routes: &[(&str, &[&str])] = &[("44", &["a", "", "night"]), ("44", &["b"])];
        let night = host(routes).with_account_periods("acme", &["night"]);
        assert_eq!(ids(&route(&night, &call("4411"))), ["a", "b"]);
        let day = host(routes).with_account_periods("acme", &["peak"]);
        assert_eq!(ids(&route(&day, &call("4411"))), ["b"]);
        assert!(day
            .logs()
            .iter()
            .any(|(_, l)| l == "skip a (prefix 44): only in period night"));
    }

    #[test]
    fn ordering_by_asr_puts_the_best_answering_vendor_of_a_priority_first_and_tries_new_ones() {
        // a, b and c at priority 1 on this prefix, d at 2.
        let routes: &[(&str, &[&str])] = &[
            ("44", &["d", "2"]),
            ("44", &["a", "1"]),
            ("44", &["b", "1"]),
            ("44", &["c", "1"]),
        ];
        let customer = MappingSettings {
            route_by: RouteBy::Asr,
            asr_min_attempts: 10,
            ..mapping_settings("customer", "acme")
        };
        // a answers 20%, b 60%, d 90%; c has too few attempts to be measured and counts
        // as 1; d's priority keeps it last.
        let host = host(routes)
            .with_traffic("a", 20, 4)
            .with_traffic("b", 20, 12)
            .with_traffic("c", 3, 0)
            .with_traffic("d", 20, 18)
            .with_mapping_settings(customer);
        assert_eq!(ids(&route(&host, &call("4411"))), ["c", "b", "a", "d"]);
        assert!(host
            .logs()
            .iter()
            .any(|(_, l)| l == "try b (priority 1, ASR 0.60, 0 of 10 lines busy)"));
    }

    #[test]
    fn a_low_asr_demotes_a_gateway_within_its_prefix_once_it_has_enough_attempts() {
        let routes: &[(&str, &[&str])] = &[("44", &["a"]), ("44", &["b"]), ("4", &["c"])];
        let customer = MappingSettings {
            asr_threshold: Some(0.3),
            asr_min_attempts: 10,
            ..mapping_settings("customer", "acme")
        };
        // a: 2 of 20 answered, demoted below b (but not below the shorter prefix).
        let low = host(routes)
            .with_traffic("a", 20, 2)
            .with_mapping_settings(customer.clone());
        assert_eq!(ids(&route(&low, &call("4411"))), ["b", "a", "c"]);
        // Too few attempts to judge: priority order stands.
        let young = host(routes)
            .with_traffic("a", 5, 0)
            .with_mapping_settings(customer);
        assert_eq!(ids(&route(&young, &call("4411"))), ["a", "b", "c"]);
    }

    #[test]
    fn a_pool_number_replaces_the_caller_within_its_multiplexes() {
        use switchyard_sdk::{CallerPool, PoolSelection};
        let pool = |required| CallerPool {
            numbers: vec!["02070000001".into()],
            selection: PoolSelection::RoundRobin,
            multiplexes: 1,
            required,
        };
        let settings = |id: &str, required| RoutingSettings {
            caller_pool: Some(pool(required)),
            caller_rules: vec![switchyard_sdk::NumberRule {
                prefix: "0".into(),
                exact: None,
                min_len: None,
                max_len: None,
                action: switchyard_sdk::NumberAction::ReplaceMatched("+44".into()),
            }],
            ..routing_settings(id)
        };
        let host = host(&[("44", &["a"]), ("44", &["b"])])
            .with_routing_settings(settings("a", true))
            .with_routing_settings(settings("b", false));
        let callers = |d: &Decision| match d {
            Decision::Attempts(a) => a
                .iter()
                .map(|a| (a.gateway.clone(), a.caller.clone()))
                .collect::<Vec<_>>(),
            Decision::Reject(_) => vec![],
        };
        // The pool number, then the gateway's dial plan; in PAI terms too.
        let first = route(&host, &call("4411"));
        let plus = Some("+442070000001".to_string());
        assert_eq!(
            callers(&first),
            [("a".into(), plus.clone()), ("b".into(), plus)]
        );
        // Both numbers now at their one call: a requires one and is skipped, b keeps the
        // caller's own number.
        let second = route(&host, &call("4411"));
        assert_eq!(callers(&second), [("b".into(), None)]);
    }

    #[test]
    fn a_gateway_serves_only_the_customers_it_allows_and_none_it_blocks() {
        let host = host(&[("44", &["a"]), ("44", &["b"]), ("44", &["c"])])
            .with_routing_settings(RoutingSettings {
                allowed_customers: vec!["premium".into()],
                ..routing_settings("a")
            })
            .with_routing_settings(RoutingSettings {
                blocked_customers: vec!["customer".into()],
                ..routing_settings("b")
            });
        // The test call comes in through mapping gateway "customer".
        assert_eq!(ids(&route(&host, &call("4411"))), ["c"]);
        let mut premium = call("4411");
        premium.ingress_gateway = "premium".into();
        assert_eq!(ids(&route(&host, &premium)), ["a", "b", "c"]);
    }

    #[test]
    fn the_mapping_gateways_switch_limit_caps_the_attempts() {
        let host = host(&[("44", &["a"]), ("44", &["b"]), ("44", &["c"])]).with_mapping_settings(
            switchyard_sdk::MappingSettings {
                switch_limit: 2,
                ..mapping_settings("customer", "acme")
            },
        );
        assert_eq!(ids(&route(&host, &call("4411"))), ["a", "b"]);
    }

    #[test]
    fn no_matching_route_is_404() {
        let host = host(&[("44", &["a"])]);
        assert_eq!(
            gateways(&route(&host, &call("33123"))),
            [("404".into(), "No route".into())]
        );
    }
}
