use super::super::bindings::gateways::{Gateway, Host};
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::{internal, PolicyState};
use crate::runtime::GATEWAY_STATS_WINDOW_SECS;
use switchyard_model::RoutingGateway;

impl PolicyState {
    fn gateway_view(&self, id: String, config: &RoutingGateway) -> Gateway {
        let live = self.ctx.runtime.gateway_live(&id);
        Gateway {
            id,
            groups: config.groups.clone(),
            up: config.enabled && !live.down,
            capacity: config.capacity,
            current_calls: live.current_calls,
            asr: live.asr,
            acd_secs: live.acd_secs,
            window_secs: GATEWAY_STATS_WINDOW_SECS,
            priority: config.priority,
        }
    }
}

impl Host for PolicyState {
    fn snapshot(&mut self) -> wasmtime::Result<Vec<Gateway>> {
        let tenant = self.ctx.tenant.clone();
        match self.ctx.runtime.store.carrier_snapshot::<RoutingGateway>() {
            Ok(all) => Ok(all
                .iter()
                .filter(|(_, g)| g.tenant == tenant)
                .map(|(id, g)| self.gateway_view(id.clone(), g))
                .collect()),
            // An empty list would be a wrong answer: the run traps instead.
            Err(e) => Err(wasmtime::Error::msg(format!(
                "host fault: gateway snapshot: {e}"
            ))),
        }
    }

    fn get(&mut self, id: String) -> Result<Gateway, HostError> {
        let all = self
            .ctx
            .runtime
            .store
            .carrier_snapshot::<RoutingGateway>()
            .map_err(internal)?;
        match all.get(&id) {
            Some(g) if g.tenant == self.ctx.tenant => Ok(self.gateway_view(id, g)),
            _ => Err(Error::NotFound(format!("routing gateway {id:?}")).into()),
        }
    }
}
