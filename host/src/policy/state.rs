//! What one invocation's wasmtime `Store` holds: an empty WASI context, the memory
//! cap, and the call context the host imports read (tenant, module, call id, logs).

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::log::Level;
use crate::runtime::Runtime;

/// One log line of a module, as `simulate` and the health view show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// "trace" .. "error", or "stdout" for what the module printed.
    pub level: String,
    /// The text.
    pub message: String,
    /// Call-ID of the call being decided.
    pub call_id: String,
    /// Unix milliseconds.
    pub at_ms: u64,
}

pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Who is running, for which call: what the host imports are scoped to.
pub(crate) struct CallContext {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tenant: String,
    pub(crate) module: String,
    pub(crate) call_id: String,
    /// Fixed clock for `simulate` (Unix ms); none reads the business clock.
    pub(crate) now_ms: Option<u64>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) dropped_logs: usize,
    /// Host calls refused because a quota was reached.
    pub(crate) quota_refusals: u32,
}

/// Denies memory growth past a cap and remembers that it did, so the failure is
/// reported as a memory breach rather than as the trap the guest's allocator raises.
pub(crate) struct MemoryCap {
    pub(crate) max_bytes: usize,
    pub(crate) breached: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.breached = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= super::limits::MAX_TABLE_ELEMENTS)
    }
}

/// The store data of one invocation.
pub(crate) struct PolicyState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) ctx: CallContext,
}

impl WasiView for PolicyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
