//! `joip-admin`: the operator CLI. Same lib code as production. Each command prints one JSON
//! document on stdout and exits 0; on error, a message on stderr and exit 1.

mod commands;
mod local;
mod target;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Operator CLI for joip-serverless. Talks to the local emulator unless `--aws` is given.
#[derive(Parser)]
#[command(name = "joip-admin", version)]
pub struct Cli {
    /// Use real AWS credentials and the deployed stack's resources.
    #[arg(long, global = true)]
    aws: bool,
    /// The deployed stack to read resource names from (with --aws).
    #[arg(long, global = true, default_value = "joip-serverless")]
    stack: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Users: create, show, credit.
    #[command(subcommand)]
    User(commands::UserCmd),
    /// Mint a dev token for a user (local mode only).
    Token {
        /// The user.
        user_id: String,
    },
    /// Feature pricing.
    #[command(subcommand)]
    Pricing(commands::PricingCmd),
    /// Canonical tags.
    #[command(subcommand)]
    Tag(commands::TagCmd),
    /// Sessions.
    #[command(subcommand)]
    Session(commands::SessionCmd),
    /// User media.
    #[command(subcommand)]
    Media(commands::MediaCmd),
    /// Community media.
    #[command(subcommand)]
    Community(commands::CommunityCmd),
    /// Reports of community media.
    #[command(subcommand)]
    Reports(commands::ReportsCmd),
    /// The blocklist of content no one may publish.
    #[command(subcommand)]
    Blocklist(commands::BlocklistCmd),
    /// A user's activity log.
    #[command(subcommand)]
    Activity(commands::ActivityCmd),
    /// Saves: one pass of the save reaper (what the scheduled `save-reaper` function does).
    #[command(subcommand)]
    Saves(commands::SavesCmd),
    /// The local stack: create resources, seed demo data.
    #[command(subcommand)]
    Local(local::LocalCmd),
}

#[tokio::main]
async fn main() {
    // Usage errors exit 1 like every other error; --help and --version still exit 0.
    let usage = |e: clap::Error| -> ! {
        if e.use_stderr() {
            let _ = e.print();
            std::process::exit(1);
        }
        e.exit()
    };
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage(e));
    match run(cli, &matches).await {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("json prints")
            );
        }
        Err(err) => {
            eprintln!("joip-admin: {err:#}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<serde_json::Value> {
    let target = if cli.aws {
        target::Target::aws(&cli.stack).await?
    } else {
        target::Target::local().await?
    };
    let app = &target.app;
    match cli.command {
        Command::User(cmd) => commands::user(app, cmd).await,
        Command::Token { user_id } => commands::token(app, &user_id),
        Command::Pricing(cmd) => commands::pricing(app, cmd).await,
        Command::Tag(cmd) => commands::tag(app, cmd).await,
        Command::Session(cmd) => {
            let create = matches
                .subcommand_matches("session")
                .and_then(|m| m.subcommand_matches("create"));
            commands::session(app, cmd, create).await
        }
        Command::Media(cmd) => commands::media(app, cmd).await,
        Command::Community(cmd) => commands::community(app, cmd).await,
        Command::Reports(cmd) => commands::reports(app, cmd).await,
        Command::Blocklist(cmd) => commands::blocklist(app, cmd).await,
        Command::Activity(cmd) => commands::activity(app, cmd).await,
        Command::Saves(cmd) => commands::saves(app, cmd).await,
        Command::Local(cmd) => local::run(&target, cmd).await,
    }
}
