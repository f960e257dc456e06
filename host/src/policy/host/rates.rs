use super::super::bindings::rates::{Host, Rate};
use super::super::bindings::types::Error;
use super::{internal, PolicyState};
use crate::store::{Account, CarrierObject, RoutingGateway};

impl PolicyState {
    /// Longest-prefix rate of `number` in the tenant's table `table`. Row layout:
    /// prefix, per-minute, connection fee, first increment s, next increment s.
    fn rate_in(&self, table: &str, number: &str) -> Result<Option<Rate>, Error> {
        let index = self
            .ctx
            .services
            .table(&self.ctx.tenant, table)
            .map_err(internal)?
            .ok_or_else(|| Error::NotFound(format!("rate table {table:?}")))?;
        let Some(row) = index.prefixes(number).next() else {
            return Ok(None);
        };
        let bad = || {
            Error::Other(format!(
                "rate table {table:?} row {:?} is malformed",
                row.key
            ))
        };
        let num = |i: usize| row.fields.get(i).map(|f| f.trim());
        let per_minute = num(0).and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let connection_fee = num(1).map_or(Ok(0.0), |f| f.parse().map_err(|_| bad()))?;
        let first = num(2).map_or(Ok(60), |f| f.parse().map_err(|_| bad()))?;
        let next = num(3).map_or(Ok(first), |f| f.parse().map_err(|_| bad()))?;
        Ok(Some(Rate {
            prefix: row.key.clone(),
            per_minute,
            connection_fee,
            first_increment_secs: first,
            next_increment_secs: next,
        }))
    }

    fn owned<T: CarrierObject>(&self, id: &str, what: &str) -> Result<T, Error> {
        match self
            .ctx
            .services
            .store
            .carrier_get::<T>(id)
            .map_err(internal)?
        {
            Some(object) if object.tenant() == self.ctx.tenant => Ok(object),
            _ => Err(Error::NotFound(format!("{what} {id:?}"))),
        }
    }
}

impl Host for PolicyState {
    fn vendor_cost(&mut self, gateway: String, number: String) -> Result<Option<Rate>, Error> {
        let g: RoutingGateway = self.owned(&gateway, "routing gateway")?;
        match g.cost_table {
            Some(table) => self.rate_in(&table, &number),
            None => Ok(None),
        }
    }

    fn customer_rate(&mut self, account: String, number: String) -> Result<Option<Rate>, Error> {
        let a: Account = self.owned(&account, "account")?;
        match a.rate_table {
            Some(table) => self.rate_in(&table, &number),
            None => Ok(None),
        }
    }
}
