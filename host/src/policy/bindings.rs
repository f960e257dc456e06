//! The one `bindgen!` of the host, over the workspace's `wit/` folder. The generated
//! code stays private; the rest of the host uses the re-exports.

mod generated {
    wasmtime::component::bindgen!({
        world: "call-policy",
        path: "../wit",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        // Host imports return `HostError`: the WIT error a module can handle, or a
        // trap for a fault of the host's own (a store error), which ends the run so
        // the binding's fallback applies instead of the module guessing at text.
        imports: { default: trappable },
        trappable_error_type: { "switchyard:callctl/types.error" => crate::policy::bindings::HostError },
    });
}

/// What a host import fails with: a WIT `error` for the module, or a trap.
pub(crate) type HostError = wasmtime_wasi::TrappableError<types::Error>;

pub(crate) use generated::switchyard::callctl::{
    carrier, clock, gateways, log, rates, state, tables, types,
};
pub(crate) use generated::{CallPolicy, CallPolicyPre};

/// The exported interface a module must implement, as wasmtime names it.
pub const POLICY_INTERFACE: &str = "switchyard:callctl/policy@0.1.0";
/// The world, for messages and module metadata.
pub const WORLD: &str = "switchyard:callctl/call-policy@0.1.0";
