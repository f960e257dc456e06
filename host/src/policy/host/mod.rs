//! The host side of each WIT import, one file per interface, all implemented on
//! [`PolicyState`] and scoped to the calling module's tenant.

mod carrier;
mod clock;
mod gateways;
mod log;
mod rates;
mod state;
mod tables;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::{types, CallPolicy};
use super::state::PolicyState;

impl types::Host for PolicyState {}

/// Add WASI (with an empty context per store) and our imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PolicyState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    CallPolicy::add_to_linker::<PolicyState, HasSelf<PolicyState>>(linker, |s| s)?;
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> types::Error {
    types::Error::Other(e.to_string())
}
