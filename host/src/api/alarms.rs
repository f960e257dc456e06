//! The alarm monitor: a task that looks at the switch every
//! [`AlarmConfig::interval_secs`] and raises or clears alarms (`runtime::alarms`),
//! posting each change to the configured webhook; and `GET /api/v1/alarms`, a
//! tenant's active and recently cleared alarms (an agent's: its subtree's accounts').
//!
//! What is watched: each routing gateway's and account's ASR, ACD and PDD over the
//! statistics window; the worst packet loss and jitter of the legs of its calls in
//! progress (the caller's leg counts for the account, the vendor's for the gateway);
//! routing gateways the health checks marked down; billed accounts whose balance (with
//! credit, postpaid) is low; each tenant's module decision failure rate; and fraud
//! events modules raised.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiJson, ApiResult, AppState, ScopedCaller};
use crate::media::LegRtp;
use crate::runtime::alarms::{AlarmConfig, AlarmKind, Change, Condition, Scope, Thresholds};
use crate::runtime::events::EventFilter;
use crate::runtime::traffic::Summary;
use crate::runtime::TenantActivity;
use switchyard_model::{Account, Money, RoutingGateway};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/alarms", get(list))
}

/// A leg's loss and jitter are judged once this many of its packets were expected:
/// two seconds of 20 ms audio, so a call's first packets cannot alarm by chance.
const MIN_LEG_PACKETS: u64 = 100;

#[derive(Deserialize)]
struct ListQuery {
    /// Cleared alarms returned, newest first (default 100).
    #[serde(default)]
    cleared: Option<usize>,
}

/// `GET /api/v1/alarms`: `{active: [...], cleared: [...]}`.
async fn list(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Query(q): Query<ListQuery>,
) -> ApiResult<ApiJson<Value>> {
    let alarms = &state.policy.runtime().alarms;
    let (mut active, mut cleared) = alarms.list(
        Some(&caller.caller.tenant),
        q.cleared.unwrap_or(100).min(1_000),
    );
    if let Some(agent) = &caller.agent {
        // An agent sees its accounts' alarms, and no gateway's or module's.
        let mine = |a: &crate::runtime::alarms::Alarm| {
            a.scope == Scope::Account && agent.covers(&a.subject)
        };
        active.retain(mine);
        cleared.retain(mine);
    }
    Ok(ApiJson(json!({ "active": active, "cleared": cleared })))
}

/// Start the monitor; it runs until aborted.
pub fn keep_watch(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = state.config.alarms.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok();
        let mut activity: HashMap<String, TenantActivity> = HashMap::new();
        loop {
            tick.tick().await;
            let now_ms = crate::now_ms();
            let conditions = match look(&state, &config, &mut activity, now_ms) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "alarm check failed");
                    continue;
                }
            };
            let changes = state.policy.runtime().alarms.observe(conditions, now_ms);
            if let (Some(url), Some(client)) = (&config.webhook, &client) {
                for change in changes {
                    post(client, url, &change).await;
                }
            }
        }
    })
}

/// Post one change; a collector that fails is logged, never retried (the next change
/// goes anyway, and the listing has them all).
async fn post(client: &reqwest::Client, url: &str, change: &Change) {
    match client.post(url).json(change).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(%url, status = %r.status(), "alarm webhook refused"),
        Err(e) => tracing::warn!(%url, error = %e, "alarm webhook unreachable"),
    }
}

/// Every condition that holds now.
fn look(
    state: &AppState,
    config: &AlarmConfig,
    last_activity: &mut HashMap<String, TenantActivity>,
    now_ms: u64,
) -> crate::store::Result<Vec<Condition>> {
    let runtime = state.policy.runtime();
    let mut out = Vec::new();
    // The legs of answered calls in progress, by vendor gateway (its side) and by
    // account (the customer's side), gathered in one pass over the calls.
    let mut gateway_legs: HashMap<String, Vec<LegRtp>> = HashMap::new();
    let mut account_legs: HashMap<(String, String), Vec<LegRtp>> = HashMap::new();
    let live = state.sip.as_ref().map_or_else(Vec::new, |sip| {
        sip.live.list(|c| c.relayed && c.answer_ms.is_some())
    });
    for call in live {
        let Some(rtp) = call.rtp else { continue };
        if let Some(gateway) = call.egress_gateway {
            gateway_legs.entry(gateway).or_default().push(rtp.callee);
        }
        account_legs
            .entry((call.tenant, call.account))
            .or_default()
            .push(rtp.caller);
    }
    for (id, gateway) in state.store.carrier_list::<RoutingGateway>(None)? {
        let t = config.for_gateway(&id);
        let mut add = adder(&mut out, &gateway.tenant, Scope::Gateway, &id);
        if runtime.gateway_live(&id).down {
            add(
                AlarmKind::GatewayDown,
                1.0,
                0.0,
                "health checks mark it down".into(),
            );
        }
        window(&runtime.gateway_traffic(&id), t, &mut add);
        media(gateway_legs.get(&id), t, &mut add);
    }
    for (id, account) in state.store.carrier_list::<Account>(None)? {
        let t = config.for_account(&id);
        let mut add = adder(&mut out, &account.tenant, Scope::Account, &id);
        window(&runtime.account_traffic(&id), t, &mut add);
        let legs = account_legs.get(&(account.tenant.clone(), id.clone()));
        media(legs, t, &mut add);
        if account.rate_table.is_some() {
            let credit = if account.prepaid {
                Money::ZERO
            } else {
                account.credit_limit
            };
            let available = units(account.balance) + units(credit);
            if available < t.balance_below {
                add(
                    AlarmKind::LowBalance,
                    available,
                    t.balance_below,
                    format!("{available:.2} left to call with"),
                );
            }
        }
    }
    for (tenant, now) in runtime.activities() {
        let before = last_activity
            .insert(tenant.clone(), now)
            .unwrap_or_default();
        let decisions = now.decisions.saturating_sub(before.decisions);
        let failures = now.failures.saturating_sub(before.failures);
        let percent = failures as f64 * 100.0 / decisions.max(1) as f64;
        if decisions >= config.min_decisions && percent > config.module_failure_percent {
            adder(&mut out, &tenant, Scope::Modules, &tenant)(
                AlarmKind::ModuleFailures,
                percent,
                config.module_failure_percent,
                format!("{failures} of {decisions} module decisions failed"),
            );
        }
    }
    let since = now_ms.saturating_sub(config.fraud_hold_secs * 1000);
    let fraud = EventFilter {
        kind: Some("fraud"),
        since_ms: since,
        ..EventFilter::default()
    };
    let mut flagged: HashMap<(String, String), (u64, String)> = HashMap::new();
    for e in runtime.events.list(&fraud, usize::MAX) {
        let entry = flagged
            .entry((e.tenant.clone(), e.subject.clone()))
            .or_insert((0, e.detail.clone()));
        entry.0 += 1;
    }
    for ((tenant, subject), (count, detail)) in flagged {
        adder(&mut out, &tenant, Scope::Account, &subject)(
            AlarmKind::Fraud,
            count as f64,
            0.0,
            format!("{count} fraud events, the last: {detail}"),
        );
    }
    Ok(out)
}

/// What adds `subject`'s conditions (kind, value, threshold, detail) to `out`.
fn adder<'a>(
    out: &'a mut Vec<Condition>,
    tenant: &'a str,
    scope: Scope,
    subject: &'a str,
) -> impl FnMut(AlarmKind, f64, f64, String) + 'a {
    move |kind, value, threshold, detail| {
        out.push(Condition {
            tenant: tenant.to_string(),
            kind,
            scope,
            subject: subject.to_string(),
            value,
            threshold,
            detail,
        })
    }
}

/// Money in units (its millionths dropped to a float: alarms need no cents exact).
fn units(m: Money) -> f64 {
    m.0 as f64 / Money::SCALE as f64
}

/// ASR, ACD and PDD of a statistics window, once it holds enough attempts.
fn window(s: &Summary, t: &Thresholds, add: &mut impl FnMut(AlarmKind, f64, f64, String)) {
    if s.attempts < t.min_attempts.max(1) {
        return;
    }
    if s.asr < t.asr_below {
        let detail = format!("{} of {} attempts answered", s.answered, s.attempts);
        add(
            AlarmKind::LowAsr,
            f64::from(s.asr),
            f64::from(t.asr_below),
            detail,
        );
    }
    if s.answered > 0 && s.acd_secs < t.acd_below_secs {
        let detail = format!("answered calls last {:.1} s on average", s.acd_secs);
        add(
            AlarmKind::LowAcd,
            f64::from(s.acd_secs),
            f64::from(t.acd_below_secs),
            detail,
        );
    }
    if s.pdd_ms > t.pdd_above_ms {
        let detail = format!("post-dial delay {:.0} ms on average", s.pdd_ms);
        add(
            AlarmKind::HighPdd,
            f64::from(s.pdd_ms),
            f64::from(t.pdd_above_ms),
            detail,
        );
    }
}

/// The worst loss and jitter among `legs`, of those far enough in to judge.
fn media(
    legs: Option<&Vec<LegRtp>>,
    t: &Thresholds,
    add: &mut impl FnMut(AlarmKind, f64, f64, String),
) {
    let judged: Vec<&LegRtp> = legs
        .into_iter()
        .flatten()
        .filter(|l| l.received + l.lost >= MIN_LEG_PACKETS)
        .collect();
    let worst = |f: fn(&LegRtp) -> f64| {
        judged
            .iter()
            .copied()
            .map(f)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    if let Some(loss) = worst(|l| l.loss_percent).filter(|l| *l > t.loss_above_percent) {
        let detail = format!("a call leg loses {loss}% of its packets");
        add(AlarmKind::PacketLoss, loss, t.loss_above_percent, detail);
    }
    if let Some(jitter) = worst(|l| l.jitter_ms).filter(|j| *j > t.jitter_above_ms) {
        let detail = format!("a call leg's jitter is {jitter} ms");
        add(AlarmKind::Jitter, jitter, t.jitter_above_ms, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(f: impl FnOnce(&mut dyn FnMut(AlarmKind, f64, f64, String))) -> Vec<(AlarmKind, f64)> {
        let mut got = Vec::new();
        f(&mut |kind, value, _, _| got.push((kind, value)));
        got
    }

    #[test]
    fn a_window_alarms_on_asr_acd_and_pdd_once_it_holds_enough_attempts() {
        let t = Thresholds::default();
        let poor = Summary {
            attempts: 40,
            answered: 4,
            asr: 0.1,
            acd_secs: 3.0,
            pdd_ms: 9_000.0,
            ..Summary::default()
        };
        let got = kinds(|add| window(&poor, &t, &mut |k, v, th, d| add(k, v, th, d)));
        let names: Vec<AlarmKind> = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [AlarmKind::LowAsr, AlarmKind::LowAcd, AlarmKind::HighPdd]
        );
        let few = Summary {
            attempts: 19,
            ..poor
        };
        assert!(kinds(|add| window(&few, &t, &mut |k, v, th, d| add(k, v, th, d))).is_empty());
    }

    #[test]
    fn the_worst_judged_leg_alarms_on_loss_and_jitter() {
        let t = Thresholds::default();
        let leg = |received, lost, loss_percent, jitter_ms| LegRtp {
            received,
            lost,
            loss_percent,
            jitter_ms,
            ..LegRtp::default()
        };
        let legs = [
            leg(950, 50, 5.0, 10.0),
            leg(900, 100, 10.0, 60.0),
            // Too young to judge, however bad.
            leg(10, 40, 80.0, 400.0),
        ];
        let got = kinds(|add| {
            media(Some(&legs.to_vec()), &t, &mut |k, v, th, d| {
                add(k, v, th, d)
            })
        });
        assert_eq!(
            got,
            [(AlarmKind::PacketLoss, 10.0), (AlarmKind::Jitter, 60.0)]
        );
        let fine = [leg(1000, 0, 0.0, 2.0)];
        assert!(kinds(
            |add| media(Some(&fine.to_vec()), &t, &mut |k, v, th, d| add(
                k, v, th, d
            ))
        )
        .is_empty());
    }
}
