//! # mantis (the product's command line)
//!
//! Runs the seven MANTIS services in one process over one shared infrastructure: by default
//! the embedded one (a durable on-disk log, SQLite, under `./data`), so `mantis run` needs
//! nothing installed; the same binary can point at Kafka and PostgreSQL through `[infra]`.
//! `mantis demo` adds a simulated plant (`demo`): machines of each criticality whose sensors
//! drift toward failure at different speeds, so alerts and work orders appear within minutes.

pub mod check;
pub mod demo;
pub mod import;
pub mod train;

use mantis_runtime::{App, Infra, InfraSettings, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The whole configuration: `[infra]`, one table per service, and `[demo]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Shared infrastructure.
    pub infra: InfraSettings,
    /// Ingestion service.
    pub ingestion: mantis_ingestion::Config,
    /// Preprocessing service.
    pub preprocessing: mantis_preprocessing::Config,
    /// Feature extraction.
    pub features: mantis_features::Config,
    /// Anomaly detection.
    pub anomaly: mantis_anomaly::Config,
    /// RUL prediction.
    pub rul: mantis_rul::Config,
    /// Orchestrator.
    pub orchestrator: mantis_orchestrator::Config,
    /// Gateway.
    pub gateway: mantis_gateway::Config,
    /// The simulated plant of `mantis demo`.
    pub demo: demo::DemoConfig,
}

/// Where the services listen when they run in one process: the gateway on every interface
/// (the one door for people and machines: logins, roles, API keys), the six others on loopback
/// only. Their own APIs take no credentials (posting readings, adding connector sources,
/// training, promoting and uploading models): on a plant network no other host may reach them.
/// `[<service>] bind` opens one where that is wanted (e.g. `[ingestion] bind = "0.0.0.0:8001"`
/// for devices that post readings themselves, on a network that is trusted).
impl Default for Settings {
    fn default() -> Self {
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        Self {
            infra: InfraSettings::default(),
            ingestion: mantis_ingestion::Config {
                bind: loopback(8001),
                ..Default::default()
            },
            preprocessing: mantis_preprocessing::Config {
                bind: loopback(8002),
                ..Default::default()
            },
            features: mantis_features::Config {
                bind: loopback(8003),
                ..Default::default()
            },
            anomaly: mantis_anomaly::Config {
                bind: loopback(8004),
                ..Default::default()
            },
            rul: mantis_rul::Config {
                bind: loopback(8005),
                ..Default::default()
            },
            orchestrator: mantis_orchestrator::Config {
                bind: loopback(8006),
                ..Default::default()
            },
            gateway: mantis_gateway::Config::default(),
            demo: demo::DemoConfig::default(),
        }
    }
}

impl Settings {
    /// The defaults of `mantis demo`: shorter windows and baselines so that a newcomer sees
    /// the plant learn and then alert within a few minutes.
    pub fn demo_defaults() -> Self {
        let mut s = Self::default();
        s.preprocessing.window_secs = 10;
        s.preprocessing.idle_close_secs = 15;
        // The demo crew gets the automatic work orders by itself, every five minutes.
        s.gateway.planning.auto_apply_secs = 300;
        s.anomaly.warmup_windows = 12;
        // The simulator replays ten minutes of healthy history: the models train on it at once.
        s.anomaly.training.min_windows = 60;
        s.anomaly.auto_train_after_secs = 600;
        s.anomaly.train_check_secs = 5;
        // The demo's machines wear out in minutes: RUL models read 5 windows and learn from 3
        // past lives per type. They count at most 15 windows ahead (about the length of the
        // wear phase: a healthy machine's remaining life is "at least that"), and report in
        // cycles sized so that the criticality matrix's RUL thresholds (50/100/200/500
        // cycles) fall 6 windows (one minute) before a failure.
        s.rul.check_secs = 5;
        s.rul.training.window = 5;
        s.rul.training.label_cap = Some(15.0);
        s.rul.training.min_samples_leaf = 5;
        s.rul.cycle_secs = [
            ("motor", 1.2),
            ("pump", 0.6),
            ("conveyor", 0.3),
            ("fan", 0.12),
        ]
        .into_iter()
        .map(|(t, c)| (t.to_owned(), c))
        .collect();
        s
    }

    /// Loads the defaults (the demo's when `demo`), then `file`, then `MANTIS_*` variables.
    pub fn load(file: Option<&Path>, demo: bool) -> Result<Self> {
        use figment::providers::{Format, Serialized, Toml};
        let base = if demo {
            Self::demo_defaults()
        } else {
            Self::default()
        };
        let mut fig = figment::Figment::from(Serialized::defaults(base));
        if let Some(path) = file {
            if !path.exists() {
                return Err(mantis_runtime::Error::Config(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig.merge(mantis_runtime::env_provider())
            .extract()
            .map_err(|e| {
                mantis_runtime::Error::Config(
                    e.into_iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
    }
}

/// The seven services built over one infrastructure, listeners bound, not yet running.
pub struct Platform {
    /// The shared infrastructure.
    pub infra: Infra,
    /// The ingestion entry point for in-process sources (the simulator).
    pub ingestor: Arc<mantis_ingestion::Ingestor>,
    /// What the gateway's first start created (the first admin).
    pub bootstrap: mantis_gateway::Bootstrap,
    apps: Vec<App>,
}

impl Platform {
    /// Connects the infrastructure, creates the topics and builds every service.
    pub async fn build(settings: &Settings) -> Result<Self> {
        let infra = Infra::connect(&settings.infra).await?;
        infra.ensure_topics(&[]).await?;
        let (ingestion, ingestor) =
            mantis_ingestion::build_with_ingestor(infra.clone(), settings.ingestion.clone())
                .await?;
        // The gateway forwards readings posted to it to this process's ingestion service.
        let mut gateway_settings = settings.gateway.clone();
        if gateway_settings.ingestion_url.trim().is_empty() {
            gateway_settings.ingestion_url = ingestion
                .local_addr()
                .map(local_url)
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", ingestion.port()));
        }
        let (gateway, bootstrap) =
            mantis_gateway::build_with_bootstrap(infra.clone(), gateway_settings).await?;
        let apps = vec![
            ingestion,
            mantis_preprocessing::build(infra.clone(), settings.preprocessing.clone()).await?,
            mantis_features::build(infra.clone(), settings.features.clone()).await?,
            mantis_anomaly::build(infra.clone(), settings.anomaly.clone()).await?,
            mantis_rul::build(infra.clone(), settings.rul.clone()).await?,
            mantis_orchestrator::build(infra.clone(), settings.orchestrator.clone()).await?,
            gateway,
        ];
        Ok(Self {
            infra,
            ingestor,
            bootstrap,
            apps,
        })
    }

    /// The port a service listens on (`"gateway"`, `"ingestion"`, ...).
    pub fn port(&self, service: &str) -> Option<u16> {
        self.apps
            .iter()
            .find(|a| a.name() == service)
            .map(App::port)
    }

    /// Runs every service until `shutdown` (or until one fails, which stops the others).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let local = shutdown.child_token();
        let mut set = tokio::task::JoinSet::new();
        for app in self.apps {
            let token = local.clone();
            set.spawn(async move { app.run(token).await });
        }
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            let result = joined.unwrap_or_else(|e| {
                Err(mantis_runtime::Error::Other(format!(
                    "service task panicked: {e}"
                )))
            });
            if let Err(e) = result {
                local.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The URL at which this process reaches a service of its own bound to `addr`: that address,
/// or loopback of the same family when it listens on every interface.
fn local_url(addr: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// How to log in, for the start-up message. A generated first-admin password is written to
/// `<data_dir>/admin-password` (owner-readable only) and shown once.
fn announce_login(bootstrap: &mantis_gateway::Bootstrap, data_dir: &Path) -> String {
    let file = data_dir.join("admin-password");
    match &bootstrap.generated_admin_password {
        Some(password) => {
            if let Err(e) = write_secret(&file, password) {
                tracing::warn!(error = %e, path = %file.display(), "cannot keep the admin password");
            }
            format!(
                "log in as `{}` with password `{password}` (also in {}); change it after logging in",
                bootstrap.admin_username,
                file.display()
            )
        }
        None if file.exists() => format!(
            "log in as `{}`, password in {}",
            bootstrap.admin_username,
            file.display()
        ),
        None => format!("log in as `{}`", bootstrap.admin_username),
    }
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}

/// Runs the platform (with the simulated plant when `demo`) until `shutdown`.
pub async fn run(mut settings: Settings, demo: bool, shutdown: CancellationToken) -> Result<()> {
    let local = shutdown.child_token();
    // The demo's simulated devices listen first: the connectors reading them are sources of
    // the ingestion service like any other.
    let devices = if demo {
        let devices = demo::devices::Devices::start(
            &settings.demo.devices,
            &demo::served_machines(),
            settings.demo.sample_interval(),
            &settings.infra.data_dir,
            local.clone(),
        )
        .await?;
        settings.ingestion.sources.extend(devices.sources());
        Some(Arc::new(devices))
    } else {
        None
    };
    let platform = Platform::build(&settings).await?;
    let gateway = platform.port("gateway").unwrap_or(0);
    let ingestion = platform.port("ingestion").unwrap_or(0);
    let simulator = if demo {
        let plant = demo::seed_plant(
            platform.infra.store.as_ref(),
            settings.demo.sample_interval(),
        )
        .await?;
        demo::seed_crew(platform.infra.store.as_ref()).await?;
        demo::seed_stores(platform.infra.store.as_ref()).await?;
        let counters = tokio::spawn(demo::count_production(
            platform.infra.store.clone(),
            plant.clone(),
            local.clone(),
        ));
        let sim = demo::Simulator::new(
            plant,
            settings.demo.clone(),
            settings.preprocessing.window_secs,
            settings
                .anomaly
                .warmup_windows
                .max(settings.anomaly.training.min_windows),
        );
        let sim = match devices {
            Some(d) => sim.with_devices(d),
            None => sim,
        };
        let ingestor = platform.ingestor.clone();
        let store = platform.infra.store.clone();
        let token = local.clone();
        Some(tokio::spawn(async move {
            let result = sim.run(ingestor, store, token).await;
            if let Err(e) = counters.await {
                tracing::error!(error = %e, "demo line counters panicked");
            }
            result
        }))
    } else {
        None
    };
    let login = announce_login(&platform.bootstrap, &settings.infra.data_dir);
    tracing::info!(
        "MANTIS is running{}: dashboard http://localhost:{gateway}/ ({login}), API http://localhost:{gateway}/api/openapi.json, readings POST http://localhost:{gateway}/api/v1/sensors/data (an API key), or from this host http://localhost:{ingestion}/api/v1/sensors/data",
        if demo { " with a simulated plant" } else { "" }
    );
    let result = platform.run(local.clone()).await;
    local.cancel();
    if let Some(sim) = simulator {
        match sim.await {
            Ok(Err(e)) => tracing::error!(error = %e, "simulator failed"),
            Err(e) => tracing::error!(error = %e, "simulator panicked"),
            Ok(Ok(())) => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_loopback(bind: &str) -> bool {
        bind.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    #[test]
    fn a_service_of_this_process_is_reached_at_its_own_address_or_loopback() {
        let url = |bound: &str| local_url(bound.parse().expect("address"));
        assert_eq!(url("127.0.0.1:4711"), "http://127.0.0.1:4711");
        assert_eq!(url("0.0.0.0:8001"), "http://127.0.0.1:8001");
        assert_eq!(url("[::]:8001"), "http://[::1]:8001");
        assert_eq!(url("10.1.2.3:8001"), "http://10.1.2.3:8001");
        assert_eq!(url("[::1]:8001"), "http://[::1]:8001");
    }

    #[test]
    fn in_one_process_only_the_gateway_listens_beyond_this_host() {
        for s in [Settings::default(), Settings::demo_defaults()] {
            for (service, bind) in [
                ("ingestion", &s.ingestion.bind),
                ("preprocessing", &s.preprocessing.bind),
                ("features", &s.features.bind),
                ("anomaly", &s.anomaly.bind),
                ("rul", &s.rul.bind),
                ("orchestrator", &s.orchestrator.bind),
            ] {
                assert!(is_loopback(bind), "{service} listens on {bind}");
            }
            assert_eq!(s.gateway.bind, "0.0.0.0:8000");
        }
    }

    #[test]
    fn a_service_is_opened_by_its_own_bind_and_the_others_stay_closed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("mantis.toml");
        std::fs::write(&file, "[ingestion]\nbind = \"0.0.0.0:8001\"\n").expect("write");
        let s = Settings::load(Some(&file), false).expect("settings");
        assert_eq!(s.ingestion.bind, "0.0.0.0:8001");
        assert!(is_loopback(&s.rul.bind));
        // A table that names other fields of a service keeps its loopback default.
        std::fs::write(&file, "[rul]\ncheck_secs = 7\n").expect("write");
        let s = Settings::load(Some(&file), false).expect("settings");
        assert_eq!(s.rul.check_secs, 7);
        assert_eq!(s.rul.bind, "127.0.0.1:8005");
    }
}
