//! Routing-gateway health: an OPTIONS ping to every gateway that asks for one, at its
//! interval. Any answer counts as alive (a 404 or 405 still proves the peer is there);
//! no answer within the timeout counts as a failure. `down_after` failures in a row
//! mark it down, `up_after` successes in a row bring it back. Calls skip a down gateway
//! without sending an INVITE, and modules see the state in the gateway snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::message::Outgoing;
use super::transaction::final_response;
use super::transport::Peer;
use super::{new_branch, new_tag};
use super::{parse_address, SipCore};
use switchyard_model::RoutingGateway;

/// How often the checker looks for gateways due a ping.
const SCAN_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Streak {
    successes: u32,
    failures: u32,
    next_due: Option<tokio::time::Instant>,
}

/// Run the checker until the task is aborted.
pub(super) async fn run(core: Arc<SipCore>) {
    let mut streaks: HashMap<String, Streak> = HashMap::new();
    let mut scan = tokio::time::interval(SCAN_EVERY);
    loop {
        scan.tick().await;
        let gateways = match core.store.carrier_snapshot::<RoutingGateway>() {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "health check: reading routing gateways");
                continue;
            }
        };
        streaks.retain(|id, _| gateways.contains_key(id));
        let now = tokio::time::Instant::now();
        // Pings of one round run concurrently: a silent gateway does not delay the others.
        let mut round = tokio::task::JoinSet::new();
        for (id, gateway) in gateways.iter() {
            let Some(interval) = gateway.options_interval_secs.filter(|s| *s > 0) else {
                continue;
            };
            let Some(addr) = gateway.address.as_deref().and_then(parse_address) else {
                continue;
            };
            let streak = streaks.entry(id.clone()).or_default();
            if streak.next_due.is_some_and(|due| due > now) {
                continue;
            }
            streak.next_due = Some(now + Duration::from_secs(u64::from(interval)));
            let (core, id, gateway) = (core.clone(), id.clone(), gateway.clone());
            round.spawn(async move {
                let peer = Peer {
                    addr,
                    transport: gateway.transport,
                };
                let alive = ping(&core, peer, interval).await;
                (id, gateway, alive)
            });
        }
        while let Some(Ok((id, gateway, alive))) = round.join_next().await {
            let streak = streaks.entry(id.clone()).or_default();
            if alive {
                streak.successes += 1;
                streak.failures = 0;
            } else {
                streak.failures += 1;
                streak.successes = 0;
            }
            let runtime = &core.runtime;
            let mut live = runtime.gateway_live(&id);
            if !live.down && streak.failures >= gateway.down_after.max(1) {
                live.down = true;
                tracing::warn!(gateway = %id, failures = streak.failures, "routing gateway down (OPTIONS unanswered)");
                runtime.set_gateway_live(&id, live);
            } else if live.down && streak.successes >= gateway.up_after.max(1) {
                live.down = false;
                tracing::info!(gateway = %id, "routing gateway up again");
                runtime.set_gateway_live(&id, live);
            }
        }
    }
}

/// One OPTIONS; true when anything answered within the interval (at most 5 s).
async fn ping(core: &Arc<SipCore>, peer: Peer, interval_secs: u32) -> bool {
    let advertised = core.txs.transports().advertised_for(peer.addr);
    let branch = new_branch();
    let uri = format!("sip:{}", peer.addr);
    let req = Outgoing::dialog_request(
        "OPTIONS",
        &uri,
        &core.via(peer, &branch),
        &format!("<sip:ping@{advertised}>;tag={}", new_tag()),
        &format!("<{uri}>"),
        &core.new_call_id(),
        1,
    )
    .header("Accept", "application/sdp");
    let mut rx = core.txs.request(req, &branch, "OPTIONS", peer, None).await;
    let wait = Duration::from_secs(u64::from(interval_secs.clamp(1, 5)));
    matches!(
        tokio::time::timeout(wait, final_response(&mut rx)).await,
        Ok(Some(_))
    )
}
