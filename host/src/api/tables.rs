//! Data tables: load (JSON or CSV), list, read, delete.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::store::{Row, TableInfo};

/// Most rows a table may hold.
pub(super) const MAX_TABLE_ROWS: usize = 2_000_000;
/// Largest table upload, bytes.
pub(super) const MAX_TABLE_BYTES: usize = 256 << 20;
/// Longest key, bytes.
pub(super) const MAX_KEY_BYTES: usize = 128;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/tables", get(list)).route(
        "/api/v1/tables/{name}",
        get(show)
            .put(put)
            .delete(remove)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_TABLE_BYTES)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTable {
    rows: Vec<Row>,
}

/// CSV without quoting: `key,field,field...` per line; blank lines and `#` comments skipped.
fn parse_csv(text: &str) -> Vec<Row> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut cells = line.split(',').map(|c| c.trim().to_string());
            let key = cells.next().unwrap_or_default();
            Row {
                key,
                fields: cells.collect(),
            }
        })
        .collect()
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<ApiJson<TableInfo>> {
    crate::names::check("table name", &name).map_err(ApiError::BadRequest)?;
    let csv = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let rows = if csv {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::BadRequest("CSV must be UTF-8".into()))?;
        parse_csv(text)
    } else {
        serde_json::from_slice::<JsonTable>(&body)
            .map_err(|e| ApiError::BadRequest(format!("table body: {e} (send {{\"rows\": [{{\"key\": ..., \"fields\": [...]}}]}} or text/csv)")))?
            .rows
    };
    if rows.len() > MAX_TABLE_ROWS {
        return Err(ApiError::BadRequest(format!(
            "{} rows; a table holds at most {MAX_TABLE_ROWS}",
            rows.len()
        )));
    }
    if let Some((i, r)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.key.len() > MAX_KEY_BYTES || r.key.contains('\0'))
    {
        return Err(ApiError::BadRequest(format!(
            "row {i}: key {:?} is over {MAX_KEY_BYTES} bytes or has NUL",
            r.key
        )));
    }
    let info = TableInfo::of(&caller.tenant, &name, &rows);
    // The tenant's tables together stay within its quota (this one's old rows aside).
    let quota = state.config.table_quota;
    let others = state.store.table_usage(&caller.tenant, &name)?;
    let (rows_after, bytes_after) = (others.rows + info.rows as u64, others.bytes + info.bytes);
    if rows_after > quota.tenant_rows || bytes_after > quota.tenant_bytes {
        return Err(ApiError::TooLarge(format!(
            "the tenant's tables would hold {rows_after} rows and {bytes_after} bytes; \
             its quota is {} rows and {} bytes",
            quota.tenant_rows, quota.tenant_bytes
        )));
    }
    state.store.put_table(&info, &rows)?;
    state.store.commit().await?;
    // Visible to the next decision; calls deciding right now keep the index they hold.
    state
        .policy
        .runtime()
        .replace_table(&caller.tenant, &name, Some(rows));
    Ok(ApiJson(info))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Vec<TableInfo>>> {
    Ok(ApiJson(state.store.tables(&caller.tenant)?))
}

/// `?format=csv` exports a table in the form a PUT takes.
#[derive(Deserialize)]
struct ShowQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ShowQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (info, rows) = state
        .store
        .table(&caller.tenant, &name)?
        .ok_or_else(|| ApiError::NotFound(format!("table {name:?}")))?;
    match q.format.as_deref() {
        None | Some("json") => Ok(ApiJson(json!({ "info": info, "rows": rows })).into_response()),
        Some("csv") => {
            let mut csv = String::with_capacity(rows.len() * 32);
            for row in &rows {
                csv.push_str(&row.key);
                for field in &row.fields {
                    csv.push(',');
                    csv.push_str(field);
                }
                csv.push('\n');
            }
            Ok(([(axum::http::header::CONTENT_TYPE, "text/csv")], csv).into_response())
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    if !state.store.delete_table(&caller.tenant, &name)? {
        return Err(ApiError::NotFound(format!("table {name:?}")));
    }
    state.store.commit().await?;
    state
        .policy
        .runtime()
        .replace_table(&caller.tenant, &name, None);
    Ok(ApiJson(json!({ "deleted": name })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_rows_skip_comments_and_blanks() {
        let rows = super::parse_csv("# prefix,gateway\n44, uk-a ,x\n\n4420,london\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, "44");
        assert_eq!(rows[0].fields, ["uk-a", "x"]);
        assert_eq!(rows[1].fields, ["london"]);
    }
}
