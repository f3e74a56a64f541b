//! `mantis`: the MANTIS command line.

use clap::{Parser, Subcommand};
use mantis::check::Service as ServiceName;
use std::path::PathBuf;

/// MANTIS — real-time predictive maintenance.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Environment variables `MANTIS_<SECTION>__<KEY>` override it.
    #[arg(long, short, global = true, env = "MANTIS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs all seven services in this process (embedded infrastructure by default).
    Run,
    /// Runs all seven services with a simulated plant whose machines wear out.
    Demo,
    /// Runs one service in this process (cluster mode: one process per service).
    Service {
        /// Which service.
        #[arg(value_enum)]
        name: ServiceName,
    },
    /// Imports history files (CSV, JSON, NDJSON) through the ingestion path (source BATCH),
    /// resuming where an interrupted import of the same source stopped.
    Import {
        /// A directory or file, a `file://` URL, or `s3://bucket/prefix` (S3 settings from the
        /// `AWS_*` variables: AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        /// AWS_DEFAULT_REGION, AWS_ALLOW_HTTP).
        source: String,
        /// Format of every file; by extension (.csv, .json, .ndjson, .jsonl) when absent.
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        /// Readings per batch (and per cursor update).
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Start again from the beginning instead of resuming.
        #[arg(long)]
        restart: bool,
        /// Oldest readings taken, in days before now (history is why one imports: the live
        /// ingestion's `max_age_secs` does not apply).
        #[arg(long, default_value_t = 3650)]
        max_age_days: u64,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Trains a model on the history the configured platform holds.
    Train {
        #[command(subcommand)]
        what: TrainWhat,
    },
    /// Administers the configured platform's users from its host (no login needed).
    Admin {
        #[command(subcommand)]
        what: AdminWhat,
    },
    /// Works with the configuration itself.
    Config {
        #[command(subcommand)]
        what: ConfigWhat,
    },
    /// The dead-letter topics: what was set aside and why, and sending it again once the
    /// cause is mended (embedded mode: with `mantis run` stopped).
    Dlq {
        #[command(subcommand)]
        what: DlqWhat,
    },
}

#[derive(Subcommand)]
enum DlqWhat {
    /// Each dead-letter topic and how many records it retains.
    List,
    /// The dead letters of a topic (newest last): when, why, where from.
    Show {
        /// The topic, e.g. `dlq.preprocessing`.
        topic: String,
        #[command(flatten)]
        filter: DlqFilter,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Publishes a topic's dead letters back to the topics they came from, for their consumers
    /// to read again (a sensor since registered, a receiver since mended); the dead letters
    /// stay. Device messages, which came from no topic, are not replayed, nor letters an
    /// earlier replay sent (unless `--again`).
    Replay {
        /// The topic, e.g. `dlq.preprocessing`.
        topic: String,
        #[command(flatten)]
        filter: DlqFilter,
        /// Count what would be published; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send again the letters an earlier replay sent too.
        #[arg(long)]
        again: bool,
    },
}

#[derive(clap::Args)]
struct DlqFilter {
    /// Only those whose reason contains this (case-insensitive).
    #[arg(long)]
    reason: Option<String>,
    /// Only those set aside since this time (RFC 3339), or this long ago (30m, 12h, 7d).
    #[arg(long, value_parser = mantis_runtime::dead_letters::parse_since)]
    since: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<DlqFilter> for mantis_runtime::dead_letters::Filter {
    fn from(f: DlqFilter) -> Self {
        Self {
            reason: f.reason,
            since: f.since,
        }
    }
}

#[derive(Subcommand)]
enum ConfigWhat {
    /// Reads the configuration (file and `MANTIS_*` variables) and checks it as the platform
    /// would at start, connecting to nothing: exits 1 naming the wrong key, 0 with a summary.
    Check {
        /// Check one service's configuration as its cluster binary (`mantis-<name>`) reads it,
        /// instead of the whole platform's as `mantis run` does.
        #[arg(long, value_enum)]
        service: Option<ServiceName>,
        /// Check it as `mantis demo` reads it (the demo's defaults under the file).
        #[arg(long, conflicts_with = "service")]
        demo: bool,
    },
}

#[derive(Subcommand)]
enum AdminWhat {
    /// Sets a user's password (a locked-out admin's way back in): a random one, printed, or
    /// one read from standard input. Every token issued before ends. Works beside a running
    /// platform.
    ResetPassword {
        /// The user, e.g. `admin`.
        username: String,
        /// Read the new password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
        /// Enable the account too, if it was disabled.
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Subcommand)]
enum TrainWhat {
    /// The in-platform RUL model of an asset type, from its assets' runs to failure (the
    /// windows between failures or replacements recorded as maintenance events); registered
    /// and promoted, so running RUL services serve it at their next check.
    Rul {
        /// The asset type, e.g. `pump`.
        #[arg(long)]
        asset_type: String,
        /// Whose assets of that type (a tenant id); the default tenant when omitted. Tenants
        /// never share a model.
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<mantis_domain::TenantId>,
        /// Register the version without serving it.
        #[arg(long)]
        no_promote: bool,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn parse_tenant(raw: &str) -> Result<mantis_domain::TenantId, String> {
    mantis_domain::TenantId::parse(raw.trim())
        .map_err(|_| format!("`{raw}` is not a tenant id (a UUID is expected)"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormat {
    Csv,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    mantis_telemetry::init_tracing(mantis_telemetry::LogFormat::from_env());
    mantis_telemetry::metrics_handle();
    if let Command::Service { name } = cli.command {
        use mantis_runtime::{BusAtStart, run_service, run_service_with};
        let file = cli.config;
        match name {
            // Ingestion starts without the bus: its edge buffer takes the readings meanwhile.
            ServiceName::Ingestion => {
                run_service_with(
                    "ingestion",
                    file,
                    BusAtStart::Optional,
                    mantis_ingestion::build,
                )
                .await?
            }
            ServiceName::Preprocessing => {
                run_service("preprocessing", file, mantis_preprocessing::build).await?
            }
            ServiceName::Features => run_service("features", file, mantis_features::build).await?,
            ServiceName::Anomaly => run_service("anomaly", file, mantis_anomaly::build).await?,
            ServiceName::Rul => run_service("rul", file, mantis_rul::build).await?,
            ServiceName::Orchestrator => {
                run_service("orchestrator", file, mantis_orchestrator::build).await?
            }
            ServiceName::Gateway => {
                run_service("gateway", file, mantis_gateway::build_cluster).await?
            }
        }
        return Ok(());
    }
    if let Command::Dlq { what } = cli.command {
        let settings = mantis::Settings::load(cli.config.as_deref(), false)?;
        settings.infra.check_bus()?;
        // A replay holds a lease in the store, so that it runs alone (beside gateway replicas
        // replaying over the API, another `mantis dlq`).
        let leased = matches!(what, DlqWhat::Replay { dry_run: false, .. });
        if leased
            && matches!(
                settings.infra.bus,
                mantis_runtime::BusSettings::Kafka { .. }
            )
            && settings.infra.database_url.is_none()
        {
            anyhow::bail!(
                "a replay takes a lease in the database the services share, so that two replays \
                 of a topic never run at once: set infra.database_url \
                 (MANTIS_INFRA__DATABASE_URL) as the gateway has it (--dry-run needs none)"
            );
        }
        let bus = mantis_runtime::connect_bus(&settings.infra)
            .await
            .map_err(|e| match e {
                mantis_runtime::Error::Bus(mantis_bus::Error::Unavailable(why))
                    if why.contains("in use") =>
                {
                    anyhow::anyhow!(
                        "{why}: the platform is running; stop `mantis run` first, or use the \
                         gateway's /api/v1/dead-letters meanwhile"
                    )
                }
                e => e.into(),
            })?;
        let store = if leased {
            Some(mantis_runtime::connect_store(&settings.infra).await?)
        } else {
            None
        };
        return dlq(bus.as_ref(), store.as_deref(), what).await;
    }
    if let Command::Import {
        source,
        format,
        batch_size,
        restart,
        max_age_days,
        quiet,
    } = cli.command
    {
        let options = mantis_ingestion::import::ImportOptions {
            format: format.map(|f| match f {
                ImportFormat::Csv => mantis_ingestion::import::Format::Csv,
                ImportFormat::Json => mantis_ingestion::import::Format::Json,
            }),
            batch_size,
            restart,
            ..Default::default()
        };
        let mut settings = mantis::Settings::load(cli.config.as_deref(), false)?;
        settings.ingestion.max_age_secs = max_age_days.saturating_mul(24 * 3600);
        let summary = mantis::import::run(&settings, &source, &options, quiet).await?;
        if summary.interrupted {
            std::process::exit(130);
        }
        return Ok(());
    }
    if let Command::Train {
        what:
            TrainWhat::Rul {
                asset_type,
                tenant,
                no_promote,
                quiet,
            },
    } = &cli.command
    {
        let settings = mantis::Settings::load(cli.config.as_deref(), false)?;
        let fleet = mantis_domain::Fleet::new(tenant.unwrap_or_default(), asset_type.clone());
        mantis::train::rul(&settings, &fleet, !no_promote, *quiet).await?;
        return Ok(());
    }
    if let Command::Config {
        what: ConfigWhat::Check { service, demo },
    } = &cli.command
    {
        println!(
            "{}",
            mantis::check::check(cli.config.as_deref(), *service, *demo)?
        );
        return Ok(());
    }
    if let Command::Admin {
        what:
            AdminWhat::ResetPassword {
                username,
                password_stdin,
                enable,
            },
    } = &cli.command
    {
        use std::io::IsTerminal;
        let settings = mantis::Settings::load(cli.config.as_deref(), false)?;
        let password = if *password_stdin {
            if std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "--password-stdin reads the password from a pipe, not typed on the screen: \
                     e.g. `read -rs P && printf '%s\\n' \"$P\" | mantis admin reset-password {username} --password-stdin`, \
                     or leave --password-stdin out for a random one"
                );
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                anyhow::bail!("no password on standard input");
            }
            line
        } else {
            mantis_gateway::generate_password()
        };
        // The platform's database as it is: never a new one made where there was none (the
        // wrong directory), which would only say the user does not exist.
        let url = settings.infra.database_url();
        let sqlite_file = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest));
        if let Some(path) = sqlite_file
            && (path.contains(":memory:") || !std::path::Path::new(path).is_file())
        {
            anyhow::bail!(
                "no database at {path}: run this where the platform keeps its data, or set \
                 MANTIS_INFRA__DATA_DIR (or --config)"
            );
        }
        let store = mantis_runtime::connect_store(&settings.infra).await?;
        let user =
            mantis_gateway::reset_password(store.as_ref(), username.trim(), &password, *enable)
                .await?;
        if *password_stdin {
            println!("password of `{}` set", user.username);
        } else {
            println!("password of `{}` set to: {password}", user.username);
        }
        if user.disabled {
            eprintln!(
                "`{}` is disabled: it cannot log in until enabled (--enable)",
                user.username
            );
        }
        return Ok(());
    }
    let demo = matches!(cli.command, Command::Demo);
    let settings = mantis::Settings::load(cli.config.as_deref(), demo)?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        mantis_telemetry::shutdown_signal().await;
        trigger.cancel();
    });
    mantis::run(settings, demo, shutdown).await?;
    Ok(())
}

/// `mantis dlq …`: prints to stdout.
async fn dlq(
    bus: &dyn mantis_bus::Bus,
    store: Option<&dyn mantis_store::Store>,
    what: DlqWhat,
) -> anyhow::Result<()> {
    use mantis_runtime::dead_letters as dlq;
    match what {
        DlqWhat::List => {
            let topics = dlq::list(bus).await?;
            if topics.is_empty() {
                println!("no dead-letter topic: nothing was ever set aside");
            }
            for t in topics {
                println!(
                    "{:<48} {:>9} records  ({} partitions)",
                    t.name,
                    t.retained(),
                    t.partitions.len()
                );
            }
        }
        DlqWhat::Show {
            topic,
            filter,
            limit,
            json,
        } => {
            let letters = dlq::show(bus, &topic, &filter.into(), limit).await?;
            if letters.is_empty() && !json {
                println!("{topic}: no dead letter (of those asked for)");
            }
            for l in letters {
                if json {
                    println!("{}", serde_json::to_string(&l)?);
                    continue;
                }
                println!(
                    "{}  {}@{}  from {}  key {}  {} bytes{}\n    {}",
                    l.at.as_deref().unwrap_or("(no time)"),
                    l.partition,
                    l.offset,
                    l.source.as_deref().unwrap_or("a device"),
                    l.key.as_deref().unwrap_or("-"),
                    l.payload_bytes,
                    l.replayed_at
                        .as_deref()
                        .map(|at| format!("  replayed {at}"))
                        .unwrap_or_default(),
                    l.reason
                );
                for (k, v) in &l.headers {
                    println!("    {k}: {v}");
                }
            }
        }
        DlqWhat::Replay {
            topic,
            filter,
            dry_run,
            again,
        } => {
            let by = format!(
                "mantis dlq ({})",
                std::env::var("USER").unwrap_or_else(|_| "?".into())
            );
            let options = dlq::ReplayOptions { dry_run, again, by };
            let filter = filter.into();
            let done = match store {
                Some(store) => dlq::replay_alone(store, bus, &topic, &filter, &options).await?,
                None => dlq::replay(bus, &topic, &filter, &options).await?,
            };
            let verb = if dry_run {
                "would publish"
            } else {
                "published"
            };
            if done.published.is_empty() {
                println!("{topic}: nothing to replay");
            }
            for (to, n) in &done.published {
                println!("{verb} {n} to {to}");
            }
            if done.filtered > 0 {
                println!("{} left by the filter", done.filtered);
            }
            if done.copies > 0 {
                println!(
                    "{} copies of letters replayed in this run (left)",
                    done.copies
                );
            }
            if done.not_replayable > 0 {
                println!(
                    "{} not replayable (device messages, or their topic is gone)",
                    done.not_replayable
                );
            }
            if done.already_replayed > 0 {
                println!(
                    "{} sent by an earlier replay (left; --again sends them once more)",
                    done.already_replayed
                );
            }
            if done.refused > 0 {
                println!("{} refused by the bus (see the log)", done.refused);
            }
            if let Some(why) = done.stopped {
                anyhow::bail!(
                    "stopped before the end: {why} (what is counted above was published; a later replay leaves what was recorded)"
                );
            }
        }
    }
    Ok(())
}
