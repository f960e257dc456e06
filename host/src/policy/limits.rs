//! Bounds on what a module may use and return. Each is named with its unit.

/// Default CPU deadline of one decision, milliseconds.
pub const DEFAULT_DEADLINE_MS: u32 = 5;
/// Highest deadline a binding may ask for, milliseconds.
pub const MAX_DEADLINE_MS: u32 = 1_000;
/// Default memory cap of one instance, MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 16;
/// Highest memory cap a binding may ask for, MiB (also the pooling allocator's slot size).
pub const MAX_MEMORY_MIB: u32 = 64;
/// A run may hold its worker for this many times its CPU deadline in wall time...
pub const WALL_BACKSTOP_FACTOR: u64 = 10;
/// ...plus this, milliseconds, before it is stopped even though its CPU time is left.
pub const WALL_BACKSTOP_SLACK_MS: u64 = 100;
/// Largest table (funcref) a module may grow to, elements.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Default largest module upload, bytes.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 10 << 20;

/// Most attempts a decision may list.
pub const MAX_ATTEMPTS: usize = 32;
/// Longest gateway id, callee, caller or display name, bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Longest header value a decision may set, bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 1_024;
/// Most headers an attempt may add or remove.
pub const MAX_HEADERS_PER_ATTEMPT: usize = 32;
/// Longest per-attempt timeout, milliseconds (SIP's Timer B is 32 s; progress may run longer).
pub const MAX_ATTEMPT_TIMEOUT_MS: u32 = 300_000;

/// Log lines kept per invocation (the rest are counted as dropped).
pub const MAX_LOG_LINES_PER_CALL: usize = 100;
/// Longest log line, bytes.
pub const MAX_LOG_LINE_BYTES: usize = 4_096;
/// Bytes of stdout+stderr kept per invocation.
pub const MAX_STDIO_BYTES: usize = 16 * 1024;
/// Recent log lines kept per module version for the health view.
pub const RECENT_LOG_LINES: usize = 200;

/// Longest module state key, bytes.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Longest module state value, bytes.
pub const MAX_STATE_VALUE_BYTES: usize = 64 * 1024;
/// Module state totals: per module and per tenant over all its modules. A hostile
/// module once wrote 23 MiB in five decisions; now it stops at 4 MiB.
pub const STATE_QUOTA: crate::store::StateQuota = crate::store::StateQuota {
    module_keys: 10_000,
    module_bytes: 4 << 20,
    tenant_keys: 100_000,
    tenant_bytes: 64 << 20,
};
/// Bytes of log lines one module may send to the switch's log per second; past
/// it, lines are still kept for the call (within its bound) but not logged.
pub const MAX_LOG_BYTES_PER_SEC: u64 = 64 * 1024;
/// Counter bounds: the counters are runtime state.
pub use crate::runtime::{MAX_COUNTER_EVENTS, MAX_COUNTER_KEYS};
/// Longest counter window, seconds (one day).
pub const MAX_COUNTER_WINDOW_SECS: u32 = 86_400;
/// Most rows one `prefixes` call returns.
pub const MAX_TABLE_ROWS_PER_CALL: u32 = 1_000;
