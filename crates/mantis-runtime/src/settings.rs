//! Layered configuration.

use crate::{Error, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};

/// Which message bus to use.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BusSettings {
    /// The durable on-disk log under `<data_dir>/log` (embedded mode).
    Embedded {
        /// At most this many bytes per partition besides each topic's retention time (Kafka's
        /// `retention.bytes`; an edge box's disk budget: `sensor.raw` has 12 partitions):
        /// the oldest segments go first. Default: no limit.
        #[serde(default)]
        retention_bytes_per_partition: Option<u64>,
    },
    /// A Kafka cluster.
    Kafka {
        /// Bootstrap servers, e.g. `kafka-0:9092,kafka-1:9092`.
        brokers: String,
        /// Extra librdkafka properties (e.g. `security.protocol`). Never logged but for
        /// their names.
        #[serde(default)]
        properties: std::collections::BTreeMap<String, String>,
        /// Properties whose value is read from an environment variable (property → variable,
        /// e.g. `"sasl.password" = "KAFKA_PASSWORD"` with the variable from a Kubernetes
        /// Secret): a password kept out of the configuration file.
        #[serde(default)]
        properties_env: std::collections::BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for BusSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded {
                retention_bytes_per_partition,
            } => f
                .debug_struct("Embedded")
                .field(
                    "retention_bytes_per_partition",
                    retention_bytes_per_partition,
                )
                .finish(),
            // Property values may be credentials (`sasl.password`, `ssl.key.password`).
            Self::Kafka {
                brokers,
                properties,
                properties_env,
            } => f
                .debug_struct("Kafka")
                .field("brokers", brokers)
                .field("properties", &properties.keys().collect::<Vec<_>>())
                .field("properties_env", properties_env)
                .finish(),
        }
    }
}

impl BusSettings {
    /// The Kafka client's extra properties: `properties`, then those of `properties_env` read
    /// from their variables (none for the embedded log). The error names the property and
    /// the variable.
    pub fn kafka_properties(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let Self::Kafka {
            properties,
            properties_env,
            ..
        } = self
        else {
            return Ok(Default::default());
        };
        let mut all = properties.clone();
        for (key, var) in properties_env {
            if properties.contains_key(key) {
                return Err(Error::Config(format!(
                    "infra.bus: `{key}` is in both properties and properties_env"
                )));
            }
            let value = std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "infra.bus.properties_env: `{key}` is read from the environment \
                         variable {var}, which is not set, empty or not UTF-8"
                    ))
                })?;
            all.insert(key.clone(), value);
        }
        Ok(all)
    }
}

/// Infrastructure shared by every service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfraSettings {
    /// Directory for the embedded log, the SQLite database and local objects. Default `./data`.
    pub data_dir: PathBuf,
    /// The message bus. Default: embedded.
    pub bus: BusSettings,
    /// Database URL: `postgres://...` or `sqlite://path`. Default: `<data_dir>/mantis.db`.
    pub database_url: Option<String>,
    /// PostgreSQL connections this process opens at most (its pool; 1 to 1 000, default 10).
    /// Every replica of every service has its own: together they must stay within the
    /// server's `max_connections`.
    pub database_max_connections: u32,
    /// URL of a Confluent-compatible schema registry (`http://` or `https://`; credentials in
    /// it, `https://<key>:<secret>@host`, are sent as basic authentication); the embedded
    /// registry (the compiled-in ids) when absent.
    pub schema_registry_url: Option<String>,
    /// PEM file of the CA that signed an `https://` registry's certificate, trusted beside the
    /// system's.
    pub schema_registry_ca_file: Option<PathBuf>,
    /// Redis URL (cluster mode; `rediss://` over TLS); checked by readiness when set.
    pub redis_url: Option<String>,
    /// TLS of a `rediss://` Redis beyond the system's CAs (`[infra.redis_tls]`).
    pub redis_tls: RedisTlsSettings,
    /// Directory with `criticality.toml` and `routing.toml`; the built-in rules when absent.
    pub rules_dir: Option<PathBuf>,
    /// Object storage for the model registry (`[infra.objects]`). Default: local disk,
    /// `<data_dir>/objects`; `kind = "s3"` with `bucket`, `endpoint`, … in the cluster mode.
    pub objects: mantis_objects::ObjectStoreSettings,
    /// How long the time series are kept where the database does not expire them itself
    /// (`[infra.retention]`: SQLite, PostgreSQL without TimescaleDB).
    pub retention: mantis_store::Retention,
}

impl Default for InfraSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            bus: BusSettings::Embedded {
                retention_bytes_per_partition: None,
            },
            database_url: None,
            database_max_connections: mantis_store::postgres::MAX_CONNECTIONS,
            schema_registry_url: None,
            schema_registry_ca_file: None,
            redis_url: None,
            redis_tls: RedisTlsSettings::default(),
            rules_dir: None,
            objects: mantis_objects::ObjectStoreSettings::default(),
            retention: mantis_store::Retention::default(),
        }
    }
}

impl InfraSettings {
    /// The database URL, defaulting to the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mantis.db").display()))
    }

    /// A client of the schema registry the settings name (none: the embedded registry), its CA
    /// file read.
    pub fn schema_registry(&self) -> Result<Option<mantis_codec::HttpRegistry>> {
        let Some(url) = &self.schema_registry_url else {
            return Ok(None);
        };
        let ca = match &self.schema_registry_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "infra.schema_registry_ca_file {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        mantis_codec::HttpRegistry::connect(url, ca.as_deref())
            .map(Some)
            .map_err(|e| {
                Error::Config(format!(
                    "infra.schema_registry_url {}: {e}",
                    redacted_url(url)
                ))
            })
    }

    /// Checks the bus settings alone (Kafka's brokers and client properties as librdkafka takes
    /// them, those MANTIS sets itself refused): for tools that need the bus above all
    /// (`mantis dlq`, whose replays also take a lease in the database).
    pub fn check_bus(&self) -> Result<()> {
        if let BusSettings::Kafka { brokers, .. } = &self.bus {
            let mut config = mantis_bus::kafka::KafkaConfig::new(brokers.clone(), "mantis");
            for (k, v) in self.bus.kafka_properties()? {
                config = config.with(k, v);
            }
            config
                .check()
                .map_err(|e| Error::Config(format!("infra.bus: {e}")))?;
        }
        Ok(())
    }

    /// Checks what can be checked without connecting to anything (what [`crate::Infra::connect`]
    /// checks first, and `mantis config check`): the database URL's scheme, the Kafka brokers
    /// and client properties (as librdkafka takes them), the Redis and schema registry URLs,
    /// the S3 settings (endpoint, bucket), the retention periods. The message names the key.
    pub fn check(&self) -> Result<()> {
        check_database_url(&self.database_url())?;
        if !(1..=1000).contains(&self.database_max_connections) {
            return Err(Error::Config(format!(
                "infra.database_max_connections must be 1 to 1000, got {}",
                self.database_max_connections
            )));
        }
        self.check_bus()?;
        match &self.redis_url {
            Some(url) => mantis_cache::RedisCache::check(url, &self.redis_tls.load()?)
                .map_err(|e| Error::Config(format!("infra.redis_url: {e}")))?,
            None if self.redis_tls != RedisTlsSettings::default() => {
                return Err(Error::Config(
                    "infra.redis_tls is set but infra.redis_url is not (a rediss:// URL)".into(),
                ));
            }
            None => {}
        }
        if let Some(url) = &self.schema_registry_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::Config(format!(
                "infra.schema_registry_url must be an http:// or https:// URL, got `{}`",
                redacted_url(url)
            )));
        }
        match (&self.schema_registry_url, &self.schema_registry_ca_file) {
            (Some(url), Some(_)) if !url.starts_with("https://") => {
                return Err(Error::Config(
                    "infra.schema_registry_ca_file is set but infra.schema_registry_url is not an \
                     https:// URL"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "infra.schema_registry_ca_file is set but infra.schema_registry_url is not"
                        .into(),
                ));
            }
            _ => {}
        }
        self.schema_registry()?;
        mantis_objects::check(&self.objects)
            .map_err(|e| Error::Config(format!("infra.objects: {e}")))?;
        self.retention
            .validate()
            .map_err(|e| Error::Config(e.to_string()))
    }
}

/// TLS of the connection to Redis (`[infra.redis_tls]`, with a `rediss://` URL): PEM files, e.g.
/// a cert-manager Secret's `ca.crt`, `tls.crt`, `tls.key` mounted in the pod. A `rediss://`
/// URL without these trusts the system's CAs and gives no client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTlsSettings {
    /// The CAs to trust instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// This client's certificate chain, for a Redis that asks for one (mutual TLS); with
    /// `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl RedisTlsSettings {
    /// The files, each checked readable (the error names the key and the file); the cache
    /// reads them again before each new connection (renewed certificates are taken).
    pub fn load(&self) -> Result<mantis_cache::RedisTls> {
        let readable = |key: &str, path: &PathBuf| {
            std::fs::File::open(path).map(drop).map_err(|e| {
                Error::Config(format!("infra.redis_tls.{key} `{}`: {e}", path.display()))
            })
        };
        if let Some(ca) = &self.ca_file {
            readable("ca_file", ca)?;
        }
        let client_files = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                readable("client_cert_file", cert)?;
                readable("client_key_file", key)?;
                Some((cert.clone(), key.clone()))
            }
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "infra.redis_tls: client_cert_file and client_key_file go together".into(),
                ));
            }
        };
        Ok(mantis_cache::RedisTls {
            ca_file: self.ca_file.clone(),
            client_files,
        })
    }
}

/// Refuses a database URL that is neither PostgreSQL nor SQLite.
pub(crate) fn check_database_url(url: &str) -> Result<()> {
    if ["postgres://", "postgresql://", "sqlite://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "infra.database_url must start with postgres:// or sqlite://, got `{}`",
            redacted_url(url)
        )))
    }
}

/// `url` without the password of its user information (`scheme://user:…@host`), for messages.
/// Errs on the side of hiding: whatever lies between the scheme and the last `@`, past the
/// user's name, is hidden when it holds a `:` (a password with `/`, `#` or `@` in it, a URL
/// without its scheme).
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let Some((user, _)) = rest[..at].split_once(':') else {
        return url.to_owned();
    };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{user}:…@{}", &rest[at + 1..])
}

/// Loads `T`: its `Default`, then the TOML `file` when given, then environment variables
/// `MANTIS_<SECTION>__<KEY>` (e.g. `MANTIS_INFRA__DATABASE_URL`, `MANTIS_GATEWAY__BIND`).
/// An invalid value yields one clear message naming the key.
pub fn load_settings<T>(file: Option<&Path>) -> Result<T>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(Error::Config(format!(
                "configuration file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(env_provider());
    fig.extract().map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        Error::Config(msgs.join("; "))
    })
}

/// The environment layer of the configuration: `MANTIS_<SECTION>__<KEY>` variables. Variables
/// without a section (`MANTIS_CONFIG`, `MANTIS_LOG_FORMAT`, test settings such as
/// `MANTIS_TEST_DATABASE_URL`) are not configuration keys and are left out, so they never trip
/// the unknown-key check.
///
/// A value is read as TOML would read it (`8080` a number, `true` a boolean, `[a, b]` a list),
/// but for credentials — keys ending in `password`, `secret`, `access_key`, `access_key_id` or
/// `_url` — which are taken as written (less surrounding white space, as a Secret made with
/// `echo` ends in a newline): a password of digits (`00123456`), `true` or `[x]` is that
/// password, not a number refused with the value echoed in the error.
pub fn env_provider() -> EnvSettings {
    EnvSettings {
        env: Env::prefixed("MANTIS_")
            .filter(|key| key.as_str().contains("__"))
            .split("__"),
    }
}

/// The `MANTIS_<SECTION>__<KEY>` layer of the configuration; see [`env_provider`].
pub struct EnvSettings {
    env: Env,
}

/// Whether the configuration key `key` (`section.key`, lowercase) holds a credential, whose
/// value from the environment is a string as written.
fn is_credential(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    ["password", "secret", "access_key", "access_key_id", "_url"]
        .iter()
        .any(|end| last.ends_with(end))
}

/// Merges `from` into `into`, `from` winning, tables merged key by key.
fn merge_dict(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, inner)), Value::Dict(_, more)) => merge_dict(inner, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

impl Provider for EnvSettings {
    fn metadata(&self) -> Metadata {
        self.env.metadata()
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.env.iter() {
            let value = if is_credential(key.as_str()) {
                // Trimmed (a Secret made with `echo` ends in a newline), otherwise as written.
                Value::from(raw.trim().to_owned())
            } else {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), value) {
                merge_dict(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Loads one section `T` of the configuration (e.g. `[gateway]`), with the same layering as
/// [`load_settings`]: `T::default()`, the file's `[section]`, then `MANTIS_<SECTION>__<KEY>`.
pub fn load_section<T>(file: Option<&Path>, section: &str) -> Result<T>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut fig = Figment::from(Serialized::default(section, T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(Error::Config(format!(
                "configuration file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(env_provider());
    fig.extract_inner(section).map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        Error::Config(msgs.join("; "))
    })
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
    #[serde(default)]
    struct Root {
        infra: InfraSettings,
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redacted_url("postgres://mantis:s3cret@db:5432/mantis?sslmode=require"),
            "postgres://mantis:…@db:5432/mantis?sslmode=require"
        );
        assert_eq!(
            redacted_url("redis://:pw@cache:6379/0"),
            "redis://:…@cache:6379/0"
        );
        assert_eq!(
            redacted_url("sqlite://data/mantis.db"),
            "sqlite://data/mantis.db"
        );
        assert_eq!(
            redacted_url("postgres://mantis@db/m"),
            "postgres://mantis@db/m"
        );
        assert_eq!(redacted_url("mysql://u:ab#c/d@db/m"), "mysql://u:…@db/m");
        assert_eq!(redacted_url("u:pw@registry:8081"), "u:…@registry:8081");
        assert_eq!(redacted_url("http://[::1]:8081/x"), "http://[::1]:8081/x");
        let mysql = InfraSettings {
            database_url: Some("mysql://root:s3cret@db/mantis".into()),
            ..InfraSettings::default()
        };
        let e = mysql
            .check()
            .expect_err("not a supported database")
            .to_string();
        assert!(
            e.contains("infra.database_url") && !e.contains("s3cret"),
            "{e}"
        );
        let bus = BusSettings::Kafka {
            brokers: "k:9092".into(),
            properties: [("sasl.password".to_owned(), "s3cret".to_owned())].into(),
            properties_env: Default::default(),
        };
        let shown = format!("{bus:?}");
        assert!(
            shown.contains("sasl.password") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_kafka_property_is_read_from_the_variable_it_names() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mantis.toml",
                "[infra.bus]\nkind = \"kafka\"\nbrokers = \"k:9092\"\n\
                 [infra.bus.properties]\n\"sasl.username\" = \"mantis\"\n\
                 [infra.bus.properties_env]\n\"sasl.password\" = \"MANTIS_TEST_KAFKA_PW\"\n",
            )?;
            let r: Root =
                load_settings(Some(Path::new("mantis.toml"))).map_err(|e| e.to_string())?;
            let e = r.infra.check().expect_err("unset").to_string();
            assert!(
                e.contains("MANTIS_TEST_KAFKA_PW") && e.contains("sasl.password"),
                "{e}"
            );
            jail.set_env("MANTIS_TEST_KAFKA_PW", "from-a-secret");
            let properties = r.infra.bus.kafka_properties().map_err(|e| e.to_string())?;
            assert_eq!(properties["sasl.password"], "from-a-secret");
            assert_eq!(properties["sasl.username"], "mantis");
            r.infra.check().map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn a_schema_registrys_url_and_ca_are_checked_without_connecting() {
        let with = |url: Option<&str>, ca: Option<&Path>| InfraSettings {
            schema_registry_url: url.map(str::to_owned),
            schema_registry_ca_file: ca.map(Path::to_path_buf),
            ..InfraSettings::default()
        };
        let error = |s: InfraSettings| s.check().expect_err("refused").to_string();
        assert!(with(None, None).check().is_ok());
        assert!(
            with(Some("https://key:secret@registry.example:443"), None)
                .check()
                .is_ok()
        );
        let e = error(with(Some("registry:8081"), None));
        assert!(e.contains("http:// or https://"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let e = error(with(Some("http://registry:8081"), Some(&ca)));
        assert!(e.contains("not an https:// URL"), "{e}");
        let e = error(with(None, Some(&ca)));
        assert!(e.contains("infra.schema_registry_url is not"), "{e}");
        let e = error(with(Some("https://registry:8081"), Some(&ca)));
        assert!(
            e.contains("infra.schema_registry_ca_file") && e.contains("ca.pem"),
            "{e}"
        );
        std::fs::write(&ca, "not a certificate").expect("written");
        let e = error(with(Some("https://u:pw@registry:8081"), Some(&ca)));
        assert!(e.contains("CA") && e.contains("u:…@registry"), "{e}");
        assert!(!e.contains("pw"), "the password is never shown: {e}");
    }

    #[test]
    fn defaults_then_file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mantis.toml",
                "[infra]\ndata_dir = \"/var/lib/mantis\"\n[infra.bus]\nkind = \"kafka\"\nbrokers = \"k:9092\"\n",
            )?;
            jail.set_env("MANTIS_INFRA__DATABASE_URL", "postgres://db/mantis");
            // Not configuration: must not be taken for an unknown key.
            jail.set_env("MANTIS_TEST_KAFKA_BROKERS", "127.0.0.1:9092");
            jail.set_env("MANTIS_CONFIG", "mantis.toml");
            let r: Root =
                load_settings(Some(Path::new("mantis.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(r.infra.data_dir, PathBuf::from("/var/lib/mantis"));
            assert!(
                matches!(r.infra.bus, BusSettings::Kafka { ref brokers, .. } if brokers == "k:9092")
            );
            assert_eq!(r.infra.database_url(), "postgres://db/mantis");
            Ok(())
        });
    }

    #[test]
    fn credentials_from_the_environment_are_taken_as_written() {
        #[derive(Default, Serialize, Deserialize, Debug)]
        #[serde(default)]
        struct Gateway {
            admin_password: String,
            jwt_secret: String,
            token_ttl_minutes: u64,
            allow_http: bool,
            names: Vec<String>,
        }
        #[derive(Default, Serialize, Deserialize, Debug)]
        #[serde(default)]
        struct WithGateway {
            infra: InfraSettings,
            gateway: Gateway,
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("MANTIS_GATEWAY__ADMIN_PASSWORD", "00123456");
            jail.set_env("MANTIS_GATEWAY__JWT_SECRET", "[true]");
            jail.set_env("MANTIS_GATEWAY__TOKEN_TTL_MINUTES", "45");
            jail.set_env("MANTIS_GATEWAY__ALLOW_HTTP", "true");
            jail.set_env("MANTIS_GATEWAY__NAMES", "[a, b]");
            jail.set_env("MANTIS_INFRA__OBJECTS__KIND", "s3");
            jail.set_env("MANTIS_INFRA__OBJECTS__BUCKET", "mantis");
            jail.set_env("MANTIS_INFRA__OBJECTS__SECRET_ACCESS_KEY", "1.5\n");
            jail.set_env("MANTIS_INFRA__OBJECTS__ACCESS_KEY_ID", "0042");
            jail.set_env("MANTIS_INFRA__REDIS_URL", "123");
            let r: WithGateway = load_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(r.gateway.admin_password, "00123456");
            assert_eq!(r.gateway.jwt_secret, "[true]");
            // Everything else is read as TOML reads it.
            assert_eq!(r.gateway.token_ttl_minutes, 45);
            assert!(r.gateway.allow_http);
            assert_eq!(r.gateway.names, ["a", "b"]);
            let mantis_objects::ObjectStoreSettings::S3(s3) = r.infra.objects else {
                panic!("not S3: {:?}", r.infra.objects);
            };
            assert_eq!(s3.secret_access_key.as_deref(), Some("1.5"));
            assert_eq!(s3.access_key_id.as_deref(), Some("0042"));
            assert_eq!(r.infra.redis_url.as_deref(), Some("123"));
            // A wrong type elsewhere still names the variable.
            jail.set_env("MANTIS_GATEWAY__TOKEN_TTL_MINUTES", "soon");
            let e = load_settings::<WithGateway>(None)
                .expect_err("not a number")
                .to_string();
            assert!(e.to_lowercase().contains("token_ttl_minutes"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_object_store_is_configured_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MANTIS_INFRA__OBJECTS__KIND", "s3");
            jail.set_env("MANTIS_INFRA__OBJECTS__BUCKET", "mantis");
            jail.set_env("MANTIS_INFRA__OBJECTS__ENDPOINT", "http://minio:9000");
            jail.set_env("MANTIS_INFRA__OBJECTS__ACCESS_KEY_ID", "mantis");
            jail.set_env("MANTIS_INFRA__OBJECTS__SECRET_ACCESS_KEY", "secret");
            jail.set_env("MANTIS_INFRA__OBJECTS__ALLOW_HTTP", "true");
            let r: Root = load_settings(None).map_err(|e| e.to_string())?;
            let mantis_objects::ObjectStoreSettings::S3(s3) = r.infra.objects else {
                panic!("not S3: {:?}", r.infra.objects);
            };
            assert_eq!(s3.bucket, "mantis");
            assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
            assert_eq!(s3.secret_access_key.as_deref(), Some("secret"));
            assert!(s3.allow_http);
            Ok(())
        });
    }

    /// `[infra.redis_tls]` from the environment (the chart's mounted Secret); checked: a
    /// rediss:// URL, its files readable (named when not), a client certificate with its key.
    #[test]
    #[allow(clippy::result_large_err)]
    fn redis_tls_is_configured_from_the_environment_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ca.crt", "not a certificate")?;
            jail.set_env("MANTIS_INFRA__REDIS_URL", "rediss://redis:6380/0");
            jail.set_env("MANTIS_INFRA__REDIS_TLS__CA_FILE", "ca.crt");
            let r: Root = load_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(
                r.infra.redis_tls.ca_file.as_deref(),
                Some(std::path::Path::new("ca.crt"))
            );
            let e = r
                .infra
                .check()
                .expect_err("no certificate in it")
                .to_string();
            assert!(e.contains("holds no PEM certificate"), "{e}");

            let mut missing = r.infra.clone();
            missing.redis_tls.ca_file = Some("/nonexistent/ca.crt".into());
            let e = missing.check().expect_err("missing").to_string();
            assert!(
                e.contains("infra.redis_tls.ca_file `/nonexistent/ca.crt`"),
                "{e}"
            );

            let mut half = r.infra.clone();
            half.redis_tls = RedisTlsSettings {
                client_cert_file: Some("ca.crt".into()),
                ..RedisTlsSettings::default()
            };
            let e = half.check().expect_err("no key").to_string();
            assert!(e.contains("go together"), "{e}");

            let mut plain = r.infra.clone();
            plain.redis_url = Some("redis://redis:6379".into());
            plain.redis_tls = RedisTlsSettings {
                ca_file: None,
                client_cert_file: Some("ca.crt".into()),
                client_key_file: Some("ca.crt".into()),
            };
            assert!(plain.check().is_err(), "TLS settings need rediss://");

            let mut no_url = r.infra.clone();
            no_url.redis_url = None;
            let e = no_url.check().expect_err("no URL").to_string();
            assert!(e.contains("infra.redis_url is not"), "{e}");

            let mut system = r.infra;
            system.redis_tls = RedisTlsSettings::default();
            system.check().map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn the_embedded_log_and_the_store_take_their_disk_budgets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mantis.toml",
                "[infra.bus]\nkind = \"embedded\"\nretention_bytes_per_partition = 1048576\n[infra.retention]\nreadings_days = 14\n",
            )?;
            let r: Root =
                load_settings(Some(Path::new("mantis.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                r.infra.bus,
                BusSettings::Embedded {
                    retention_bytes_per_partition: Some(1 << 20)
                }
            );
            assert_eq!(r.infra.retention.readings_days, 14);
            assert_eq!(r.infra.retention.windows_days, 365);
            // "Forever" is a hundred years at most (beyond, the time arithmetic overflows).
            jail.create_file(
                "forever.toml",
                "[infra.retention]\nreadings_days = 4294967295\n",
            )?;
            let forever: Root =
                load_settings(Some(Path::new("forever.toml"))).map_err(|e| e.to_string())?;
            let e = forever.infra.check().expect_err("refused");
            assert!(
                e.to_string().contains("infra.retention.readings_days"),
                "{e}"
            );
            let plain: Root = load_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(plain.infra.bus, InfraSettings::default().bus);
            Ok(())
        });
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let s = InfraSettings::default();
        assert_eq!(s.database_url(), "sqlite://data/mantis.db");
    }

    #[test]
    fn bad_values_are_one_clear_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[infra]\nbogus = 1\n")?;
            let e = load_settings::<Root>(Some(Path::new("bad.toml"))).expect_err("refused");
            assert!(e.to_string().contains("bogus"), "{e}");
            let e = load_settings::<Root>(Some(Path::new("missing.toml"))).expect_err("refused");
            assert!(e.to_string().contains("does not exist"), "{e}");
            jail.set_env("MANTIS_INFRA__DATABASE_MAX_CONNECTIONS", "0");
            let r: Root = load_settings(None).map_err(|e| e.to_string())?;
            let e = r.infra.check().expect_err("no connection at all");
            assert!(
                e.to_string().contains("infra.database_max_connections"),
                "{e}"
            );
            jail.set_env("MANTIS_INFRA__DATABASE_MAX_CONNECTIONS", "4");
            let r: Root = load_settings(None).map_err(|e| e.to_string())?;
            assert_eq!(r.infra.database_max_connections, 4);
            r.infra.check().map_err(|e| e.to_string())?;
            Ok(())
        });
    }
}
