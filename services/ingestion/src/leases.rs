//! Connector leases: with several replicas of the ingestion service, each device source is read
//! by one of them at a time. Every source has a lease in the store
//! (`ingestion.connector.<name>`, see `mantis_store::Store::acquire_lease`); each replica asks
//! for the leases of all its sources every fifth of the lease's duration, reads the devices of
//! those it holds, and shows the others in `STANDBY` with the replica that reads them
//! (`runsOn`). A replica that stops hands its leases back at once; one that dies or hangs loses
//! them when they expire, and the others take them over: a device is read again within about
//! 1.2 lease durations (plus a reconnection).
//!
//! A replica stops reading a device half a lease after its last successful renewal began,
//! whatever the database does (its own timer, independent of the calls in flight, on the
//! monotonic clock), so that it has stopped — the batch in flight handed over, at most 5 s —
//! before the lease can expire and another replica take it: no device is read by two replicas
//! at once as long as the replicas' clocks agree within half a lease minus those 5 s (5 s with
//! the default 20 s lease; NTP keeps them far closer). The sources added through the API on
//! any replica reach the others at their next round.
//!
//! Each process holds its leases under its instance name and a random suffix, so two processes
//! given one name (two on one host, a shared configuration) never both think they hold one.
//!
//! Metrics: `mantis_connector_leases_held` (gauge, this replica's), and
//! `mantis_connector_lease_failures_total` (asks the database did not answer).
//!
//! ```toml
//! [ingestion.connector_leases]   # off by default: one replica reads every source
//! enabled = true
//! ttl_secs = 20
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
    /// How long a lease lasts unless renewed (renewed every fifth of it): about how long the
    /// devices of a replica that died stay unread. Default 20 s, within 12..=3600.
    pub ttl_secs: u64,
    /// The name of this replica, shown as `runsOn` by the others (each process adds a random
    /// suffix to it in the leases). Default: the `HOSTNAME` variable (a pod's name in
    /// Kubernetes, a container's id in Docker), else the machine's host name.
    pub instance: Option<String>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_secs: 20,
            instance: None,
        }
    }
}

impl LeaseConfig {
    /// Checks the settings; the message names the key (under `ingestion.connector_leases.`).
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_TTL_SECS..=3600).contains(&self.ttl_secs) {
            return Err(format!(
                "ttl_secs must be within {MIN_TTL_SECS}..=3600 (a replica stops reading half a lease \
                 after its last renewal, and hands over its batch in flight within 5 s before the \
                 lease expires), got {}",
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

/// The shortest lease: half of it must cover the hand-over of the batch in flight (5 s) and
/// leave room for the clocks' difference.
const MIN_TTL_SECS: u64 = 12;

/// Lease asks in flight at once in a round.
const CONCURRENT_ASKS: usize = 4;

/// The lease of the source `name`.
pub fn lease_name(source: &str) -> String {
    format!("ingestion.connector.{source}")
}

/// What one round learned of one lease.
struct Answer {
    source: String,
    /// When the call began (the lease runs from then at the latest).
    asked: tokio::time::Instant,
    lease: mantis_store::Result<mantis_store::Lease>,
}

/// Keeps the leases of one replica's sources and starts and stops them accordingly.
pub(crate) struct Leases {
    connectors: Connectors,
    store: Arc<dyn Store>,
    /// The holder's name in the leases: the instance name and this process's suffix.
    holder: String,
    ttl: Duration,
    /// The sources read here, each until its local deadline (half a lease after its last
    /// renewal began) unless renewed again.
    held: BTreeMap<String, tokio::time::Instant>,
}

impl Leases {
    /// Leases for `connectors`, whose sources from then on start only when their lease is held.
    pub(crate) fn new(connectors: Connectors, store: Arc<dyn Store>, config: &LeaseConfig) -> Self {
        use std::hash::{BuildHasher, Hasher};
        connectors.start_on_demand();
        let suffix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            connectors,
            store,
            holder: format!("{}#{:06x}", config.instance_name(), suffix & 0xff_ffff),
            ttl: Duration::from_secs(config.ttl_secs.clamp(MIN_TTL_SECS, 3600)),
            held: BTreeMap::new(),
        }
    }

    /// This process's name in the leases.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    fn period(&self) -> Duration {
        self.ttl / 5
    }

    /// Asks for every source's lease (a few at a time, each bounded by one period), handing
    /// each answer to the keeper as it comes; then reads the sources added on other replicas.
    /// Runs apart from the keeper, which never waits for it.
    fn round(
        &self,
        answers: tokio::sync::mpsc::UnboundedSender<Answer>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        use futures::StreamExt;
        let (store, connectors, holder, ttl, period) = (
            self.store.clone(),
            self.connectors.clone(),
            self.holder.clone(),
            self.ttl,
            self.period(),
        );
        async move {
            let asks = connectors.names().into_iter().map(|source| {
                let (store, holder) = (store.clone(), holder.clone());
                async move {
                    let asked = tokio::time::Instant::now();
                    let lease = tokio::time::timeout(
                        period,
                        store.acquire_lease(&lease_name(&source), &holder, chrono::Utc::now(), ttl),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(mantis_store::Error::Unavailable(
                            "the database did not answer in time".into(),
                        ))
                    });
                    Answer {
                        source,
                        asked,
                        lease,
                    }
                }
            });
            // A few at a time: a round must not take every connection of the pool.
            let mut answered = futures::stream::iter(asks).buffer_unordered(CONCURRENT_ASKS);
            while let Some(answer) = answered.next().await {
                if answers.send(answer).is_err() {
                    return;
                }
            }
            if tokio::time::timeout(
                period,
                connectors::restore_added(&connectors, store.as_ref(), true),
            )
            .await
            .is_err()
            {
                tracing::debug!("the sources added through the API not read in time; next round");
            }
        }
    }

    /// Takes one answer of a round: starts the source when its lease is held here (and not
    /// already past its local deadline), stands it by when another replica holds it. A failed
    /// renewal changes nothing: the deadline decides.
    fn apply(&mut self, answer: Answer) {
        let Answer {
            source,
            asked,
            lease,
        } = answer;
        match lease {
            Ok(lease) if lease.is_held_by(&self.holder) => {
                let until = asked + self.ttl / 2;
                if until <= tokio::time::Instant::now() {
                    // Answered too late to read on: the lease may lapse before the next one.
                    return;
                }
                // An older ask answered after a newer one extends nothing.
                let previous = self.held.get(&source).copied();
                self.held
                    .insert(source.clone(), previous.map_or(until, |p| p.max(until)));
                if previous.is_none() {
                    tracing::info!(connector = %source, holder = %self.holder, "lease taken: this replica reads the source");
                }
                // False only while its previous run drains: the next round starts it.
                self.connectors.activate(&source);
            }
            Ok(lease) => {
                if self.held.remove(&source).is_some() {
                    tracing::warn!(connector = %source, holder = %lease.holder, "lease lost to another replica");
                }
                let runs_on = lease
                    .holder
                    .rsplit_once('#')
                    .map_or(lease.holder.as_str(), |(name, _)| name);
                self.connectors.stand_by(&source, Some(runs_on), None);
            }
            Err(e) => {
                metrics::counter!("mantis_connector_lease_failures_total").increment(1);
                tracing::warn!(connector = %source, error = %e, "lease cannot be renewed or taken");
            }
        }
        metrics::gauge!("mantis_connector_leases_held").set(self.held.len() as f64);
    }

    /// Stops the sources whose leases were not renewed in time.
    fn expire(&mut self, now: tokio::time::Instant) {
        let lapsing: Vec<String> = self
            .held
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for source in lapsing {
            self.held.remove(&source);
            metrics::gauge!("mantis_connector_leases_held").set(self.held.len() as f64);
            tracing::warn!(connector = %source, "lease not renewed in time: stopped here so that another replica may read the source");
            self.connectors.stand_by(
                &source,
                None,
                Some("the source's lease could not be renewed (database unreachable?): stopped here so that another replica may read it"),
            );
        }
    }

    /// Keeps the leases until `shutdown`; then, once the sources have stopped (`stopped`),
    /// hands them back so the other replicas take them over at once.
    pub(crate) async fn run(
        mut self,
        shutdown: CancellationToken,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        tracing::info!(holder = %self.holder, ttl_secs = self.ttl.as_secs(), "connector leases: each source is read by the replica holding its lease");
        let mut tick = tokio::time::interval(self.period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let mut in_flight: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let next_deadline = self.held.values().min().copied();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = async {
                    match next_deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => self.expire(tokio::time::Instant::now()),
                Some(answer) = answers.recv() => self.apply(answer),
                _ = tick.tick() => {
                    if in_flight.as_ref().is_none_or(|h| h.is_finished()) {
                        in_flight = Some(tokio::spawn(self.round(answers_tx.clone())));
                    } else {
                        tracing::debug!("the previous lease round is still asking; skipped");
                    }
                }
            }
        }
        if let Some(h) = in_flight {
            h.abort();
        }
        stopped.await;
        // Every source's, not only those known held: an aborted round may have taken some (a
        // release only ever frees this holder's).
        let mut sources: std::collections::BTreeSet<String> =
            std::mem::take(&mut self.held).into_keys().collect();
        sources.extend(self.connectors.names());
        let releases = sources.into_iter().map(|source| {
            let (store, holder) = (self.store.clone(), self.holder.clone());
            async move {
                let released = tokio::time::timeout(
                    Duration::from_secs(5),
                    store.release_lease(&lease_name(&source), &holder),
                )
                .await;
                match released {
                    Ok(Ok(_)) => tracing::debug!(connector = %source, "lease handed back"),
                    Ok(Err(e)) => {
                        tracing::warn!(connector = %source, error = %e, "lease not handed back; it lapses by itself")
                    }
                    Err(_) => {
                        tracing::warn!(connector = %source, "lease not handed back in time; it lapses by itself")
                    }
                }
            }
        });
        futures::future::join_all(releases).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lease_settings_are_refused_by_name() {
        let mut config = crate::Config::default();
        config.connector_leases.ttl_secs = 11;
        let e = config.validate().expect_err("too short").to_string();
        assert!(e.contains("ingestion.connector_leases.ttl_secs"), "{e}");
        config.connector_leases.ttl_secs = u64::MAX;
        config.validate().expect_err("too long");
        config.connector_leases.ttl_secs = 20;
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
