//! `llmux teams`: manage teams (shared budgets, limits and model lists for their keys),
//! directly on the configured store.

use std::path::PathBuf;

use clap::Subcommand;
use llmux_fleet::FleetEvent;
use llmux_gateway::teams::{self, NewTeam, TeamPatch};

use super::{LimitFlags, announce, config_and_store, models_column, print_json_list, print_pretty};

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

pub async fn run(command: TeamsCommand) -> Result<(), String> {
    match command {
        TeamsCommand::Create { config, name, limits } => {
            let (_, store) = config_and_store(config).await?;
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
            print_pretty(&teams::view(&team));
            Ok(())
        }
        TeamsCommand::List { config, json } => {
            let (_, store) = config_and_store(config).await?;
            let list = store.list_teams().await.map_err(|error| error.to_string())?;
            if json {
                print_json_list("teams", list.iter().map(teams::view));
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
                    models_column(team.models.as_ref())
                );
            }
            Ok(())
        }
        TeamsCommand::Show { config, name } => {
            let (_, store) = config_and_store(config).await?;
            print_pretty(&teams::show(store.as_ref(), &name).await.map_err(|error| error.to_string())?);
            Ok(())
        }
        TeamsCommand::Update { config, name, limits } => {
            let (config, store) = config_and_store(config).await?;
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
            print_pretty(&teams::view(&team));
            Ok(())
        }
        TeamsCommand::Delete { config, name } => {
            let (config, store) = config_and_store(config).await?;
            teams::delete(store.as_ref(), &name).await.map_err(|error| error.to_string())?;
            announce(&config, FleetEvent::TeamChanged { team: name.clone() }).await;
            println!("deleted team {name}");
            Ok(())
        }
    }
}
