//! Start and stop the host: open the store, install the admin token and web user, start the policy
//! engine, seed the demo carrier on an empty store, start SIP, serve the REST API until
//! told to stop.

use crate::runtime::Runtime;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::Config;
use crate::policy::PolicyEngine;
use crate::sip::SipServer;
use crate::store::{Role, Store, TokenInfo};

/// A running host.
pub struct RunningServer {
    /// Where the REST API listens.
    pub api_addr: SocketAddr,
    /// The admin token generated at this start, if one was (shown once).
    pub generated_admin_token: Option<String>,
    /// The web manager's `admin` password generated at this start, if one was.
    pub generated_admin_password: Option<String>,
    /// The policy engine, for in-process use (tests, the SIP layer).
    pub policy: Arc<PolicyEngine>,
    /// The SIP layer.
    pub sip: SipServer,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// Samples the dashboard's history; it holds the store, so it goes first.
    history: JoinHandle<()>,
    /// The alarm monitor; it holds the store too.
    alarms: JoinHandle<()>,
}

impl RunningServer {
    /// Stop serving, wait for in-flight requests, and release the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.sip.stop().await;
        self.history.abort();
        self.alarms.abort();
        let _ = self.history.await;
        let _ = self.alarms.await;
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }

    /// Serve until the process gets Ctrl-C / SIGTERM.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// Start everything described by `config`.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let store = Store::open_with(&config.data_dir, config.store.options())
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let generated_admin_token = install_admin_token(&store, config.admin_token.as_deref())?;
    let generated_admin_password = {
        let (store, password) = (store.clone(), config.admin_password.clone());
        tokio::task::spawn_blocking(move || install_admin_user(&store, password)).await??
    };
    store.commit().await?;
    let clock = Arc::new(match config.settable_clock {
        true => Clock::settable(),
        false => Clock::system(),
    });
    // Live state, shared by the policy engine (its host imports) and the SIP layer.
    let runtime = Arc::new(Runtime::new(store.clone(), clock));
    let policy = {
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || PolicyEngine::start(runtime)).await??
    };
    if config.demo {
        let (store, policy) = (store.clone(), policy.clone());
        tokio::task::spawn_blocking(move || crate::demo::seed_if_empty(&store, &policy)).await??;
    }
    let sip = SipServer::start(config.sip.clone(), store.clone(), policy.clone(), runtime).await?;
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("binding the REST API to {}", config.api_listen))?;
    let api_addr = listener.local_addr()?;
    let https = match &config.api_tls {
        Some(files) => Some(crate::tls::server_config(files)?),
        None => None,
    };
    let web = config.web.clone();
    let state = AppState::new(store, policy.clone(), Some(sip.core.clone()), config);
    let history = api::dashboard::keep_history(state.clone());
    let alarms = api::alarms::keep_watch(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let scheme = if https.is_some() { "https" } else { "http" };
    let task = tokio::spawn(async move {
        let router = api::router(state).merge(crate::web::routes(web));
        if let Some(tls) = https {
            return api::https::serve(listener, router, tls, stopped).await;
        }
        // The peer's address reaches the handlers: lockouts are per source.
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%api_addr, %scheme, "REST API listening");
    Ok(RunningServer {
        api_addr,
        generated_admin_token,
        generated_admin_password,
        policy,
        sip,
        stop,
        task,
        history,
        alarms,
    })
}

/// Install the configured admin token, or generate one when no admin token exists.
fn install_admin_token(store: &Store, configured: Option<&str>) -> anyhow::Result<Option<String>> {
    let admin = |name: &str| TokenInfo {
        name: name.into(),
        role: Role::Admin,
        tenant: "default".into(),
        account: None,
        created_at_ms: crate::now_ms(),
    };
    if let Some(token) = configured {
        anyhow::ensure!(
            token.len() >= 16,
            "SWITCHYARD_ADMIN_TOKEN must be at least 16 characters"
        );
        if store.token_by_secret(token)?.is_none() {
            store.put_token(token, &admin("env-admin"))?;
        }
        return Ok(None);
    }
    if store.tokens()?.iter().any(|t| t.role == Role::Admin) {
        return Ok(None);
    }
    let token = crate::api::new_secret();
    store.put_token(&token, &admin("admin"))?;
    Ok(Some(token))
}

/// Make the web manager's `admin` user when no user exists: with the configured
/// password, else a generated one (returned, to be shown once).
fn install_admin_user(store: &Store, configured: Option<String>) -> anyhow::Result<Option<String>> {
    if !store.users()?.is_empty() {
        return Ok(None);
    }
    let generated = configured.is_none();
    let password = configured.unwrap_or_else(|| crate::api::new_secret()[..20].to_string());
    let admin = crate::store::UserInfo {
        name: "admin".into(),
        role: Role::Admin,
        tenant: "default".into(),
        account: None,
        created_at_ms: crate::now_ms(),
    };
    store.put_user(&admin, &crate::store::hash_password(&password))?;
    Ok(generated.then_some(password))
}
