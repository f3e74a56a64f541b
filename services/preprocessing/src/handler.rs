//! The `sensor.raw` consumer.

use crate::Config;
use crate::windower::{Origin, RawWindow, Windower};
use async_trait::async_trait;
use mantis_bus::{Position, TraceContext, topics};
use mantis_domain::{Quality, Reading, SensorId, Window};
use mantis_dsp::{Preprocessed, Preprocessor};
use mantis_runtime::{HandleError, Handler, Infra, Publisher, RecordContext};
use mantis_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct WindowHandler {
    store: Arc<dyn Store>,
    publisher: Publisher,
    config: Config,
    windower: Windower,
    idle_close: Duration,
    /// One preprocessor per sensor (filter state, cached buffers).
    preprocessors: HashMap<SensorId, Preprocessor>,
    /// The registered sampling rate of each sensor that has one (Hz), and when a window last
    /// showed it sending faster than that (said at most once an hour per sensor).
    nominal_rates: HashMap<SensorId, (f64, Option<Instant>)>,
    scratch: Preprocessed,
    /// Last offset seen per partition, to know what is committable after idle closes.
    last_offset: HashMap<i32, i64>,
    /// Readings read and not stored yet, with where each came from: stored together, in one
    /// transaction, once [`STORE_BATCH`] wait and at every tick (a commit per reading bounds
    /// an edge box's database to a few thousand readings a second). No commit passes the
    /// first of them.
    pending: Vec<Reading>,
    /// The record each pending reading came from (where, and for a dead letter as the
    /// consumer makes them: its key, payload and headers).
    pending_origins: Vec<mantis_bus::Envelope>,
    /// The offset of the first pending reading of each partition.
    pending_from: HashMap<i32, i64>,
    /// Sensors of which this handler stored a window the store did not have: their windows
    /// close in start order, so every later one is new too and is not looked up.
    emitting: std::collections::HashSet<SensorId>,
    /// Windows published whose row could not be stored yet (the database away): stored, not
    /// published again, when retried.
    unstored: HashMap<(SensorId, i64), Window>,
    /// When the last tick ran: a longer gap than a few ticks means the consumer was held.
    last_tick: Option<Instant>,
    /// Whether a record read since the last tick was appended to the log longer than
    /// `idle_close` before: the consumer is catching up on a backlog (after a start, a restart
    /// or a rebalance), and a sensor whose readings were read first only looks silent.
    catching_up: bool,
    /// Time not counted towards idleness in the current stretch of catching up, at most
    /// [`CATCH_UP_GRACE`] × `idle_close`: a consumer that stays behind (overloaded, or its
    /// clock ahead of the producers') still closes a silent sensor's window, later.
    caught_up_grace: Duration,
    /// When each sensor's latest reading was read: a sensor quiet for `forget_after` with no
    /// open window is forgotten (its state freed).
    last_read: HashMap<SensorId, Instant>,
    forget_after: Duration,
}

/// How often the handler ticks (idle windows are looked for, pending readings stored).
const TICK: Duration = Duration::from_secs(1);

/// Readings stored in one transaction at most.
const STORE_BATCH: usize = 1000;

/// A window's readings faster, or slower, than this many times the registered rate are said
/// to be.
const RATE_MISMATCH: f64 = 1.5;
/// Fewer readings than this in a window tell too little of their rate.
const RATE_CHECK_MIN_READINGS: usize = 10;
/// The same for a sensor slower than registered, which sends few readings per window (the
/// median of their intervals is its rate: one gap does not make it slow).
const SLOW_CHECK_MIN_READINGS: usize = 4;
/// How often a sensor sending faster or slower than registered is said to, at most.
const RATE_WARN_EVERY: Duration = Duration::from_secs(3600);

/// How many `idle_close` periods a stretch of catching up on a backlog may hold windows back
/// from closing by idleness (30 minutes at the default 60 s).
const CATCH_UP_GRACE: u32 = 30;

/// How long the consumer was held between two ticks `previous` and `now` (a record retried
/// while the store or the bus was down, a slow write): none for the usual tick period and a
/// little late scheduling.
fn stalled(previous: Instant, now: Instant) -> Option<Duration> {
    let gap = now.saturating_duration_since(previous);
    (gap > TICK * 3).then(|| gap - TICK)
}

impl WindowHandler {
    pub(crate) fn new(infra: &Infra, config: Config) -> Self {
        Self {
            store: infra.store.clone(),
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "preprocessing"),
            windower: Windower::new(config.window_spec()),
            idle_close: Duration::from_secs(config.idle_close_secs),
            // Never before an open window would have closed by idleness and the next one
            // started: a sensor between two readings keeps its state.
            forget_after: Duration::from_secs(
                config
                    .forget_after_secs
                    .max(config.idle_close_secs.saturating_add(config.window_secs)),
            ),
            config,
            preprocessors: HashMap::new(),
            nominal_rates: HashMap::new(),
            scratch: Preprocessed::default(),
            last_offset: HashMap::new(),
            pending: Vec::new(),
            pending_origins: Vec::new(),
            pending_from: HashMap::new(),
            emitting: Default::default(),
            unstored: HashMap::new(),
            last_tick: None,
            catching_up: false,
            caught_up_grace: Duration::ZERO,
            last_read: HashMap::new(),
        }
    }

    /// Forgets the sensors that have sent nothing for `forget_after` as of `now` and have no
    /// open window: their watermark, preprocessor (filter state, buffers) and cached facts. A
    /// straggler for a window they had closed is then no longer told late: it opens that
    /// window again, which is not emitted if it was (the store is asked, as after a restart)
    /// and is emitted from the stragglers if it never was.
    fn forget_quiet(&mut self, now: Instant) {
        let quiet: Vec<SensorId> = self
            .last_read
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) >= self.forget_after)
            .map(|(sensor, _)| *sensor)
            .collect();
        let mut forgotten = 0usize;
        for sensor in quiet {
            if self.windower.forget(sensor) {
                self.preprocessors.remove(&sensor);
                self.nominal_rates.remove(&sensor);
                self.emitting.remove(&sensor);
                self.last_read.remove(&sensor);
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            tracing::debug!(
                forgotten,
                kept = self.last_read.len(),
                "quiet sensors forgotten"
            );
        }
        metrics::gauge!("mantis_preprocessing_sensors").set(self.last_read.len() as f64);
    }

    /// The preprocessor of `raw`'s sensor, created on first use at the sensor's nominal rate.
    async fn preprocessor(&mut self, raw: &RawWindow) -> Result<&mut Preprocessor, HandleError> {
        if !self.preprocessors.contains_key(&raw.sensor_id) {
            let nominal = self
                .store
                .get_sensor(raw.sensor_id)
                .await?
                .map(|s| s.sampling_rate_hz)
                .filter(|r| r.is_finite() && *r > 0.0);
            if let Some(nominal) = nominal {
                self.nominal_rates.insert(raw.sensor_id, (nominal, None));
            }
            let rate = nominal.unwrap_or_else(|| estimated_rate(raw));
            let config = self
                .config
                .preprocess_config(raw.sensor_type, rate)
                .map_err(|e| HandleError::Permanent(e.to_string()))?;
            let pre = match Preprocessor::new(config) {
                Ok(p) => p,
                Err(e) => {
                    // A filter that does not fit this sensor (cut-off above Nyquist) must not
                    // stop its data: condition without it and say so.
                    tracing::error!(sensor = %raw.sensor_id, rate, error = %e, "filter unusable for this sensor; windows are not filtered");
                    Preprocessor::new(mantis_dsp::PreprocessConfig {
                        filter: None,
                        ..config
                    })
                    .map_err(|e| HandleError::Permanent(e.to_string()))?
                }
            };
            self.preprocessors.insert(raw.sensor_id, pre);
        }
        self.preprocessors
            .get_mut(&raw.sensor_id)
            .ok_or_else(|| HandleError::Transient("preprocessor cache".into()))
    }

    /// Says so (at most once an hour per sensor, and counted each time) when `raw` holds
    /// readings far faster than its sensor's registered rate: they are resampled onto the
    /// registered grid, so most of them are thrown away and faster changes fold into false,
    /// slower ones (aliasing) — the registration is to be corrected. Before saying so the
    /// registration is read again: corrected meanwhile, the sensor's next windows are
    /// conditioned at its new rate.
    ///
    /// Far slower (the median interval between readings, so that a gap does not count): they
    /// are interpolated onto the registered grid, whose spectrum above the real rate is made
    /// up, and intervals over ten registered periods split the window into pieces of which
    /// only the longest is kept. Said the same way (a sensor reporting on change sends slower
    /// while its value holds: there it is expected).
    async fn check_rate(&mut self, raw: &RawWindow, now: Instant) {
        let Some(&(nominal, warned)) = self.nominal_rates.get(&raw.sensor_id) else {
            return;
        };
        let mean = estimated_rate(raw);
        let (seen, faster) =
            if raw.t.len() >= RATE_CHECK_MIN_READINGS && mean > nominal * RATE_MISMATCH {
                (mean, true)
            } else if raw.t.len() >= SLOW_CHECK_MIN_READINGS
                && mean * RATE_MISMATCH < nominal
                && let Some(median) = median_rate(&raw.t)
                && median * RATE_MISMATCH < nominal
            {
                (median, false)
            } else {
                return;
            };
        if faster {
            metrics::counter!("mantis_windows_faster_than_registered_total").increment(1);
        } else {
            metrics::counter!("mantis_windows_slower_than_registered_total").increment(1);
        }
        if warned.is_some_and(|at| now.saturating_duration_since(at) < RATE_WARN_EVERY) {
            return;
        }
        if let Ok(Some(sensor)) = self.store.get_sensor(raw.sensor_id).await
            && sensor.sampling_rate_hz.is_finite()
            && sensor.sampling_rate_hz > 0.0
            && sensor.sampling_rate_hz != nominal
        {
            tracing::info!(sensor = %raw.sensor_id, was_hz = nominal, now_hz = sensor.sampling_rate_hz, "the sensor's registered sampling rate changed: its next windows are conditioned at it");
            self.preprocessors.remove(&raw.sensor_id);
            self.nominal_rates.remove(&raw.sensor_id);
            return;
        }
        self.nominal_rates
            .insert(raw.sensor_id, (nominal, Some(now)));
        if faster {
            tracing::warn!(sensor = %raw.sensor_id, asset = %raw.asset_id, registered_hz = nominal, seen_hz = seen, "the sensor sends far faster than its registered sampling rate: its readings are resampled onto the registered grid (most dropped, fast changes aliased); register its real rate");
        } else {
            const SLOWER: &str = "the sensor sends far slower than its registered sampling rate: its readings are interpolated onto the registered grid (its spectrum above its real rate made up; intervals over ten registered periods split its windows, of which the longest piece is kept); register its real rate, unless it reports on change only";
            // Expected of a sensor reporting on change: a warning once, then at info level.
            if warned.is_none() {
                tracing::warn!(sensor = %raw.sensor_id, asset = %raw.asset_id, registered_hz = nominal, seen_hz = seen, "{SLOWER}");
            } else {
                tracing::info!(sensor = %raw.sensor_id, asset = %raw.asset_id, registered_hz = nominal, seen_hz = seen, "{SLOWER}");
            }
        }
    }

    /// Conditions a closed window; `None` when nothing usable is left, `Err(())` when it could
    /// not be conditioned (counted and logged here).
    #[allow(clippy::result_unit_err)]
    async fn condition(
        &mut self,
        raw: &RawWindow,
    ) -> Result<Result<Option<Window>, ()>, HandleError> {
        let mut out = std::mem::take(&mut self.scratch);
        let result = self
            .preprocessor(raw)
            .await?
            .process(&raw.t, &raw.x, &mut out);
        self.check_rate(raw, Instant::now()).await;
        let window = match result {
            Ok(()) => to_window(raw, &out),
            Err(e) => {
                // Not an empty window: counted as a failure, with the reason in the log.
                metrics::counter!("mantis_windows_failed_total", "reason" => "conditioning")
                    .increment(1);
                tracing::warn!(sensor = %raw.sensor_id, window_start_ms = raw.start_ms, error = %e, "window could not be conditioned; dropped (its readings stay stored raw)");
                self.scratch = out;
                return Ok(Err(()));
            }
        };
        let report = out.report;
        for (what, n) in [
            ("non_finite", report.non_finite),
            ("out_of_order", report.out_of_order),
            ("duplicate", report.duplicates),
            ("spike", report.spikes),
        ] {
            if n > 0 {
                metrics::counter!("mantis_readings_cleaned_total", "what" => what)
                    .increment(n as u64);
            }
        }
        if !out.signal.gaps.is_empty() {
            metrics::counter!("mantis_window_gaps_total").increment(out.signal.gaps.len() as u64);
            tracing::info!(sensor = %raw.sensor_id, gaps = out.signal.gaps.len(), "gap in the readings: the window keeps its longest gap-free piece");
        }
        self.scratch = out;
        Ok(Ok(window))
    }

    /// Conditions, publishes and stores a closed window, once: a window already stored is not
    /// emitted again.
    ///
    /// After a restart the log redelivers the readings from the first reading of the oldest
    /// open window on, so windows that had closed before it (a hopping window's predecessor,
    /// a sensor polled in batches beside another) are rebuilt from their last readings only;
    /// emitting those would replace the whole window's score downstream with a partial one.
    /// The window is published before it is stored, so a stored window was published. The
    /// store is asked only until the sensor's first new window after the start.
    async fn emit(&mut self, raw: &RawWindow, trace: TraceContext) -> Result<(), HandleError> {
        let ts = |ms: i64| {
            mantis_domain::timestamp_from_millis(ms)
                .ok_or_else(|| HandleError::Permanent(format!("window time {ms} ms out of range")))
        };
        let key = (raw.sensor_id, raw.start_ms);
        if let Some(window) = self.unstored.get(&key) {
            // Published already: only its row is missing.
            self.store.insert_window(window).await?;
            self.unstored.remove(&key);
            self.emitting.insert(raw.sensor_id);
            metrics::counter!("mantis_windows_emitted_total").increment(1);
            return Ok(());
        }
        let stored = if self.emitting.contains(&raw.sensor_id) {
            Vec::new()
        } else {
            self.store
                .list_windows(raw.sensor_id, ts(raw.start_ms)?, ts(raw.start_ms + 1)?, 1)
                .await?
        };
        if !stored.is_empty() {
            metrics::counter!("mantis_windows_already_emitted_total").increment(1);
            tracing::debug!(sensor = %raw.sensor_id, window_start_ms = raw.start_ms, "window emitted before the restart; not again");
            return Ok(());
        }
        let Ok(conditioned) = self.condition(raw).await? else {
            return Ok(());
        };
        let Some(window) = conditioned else {
            metrics::counter!("mantis_windows_empty_total").increment(1);
            return Ok(());
        };
        self.publisher
            .publish(Some(window.asset_id.to_string()), &window, trace, vec![])
            .await?;
        if let Err(e) = self.store.insert_window(&window).await {
            // Kept, so that the retry stores it without publishing it again.
            self.unstored.insert(key, window);
            return Err(e.into());
        }
        self.emitting.insert(raw.sensor_id);
        metrics::counter!("mantis_windows_emitted_total").increment(1);
        Ok(())
    }

    /// [`Self::emit`], where a window that can never be emitted (its conditioning refused by
    /// the configuration, a row the database refuses for good, a record the bus refuses) is
    /// dropped with an error and counted: the reading that closes it is not to blame, and
    /// would otherwise go to the dead-letter topic with every later reading of the sensor
    /// behind it. Its readings stay stored raw. A transient failure is returned: retried.
    async fn emit_or_drop(
        &mut self,
        raw: &RawWindow,
        trace: TraceContext,
    ) -> Result<(), HandleError> {
        match self.emit(raw, trace).await {
            Err(HandleError::Permanent(reason)) => {
                self.unstored.remove(&(raw.sensor_id, raw.start_ms));
                metrics::counter!("mantis_windows_failed_total", "reason" => "refused")
                    .increment(1);
                tracing::error!(sensor = %raw.sensor_id, window_start_ms = raw.start_ms, %reason, "window cannot be emitted; dropped (its readings stay stored raw)");
                Ok(())
            }
            other => other,
        }
    }

    /// Keeps `reading` (of the record `envelope`) to be stored with the next batch, storing
    /// the batch first when it is full. A record retried (a window it closes failed to
    /// publish) is not kept twice. Whatever stops the batch, this reading is not to blame (it
    /// is not in it): the failure is transient for it, retried, never its dead letter.
    async fn keep(
        &mut self,
        reading: &Reading,
        envelope: &mantis_bus::Envelope,
    ) -> Result<(), HandleError> {
        if self
            .pending_origins
            .last()
            .is_some_and(|e| (e.partition, e.offset) == (envelope.partition, envelope.offset))
        {
            return Ok(());
        }
        if self.pending.len() >= STORE_BATCH {
            self.store_pending().await.map_err(|e| match e {
                HandleError::Permanent(why) => HandleError::Transient(format!(
                    "the readings before this one cannot be stored: {why}"
                )),
                other => other,
            })?;
        }
        self.pending_from
            .entry(envelope.partition)
            .or_insert(envelope.offset);
        self.pending.push(reading.clone());
        self.pending_origins.push(envelope.clone());
        Ok(())
    }

    /// Stores the pending readings in one transaction; returns whether there were any. A
    /// batch the database refuses for good is stored reading by reading, and a reading it
    /// refuses goes to the dead-letter topic with the reason (the record it came from was
    /// handled already). A transient failure keeps them all pending (stored again, once, by
    /// the retry).
    async fn store_pending(&mut self) -> Result<bool, HandleError> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        match self.store.insert_readings(&self.pending).await {
            Ok(_) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(readings = self.pending.len(), error = %e, "a batch of readings was refused; storing them one by one");
                let mut done = 0;
                let outcome = loop {
                    let Some(reading) = self.pending.get(done) else {
                        break Ok(());
                    };
                    let stored = match self
                        .store
                        .insert_readings(std::slice::from_ref(reading))
                        .await
                    {
                        Err(e) if !e.is_retryable() => {
                            self.dead_letter(
                                reading.sensor_id,
                                &self.pending_origins[done],
                                &e.to_string(),
                            )
                            .await
                        }
                        other => other.map(|_| ()).map_err(HandleError::from),
                    };
                    if let Err(e) = stored {
                        break Err(e);
                    }
                    done += 1;
                };
                // What was stored or dead-lettered is not done again by a retry.
                self.pending.drain(..done);
                self.pending_origins.drain(..done);
                outcome?;
            }
        }
        self.pending.clear();
        self.pending_origins.clear();
        self.pending_from.clear();
        Ok(true)
    }

    /// Sends the record of a reading the database refuses to the service's dead-letter topic,
    /// as the consumer sends a record it cannot handle: as read, with the reason and where it
    /// came from.
    async fn dead_letter(
        &self,
        sensor: SensorId,
        envelope: &mantis_bus::Envelope,
        reason: &str,
    ) -> Result<(), HandleError> {
        tracing::warn!(sensor = %sensor, partition = envelope.partition, offset = envelope.offset, %reason, "reading refused by the database; dead-lettered");
        metrics::counter!("mantis_records_dead_lettered_total", "topic" => topics::SENSOR_RAW)
            .increment(1);
        let record = envelope.to_dead_letter(&topics::dead_letter_topic(crate::GROUP), reason);
        self.publisher.send(record).await?;
        Ok(())
    }

    fn committable(&self, partition: i32) -> Option<Position> {
        let last = *self.last_offset.get(&partition)?;
        let mut next_offset = match self.windower.earliest_needed(partition) {
            Some(first) => first.min(last + 1),
            None => last + 1,
        };
        if let Some(first) = self.pending_from.get(&partition) {
            next_offset = next_offset.min(*first);
        }
        Some(Position {
            topic: topics::SENSOR_RAW.to_owned(),
            partition,
            next_offset,
        })
    }
}

/// Samples per second implied by the window's readings (for sensors without a nominal rate).
fn estimated_rate(raw: &RawWindow) -> f64 {
    match (raw.t.first(), raw.t.last()) {
        (Some(a), Some(b)) if b > a && raw.t.len() > 1 => (raw.t.len() - 1) as f64 / (b - a),
        _ => 1.0,
    }
}

/// The rate of the median interval between `t`'s distinct times (seconds), `None` with fewer
/// than two intervals. Sorts a copy: called only for windows that look slow.
fn median_rate(t: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = t.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut intervals: Vec<f64> = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    if intervals.len() < 2 {
        return None;
    }
    let mid = intervals.len() / 2;
    let (_, median, _) = intervals.select_nth_unstable_by(mid, f64::total_cmp);
    Some(1.0 / *median)
}

/// The domain window of a conditioned signal: its longest gap-free piece.
fn to_window(raw: &RawWindow, out: &Preprocessed) -> Option<Window> {
    let piece = out
        .signal
        .segments
        .iter()
        .max_by_key(|s| s.range.len())
        .map(|s| out.signal.values[s.range.clone()].to_vec())?;
    let stats = mantis_dsp::WindowStats::of(&piece)?;
    let ts = |ms: i64| mantis_domain::timestamp_from_millis(ms);
    Some(Window {
        asset_id: raw.asset_id,
        sensor_id: raw.sensor_id,
        sensor_type: raw.sensor_type,
        window_start: ts(raw.start_ms)?,
        window_end: ts(raw.end_ms)?,
        count: piece.len() as u32,
        mean: stats.mean,
        std: stats.std,
        min: stats.min,
        max: stats.max,
        values: piece,
        sample_rate_hz: out.signal.rate_hz,
    })
}

#[async_trait]
impl Handler for WindowHandler {
    type Input = Reading;

    async fn handle(
        &mut self,
        reading: &Reading,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let origin = Origin {
            partition: ctx.envelope.partition,
            offset: ctx.envelope.offset,
        };
        self.keep(reading, ctx.envelope).await?;
        self.last_offset.insert(origin.partition, origin.offset);
        self.last_read.insert(reading.sensor_id, Instant::now());
        // (A record without a log time, 0, tells nothing.)
        let appended_ms = chrono::Utc::now().timestamp_millis() - ctx.envelope.timestamp_ms;
        if ctx.envelope.timestamp_ms > 0
            && u128::try_from(appended_ms).is_ok_and(|age| age > self.idle_close.as_millis())
        {
            self.catching_up = true;
        }
        if reading.quality.get() < Quality::LOW_THRESHOLD {
            metrics::counter!("mantis_readings_not_windowed_total", "reason" => "low_quality")
                .increment(1);
            return Ok(self.committable(origin.partition));
        }
        // Publish the windows this reading closes before changing any state, so a failure
        // retries cleanly.
        for raw in self.windower.closing(reading) {
            self.emit_or_drop(&raw, ctx.trace).await?;
            // Closed now: a retry of this reading (a later window failing) does not emit it
            // again.
            self.windower.remove(raw.sensor_id, raw.start_ms);
        }
        let added = self.windower.add(reading, origin, Instant::now());
        if added.late {
            metrics::counter!("mantis_readings_late_total").increment(1);
            tracing::debug!(sensor = %reading.sensor_id, ts = %reading.timestamp, "late reading kept raw, not merged into its closed window");
        }
        if added.reassigned {
            // Conditioned from now on for what it is now (its type, its rate as registered).
            self.preprocessors.remove(&reading.sensor_id);
            self.nominal_rates.remove(&reading.sensor_id);
            self.emitting.remove(&reading.sensor_id);
            tracing::info!(sensor = %reading.sensor_id, asset = %reading.asset_id, "sensor moved to another asset (or given another type); its open windows were closed under the old one");
        }
        if added.clock_stepped {
            // Its windows start again on times it may have had windows of already: the store
            // is asked again before each is emitted.
            self.emitting.remove(&reading.sensor_id);
            metrics::counter!("mantis_sensor_clock_steps_total").increment(1);
            tracing::warn!(
                sensor = %reading.sensor_id,
                asset = %reading.asset_id,
                ts = %reading.timestamp,
                after_secs = crate::windower::CLOCK_STEP_AFTER.as_secs(),
                "the sensor's readings have all been far behind its newest one: its clock is taken to have stepped back, and its windows go on from this reading's time"
            );
        }
        Ok(self.committable(origin.partition))
    }

    async fn tick(&mut self) -> Result<Vec<Position>, HandleError> {
        // The readings first: a window that cannot be published now does not keep them out
        // of the database (and the live view).
        let stored = self.store_pending().await?;
        let now = Instant::now();
        let previous = self.last_tick.replace(now);
        let catching_up = std::mem::take(&mut self.catching_up);
        let held = match previous.and_then(|t| stalled(t, now)) {
            // Nothing was read meanwhile: the sensors were not silent, the consumer was held.
            // Their windows' remaining readings are still in the log, not late.
            Some(held) => {
                tracing::info!(
                    held_secs = held.as_secs_f64(),
                    "consumer held; idle windows wait as long"
                );
                Some(held)
            }
            // Reading a backlog, partition after partition: the sensors of the partitions
            // read first are not silent, their next readings wait in the log behind the
            // others'. Time spent catching up does not count towards idleness, up to a limit.
            None if catching_up => {
                let limit = self.idle_close.saturating_mul(CATCH_UP_GRACE);
                let by = previous
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default()
                    .min(limit.saturating_sub(self.caught_up_grace));
                self.caught_up_grace += by;
                (!by.is_zero()).then_some(by)
            }
            None => None,
        };
        if !catching_up {
            self.caught_up_grace = Duration::ZERO;
        }
        if let Some(held) = held {
            self.windower.postpone_idle(held, now);
            for seen in self.last_read.values_mut() {
                *seen = (*seen + held).min(now);
            }
        }
        self.forget_quiet(now);
        let idle = self.windower.idle(now, self.idle_close);
        for raw in &idle {
            self.emit_or_drop(raw, TraceContext::new_root()).await?;
            self.windower.remove(raw.sensor_id, raw.start_ms);
        }
        if idle.is_empty() && !stored {
            return Ok(Vec::new());
        }
        let partitions: Vec<i32> = self.last_offset.keys().copied().collect();
        Ok(partitions
            .into_iter()
            .filter_map(|p| self.committable(p))
            .collect())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK)
    }

    /// A dead-lettered reading commits no further than the open windows' first readings.
    fn skipped(&mut self, envelope: &mantis_bus::Envelope) -> Option<Position> {
        self.last_offset.insert(envelope.partition, envelope.offset);
        self.committable(envelope.partition)
    }

    fn revoked(&mut self, partitions: &[i32]) {
        // The new owner reads these partitions again from the group's commit, which never
        // passed the first reading of an open window, and builds the same windows whole. Kept
        // here they would go idle and be published from the part read so far (or their
        // commits would overwrite the new owner's).
        let sensors = self.windower.revoke(partitions);
        for sensor in &sensors {
            self.preprocessors.remove(sensor);
            self.nominal_rates.remove(sensor);
            self.emitting.remove(sensor);
            self.last_read.remove(sensor);
        }
        self.unstored
            .retain(|(sensor, _), _| !sensors.contains(sensor));
        for p in partitions {
            self.last_offset.remove(p);
            self.pending_from.remove(p);
        }
        // Their readings not stored yet are read again, and stored, by the new owner.
        (self.pending, self.pending_origins) = std::mem::take(&mut self.pending)
            .into_iter()
            .zip(std::mem::take(&mut self.pending_origins))
            .filter(|(_, envelope)| !partitions.contains(&envelope.partition))
            .unzip();
        tracing::debug!(
            ?partitions,
            sensors = sensors.len(),
            "partitions revoked: their open windows are left to the new owner"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_bus::{StartFrom, SubscribeOptions, embedded::EmbeddedBus};
    use mantis_domain::{AssetId, SensorType, SourceProtocol};
    use mantis_runtime::run_consumer;
    use mantis_store::sqlite::SqliteStore;
    use tokio_util::sync::CancellationToken;

    const T0: i64 = 1_763_892_000_000;

    #[test]
    fn a_gap_of_a_few_ticks_is_not_a_stall_a_longer_one_is() {
        let t = Instant::now();
        assert_eq!(stalled(t, t + TICK), None);
        assert_eq!(stalled(t, t + TICK * 3), None);
        assert_eq!(
            stalled(t, t + Duration::from_secs(90)),
            Some(Duration::from_secs(89))
        );
        assert_eq!(stalled(t + TICK, t), None, "a clock read out of order");
    }

    fn reading(asset: AssetId, sensor: SensorId, ms: i64) -> Reading {
        Reading {
            timestamp: mantis_domain::timestamp_from_millis(T0 + ms).expect("valid"),
            asset_id: asset,
            sensor_id: sensor,
            sensor_code: "T1".into(),
            sensor_type: SensorType::Temperature,
            value: 20.0 + (ms as f64 / 1000.0).sin(),
            unit: "C".into(),
            quality: Quality::GOOD,
            source: SourceProtocol::Rest,
            metadata: Default::default(),
        }
    }

    /// Window starts (ms after T0) and sample counts published on `sensor.windowed` so far.
    async fn published(infra: &Infra, reader: &str) -> Vec<(i64, u32)> {
        published_windows(infra, reader)
            .await
            .iter()
            .map(|w| (w.window_start.timestamp_millis() - T0, w.count))
            .collect()
    }

    /// The windows published on `sensor.windowed` so far.
    async fn published_windows(infra: &Infra, reader: &str) -> Vec<Window> {
        let mut sub = infra
            .bus
            .subscribe(SubscribeOptions::new(
                reader,
                [topics::SENSOR_WINDOWED],
                StartFrom::Earliest,
            ))
            .await
            .expect("subscription");
        let mut out = Vec::new();
        while let Ok(Ok(env)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            out.push(infra.codec.decode(&env.payload).await.expect("a window"));
        }
        out
    }

    async fn run_until(infra: &Infra, config: &Config, windows: usize) {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_consumer(
            infra.clone(),
            crate::GROUP,
            WindowHandler::new(infra, config.clone()),
            shutdown.clone(),
        ));
        for _ in 0..100 {
            if infra.store.count_windows(None).await.expect("count") as usize >= windows {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
    }

    /// The embedded log in `dir` and an in-memory SQLite, with the brief's topics.
    async fn embedded(dir: &tempfile::TempDir) -> Infra {
        let bus = EmbeddedBus::open(dir.path()).await.expect("log opens");
        let infra = Infra::in_process(
            Arc::new(bus),
            Arc::new(SqliteStore::in_memory().await.expect("sqlite")),
        );
        infra.ensure_topics(&[]).await.expect("topics");
        infra
    }

    #[tokio::test]
    async fn a_restart_does_not_emit_again_the_windows_it_had_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        // Hopping windows: 30 s long, one every 10 s, so the readings of [0, 30) are also those
        // of [10, 40) and [20, 50), which stays open at the end (with [30, 60) and [40, 70));
        // [-20, 10) and [-10, 20) hold the first readings.
        let config = Config {
            hop_secs: Some(10),
            allowed_lateness_secs: 0,
            ..Config::default()
        };
        let (asset, sensor) = (AssetId::new_random(), SensorId::new_random());
        let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
        for s in 0..45 {
            publisher
                .publish(
                    Some(asset.to_string()),
                    &reading(asset, sensor, s * 1000),
                    TraceContext::new_root(),
                    vec![],
                )
                .await
                .expect("published");
        }
        run_until(&infra, &config, 4).await;
        let first = published(&infra, "first").await;
        assert_eq!(
            first.iter().map(|w| w.0).collect::<Vec<_>>(),
            vec![-20_000, -10_000, 0, 10_000],
            "{first:?}"
        );
        // The log redelivers from the first reading of [20, 50): those of [10, 40) from 20 s
        // on come again, and rebuild a window [10, 40) from 20 of its 30 readings. A reading at
        // 51 s then closes [20, 50).
        publisher
            .publish(
                Some(asset.to_string()),
                &reading(asset, sensor, 51_000),
                TraceContext::new_root(),
                vec![],
            )
            .await
            .expect("published");
        run_until(&infra, &config, 5).await;
        let second = published(&infra, "second").await;
        assert_eq!(
            second.iter().map(|w| w.0).collect::<Vec<_>>(),
            vec![-20_000, -10_000, 0, 10_000, 20_000],
            "no window is published twice, nor a partial one: {second:?}"
        );
        assert_eq!(second[..4], first[..]);
        let stored = infra
            .store
            .list_windows(
                sensor,
                mantis_domain::timestamp_from_millis(T0).expect("valid"),
                mantis_domain::timestamp_from_millis(T0 + 60_000).expect("valid"),
                10,
            )
            .await
            .expect("windows");
        assert_eq!(stored.len(), 3, "[0, 10 s, 20 s) of the minute from T0");
    }

    /// Hands `reading` to the handler as the record at `offset` of partition 0.
    /// Hands `reading` to `h` as a record appended to the log just now.
    async fn feed(h: &mut WindowHandler, reading: &Reading, offset: i64) {
        feed_appended(h, reading, offset, chrono::Utc::now().timestamp_millis()).await;
    }

    /// Hands `reading` to `h` as a record appended to the log at `appended_ms`.
    async fn feed_appended(
        h: &mut WindowHandler,
        reading: &Reading,
        offset: i64,
        appended_ms: i64,
    ) {
        let envelope = mantis_bus::Envelope {
            topic: topics::SENSOR_RAW.to_owned(),
            partition: 0,
            offset,
            key: None,
            headers: Vec::new(),
            timestamp_ms: appended_ms,
            payload: Vec::new(),
        };
        let ctx = RecordContext {
            envelope: &envelope,
            trace: TraceContext::new_root(),
        };
        h.handle(reading, &ctx).await.expect("handled");
    }

    /// Readings are stored in batches: at every tick, and whenever a batch is full. No commit
    /// passes a reading not stored yet, and a retried record is stored once.
    #[tokio::test]
    async fn readings_are_stored_in_batches_and_never_committed_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let (asset, sensor) = (AssetId::new_random(), SensorId::new_random());
        let mut h = WindowHandler::new(&infra, Config::default());
        let stored = || async {
            infra
                .store
                .list_readings(
                    sensor,
                    mantis_domain::timestamp_from_millis(T0).expect("valid"),
                    mantis_domain::timestamp_from_millis(T0 + 10_000_000).expect("valid"),
                )
                .await
                .expect("readings")
                .len()
        };
        // Of a quality too low to be windowed: only the storage holds the commit back.
        let poor = |ms: i64| Reading {
            quality: Quality::new(10).expect("quality"),
            ..reading(asset, sensor, ms)
        };
        for offset in 0..3 {
            feed(&mut h, &poor(offset * 100), offset).await;
        }
        // Fed again, as a retry would.
        feed(&mut h, &poor(200), 2).await;
        assert_eq!(stored().await, 0, "kept for the next batch");
        assert_eq!(h.committable(0).map(|p| p.next_offset), Some(0));
        let committed = h.tick().await.expect("tick");
        assert_eq!(stored().await, 3);
        assert_eq!(
            committed
                .iter()
                .map(|p| (p.partition, p.next_offset))
                .collect::<Vec<_>>(),
            vec![(0, 3)],
            "committable once stored"
        );
        // A full batch is stored as the next reading comes.
        let first = 3;
        for i in 0..=STORE_BATCH as i64 {
            feed(&mut h, &poor(1_000 + i * 100), first + i).await;
        }
        assert_eq!(stored().await, 3 + STORE_BATCH);
        assert_eq!(h.pending.len(), 1);
        assert_eq!(
            h.committable(0).map(|p| p.next_offset),
            Some(first + STORE_BATCH as i64),
            "not past the reading still pending"
        );
        // A partition taken away: its readings not stored yet are left to the new owner.
        h.revoked(&[0]);
        assert!(h.pending.is_empty() && h.pending_from.is_empty());
    }

    /// A reading the database refuses (here a trigger of the real SQLite refuses one sensor
    /// code) does not hold back the batch it is in: the others are stored, it goes to the
    /// dead-letter topic with the reason and where it came from.
    #[tokio::test]
    async fn a_reading_the_database_refuses_is_dead_lettered_and_the_batch_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = EmbeddedBus::open(dir.path()).await.expect("log opens");
        let sqlite = SqliteStore::in_memory().await.expect("sqlite");
        sqlx::query(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON sensor_data_raw \
             WHEN NEW.sensor_code = 'BAD' \
             BEGIN SELECT RAISE(ABORT, 'not this one'); END",
        )
        .execute(sqlite.pool())
        .await
        .expect("trigger");
        let infra = Infra::in_process(Arc::new(bus), Arc::new(sqlite));
        // As the consumer creates it.
        infra
            .ensure_topics(&[topics::dead_letter_spec(crate::GROUP)])
            .await
            .expect("topics");
        let (asset, sensor) = (AssetId::new_random(), SensorId::new_random());
        let mut h = WindowHandler::new(&infra, Config::default());
        for offset in 0..5 {
            let mut r = reading(asset, sensor, offset * 100);
            if offset == 3 {
                r.sensor_code = "BAD".into();
            }
            // As read from the log: keyed, encoded, with a header of its own.
            let envelope = mantis_bus::Envelope {
                topic: topics::SENSOR_RAW.to_owned(),
                partition: 0,
                offset,
                key: Some(asset.to_string().into_bytes()),
                headers: vec![("origin".to_owned(), b"rest".to_vec())],
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
                payload: infra.codec.encode(&r).expect("encoded"),
            };
            let ctx = RecordContext {
                envelope: &envelope,
                trace: TraceContext::new_root(),
            };
            h.handle(&r, &ctx).await.expect("handled");
        }
        h.tick().await.expect("stored but one");
        let stored = infra
            .store
            .list_readings(
                sensor,
                mantis_domain::timestamp_from_millis(T0).expect("valid"),
                mantis_domain::timestamp_from_millis(T0 + 1_000).expect("valid"),
            )
            .await
            .expect("readings");
        assert_eq!(
            stored
                .iter()
                .map(|r| r.timestamp.timestamp_millis() - T0)
                .collect::<Vec<_>>(),
            vec![0, 100, 200, 400]
        );
        let mut sub = infra
            .bus
            .subscribe(SubscribeOptions::new(
                "dlq-reader",
                [topics::dead_letter_topic(crate::GROUP).as_str()],
                StartFrom::Earliest,
            ))
            .await
            .expect("subscribe");
        let dead = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a dead letter")
            .expect("read");
        let header = |name: &str| {
            dead.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert!(
            header(mantis_bus::DLQ_REASON).is_some_and(|r| r.contains("not this one")),
            "{:?}",
            header(mantis_bus::DLQ_REASON)
        );
        assert_eq!(header(mantis_bus::DLQ_SOURCE_OFFSET).as_deref(), Some("3"));
        assert_eq!(
            header("origin").as_deref(),
            Some("rest"),
            "the record's own headers kept"
        );
        assert_eq!(
            dead.key,
            Some(asset.to_string().into_bytes()),
            "and its key"
        );
        let refused: Reading = infra.codec.decode(&dead.payload).await.expect("a reading");
        assert_eq!(refused.sensor_code, "BAD");
    }

    /// Reading a backlog, the sensors read first are not silent: their next readings wait in
    /// the log behind the others'. Time spent on records appended longer than `idle_close`
    /// ago does not count towards idleness; once the consumer reads fresh records (or none),
    /// a silent sensor's window closes by idleness as before.
    #[tokio::test]
    async fn windows_do_not_go_idle_while_a_backlog_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let config = Config {
            window_secs: 10,
            allowed_lateness_secs: 0,
            idle_close_secs: 1,
            ..Config::default()
        };
        let (asset, a, b) = (
            AssetId::new_random(),
            SensorId::new_random(),
            SensorId::new_random(),
        );
        let mut h = WindowHandler::new(&infra, config);
        let windows = || async { infra.store.count_windows(Some(a)).await.expect("count") };
        let long_ago = chrono::Utc::now().timestamp_millis() - 600_000;
        h.tick().await.expect("tick");
        // Sensor a's backlog first, then, 1.2 s later, sensor b's: a looks silent for longer
        // than `idle_close`, but its window stays open.
        for (offset, ms) in (0..5_000).step_by(1000).enumerate() {
            feed_appended(&mut h, &reading(asset, a, ms), offset as i64, long_ago).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        feed_appended(&mut h, &reading(asset, b, 0), 5, long_ago).await;
        h.tick().await.expect("tick");
        assert_eq!(windows().await, 0, "not idle while catching up");
        // Caught up (nothing read since): a silent sensor's window closes by idleness.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        h.tick().await.expect("tick");
        assert_eq!(windows().await, 1, "closed once the backlog is read");
    }

    /// A sensor quiet for `forget_after_secs` with no open window is forgotten (its state
    /// freed); its next readings start afresh from its registration, and a window it had
    /// emitted before is not emitted again.
    /// A window published whose row the database did not take (away for a moment) is stored
    /// when retried, not published a second time.
    #[tokio::test]
    async fn a_window_published_but_not_stored_is_stored_on_retry_not_published_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let config = Config {
            window_secs: 10,
            allowed_lateness_secs: 0,
            // Every tick closes the open windows.
            idle_close_secs: 0,
            ..Config::default()
        };
        let (asset, sensor) = (AssetId::new_random(), SensorId::new_random());
        let mut h = WindowHandler::new(&infra, config);
        for s in 0..=10 {
            feed(&mut h, &reading(asset, sensor, s * 1000), s).await;
        }
        // [0, 10) emitted and stored: the sensor's later windows are not looked up first.
        assert_eq!(published(&infra, "first").await.len(), 1);
        for s in 11..15 {
            feed(&mut h, &reading(asset, sensor, s * 1000), s).await;
        }
        // The readings are stored; then the database goes away: [10, 20) is published, its
        // row not stored.
        h.store_pending().await.expect("readings stored");
        let away = SqliteStore::in_memory().await.expect("sqlite");
        away.pool().close().await;
        let kept = std::mem::replace(&mut h.store, Arc::new(away));
        let e = h.tick().await.expect_err("the row was not stored");
        assert!(matches!(e, HandleError::Transient(_)), "{e:?}");
        assert_eq!(published(&infra, "second").await.len(), 2);
        // Back: the retry stores it and publishes nothing more.
        h.store = kept;
        h.tick().await.expect("stored on retry");
        let windows = published(&infra, "third").await;
        assert_eq!(
            windows.iter().map(|w| w.0).collect::<Vec<_>>(),
            vec![0, 10_000],
            "each window published once"
        );
        assert_eq!(
            infra.store.count_windows(None).await.expect("count"),
            2,
            "both stored"
        );
    }

    /// A motor registered in `infra`'s store.
    async fn registered_motor(infra: &Infra) -> mantis_domain::Asset {
        let asset = mantis_domain::Asset {
            id: AssetId::new_random(),
            tenant_id: mantis_domain::TenantId::DEFAULT,
            code: "MTR-1".into(),
            name: "motor".into(),
            asset_type: "motor".into(),
            location: String::new(),
            criticality: mantis_domain::Criticality::Medium,
        };
        infra.store.upsert_asset(&asset).await.expect("asset");
        asset
    }

    /// A temperature sensor of `asset` sampled at 1 Hz (not registered yet).
    fn thermometer(asset: &mantis_domain::Asset, code: &str) -> mantis_domain::Sensor {
        mantis_domain::Sensor {
            id: SensorId::new_random(),
            asset_id: asset.id,
            code: code.into(),
            sensor_type: SensorType::Temperature,
            unit: "C".into(),
            min_value: -50.0,
            max_value: 150.0,
            sampling_rate_hz: 1.0,
        }
    }

    /// A sensor registered at 1 Hz that sends at 10 Hz is resampled at 1 Hz (its window holds
    /// 10 samples, not 100) and said to send faster than registered; one registered at 10 Hz
    /// that sends at 1 Hz is said to send slower; one that sends at its rate is not.
    #[tokio::test]
    async fn a_sensor_sending_faster_or_slower_than_registered_is_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let asset = registered_motor(&infra).await;
        let registered = |code: &str| thermometer(&asset, code);
        let (fast, steady) = (registered("T1"), registered("T2"));
        let slow = mantis_domain::Sensor {
            sampling_rate_hz: 10.0,
            ..registered("T3")
        };
        for s in [&fast, &steady, &slow] {
            infra.store.upsert_sensor(s).await.expect("sensor");
        }
        let config = Config {
            window_secs: 10,
            allowed_lateness_secs: 0,
            ..Config::default()
        };
        let mut h = WindowHandler::new(&infra, config);
        let mut offset = 0;
        for ms in (0..=10_000).step_by(100) {
            feed(&mut h, &reading(asset.id, fast.id, ms), offset).await;
            offset += 1;
            if ms % 1000 == 0 {
                feed(&mut h, &reading(asset.id, steady.id, ms), offset).await;
                // Slow, with a gap of 3 s: the median interval is still 1 s.
                if !(4000..7000).contains(&ms) {
                    feed(&mut h, &reading(asset.id, slow.id, ms), offset + 1).await;
                }
                offset += 2;
            }
        }
        let windows = infra
            .store
            .list_windows(
                fast.id,
                mantis_domain::timestamp_from_millis(T0).expect("valid"),
                mantis_domain::timestamp_from_millis(T0 + 10_000).expect("valid"),
                10,
            )
            .await
            .expect("windows");
        assert_eq!(
            windows.iter().map(|w| w.count).collect::<Vec<_>>(),
            vec![10],
            "resampled at the registered 1 Hz"
        );
        assert!(
            h.nominal_rates[&fast.id].1.is_some(),
            "the fast one is said to be"
        );
        assert_eq!(
            h.nominal_rates[&steady.id],
            (1.0, None),
            "the steady one is not"
        );
        assert!(
            h.nominal_rates[&slow.id].1.is_some(),
            "the slow one is said to be"
        );
        // Registered at its real rate: read again when it would be said next (an hour on;
        // here at once), and its next windows are conditioned at 10 Hz.
        infra
            .store
            .upsert_sensor(&mantis_domain::Sensor {
                sampling_rate_hz: 10.0,
                ..fast.clone()
            })
            .await
            .expect("registered again");
        if let Some(entry) = h.nominal_rates.get_mut(&fast.id) {
            entry.1 = None;
        }
        for ms in (10_100..=30_000).step_by(100) {
            feed(&mut h, &reading(asset.id, fast.id, ms), offset).await;
            offset += 1;
        }
        assert_eq!(h.nominal_rates[&fast.id], (10.0, None), "at its new rate");
        let windows = infra
            .store
            .list_windows(
                fast.id,
                mantis_domain::timestamp_from_millis(T0 + 20_000).expect("valid"),
                mantis_domain::timestamp_from_millis(T0 + 20_001).expect("valid"),
                10,
            )
            .await
            .expect("windows");
        assert_eq!(
            windows.iter().map(|w| w.count).collect::<Vec<_>>(),
            vec![100],
            "[20 s, 30 s) at 10 Hz"
        );
    }

    #[tokio::test]
    async fn a_quiet_sensor_is_forgotten_and_starts_afresh_from_its_registration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let config = Config {
            window_secs: 10,
            allowed_lateness_secs: 0,
            // Every tick closes the open windows.
            idle_close_secs: 0,
            ..Config::default()
        };
        let asset = registered_motor(&infra).await;
        let mut sensor = thermometer(&asset, "T1");
        infra.store.upsert_sensor(&sensor).await.expect("sensor");
        let other = SensorId::new_random();
        let mut h = WindowHandler::new(&infra, config);
        let mut offset = 0;
        // [0, 10 s) closes at the reading at 10 s; [10, 20) is left open with six.
        for ms in (0..=15_000).step_by(1000) {
            feed(&mut h, &reading(asset.id, sensor.id, ms), offset).await;
            offset += 1;
        }
        feed(&mut h, &reading(asset.id, other, 0), offset).await;
        offset += 1;
        // Starts and sample counts (after resampling at the sensor's rate).
        let rates = |windows: Vec<mantis_store::WindowSummary>| {
            windows
                .iter()
                .map(|w| (w.window_start.timestamp_millis() - T0, w.count))
                .collect::<Vec<_>>()
        };
        let windows = || async {
            rates(
                infra
                    .store
                    .list_windows(
                        sensor.id,
                        mantis_domain::timestamp_from_millis(T0).expect("valid"),
                        mantis_domain::timestamp_from_millis(T0 + 1_000_000).expect("valid"),
                        10,
                    )
                    .await
                    .expect("windows"),
            )
        };
        assert_eq!(windows().await, [(0, 10)]);
        assert_eq!(h.preprocessors.len(), 1);

        // Open windows keep their sensors, however quiet.
        let hour_on = Instant::now() + Duration::from_secs(3600);
        h.forget_quiet(hour_on);
        assert_eq!(h.windower.sensors(), 2);
        // Closed by idleness, then quiet for an hour: both forgotten, and only then.
        h.tick().await.expect("tick");
        assert_eq!(windows().await, [(0, 10), (10_000, 6)]);
        h.forget_quiet(Instant::now());
        assert_eq!(h.windower.sensors(), 2, "not quiet long enough");
        h.forget_quiet(hour_on);
        assert_eq!(h.windower.sensors(), 0);
        assert!(h.preprocessors.is_empty() && h.emitting.is_empty() && h.last_read.is_empty());

        // Re-registered at 2 Hz meanwhile: the next window is resampled at it. A late reading
        // of [0, 10 s), closed before it was forgotten, reopens it, and it is not emitted again.
        sensor.sampling_rate_hz = 2.0;
        infra.store.upsert_sensor(&sensor).await.expect("sensor");
        feed(&mut h, &reading(asset.id, sensor.id, 5_000), offset).await;
        offset += 1;
        for ms in (100_000..=110_000).step_by(500) {
            feed(&mut h, &reading(asset.id, sensor.id, ms), offset).await;
            offset += 1;
        }
        assert_eq!(
            windows().await,
            [(0, 10), (10_000, 6), (100_000, 20)],
            "[0, 10 s) once, [100 s, 110 s) at the new rate (2 Hz: 20 samples)"
        );
        // What went downstream: each window once, whole.
        let mine: Vec<(i64, u32)> = published_windows(&infra, "reader")
            .await
            .iter()
            .filter(|w| w.sensor_id == sensor.id)
            .map(|w| (w.window_start.timestamp_millis() - T0, w.count))
            .collect();
        assert_eq!(mine, [(0, 10), (10_000, 6), (100_000, 20)]);
    }

    /// A second replica joins while windows are open: the partitions it takes are read again
    /// from the group's commit and their windows built whole by the newcomer; the first replica
    /// drops what it held of them rather than publishing it when it goes idle there.
    #[tokio::test]
    async fn a_rebalance_leaves_the_open_windows_to_the_new_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let infra = embedded(&dir).await;
        let config = Config {
            allowed_lateness_secs: 0,
            idle_close_secs: 2,
            ..Config::default()
        };
        // Sixteen assets over the topic's twelve partitions: the newcomer takes every other
        // partition, so some of them change hands (all on kept partitions: one in 65 536).
        let sensors: Vec<(AssetId, SensorId)> = (0..16)
            .map(|_| (AssetId::new_random(), SensorId::new_random()))
            .collect();
        let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
        let second_of_plant = |s: i64| {
            let (publisher, sensors) = (&publisher, &sensors);
            async move {
                for (asset, sensor) in sensors {
                    publisher
                        .publish(
                            Some(asset.to_string()),
                            &reading(*asset, *sensor, s * 1000),
                            TraceContext::new_root(),
                            vec![],
                        )
                        .await
                        .expect("published");
                }
            }
        };
        let wait_for_windows = |n: usize| {
            let store = infra.store.clone();
            async move {
                for _ in 0..300 {
                    if store.count_windows(None).await.expect("count") as usize >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("fewer than {n} windows stored");
            }
        };
        let replica = |shutdown: &CancellationToken| {
            tokio::spawn(run_consumer(
                infra.clone(),
                crate::GROUP,
                WindowHandler::new(&infra, config.clone()),
                shutdown.clone(),
            ))
        };

        for s in 0..45 {
            second_of_plant(s).await;
        }
        let shutdown = CancellationToken::new();
        let first = replica(&shutdown);
        // [0, 30) of every sensor closed; [30, 60) open with 15 of its readings.
        wait_for_windows(16).await;
        let second = replica(&shutdown);
        // The plant goes on, one second of readings every 100 ms: no sensor falls silent; the
        // first replica only stops seeing the partitions taken from it.
        for s in 45..150 {
            second_of_plant(s).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // [120, 150) closes when the plant stops, by idle.
        wait_for_windows(16 * 5).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        shutdown.cancel();
        first.await.expect("joins").expect("clean stop");
        second.await.expect("joins").expect("clean stop");

        let windows = published_windows(&infra, "reader").await;
        for (_, sensor) in &sensors {
            let mine: Vec<(i64, u32)> = windows
                .iter()
                .filter(|w| w.sensor_id == *sensor)
                .map(|w| (w.window_start.timestamp_millis() - T0, w.count))
                .collect();
            assert_eq!(
                mine,
                (0..5).map(|k| (k * 30_000, 30)).collect::<Vec<_>>(),
                "every window published once and whole, whichever replica owned it"
            );
        }
        assert_eq!(
            infra.store.count_windows(None).await.expect("count"),
            16 * 5
        );
    }
}
