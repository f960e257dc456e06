//! Test harness: a real switchyard (REST API on 127.0.0.1, sled in a temp dir) started
//! in-process, the guest components built by `scripts/build-guests`, a JSON client.

use std::path::{Path, PathBuf};

pub mod sip;

use anyhow::{Context, Result};
use serde_json::Value;
use switchyard::config::Config;
use switchyard::server::RunningServer;

/// The admin token every test server is started with.
pub const ADMIN: &str = "test-admin-token-0123456789";
/// The web manager password of the `admin` user the tests start with.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A guest component's bytes, by crate name (`prefix_router`, `guest_trap` ...).
pub fn guest(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = dir
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-guests first", path.display()))
}

/// Hex sha256, the version id of a component.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A server under test.
pub struct TestServer {
    /// The running host.
    pub server: RunningServer,
    /// Its data directory.
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

impl TestServer {
    /// Start on a free loopback port over `data_dir`.
    pub async fn start(data_dir: &Path) -> Result<TestServer> {
        Self::start_with(
            data_dir,
            switchyard::policy::limits::DEFAULT_MAX_MODULE_BYTES,
        )
        .await
    }

    /// Start with a module size limit.
    pub async fn start_with(data_dir: &Path, max_module_bytes: usize) -> Result<TestServer> {
        Self::start_configured(data_dir, |c| c.max_module_bytes = max_module_bytes).await
    }

    /// Start with test defaults (SIP on a free loopback port, no demo carrier) changed
    /// by `configure`.
    pub async fn start_configured(
        data_dir: &Path,
        configure: impl FnOnce(&mut Config),
    ) -> Result<TestServer> {
        let mut config = Config {
            data_dir: data_dir.into(),
            api_listen: "127.0.0.1:0".parse()?,
            admin_token: Some(ADMIN.into()),
            max_module_bytes: switchyard::policy::limits::DEFAULT_MAX_MODULE_BYTES,
            sip: switchyard::sip::SipConfig {
                listen: vec!["127.0.0.1:0".parse()?],
                ..Default::default()
            },
            demo: false,
            settable_clock: false,
            store: Default::default(),
            api_lockout: Default::default(),
            api_tls: None,
            table_quota: Default::default(),
            web: Default::default(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            alarms: Default::default(),
        };
        configure(&mut config);
        Ok(TestServer {
            server: switchyard::server::start(config).await?,
            data_dir: data_dir.into(),
            http: reqwest::Client::new(),
        })
    }

    /// Stop it (releasing the store).
    pub async fn stop(self) -> Result<()> {
        self.server.stop().await
    }

    /// Send a request; returns status and JSON body (Null when not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Body>,
    ) -> Result<(u16, Value)> {
        let url = format!("http://{}{path}", self.server.api_addr);
        let mut req = self.http.request(method.parse()?, url).bearer_auth(token);
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Bytes(b, ct)) => req.header("content-type", ct).body(b),
            None => req,
        };
        let resp = req.send().await.context("request")?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// JSON request as admin.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        self.call(method, path, ADMIN, body.map(Body::Json)).await
    }

    /// Upload a component as `token`; returns (status, body).
    pub async fn upload(&self, token: &str, name: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
        self.call(
            "POST",
            &format!("/api/v1/modules/{name}"),
            token,
            Some(Body::Bytes(bytes, "application/wasm")),
        )
        .await
    }
}

/// A request body.
pub enum Body {
    /// JSON.
    Json(Value),
    /// Raw bytes with a content type.
    Bytes(Vec<u8>, &'static str),
}

/// A fresh temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Create one.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-{tag}-{}-{}",
            std::process::id(),
            switchyard::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A call record for in-process decisions.
pub fn call(call_id: &str, account: &str, callee: &str) -> switchyard::policy::Call {
    use switchyard::policy::{Call, Caller, CallerHeader};
    Call {
        call_id: call_id.into(),
        account: account.into(),
        tenant: "default".into(),
        ingress_gateway: String::new(),
        source_address: "127.0.0.1:5060".into(),
        caller: Caller {
            user: "02079460000".into(),
            display: None,
            source: CallerHeader::From,
        },
        callee: callee.into(),
        request_uri: format!("sip:{callee}@127.0.0.1"),
        headers: vec![],
        codecs: vec!["PCMA".into()],
        arrived_at_ms: switchyard::now_ms(),
    }
}

/// Poll `check` every 50 ms until it gives a value; an error naming `what` when it
/// has not within `within`. For conditions a test must see come true.
pub async fn eventually<T, F, Fut>(
    within: std::time::Duration,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
