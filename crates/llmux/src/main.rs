//! `llmux`: the gateway binary and its operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One endpoint, every model: an LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "llmux", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: $LLMUX_CONFIG, else ./llmux.toml if present, else the
        /// built-in default: SQLite llmux.db, the mock provider, providers from API-key
        /// environment variables).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override `server.listen` (for example 127.0.0.1:0 to pick a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage virtual keys (works directly on the configured store).
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
    /// Manage teams: shared budgets, limits and model lists for their keys.
    Teams {
        #[command(subcommand)]
        command: cli::teams::TeamsCommand,
    },
    /// Usage totals from the ledger.
    Usage(cli::usage::UsageArgs),
    /// Validate a config file and print the resolved routing table.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // With one CPU to run on (a pinned process, a one-CPU container) a single-threaded
    // runtime does the same work without the multi-threaded scheduler's cross-thread
    // bookkeeping. Blocking work (SQLite) still goes to the blocking pool either way.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve { config, listen } => cli::serve::run(config, listen).await,
            Command::Keys { command } => cli::keys::run(command).await,
            Command::Teams { command } => cli::teams::run(command).await,
            Command::Usage(usage) => cli::usage::run(usage).await,
            Command::Check { config } => cli::check::run(config),
            Command::Version => {
                println!("llmux {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}
