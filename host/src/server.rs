//! Start and stop the host: open the store, install the admin token, start the policy
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
    /// The policy engine, for in-process use (tests, the SIP layer).
    pub policy: Arc<PolicyEngine>,
    /// The SIP layer.
    pub sip: SipServer,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stop serving, wait for in-flight requests, and release the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.sip.stop().await;
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
    let state = AppState::new(store, policy.clone(), Some(sip.core.clone()), config);
    let (stop, stopped) = oneshot::channel::<()>();
    let scheme = if https.is_some() { "https" } else { "http" };
    let task = tokio::spawn(async move {
        let router = api::router(state);
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
        policy,
        sip,
        stop,
        task,
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
