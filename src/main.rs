//! `lens`: the Lens Relay server binary.

use lens::{app, auth, config, store};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lens",
    version,
    about = "Lens Relay: self-hosted live video remote support server"
)]
struct Cli {
    /// Configuration file (TOML); see config/lens.toml for every setting.
    #[arg(long, global = true, env = "LENS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: applies migrations, creates the first master administrator on an empty store,
    /// then serves the HTTP(S) API.
    Serve,
    /// Apply the store's migrations and exit.
    Migrate,
    /// Print the effective configuration (defaults < file < environment) and exit.
    Config,
    /// Administration tasks for operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Development tools.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Fill the store with a realistic organization and a year of sessions, events, chat, logins
    /// and console statuses (for measuring reports; never on a production store). Seeded users log
    /// in with the password `Seed-Pass1`. An empty store first gets its master administrator, as
    /// `serve` makes it (LENS_BOOTSTRAP_EMAIL / LENS_BOOTSTRAP_PASSWORD, else a generated password
    /// printed once). SQLite or PostgreSQL (`LENS_DATABASE_URL`); no media port is opened.
    Seed {
        #[arg(long, default_value_t = 100_000)]
        sessions: u64,
        #[arg(long, default_value_t = 200)]
        technicians: u32,
        /// Top-level technician groups (each gets two subgroups).
        #[arg(long, default_value_t = 10)]
        groups: u32,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a master administrator (bootstrap, or recovery when every master is locked out).
    /// Without --password a password is generated and printed; it must be changed at first login.
    CreateMaster {
        #[arg(long)]
        email: String,
        /// Read from the environment rather than the command line to keep it out of shell history.
        #[arg(long, env = "LENS_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match config::Config::load(cli.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lens: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lens: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lens: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: config::Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => app::serve(config).await,
        Command::Migrate => {
            store::Store::open(&config.database_url()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Config => {
            let mut shown = config.clone();
            if !shown.bootstrap.password.is_empty() {
                shown.bootstrap.password = "********".into();
            }
            // TURN secrets: the shared one and static credentials.
            if !shown.media.turn_secret.is_empty() {
                shown.media.turn_secret.0 = "********".into();
            }
            for server in &mut shown.media.ice_servers {
                if !server.credential.is_empty() {
                    server.credential.0 = "********".into();
                }
            }
            print!("{}", config_json(&shown)?);
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::CreateMaster { email, password },
        } => {
            // The store only: no server state, so no media port is opened (a server may be
            // running on this store and holding it).
            let store = store::Store::open(&config.database_url()).await?;
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (auth::generate_password(), true),
            };
            let minimum = lens::api::settings::load_global(&store)
                .await?
                .password_policy
                .minimum_strength;
            auth::password::check(&password, minimum).map_err(|e| anyhow::anyhow!(e))?;
            let id = app::create_master(&store, &email, &password, generated).await?;
            println!("created master administrator {email} (id {id})");
            if generated {
                println!("password: {password}\nIt must be changed at first login.");
            }
            Ok(())
        }
        Command::Dev {
            command:
                DevCommand::Seed {
                    sessions,
                    technicians,
                    groups,
                    days,
                },
        } => seed(config, sessions, technicians, groups, days).await,
    }
}

async fn seed(
    config: config::Config,
    sessions: u64,
    technicians: u32,
    groups: u32,
    days: u32,
) -> anyhow::Result<()> {
    if technicians == 0 || groups == 0 {
        anyhow::bail!("--technicians and --groups must be at least 1");
    }
    let store = store::Store::open(&config.database_url()).await?;
    // A master administrator first, as a server's first start makes one (LENS_BOOTSTRAP_*, or
    // a generated password printed here), so the seeded store can be opened in the admin
    // center's Reports tab.
    app::bootstrap_store(&store, &config.bootstrap).await?;
    let options = lens::reports::seed::SeedOptions {
        sessions,
        technicians,
        groups,
        days,
        now: store::now_ms(),
        password_hash: auth::hash_password("Seed-Pass1".into()).await?,
    };
    let started = std::time::Instant::now();
    let summary = lens::reports::seed::seed(&store, &options, &mut |n| {
        eprint!("\rseeded {n} of {sessions} sessions");
    })
    .await?;
    eprintln!();
    println!(
        "seeded {} groups, {} technicians, {} sessions, {} events, {} chat lines, {} logins in {:.1} s",
        summary.groups,
        summary.technicians,
        summary.sessions,
        summary.events,
        summary.chat,
        summary.logins,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn config_json(config: &config::Config) -> anyhow::Result<String> {
    use figment::providers::Serialized;
    let value: figment::value::Value =
        figment::Figment::from(Serialized::defaults(config)).extract()?;
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}
