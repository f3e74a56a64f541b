//! The connector runtime: [`Connectors`] holds the configured sources; each runs as a
//! supervised task that connects, runs a session until it fails, and reconnects with back-off;
//! a watchdog cuts a session that stays silent longer than the source's `silence_timeout_secs`
//! and reconnects it (which re-subscribes, or polls again). A session that panics is restarted
//! like one that failed; one the device refuses (credentials, certificate) shows `ERROR` while
//! it keeps retrying at the back-off's pace. Nothing stops for good except on shutdown.
//! [`Connectors::browse`] lists a device's address space through its source's connection.

use crate::config::{SourceConfig, Supervision};
use crate::mtconnect::{CursorStore, FileCursors};
use crate::sink::{Delivered, ReadingSink, SinkError, Unreadable};
use crate::status::{ConnectorState, ConnectorStatus, StatusCell};
use crate::{Error, modbus, mqtt, mtconnect, opcua};
use async_trait::async_trait;
use mantis_domain::{IncomingReading, SourceProtocol};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Characters of why a device message was unreadable kept (in its dead letter, the status and
/// the log): the first errors of a batch say what is wrong; thousands more would make the
/// letter too large for the bus, which would refuse it.
pub(crate) const MAX_REASON_CHARS: usize = 4_096;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stopping session may take to finish its batch in flight (deliver, acknowledge).
const DRAIN_BUDGET: Duration = Duration::from_secs(5);
/// A session connected at least this long resets the reconnection back-off.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The connection could not be established.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection was lost.
    #[error("connection lost: {0}")]
    Connection(String),
    /// The peer refused something essential (a subscription).
    #[error("{0}")]
    Refused(String),
    /// A request went unanswered.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The peer refused us (credentials, certificate, security settings): retrying will not
    /// help until someone changes a configuration, so the source shows `ERROR`.
    #[error("{0}")]
    Rejected(String),
}

impl SessionError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Connection(_) => "connection",
            Self::Refused(_) => "refused",
            Self::Timeout(_) => "timeout",
            Self::Rejected(_) => "rejected",
        }
    }

    /// The state a source is in after this error.
    fn state(&self) -> ConnectorState {
        match self {
            Self::Rejected(_) => ConnectorState::Error,
            _ => ConnectorState::Disconnected,
        }
    }
}

/// One node of a source's address space, as browsed (`GET /api/v1/connectors/{name}/browse`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowsedNode {
    /// The id to put in a source's `node_id` (OPC UA: `ns=2;s=Line1.Temperature`).
    pub node_id: String,
    /// Its browse name.
    pub browse_name: String,
    /// Its display name.
    pub display_name: String,
    /// `Object`, `Variable`, `Method`, ... (OPC UA node classes).
    pub node_class: String,
    /// Its type definition, if any.
    pub type_definition: Option<String>,
    /// The current value of a numeric variable.
    pub value: Option<f64>,
    /// The status code of that value (`Good`, `BadSensorFailure (0x808B0000)`).
    pub status: Option<String>,
}

/// Why a browse failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrowseError {
    /// No source of that name.
    #[error("no connector named `{0}`")]
    UnknownSource(String),
    /// The source's protocol has no address space to browse.
    #[error("a {0} source cannot be browsed (OPC UA and MTConnect sources can)")]
    NotSupported(&'static str),
    /// The source is not connected right now.
    #[error("the source is not connected; browse again once its state is CONNECTED")]
    NotConnected,
    /// The node to browse is not a valid node id, or the server does not know it.
    #[error("{0}")]
    InvalidNode(String),
    /// The server failed to answer.
    #[error("browsing failed: {0}")]
    Failed(String),
}

/// A protocol implementation driven by the supervisor.
#[async_trait]
pub(crate) trait Source: Send + Sync + 'static {
    /// Connects and runs until the connection fails (`Err`) or `ctx.stop` is cancelled (`Ok`).
    async fn session(self: Arc<Self>, ctx: SessionCtx) -> Result<(), SessionError>;

    /// The children of `node` (the root when `None`) in the device's address space.
    async fn browse(&self, _node: Option<&str>) -> Result<Vec<BrowsedNode>, BrowseError> {
        Err(BrowseError::NotSupported("this"))
    }
}

/// What a session works with.
#[derive(Clone)]
pub(crate) struct SessionCtx {
    pub(crate) name: Arc<str>,
    pub(crate) status: Arc<StatusCell>,
    pub(crate) sink: Arc<dyn ReadingSink>,
    /// Cancelled when the session must end (shutdown).
    pub(crate) stop: CancellationToken,
    connected_at: Arc<Mutex<Option<Instant>>>,
}

impl SessionCtx {
    /// The connection is up; `active` lists what is read.
    pub(crate) fn connected(&self, active: Vec<String>) {
        let mut at = self
            .connected_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        at.get_or_insert_with(Instant::now);
        self.status.connected(active);
    }

    fn connected_for(&self) -> Option<Duration> {
        self.connected_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// Delivers `batch` to the sink, retrying while it is unavailable (the watchdog is kept
    /// quiet meanwhile: the device is not at fault). Gives up, returning `None`, when `stop` is
    /// cancelled (after at least one attempt) or at `deadline`.
    pub(crate) async fn deliver(
        &self,
        batch: Vec<IncomingReading>,
        protocol: SourceProtocol,
        deadline: Option<Instant>,
    ) -> Option<Delivered> {
        let n = batch.len();
        let delivered = self
            .retry("readings", n, deadline, || {
                self.sink.deliver(batch.clone(), protocol)
            })
            .await?;
        self.status.delivered(n as u64);
        Some(delivered)
    }

    /// A message (or one value of it) of this source that yields no reading: counted, logged
    /// and shown in the status (`what: reason`), and returned for [`SessionCtx::keep_unreadable`].
    /// `origin` names where it came from (topic, node, DataItem), `payload` is what was sent.
    pub(crate) fn unreadable(
        &self,
        protocol: SourceProtocol,
        origin: String,
        what: &str,
        payload: Vec<u8>,
        reason: String,
    ) -> Unreadable {
        crate::metrics::invalid_message(&self.name);
        // One entry per bad item of a batch, each quoting the input: bounded before it is
        // logged, shown in the status and kept as the dead letter's reason header.
        let reason = mantis_domain::clip(&reason, MAX_REASON_CHARS);
        let detail = format!("{what}: {reason}");
        tracing::warn!(connector = %self.name, %protocol, %detail, "a device message yields no reading; handed over to be dead-lettered");
        self.status.error("payload", &detail, None);
        Unreadable {
            connector: self.name.to_string(),
            protocol,
            origin,
            payload,
            reason,
        }
    }

    /// Hands `messages` that yielded no reading to the sink, retrying as
    /// [`SessionCtx::deliver`] does; `false` when it gave up (stopped).
    pub(crate) async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> bool {
        if messages.is_empty() {
            return true;
        }
        let n = messages.len();
        self.retry("unreadable messages", n, None, || {
            self.sink.keep_unreadable(messages.clone())
        })
        .await
        .is_some()
    }

    /// Runs `attempt` until the sink takes it, pausing (100 ms doubling to 5 s) while it is
    /// unavailable; `None` when `stop` is cancelled (after at least one attempt) or the next
    /// pause would pass `deadline`.
    async fn retry<T, F>(
        &self,
        what: &str,
        n: usize,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> F,
    ) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, SinkError>>,
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match attempt().await {
                Ok(done) => return Some(done),
                Err(SinkError::Unavailable(reason)) => {
                    tracing::warn!(connector = %self.name, what, n, %reason, "sink unavailable; retrying");
                    self.status.error(
                        "sink",
                        &format!("{what} cannot be handed over: {reason}"),
                        None,
                    );
                    self.status.alive();
                }
            }
            if self.stop.is_cancelled() || deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return None,
            }
            delay = delay.saturating_mul(2).min(Duration::from_secs(5));
        }
    }
}

struct Entry {
    config: SourceConfig,
    status: Arc<StatusCell>,
    source: Arc<dyn Source>,
    /// The supervisor while it runs (or drains after [`Connectors::stand_by`]).
    task: Option<Task>,
}

/// A source validated and built by [`Connectors::prepare`], not added yet.
pub struct Prepared {
    config: SourceConfig,
    source: Arc<dyn Source>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("source", &self.config.name())
            .finish()
    }
}

/// A spawned supervisor: cancel `stop` to end it.
struct Task {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

struct Running {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

struct Registry {
    sink: Arc<dyn ReadingSink>,
    /// Default PKI directory of the OPC UA sources.
    opcua_pki: PathBuf,
    /// Where the MTConnect sources keep their cursors (none: in memory only).
    cursors: Option<Arc<dyn CursorStore>>,
    sources: Mutex<BTreeMap<String, Entry>>,
    running: Mutex<Option<Running>>,
    /// Sources start only when [`Connectors::activate`]d (another instance may run them).
    on_demand: std::sync::atomic::AtomicBool,
}

/// The sources of one ingestion service: add them (from the configuration, or at run time),
/// run them, read their status. Cheap to clone.
#[derive(Clone)]
pub struct Connectors {
    inner: Arc<Registry>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("sources", &self.names())
            .finish()
    }
}

impl Connectors {
    /// No sources yet; readings will go to `sink`. Files of the sources (the OPC UA client's
    /// PKI directory) go under `./data`; the MTConnect sources' cursors are kept in memory
    /// only (see [`Connectors::with_data_dir`]).
    pub fn new(sink: Arc<dyn ReadingSink>) -> Self {
        Self::with_dirs(sink, Path::new("data").join("opcua").join("pki"), None)
    }

    /// No sources yet; readings will go to `sink`, files of the sources under `data_dir` (the
    /// OPC UA client's certificate, key and trusted server certificates in
    /// `<data_dir>/opcua/pki`, unless a source names its own `pki_dir`; each MTConnect source's
    /// cursor in `<data_dir>/mtconnect/<source>.json`, so a restart reads on where it stopped).
    pub fn with_data_dir(sink: Arc<dyn ReadingSink>, data_dir: &Path) -> Self {
        Self::with_dirs(
            sink,
            data_dir.join("opcua").join("pki"),
            Some(Arc::new(FileCursors::new(data_dir.join("mtconnect")))),
        )
    }

    /// [`Connectors::with_data_dir`], the MTConnect sources' cursors kept in `cursors` instead
    /// (e.g. the database, shared by the replicas of a service, so that the one taking a
    /// source over reads on where the other stopped).
    pub fn with_cursor_store(
        sink: Arc<dyn ReadingSink>,
        data_dir: &Path,
        cursors: Arc<dyn CursorStore>,
    ) -> Self {
        Self::with_dirs(sink, data_dir.join("opcua").join("pki"), Some(cursors))
    }

    fn with_dirs(
        sink: Arc<dyn ReadingSink>,
        opcua_pki: PathBuf,
        cursors: Option<Arc<dyn CursorStore>>,
    ) -> Self {
        Self {
            inner: Arc::new(Registry {
                sink,
                opcua_pki,
                cursors,
                sources: Mutex::new(BTreeMap::new()),
                running: Mutex::new(None),
                on_demand: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The names of the sources.
    pub fn names(&self) -> Vec<String> {
        self.sources().keys().cloned().collect()
    }

    /// From now on, sources added (and those added before, when [`Connectors::run`] starts)
    /// wait in `STANDBY` until [`Connectors::activate`]d: for a service replicated over
    /// several instances, where a lease decides which one reads each device. Call before
    /// `run`.
    pub fn start_on_demand(&self) {
        self.inner
            .on_demand
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for e in self.sources().values() {
            if e.task.is_none() {
                e.status.stand_by(None);
            }
        }
    }

    fn on_demand(&self) -> bool {
        self.inner
            .on_demand
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts the source `name` here if it is not running (while [`Connectors::run`] runs).
    /// Returns whether it runs now; false for an unknown source, before `run`, after the
    /// shutdown, or while its previous run still drains after [`Connectors::stand_by`] (it is
    /// never read twice at once: ask again later).
    pub fn activate(&self, name: &str) -> bool {
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(r) = running.as_ref().filter(|r| !r.shutdown.is_cancelled()) else {
            return false;
        };
        let mut sources = self.sources();
        let Some(e) = sources.get_mut(name) else {
            return false;
        };
        match &e.task {
            Some(t) if !t.stop.is_cancelled() => return true,
            Some(t) if !t.handle.is_finished() => return false,
            _ => {}
        }
        e.status.runs_here();
        e.task = Some(self.spawn(r, &e.config, e.source.clone(), e.status.clone()));
        tracing::info!(connector = %name, "source started here");
        true
    }

    /// Whether a run of the source `name` is in progress here: reading, or handing its batch
    /// in flight over after [`Connectors::stand_by`].
    pub fn is_running(&self, name: &str) -> bool {
        self.sources()
            .get(name)
            .and_then(|e| e.task.as_ref())
            .is_some_and(|t| !t.handle.is_finished())
    }

    /// Stops the source `name` here (if it runs) and shows it in `STANDBY`, run by
    /// `elsewhere` (the instance holding it, when known), with `why` as its last error when
    /// given. Its session ends as at a shutdown: the batch in flight is handed over first.
    pub fn stand_by(&self, name: &str, elsewhere: Option<&str>, why: Option<&str>) {
        let mut sources = self.sources();
        let Some(e) = sources.get_mut(name) else {
            return;
        };
        if let Some(why) = why {
            e.status.error("lease", why, None);
        }
        if let Some(t) = e.task.as_ref().filter(|t| !t.stop.is_cancelled()) {
            tracing::info!(connector = %name, elsewhere, "source stopped here");
            t.stop.cancel();
        }
        e.status.stand_by(elsewhere.map(str::to_owned));
    }

    /// Validates `config` and adds the source; when [`Connectors::run`] is already running, the
    /// source starts at once. Returns its first status.
    pub fn add(&self, config: SourceConfig) -> Result<ConnectorStatus, Error> {
        let prepared = self.prepare(config)?;
        self.insert(prepared)
    }

    /// Validates `config` and builds its source without adding it (so that it can be stored
    /// first, then [`Connectors::insert`]ed); refuses a name taken here.
    pub fn prepare(&self, config: SourceConfig) -> Result<Prepared, Error> {
        config.validate()?;
        if self.sources().contains_key(config.name()) {
            return Err(Error::Duplicate(config.name().to_owned()));
        }
        let source = build_source(&config, &self.inner.opcua_pki, self.inner.cursors.clone())?;
        Ok(Prepared { config, source })
    }

    /// Adds a [`Connectors::prepare`]d source (started at once when `run` is running and the
    /// sources do not start on demand). Returns its first status.
    pub fn insert(&self, prepared: Prepared) -> Result<ConnectorStatus, Error> {
        let Prepared { config, source } = prepared;
        let name = config.name().to_owned();
        let status = Arc::new(StatusCell::new(&name, config.kind(), config.endpoint()));
        // Lock order: `running`, then `sources` (as in `run`), so a source added while `run`
        // starts is spawned exactly once.
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut sources = self.sources();
            if sources.contains_key(&name) {
                return Err(Error::Duplicate(name));
            }
            let task = match running.as_ref() {
                Some(r) if !self.on_demand() => {
                    Some(self.spawn(r, &config, source.clone(), status.clone()))
                }
                _ => None,
            };
            if self.on_demand() {
                status.stand_by(None);
            }
            sources.insert(
                name.clone(),
                Entry {
                    config: config.clone(),
                    status: status.clone(),
                    source: source.clone(),
                    task,
                },
            );
        }
        drop(running);
        tracing::info!(connector = %name, kind = config.kind(), endpoint = %config.endpoint(), "source added");
        Ok(status.snapshot())
    }

    /// The status of every source, by name.
    pub fn statuses(&self) -> Vec<ConnectorStatus> {
        self.sources()
            .values()
            .map(|e| e.status.snapshot())
            .collect()
    }

    /// The status of the source `name`.
    pub fn status(&self, name: &str) -> Option<ConnectorStatus> {
        self.sources().get(name).map(|e| e.status.snapshot())
    }

    /// The configuration of the source `name`.
    pub fn config(&self, name: &str) -> Option<SourceConfig> {
        self.sources().get(name).map(|e| e.config.clone())
    }

    /// The children of `node` (the root, OPC UA's Objects folder, when `None`) in the address
    /// space of the source `name`, through its current connection.
    pub async fn browse(
        &self,
        name: &str,
        node: Option<&str>,
    ) -> Result<Vec<BrowsedNode>, BrowseError> {
        let (source, kind) = {
            let sources = self.sources();
            let e = sources
                .get(name)
                .ok_or_else(|| BrowseError::UnknownSource(name.to_owned()))?;
            (e.source.clone(), e.config.kind())
        };
        match source.browse(node).await {
            Err(BrowseError::NotSupported(_)) => Err(BrowseError::NotSupported(kind)),
            other => other,
        }
    }

    fn spawn(
        &self,
        running: &Running,
        config: &SourceConfig,
        source: Arc<dyn Source>,
        status: Arc<StatusCell>,
    ) -> Task {
        let stop = running.shutdown.child_token();
        let shutdown = running.shutdown.clone();
        let ctx = Supervised {
            name: Arc::from(config.name()),
            supervision: config.supervision(),
            protocol_kind: config.kind(),
            status: status.clone(),
            sink: self.inner.sink.clone(),
        };
        let handle = running.tracker.spawn({
            let stop = stop.clone();
            async move {
                supervise(source, ctx, stop).await;
                // Stopped here while the service goes on: another instance reads it (who,
                // as `stand_by` said).
                if !shutdown.is_cancelled() {
                    status.set_state(ConnectorState::Standby);
                }
            }
        });
        Task { stop, handle }
    }

    /// Runs every source (and those added later) until `shutdown` is cancelled, then lets each
    /// finish its batch in flight (bounded) and returns. Returns at once if already running.
    pub async fn run(&self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        {
            let mut running = self
                .inner
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if running.is_some() {
                tracing::warn!("the connectors are already running");
                return;
            }
            let r = Running {
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            };
            if !self.on_demand() {
                for e in self.sources().values_mut() {
                    e.task = Some(self.spawn(&r, &e.config, e.source.clone(), e.status.clone()));
                }
            }
            *running = Some(r);
        }
        shutdown.cancelled().await;
        tracker.close();
        tracker.wait().await;
        *self
            .inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

fn build_source(
    config: &SourceConfig,
    opcua_pki: &Path,
    cursors: Option<Arc<dyn CursorStore>>,
) -> Result<Arc<dyn Source>, Error> {
    Ok(match config {
        SourceConfig::Mqtt(c) => Arc::new(mqtt::MqttSource::new(c.clone())?),
        SourceConfig::Modbus(c) => Arc::new(modbus::ModbusSource::new(c.clone())),
        SourceConfig::OpcUa(c) => Arc::new(opcua::OpcUaSource::new(c.clone(), opcua_pki)?),
        SourceConfig::MtConnect(c) => {
            Arc::new(mtconnect::MtConnectSource::new(c.clone(), cursors)?)
        }
    })
}

struct Supervised {
    name: Arc<str>,
    supervision: Supervision,
    protocol_kind: &'static str,
    status: Arc<StatusCell>,
    sink: Arc<dyn ReadingSink>,
}

enum Outcome {
    Ended(Result<Result<(), SessionError>, tokio::task::JoinError>),
    Silent(Duration),
    Shutdown,
}

/// Waits until the source has been silent for `silence` (never when `None`).
async fn watchdog(status: &StatusCell, silence: Option<Duration>) -> Duration {
    let Some(silence) = silence else {
        return std::future::pending().await;
    };
    let tick = (silence / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let quiet = status.silent_for();
        if quiet >= silence {
            return quiet;
        }
    }
}

/// Aborts the task when dropped (so a cancelled supervisor never leaves a session behind).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tracing::instrument(skip_all, fields(connector = %s.name, kind = s.protocol_kind))]
async fn supervise(source: Arc<dyn Source>, s: Supervised, shutdown: CancellationToken) {
    let mut delay = s.supervision.reconnect_min;
    let mut attempt: u64 = 0;
    let mut refused = false;
    loop {
        if attempt > 0 {
            s.status.reconnecting();
        }
        attempt += 1;
        // A source the peer refuses stays in ERROR while it tries again.
        if !std::mem::take(&mut refused) {
            s.status.set_state(ConnectorState::Connecting);
        }
        // The silence is counted from the start of each session.
        s.status.alive();
        let ctx = SessionCtx {
            name: s.name.clone(),
            status: s.status.clone(),
            sink: s.sink.clone(),
            stop: shutdown.child_token(),
            connected_at: Arc::new(Mutex::new(None)),
        };
        let mut task = AbortOnDrop(tokio::spawn(source.clone().session(ctx.clone())));
        let outcome = tokio::select! {
            joined = &mut task.0 => Outcome::Ended(joined),
            quiet = watchdog(&s.status, s.supervision.silence) => Outcome::Silent(quiet),
            () = shutdown.cancelled() => Outcome::Shutdown,
        };
        match outcome {
            Outcome::Shutdown => {
                ctx.stop.cancel();
                if tokio::time::timeout(DRAIN_BUDGET, &mut task.0)
                    .await
                    .is_err()
                {
                    tracing::warn!("session did not stop within {DRAIN_BUDGET:?}; aborted");
                }
                s.status.set_state(ConnectorState::Stopped);
                return;
            }
            Outcome::Silent(quiet) => {
                s.status.watchdog_tripped();
                let detail = format!(
                    "no data for {} s (silence timeout); reconnecting",
                    quiet.as_secs()
                );
                tracing::warn!(%detail, "watchdog");
                s.status
                    .error("silence", &detail, Some(ConnectorState::Disconnected));
                ctx.stop.cancel();
                // A short grace period to hand over what was received, then cut.
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut task.0).await;
            }
            Outcome::Ended(Ok(Ok(()))) => {
                if shutdown.is_cancelled() {
                    s.status.set_state(ConnectorState::Stopped);
                    return;
                }
                s.status.error(
                    "ended",
                    "the session ended without an error; reconnecting",
                    Some(ConnectorState::Disconnected),
                );
            }
            Outcome::Ended(Ok(Err(e))) => {
                tracing::warn!(error = %e, "session failed; reconnecting");
                refused = matches!(e, SessionError::Rejected(_));
                s.status.error(e.kind(), &e.to_string(), Some(e.state()));
            }
            Outcome::Ended(Err(join)) => {
                tracing::error!(error = %join, "session panicked; reconnecting");
                s.status.error(
                    "panic",
                    &format!("internal error (session panicked): {join}"),
                    Some(ConnectorState::Disconnected),
                );
            }
        }
        drop(task);
        if ctx.connected_for().is_some_and(|d| d >= STABLE_AFTER) {
            delay = s.supervision.reconnect_min;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {
                s.status.set_state(ConnectorState::Stopped);
                return;
            }
        }
        delay = delay.saturating_mul(2).min(s.supervision.reconnect_max);
    }
}
