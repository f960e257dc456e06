//! The one rate lookup: the price of a number for an account (its customer rates) or a
//! vendor gateway (its costs) at one instant. Billing (authorisation, settlement,
//! vendor cost) and the policy engine's `rates` host import both come here, so a
//! module's LCR sees the prices billing charges. The instant picks both the calendar
//! period and each table's effective-dated rows.

use std::collections::BTreeMap;

use switchyard_model::{Account, RoutingGateway};

use super::calendar::tables_at;
use super::Rate;
use crate::runtime::Runtime;

/// Why a rate could not be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// A calendar or rate table named by the object does not exist.
    NotFound(String),
    /// A rate table's rows do not read as rates.
    BadTable(String),
    /// The store failed to read a table or calendar.
    Store(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NotFound(m) | LookupError::BadTable(m) | LookupError::Store(m) => {
                f.write_str(m)
            }
        }
    }
}

/// What prices an object: its calendar, its table per period, its default table.
#[derive(Debug, Clone, Copy)]
pub struct PriceList<'a> {
    /// Owning tenant (the tables and calendar are the tenant's).
    pub tenant: &'a str,
    /// Work calendar whose periods pick among `by_period`.
    pub calendar: Option<&'a str>,
    /// Table per period name.
    pub by_period: &'a BTreeMap<String, String>,
    /// Table when no period's table has a rate.
    pub default: Option<&'a str>,
}

impl<'a> PriceList<'a> {
    /// An account's customer rates.
    pub fn of_account(account: &'a Account) -> PriceList<'a> {
        PriceList {
            tenant: &account.tenant,
            calendar: account.calendar.as_deref(),
            by_period: &account.period_rate_tables,
            default: account.rate_table.as_deref(),
        }
    }

    /// A vendor gateway's costs.
    pub fn of_vendor(gateway: &'a RoutingGateway) -> PriceList<'a> {
        PriceList {
            tenant: &gateway.tenant,
            calendar: gateway.calendar.as_deref(),
            by_period: &gateway.period_cost_tables,
            default: gateway.cost_table.as_deref(),
        }
    }

    /// Whether it names any table at all.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_period.is_empty()
    }

    /// `number`'s rate at `at_ms`: from the table of the first period of the calendar
    /// that is on then and has a rate for it, else from the default table.
    pub fn rate(
        &self,
        runtime: &Runtime,
        number: &str,
        at_ms: u64,
    ) -> Result<Option<Rate>, LookupError> {
        let tables = tables_at(
            runtime.store(),
            self.tenant,
            self.calendar,
            self.by_period,
            self.default,
            at_ms,
        )
        .map_err(LookupError::NotFound)?;
        for table in tables {
            let index = runtime
                .table(self.tenant, table)
                .map_err(|e| LookupError::Store(format!("rate table {table:?}: {e}")))?
                .ok_or_else(|| {
                    LookupError::NotFound(format!("rate table {table:?} does not exist"))
                })?;
            let rate = Rate::lookup(&index, number, at_ms)
                .map_err(|e| LookupError::BadTable(format!("rate table {table:?}: {e}")))?;
            if rate.is_some() {
                return Ok(rate);
            }
        }
        Ok(None)
    }
}
