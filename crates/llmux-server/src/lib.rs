//! The HTTP edge: our accept loop (`listener`) serving axum routes for the OpenAI surface, health, metrics and the admin
//! API. Handlers are thin: they pull what the gateway needs out of the request, call
//! it, and render the answer or the error in the caller's dialect.

pub mod api;
pub mod app;
pub mod error;
pub mod listener;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use llmux_config::{Config, ConfigErrors};
use llmux_gateway::Gateway;
use tokio::net::TcpListener;

pub use app::{AppState, app};

/// Where the configuration comes from, so it can be loaded again on reload.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// No file: the built-in default (mock + providers from the environment).
    Default,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        let env = |name: &str| std::env::var(name).ok();
        match self {
            ConfigSource::File(path) => Config::load(path, &env),
            ConfigSource::Default => llmux_config::default_config(&env),
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
/// and streams finish (up to `server.shutdown_grace_ms`), and drains the usage ledger.
pub async fn serve(
    listener: TcpListener,
    source: ConfigSource,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    // Registered before anything is served: a SIGHUP during start-up must reload (or
    // be a no-op), never take the default action and end the process.
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    listener::raise_nofile_limit();
    let store = llmux_store::open(&config.storage.url).await.map_err(|error| error.to_string())?;
    let grace = config.server.shutdown_grace;
    let (gateway, background) = Gateway::start(config, store).await?;
    let state = AppState::new(gateway.clone(), source.clone());
    let router = app(state.clone());

    #[cfg(unix)]
    if let Some(hangups) = hangups {
        tokio::spawn(reload_on_sighup(state.clone(), hangups));
    }

    let limits = listener::Limits::from_config(&gateway.runtime().config.server);
    listener::run(listener, router, limits, state.connections.clone(), shutdown, grace).await;
    background.shutdown(Duration::from_secs(30)).await;
    tracing::info!("Usage ledger flushed; bye.");
    drop(state);
    Ok(())
}

/// Reloads the configuration from `state.source`; a bad config is refused and the
/// old one keeps serving.
pub fn reload(state: &AppState) -> Result<(), String> {
    let config = state.source.load().map_err(|errors| errors.to_string())?;
    let old = state.gateway.runtime();
    if config.server.listen != old.config.server.listen {
        tracing::warn!(listen = %config.server.listen, "`server.listen` changed; it takes effect on restart.");
    }
    let (new, old_limits) =
        (listener::Limits::from_config(&config.server), listener::Limits::from_config(&old.config.server));
    if format!("{new:?}") != format!("{old_limits:?}") {
        tracing::warn!("Connection limits in `[server]` changed; they take effect on restart.");
    }
    state.gateway.reload(config)?;
    tracing::info!("Configuration reloaded.");
    Ok(())
}

#[cfg(unix)]
async fn reload_on_sighup(state: AppState, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        if let Err(error) = reload(&state) {
            tracing::error!(%error, "Reload refused; the previous configuration keeps serving.");
        }
    }
}
