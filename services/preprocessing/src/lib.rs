//! # mantis-preprocessing
//!
//! Consumes `sensor.raw`, stores every reading, and turns each sensor's stream into clean,
//! regular windows on `sensor.windowed`:
//!
//! 1. **Windows** (`windower`): tumbling or hopping event-time windows (30 s by default) with a
//!    per-sensor watermark: a window closes once the sensor's newest timestamp minus the allowed
//!    lateness passes its end, or when the sensor has been silent for `idle_close_secs` (time in
//!    which the consumer was held, or read records appended longer than that before, a backlog
//!    after a start or a rebalance, does not count: the sensor's next readings wait in the log;
//!    the backlog's for at most 30 times `idle_close_secs` in a row, so a consumer that stays
//!    behind still closes a silent sensor's window).
//!    Readings behind the watermark are late: counted (`mantis_readings_late_total`), kept in the
//!    raw table, never merged into a closed window. A sensor whose readings have all been a
//!    window or more behind for 2 minutes has had its clock stepped back (or sent one stamp far
//!    ahead): its watermark goes on from its readings' time
//!    (`mantis_sensor_clock_steps_total`, a warning), rather than its readings staying late
//!    until the old time comes round again. Readings of quality below 50 are stored but
//!    not windowed.
//! 2. **Cleaning and conditioning** (`mantis-dsp`'s `Preprocessor`): non-finite values,
//!    duplicate timestamps, out-of-order readings, spikes (Hampel filter), resampling to the
//!    sensor's nominal rate on a grid through the window's readings (their median phase; a
//!    reading within a quarter period of its grid point kept as it is, so stamp jitter does not
//!    smooth the values) or, `grid = "first_reading"`, through the first reading, or,
//!    `grid = "absolute"`, on whole multiples of the period since the epoch; linear or hold), gaps
//!    longer than
//!    `max_gap_periods` split the window (the longest piece is kept, the gap is counted), and an
//!    optional Butterworth filter per sensor type (zero-phase by default).
//!
//! Nothing is lost on a restart: a reading's offset is committed only once it is stored (raw
//! readings are stored in batches, one transaction a second or per 1 000) and every window it
//! belongs to has been published (also when a reading after it goes to the dead-letter
//! topic), so the readings of open windows are redelivered and the windows rebuilt. A window
//! is published, then stored, and a stored window is not emitted again: windows that had
//! closed before the commit point, rebuilt from the part of their readings the log
//! redelivers, never replace the whole ones downstream. A rebalance is the same for the
//! partitions it moves: the replica they are taken from drops their open windows (and commits
//! nothing more for them), the new owner rebuilds them from the group's commit.
//!
//! The service also expires old time series where the database does not
//! (`[infra.retention]`): one replica at a time (the lease `preprocessing.retention` in the
//! store), one pass per period among them all (a replica whose timer comes within half a
//! period of the last pass skips its own).

mod handler;
mod windower;

pub use windower::{Added, Origin, RawWindow, WindowSpec, Windower};

use mantis_domain::SensorType;
use mantis_dsp::clean::{CleanConfig, DuplicatePolicy, HampelConfig, NonFinitePolicy};
use mantis_dsp::filter::FilterBand;
use mantis_dsp::pipeline::FilterConfig;
use mantis_dsp::resample::ResampleConfig;
use mantis_runtime::{App, Infra, Result, run_consumer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Configuration of the preprocessing service (`[preprocessing]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8002` (`mantis`, all services in one process:
    /// `127.0.0.1:8002`; this API takes no credentials).
    pub bind: String,
    /// Window length in seconds. Default 30.
    pub window_secs: u64,
    /// Seconds between window starts; absent: the window length (tumbling windows).
    pub hop_secs: Option<u64>,
    /// How far behind its sensor's newest reading a reading may arrive and still join its
    /// window, in seconds. Default 2.
    pub allowed_lateness_secs: u64,
    /// A window whose sensor has sent nothing for this long (wall clock, less time in which the
    /// consumer was held or read a backlog, for up to 30 times this) is closed. Default 60.
    pub idle_close_secs: u64,
    /// A sensor with no open window that has sent nothing for this long (wall clock; at least
    /// `idle_close_secs + window_secs`) is forgotten: its watermark, filter state and buffers
    /// are freed (a plant's sensors come and go), and its next reading starts afresh from its
    /// registration (a changed sampling rate is taken then; a straggler for a window emitted
    /// before is not emitted again). Default 3600.
    pub forget_after_secs: u64,
    /// Gaps longer than this many sampling periods split a window. Default 5; at least 1 (1.5
    /// with `grid = "readings"`).
    pub max_gap_periods: f64,
    /// Interpolation when resampling: `linear` (default) or `hold`.
    pub interpolation: Interpolation,
    /// Where the resampling grid lies: `readings` (default), `first_reading` or `absolute`.
    pub grid: Grid,
    /// Spike removal (Hampel filter); absent disables it. Default half-width 3, 4 sigmas of
    /// the window's noise level at least: a spike is a few times the noise, and plain noise is
    /// left alone (0.3 % of its samples replaced, 3 windows in 100 of ten samples changed;
    /// the usual 3 sigmas of the neighbours' MAD alone: 5 %, 42 in 100).
    pub hampel: Option<HampelSettings>,
    /// Butterworth filter per sensor type (`VIBRATION`, `TEMPERATURE`...). Default none.
    pub filters: BTreeMap<String, FilterSettings>,
}

/// Interpolation used when resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Straight line between neighbours.
    Linear,
    /// Last value held (zero-order hold).
    Hold,
}

/// The stamp jitter within which a reading keeps its value with the default grid, in periods.
const JITTER_PERIODS: f64 = 0.25;

/// Where the resampling grid of a window lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grid {
    /// Through the window's readings (the default): on their median phase, a reading within a
    /// quarter of a period of its grid point taken as it is. A regularly sampled sensor keeps
    /// its own sampling instants whatever the phase of its clock, and readings stamped with
    /// some jitter (a polled device, stamped when each poll is answered) keep their values as
    /// sampled: their windows look like those of a sensor stamped exactly, which a model may
    /// have learned from (interpolated, jitter would smooth them, and a late first reading
    /// would shift the whole window's grid).
    #[default]
    Readings,
    /// Through the window's first reading, every point interpolated (the grid before
    /// `readings`): jitter of the readings' stamps smooths the values.
    FirstReading,
    /// On whole multiples of the sampling period since the epoch: sensors of one rate share
    /// instants. Readings off those instants are interpolated, and linear interpolation
    /// smooths them by an amount that depends on their phase (half a period off halves the
    /// noise power and removes the top of the spectrum): a device whose phase changes then
    /// produces windows unlike those a model learned from.
    Absolute,
}

/// Hampel filter settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HampelSettings {
    /// Half-width of the moving window, in samples.
    pub half_width: usize,
    /// Threshold in robust standard deviations.
    pub n_sigmas: f64,
    /// The robust standard deviation is at least the window's noise level (its first
    /// differences' MAD / √2; default `true`): the usual filter, judging each sample by the MAD
    /// of its few neighbours alone, replaces about 5 % of plain noise at 3 sigmas (4 windows
    /// in 10 of ten samples changed), which distorts a healthy machine's features; floored,
    /// about 1 % (0.3 % at 4 sigmas), spikes still taken out. `false` and 3 sigmas keep what
    /// models trained before 2026-12-06 learned.
    #[serde(default = "default_signal_floor")]
    pub signal_floor: bool,
}

fn default_signal_floor() -> bool {
    true
}

/// A Butterworth filter for one sensor type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Filter order (1..=10). Default 4.
    #[serde(default = "default_order")]
    pub order: usize,
    /// `lowpass`, `highpass` or `bandpass`.
    pub kind: FilterKind,
    /// Cut-off (low/high-pass), Hz.
    #[serde(default)]
    pub cutoff_hz: Option<f64>,
    /// Lower edge (band-pass), Hz.
    #[serde(default)]
    pub low_hz: Option<f64>,
    /// Upper edge (band-pass), Hz.
    #[serde(default)]
    pub high_hz: Option<f64>,
    /// Forward-backward (no phase shift) when true (default); streaming with state carried
    /// across windows when false (tumbling windows only).
    #[serde(default = "yes")]
    pub zero_phase: bool,
}

/// Butterworth response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// Low-pass.
    Lowpass,
    /// High-pass.
    Highpass,
    /// Band-pass.
    Bandpass,
}

fn default_order() -> usize {
    4
}

fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8002".into(),
            window_secs: 30,
            hop_secs: None,
            allowed_lateness_secs: 2,
            idle_close_secs: 60,
            forget_after_secs: 3600,
            max_gap_periods: 5.0,
            interpolation: Interpolation::Linear,
            grid: Grid::Readings,
            hampel: Some(HampelSettings {
                half_width: 3,
                n_sigmas: 4.0,
                signal_floor: true,
            }),
            filters: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The window geometry.
    pub fn window_spec(&self) -> WindowSpec {
        WindowSpec {
            length: Duration::from_secs(self.window_secs),
            hop: Duration::from_secs(self.hop_secs.unwrap_or(self.window_secs)),
            allowed_lateness: Duration::from_secs(self.allowed_lateness_secs),
        }
    }

    /// The DSP preprocessing of a sensor of `sensor_type` sampled at `rate_hz` (the same
    /// configuration the service applies, so tools and tests can reproduce its windows).
    pub fn preprocess_config(
        &self,
        sensor_type: SensorType,
        rate_hz: f64,
    ) -> Result<mantis_dsp::PreprocessConfig> {
        let filter = match self.filters.get(sensor_type.as_str()) {
            None => None,
            Some(f) => Some(FilterConfig {
                order: f.order,
                band: f.band()?,
                zero_phase: f.zero_phase,
            }),
        };
        Ok(mantis_dsp::PreprocessConfig {
            clean: CleanConfig {
                non_finite: NonFinitePolicy::Drop,
                duplicates: DuplicatePolicy::KeepFirst,
                hampel: self.hampel.map(|h| HampelConfig {
                    half_width: h.half_width,
                    n_sigmas: h.n_sigmas,
                    signal_floor: h.signal_floor,
                }),
            },
            resample: ResampleConfig {
                rate_hz,
                method: match self.interpolation {
                    Interpolation::Linear => mantis_dsp::resample::Interpolation::Linear,
                    Interpolation::Hold => mantis_dsp::resample::Interpolation::Hold,
                },
                max_gap_s: self.max_gap_periods.max(self.shortest_gap_periods()) / rate_hz,
                origin_s: match self.grid {
                    Grid::Readings | Grid::FirstReading => None,
                    Grid::Absolute => Some(0.0),
                },
                jitter: match self.grid {
                    Grid::Readings => JITTER_PERIODS,
                    Grid::FirstReading | Grid::Absolute => 0.0,
                },
            },
            filter,
        })
    }

    /// The shortest `max_gap_periods` the grid allows: one period, and with `readings` twice
    /// the jitter tolerated more (a shorter gap could hold no grid point but snapped ones).
    fn shortest_gap_periods(&self) -> f64 {
        match self.grid {
            Grid::Readings => 1.0 + 2.0 * JITTER_PERIODS,
            Grid::FirstReading | Grid::Absolute => 1.0,
        }
    }

    /// Checks what serde cannot (window, hop, lateness, filters); the message names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(mantis_runtime::Error::Config(m));
        if self.window_secs == 0 {
            return bad("preprocessing.window_secs must be at least 1".into());
        }
        let hop = self.hop_secs.unwrap_or(self.window_secs);
        if hop == 0 || hop > self.window_secs {
            return bad(format!(
                "preprocessing.hop_secs must be within 1..={} (the window length)",
                self.window_secs
            ));
        }
        if self.forget_after_secs == 0 {
            return bad("preprocessing.forget_after_secs must be at least 1".into());
        }
        let shortest = self.shortest_gap_periods();
        if !(self.max_gap_periods.is_finite() && self.max_gap_periods >= shortest) {
            let grid = serde_json::to_value(self.grid).unwrap_or_default();
            return bad(format!(
                "preprocessing.max_gap_periods must be at least {shortest} (with grid = {grid})"
            ));
        }
        for (sensor_type, f) in &self.filters {
            SensorType::parse(sensor_type).map_err(|e| {
                mantis_runtime::Error::Config(format!("preprocessing.filters: {e}"))
            })?;
            f.band()?;
            if !(1..=10).contains(&f.order) {
                return bad(format!(
                    "preprocessing.filters.{sensor_type}.order must be within 1..=10"
                ));
            }
            if !f.zero_phase && hop < self.window_secs {
                return bad(format!(
                    "preprocessing.filters.{sensor_type}: a streaming filter (zero_phase = false) needs tumbling windows"
                ));
            }
        }
        Ok(())
    }
}

impl FilterSettings {
    fn band(&self) -> Result<FilterBand> {
        let need = |v: Option<f64>, what: &str| {
            v.filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| {
                mantis_runtime::Error::Config(format!(
                    "a {:?} filter needs a positive `{what}`",
                    self.kind
                ))
            })
        };
        Ok(match self.kind {
            FilterKind::Lowpass => FilterBand::LowPass {
                cutoff_hz: need(self.cutoff_hz, "cutoff_hz")?,
            },
            FilterKind::Highpass => FilterBand::HighPass {
                cutoff_hz: need(self.cutoff_hz, "cutoff_hz")?,
            },
            FilterKind::Bandpass => FilterBand::BandPass {
                low_hz: need(self.low_hz, "low_hz")?,
                high_hz: need(self.high_hz, "high_hz")?,
            },
        })
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "preprocessing";

/// Builds the preprocessing service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    config.validate()?;
    let health = App::health("preprocessing", &infra);
    health.set_detail("windowSecs", serde_json::json!(config.window_secs));
    health.set_detail(
        "hopSecs",
        serde_json::json!(config.hop_secs.unwrap_or(config.window_secs)),
    );
    health.set_detail(
        "allowedLatenessSecs",
        serde_json::json!(config.allowed_lateness_secs),
    );
    let retention = infra.settings.retention.clone();
    // Checked with the rest of `[infra]` by `Infra::connect` too, but not by an infrastructure
    // built in process (tests, benches): a zero period would spin the expiry.
    retention
        .validate()
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let store = infra.store.clone();
    let handler = handler::WindowHandler::new(&infra, config.clone());
    let app = App::new("preprocessing", &config.bind, axum::Router::new(), health)
        .await?
        .worker("consumer", move |shutdown| {
            run_consumer(infra, GROUP, handler, shutdown)
        })
        .worker("retention", move |shutdown| {
            expire(store, retention, shutdown)
        });
    Ok(app)
}

/// Deletes the time series older than `retention` keeps them, a minute after start and then
/// every `retention.every_hours`, until `shutdown` (which also ends a pass in progress: what it
/// deleted stays deleted, the rest waits for the next pass). Idles when the database expires
/// them itself (TimescaleDB).
async fn expire(
    store: std::sync::Arc<dyn mantis_store::Store>,
    retention: mantis_store::Retention,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let mut wait = std::time::Duration::from_secs(60);
    let holder = mantis_runtime::lease_holder(None, "preprocessing");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
        let every = std::time::Duration::from_secs(3600 * u64::from(retention.every_hours));
        wait = every;
        // One replica deletes at a time, and one pass per period among them all (each
        // replica's timer runs apart): the others would run the same deletes against the
        // same database.
        let work = async {
            if mantis_runtime::noted_within(store.as_ref(), RETENTION_STATE, every / 2).await {
                return Ok(Some(Vec::new()));
            }
            let pass = store
                .expire_time_series(&retention, chrono::Utc::now())
                .await?;
            mantis_runtime::note_time(store.as_ref(), RETENTION_STATE).await;
            Ok(pass)
        };
        let pass = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            pass = mantis_runtime::while_holding(
                store.as_ref(),
                RETENTION_LEASE,
                &holder,
                std::time::Duration::from_secs(300),
                work,
            ) => pass,
        };
        let pass = match pass {
            Ok(Some(pass)) => pass,
            Ok(None) => {
                tracing::debug!("another replica expires the time series");
                continue;
            }
            Err(e) => Err(e),
        };
        match pass {
            Ok(None) => {
                tracing::info!(store = %store.describe(), "the database expires the time series itself");
                // A worker that ends stops the service: idle until shutdown.
                shutdown.cancelled().await;
                return Ok(());
            }
            Ok(Some(report)) => {
                for e in report.iter().filter(|e| e.rows > 0) {
                    metrics::counter!("mantis_rows_expired_total", "table" => e.table)
                        .increment(e.rows);
                    tracing::info!(table = e.table, rows = e.rows, "expired rows deleted");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "expiring old time series failed; trying again at the next pass");
            }
        }
    }
}

/// The lease of the replica expiring the time series.
const RETENTION_LEASE: &str = "preprocessing.retention";
/// When the last pass ended ([`mantis_runtime::note_time`]): a replica whose timer comes
/// within half a period of it skips its pass.
const RETENTION_STATE: &str = "preprocessing.retention.last";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_refused_with_the_key_named() {
        let mut c = Config {
            hop_secs: Some(40),
            ..Config::default()
        };
        assert!(
            c.validate()
                .expect_err("hop > length")
                .to_string()
                .contains("hop_secs")
        );
        c.hop_secs = Some(10);
        c.filters.insert(
            "VIBRATION".into(),
            FilterSettings {
                order: 4,
                kind: FilterKind::Highpass,
                cutoff_hz: Some(2.0),
                low_hz: None,
                high_hz: None,
                zero_phase: false,
            },
        );
        assert!(
            c.validate()
                .expect_err("streaming + hopping")
                .to_string()
                .contains("tumbling")
        );
        c.filters.insert(
            "SMELL".into(),
            FilterSettings {
                order: 4,
                kind: FilterKind::Lowpass,
                cutoff_hz: None,
                low_hz: None,
                high_hz: None,
                zero_phase: true,
            },
        );
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
        // A gap limit a gap could slip under between two points within the jitter tolerated.
        let c = Config {
            max_gap_periods: 1.2,
            ..Config::default()
        };
        let e = c.validate().expect_err("too short").to_string();
        assert!(
            e.contains("max_gap_periods must be at least 1.5 (with grid = \"readings\")"),
            "{e}"
        );
        let c = Config {
            max_gap_periods: 1.2,
            grid: Grid::FirstReading,
            ..Config::default()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_sensors_sampling_phase_does_not_change_its_windows() {
        // A 1 Hz sensor whose clock runs half a second off the whole seconds, as a device or a
        // polled connector may: alternating values, all of its power at the top of the band.
        let t: Vec<f64> = (0..10).map(|k| 1_000.5 + k as f64).collect();
        let x: Vec<f64> = (0..10)
            .map(|k| if k % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let window = |grid: Grid, t: &[f64]| {
            let c = Config {
                grid,
                hampel: None,
                ..Config::default()
            };
            let mut p = mantis_dsp::pipeline::Preprocessor::new(
                c.preprocess_config(SensorType::Vibration, 1.0)
                    .expect("config"),
            )
            .expect("preprocessor");
            let mut out = mantis_dsp::pipeline::Preprocessed::default();
            p.process(t, &x, &mut out).expect("processed");
            out.signal.values
        };
        // The default grid goes through the readings: the window is the signal as sampled.
        assert_eq!(window(Grid::default(), &t), x);
        // On the absolute grid every value is the mean of two neighbours: nothing left.
        let absolute = window(Grid::Absolute, &t);
        assert_eq!(absolute.len(), 9);
        assert!(absolute.iter().all(|v| v.abs() < 1e-12), "{absolute:?}");

        // Stamped when a poll is answered, up to 0.2 s late (the first reading the latest):
        // the default grid keeps the values as sampled; the first reading's would mix each
        // with its neighbour.
        let late = [0.2, 0.02, 0.1, 0.0, 0.15, 0.05, 0.01, 0.12, 0.03, 0.08];
        let jittered: Vec<f64> = t.iter().zip(late).map(|(t, d)| t + d).collect();
        assert_eq!(window(Grid::default(), &jittered), x);
        let first = window(Grid::FirstReading, &jittered);
        assert!(first[1..].iter().all(|v| v.abs() < 0.95), "{first:?}");
    }

    #[test]
    fn a_filter_is_configured_per_sensor_type() {
        let mut c = Config::default();
        c.filters.insert(
            "VIBRATION".into(),
            FilterSettings {
                order: 2,
                kind: FilterKind::Bandpass,
                cutoff_hz: None,
                low_hz: Some(10.0),
                high_hz: Some(1000.0),
                zero_phase: true,
            },
        );
        let vib = c
            .preprocess_config(SensorType::Vibration, 25_600.0)
            .expect("config");
        assert!(vib.filter.is_some());
        let tmp = c
            .preprocess_config(SensorType::Temperature, 1.0)
            .expect("config");
        assert!(tmp.filter.is_none());
        assert_eq!(tmp.resample.max_gap_s, 5.0);
    }
}
