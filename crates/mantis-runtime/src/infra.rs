//! Infrastructure wiring: the bus, the store and the codec for one process.

use crate::{BusSettings, Error, InfraSettings, Result};
use async_trait::async_trait;
use mantis_bus::{Bus, TopicSpec, embedded::EmbeddedBus};
use mantis_cache::{Cache, InProcessCache, RedisCache};
use mantis_codec::Codec;
use mantis_objects::ObjectStore;
use mantis_store::Store;
use mantis_telemetry::ReadinessCheck;
use std::path::PathBuf;
use std::sync::Arc;

/// The infrastructure a service works with. Cheap to clone; in the embedded mode all seven
/// services share one instance (one log, one database).
#[derive(Clone)]
pub struct Infra {
    /// The message bus.
    pub bus: Arc<dyn Bus>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The record codec.
    pub codec: Arc<Codec>,
    /// The online cache (in-process in the embedded mode, Redis when `redis_url` is set).
    pub cache: Arc<dyn Cache>,
    /// Object storage (model registry): local disk in the embedded mode, S3 in the cluster.
    pub objects: Arc<dyn ObjectStore>,
    /// Where the infrastructure is, for logs and `/ready`.
    pub settings: InfraSettings,
}

impl Infra {
    /// Connects to (or, in the embedded mode, opens) the bus, the store and the schema registry
    /// described by `settings`.
    pub async fn connect(settings: &InfraSettings) -> Result<Self> {
        settings.check()?;
        let bus = connect_bus(settings).await?;
        let store = connect_store(settings).await?;
        let codec = match settings.schema_registry()? {
            Some(registry) => Codec::new(Arc::new(registry)).await?,
            None => Codec::embedded(),
        };
        let cache: Arc<dyn Cache> = match &settings.redis_url {
            // Redis down at start does not keep the service from starting (a restart loop
            // would back off for minutes once it is up again): the cache is unavailable,
            // which every caller falls back from, and readiness says so, until it answers.
            Some(url) => Arc::new({
                let tls = settings.redis_tls.load()?;
                match RedisCache::connect_with(url, &tls).await {
                    Ok(cache) => cache,
                    Err(mantis_cache::Error::Unavailable(why)) => {
                        tracing::warn!(redis = %crate::redacted_url(url), error = %why, "Redis does not answer; starting without it and connecting when it does");
                        RedisCache::lazy_with(url, &tls)
                            .map_err(|e| Error::Config(format!("infra.redis_url: {e}")))?
                    }
                    Err(e) => {
                        return Err(Error::Config(format!(
                            "infra.redis_url {}: {e}",
                            crate::redacted_url(url)
                        )));
                    }
                }
            }),
            None => Arc::new(InProcessCache::new(IN_PROCESS_CACHE_ENTRIES)),
        };
        let objects = mantis_objects::connect(&settings.objects, &settings.data_dir)
            .map_err(|e| Error::Config(e.to_string()))?;
        tracing::info!(
            bus = ?settings.bus,
            store = %store.describe(),
            cache = %cache.describe(),
            registry = settings
                .schema_registry_url
                .as_deref()
                .map_or_else(|| "embedded".to_owned(), crate::redacted_url),
            "infrastructure connected"
        );
        Ok(Self {
            bus,
            store,
            codec: Arc::new(codec),
            cache,
            objects,
            settings: settings.clone(),
        })
    }

    /// Infrastructure over an already opened bus and store, with the embedded schema registry,
    /// an in-process cache and objects in memory (tools and tests that run services
    /// in-process; replace `objects` to keep them on disk).
    pub fn in_process(bus: Arc<dyn Bus>, store: Arc<dyn Store>) -> Self {
        Self {
            bus,
            store,
            codec: Arc::new(Codec::embedded()),
            cache: Arc::new(InProcessCache::new(IN_PROCESS_CACHE_ENTRIES)),
            objects: Arc::new(mantis_objects::MemoryObjects::new()),
            settings: InfraSettings::default(),
        }
    }

    /// Creates missing topics: the brief's catalogue plus `extra` (e.g. dead-letter topics).
    pub async fn ensure_topics(&self, extra: &[TopicSpec]) -> Result<()> {
        let mut all = mantis_bus::topics::catalogue();
        all.extend_from_slice(extra);
        self.bus.ensure_topics(&all).await?;
        Ok(())
    }

    /// Lists the object store once, warning when it cannot be (for the services that keep
    /// models, at start): a mistyped bucket or missing credentials show at start, not at the
    /// first training. An outage does not keep the service from starting (models are loaded
    /// again when it answers).
    pub async fn check_object_store(&self) {
        // A prefix that holds nothing: one short answer however large the registry.
        let listed = tokio::time::timeout(OBJECTS_CHECK, self.objects.list("models/start-check"));
        match listed.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(objects = %self.objects.describe(), error = %e, "the model registry's object store cannot be listed: check the bucket and its credentials");
            }
            Err(_) => {
                tracing::warn!(objects = %self.objects.describe(), "the model registry's object store does not answer within 5 s");
            }
        }
    }

    /// Readiness checks for the bus, the store and (when configured) Redis.
    pub fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(BusCheck(self.bus.clone())),
            Arc::new(StoreCheck(self.store.clone())),
        ];
        if self.settings.redis_url.is_some() {
            checks.push(Arc::new(CacheCheck(self.cache.clone())));
        }
        checks
    }
}

/// How long the start waits for the object store to list the models.
const OBJECTS_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Entries the in-process cache of the embedded mode keeps at most.
const IN_PROCESS_CACHE_ENTRIES: usize = 100_000;

/// Connects to (or, in the embedded mode, opens) the bus `settings` describe, alone: for tools
/// that need nothing else (`mantis dlq`). The embedded log is one process's at a time.
pub async fn connect_bus(settings: &InfraSettings) -> Result<Arc<dyn Bus>> {
    Ok(match &settings.bus {
        BusSettings::Embedded {
            retention_bytes_per_partition,
        } => {
            let dir = settings.data_dir.join("log");
            std::fs::create_dir_all(&dir)?;
            let options = mantis_bus::embedded::EmbeddedOptions {
                retention_bytes: *retention_bytes_per_partition,
                ..Default::default()
            };
            Arc::new(EmbeddedBus::open_with(&dir, options).await?)
        }
        BusSettings::Kafka { brokers, .. } => {
            let mut config = mantis_bus::kafka::KafkaConfig::new(brokers.clone(), "mantis");
            for (k, v) in settings.bus.kafka_properties()? {
                config = config.with(k, v);
            }
            Arc::new(mantis_bus::kafka::KafkaBus::new(config)?)
        }
    })
}

/// Connects to (or opens) the store `settings` describe, alone: for tools that need neither the
/// bus nor the cache (`mantis train rul`, which may run beside a running platform).
pub async fn connect_store(settings: &InfraSettings) -> Result<Arc<dyn Store>> {
    let url = settings.database_url();
    crate::settings::check_database_url(&url)?;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        Ok(Arc::new(
            mantis_store::sqlite::SqliteStore::open(&path).await?,
        ))
    } else {
        Ok(Arc::new(
            mantis_store::postgres::PgStore::connect_with(&url, settings.database_max_connections)
                .await?,
        ))
    }
}

struct BusCheck(Arc<dyn Bus>);

#[async_trait]
impl ReadinessCheck for BusCheck {
    fn name(&self) -> &str {
        "bus"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct StoreCheck(Arc<dyn Store>);

#[async_trait]
impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct CacheCheck(Arc<dyn Cache>);

#[async_trait]
impl ReadinessCheck for CacheCheck {
    fn name(&self) -> &str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
