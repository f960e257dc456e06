//! The `switchyard` command line: `serve`, and client commands that talk to a running
//! server's REST API (`module push|list|bind|rollback|simulate`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::config::{Config, DEFAULT_API_LISTEN, DEFAULT_DATA_DIR};

/// Switchyard: a programmable carrier softswitch.
#[derive(Parser)]
#[command(name = "switchyard", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the serve flags' size costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the softswitch on its embedded defaults (or the given flags).
    Serve(ServeArgs),
    /// Manage call-policy modules on a running server.
    #[command(subcommand)]
    Module(ModuleCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory.
    #[arg(long, env = "SWITCHYARD_DATA", default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// REST API listen address.
    #[arg(long, env = "SWITCHYARD_API_LISTEN", default_value = DEFAULT_API_LISTEN)]
    api_listen: SocketAddr,
    /// Largest module upload, bytes.
    #[arg(long, env = "SWITCHYARD_MAX_MODULE_BYTES", default_value_t = crate::policy::limits::DEFAULT_MAX_MODULE_BYTES)]
    max_module_bytes: usize,
    /// SIP listen addresses (UDP and TCP), comma-separated; the first is advertised.
    #[arg(long, env = "SWITCHYARD_SIP_LISTEN", value_delimiter = ',', default_value = crate::sip::DEFAULT_SIP_LISTEN)]
    sip_listen: Vec<SocketAddr>,
    /// Stay silent to unknown sources instead of answering 403 (SS_REPLY_UNAUTHORIZED off).
    #[arg(long, env = "SWITCHYARD_SIP_SILENT_TO_UNKNOWN")]
    silent_to_unknown: bool,
    /// Name the software in the User-Agent and Server headers we send; by default we
    /// send neither (SS_SIP_USER_AGENT_PRIVACY).
    #[arg(long, env = "SWITCHYARD_SIP_USER_AGENT")]
    sip_user_agent: Option<String>,
    /// SIP messages the trace keeps (searched and exported over REST); 0 = none.
    #[arg(long, env = "SWITCHYARD_SIP_TRACE_CAPACITY", default_value_t = crate::sip::trace::TraceConfig::default().capacity)]
    sip_trace_capacity: usize,
    /// Copy every SIP message to this HEP v3 collector (Homer, `sngrep -L udp:…`).
    #[arg(long, env = "SWITCHYARD_HEP")]
    hep: Option<std::net::SocketAddr>,
    /// The capture agent id our HEP copies carry.
    #[arg(long, env = "SWITCHYARD_HEP_AGENT_ID", default_value_t = crate::sip::trace::TraceConfig::default().hep_agent_id)]
    hep_agent_id: u32,
    /// Packets one source may send per `--flood-window-ms` before it is banned; 0 = no limit.
    #[arg(long, env = "SWITCHYARD_FLOOD_LIMIT", default_value_t = crate::sip::shield::ShieldConfig::default().flood_limit)]
    flood_limit: u32,
    /// The flood-control window, ms.
    #[arg(long, env = "SWITCHYARD_FLOOD_WINDOW_MS", default_value_t = crate::sip::shield::ShieldConfig::default().flood_window_ms)]
    flood_window_ms: u32,
    /// How long a flooding source is banned, s.
    #[arg(long, env = "SWITCHYARD_FLOOD_BAN_SECS", default_value_t = crate::sip::shield::ShieldConfig::default().flood_ban_secs)]
    flood_ban_secs: u32,
    /// Sources (addresses or CIDR) whose SIP packets are dropped unread, comma-separated.
    #[arg(long, env = "SWITCHYARD_SIP_DENY", value_delimiter = ',')]
    sip_deny: Vec<ipnet::IpNet>,
    /// Sources never banned, comma-separated.
    #[arg(long, env = "SWITCHYARD_SIP_ALLOW", value_delimiter = ',')]
    sip_allow: Vec<ipnet::IpNet>,
    /// Bad API tokens from one address within a minute before it is locked out for
    /// 5 minutes (429); 0 = never.
    #[arg(long, env = "SWITCHYARD_API_LOCKOUT_FAILURES", default_value_t = crate::api::lockout::LockoutConfig::default().max_failures)]
    api_lockout_failures: u32,
    /// Networks that may log in to the web manager, comma-separated (VOS3000 "Web Access
    /// Control"); any when unset. Bearer tokens are not affected.
    #[arg(long, env = "SWITCHYARD_WEB_ALLOW", value_delimiter = ',')]
    web_allow: Vec<ipnet::IpNet>,
    /// Alarm thresholds, per gateway and account overrides and the webhook, as a JSON
    /// file (the `alarms` object the README shows); the defaults when unset.
    #[arg(long, env = "SWITCHYARD_ALARMS")]
    alarms: Option<PathBuf>,
    /// Post every alarm raised and cleared to this URL as JSON (overrides the file's).
    #[arg(long, env = "SWITCHYARD_ALARM_WEBHOOK")]
    alarm_webhook: Option<String>,
    /// Listen for SIP over TLS here (sips:, conventionally port 5061); needs
    /// --tls-cert and --tls-key.
    #[arg(long, env = "SWITCHYARD_SIP_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    sip_tls_listen: Option<std::net::SocketAddr>,
    /// CA bundle (PEM) vendors reached over TLS must chain to; the system's when unset.
    #[arg(long, env = "SWITCHYARD_SIP_TLS_CA")]
    sip_tls_ca: Option<PathBuf>,
    /// Our certificate chain (PEM), for SIP over TLS and for --api-https.
    #[arg(long, env = "SWITCHYARD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve the REST API over HTTPS with --tls-cert and --tls-key.
    #[arg(long, env = "SWITCHYARD_API_HTTPS", requires_all = ["tls_cert", "tls_key"])]
    api_https: bool,
    /// Dynamic blacklist: calls a caller number must end within the window before it is
    /// judged (0 = off).
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_CALLS", default_value_t = 0)]
    auto_blacklist_calls: u32,
    /// Dynamic blacklist: the window, s.
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_WINDOW_SECS", default_value_t = crate::sip::auto_blacklist::AutoBlacklistConfig::default().window_secs)]
    auto_blacklist_window_secs: u32,
    /// Dynamic blacklist: listed when this share of its calls failed or were short.
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_RATIO", default_value_t = crate::sip::auto_blacklist::AutoBlacklistConfig::default().max_bad_ratio)]
    auto_blacklist_ratio: f64,
    /// Dynamic blacklist: an answered call shorter than this is short, s.
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_SHORT_SECS", default_value_t = crate::sip::auto_blacklist::AutoBlacklistConfig::default().short_call_secs)]
    auto_blacklist_short_secs: u32,
    /// Dynamic blacklist: listed when a number holds more calls than this at once (0 = off).
    #[arg(
        long,
        env = "SWITCHYARD_AUTO_BLACKLIST_CONCURRENT",
        default_value_t = 0
    )]
    auto_blacklist_concurrent: u32,
    /// Dynamic blacklist: how long a listing lasts, s.
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_SECS", default_value_t = crate::sip::auto_blacklist::AutoBlacklistConfig::default().list_secs)]
    auto_blacklist_secs: u32,
    /// Dynamic blacklist: also ban the source address of a listed number's call.
    #[arg(long, env = "SWITCHYARD_AUTO_BLACKLIST_SOURCES")]
    auto_blacklist_sources: bool,
    /// Do not create the demo carrier in an empty data directory.
    #[arg(long, env = "SWITCHYARD_NO_DEMO")]
    no_demo: bool,
    /// Let an admin move the clock that routing, calendars and rating read
    /// (`PUT /api/v1/clock`). For labs and tests; never on a live switch.
    #[arg(long, env = "SWITCHYARD_SETTABLE_CLOCK")]
    settable_clock: bool,
    /// sled's page cache, MiB (sled's own default is 1 GiB).
    #[arg(long, env = "SWITCHYARD_STORE_CACHE_MB", default_value_t = crate::store::DEFAULT_CACHE_MB)]
    store_cache_mb: u64,
    /// Call-record journal segment size, MiB (the active segment's index is in memory).
    #[arg(long, env = "SWITCHYARD_CDR_SEGMENT_MB", default_value_t = 64)]
    cdr_segment_mb: u64,
    /// Keep call records this many days (whole segments are deleted); 0 = for ever.
    #[arg(long, env = "SWITCHYARD_CDR_RETENTION_DAYS", default_value_t = 0)]
    cdr_retention_days: u32,
    /// RTP relay mode of gateways that set none: off, on or auto (SS_MEDIAPROXYMODE).
    #[arg(long, env = "SWITCHYARD_MEDIA_PROXY", default_value = "auto", value_parser = parse_media_proxy)]
    media_proxy: switchyard_model::MediaProxy,
    /// RTP relay ports, FIRST-LAST (SS_MEDIAPROXYPORT_START/END).
    #[arg(long, env = "SWITCHYARD_MEDIA_PORTS", default_value = "10000-20000", value_parser = parse_port_range)]
    media_ports: (u16, u16),
    /// End a relayed call when a side sends no RTP for this long, s; 0 = never
    /// (SS_RTP_TIMEOUT).
    #[arg(long, env = "SWITCHYARD_RTP_TIMEOUT_SECS", default_value_t = 30)]
    rtp_timeout_secs: u32,
}

fn parse_media_proxy(text: &str) -> Result<switchyard_model::MediaProxy, String> {
    serde_json::from_value(serde_json::Value::String(text.to_lowercase()))
        .map_err(|_| format!("{text:?}: use off, on or auto"))
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{text:?}: use FIRST-LAST, e.g. 10000-20000");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let (first, last): (u16, u16) = (
        first.trim().parse().map_err(|_| bad())?,
        last.trim().parse().map_err(|_| bad())?,
    );
    if first >= last || first < 1024 {
        return Err(format!(
            "{text:?}: the range must be above 1023 and not empty"
        ));
    }
    Ok((first, last))
}

#[derive(Args)]
struct ClientArgs {
    /// Server URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API token.
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    token: String,
    /// Act for this tenant (admin tokens only).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Upload a component (.wasm); prints its version id.
    Push {
        #[command(flatten)]
        client: ClientArgs,
        /// The .wasm file.
        file: PathBuf,
        /// Module name.
        #[arg(long)]
        name: String,
        /// Description of this version.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List modules and versions.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Bind a module version to a scope (global, account:<id>, gateway:<id>).
    Bind {
        #[command(flatten)]
        client: ClientArgs,
        /// Scope.
        scope: String,
        /// Module name.
        #[arg(long)]
        module: String,
        /// Version id.
        #[arg(long)]
        version: String,
        /// Canary version id.
        #[arg(long)]
        canary: Option<String>,
        /// Canary share of calls, percent.
        #[arg(long, default_value_t = 10.0)]
        percent: f64,
        /// CPU deadline per decision, ms.
        #[arg(long)]
        deadline_ms: Option<u32>,
        /// Memory cap, MiB.
        #[arg(long)]
        memory_mib: Option<u32>,
        /// Fallback: reject with this SIP code when the module fails.
        #[arg(long, conflicts_with = "fallback_routes")]
        fallback_reject: Option<u16>,
        /// Fallback: these routing gateways (comma-separated) when the module fails.
        #[arg(long, value_delimiter = ',')]
        fallback_routes: Option<Vec<String>>,
    },
    /// Restore the binding a scope had before its last change.
    Rollback {
        #[command(flatten)]
        client: ClientArgs,
        /// Scope.
        scope: String,
    },
    /// Run a call record (JSON file) through a module version.
    Simulate {
        #[command(flatten)]
        client: ClientArgs,
        /// Module name.
        #[arg(long)]
        module: String,
        /// Version id.
        #[arg(long)]
        version: String,
        /// Hook: screen, route or on_attempt_failed.
        #[arg(long, default_value = "route")]
        hook: String,
        /// CPU deadline for the decision, ms (the server's default when unset).
        #[arg(long)]
        deadline_ms: Option<u32>,
        /// JSON file with the call (fields not given take defaults).
        call: PathBuf,
    },
}

impl Cli {
    /// Run the parsed command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(a) => serve(a).await,
            Command::Module(m) => module(m).await,
        }
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let tls_files = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
        _ => None,
    };
    let sip_tls = a
        .sip_tls_listen
        .zip(tls_files.clone())
        .map(|(listen, files)| crate::sip::SipTls {
            listen,
            files,
            ca: a.sip_tls_ca,
        });
    let mut alarms: crate::runtime::alarms::AlarmConfig = match &a.alarms {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the alarm settings {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("the alarm settings {}", path.display()))?
        }
        None => Default::default(),
    };
    if a.alarm_webhook.is_some() {
        alarms.webhook = a.alarm_webhook;
    }
    let config = Config {
        data_dir: a.data,
        api_listen: a.api_listen,
        admin_token: std::env::var("SWITCHYARD_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        max_module_bytes: a.max_module_bytes,
        sip: crate::sip::SipConfig {
            listen: a.sip_listen,
            reply_unauthorized: !a.silent_to_unknown,
            user_agent: a.sip_user_agent,
            shield: crate::sip::shield::ShieldConfig {
                flood_limit: a.flood_limit,
                flood_window_ms: a.flood_window_ms,
                flood_ban_secs: a.flood_ban_secs,
                deny: a.sip_deny,
                allow: a.sip_allow,
                ..Default::default()
            },
            media: crate::media::MediaConfig {
                proxy_mode: a.media_proxy,
                port_start: a.media_ports.0,
                port_end: a.media_ports.1,
                rtp_timeout_secs: a.rtp_timeout_secs,
            },
            tls: sip_tls,
            auto_blacklist: crate::sip::auto_blacklist::AutoBlacklistConfig {
                min_calls: a.auto_blacklist_calls,
                window_secs: a.auto_blacklist_window_secs,
                max_bad_ratio: a.auto_blacklist_ratio,
                short_call_secs: a.auto_blacklist_short_secs,
                max_concurrent: a.auto_blacklist_concurrent,
                list_secs: a.auto_blacklist_secs,
                ban_sources: a.auto_blacklist_sources,
            },
            trace: crate::sip::trace::TraceConfig {
                capacity: a.sip_trace_capacity,
                hep: a.hep,
                hep_agent_id: a.hep_agent_id,
                ..Default::default()
            },
            ..Default::default()
        },
        demo: !a.no_demo,
        settable_clock: a.settable_clock,
        store: crate::config::StoreConfig {
            cache_mb: a.store_cache_mb,
            cdr_segment_mb: a.cdr_segment_mb,
            cdr_retention_days: a.cdr_retention_days,
        },
        api_lockout: crate::api::lockout::LockoutConfig {
            max_failures: a.api_lockout_failures,
            ..Default::default()
        },
        api_tls: tls_files.filter(|_| a.api_https),
        table_quota: Default::default(),
        web: crate::api::session::WebConfig {
            allow: a.web_allow,
            ..Default::default()
        },
        admin_password: std::env::var("SWITCHYARD_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        alarms,
    };
    let server = crate::server::start(config).await?;
    if let Some(token) = &server.generated_admin_token {
        println!("admin token (shown once; keep it): {token}");
    }
    if let Some(password) = &server.generated_admin_password {
        println!("web manager user admin, password (shown once; keep it): {password}");
    }
    println!("switchyard SIP on {} (UDP and TCP)", server.sip.addr);
    if let Some(tls) = server.sip.tls_addr {
        println!("switchyard SIP over TLS on {tls}");
    }
    let scheme = if a.api_https { "https" } else { "http" };
    println!(
        "switchyard REST API on {scheme}://{}/api/v1",
        server.api_addr
    );
    println!("switchyard web manager on {scheme}://{}/", server.api_addr);
    server.run_until_signal().await
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    tenant: Option<String>,
}

impl Client {
    fn new(a: ClientArgs) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: a.url.trim_end_matches('/').into(),
            token: a.token,
            tenant: a.tenant,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(t) = &self.tenant {
            req = req.query(&[("tenant", t)]);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Wasm(bytes)) => req.header("content-type", "application/wasm").body(bytes),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("connecting to {}", self.base))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{status}: {}",
                value["error"]["message"].as_str().unwrap_or("no details")
            );
        }
        Ok(value)
    }
}

enum Body {
    Json(Value),
    Wasm(Vec<u8>),
}

async fn module(cmd: ModuleCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let out = match cmd {
        ModuleCommand::Push {
            client,
            file,
            name,
            description,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = format!("/modules/{name}?description={}", urlencode(&description));
            Client::new(client)
                .send(Method::POST, &path, Some(Body::Wasm(bytes)))
                .await?
        }
        ModuleCommand::List { client } => {
            Client::new(client)
                .send(Method::GET, "/modules", None)
                .await?
        }
        ModuleCommand::Bind {
            client,
            scope,
            module,
            version,
            canary,
            percent,
            deadline_ms,
            memory_mib,
            fallback_reject,
            fallback_routes,
        } => {
            let mut body = json!({ "module": module, "version": version });
            if let Some(c) = canary {
                body["canary"] = json!({ "version": c, "percent": percent });
            }
            if let Some(d) = deadline_ms {
                body["deadline_ms"] = json!(d);
            }
            if let Some(m) = memory_mib {
                body["memory_mib"] = json!(m);
            }
            if let Some(code) = fallback_reject {
                body["fallback"] = json!({ "kind": "reject", "code": code, "reason": "Routing policy unavailable" });
            }
            if let Some(gateways) = fallback_routes {
                body["fallback"] = json!({ "kind": "routes", "gateways": gateways });
            }
            Client::new(client)
                .send(
                    Method::PUT,
                    &format!("/bindings/{scope}"),
                    Some(Body::Json(body)),
                )
                .await?
        }
        ModuleCommand::Rollback { client, scope } => {
            Client::new(client)
                .send(Method::POST, &format!("/bindings/{scope}/rollback"), None)
                .await?
        }
        ModuleCommand::Simulate {
            client,
            module,
            version,
            hook,
            deadline_ms,
            call,
        } => {
            let text = std::fs::read_to_string(&call)
                .with_context(|| format!("reading {}", call.display()))?;
            let call: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", call.display()))?;
            let path = format!("/modules/{module}/versions/{version}/simulate");
            let mut body = json!({ "hook": hook, "call": call });
            if let Some(d) = deadline_ms {
                body["deadline_ms"] = json!(d);
            }
            Client::new(client)
                .send(Method::POST, &path, Some(Body::Json(body)))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
