//! The subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use llmux_config::Config;
use llmux_fleet::FleetEvent;
use llmux_gateway::keys::{self, BudgetInput, KeyPatch, NewKey};
use llmux_gateway::teams::{self, NewTeam, TeamPatch};
use llmux_server::ConfigSource;
use llmux_store::{GroupBy, Store};

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

fn init_logging() {
    let filter = std::env::var(llmux_config::env_vars::LLMUX_LOG).unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub async fn serve(flag: Option<PathBuf>, listen: Option<String>) -> Result<(), String> {
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

pub fn check(flag: Option<PathBuf>) -> Result<(), String> {
    let (source, config) = load(flag)?;
    if let ConfigSource::File(path) = &source {
        println!("{}: OK", path.display());
    } else {
        println!("no config file: using the built-in default");
    }
    print!("{}", config.routing_table());
    print!("{}", live_health(&config));
    Ok(())
}

/// Route health from the instance serving this configuration (`GET /admin/providers`
/// at `server.listen` with the master key), when one answers; the health lives in that
/// process, so `check` can only ask it.
fn live_health(config: &llmux_config::Config) -> String {
    use std::fmt::Write as _;
    let listen = &config.server.listen;
    let Some(master) = &config.server.master_key else {
        return "route health: no master key configured, so the running instance cannot be asked\n".to_owned();
    };
    let providers = match admin_get(listen, "/admin/providers", master.expose()) {
        Ok(body) => body,
        Err(reason) => return format!("route health: no running instance answered at {listen} ({reason})\n"),
    };
    let mut out = format!("route health (from the instance at {listen}):\n");
    for provider in providers["providers"].as_array().into_iter().flatten() {
        for route in provider["routes"].as_array().into_iter().flatten() {
            let state = if route["resting"] == true { "RESTING (open circuit or rate limited)" } else { "available" };
            let _ = writeln!(
                out,
                "  {} via {} -> {}: {state}, {} consecutive failures, {:.1} ms to first byte, {} in flight",
                route["model"].as_str().unwrap_or("?"),
                provider["name"].as_str().unwrap_or("?"),
                route["upstream_model"].as_str().unwrap_or("?"),
                route["consecutive_failures"].as_u64().unwrap_or(0),
                route["latency_ms"].as_f64().unwrap_or(0.0),
                route["in_flight"].as_u64().unwrap_or(0),
            );
        }
    }
    out
}

/// A small blocking `GET` over plain HTTP/1.1 to the local admin API (one second at most).
fn admin_get(listen: &str, path: &str, master_key: &str) -> Result<serde_json::Value, String> {
    use std::io::{Read as _, Write as _};
    let address: std::net::SocketAddr = listen.parse().map_err(|_| "not an address".to_owned())?;
    let timeout = std::time::Duration::from_secs(1);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|error| error.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {listen}\r\nauthorization: Bearer {master_key}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("no status").to_owned());
    }
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    serde_json::from_str(&body).map_err(|error| error.to_string())
}

/// The payload of a chunked body (small, complete).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
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
    fn models(&self) -> Option<Option<Vec<String>>> {
        self.models.clone().map(|models| if models == ["*"] { None } else { Some(models) })
    }

    fn budget(&self) -> Result<Option<BudgetInput>, String> {
        budget_input(self.budget.clone(), self.budget_period.clone(), self.budget_currency.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the plain key is printed once.
    Create {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitFlags,
        #[arg(long)]
        team: Option<String>,
        /// RFC 3339 time, YYYY-MM-DD, or Unix seconds.
        #[arg(long)]
        expires_at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        #[arg(long, short)]
        config: Option<PathBuf>,
        id: String,
    },
    /// Revoke a key (running gateways stop accepting it within `server.key_refresh_ms`).
    Revoke {
        #[arg(long, short)]
        config: Option<PathBuf>,
        id: String,
    },
    /// Change a key's name, models, budget or limits.
    Update {
        #[arg(long, short)]
        config: Option<PathBuf>,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitFlags,
        /// Move the key to this team (`""` for none).
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Create a team; keys join it with `--team NAME`.
    Create {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// List teams.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show one team.
    Show {
        #[arg(long, short)]
        config: Option<PathBuf>,
        name: String,
    },
    /// Change a team's models, limits or budget.
    Update {
        #[arg(long, short)]
        config: Option<PathBuf>,
        name: String,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// Delete a team that no active key belongs to.
    Delete {
        #[arg(long, short)]
        config: Option<PathBuf>,
        name: String,
    },
}

/// Tells running gateways of the fleet (with Redis) about a change at once; without
/// Redis, or if it does not answer, they pick it up within `server.key_refresh_ms`.
async fn announce(config: &Config, event: FleetEvent) {
    if let Err(error) = llmux_gateway::fleet::announce_now(&config.storage, event).await {
        eprintln!("note: running gateways will see this within server.key_refresh_ms (Redis: {error})");
    }
}

pub async fn teams(command: TeamsCommand) -> Result<(), String> {
    let pretty = |team: &llmux_store::TeamRecord| serde_json::to_string_pretty(&teams::view(team)).unwrap_or_default();
    match command {
        TeamsCommand::Create { config, name, limits } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let new = NewTeam {
                name,
                budget: limits.budget()?,
                models: limits.models,
                rpm_limit: limits.rpm,
                tpm_limit: limits.tpm,
                region: limits.region,
                metadata: None,
            };
            let team = teams::create(store.as_ref(), new).await.map_err(|error| error.to_string())?;
            println!("{}", pretty(&team));
            Ok(())
        }
        TeamsCommand::List { config, json } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let list = store.list_teams().await.map_err(|error| error.to_string())?;
            if json {
                println!("{}", serde_json::json!({"teams": list.iter().map(teams::view).collect::<Vec<_>>()}));
                return Ok(());
            }
            println!("{:<24} {:<10} {:<12} {:<24} models", "name", "rpm", "tpm", "budget");
            for team in &list {
                let budget = team.budget.as_ref().map_or_else(
                    || "-".to_owned(),
                    |budget| {
                        let amount = llmux_types::money::format_nanos(budget.amount_nanos);
                        format!("{amount} {} {}", budget.currency, budget.period)
                    },
                );
                let limit = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |value| value.to_string());
                println!(
                    "{:<24} {:<10} {:<12} {:<24} {}",
                    team.name,
                    limit(team.rpm_limit),
                    limit(team.tpm_limit),
                    budget,
                    team.models.as_ref().map_or_else(|| "*".to_owned(), |models| models.join(","))
                );
            }
            Ok(())
        }
        TeamsCommand::Show { config, name } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let team = store
                .team(&name)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no team named `{name}`"))?;
            let mut view = teams::view(&team);
            keys::add_spend(&mut view, team.budget.as_ref(), async |currency, start| {
                store.team_spend(&team.name, currency, start).await
            })
            .await;
            println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
            Ok(())
        }
        TeamsCommand::Update { config, name, limits } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let patch = TeamPatch {
                models: limits.models(),
                budget: limits.budget()?.map(Some),
                rpm_limit: limits.rpm.map(Some),
                tpm_limit: limits.tpm.map(Some),
                region: limits.region.map(Some),
                metadata: None,
            };
            let team = teams::update(store.as_ref(), &name, patch).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::TeamChanged { team: team.name.clone() }).await;
            println!("{}", pretty(&team));
            Ok(())
        }
        TeamsCommand::Delete { config, name } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            teams::delete(store.as_ref(), &name).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::TeamChanged { team: name.clone() }).await;
            println!("deleted team {name}");
            Ok(())
        }
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

pub async fn keys(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Create { config, name, limits, team, expires_at, json } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let new = NewKey {
                name,
                budget: limits.budget()?,
                models: limits.models,
                rpm_limit: limits.rpm,
                tpm_limit: limits.tpm,
                region: limits.region,
                team,
                expires_at: expires_at.map(serde_json::Value::String),
                metadata: None,
            };
            let (record, plain) = keys::create(store.as_ref(), new).await.map_err(|error| error.to_string())?;
            if json {
                let mut view = keys::view(&record);
                view["key"] = serde_json::Value::String(plain);
                println!("{view}");
            } else {
                println!("{plain}");
                println!("id: {}", record.id);
                eprintln!("Created key `{}`. Store it now: it is shown only once.", record.name);
            }
            Ok(())
        }
        KeysCommand::List { config, json } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let list = store.list_keys().await.map_err(|error| error.to_string())?;
            if json {
                println!("{}", serde_json::json!({"keys": list.iter().map(keys::view).collect::<Vec<_>>()}));
                return Ok(());
            }
            println!("{:<22} {:<20} {:<15} {:<8} {:<20} models", "id", "name", "prefix", "status", "created");
            for key in &list {
                let view = keys::view(key);
                println!(
                    "{:<22} {:<20} {:<15} {:<8} {:<20} {}",
                    key.id,
                    key.name,
                    key.key_prefix,
                    view["status"].as_str().unwrap_or(""),
                    view["created_at"].as_str().unwrap_or("").chars().take(19).collect::<String>(),
                    key.models.as_ref().map_or_else(|| "*".to_owned(), |models| models.join(","))
                );
            }
            Ok(())
        }
        KeysCommand::Show { config, id } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let key = store
                .key(&id)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no key with id `{id}`"))?;
            let mut view = keys::view(&key);
            keys::add_spend(&mut view, key.budget.as_ref(), async |currency, start| {
                store.key_spend(&key.id, currency, start).await
            })
            .await;
            println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
            Ok(())
        }
        KeysCommand::Revoke { config, id } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let key = keys::revoke(store.as_ref(), &id).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::KeyChanged { key_id: key.id.clone() }).await;
            println!("revoked {} ({})", key.id, key.name);
            Ok(())
        }
        KeysCommand::Update { config, id, name, limits, team } => {
            let (_, config) = load(config)?;
            let store = open_store(&config).await?;
            let patch = KeyPatch {
                name,
                models: limits.models(),
                budget: limits.budget()?.map(Some),
                rpm_limit: limits.rpm.map(Some),
                tpm_limit: limits.tpm.map(Some),
                region: limits.region.map(Some),
                team: team.map(|team| Some(team).filter(|team| !team.is_empty())),
                ..KeyPatch::default()
            };
            let key = keys::update(store.as_ref(), &id, patch).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::KeyChanged { key_id: key.id.clone() }).await;
            println!("{}", serde_json::to_string_pretty(&keys::view(&key)).unwrap_or_default());
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// key | model | provider | team | day
    #[arg(long, default_value = "model")]
    by: String,
    /// RFC 3339 time, YYYY-MM-DD, or Unix seconds.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn usage(args: UsageArgs) -> Result<(), String> {
    let (_, config) = load(args.config)?;
    let group_by = GroupBy::parse(&args.by)
        .ok_or_else(|| format!("--by `{}`: expected key, model, provider, team or day", args.by))?;
    let time = |value: Option<String>, flag: &str| -> Result<Option<i64>, String> {
        value
            .map(|text| {
                llmux_gateway::clock::parse_time(&text).ok_or_else(|| format!("--{flag} `{text}` is not a time"))
            })
            .transpose()
    };
    let since = time(args.since, "since")?;
    let until = time(args.until, "until")?;
    let store = open_store(&config).await?;
    let rows = store.usage_summary(group_by, since, until).await.map_err(|error| error.to_string())?;
    if args.json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<28} {:>9} {:>7} {:>12} {:>12} {:>10} {:>16}",
        args.by, "requests", "errors", "input", "output", "cached", "cost"
    );
    for row in &rows {
        let cost =
            format!("{} {}", llmux_types::money::format_nanos(row.cost_nanos), row.currency.as_deref().unwrap_or(""));
        println!(
            "{:<28} {:>9} {:>7} {:>12} {:>12} {:>10} {:>16}",
            row.group,
            row.requests,
            row.errors,
            row.input_tokens,
            row.output_tokens,
            row.cached_tokens,
            cost.trim()
        );
    }
    Ok(())
}
