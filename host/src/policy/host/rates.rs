use super::super::bindings::rates::{Host, Rate};
use super::super::bindings::types::Error;
use super::{internal, PolicyState};
use switchyard_model::{Account, RoutingGateway};

impl PolicyState {
    /// Longest-prefix rate of `number` in the tenant's rate table `table` (the row
    /// layout of [`crate::billing::Rate`]).
    fn rate_in(&self, table: &str, number: &str) -> Result<Option<Rate>, Error> {
        let index = self
            .ctx
            .services
            .table(&self.ctx.tenant, table)
            .map_err(internal)?
            .ok_or_else(|| Error::NotFound(format!("rate table {table:?}")))?;
        let now_ms = self.now_ms();
        let rate = crate::billing::Rate::lookup(&index, number, now_ms)
            .map_err(|e| Error::Other(format!("rate table {table:?} {e}")))?;
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
    fn vendor_cost(&mut self, gateway: String, number: String) -> Result<Option<Rate>, Error> {
        let g: RoutingGateway = self.owned(&gateway, "routing gateway")?;
        let tables = self.tables_now(
            g.calendar.as_deref(),
            &g.period_cost_tables,
            g.cost_table.as_deref(),
        )?;
        self.first_rate(&tables, &number)
    }

    fn customer_rate(&mut self, account: String, number: String) -> Result<Option<Rate>, Error> {
        let a: Account = self.owned(&account, "account")?;
        let tables = self.tables_now(
            a.calendar.as_deref(),
            &a.period_rate_tables,
            a.rate_table.as_deref(),
        )?;
        self.first_rate(&tables, &number)
    }
}

impl PolicyState {
    /// The rate tables that price a call now, as billing picks them (see
    /// [`crate::billing::tables_at`]).
    fn tables_now<'a>(
        &self,
        calendar: Option<&str>,
        by_period: &'a std::collections::BTreeMap<String, String>,
        default: Option<&'a str>,
    ) -> Result<Vec<&'a str>, Error> {
        let now_ms = self.now_ms();
        let store = &self.ctx.services.store;
        crate::billing::tables_at(
            store,
            &self.ctx.tenant,
            calendar,
            by_period,
            default,
            now_ms,
        )
        .map_err(Error::NotFound)
    }

    /// `number`'s rate in the first of `tables` that has one.
    fn first_rate(&self, tables: &[&str], number: &str) -> Result<Option<Rate>, Error> {
        for table in tables {
            if let Some(rate) = self.rate_in(table, number)? {
                return Ok(Some(rate));
            }
        }
        Ok(None)
    }
}
