//! `llmux check`: validate a config file, print the resolved routing table and, when an
//! instance serving it answers, its route health.

use std::path::PathBuf;

use llmux_config::Config;
use llmux_server::ConfigSource;

use super::{admin_client, load};

pub fn run(flag: Option<PathBuf>) -> Result<(), String> {
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
fn live_health(config: &Config) -> String {
    use std::fmt::Write as _;
    let listen = &config.server.listen;
    let Some(master) = &config.server.master_key else {
        return "route health: no master key configured, so the running instance cannot be asked\n".to_owned();
    };
    let providers = match admin_client::get(listen, "/admin/providers", master.expose()) {
        Ok(body) => body,
        Err(reason) => return format!("route health: no running instance answered at {listen} ({reason})\n"),
    };
    let mut out = format!("route health (from the instance at {listen}):\n");
    for provider in providers["providers"].as_array().into_iter().flatten() {
        for route in provider["routes"].as_array().into_iter().flatten() {
            let refusals: Vec<String> = route["region_refusals"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|refusal| {
                    let scope =
                        refusal["region"].as_str().map_or("the deployment".to_owned(), |region| region.to_owned());
                    format!("REFUSED for {scope} ({} s left)", refusal["reopens_in_s"].as_u64().unwrap_or(0))
                })
                .collect();
            let state = if !refusals.is_empty() {
                refusals.join(", ")
            } else if route["resting"] == true {
                "RESTING (open circuit or rate limited)".to_owned()
            } else {
                "available".to_owned()
            };
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
