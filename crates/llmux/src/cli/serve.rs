//! `llmux serve`: run the gateway until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;

use llmux_server::ConfigSource;

use super::{init_logging, load};

pub async fn run(flag: Option<PathBuf>, listen: Option<String>) -> Result<(), String> {
    init_logging();
    let (source, mut config) = load(flag)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.server.listen))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let models: Vec<&str> = config.models.iter().map(|model| model.name.as_str()).collect();
    let admin = if config.server.master_key.is_some() { "enabled" } else { "disabled (no master key)" };
    let source_text = match &source {
        ConfigSource::File(path) => path.display().to_string(),
        ConfigSource::Default => "built-in default".to_owned(),
    };
    tracing::info!(%address, config = %source_text, storage = %llmux_config::redact_url(&config.storage.url), "llmux listening.");
    let model = models.first().copied().unwrap_or("mock");
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = writeln!(
        std::io::stdout().lock(),
        "llmux {} listening on http://{address} (config: {source_text}; admin API {admin})\nmodels: {}\n\nTry it:\n  \
         # 1. create a key (or: llmux keys create --name demo{})\n  \
         curl -s http://{address}/admin/keys -H \"Authorization: Bearer $LLMUX_MASTER_KEY\" -d '{{\"name\":\"demo\"}}'\n  \
         # 2. chat with it\n  \
         curl -s http://{address}/v1/chat/completions -H \"Authorization: Bearer sk-llmux-...\" \\\n    \
         -H 'content-type: application/json' -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'\n",
        env!("CARGO_PKG_VERSION"),
        models.join(", "),
        match &source {
            ConfigSource::File(path) => format!(" --config {}", path.display()),
            ConfigSource::Default => String::new(),
        },
    );
    llmux_server::serve(listener, source, config, shutdown_signal()).await
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
