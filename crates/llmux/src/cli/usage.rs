//! `llmux usage`: usage totals from the ledger.

use std::path::PathBuf;

use clap::Args;
use llmux_store::GroupBy;

use super::{load, open_store};

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

pub async fn run(args: UsageArgs) -> Result<(), String> {
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
