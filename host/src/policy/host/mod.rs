//! The host side of each WIT import, one file per interface, all implemented on
//! [`PolicyState`] and scoped to the calling module's tenant.

mod carrier;
mod clock;
mod gateways;
mod log;
mod rates;
mod state;
mod tables;
mod timers;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::{types, CallPolicy, HostError};
use super::state::PolicyState;
use crate::store::CarrierObject;

/// Add WASI (with an empty context per store, and timers that fire at once) and our
/// imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PolicyState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    timers::add_to_linker(linker)?;
    CallPolicy::add_to_linker::<PolicyState, HasSelf<PolicyState>>(linker, |s| s)?;
    Ok(())
}

impl PolicyState {
    /// What time it is for this run: simulate's fixed instant, else the business clock.
    fn now_ms(&self) -> u64 {
        self.ctx
            .now_ms
            .unwrap_or_else(|| self.ctx.runtime.clock.now_ms())
    }

    /// The calling tenant's `T` with `id` (`what` names it in the error); another
    /// tenant's answers as unknown.
    fn owned<T: CarrierObject>(&self, id: &str, what: &str) -> Result<T, HostError> {
        match self
            .ctx
            .runtime
            .store
            .carrier_get::<T>(id)
            .map_err(internal)?
        {
            Some(object) if object.tenant() == self.ctx.tenant => Ok(object),
            _ => Err(types::Error::NotFound(format!("{what} {id:?}")).into()),
        }
    }
}

/// A fault of the host's own (the store failed): a trap, not an error the module
/// could act on.
fn internal(e: impl std::fmt::Display) -> HostError {
    HostError::trap(wasmtime::Error::msg(format!("host fault: {e}")))
}

impl types::Host for PolicyState {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        err.downcast()
    }
}
