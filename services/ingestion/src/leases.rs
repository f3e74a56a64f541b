//! Connector leases: with several replicas of the ingestion service, each device source is read
//! by one of them at a time. Every source has a lease in the store
//! (`ingestion.connector.<name>`, see `mantis_store::Store::acquire_lease`); each replica asks
//! for the leases of all its sources every third of the lease's duration, reads the devices of
//! those it holds, and shows the others in `STANDBY` with the replica that reads them
//! (`runsOn`). A replica that stops hands its leases back at once; one that dies or hangs loses
//! them when they expire, and the others take them over: a device is read again within about
//! one lease duration (plus a reconnection).
//!
//! A replica that cannot renew a lease (the database unreachable) stops reading that device
//! before the lease can expire, so two replicas never read one device at once (readings
//! stamped by the connector, as Modbus ones are, would otherwise come twice) — provided the
//! replicas' clocks agree within a third of the lease (NTP). The sources added through the API
//! on any replica reach the others at their next round.
//!
//! ```toml
//! [ingestion.connector_leases]   # off by default: one replica reads every source
//! enabled = true
//! ttl_secs = 15
//! instance = "ingestion-0"       # default: the host name (a pod's name)
//! ```

use crate::connectors;
use mantis_connectors::Connectors;
use mantis_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sharing the device sources between replicas (`[ingestion.connector_leases]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseConfig {
    /// Read each source in one replica only, the one holding its lease. Default `false`: every
    /// replica reads every source (right for one replica, and for the embedded mode).
    pub enabled: bool,
    /// How long a lease lasts unless renewed (renewed every third of it): how long the
    /// devices of a replica that died stay unread. Default 15 s, at least 3.
    pub ttl_secs: u64,
    /// The name of this replica in the leases; unique among the replicas and stable across
    /// a restart of one (so a restarted replica takes its leases back at once). Default: the
    /// `HOSTNAME` variable (a pod's name in Kubernetes, a container's id in Docker), else the
    /// machine's host name.
    pub instance: Option<String>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_secs: 15,
            instance: None,
        }
    }
}

impl LeaseConfig {
    /// Checks the settings; the message names the key (under `ingestion.connector_leases.`).
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_secs < 3 {
            return Err(format!(
                "ttl_secs must be at least 3 (renewed every third of it), got {}",
                self.ttl_secs
            ));
        }
        if let Some(i) = &self.instance
            && (i.trim().is_empty() || i.chars().any(char::is_control))
        {
            return Err("instance must be a non-empty name without control characters".into());
        }
        Ok(())
    }

    /// This replica's name: `instance`, else the host name.
    pub fn instance_name(&self) -> String {
        self.instance
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("ingestion-{}", std::process::id()))
    }
}

/// The lease of the source `name`.
pub fn lease_name(source: &str) -> String {
    format!("ingestion.connector.{source}")
}

/// Keeps the leases of one replica's sources and starts and stops them accordingly.
pub(crate) struct Leases {
    connectors: Connectors,
    store: Arc<dyn Store>,
    instance: String,
    ttl: Duration,
    /// The leases held, with when each expires unless renewed.
    held: BTreeMap<String, mantis_domain::Timestamp>,
}

impl Leases {
    /// Leases for `connectors`, whose sources from then on start only when their lease is held.
    pub(crate) fn new(connectors: Connectors, store: Arc<dyn Store>, config: &LeaseConfig) -> Self {
        connectors.start_on_demand();
        Self {
            connectors,
            store,
            instance: config.instance_name(),
            ttl: Duration::from_secs(config.ttl_secs.max(3)),
            held: BTreeMap::new(),
        }
    }

    fn period(&self) -> Duration {
        self.ttl / 3
    }

    /// One round: the sources added on other replicas, then every source's lease.
    async fn round(&mut self) {
        connectors::restore_added(&self.connectors, self.store.as_ref()).await;
        for name in self.connectors.names() {
            let now = chrono::Utc::now();
            // Bounded: a database that hangs must not keep this round from stopping the
            // sources whose leases are about to lapse.
            let asked = tokio::time::timeout(
                self.period() / 2,
                self.store
                    .acquire_lease(&lease_name(&name), &self.instance, now, self.ttl),
            )
            .await
            .unwrap_or_else(|_| {
                Err(mantis_store::Error::Unavailable(
                    "the database did not answer in time".into(),
                ))
            });
            match asked {
                Ok(lease) if lease.is_held_by(&self.instance) => {
                    if self.held.insert(name.clone(), lease.expires_at).is_none() {
                        tracing::info!(connector = %name, instance = %self.instance, "lease taken: this replica reads the source");
                    }
                    // False only while its previous run drains: the next round starts it.
                    self.connectors.activate(&name);
                }
                Ok(lease) => {
                    if self.held.remove(&name).is_some() {
                        tracing::warn!(connector = %name, holder = %lease.holder, "lease lost to another replica");
                    }
                    self.connectors.stand_by(&name, Some(&lease.holder), None);
                }
                Err(e) => {
                    tracing::warn!(connector = %name, error = %e, "lease cannot be renewed or taken");
                    let why = format!(
                        "the source's lease cannot be renewed ({e}): stopped here so that another replica may read it"
                    );
                    // Stopped when the next round could come too late to stop it before the
                    // lease lapses (and another replica may take it).
                    let next = chrono::Duration::from_std(self.period() * 3 / 2)
                        .unwrap_or(chrono::Duration::MAX);
                    let lapses = self
                        .held
                        .get(&name)
                        .is_some_and(|until| now + next >= *until);
                    if lapses {
                        self.held.remove(&name);
                        self.connectors.stand_by(&name, None, Some(&why));
                    }
                }
            }
        }
    }

    /// Keeps the leases until `shutdown`; then, once the sources have stopped (`stopped`),
    /// hands them back so the other replicas take them over at once.
    pub(crate) async fn run(
        mut self,
        shutdown: CancellationToken,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        tracing::info!(instance = %self.instance, ttl_secs = self.ttl.as_secs(), "connector leases: each source is read by the replica holding its lease");
        let mut tick = tokio::time::interval(self.period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.round().await,
            }
        }
        stopped.await;
        for name in std::mem::take(&mut self.held).into_keys() {
            match self
                .store
                .release_lease(&lease_name(&name), &self.instance)
                .await
            {
                Ok(_) => tracing::debug!(connector = %name, "lease handed back"),
                Err(e) => {
                    tracing::warn!(connector = %name, error = %e, "lease not handed back; it lapses by itself")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lease_settings_are_refused_by_name() {
        let mut config = crate::Config::default();
        config.connector_leases.ttl_secs = 2;
        let e = config.validate().expect_err("too short").to_string();
        assert!(e.contains("ingestion.connector_leases.ttl_secs"), "{e}");
        config.connector_leases.ttl_secs = 15;
        config.connector_leases.instance = Some(" ".into());
        let e = config.validate().expect_err("blank").to_string();
        assert!(e.contains("ingestion.connector_leases.instance"), "{e}");
        config.connector_leases.instance = Some("ingestion-7d9f-abcde".into());
        config.validate().expect("valid");
        assert_eq!(
            config.connector_leases.instance_name(),
            "ingestion-7d9f-abcde"
        );
        assert_eq!(lease_name("plc-7"), "ingestion.connector.plc-7");
    }
}
