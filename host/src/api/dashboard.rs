//! The operator's dashboard: one snapshot of a tenant's traffic now (calls in
//! progress, CPS, ASR/ACD/PDD over the statistics window, gateways and phones online,
//! today's income, cost and profit, module decisions), as JSON and as a stream of
//! server-sent events, one a second; and the top customers by minutes or revenue.
//! An agent sees its subtree's accounts only. The last hour is kept per tenant, a
//! point every [`SAMPLE_SECS`], for the dashboard's charts.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, ScopedCaller};
use crate::runtime::ledger::{Period, Totals};
use crate::runtime::traffic::Summary;
use crate::runtime::TenantActivity;
use crate::store::AgentScope;
use switchyard_model::{Account, MappingGateway, Phone, RoutingGateway};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dashboard", get(show))
        .route("/api/v1/dashboard/stream", get(stream))
        .route("/api/v1/top-customers", get(top))
}

/// The dashboard's figures at one moment.
#[derive(Debug, Serialize)]
struct Snapshot {
    at_ms: u64,
    tenant: String,
    calls_active: usize,
    /// The tenant's calls over the statistics window (CPS over the last second).
    traffic: Summary,
    gateways: GatewayCounts,
    phones: PhoneCounts,
    today: Totals,
    /// Calls offered and module decisions so far: rates are their differences.
    activity: TenantActivity,
}

#[derive(Debug, Default, Serialize)]
struct GatewayCounts {
    routing_up: usize,
    routing_down: usize,
    mapping: usize,
    /// Mapping gateways with a call in progress.
    mapping_active: usize,
}

#[derive(Debug, Default, Serialize)]
struct PhoneCounts {
    total: usize,
    online: usize,
}

/// The window figures of several accounts as one: counts add up, ASR and ACD are
/// weighted by attempts and answers; PDD, averaged per account over the calls that
/// rang (a count the summary does not carry), is weighted by attempts instead.
fn combine(parts: impl IntoIterator<Item = Summary>) -> Summary {
    let mut sum = Summary {
        window_secs: crate::runtime::traffic::WINDOW_SECS,
        ..Summary::default()
    };
    let (mut talk, mut pdd) = (0f64, 0f64);
    for s in parts {
        sum.attempts += s.attempts;
        sum.answered += s.answered;
        sum.cps += s.cps;
        talk += f64::from(s.acd_secs) * s.answered as f64;
        pdd += f64::from(s.pdd_ms) * s.attempts as f64;
    }
    if sum.attempts > 0 {
        sum.asr = sum.answered as f32 / sum.attempts as f32;
        sum.pdd_ms = (pdd / sum.attempts as f64) as f32;
    }
    if sum.answered > 0 {
        sum.acd_secs = (talk / sum.answered as f64) as f32;
    }
    sum
}

fn covers(agent: &Option<AgentScope>, account: &str) -> bool {
    agent.as_ref().is_none_or(|a| a.covers(account))
}

fn snapshot(state: &AppState, tenant: &str, agent: &Option<AgentScope>) -> ApiResult<Snapshot> {
    let runtime = state.policy.runtime();
    let store = &state.store;
    let accounts: Vec<String> = store
        .carrier_list::<Account>(Some(tenant))?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| covers(agent, id))
        .collect();
    let traffic = combine(accounts.iter().map(|id| runtime.account_traffic(id)));
    let live = state.sip.as_ref().map(|sip| &sip.live);
    let live_calls = live.map_or_else(Vec::new, |l| {
        l.list(|c| c.tenant == tenant && covers(agent, &c.account))
    });
    let mut gateways = GatewayCounts::default();
    for (id, g) in store.carrier_list::<MappingGateway>(Some(tenant))? {
        if covers(agent, &g.account) {
            gateways.mapping += 1;
            gateways.mapping_active +=
                usize::from(live_calls.iter().any(|c| c.ingress_gateway == id));
        }
    }
    if agent.is_none() {
        for (id, _) in store.carrier_list::<RoutingGateway>(Some(tenant))? {
            match runtime.gateway_live(&id).down {
                true => gateways.routing_down += 1,
                false => gateways.routing_up += 1,
            }
        }
    }
    let mut phones = PhoneCounts::default();
    let mappings = store.carrier_snapshot::<MappingGateway>()?;
    for (id, phone) in store.carrier_list::<Phone>(Some(tenant))? {
        let account = mappings
            .get(&phone.mapping_gateway)
            .map(|m| m.account.as_str());
        if agent.is_some() && !account.is_some_and(|a| covers(agent, a)) {
            continue;
        }
        phones.total += 1;
        let online = state
            .sip
            .as_ref()
            .is_some_and(|sip| sip.registrar.lookup(&id).is_some());
        phones.online += usize::from(online);
    }
    let now_ms = crate::now_ms();
    Ok(Snapshot {
        at_ms: now_ms,
        tenant: tenant.to_string(),
        calls_active: live_calls.len(),
        traffic,
        gateways,
        phones,
        today: runtime
            .ledger
            .total(tenant, Period::Today, now_ms, |id| covers(agent, id)),
        activity: match agent {
            None => runtime.activity(tenant),
            Some(_) => TenantActivity::default(),
        },
    })
}

/// `GET /api/v1/dashboard`.
async fn show(State(state): State<AppState>, caller: ScopedCaller) -> ApiResult<ApiJson<Value>> {
    let s = snapshot(&state, &caller.caller.tenant, &caller.agent)?;
    Ok(ApiJson(json!(s)))
}

/// Seconds between two points of the dashboard's history.
pub const SAMPLE_SECS: u64 = 10;
/// Points kept per tenant: an hour's.
const HISTORY_POINTS: usize = 3_600 / SAMPLE_SECS as usize;

/// One point of a tenant's history.
#[derive(Debug, Clone, Copy, Serialize)]
struct Point {
    at_ms: u64,
    calls_active: usize,
    /// Calls offered per second since the point before.
    cps: f64,
    /// Module decisions per second since the point before.
    decisions_per_sec: f64,
    /// Over the statistics window.
    asr: f32,
    #[serde(skip)]
    activity: TenantActivity,
}

/// The last hour of every tenant's dashboard. In memory: a restart starts it again.
#[derive(Default)]
pub struct History(
    std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<Point>>>,
);

impl History {
    fn points(&self, tenant: &str) -> Vec<Point> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.get(tenant)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Add a point for every tenant that has accounts.
    fn sample(&self, state: &AppState) -> ApiResult<()> {
        let mut tenants: Vec<String> = state
            .store
            .carrier_list::<Account>(None)?
            .into_iter()
            .map(|(_, a)| a.tenant)
            .collect();
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            let s = snapshot(state, &tenant, &None)?;
            let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let points = all.entry(tenant).or_default();
            let rate = |now: u64, before: Option<u64>, secs: f64| {
                before.map_or(0.0, |b| now.saturating_sub(b) as f64 / secs)
            };
            let last = points.back().copied();
            let secs = last.map_or(1.0, |p| {
                (s.at_ms.saturating_sub(p.at_ms) as f64 / 1e3).max(1e-3)
            });
            points.push_back(Point {
                at_ms: s.at_ms,
                calls_active: s.calls_active,
                cps: rate(s.activity.calls, last.map(|p| p.activity.calls), secs),
                decisions_per_sec: rate(
                    s.activity.decisions,
                    last.map(|p| p.activity.decisions),
                    secs,
                ),
                asr: s.traffic.asr,
                activity: s.activity,
            });
            while points.len() > HISTORY_POINTS {
                points.pop_front();
            }
        }
        Ok(())
    }
}

/// Sample every tenant's dashboard every [`SAMPLE_SECS`] until aborted.
pub fn keep_history(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(SAMPLE_SECS));
        loop {
            ticks.tick().await;
            if let Err(e) = state.history.sample(&state) {
                tracing::warn!(error = ?e, "sampling the dashboard history failed");
            }
        }
    })
}

/// `GET /api/v1/dashboard/stream`: a `history` event with the last hour's points (none
/// for an agent, whose subtree the history does not follow), then a `snapshot` event
/// now and every second after.
async fn stream(
    State(state): State<AppState>,
    caller: ScopedCaller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tenant, agent) = (caller.caller.tenant, caller.agent);
    let points = match agent {
        None => state.history.points(&tenant),
        Some(_) => Vec::new(),
    };
    let history = Event::default()
        .event("history")
        .json_data(&points)
        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
    let ticks = tokio::time::interval(Duration::from_secs(1));
    let snapshots = futures_util::stream::unfold((ticks, state), move |(mut ticks, state)| {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        async move {
            ticks.tick().await;
            let event = match snapshot(&state, &tenant, &agent) {
                Ok(s) => Event::default().event("snapshot").json_data(&s),
                Err(e) => Ok(Event::default().event("error").data(format!("{e:?}"))),
            };
            let event =
                event.unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
            Some((Ok(event), (ticks, state)))
        }
    });
    let events = futures_util::stream::once(async move { Ok(history) }).chain(snapshots);
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopQuery {
    /// `today` (default) or `month`.
    #[serde(default)]
    period: Option<String>,
    /// `minutes` (default) or `revenue`.
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/top-customers`: accounts ranked by billed minutes or income.
async fn top(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Query(q): Query<TopQuery>,
) -> ApiResult<ApiJson<Value>> {
    let period = match q.period.as_deref() {
        None | Some("today") => Period::Today,
        Some("month") => Period::ThisMonth,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "period {other:?}: use today or month"
            )))
        }
    };
    let by_revenue = match q.by.as_deref() {
        None | Some("minutes") => false,
        Some("revenue") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "by {other:?}: use minutes or revenue"
            )))
        }
    };
    let agent = &caller.agent;
    let mut ranked = state.policy.runtime().ledger.accounts(
        &caller.caller.tenant,
        period,
        crate::now_ms(),
        |id| covers(agent, id),
    );
    ranked.sort_by(|(a_id, a), (b_id, b)| {
        let key = |t: &Totals| {
            if by_revenue {
                t.income.0
            } else {
                t.talk_secs as i64
            }
        };
        key(b).cmp(&key(a)).then_with(|| a_id.cmp(b_id))
    });
    ranked.truncate(q.limit.unwrap_or(10).clamp(1, 100));
    let customers: Vec<Value> = ranked
        .into_iter()
        .map(|(account, t)| json!({ "account": account, "minutes": t.talk_secs as f64 / 60.0, "totals": t }))
        .collect();
    Ok(ApiJson(json!({ "customers": customers })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_figures_combine_weighted() {
        let a = Summary {
            attempts: 10,
            answered: 5,
            asr: 0.5,
            acd_secs: 60.0,
            pdd_ms: 100.0,
            cps: 2,
            window_secs: 300,
        };
        let b = Summary {
            attempts: 30,
            answered: 5,
            asr: 1.0 / 6.0,
            acd_secs: 120.0,
            pdd_ms: 500.0,
            cps: 1,
            window_secs: 300,
        };
        let s = combine([a, b]);
        assert_eq!((s.attempts, s.answered, s.cps), (40, 10, 3));
        assert!((s.asr - 0.25).abs() < 1e-6);
        assert!((s.acd_secs - 90.0).abs() < 1e-3);
        assert!((s.pdd_ms - 400.0).abs() < 1e-3);
        assert_eq!(combine([]).attempts, 0);
    }
}
