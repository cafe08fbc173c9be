//! The subcommands, one file each; what they share is here: finding and loading the
//! config, opening the store, logging, telling the fleet about a change, and the limit
//! flags keys and teams share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use llmux_config::Config;
use llmux_fleet::FleetEvent;
use llmux_gateway::keys::BudgetInput;
use llmux_server::ConfigSource;
use llmux_store::Store;

mod admin_client;
pub mod check;
pub mod keys;
pub mod serve;
pub mod teams;
pub mod usage;

/// Picks the config: the flag, `$LLMUX_CONFIG`, `./llmux.toml`, or the default.
fn source(flag: Option<PathBuf>) -> ConfigSource {
    if let Some(path) = flag {
        return ConfigSource::File(path);
    }
    if let Ok(path) = std::env::var(llmux_config::env_vars::LLMUX_CONFIG)
        && !path.is_empty()
    {
        return ConfigSource::File(PathBuf::from(path));
    }
    if Path::new("llmux.toml").exists() {
        return ConfigSource::File(PathBuf::from("llmux.toml"));
    }
    ConfigSource::Default
}

fn load(flag: Option<PathBuf>) -> Result<(ConfigSource, Config), String> {
    let source = source(flag);
    let config = source.load().map_err(|errors| errors.to_string())?;
    Ok((source, config))
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    llmux_store::open(&config.storage.url).await.map_err(|error| error.to_string())
}

/// The config and its store: what every keys and teams subcommand starts from.
async fn config_and_store(flag: Option<PathBuf>) -> Result<(Config, Arc<dyn Store>), String> {
    let (_, config) = load(flag)?;
    let store = open_store(&config).await?;
    Ok((config, store))
}

fn init_logging() {
    let filter = std::env::var(llmux_config::env_vars::LLMUX_LOG).unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Tells running gateways of the fleet (with Redis) about a change at once; without
/// Redis, or if it does not answer, they pick it up within `server.key_refresh_ms`.
async fn announce(config: &Config, event: FleetEvent) {
    if let Err(error) = llmux_gateway::fleet::announce_now(&config.storage, event).await {
        eprintln!("note: running gateways will see this within server.key_refresh_ms (Redis: {error})");
    }
}

/// Prints an admin-API view as indented JSON.
fn print_pretty(view: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(view).unwrap_or_default());
}

/// `{"<field>": [views]}` on one line: a list as the admin API answers it.
fn print_json_list(field: &str, views: impl Iterator<Item = serde_json::Value>) {
    println!("{}", serde_json::json!({ field: views.collect::<Vec<_>>() }));
}

/// A list column: the allowed models, comma-separated, or `*` for all.
fn models_column(models: Option<&Vec<String>>) -> String {
    models.map_or_else(|| "*".to_owned(), |models| models.join(","))
}

/// Models, budget, limits and region: the flags keys and teams share.
#[derive(Debug, Args)]
pub struct LimitFlags {
    /// Allowed models, comma-separated (default: all; `*` for all when updating).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Budget amount (a team's is shared by its keys).
    #[arg(long)]
    budget: Option<String>,
    /// daily | weekly | monthly | total
    #[arg(long)]
    budget_period: Option<String>,
    #[arg(long)]
    budget_currency: Option<String>,
    /// Requests per minute (a team's are shared by its keys).
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute, input + output (a team's are shared by its keys).
    #[arg(long)]
    tpm: Option<u64>,
    /// Region (ISO 3166-1 alpha-2); a team's applies to its keys without their own.
    #[arg(long)]
    region: Option<String>,
}

impl LimitFlags {
    /// `--models` for an update: `*` clears the list (all models).
    fn models(&self) -> Option<Option<Vec<String>>> {
        self.models.clone().map(|models| if models == ["*"] { None } else { Some(models) })
    }

    fn budget(&self) -> Result<Option<BudgetInput>, String> {
        budget_input(self.budget.clone(), self.budget_period.clone(), self.budget_currency.clone())
    }
}

fn budget_input(
    amount: Option<String>,
    period: Option<String>,
    currency: Option<String>,
) -> Result<Option<BudgetInput>, String> {
    let Some(amount) = amount else {
        if period.is_some() || currency.is_some() {
            return Err("--budget-period and --budget-currency need --budget".to_owned());
        }
        return Ok(None);
    };
    let amount: serde_json::Number = amount.parse().map_err(|_| format!("--budget `{amount}` is not a number"))?;
    Ok(Some(BudgetInput { amount, currency, period }))
}
