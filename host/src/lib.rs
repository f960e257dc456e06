//! # Switchyard host
//!
//! A programmable carrier softswitch. This crate is the native host; every per-call
//! decision is delegated to a WebAssembly module (see `wit/` and `guest-sdk/`).
//!
//! | module     | owns                                                              |
//! |------------|-------------------------------------------------------------------|
//! | [`sip`]    | SIP transports, transactions, the B2BUA calls, admission          |
//! | [`policy`] | wasmtime engine, sandboxed invocations, host imports, bindings    |
//! | [`store`]  | sled: module versions, bindings, tables, tokens, carrier, CDRs    |
//! | [`api`]    | the REST API under `/api/v1` (axum), bearer tokens with roles     |
//! | [`server`] | starting and stopping the whole host                              |
//! | [`cli`]    | the `switchyard` command: `serve` and the REST client commands    |
//! | [`demo`]   | the demo carrier a first run starts with                          |
//!
//! Dependencies point one way: `api` → `sip` → `policy` → `store`.

pub mod api;
pub mod billing;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod media;
pub mod names;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod sip;
pub mod store;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
