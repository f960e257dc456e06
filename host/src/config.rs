//! Configuration of `switchyard serve`. Embedded defaults make a first run safe:
//! data in `./data`, REST on 127.0.0.1:8080, SIP on 127.0.0.1:5060, and a demo carrier.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::limits::DEFAULT_MAX_MODULE_BYTES;
use crate::sip::SipConfig;

/// Default REST listen address.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Everything `serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Where sled keeps its files.
    pub data_dir: PathBuf,
    /// REST API address (port 0 picks a free port).
    pub api_listen: SocketAddr,
    /// Admin token to install at start (from `SWITCHYARD_ADMIN_TOKEN`); when none and
    /// no admin token exists yet, one is generated and printed once.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Largest module upload, bytes.
    pub max_module_bytes: usize,
    /// SIP settings.
    #[serde(default)]
    pub sip: SipConfig,
    /// Create the demo carrier when the data directory is empty.
    #[serde(default = "yes")]
    pub demo: bool,
    /// Let an admin move the business clock (`PUT /api/v1/clock`): labs and tests only.
    #[serde(default)]
    pub settable_clock: bool,
}

fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: DEFAULT_DATA_DIR.into(),
            api_listen: DEFAULT_API_LISTEN.parse().expect("valid default address"),
            admin_token: None,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            sip: SipConfig::default(),
            demo: true,
            settable_clock: false,
        }
    }
}
