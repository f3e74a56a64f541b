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
    scratch: Preprocessed,
    /// Last offset seen per partition, to know what is committable after idle closes.
    last_offset: HashMap<i32, i64>,
}

impl WindowHandler {
    pub(crate) fn new(infra: &Infra, config: Config) -> Self {
        Self {
            store: infra.store.clone(),
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "preprocessing"),
            windower: Windower::new(config.window_spec()),
            idle_close: Duration::from_secs(config.idle_close_secs),
            config,
            preprocessors: HashMap::new(),
            scratch: Preprocessed::default(),
            last_offset: HashMap::new(),
        }
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

    /// Conditions a closed window; `None` when nothing usable is left.
    async fn condition(&mut self, raw: &RawWindow) -> Result<Option<Window>, HandleError> {
        let mut out = std::mem::take(&mut self.scratch);
        let result = self
            .preprocessor(raw)
            .await?
            .process(&raw.t, &raw.x, &mut out);
        let window = match result {
            Ok(()) => to_window(raw, &out),
            Err(e) => {
                tracing::warn!(sensor = %raw.sensor_id, error = %e, "window could not be conditioned");
                None
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
        Ok(window)
    }

    /// Conditions, stores and publishes a closed window (idempotent: keyed by sensor and start).
    async fn emit(&mut self, raw: &RawWindow, trace: TraceContext) -> Result<(), HandleError> {
        let Some(window) = self.condition(raw).await? else {
            metrics::counter!("mantis_windows_empty_total").increment(1);
            return Ok(());
        };
        self.store.insert_window(&window).await?;
        self.publisher
            .publish(Some(window.asset_id.to_string()), &window, trace, vec![])
            .await?;
        metrics::counter!("mantis_windows_emitted_total").increment(1);
        Ok(())
    }

    fn committable(&self, partition: i32) -> Option<Position> {
        let last = *self.last_offset.get(&partition)?;
        let next_offset = match self.windower.earliest_needed(partition) {
            Some(first) => first.min(last + 1),
            None => last + 1,
        };
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
        self.store
            .insert_readings(std::slice::from_ref(reading))
            .await?;
        let origin = Origin {
            partition: ctx.envelope.partition,
            offset: ctx.envelope.offset,
        };
        self.last_offset.insert(origin.partition, origin.offset);
        if reading.quality.get() < Quality::LOW_THRESHOLD {
            metrics::counter!("mantis_readings_not_windowed_total", "reason" => "low_quality")
                .increment(1);
            return Ok(self.committable(origin.partition));
        }
        // Publish the windows this reading closes before changing any state, so a failure
        // retries cleanly.
        for raw in self.windower.closing(reading) {
            self.emit(&raw, ctx.trace).await?;
        }
        if self.windower.add(reading, origin, Instant::now()).late {
            metrics::counter!("mantis_readings_late_total").increment(1);
            tracing::debug!(sensor = %reading.sensor_id, ts = %reading.timestamp, "late reading kept raw, not merged into its closed window");
        }
        Ok(self.committable(origin.partition))
    }

    async fn tick(&mut self) -> Result<Vec<Position>, HandleError> {
        let idle = self.windower.idle(Instant::now(), self.idle_close);
        if idle.is_empty() {
            return Ok(Vec::new());
        }
        for raw in &idle {
            self.emit(raw, TraceContext::new_root()).await?;
            self.windower.remove(raw.sensor_id, raw.start_ms);
        }
        let partitions: Vec<i32> = self.last_offset.keys().copied().collect();
        Ok(partitions
            .into_iter()
            .filter_map(|p| self.committable(p))
            .collect())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
}
