//! `mantis config check`: the configuration read and checked as the platform (or one service of
//! the cluster mode) would at start, without connecting to anything, so that a deployment's
//! file and environment can be checked before a rollout (and the Helm chart's in the tests).

use crate::Settings;
use mantis_runtime::{BusSettings, InfraSettings, Result, load_section};
use std::path::Path;

/// One of the seven services (`mantis service <name>`, `mantis config check --service <name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// Connectors, REST and batch ingest, edge buffer (`[ingestion]`).
    Ingestion,
    /// Cleaning, resampling, filters, windows (`[preprocessing]`).
    Preprocessing,
    /// Feature extraction (`[features]`).
    Features,
    /// Anomaly detection (`[anomaly]`).
    Anomaly,
    /// Remaining useful life (`[rul]`).
    Rul,
    /// Rules, work orders, webhooks (`[orchestrator]`).
    Orchestrator,
    /// API, dashboard, authentication (`[gateway]`; the cluster binary's: secrets must be given).
    Gateway,
}

impl Service {
    /// Its configuration section.
    pub fn section(self) -> &'static str {
        match self {
            Self::Ingestion => "ingestion",
            Self::Preprocessing => "preprocessing",
            Self::Features => "features",
            Self::Anomaly => "anomaly",
            Self::Rul => "rul",
            Self::Orchestrator => "orchestrator",
            Self::Gateway => "gateway",
        }
    }
}

/// Reads and checks the configuration in `file` (and the `MANTIS_*` variables): the whole
/// platform's as `mantis run` (or `mantis demo` with `demo`) reads it, or one service's as its
/// cluster binary does. Returns a summary of what it names; the error says which key is wrong.
pub fn check(file: Option<&Path>, service: Option<Service>, demo: bool) -> Result<String> {
    let mut notes = Vec::new();
    // Settings that only matter on a database without users: noted, not refused (the start
    // refuses them only there).
    let mut first_admin = |auth: &mantis_gateway::AuthConfig| {
        if let Some(problem) = auth.first_admin_problem() {
            notes.push(format!(
                "on a database without users the gateway refuses to start: {problem}"
            ));
        }
    };
    let (infra, scope) = match service {
        None => {
            let s = Settings::load(file, demo)?;
            s.infra.check()?;
            s.ingestion.validate()?;
            s.preprocessing.validate()?;
            mantis_anomaly::check_config(&s.infra, &s.anomaly)?;
            s.rul.validate()?;
            mantis_orchestrator::check_config(&s.infra, &s.orchestrator)?;
            mantis_gateway::check_config(&s.infra, &s.gateway)?;
            first_admin(&s.gateway.auth);
            let scope = if demo { "mantis demo" } else { "mantis run" };
            (s.infra, scope.to_owned())
        }
        Some(service) => {
            let infra: InfraSettings = load_section(file, "infra")?;
            infra.check()?;
            let section = service.section();
            match service {
                Service::Ingestion => {
                    load_section::<mantis_ingestion::Config>(file, section)?.validate()?
                }
                Service::Preprocessing => {
                    load_section::<mantis_preprocessing::Config>(file, section)?.validate()?
                }
                Service::Features => {
                    load_section::<mantis_features::Config>(file, section)?;
                }
                Service::Anomaly => {
                    let config = load_section(file, section)?;
                    mantis_anomaly::check_config(&infra, &config)?
                }
                Service::Rul => load_section::<mantis_rul::Config>(file, section)?.validate()?,
                Service::Orchestrator => {
                    let config = load_section(file, section)?;
                    mantis_orchestrator::check_config(&infra, &config)?
                }
                Service::Gateway => {
                    let config = mantis_gateway::cluster_config(load_section(file, section)?);
                    mantis_gateway::check_config(&infra, &config)?;
                    first_admin(&config.auth);
                }
            }
            (infra, format!("mantis-{section}"))
        }
    };
    let mut text = summary(&scope, &infra);
    for note in notes {
        text.push_str("\n  note: ");
        text.push_str(&note);
    }
    Ok(text)
}

fn summary(scope: &str, infra: &InfraSettings) -> String {
    let bus = match &infra.bus {
        BusSettings::Embedded { .. } => format!("embedded log in {}", infra.data_dir.display()),
        BusSettings::Kafka { brokers, .. } => format!("Kafka at {brokers}"),
    };
    let url = infra.database_url();
    // The URL may carry a password: only its kind is shown.
    let database = if url.starts_with("sqlite://") {
        url
    } else {
        "PostgreSQL".to_owned()
    };
    let objects = match &infra.objects {
        mantis_objects::ObjectStoreSettings::Local { .. } => "local disk".to_owned(),
        mantis_objects::ObjectStoreSettings::S3(s3) => format!("S3 bucket `{}`", s3.bucket),
    };
    let rules = infra
        .rules_dir
        .as_ref()
        .map_or_else(|| "built in".to_owned(), |d| d.display().to_string());
    let schemas = infra.schema_registry_url.as_deref().map_or_else(
        || "embedded (compiled-in ids)".to_owned(),
        |url| format!("registry at {}", mantis_runtime::redacted_url(url)),
    );
    format!(
        "configuration of {scope} is valid\n  bus: {bus}\n  schemas: {schemas}\n  database: {database}\n  objects: {objects}\n  rules: {rules}"
    )
}
