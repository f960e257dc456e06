//! The `rates` host import: billing's own rate lookup ([`PriceList::rate`]) at the
//! call's time, so a module's LCR sees the prices billing charges.

use super::super::bindings::rates::{Host, Rate};
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::{internal, PolicyState};
use crate::billing::{LookupError, PriceList};
use switchyard_model::{Account, RoutingGateway};

impl PolicyState {
    fn rate_of(&self, prices: PriceList<'_>, number: &str) -> Result<Option<Rate>, HostError> {
        let rate = prices
            .rate(&self.ctx.runtime, number, self.now_ms())
            .map_err(|e| match e {
                LookupError::NotFound(m) => Error::NotFound(m).into(),
                LookupError::BadTable(m) => Error::Other(m).into(),
                LookupError::Store(m) => internal(m),
            })?;
        Ok(rate.map(|r| Rate {
            prefix: r.prefix,
            per_minute: r.per_minute.units(),
            connection_fee: r.connection_fee.units(),
            first_increment_secs: r.first_increment_secs,
            next_increment_secs: r.next_increment_secs,
        }))
    }
}

impl Host for PolicyState {
    fn vendor_cost(&mut self, gateway: String, number: String) -> Result<Option<Rate>, HostError> {
        let g: RoutingGateway = self.owned(&gateway, "routing gateway")?;
        self.rate_of(PriceList::of_vendor(&g), &number)
    }

    fn customer_rate(
        &mut self,
        account: String,
        number: String,
    ) -> Result<Option<Rate>, HostError> {
        let a: Account = self.owned(&account, "account")?;
        self.rate_of(PriceList::of_account(&a), &number)
    }
}
