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
    /// What the store may hold in memory and how long it keeps call records.
    #[serde(default)]
    pub store: StoreConfig,
    /// Lockout of API clients that keep presenting bad tokens.
    #[serde(default)]
    pub api_lockout: crate::api::lockout::LockoutConfig,
    /// Serve the API over HTTPS with this certificate (plain HTTP when unset).
    #[serde(default)]
    pub api_tls: Option<crate::tls::TlsFiles>,
    /// The web manager: who may reach it, sessions, login lockout.
    #[serde(default)]
    pub web: crate::api::session::WebConfig,
    /// Alarm thresholds and where alarms are posted.
    #[serde(default)]
    pub alarms: crate::runtime::alarms::AlarmConfig,
    /// The web manager's admin password (from `SWITCHYARD_ADMIN_PASSWORD`); when none
    /// and no user exists yet, an `admin` user is made with a generated password,
    /// printed once.
    #[serde(skip_serializing)]
    pub admin_password: Option<String>,
    /// What each tenant's data tables may hold together.
    #[serde(default)]
    pub table_quota: crate::store::TableQuota,
}

/// The store's bounds (`--store-cache-mb`, `--cdr-segment-mb`, `--cdr-retention-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// sled's page cache, MiB.
    pub cache_mb: u64,
    /// Call-record journal segment size, MiB: the active one's index is in memory
    /// (about 40 bytes a record, so 64 MiB of records is about 7 MB).
    pub cdr_segment_mb: u64,
    /// Days call records are kept; 0 keeps them for ever.
    pub cdr_retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let o = crate::store::StoreOptions::default();
        StoreConfig {
            cache_mb: o.cache_bytes >> 20,
            cdr_segment_mb: o.segment_bytes >> 20,
            cdr_retention_days: o.retention_days,
        }
    }
}

impl StoreConfig {
    /// As the store takes them.
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_mb.max(1) << 20,
            segment_bytes: self.cdr_segment_mb.clamp(1, 4095) << 20,
            retention_days: self.cdr_retention_days,
        }
    }
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
            store: StoreConfig::default(),
            api_lockout: Default::default(),
            api_tls: None,
            table_quota: Default::default(),
            web: Default::default(),
            alarms: Default::default(),
            admin_password: None,
        }
    }
}
