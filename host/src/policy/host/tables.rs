use super::super::bindings::tables::{Host, Row};
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::super::limits::MAX_TABLE_ROWS_PER_CALL;
use super::{internal, PolicyState};
use crate::store::TableIndex;

fn to_wit(rows: impl IntoIterator<Item = crate::store::Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|r| Row {
            key: r.key,
            fields: r.fields,
        })
        .collect()
}

impl PolicyState {
    fn index(&self, table: &str) -> Result<std::sync::Arc<TableIndex>, HostError> {
        self.ctx
            .runtime
            .table(&self.ctx.tenant, table)
            .map_err(internal)?
            .ok_or_else(|| Error::NotFound(format!("table {table:?}")).into())
    }
}

impl Host for PolicyState {
    fn exact(&mut self, table: String, key: String) -> Result<Vec<Row>, HostError> {
        Ok(to_wit(self.index(&table)?.exact(&key)))
    }

    fn longest_prefix(&mut self, table: String, number: String) -> Result<Vec<Row>, HostError> {
        Ok(to_wit(self.index(&table)?.longest_prefix(&number)))
    }

    fn prefixes(
        &mut self,
        table: String,
        number: String,
        max_rows: u32,
    ) -> Result<Vec<Row>, HostError> {
        let max = max_rows.min(MAX_TABLE_ROWS_PER_CALL) as usize;
        Ok(to_wit(
            self.index(&table)?.prefixes(&number).take(max).cloned(),
        ))
    }
}
