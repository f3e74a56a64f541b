//! Helpers of the connector tests, named after what a plant does: a recording sink, running
//! connectors, publishing from a device.

#![allow(dead_code, unreachable_pub)]

pub mod mtconnect_agent;
pub mod peers;

use async_trait::async_trait;
use mantis_connectors::{
    ConnectorStatus, Connectors, Delivered, ReadingSink, SinkError, SourceConfig, Unreadable,
};
use mantis_domain::{IncomingReading, SensorRef, SourceProtocol};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Records every delivered reading; refuses everything (`Unavailable`) while `failing`.
#[derive(Default)]
pub struct RecordingSink {
    readings: Mutex<Vec<(IncomingReading, SourceProtocol)>>,
    unreadable: Mutex<Vec<Unreadable>>,
    pub failing: AtomicBool,
    pub attempts: AtomicUsize,
}

#[async_trait]
impl ReadingSink for RecordingSink {
    async fn deliver(
        &self,
        batch: Vec<IncomingReading>,
        source: SourceProtocol,
    ) -> Result<Delivered, SinkError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable("test sink is failing".into()));
        }
        let n = batch.len();
        self.readings
            .lock()
            .expect("lock")
            .extend(batch.into_iter().map(|r| (r, source)));
        Ok(Delivered {
            accepted: n,
            refused: 0,
        })
    }

    async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), SinkError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable("test sink is failing".into()));
        }
        self.unreadable.lock().expect("lock").extend(messages);
        Ok(())
    }
}

impl RecordingSink {
    pub fn failing() -> Arc<Self> {
        let s = Self::default();
        s.failing.store(true, Ordering::SeqCst);
        Arc::new(s)
    }

    /// Every message kept as unreadable so far.
    pub fn unreadable(&self) -> Vec<Unreadable> {
        self.unreadable.lock().expect("lock").clone()
    }

    /// The one message kept as unreadable, once it is (fails after 10 s, or when more are),
    /// checked against what the connector `connector` speaking `protocol` should have handed
    /// over: its origin, the bytes sent and a reason containing `why`.
    pub async fn the_unreadable(
        &self,
        connector: &str,
        protocol: SourceProtocol,
        origin: &str,
        payload: &[u8],
        why: &str,
    ) {
        let kept = peers::eventually(
            10,
            "the unreadable message kept",
            || Some(self.unreadable()).filter(|k| !k.is_empty()),
            || format!("{:?}", self.unreadable()),
        )
        .await;
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].connector, connector);
        assert_eq!(kept[0].protocol, protocol);
        assert_eq!(kept[0].origin, origin);
        assert_eq!(kept[0].payload, payload);
        assert!(kept[0].reason.contains(why), "{kept:?}");
    }

    /// Every reading so far.
    pub fn all(&self) -> Vec<(IncomingReading, SourceProtocol)> {
        self.readings.lock().expect("lock").clone()
    }

    /// The readings of the sensor with `code`.
    pub fn of(&self, code: &str) -> Vec<IncomingReading> {
        let want = SensorRef::Code(code.to_owned());
        self.all()
            .into_iter()
            .filter(|(r, _)| r.sensor == want)
            .map(|(r, _)| r)
            .collect()
    }

    /// Readings of `code` so far, when there are at least `n`.
    pub fn at_least(&self, code: &str, n: usize) -> Option<Vec<IncomingReading>> {
        let r = self.of(code);
        (r.len() >= n).then_some(r)
    }

    pub fn summary(&self) -> String {
        let all = self.all();
        let tail: Vec<String> = all
            .iter()
            .rev()
            .take(10)
            .map(|(r, _)| format!("{}={} q{}", r.sensor, r.value, r.quality.get()))
            .collect();
        format!("{} readings recorded, latest: {tail:?}", all.len())
    }
}

/// Connectors running in the background until stopped.
pub struct Running {
    pub connectors: Connectors,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts `sources` delivering into `sink`.
    pub fn start(sink: Arc<dyn ReadingSink>, sources: Vec<serde_json::Value>) -> Running {
        Self::start_with(Connectors::new(sink), sources)
    }

    /// [`Running::start`], the sources' files (MTConnect cursors) under `data_dir`.
    #[allow(dead_code)]
    pub fn start_in(
        sink: Arc<dyn ReadingSink>,
        sources: Vec<serde_json::Value>,
        data_dir: &std::path::Path,
    ) -> Running {
        Self::start_with(Connectors::with_data_dir(sink, data_dir), sources)
    }

    /// [`Running::start`], the MTConnect cursors kept in `cursors`.
    #[allow(dead_code)]
    pub fn start_sharing(
        sink: Arc<dyn ReadingSink>,
        sources: Vec<serde_json::Value>,
        data_dir: &std::path::Path,
        cursors: Arc<dyn mantis_connectors::CursorStore>,
    ) -> Running {
        Self::start_with(
            Connectors::with_cursor_store(sink, data_dir, cursors),
            sources,
        )
    }

    fn start_with(connectors: Connectors, sources: Vec<serde_json::Value>) -> Running {
        mantis_telemetry::init_test_tracing();
        for s in sources {
            let config: SourceConfig =
                serde_json::from_value(s.clone()).unwrap_or_else(|e| panic!("{e}: {s}"));
            connectors.add(config).expect("valid source");
        }
        let token = CancellationToken::new();
        let c = connectors.clone();
        let t = token.clone();
        let task = tokio::spawn(async move { c.run(t).await });
        Running {
            connectors,
            token,
            task: Some(task),
        }
    }

    pub fn status(&self, name: &str) -> ConnectorStatus {
        self.connectors.status(name).expect("source exists")
    }

    /// Stops every source (as at shutdown) and waits until they ended.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(15), task)
                .await
                .expect("connectors stop within 15 s")
                .expect("connectors task");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Publishes from a paho-mqtt device (off the async threads).
pub async fn publish(
    port: u16,
    version: &str,
    qos: u8,
    tls: Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)>,
    messages: Vec<(String, String)>,
) {
    let version = version.to_owned();
    tokio::task::spawn_blocking(move || {
        let tls = tls
            .as_ref()
            .map(|(ca, cert, key)| peers::ClientTls { ca, cert, key });
        peers::paho_publish(port, &version, qos, tls, &messages)
    })
    .await
    .expect("publisher thread");
}

/// Publishes messages the broker keeps as their topics' last known values (retained), at QoS 1.
pub async fn publish_retained(port: u16, version: &str, messages: Vec<(String, String)>) {
    let version = version.to_owned();
    tokio::task::spawn_blocking(move || {
        peers::paho_publish_with(port, &version, 1, None, &messages, true)
    })
    .await
    .expect("publisher thread");
}

/// Runs blocking peer control (kill, restart) off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}
