//! # Switchyard host
//!
//! A programmable carrier softswitch. This crate is the native host; every per-call
//! decision is delegated to a WebAssembly module (see `wit/` and `guest-sdk/`).
//!
//! Layers, lowest first; each imports only those below it (the vocabulary is the
//! `switchyard-model` crate, below them all):
//!
//! | module      | owns                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | [`store`]   | persistence: sled and the call-record journal                     |
//! | [`runtime`] | live state: gateway health and load, traffic, pools, counters     |
//! | [`billing`] | rates, calendars, authorisation and settlement                    |
//! | [`media`]   | media plans, the RTP relay, SDP edits, codecs, DTMF               |
//! | [`policy`]  | wasmtime engine, sandboxed invocations, host imports, bindings    |
//! | [`sip`]     | syntax, transport, transactions, dialogs, auth, the B2BUA phases  |
//! | [`api`]     | the REST API under `/api/v1` (axum), bearer tokens with roles     |
//! | [`server`]  | starting and stopping the whole host                              |
//! | [`cli`]     | the `switchyard` command: `serve` and the REST client commands    |
//! | [`demo`]    | the demo carrier a first run starts with                          |

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
pub mod tls;
pub mod web;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1_000
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
