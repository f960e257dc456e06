//! Errors of the policy engine that callers branch on.

use super::bindings::WORLD;

/// Why an uploaded module was refused. Each message tells the uploader what to fix.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over the size limit.
    #[error("module is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A core Wasm module rather than a component.
    #[error("this is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2` and the switchyard-sdk")]
    CoreModule,
    /// Not Wasm, or invalid.
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// Imports something the host does not provide.
    #[error("imports something Switchyard does not provide (only {WORLD} imports and WASI 0.2 are available): {0}")]
    UnsupportedImports(String),
    /// Does not export the policy interface.
    #[error("does not implement {WORLD}: {0}")]
    WrongWorld(String),
    /// A name is unusable.
    #[error("{0}")]
    BadName(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// Why a binding change was refused.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The module version named does not exist for the tenant.
    #[error("module version {0} does not exist")]
    UnknownVersion(String),
    /// A field is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The stored version no longer loads with this engine.
    #[error("module version {0} cannot be loaded: {1}")]
    Unloadable(String, String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}
