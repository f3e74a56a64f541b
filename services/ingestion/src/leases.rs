//! Connector leases: with several replicas of the ingestion service, each device source is read
//! by one of them at a time. Every source has a lease in the store
//! (`ingestion.connector.<name>`, see `mantis_store::Store::acquire_lease`); every fifth of the
//! lease's duration each replica lists the leases, renews those it holds, asks for free ones
//! (see the balance below), reads the devices of the sources it holds, and shows the others in
//! `STANDBY` with the replica that reads them (`runsOn`). A replica that stops hands its leases
//! back at once; one that dies or hangs loses them when they expire, and the others take them over: a device is read again within about
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
//! Each replica also holds a lease of its own (`ingestion.member.<holder>`), so that each round
//! counts the replicas running and the sources each holds: a replica takes free sources up to
//! its share (the sources divided by the replicas, rounded up; beyond it, a source nobody has
//! taken for two rounds). To balance them, the replica holding the most (of equals, the first
//! by name) hands one over when it holds two more than another: the one it took last, after
//! holding it for half a lease at least, and one at a time (the next once another replica is
//! seen holding it, or a lease later), so a stale count never moves two; a replica started later
//! or back from a restart gets its part within a few rounds. A replica that has not reached a
//! device for `hand_over_unreachable_secs` (its own network path to it may be down) hands it
//! over as well, does not ask for it for as long, and rests from balancing for as long
//! (`ingestion.resting.<holder>`: the others hand it nothing to balance); a source taken beyond
//! the share is not handed over to balance for ten times that wait, so a device one replica
//! cannot reach stays with one that can. A source handed over is stopped first and its lease
//! given back as soon as its run here has ended, so it is never read twice at once; another
//! replica takes it at its next round after that (beyond its share, two rounds later), then
//! connects. A replica that stops is counted out first, then hands its sources back.
//!
//! Each process holds its leases under its instance name and a random suffix, so two processes
//! given one name (two on one host, a shared configuration) never both think they hold one.
//!
//! Metrics: `mantis_connector_leases_held` (gauge, this replica's),
//! `mantis_ingestion_replicas` (gauge, the replicas counted at the last round),
//! `mantis_connector_lease_handovers_total{reason="balance"|"unreachable"}`, and
//! `mantis_connector_lease_failures_total` (asks and counts of the replicas that failed).
//!
//! ```toml
//! [ingestion.connector_leases]   # off by default: one replica reads every source
//! enabled = true
//! ttl_secs = 20
//! instance = "ingestion-0"       # default: the host name (a pod's name)
//! balance = true                 # spread the sources evenly over the replicas
//! hand_over_unreachable_secs = 60  # a device this replica cannot reach goes to another; 0: never
//! ```

use crate::connectors;
use mantis_connectors::Connectors;
use mantis_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Spread the sources evenly over the replicas: each takes free sources up to its share
    /// (the sources divided by the replicas running, rounded up; more only for a source nobody
    /// has taken for two rounds), and one holding two more than another hands one over each
    /// round, so that a replica started later (or back from a restart) gets its part within a
    /// few rounds. Default `true`.
    pub balance: bool,
    /// Hand a source over to another replica when this one has not reached its device for so
    /// many seconds since it took it (its own network path may be down; a device that answers
    /// with errors is reached), and leave it to the others for as long. `0`: never. Only with
    /// other replicas running. Default 60, at least `ttl_secs`.
    pub hand_over_unreachable_secs: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_secs: 20,
            instance: None,
            balance: true,
            hand_over_unreachable_secs: 60,
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
        if self.hand_over_unreachable_secs != 0
            && !(self.ttl_secs..=86_400).contains(&self.hand_over_unreachable_secs)
        {
            return Err(format!(
                "hand_over_unreachable_secs must be 0 (never) or within ttl_secs ({})..=86400, got {}",
                self.ttl_secs, self.hand_over_unreachable_secs
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

/// The leases of the sources, `<CONNECTOR_PREFIX><name>`.
const CONNECTOR_PREFIX: &str = "ingestion.connector.";

/// Each replica's own lease, `<MEMBER_PREFIX><holder>`: the live ones count the replicas.
const MEMBER_PREFIX: &str = "ingestion.member.";

/// `<RESTING_PREFIX><holder>`: held by a replica resting from balancing.
const RESTING_PREFIX: &str = "ingestion.resting.";

/// The lease of the source `name`.
pub fn lease_name(source: &str) -> String {
    format!("{CONNECTOR_PREFIX}{source}")
}

/// What a round tells the keeper.
enum Msg {
    /// The answer to one ask; for a source another replica holds, what the listing showed.
    Answer(Answer),
    /// How many replicas share the sources (their own leases), the share of each, and the
    /// fewest sources one of them holds.
    Census {
        members: usize,
        share: usize,
        least: usize,
        /// The replica that gives a source to balance them, if any: the one holding the most
        /// (of equals, the first by name).
        giver: Option<String>,
    },
    /// Nobody holds the source's lease and this replica did not ask for it (its share is full).
    Free(String),
}

/// What one round learned of one lease.
struct Answer {
    source: String,
    /// When the call began (the lease runs from then at the latest).
    asked: tokio::time::Instant,
    lease: mantis_store::Result<mantis_store::Lease>,
    /// Asked for beyond this replica's share (nobody else took it).
    beyond_share: bool,
}

impl Answer {
    /// What the listing showed of a lease (held elsewhere, or here but handed over).
    fn listed(source: String, lease: mantis_store::Lease) -> Self {
        Self {
            source,
            asked: tokio::time::Instant::now(),
            lease: Ok(lease),
            beyond_share: false,
        }
    }
}

/// What the keeper tells a round.
struct Plan {
    /// The sources read here.
    held: BTreeSet<String>,
    /// The sources not to ask for: handed over (cooling off) or being handed back.
    skip: BTreeSet<String>,
    /// The sources nobody has held for two rounds: taken even beyond this replica's share.
    orphans: BTreeSet<String>,
    /// This replica's share at the last census (when a census fails).
    share: usize,
    /// This replica rests from balancing for a while (it could not reach a device): it says
    /// so by a lease of its own, and the others hand it no source to balance them.
    resting: bool,
    balance: bool,
}

/// A source read here.
struct Held {
    /// Its local deadline: half a lease after its last renewal began, unless renewed again.
    until: tokio::time::Instant,
    /// Since when it is read here.
    taken: tokio::time::Instant,
    /// When it was last seen reaching its device (connected, or answering with errors).
    reached: tokio::time::Instant,
    /// Taken beyond this replica's share, nobody else having taken it (e.g. handed over by a
    /// replica that cannot reach the device): not handed over to balance the replicas before
    /// then.
    kept_until: Option<tokio::time::Instant>,
    /// The latest expiry the database granted: its release reaches no later hold.
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// Why a source is handed to another replica.
#[derive(Clone, Copy)]
enum HandOver {
    /// This replica holds two sources more than another one at least.
    Balance,
    /// This replica has not reached the device for `hand_over_unreachable_secs`.
    Unreachable,
}

impl HandOver {
    fn as_str(self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::Unreachable => "unreachable",
        }
    }
}

/// Keeps the leases of one replica's sources and starts and stops them accordingly.
pub(crate) struct Leases {
    connectors: Connectors,
    store: Arc<dyn Store>,
    /// The holder's name in the leases: the instance name and this process's suffix.
    holder: String,
    ttl: Duration,
    balance: bool,
    hand_over_unreachable: Option<Duration>,
    held: BTreeMap<String, Held>,
    /// The replicas seen at the last census (this one included), the share of each, and the
    /// fewest sources one of them holds.
    members: usize,
    share: usize,
    least: usize,
    /// The census's replica to give a source to balance them.
    giver: Option<String>,
    /// The source last handed over to balance, until another replica is seen holding it (or a
    /// lease has passed): one at a time, so that a stale count never gives two.
    balancing: Option<(String, tokio::time::Instant)>,
    /// Until then this replica rests from balancing (it handed a device over that it could
    /// not reach).
    resting_until: Option<tokio::time::Instant>,
    /// Sources handed over, not asked for again here until then.
    cooling: BTreeMap<String, tokio::time::Instant>,
    /// Sources handed over whose leases are given back once their runs here have ended, with
    /// the latest expiry granted: a release that reaches the database late must not end a
    /// hold taken again since (which expires later).
    releasing: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    /// Since when the rounds have found a source's lease free without asking for it.
    free_since: BTreeMap<String, tokio::time::Instant>,
}

impl Leases {
    /// Leases for `connectors`, whose sources from then on start only when their lease is held.
    pub(crate) fn new(connectors: Connectors, store: Arc<dyn Store>, config: &LeaseConfig) -> Self {
        connectors.start_on_demand();
        Self {
            connectors,
            store,
            holder: mantis_runtime::lease_holder(Some(&config.instance_name()), "ingestion"),
            ttl: Duration::from_secs(config.ttl_secs.clamp(MIN_TTL_SECS, 3600)),
            balance: config.balance,
            hand_over_unreachable: (config.hand_over_unreachable_secs > 0)
                .then(|| Duration::from_secs(config.hand_over_unreachable_secs)),
            held: BTreeMap::new(),
            members: 1,
            share: usize::MAX,
            least: 0,
            giver: None,
            balancing: None,
            resting_until: None,
            cooling: BTreeMap::new(),
            releasing: BTreeMap::new(),
            free_since: BTreeMap::new(),
        }
    }

    /// This process's name in the leases.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    fn period(&self) -> Duration {
        self.ttl / 5
    }

    /// How long a source taken beyond the share is kept from balancing: ten times the wait
    /// for an unreachable device (a replica that could not reach it tries again at most that
    /// often), ten leases without that wait.
    fn kept_beyond_share(&self) -> Duration {
        self.hand_over_unreachable.unwrap_or(self.ttl).max(self.ttl) * 10
    }

    /// What the next round asks for.
    fn plan(&self, now: tokio::time::Instant) -> Plan {
        Plan {
            held: self.held.keys().cloned().collect(),
            skip: self
                .cooling
                .keys()
                .chain(self.releasing.keys())
                .cloned()
                .collect(),
            orphans: self
                .free_since
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) >= self.period())
                .map(|(s, _)| s.clone())
                .collect(),
            share: self.share,
            resting: self.resting_until.is_some_and(|until| now < until),
            balance: self.balance,
        }
    }

    /// Renews this replica's own lease and counts the replicas' (the census), then asks for
    /// the leases of the sources held here and, up to this replica's share (the sources
    /// divided by the replicas, rounded up; all of them without balancing or without a
    /// census), of the free ones — a few at a time, each bounded by one period, handing each
    /// answer to the keeper as it comes; the sources other replicas hold are shown as the
    /// listing found them, without asking. Then reads the sources added on other replicas.
    /// Runs apart from the keeper, which never waits for it.
    fn round(
        &self,
        plan: Plan,
        answers: tokio::sync::mpsc::UnboundedSender<Msg>,
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
            let now = chrono::Utc::now();
            let census: Result<mantis_store::Result<_>, _> = tokio::time::timeout(period, async {
                store
                    .acquire_lease(&format!("{MEMBER_PREFIX}{holder}"), &holder, now, ttl)
                    .await?;
                if plan.resting {
                    store
                        .acquire_lease(&format!("{RESTING_PREFIX}{holder}"), &holder, now, ttl)
                        .await?;
                }
                let members = store.live_leases(MEMBER_PREFIX, now).await?;
                let resting = store.live_leases(RESTING_PREFIX, now).await?;
                let sources = store.live_leases(CONNECTOR_PREFIX, now).await?;
                Ok((members, resting, sources))
            })
            .await;
            let names = connectors.names();
            // (source, asked beyond this replica's share)
            let mut asks: Vec<(String, bool)> = Vec::new();
            match census {
                Ok(Ok((members, resting, leases))) => {
                    // Sources held by each replica, those holding none included.
                    let mut counts: BTreeMap<String, usize> =
                        members.iter().map(|m| (m.holder.clone(), 0)).collect();
                    counts.entry(holder.clone()).or_default();
                    for l in &leases {
                        if let Some(n) = counts.get_mut(&l.holder) {
                            *n += 1;
                        }
                    }
                    let members = counts.len();
                    let share = if plan.balance {
                        names.len().div_ceil(members)
                    } else {
                        names.len()
                    };
                    // A replica resting from balancing is handed nothing to balance.
                    let resting: BTreeSet<String> = resting.into_iter().map(|l| l.holder).collect();
                    let least = counts
                        .iter()
                        .filter(|(h, _)| !resting.contains(*h))
                        .map(|(_, n)| *n)
                        .min()
                        .unwrap_or(0);
                    let most = counts.values().copied().max().unwrap_or(0);
                    let giver = counts
                        .iter()
                        .find(|(_, n)| **n == most)
                        .map(|(h, _)| h.clone());
                    if answers
                        .send(Msg::Census {
                            members,
                            share,
                            least,
                            giver,
                        })
                        .is_err()
                    {
                        return;
                    }
                    let leases: BTreeMap<String, mantis_store::Lease> = leases
                        .into_iter()
                        .filter_map(|l| {
                            let source = l.name.strip_prefix(CONNECTOR_PREFIX)?.to_owned();
                            Some((source, l))
                        })
                        .collect();
                    let mut room = share.saturating_sub(plan.held.len());
                    for source in names {
                        let lease = leases.get(&source);
                        let told = if let Some(l) = lease.filter(|l| !l.is_held_by(&holder)) {
                            Some(Msg::Answer(Answer::listed(source, l.clone())))
                        } else if plan.skip.contains(&source) {
                            // Handed over yet still listed as this replica's (a renewal the
                            // database committed after its ask timed out, or after the give-
                            // back): the keeper gives it back again, up to the expiry listed.
                            lease.map(|l| Msg::Answer(Answer::listed(source, l.clone())))
                        } else if lease.is_some() || plan.held.contains(&source) {
                            asks.push((source, false));
                            None
                        } else if room > 0 {
                            room -= 1;
                            asks.push((source, false));
                            None
                        } else if plan.orphans.contains(&source) {
                            asks.push((source, true));
                            None
                        } else {
                            Some(Msg::Free(source))
                        };
                        if let Some(msg) = told
                            && answers.send(msg).is_err()
                        {
                            return;
                        }
                    }
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "the database did not answer in time".into(),
                    };
                    metrics::counter!("mantis_connector_lease_failures_total").increment(1);
                    tracing::warn!(error = %why, "the replicas cannot be counted: the held sources' leases asked for, and free ones up to the last share");
                    let (held, other): (Vec<String>, Vec<String>) = names
                        .into_iter()
                        .filter(|s| !plan.skip.contains(s))
                        .partition(|s| plan.held.contains(s));
                    let room = plan.share.saturating_sub(held.len());
                    asks = held
                        .into_iter()
                        .chain(other.into_iter().take(room))
                        .map(|s| (s, false))
                        .collect();
                }
            }
            let asks = asks.into_iter().map(|(source, beyond_share)| {
                let (store, holder) = (store.clone(), holder.clone());
                async move {
                    let asked = tokio::time::Instant::now();
                    // Not answered in time but granted all the same, the lease shows as this
                    // replica's in the next round's listing, which renews it and reads on.
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
                        beyond_share,
                    }
                }
            });
            // A few at a time: a round must not take every connection of the pool.
            let mut answered = futures::stream::iter(asks).buffer_unordered(CONCURRENT_ASKS);
            while let Some(answer) = answered.next().await {
                if answers.send(Msg::Answer(answer)).is_err() {
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

    fn take(&mut self, msg: Msg) {
        let now = tokio::time::Instant::now();
        match msg {
            Msg::Answer(answer) => self.apply(answer),
            Msg::Census {
                members,
                share,
                least,
                giver,
            } => {
                if members != self.members {
                    tracing::info!(replicas = members, share, "replicas sharing the sources");
                }
                self.members = members;
                self.share = share;
                self.least = least;
                self.giver = giver;
                metrics::gauge!("mantis_ingestion_replicas").set(members as f64);
                self.rebalance(now);
            }
            Msg::Free(source) => {
                self.free_since.entry(source.clone()).or_insert(now);
                if !self.held.contains_key(&source) {
                    self.connectors.stand_by(&source, None, None);
                }
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
            beyond_share,
        } = answer;
        match lease {
            Ok(lease) if lease.is_held_by(&self.holder) => {
                self.free_since.remove(&source);
                if self.cooling.contains_key(&source) || self.releasing.contains_key(&source) {
                    // Asked before it was handed over: given back again, up to the expiry
                    // this answer granted.
                    self.release(source, lease.expires_at);
                    return;
                }
                // The expiry granted, even by an answer too late to read on: a give-back
                // bounded by an older one would leave this hold standing.
                if let Some(held) = self.held.get_mut(&source) {
                    held.expires_at = held.expires_at.max(lease.expires_at);
                }
                let now = tokio::time::Instant::now();
                let until = asked + self.ttl / 2;
                if until <= now {
                    // Answered too late to read on: the lease may lapse before the next one.
                    return;
                }
                let kept = self.kept_beyond_share();
                let held = self.held.entry(source.clone()).or_insert_with(|| {
                    tracing::info!(connector = %source, holder = %self.holder, "lease taken: this replica reads the source");
                    Held {
                        until,
                        taken: now,
                        reached: now,
                        kept_until: beyond_share.then(|| now + kept),
                        expires_at: lease.expires_at,
                    }
                });
                // An older ask answered after a newer one extends nothing.
                held.until = held.until.max(until);
                held.expires_at = held.expires_at.max(lease.expires_at);
                // False only while its previous run drains: the next round starts it.
                self.connectors.activate(&source);
            }
            Ok(lease) => {
                self.free_since.remove(&source);
                if self.balancing.as_ref().is_some_and(|(s, _)| *s == source) {
                    // Taken by another: the next one may go.
                    self.balancing = None;
                }
                if self.held.remove(&source).is_some() {
                    tracing::warn!(connector = %source, holder = %lease.holder, "lease lost to another replica");
                }
                let runs_on = mantis_runtime::holder_name(&lease.holder);
                self.connectors.stand_by(&source, Some(runs_on), None);
            }
            Err(e) => {
                metrics::counter!("mantis_connector_lease_failures_total").increment(1);
                tracing::warn!(connector = %source, error = %e, "lease cannot be renewed or taken");
            }
        }
        metrics::gauge!("mantis_connector_leases_held").set(self.held.len() as f64);
    }

    /// Holding the most, and two sources more than another replica not resting at least, hands
    /// one over: the one taken last among those held for half a lease at least (so a source
    /// moves at most once in that time), those taken beyond the share lately left out (nobody
    /// else took them). One at a time: the next once another replica is seen holding it, or a
    /// lease later.
    fn rebalance(&mut self, now: tokio::time::Instant) {
        if self
            .balancing
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
        {
            return;
        }
        if !self.balance
            || self.members < 2
            || self.held.len() < self.least + 2
            || self.giver.as_deref() != Some(self.holder.as_str())
        {
            return;
        }
        let settled = self.ttl / 2;
        let newest = self
            .held
            .iter()
            .filter(|(_, h)| {
                h.kept_until.is_none_or(|until| now >= until)
                    && now.saturating_duration_since(h.taken) >= settled
            })
            .max_by_key(|(_, h)| h.taken)
            .map(|(s, _)| s.clone());
        if let Some(source) = newest {
            tracing::info!(connector = %source, held = self.held.len(), least = self.least, replicas = self.members, "handing a source over to balance the replicas");
            self.hand_over(&source, HandOver::Balance, now);
            self.balancing = Some((source, now));
        }
    }

    /// With other replicas running, hands over the sources whose devices this one has not
    /// reached for `hand_over_unreachable` since it took them (a network path of its own may
    /// be down): another replica tries, and this one does not ask for them again for that long.
    /// A device answering with errors is reached (another replica would get the same).
    fn hand_over_unreachable(&mut self, now: tokio::time::Instant) {
        use mantis_connectors::ConnectorState as S;
        let Some(limit) = self.hand_over_unreachable else {
            return;
        };
        let wall = chrono::Utc::now();
        let period = self.period();
        for (source, held) in &mut self.held {
            let Some(status) = self.connectors.status(source) else {
                continue;
            };
            // Between two looks a connection that comes and goes may show down each time:
            // a value received since the last look counts as reached too.
            let answered_lately = status
                .last_value_at
                .is_some_and(|t| (wall - t).to_std().map_or(true, |ago| ago <= period));
            if answered_lately || !matches!(status.state, S::Connecting | S::Disconnected) {
                held.reached = now;
            }
        }
        if self.members < 2 {
            return;
        }
        let unreached: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.reached) >= limit)
            .map(|(s, _)| s.clone())
            .collect();
        for source in unreached {
            tracing::warn!(connector = %source, after_secs = limit.as_secs(), "device not reached from this replica: handed over so that another one may try");
            self.hand_over(&source, HandOver::Unreachable, now);
        }
    }

    /// Stops reading `source` here and gives its lease back once the run has ended (its batch
    /// in flight handed over, within 5 s, well before the lease could lapse).
    fn hand_over(&mut self, source: &str, why: HandOver, now: tokio::time::Instant) {
        // Not known held (never so here): the most a hold granted by now could expire.
        let expires_at = self.held.remove(source).map_or_else(
            || chrono::Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or_default(),
            |h| h.expires_at,
        );
        metrics::gauge!("mantis_connector_leases_held").set(self.held.len() as f64);
        metrics::counter!("mantis_connector_lease_handovers_total", "reason" => why.as_str())
            .increment(1);
        // At least the release's 5 s: this replica must not ask for it while giving it back.
        let (cool_off, reason) = match (why, self.hand_over_unreachable) {
            (HandOver::Unreachable, Some(limit)) => (
                limit,
                Some(format!(
                    "the device was not reached from this replica for {} s: handed over so that \
                     another replica may try",
                    limit.as_secs()
                )),
            ),
            _ => (self.ttl, None),
        };
        if matches!(why, HandOver::Unreachable) {
            self.resting_until = Some(now + cool_off);
        }
        // A longer cooling already running is kept.
        let until = self.cooling.entry(source.to_owned()).or_insert(now);
        *until = (*until).max(now + cool_off);
        self.connectors.stand_by(source, None, reason.as_deref());
        self.release(source.to_owned(), expires_at);
        self.release_ended();
    }

    /// Gives `source`'s lease back once its run here has ended, up to the expiry `expires_at`
    /// (the latest seen granted).
    fn release(&mut self, source: String, expires_at: chrono::DateTime<chrono::Utc>) {
        let bound = self.releasing.entry(source).or_insert(expires_at);
        *bound = (*bound).max(expires_at);
    }

    /// Gives back the leases of the sources handed over whose runs here have ended.
    fn release_ended(&mut self) {
        let ended: Vec<(String, chrono::DateTime<chrono::Utc>)> = self
            .releasing
            .iter()
            .filter(|(s, _)| !self.connectors.is_running(s))
            .map(|(s, e)| (s.clone(), *e))
            .collect();
        for (source, expires_at) in ended {
            self.releasing.remove(&source);
            let (store, holder) = (self.store.clone(), self.holder.clone());
            tokio::spawn(async move {
                let released = tokio::time::timeout(
                    Duration::from_secs(5),
                    store.release_lease(&lease_name(&source), &holder, Some(expires_at)),
                )
                .await;
                if !matches!(released, Ok(Ok(_))) {
                    tracing::warn!(connector = %source, "lease of a source handed over not given back; it lapses by itself");
                }
            });
        }
    }

    /// The work of each tick besides the round: cooling ends, devices out of reach handed
    /// over, leases of ended runs given back.
    fn tend(&mut self, now: tokio::time::Instant) {
        self.cooling.retain(|_, until| *until > now);
        self.hand_over_unreachable(now);
        self.release_ended();
    }

    /// Stops the sources whose leases were not renewed in time.
    fn expire(&mut self, now: tokio::time::Instant) {
        let lapsing: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
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
    /// hands them back (and this replica's own) so the other replicas take them over at once.
    pub(crate) async fn run(
        mut self,
        shutdown: CancellationToken,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        tracing::info!(holder = %self.holder, ttl_secs = self.ttl.as_secs(), balance = self.balance, "connector leases: each source is read by the replica holding its lease");
        let mut tick = tokio::time::interval(self.period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let mut in_flight: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let next_deadline = self.held.values().map(|h| h.until).min();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = async {
                    match next_deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => self.expire(tokio::time::Instant::now()),
                Some(msg) = answers.recv() => self.take(msg),
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now();
                    self.tend(now);
                    if in_flight.as_ref().is_none_or(|h| h.is_finished()) {
                        let plan = self.plan(now);
                        in_flight = Some(tokio::spawn(self.round(plan, answers_tx.clone())));
                    } else {
                        tracing::debug!("the previous lease round is still asking; skipped");
                    }
                }
            }
        }
        if let Some(h) = in_flight {
            h.abort();
            // Ended, so that no ask of it lands after the releases below.
            let _ = h.await;
        }
        // Counted out first, so that the others' shares take this replica's sources in at once
        // when they are handed back.
        let member = format!("{MEMBER_PREFIX}{}", self.holder);
        if !matches!(
            tokio::time::timeout(
                Duration::from_secs(5),
                self.store.release_lease(&member, &self.holder, None)
            )
            .await,
            Ok(Ok(_))
        ) {
            tracing::debug!("this replica's own lease not handed back; it lapses by itself");
        }
        stopped.await;
        // Every source's, not only those known held: an aborted round may have taken some (a
        // release only ever frees this holder's).
        let mut leases: BTreeSet<String> = std::mem::take(&mut self.held)
            .into_keys()
            .chain(self.connectors.names())
            .map(|s| lease_name(&s))
            .collect();
        // Again, in case the first release failed; and the resting one, if any.
        leases.insert(member);
        leases.insert(format!("{RESTING_PREFIX}{}", self.holder));
        let releases = leases.into_iter().map(|lease| {
            let (store, holder) = (self.store.clone(), self.holder.clone());
            async move {
                let released =
                    tokio::time::timeout(Duration::from_secs(5), store.release_lease(&lease, &holder, None))
                        .await;
                match released {
                    Ok(Ok(_)) => tracing::debug!(%lease, "lease handed back"),
                    Ok(Err(e)) => {
                        tracing::warn!(%lease, error = %e, "lease not handed back; it lapses by itself")
                    }
                    Err(_) => {
                        tracing::warn!(%lease, "lease not handed back in time; it lapses by itself")
                    }
                }
            }
        });
        futures::future::join_all(releases).await;
        // An ask of the aborted round that the database committed after those releases
        // (dropping it does not cancel a statement the database received) would hold its
        // source for a whole lease: looked for once more, a moment later.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = tokio::time::timeout(
            Duration::from_secs(5),
            self.store.live_leases(CONNECTOR_PREFIX, chrono::Utc::now()),
        )
        .await;
        if let Ok(Ok(left)) = left {
            for lease in left.into_iter().filter(|l| l.is_held_by(&self.holder)) {
                let released = tokio::time::timeout(
                    Duration::from_secs(5),
                    self.store.release_lease(&lease.name, &self.holder, None),
                )
                .await;
                tracing::debug!(lease = %lease.name, released = matches!(released, Ok(Ok(true))), "lease taken after the shutdown's releases handed back");
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
        config.connector_leases.ttl_secs = 11;
        let e = config.validate().expect_err("too short").to_string();
        assert!(e.contains("ingestion.connector_leases.ttl_secs"), "{e}");
        config.connector_leases.ttl_secs = u64::MAX;
        config.validate().expect_err("too long");
        config.connector_leases.ttl_secs = 20;
        config.connector_leases.hand_over_unreachable_secs = 19;
        let e = config
            .validate()
            .expect_err("shorter than a lease")
            .to_string();
        assert!(
            e.contains("ingestion.connector_leases.hand_over_unreachable_secs"),
            "{e}"
        );
        config.connector_leases.hand_over_unreachable_secs = 0;
        config.validate().expect("never");
        config.connector_leases.hand_over_unreachable_secs = 20;
        config.validate().expect("a lease");
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
