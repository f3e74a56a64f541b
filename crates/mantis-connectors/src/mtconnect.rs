//! The MTConnect source: an HTTP client of an MTConnect agent (reqwest; documents parsed by
//! `xml`).
//!
//! A session reads `/probe` (the DataItems, mapped to sensors by id or name), then follows the
//! agent's observation stream with `/sample?from=<next>&count=<count>`, where `<next>` is always
//! the previous answer's `nextSequence`: every observation is read once, none is skipped, and a
//! backlog is drained request after request without waiting for the poll interval. The cursor
//! (the agent's `instanceId` and the next sequence) outlives the session, so a reconnection
//! continues where it stopped, and so does a restart of the service when the connectors keep
//! files (`Connectors::with_data_dir`: `<data_dir>/mtconnect/<source>.json`). `/current` is read only to start (the first connection) or to
//! learn where the agent's buffer begins: when it wrapped past the cursor (`from` older than
//! `firstSequence`, or the agent's `OUT_OF_RANGE` error), the overwritten sequences are reported
//! (status `lastError`, metric `mantis_connector_lost_observations_total`) and reading continues
//! with `/sample` from the oldest observation the agent still holds, asked for at once (a busy
//! agent whose full buffer has moved on again by then: from `/current`'s `nextSequence`); an
//! agent that restarted (a new `instanceId`) is read from the start of its new buffer.
//!
//! Values: a SAMPLE's number; `UNAVAILABLE` is a quality-0 reading carrying the last good value
//! (0 before the first); a CONDITION is 0 (`Normal`), 1 (`Warning`) or 2 (`Fault`),
//! `Unavailable` being quality 0. Other text (an EVENT such as `ACTIVE`) is not a reading: it
//! is counted as invalid and named in `lastError`.

pub(crate) mod xml;

use crate::config::MtConnectConfig;
use crate::runtime::{BrowseError, BrowsedNode, SessionCtx, SessionError, Source};
use async_trait::async_trait;
use mantis_domain::{IncomingReading, Quality, SensorRef, SourceProtocol};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xml::{DataItemDef, Document, Header, Observation};

/// Checks an agent URL: `http://host[:port][/device]`.
pub(crate) fn agent_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s.trim())
        .map_err(|e| format!("not a URL ({e}); expected `http://agent:5000`"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https agents are not supported by this build (plain `http://` only)".into(),
            );
        }
        other => return Err(format!("scheme `{other}`: expected `http://agent:5000`")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("give the agent's base URL, without a query or fragment".into());
    }
    Ok(url)
}

/// Where the stream is read from next (kept in a file when the source has one, so a restart
/// of the service continues where it stopped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Cursor {
    instance: u64,
    /// `None`: start from `/current`.
    next: Option<u64>,
}

/// What the observations of one answer became.
#[derive(Debug, Default)]
struct Taken {
    readings: Vec<IncomingReading>,
    /// Observations of configured items that are not readings (a sample that is not a
    /// number).
    unreadable: Vec<crate::sink::Unreadable>,
}

/// What an answer to `/sample` means for the cursor.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Take the observations from `from` on; continue at `next`.
    Take { from: u64, next: u64 },
    /// The buffer wrapped past the cursor: sequences `expected..first` are gone.
    Gap { expected: u64, first: u64 },
    /// The agent restarted (new instance): its sequences started again.
    Restarted,
}

fn step(cursor_instance: u64, cursor_next: u64, header: &Header) -> Step {
    if header.instance_id != cursor_instance {
        Step::Restarted
    } else if header.first_sequence > cursor_next {
        Step::Gap {
            expected: cursor_next,
            first: header.first_sequence,
        }
    } else {
        Step::Take {
            from: cursor_next,
            // Never move backwards (a confused agent would make us read twice).
            next: header.next_sequence.max(cursor_next),
        }
    }
}

/// A configured DataItem's value as a reading value: `Ok(Some(v))`, `Ok(None)` for
/// unavailable, `Err` for text that is not a value.
fn value_of(o: &Observation) -> Result<Option<f64>, String> {
    if o.condition {
        return match o.value.as_str() {
            "Normal" => Ok(Some(0.0)),
            "Warning" => Ok(Some(1.0)),
            "Fault" => Ok(Some(2.0)),
            "Unavailable" => Ok(None),
            other => Err(format!("unknown condition `{other}`")),
        };
    }
    if o.value.eq_ignore_ascii_case("UNAVAILABLE") {
        return Ok(None);
    }
    match o.value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("`{}` is not a number", o.value)),
    }
}

/// Bytes of an agent's answer read at most: a `/sample` of the largest count allowed (100 000)
/// takes some 20 MiB (about 200 bytes per observation).
const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// An observation's `timestamp`: RFC 3339, or (as some agents write it) without its `Z`, which
/// the standard's times are in (UTC); `None` for anything else.
fn observation_time(text: &str) -> Option<mantis_domain::Timestamp> {
    let text = text.trim();
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()
}

pub(crate) struct MtConnectSource {
    config: MtConnectConfig,
    base: reqwest::Url,
    http: reqwest::Client,
    cursor: Mutex<Cursor>,
    /// Where the cursor is kept across restarts and replicas (none: in memory only).
    cursors: Option<Arc<dyn CursorStore>>,
    /// The cursor last read from `cursors` or written there by this source: a kept one that
    /// differs was moved by someone else (another replica).
    last_kept: Mutex<Option<Cursor>>,
    /// The DataItems of the last probe (for browsing).
    probe: Mutex<Vec<DataItemDef>>,
    /// The last good value of each configured item (by index).
    last_good: Mutex<HashMap<usize, f64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MtConnectSource {
    /// A source for a validated configuration, its cursor kept in `cursors` (read back at
    /// the start of each session).
    pub(crate) fn new(
        config: MtConnectConfig,
        cursors: Option<Arc<dyn CursorStore>>,
    ) -> Result<Self, crate::ConfigError> {
        let invalid = |e: String| crate::ConfigError {
            source_name: config.name.clone(),
            problems: vec![("/url".into(), e)],
        };
        let base = agent_url(&config.url).map_err(invalid)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(Self {
            config,
            base,
            http,
            cursor: Mutex::new(Cursor::default()),
            cursors,
            last_kept: Mutex::new(None),
            probe: Mutex::new(Vec::new()),
            last_good: Mutex::new(HashMap::new()),
        })
    }

    fn url(&self, request: &str, query: Option<(u64, u32)>) -> reqwest::Url {
        let mut url = self.base.clone();
        let path = format!("{}/{request}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if let Some((from, count)) = query {
            url.set_query(Some(&format!("from={from}&count={count}")));
        }
        url
    }

    /// GETs `request` and parses the answer (an `MTConnectError` document is an `Ok`).
    #[tracing::instrument(skip(self, ctx), fields(connector = %ctx.name))]
    async fn get(
        &self,
        ctx: &SessionCtx,
        request: &str,
        query: Option<(u64, u32)>,
    ) -> Result<Document, SessionError> {
        let url = self.url(request, query);
        let resp = self.http.get(url.clone()).send().await.map_err(|e| {
            if e.is_timeout() {
                SessionError::Timeout(format!(
                    "no answer from {url} within {} ms",
                    self.config.request_timeout_ms
                ))
            } else if e.is_connect() {
                SessionError::Connect(format!("{url}: {e}"))
            } else {
                SessionError::Connection(format!("{url}: {e}"))
            }
        })?;
        let status = resp.status();
        let mut resp = resp;
        let mut bytes = Vec::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    SessionError::Timeout(format!(
                        "{url}: the answer did not arrive within {} ms",
                        self.config.request_timeout_ms
                    ))
                } else {
                    SessionError::Connection(format!("{url}: {e}"))
                }
            })?;
            let Some(chunk) = chunk else { break };
            if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                // Not read on: a confused (or hostile) agent does not fill the memory.
                return Err(SessionError::Refused(format!(
                    "{url}: the answer is larger than {} MiB",
                    MAX_DOCUMENT_BYTES >> 20
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&bytes);
        ctx.status.received(1);
        match xml::parse(&body) {
            // Agents answer errors with 4xx and an MTConnectError document.
            Ok(doc) => Ok(doc),
            Err(e) if !status.is_success() => Err(SessionError::Connection(format!(
                "{url}: HTTP {status} ({e})"
            ))),
            Err(e) => Err(SessionError::Refused(format!("{url}: {e}"))),
        }
    }

    /// Maps DataItem ids to configured items; returns the map and the unknown items.
    fn map(&self, items: &[DataItemDef]) -> (HashMap<String, usize>, Vec<String>) {
        let mut map = HashMap::new();
        let mut unknown = Vec::new();
        for (i, want) in self.config.data_items.iter().enumerate() {
            let found = items.iter().find(|d| d.id == want.data_item).or_else(|| {
                items
                    .iter()
                    .find(|d| d.name.as_deref() == Some(want.data_item.as_str()))
            });
            match found {
                Some(d) => {
                    map.insert(d.id.clone(), i);
                }
                None => unknown.push(want.data_item.clone()),
            }
        }
        (map, unknown)
    }

    /// Readings of the observations at or after `from` (those of configured items), and the
    /// observations that are not readings.
    fn readings(
        &self,
        ctx: &SessionCtx,
        map: &HashMap<String, usize>,
        observations: &[Observation],
        from: Option<u64>,
    ) -> Taken {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        let mut last_good = lock(&self.last_good);
        for o in observations {
            if from.is_some_and(|f| o.sequence < f) {
                continue;
            }
            let Some(&i) = map.get(&o.data_item_id) else {
                continue;
            };
            let Some(item) = self.config.data_items.get(i) else {
                continue;
            };
            let Some(timestamp) = observation_time(&o.timestamp) else {
                // Stamped "now" instead, every observation of the item in the document would
                // share one time and all but one be dropped as duplicates: kept instead.
                unreadable.push(ctx.unreadable(
                    SourceProtocol::Mtconnect,
                    format!("{}@{}", o.data_item_id, o.sequence),
                    &format!("DataItem `{}` (sequence {})", o.data_item_id, o.sequence),
                    o.value.clone().into_bytes(),
                    format!(
                        "timestamp `{}` is not an ISO 8601 UTC date-time",
                        mantis_domain::clip(&o.timestamp, 64)
                    ),
                ));
                continue;
            };
            let mut metadata = BTreeMap::new();
            metadata.insert("mtconnectSequence".to_owned(), o.sequence.to_string());
            let (value, quality) = match value_of(o) {
                Ok(Some(v)) => {
                    last_good.insert(i, v);
                    (v, Quality::GOOD)
                }
                Ok(None) => {
                    metadata.insert(
                        IncomingReading::QUALITY_REASON.into(),
                        format!("{} is UNAVAILABLE", o.data_item_id),
                    );
                    crate::metrics::bad_quality(&ctx.name, 1);
                    (
                        last_good.get(&i).copied().unwrap_or(0.0),
                        Quality::new(0).unwrap_or_default(),
                    )
                }
                Err(why) => {
                    unreadable.push(ctx.unreadable(
                        SourceProtocol::Mtconnect,
                        format!("{}@{}", o.data_item_id, o.sequence),
                        &format!("DataItem `{}` (sequence {})", o.data_item_id, o.sequence),
                        o.value.clone().into_bytes(),
                        why,
                    ));
                    continue;
                }
            };
            out.push(IncomingReading {
                timestamp,
                asset_id: None,
                sensor: SensorRef::parse(&item.sensor),
                value,
                unit: item.unit.clone(),
                quality,
                metadata,
            });
        }
        Taken {
            readings: out,
            unreadable,
        }
    }

    /// Reads `/current`: the new cursor (the oldest buffered sequence after a gap or an agent
    /// restart, else its `nextSequence`), its readings (none after a gap or restart: `/sample`
    /// reads them; else those after the cursor) and the sequences lost since the cursor, if any.
    async fn resync(
        &self,
        ctx: &SessionCtx,
        map: &HashMap<String, usize>,
        from_current: bool,
    ) -> Result<(Taken, Cursor, Option<(u64, u64)>), SessionError> {
        let streams = match self.get(ctx, "current", None).await? {
            Document::Streams(s) => s,
            Document::Error(errors) => {
                return Err(SessionError::Refused(format!(
                    "the agent refused /current: {}",
                    describe_errors(&errors)
                )));
            }
            Document::Devices(_) => {
                return Err(SessionError::Refused(
                    "/current answered with a probe document".into(),
                ));
            }
        };
        let old = *lock(&self.cursor);
        let header = &streams.header;
        let same = old.next.is_some() && old.instance == header.instance_id;
        // `from_current`: the oldest sequence was overwritten again before it could be asked
        // for (an agent whose full buffer moves on with every observation): take /current's
        // newest values and its nextSequence, which is always valid, rather than chase it.
        match (same && !from_current, old.next) {
            // The buffer wrapped past the cursor: what was overwritten is lost, what the agent
            // still holds is read by /sample from its oldest sequence on (not only the newest
            // value of each item that /current shows).
            (true, Some(next)) if header.first_sequence > next => {
                let cursor = Cursor {
                    instance: header.instance_id,
                    next: Some(header.first_sequence),
                };
                return Ok((
                    Taken::default(),
                    cursor,
                    Some((next, header.first_sequence)),
                ));
            }
            // The agent restarted: its buffer holds only what it saw since, all of it new.
            (false, Some(_)) if !from_current => {
                let cursor = Cursor {
                    instance: header.instance_id,
                    next: Some(header.first_sequence),
                };
                return Ok((Taken::default(), cursor, None));
            }
            _ => {}
        }
        let from = if same { old.next } else { None };
        let lost = match (same, old.next) {
            (true, Some(next)) if header.first_sequence > next => {
                Some((next, header.first_sequence))
            }
            _ => None,
        };
        let taken = self.readings(ctx, map, &streams.observations, from);
        let cursor = Cursor {
            instance: streams.header.instance_id,
            next: Some(streams.header.next_sequence.max(from.unwrap_or(0))),
        };
        Ok((taken, cursor, lost))
    }

    fn report_gap(&self, ctx: &SessionCtx, expected: u64, first: u64) {
        let lost = first.saturating_sub(expected);
        let detail = format!(
            "the agent's buffer wrapped: {lost} observations (sequences {expected}..{}) were overwritten before they could be read; reading on from the oldest it still holds",
            first.saturating_sub(1)
        );
        tracing::warn!(connector = %ctx.name, lost, %detail, "MTConnect gap");
        crate::metrics::lost_observations(&ctx.name, lost);
        ctx.status.error("gap", &detail, None);
    }

    /// Resynchronises through `/current` (where the buffer begins, or the newest values on a
    /// first start) and reports the gap (the one `/current` shows, else `seen`). `false` when
    /// stopping.
    async fn resync_and_commit(
        &self,
        ctx: &SessionCtx,
        map: &HashMap<String, usize>,
        seen: Option<(u64, u64)>,
        from_current: bool,
    ) -> Result<bool, SessionError> {
        let before = *lock(&self.cursor);
        let (taken, cursor, lost) = self.resync(ctx, map, from_current).await?;
        if ctx.stop.is_cancelled() {
            // As for a /sample answered after the stop: not taken, the cursor stays.
            return Ok(false);
        }
        if let Some((expected, first)) = lost.or(seen) {
            self.report_gap(ctx, expected, first);
        } else if before.next.is_some() && before.instance != cursor.instance {
            tracing::info!(connector = %ctx.name, "the agent restarted (new instanceId); reading its buffer from the start");
        }
        Ok(self.commit(ctx, taken, cursor).await)
    }

    /// Delivers (and keeps the unreadable observations) and, once taken, moves the cursor.
    /// `false` when stopping.
    async fn commit(&self, ctx: &SessionCtx, taken: Taken, cursor: Cursor) -> bool {
        if !taken.readings.is_empty()
            && ctx
                .deliver(taken.readings, SourceProtocol::Mtconnect, None)
                .await
                .is_none()
        {
            return false;
        }
        if !ctx.keep_unreadable(taken.unreadable).await {
            return false;
        }
        self.set_cursor(ctx, cursor).await;
        true
    }

    /// Moves the cursor, and the kept one when it changed.
    async fn set_cursor(&self, ctx: &SessionCtx, cursor: Cursor) {
        let before = std::mem::replace(&mut *lock(&self.cursor), cursor);
        if before == cursor {
            return;
        }
        let Some(cursors) = &self.cursors else {
            return;
        };
        let saved = serde_json::to_value(SavedCursor {
            url: self.base.to_string(),
            cursor,
        })
        .map_err(|e| e.to_string());
        let kept = match saved {
            Ok(v) => cursors.save(&self.config.name, v).await,
            Err(e) => Err(e),
        };
        if kept.is_ok() {
            *lock(&self.last_kept) = Some(cursor);
        }
        if let Err(e) = kept {
            // Reading goes on; a restart would read on from the last cursor kept (again).
            crate::metrics::error(&ctx.name, "cursor");
            tracing::warn!(connector = %ctx.name, error = %e, "MTConnect cursor not kept");
        }
    }

    /// At the start of a session: the cursor kept, when someone else moved it (another replica
    /// that read the agent meanwhile, or the last run of the service before this source
    /// existed); the one this source last read or wrote itself is not taken again (this one may
    /// be further on: a save that failed). One of another agent (the source now names another
    /// URL) is not taken.
    async fn reload_cursor(&self, ctx: &SessionCtx) {
        let Some(cursors) = &self.cursors else {
            return;
        };
        let kept = match cursors.load(&self.config.name).await {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "MTConnect cursor unreadable; reading on from this one");
                return;
            }
        };
        let url = self.base.as_str();
        let kept = match serde_json::from_value::<SavedCursor>(kept) {
            Ok(saved) if saved.url == url => saved.cursor,
            Ok(saved) => {
                tracing::info!(connector = %ctx.name, before = %saved.url, now = %url, "MTConnect agent changed; the cursor kept is not its");
                return;
            }
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "MTConnect cursor unreadable; reading on from this one");
                return;
            }
        };
        let mut last = lock(&self.last_kept);
        if *last == Some(kept) {
            return;
        }
        *last = Some(kept);
        *lock(&self.cursor) = kept;
    }
}

/// A cursor as kept: with the agent it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedCursor {
    url: String,
    #[serde(flatten)]
    cursor: Cursor,
}

/// Where the MTConnect sources keep their cursors (where each reads on), so that a restart of
/// the service, or another replica taking a source over, reads on where it stopped.
#[async_trait]
pub trait CursorStore: Send + Sync + 'static {
    /// The cursor kept for the source `source` (a JSON document), none when there is none.
    async fn load(&self, source: &str) -> Result<Option<serde_json::Value>, String>;
    /// Keeps `cursor` for the source `source` (replacing the one kept).
    async fn save(&self, source: &str, cursor: serde_json::Value) -> Result<(), String>;
}

/// Cursors in files, `<dir>/<source>.json` (a restart of the service reads on; another
/// machine's replica does not see them).
#[derive(Clone, Debug)]
pub struct FileCursors {
    dir: PathBuf,
}

impl FileCursors {
    /// Cursors in `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// One file per source name (names are checked to be file-safe; any other character is
    /// replaced all the same).
    fn file(&self, source: &str) -> PathBuf {
        let safe: String = source
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }
}

#[async_trait]
impl CursorStore for FileCursors {
    async fn load(&self, source: &str) -> Result<Option<serde_json::Value>, String> {
        let file = self.file(source);
        match tokio::fs::read(&file).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }

    /// Writes the file whole (a temporary file renamed over it: a crash leaves the old cursor
    /// or the new one, never half of one). Not synced: after a power loss the cursor may be an
    /// older one, so observations are read again (at least once), none skipped.
    async fn save(&self, source: &str, cursor: serde_json::Value) -> Result<(), String> {
        let file = self.file(source);
        let write = async {
            tokio::fs::create_dir_all(&self.dir).await?;
            let tmp = file.with_extension("json.tmp");
            tokio::fs::write(
                &tmp,
                serde_json::to_vec(&cursor).map_err(std::io::Error::other)?,
            )
            .await?;
            tokio::fs::rename(&tmp, &file).await
        };
        write.await.map_err(|e| format!("{}: {e}", file.display()))
    }
}

fn describe_errors(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .map(|(c, m)| {
            if m.is_empty() {
                c.clone()
            } else {
                format!("{c}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl Source for MtConnectSource {
    async fn session(self: Arc<Self>, ctx: SessionCtx) -> Result<(), SessionError> {
        self.reload_cursor(&ctx).await;
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let count = self.config.count.max(1);
        // 1. The DataItems.
        let items = match self.get(&ctx, "probe", None).await? {
            Document::Devices(items) => items,
            Document::Error(errors) => {
                return Err(SessionError::Refused(format!(
                    "the agent refused /probe: {}",
                    describe_errors(&errors)
                )));
            }
            Document::Streams(_) => {
                return Err(SessionError::Refused(
                    "/probe answered with a streams document".into(),
                ));
            }
        };
        let (map, unknown) = self.map(&items);
        *lock(&self.probe) = items;
        let mut active: Vec<String> = self
            .config
            .data_items
            .iter()
            .filter(|d| !unknown.contains(&d.data_item))
            .map(|d| d.data_item.clone())
            .collect();
        active.sort();
        ctx.connected(active);
        let unknown_detail = (!unknown.is_empty()).then(|| {
            format!(
                "the agent has no DataItem with id or name {}",
                unknown
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        if let Some(d) = &unknown_detail {
            tracing::warn!(connector = %ctx.name, detail = %d, "unknown DataItems");
            ctx.status
                .error("config", d, Some(crate::ConnectorState::Error));
        }
        tracing::info!(connector = %ctx.name, url = %self.base, "MTConnect agent probed");

        // 2. Follow the stream.
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backlog = false;
        // The last request resynchronised (a gap, an agent restart): the next /sample goes at
        // once, and a second miss in a row falls back on /current's nextSequence.
        let mut resynced = false;
        loop {
            if !backlog {
                tokio::select! {
                    biased;
                    () = ctx.stop.cancelled() => return Ok(()),
                    _ = ticker.tick() => {}
                }
            } else if ctx.stop.is_cancelled() {
                return Ok(());
            }
            backlog = false;
            let cursor = *lock(&self.cursor);
            let Some(next) = cursor.next else {
                if !self.resync_and_commit(&ctx, &map, None, false).await? {
                    return Ok(());
                }
                continue;
            };
            let doc = self.get(&ctx, "sample", Some((next, count))).await?;
            if ctx.stop.is_cancelled() {
                // Stopped while the answer came (the source went to another instance, or the
                // service stops): nothing of it was taken and the cursor stays, so whoever
                // reads on from the cursor reads it, once. Delivered here, it would be read
                // twice, and this instance's cursor could land over the other's.
                return Ok(());
            }
            let streams = match doc {
                Document::Streams(s) => s,
                Document::Error(errors) if errors.iter().any(|(c, _)| c == "OUT_OF_RANGE") => {
                    // `from` is no longer in the buffer (or beyond it after an agent restart):
                    // /current says which.
                    if !self.resync_and_commit(&ctx, &map, None, resynced).await? {
                        return Ok(());
                    }
                    resynced = !resynced;
                    backlog = true;
                    continue;
                }
                Document::Error(errors) => {
                    return Err(SessionError::Refused(format!(
                        "the agent refused /sample: {}",
                        describe_errors(&errors)
                    )));
                }
                Document::Devices(_) => {
                    return Err(SessionError::Refused(
                        "/sample answered with a probe document".into(),
                    ));
                }
            };
            match step(cursor.instance, next, &streams.header) {
                Step::Take {
                    from,
                    next: new_next,
                } => {
                    resynced = false;
                    let taken = self.readings(&ctx, &map, &streams.observations, Some(from));
                    if unknown_detail.is_none() {
                        ctx.status.healthy();
                    }
                    backlog = new_next <= streams.header.last_sequence && new_next > next;
                    let c = Cursor {
                        instance: cursor.instance,
                        next: Some(new_next),
                    };
                    if !self.commit(&ctx, taken, c).await {
                        return Ok(());
                    }
                }
                Step::Gap { expected, first } => {
                    if !self
                        .resync_and_commit(&ctx, &map, Some((expected, first)), resynced)
                        .await?
                    {
                        return Ok(());
                    }
                    resynced = !resynced;
                    backlog = true;
                }
                Step::Restarted => {
                    // Its buffer holds only what it saw since the restart: all of it is read.
                    tracing::info!(connector = %ctx.name, "the agent restarted (new instanceId); reading its buffer from the start");
                    self.set_cursor(
                        &ctx,
                        Cursor {
                            instance: streams.header.instance_id,
                            next: Some(streams.header.first_sequence),
                        },
                    )
                    .await;
                    backlog = true;
                    resynced = true;
                }
            }
        }
    }

    async fn browse(&self, node: Option<&str>) -> Result<Vec<BrowsedNode>, BrowseError> {
        if node.is_some_and(|n| !n.trim().is_empty()) {
            return Err(BrowseError::InvalidNode(
                "an MTConnect agent's DataItems are listed flat: browse without `node`".into(),
            ));
        }
        let items = lock(&self.probe).clone();
        if items.is_empty() {
            return Err(BrowseError::NotConnected);
        }
        Ok(items
            .into_iter()
            .map(|d| BrowsedNode {
                browse_name: d.name.clone().unwrap_or_else(|| d.id.clone()),
                display_name: format!(
                    "{}: {} {}{}",
                    d.device,
                    d.category,
                    d.data_type,
                    d.units.map(|u| format!(" ({u})")).unwrap_or_default()
                ),
                node_id: d.id,
                node_class: "DataItem".into(),
                type_definition: Some(d.data_type),
                value: None,
                status: None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_times_are_utc_with_or_without_their_z_and_nothing_else() {
        let at = |s: &str| observation_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2024-05-01T10:00:01.5Z").as_deref(),
            Some("2024-05-01T10:00:01.500+00:00")
        );
        assert_eq!(
            at("2024-05-01T10:00:01.5").as_deref(),
            Some("2024-05-01T10:00:01.500+00:00")
        );
        assert_eq!(
            at("2024-05-01T12:00:01+02:00").as_deref(),
            Some("2024-05-01T10:00:01+00:00")
        );
        for bad in ["", "yesterday", "2024-05-01", "2024-13-01T00:00:00Z"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    fn header(instance: u64, first: u64, last: u64, next: u64) -> Header {
        Header {
            instance_id: instance,
            first_sequence: first,
            last_sequence: last,
            next_sequence: next,
        }
    }

    #[test]
    fn the_cursor_continues_at_next_sequence_and_never_moves_back() {
        assert_eq!(
            step(1, 10, &header(1, 1, 30, 20)),
            Step::Take { from: 10, next: 20 }
        );
        assert_eq!(
            step(1, 10, &header(1, 1, 9, 5)),
            Step::Take { from: 10, next: 10 }
        );
    }

    #[test]
    fn a_wrapped_buffer_is_a_gap_and_a_new_instance_a_restart() {
        assert_eq!(
            step(1, 10, &header(1, 15, 40, 41)),
            Step::Gap {
                expected: 10,
                first: 15
            }
        );
        assert_eq!(step(1, 10, &header(2, 1, 3, 4)), Step::Restarted);
    }

    #[test]
    fn values_unavailable_and_conditions_are_mapped() {
        let obs = |v: &str, condition: bool| Observation {
            data_item_id: "x".into(),
            name: None,
            sequence: 1,
            timestamp: String::new(),
            value: v.into(),
            condition,
        };
        assert_eq!(value_of(&obs("12.5", false)), Ok(Some(12.5)));
        assert_eq!(value_of(&obs("UNAVAILABLE", false)), Ok(None));
        assert_eq!(value_of(&obs("Fault", true)), Ok(Some(2.0)));
        assert_eq!(value_of(&obs("Unavailable", true)), Ok(None));
        assert!(value_of(&obs("ACTIVE", false)).is_err());
    }

    #[test]
    fn agent_urls_are_checked() {
        assert!(agent_url("http://agent:5000").is_ok());
        assert!(agent_url("http://agent:5000/FANUC-01").is_ok());
        for bad in [
            "agent:5000",
            "https://agent",
            "ftp://agent",
            "http://agent/?x=1",
        ] {
            assert!(agent_url(bad).is_err(), "{bad}");
        }
    }
}
