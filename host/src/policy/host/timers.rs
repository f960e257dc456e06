//! WASI timers fire at once. A decision has no reason to wait, and a wait inside a host
//! call uses no CPU, so the CPU deadline could not stop a module that sleeps: it would
//! hold its worker, and its call, for as long as it asked. With zero-length timers a
//! sleep returns at once and a sleeping loop spins, which the CPU deadline does stop.

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::DynPollable;

use super::PolicyState;

/// The interface wasmtime-wasi (pinned in the workspace) links; a guest importing any
/// 0.2.x version resolves to it. `tests/all/hostile.rs` fails if this stops matching.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replace WASI's timer subscriptions (already in `linker`) with ones that fire at once.
pub(super) fn add_to_linker(linker: &mut Linker<PolicyState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |store, (_,): (u64,)| fire_now(store))?;
    clock.func_wrap("subscribe-instant", |store, (_,): (u64,)| fire_now(store))?;
    linker.allow_shadowing(false);
    Ok(())
}

fn fire_now(
    mut store: StoreContextMut<'_, PolicyState>,
) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let mut clocks = store.data_mut().clocks();
    Ok((monotonic_clock::Host::subscribe_duration(&mut clocks, 0)?,))
}
