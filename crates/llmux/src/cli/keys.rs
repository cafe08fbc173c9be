//! `llmux keys`: manage virtual keys, directly on the configured store.

use std::path::PathBuf;

use clap::Subcommand;
use llmux_fleet::FleetEvent;
use llmux_gateway::keys::{self, KeyPatch, NewKey};

use super::{LimitFlags, announce, config_and_store, models_column, print_json_list, print_pretty};

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

pub async fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Create { config, name, limits, team, expires_at, json } => {
            let (_, store) = config_and_store(config).await?;
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
            let (_, store) = config_and_store(config).await?;
            let list = store.list_keys().await.map_err(|error| error.to_string())?;
            if json {
                print_json_list("keys", list.iter().map(keys::view));
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
                    models_column(key.models.as_ref())
                );
            }
            Ok(())
        }
        KeysCommand::Show { config, id } => {
            let (_, store) = config_and_store(config).await?;
            print_pretty(&keys::show(store.as_ref(), &id).await.map_err(|error| error.to_string())?);
            Ok(())
        }
        KeysCommand::Revoke { config, id } => {
            let (config, store) = config_and_store(config).await?;
            let key = keys::revoke(store.as_ref(), &id).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::KeyChanged { key_id: key.id.clone() }).await;
            println!("revoked {} ({})", key.id, key.name);
            Ok(())
        }
        KeysCommand::Update { config, id, name, limits, team } => {
            let (config, store) = config_and_store(config).await?;
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
            print_pretty(&keys::view(&key));
            Ok(())
        }
    }
}
