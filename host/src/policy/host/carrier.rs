//! `carrier`: routing and mapping gateways', groups' and calendars' settings as
//! operators stored them, and gateways' traffic, for the calling module's tenant.

use super::super::bindings::carrier::{
    GroupSettings, Host, MappingSettings, RoutingSettings, Traffic,
};
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::super::convert;
use super::PolicyState;
use switchyard_model as model;

impl Host for PolicyState {
    fn routing_gateway(&mut self, id: String) -> Result<RoutingSettings, HostError> {
        let g: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        Ok(convert::routing_settings(id, g))
    }

    fn mapping_gateway(&mut self, id: String) -> Result<MappingSettings, HostError> {
        let g: model::MappingGateway = self.owned(&id, "mapping gateway")?;
        Ok(convert::mapping_settings(id, g))
    }

    fn account_periods(&mut self, account: String, at_ms: u64) -> wasmtime::Result<Vec<String>> {
        let Ok(account) = self.owned::<model::Account>(&account, "account") else {
            return Ok(Vec::new());
        };
        let calendar = account
            .calendar
            .and_then(|id| self.owned::<crate::billing::Calendar>(&id, "calendar").ok());
        Ok(calendar.map_or_else(Vec::new, |c| {
            c.periods_at(at_ms)
                .into_iter()
                .map(str::to_string)
                .collect()
        }))
    }

    fn live_calls(&mut self, account: String, callee_prefix: String) -> wasmtime::Result<u32> {
        let c = &self.ctx;
        Ok(c.runtime
            .live_calls
            .count(&c.tenant, &account, &callee_prefix))
    }

    fn gateway_group(&mut self, id: String) -> Result<GroupSettings, HostError> {
        let g: model::GatewayGroup = self.owned(&id, "gateway group")?;
        Ok(GroupSettings {
            id,
            capacity: g.capacity,
            reserved: g.reserved,
        })
    }

    fn gateway_traffic(&mut self, id: String) -> Result<Traffic, HostError> {
        let _: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        let t = self.ctx.runtime.gateway_traffic(&id);
        Ok(Traffic {
            attempts: t.attempts,
            answered: t.answered,
            asr: t.asr,
            window_secs: t.window_secs,
        })
    }

    fn lease_caller_number(&mut self, id: String) -> Result<Option<String>, HostError> {
        let g: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        let pool = g
            .caller_pool
            .ok_or_else(|| Error::NotFound(format!("routing gateway {id:?} has no caller pool")))?;
        let runtime = &self.ctx.runtime;
        Ok(runtime.pools.lease(&id, &pool, &self.ctx.call_id))
    }
}
