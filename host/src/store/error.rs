//! Errors of the storage layer.

/// A storage failure. Callers map these to 500s: they are never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed (I/O, corruption).
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// Creating the data directory failed.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A value could not be encoded.
    #[error("encoding a stored value: {0}")]
    Encode(serde_json::Error),
    /// Something the change needs does not exist.
    #[error("{0} does not exist")]
    Missing(String),
    /// A call-record journal file is damaged, or a record could not be encoded.
    #[error("call records: {0}")]
    Corrupt(String),
    /// Writing call records failed; nothing of the batch was acknowledged.
    #[error("writing call records: {0}")]
    Write(String),
    /// A write would pass a quota; nothing was written.
    #[error("{0}")]
    Quota(String),
    /// A stored value could not be decoded (written by an incompatible version?).
    #[error("decoding a stored value: {0}")]
    Decode(serde_json::Error),
}

/// Result of storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
