//! From feature vectors to the rows the RUL models read.
//!
//! One row per window of an asset: the features of every sensor of the asset for that window,
//! side by side. Columns are named after the sensor's type, not its code, so one model serves
//! every asset of a type: `vibration.rms`, `temperature.mean`; an asset with two sensors of a
//! type names the second (in sensor-code order) `vibration#2.rms`. One row is one *cycle* of
//! the in-platform model: RUL is counted in rows of the asset, each one window step (the hop)
//! of its life.

use chrono::{DateTime, Utc};
use mantis_domain::{Asset, AssetId, FeatureVector, Fleet, Sensor, SensorId};
use mantis_rul_model::tree::CycleRow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// How an asset's sensors map to columns.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetLayout {
    /// The asset.
    pub asset_id: AssetId,
    /// Its code (for unit names and logs).
    pub code: String,
    /// Its tenant's assets of its type: the scope of the models that serve it.
    pub fleet: Fleet,
    /// Column prefix of each sensor.
    pub prefixes: BTreeMap<SensorId, String>,
    /// Code of each sensor (for operators: which sensor a row waits for).
    pub codes: BTreeMap<SensorId, String>,
}

impl AssetLayout {
    /// The layout of `asset` with `sensors` (any order).
    pub fn new(asset: &Asset, sensors: &[Sensor]) -> Self {
        let mut sorted: Vec<&Sensor> = sensors.iter().filter(|s| s.asset_id == asset.id).collect();
        sorted.sort_by(|a, b| a.code.cmp(&b.code));
        let mut seen: HashMap<String, usize> = HashMap::new();
        let codes = sorted.iter().map(|s| (s.id, s.code.clone())).collect();
        let prefixes = sorted
            .into_iter()
            .map(|s| {
                let base = s.sensor_type.as_str().to_ascii_lowercase();
                let n = seen.entry(base.clone()).or_insert(0);
                *n += 1;
                let prefix = if *n == 1 { base } else { format!("{base}#{n}") };
                (s.id, prefix)
            })
            .collect();
        Self {
            asset_id: asset.id,
            code: asset.code.clone(),
            fleet: asset.fleet(),
            prefixes,
            codes,
        }
    }

    /// Whether `sensor` belongs to the asset.
    pub fn has_sensor(&self, sensor: SensorId) -> bool {
        self.prefixes.contains_key(&sensor)
    }

    /// The number of sensors a complete row has.
    pub fn sensor_count(&self) -> usize {
        self.prefixes.len()
    }
}

/// Features that describe the window, not the machine: never model inputs.
const NOT_INPUTS: [&str; 1] = [FeatureVector::SAMPLE_COUNT];

/// One window of an asset, as far as its sensors have reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Window start.
    pub window_start: DateTime<Utc>,
    /// Window end.
    pub window_end: DateTime<Utc>,
    /// Column → value.
    pub values: BTreeMap<String, f64>,
    /// The sensors that reported.
    pub sensors: BTreeSet<SensorId>,
}

impl Row {
    /// Whether every sensor of `layout` reported.
    pub fn is_complete(&self, layout: &AssetLayout) -> bool {
        self.sensors.len() >= layout.sensor_count()
    }

    /// The model row of this window: `columns` and `settings` in order, NaN where missing.
    pub fn cycle(&self, columns: &[String], settings: &[String]) -> CycleRow {
        let pick = |names: &[String]| {
            names
                .iter()
                .map(|c| self.values.get(c).copied().unwrap_or(f64::NAN))
                .collect()
        };
        CycleRow {
            settings: pick(settings),
            values: pick(columns),
        }
    }
}

/// An asset's rows by window start.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    rows: BTreeMap<DateTime<Utc>, Row>,
}

impl Rows {
    /// No rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the features of `fv` (a sensor of `layout`) to its window's row; returns that
    /// window's start. A sensor that is not the layout's is ignored (`None`).
    pub fn merge(&mut self, layout: &AssetLayout, fv: &FeatureVector) -> Option<DateTime<Utc>> {
        let prefix = layout.prefixes.get(&fv.sensor_id)?;
        let row = self.rows.entry(fv.window_start).or_insert_with(|| Row {
            window_start: fv.window_start,
            window_end: fv.window_end,
            values: BTreeMap::new(),
            sensors: BTreeSet::new(),
        });
        row.window_end = row.window_end.max(fv.window_end);
        row.sensors.insert(fv.sensor_id);
        for (name, value) in &fv.features {
            if NOT_INPUTS.contains(&name.as_str()) {
                continue;
            }
            row.values.insert(format!("{prefix}.{name}"), *value);
        }
        Some(fv.window_start)
    }

    /// Whether the row starting at `start` is complete once `sensor` (one of `layout`'s) has
    /// reported in it.
    pub fn completes(&self, layout: &AssetLayout, start: DateTime<Utc>, sensor: SensorId) -> bool {
        let (reported, has) = self.rows.get(&start).map_or((0, false), |r| {
            (r.sensors.len(), r.sensors.contains(&sensor))
        });
        reported + usize::from(!has) >= layout.sensor_count()
    }

    /// The row starting at `start`.
    pub fn get(&self, start: DateTime<Utc>) -> Option<&Row> {
        self.rows.get(&start)
    }

    /// The last `n` rows starting at or before `start`, oldest first.
    pub fn last_until(&self, start: DateTime<Utc>, n: usize) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self
            .rows
            .range(..=start)
            .rev()
            .take(n)
            .map(|(_, r)| r)
            .collect();
        rows.reverse();
        rows
    }

    /// Keeps the newest `n` rows.
    pub fn keep_last(&mut self, n: usize) {
        while self.rows.len() > n {
            self.rows.pop_first();
        }
    }

    /// Keeps the oldest `n` rows.
    pub fn keep_first(&mut self, n: usize) {
        while self.rows.len() > n {
            self.rows.pop_last();
        }
    }

    /// Whether a window starting at `start` lies more than two window lengths after the newest
    /// row: windows in between were handled elsewhere (another replica of the consumer group
    /// held the asset's partition for a while), so the rows are no longer the asset's recent
    /// history and must be read again from the store.
    pub fn skips_to(&self, start: DateTime<Utc>) -> bool {
        self.rows.last_key_value().is_some_and(|(last, row)| {
            let length = (row.window_end - row.window_start).max(chrono::Duration::milliseconds(1));
            start - *last > length * 2
        })
    }

    /// The median step between the starts of consecutive rows (the hop), measured: `None`
    /// with fewer than two rows.
    pub fn step_secs(&self) -> Option<f64> {
        let starts: Vec<DateTime<Utc>> = self.rows.keys().copied().collect();
        median_positive(starts.windows(2).map(|w| secs(w[0], w[1])).collect())
    }

    /// The start of the newest row.
    pub fn last_start(&self) -> Option<DateTime<Utc>> {
        self.rows.last_key_value().map(|(start, _)| *start)
    }

    /// The rows starting before `start`, oldest first.
    pub fn before(&self, start: DateTime<Utc>) -> impl Iterator<Item = &Row> {
        self.rows.range(..start).map(|(_, r)| r)
    }

    /// All rows, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// When each sensor of an asset last reported (the start of the newest window seen from it),
/// how often it reports, and the asset's newest complete row: to tell a sensor that fell silent
/// (or never reported) from one that merely lags the others or reports rarely, and sensors
/// whose windows never line up.
#[derive(Clone, Debug, Default)]
pub struct SensorWatch {
    newest: BTreeMap<SensorId, DateTime<Utc>>,
    /// The last few steps between a sensor's windows, in seconds.
    gaps: BTreeMap<SensorId, VecDeque<f64>>,
    first: Option<DateTime<Utc>>,
    complete: Option<DateTime<Utc>>,
}

/// Steps between a sensor's windows remembered (their median is its usual step).
const GAPS_KEPT: usize = 5;

/// A sensor is silent once it is further behind than this many of its usual steps (and than
/// the asset's span); a window this many usual steps after its previous one may be a pause.
const GAPS_ALLOWED: i32 = 3;

impl SensorWatch {
    /// What `rows` of `layout`'s asset tell (each sensor's newest window among them, its steps,
    /// the newest complete row). With `span`, a pause of the asset among them moves what was
    /// seen on as [`SensorWatch::saw`] does; without, the times are the rows' own.
    pub fn from_rows(rows: &Rows, layout: &AssetLayout, span: Option<chrono::Duration>) -> Self {
        let mut watch = Self::default();
        for row in rows.iter() {
            for sensor in &row.sensors {
                match span {
                    Some(span) => watch.saw(*sensor, row.window_start, span),
                    None => watch.note(*sensor, row.window_start, true),
                }
            }
            if row.is_complete(layout) {
                watch.completed(row.window_start);
            }
        }
        watch
    }

    /// Adds what `other` saw (the later time of each sensor, the earlier first window; the
    /// steps of a sensor this watch has none of).
    pub fn absorb(&mut self, other: &Self) {
        for (sensor, start) in &other.newest {
            self.note(*sensor, *start, false);
        }
        for (sensor, gaps) in &other.gaps {
            self.gaps.entry(*sensor).or_insert_with(|| gaps.clone());
        }
        if let Some(first) = other.first {
            self.first = Some(self.first.map_or(first, |f| f.min(first)));
        }
        if let Some(complete) = other.complete {
            self.completed(complete);
        }
    }

    /// The row starting at `start` is complete.
    pub fn completed(&mut self, start: DateTime<Utc>) {
        self.complete = self.complete.max(Some(start));
    }

    /// Whether every sensor reports (none is [`SensorWatch::silent`]) yet no row has completed
    /// for more than `span` (since the first window seen when none has): their windows do not
    /// line up (different hops, start times that differ).
    pub fn unaligned(&self, span: chrono::Duration) -> bool {
        // Measured from the sensor furthest behind: a sensor that merely lags has not reached
        // the rows the others left incomplete yet.
        let behind = self.newest.values().min().copied();
        behind
            .zip(self.complete.or(self.first))
            .is_some_and(|(behind, since)| behind - since > span)
    }

    /// `sensor` reported the window starting at `start` (an older window than one seen before,
    /// a backlog, changes nothing). A window more than `span` after every window seen, and
    /// well after the sensor's own previous one for how often it reports, is the asset
    /// starting again after a pause (a shutdown, a weekend): what was seen moves on with it,
    /// so the sensors that have not reported since are as far behind as before the pause, not
    /// silent for its length.
    pub fn saw(&mut self, sensor: SensorId, start: DateTime<Utc>, span: chrono::Duration) {
        let Some(newest) = self.newest.values().max().copied() else {
            self.note(sensor, start, true);
            return;
        };
        let own_step = self.newest.get(&sensor).map(|before| start - *before);
        let usual = self.usual_step(sensor);
        let paused = start - newest > span
            && match (own_step, usual) {
                (Some(own), Some(usual)) => own > usual * GAPS_ALLOWED,
                _ => true,
            };
        if !paused {
            self.note(sensor, start, true);
            return;
        }
        let pause = start - newest;
        let moved = |t: DateTime<Utc>| t.checked_add_signed(pause).unwrap_or(start).min(start);
        for seen in self.newest.values_mut() {
            *seen = moved(*seen);
        }
        self.first = self.first.map(moved);
        self.complete = self.complete.map(moved);
        // Its step over the pause is not how often it reports.
        self.note(sensor, start, false);
    }

    /// `sensor` reported the window starting at `start`, taken as it is (no pause is judged;
    /// `step`: the step from its previous window counts as how often it reports).
    pub fn note(&mut self, sensor: SensorId, start: DateTime<Utc>, step: bool) {
        match self.newest.get_mut(&sensor) {
            Some(newest) if start > *newest => {
                if step {
                    let gaps = self.gaps.entry(sensor).or_default();
                    gaps.push_back(secs(*newest, start));
                    if gaps.len() > GAPS_KEPT {
                        gaps.pop_front();
                    }
                }
                *newest = start;
            }
            Some(_) => {}
            None => {
                self.newest.insert(sensor, start);
            }
        }
        self.first = Some(self.first.map_or(start, |f| f.min(start)));
    }

    /// The median of `sensor`'s last steps between windows.
    fn usual_step(&self, sensor: SensorId) -> Option<chrono::Duration> {
        let gaps = self.gaps.get(&sensor)?.iter().copied().collect();
        median_positive(gaps).map(|s| chrono::Duration::milliseconds((s * 1000.0) as i64))
    }

    /// The codes of `layout`'s sensors whose newest window is further behind the asset's
    /// newest one than `span` and than [`GAPS_ALLOWED`] of their usual steps (one that never
    /// reported: once the windows seen cover more than `span`), sorted.
    pub fn silent(&self, layout: &AssetLayout, span: chrono::Duration) -> Vec<String> {
        let Some(newest) = self.newest.values().max().copied() else {
            return Vec::new();
        };
        let mut silent: Vec<String> = layout
            .codes
            .iter()
            .filter(|(id, _)| {
                let allowed = self
                    .usual_step(**id)
                    .map_or(span, |usual| span.max(usual * GAPS_ALLOWED));
                self.newest
                    .get(id)
                    .copied()
                    .or(self.first)
                    .is_some_and(|last| newest - last > allowed)
            })
            .map(|(_, code)| code.clone())
            .collect();
        silent.sort();
        silent
    }
}

/// The rows a prediction reads: the life's first rows that precede the window (what a model
/// with an early-life baseline reads besides the window; `early` is empty otherwise), then
/// the window, oldest first.
pub fn with_early<'a>(early: &'a Rows, window: Vec<&'a Row>) -> Vec<&'a Row> {
    let Some(first) = window.first() else {
        return window;
    };
    let mut rows: Vec<&Row> = early.before(first.window_start).collect();
    rows.extend(window);
    rows
}

/// Seconds one row moves an asset on, over `runs` (each one asset's rows of one life): the
/// median step from a window's start to the next one's, the hop (tumbling windows step by
/// their length, hopping windows by less, so a row is not a window length of the machine's
/// life). Without two rows in a run to measure it, the median window length; 1 when there is
/// nothing to measure. The models count rows: this turns rows into seconds (and cycles).
pub fn row_step_secs<'a>(runs: impl IntoIterator<Item = &'a Rows>) -> f64 {
    span_step_secs(
        runs.into_iter()
            .map(|rows| rows.iter().map(|r| (r.window_start, r.window_end))),
    )
}

/// [`row_step_secs`] over each run's windows as `(start, end)`, oldest first.
pub fn span_step_secs<R>(runs: impl IntoIterator<Item = R>) -> f64
where
    R: IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
{
    let (mut steps, mut lengths) = (Vec::new(), Vec::new());
    for run in runs {
        let mut previous = None;
        for (start, end) in run {
            if let Some(before) = previous {
                steps.push(secs(before, start));
            }
            previous = Some(start);
            lengths.push(secs(start, end));
        }
    }
    median_positive(steps)
        .or_else(|| median_positive(lengths))
        .unwrap_or(1.0)
}

/// Seconds from `from` to `to`.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// The median of the positive values of `v` (`None` without any).
fn median_positive(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|s| *s > 0.0);
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::{Criticality, SensorType, TenantId};

    fn asset() -> Asset {
        Asset {
            id: AssetId(uuid::Uuid::from_u128(1)),
            tenant_id: TenantId::DEFAULT,
            code: "MTR-001".into(),
            name: "motor".into(),
            asset_type: "motor".into(),
            location: String::new(),
            criticality: Criticality::High,
        }
    }

    fn sensor(n: u128, code: &str, sensor_type: SensorType) -> Sensor {
        Sensor {
            id: SensorId(uuid::Uuid::from_u128(n)),
            asset_id: AssetId(uuid::Uuid::from_u128(1)),
            code: code.into(),
            sensor_type,
            unit: "x".into(),
            min_value: 0.0,
            max_value: 100.0,
            sampling_rate_hz: 1.0,
        }
    }

    fn fv(sensor: &Sensor, start_s: i64, rms: f64) -> FeatureVector {
        FeatureVector {
            asset_id: sensor.asset_id,
            sensor_id: sensor.id,
            sensor_type: sensor.sensor_type,
            window_start: DateTime::from_timestamp(start_s, 0).expect("time"),
            window_end: DateTime::from_timestamp(start_s + 10, 0).expect("time"),
            feature_set_version: "1".into(),
            features: BTreeMap::from([
                ("rms".to_owned(), rms),
                (FeatureVector::SAMPLE_COUNT.to_owned(), 10.0),
            ]),
        }
    }

    #[test]
    fn columns_are_named_by_sensor_type_and_a_second_sensor_of_a_type_is_numbered() {
        let sensors = [
            sensor(3, "B-VIB", SensorType::Vibration),
            sensor(2, "A-VIB", SensorType::Vibration),
            sensor(4, "C-TMP", SensorType::Temperature),
        ];
        let layout = AssetLayout::new(&asset(), &sensors);
        assert_eq!(layout.prefixes[&sensors[1].id], "vibration");
        assert_eq!(layout.prefixes[&sensors[0].id], "vibration#2");
        assert_eq!(layout.prefixes[&sensors[2].id], "temperature");

        let mut rows = Rows::new();
        for s in &sensors {
            rows.merge(&layout, &fv(s, 0, 1.5));
        }
        let start = DateTime::from_timestamp(0, 0).expect("time");
        let row = rows.get(start).expect("row");
        assert!(row.is_complete(&layout));
        assert_eq!(
            row.values.keys().collect::<Vec<_>>(),
            ["temperature.rms", "vibration#2.rms", "vibration.rms"]
        );
        let cycle = row.cycle(
            &["vibration.rms".into(), "missing.x".into()],
            &["temperature.rms".into()],
        );
        assert_eq!(cycle.settings, vec![1.5]);
        assert_eq!(cycle.values[0], 1.5);
        assert!(cycle.values[1].is_nan());
        assert_eq!(row_step_secs([&rows]), 10.0);
    }

    /// A row is as much of the machine's life as the windows' hop: 30 s windows every 10 s
    /// move it on by 10 s a row, not 30 (which would state its RUL three times too long).
    #[test]
    fn a_row_spans_the_windows_hop() {
        let s = sensor(2, "A-VIB", SensorType::Vibration);
        let layout = AssetLayout::new(&asset(), std::slice::from_ref(&s));
        let hopping = |starts: &[i64]| {
            let mut rows = Rows::new();
            for start in starts {
                let mut v = fv(&s, *start, 1.0);
                v.window_end = v.window_start + chrono::Duration::seconds(30);
                rows.merge(&layout, &v);
            }
            rows
        };
        // A missing window (40) does not change the step; two runs are measured apart.
        let run = hopping(&[0, 10, 20, 30, 50, 60]);
        let later = hopping(&[1_000, 1_010, 1_020]);
        assert_eq!(row_step_secs([&run]), 10.0);
        assert_eq!(row_step_secs([&run, &later]), 10.0);
        // One row: its length; none: 1.
        assert_eq!(row_step_secs([&hopping(&[0])]), 30.0);
        assert_eq!(row_step_secs([&Rows::new()]), 1.0);
        // Measured only: one row has no step.
        assert_eq!(run.step_secs(), Some(10.0));
        assert_eq!(hopping(&[0]).step_secs(), None);
    }

    #[test]
    fn a_sensor_is_silent_once_it_lags_the_others_by_more_than_the_span() {
        let (vib, tmp, cur) = (
            sensor(1, "P-VIB", SensorType::Vibration),
            sensor(2, "P-TMP", SensorType::Temperature),
            sensor(3, "P-CUR", SensorType::Current),
        );
        let layout = AssetLayout::new(&asset(), &[vib.clone(), tmp.clone(), cur.clone()]);
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        let span = chrono::Duration::seconds(720);
        let mut watch = SensorWatch::default();
        assert!(watch.silent(&layout, span).is_empty(), "nothing seen yet");
        watch.saw(vib.id, t(0), span);
        watch.saw(tmp.id, t(0), span);
        watch.saw(vib.id, t(720), span);
        // Lagging by the span exactly: not yet; the current sensor, never seen, neither.
        assert!(watch.silent(&layout, span).is_empty());
        watch.saw(vib.id, t(730), span);
        assert_eq!(watch.silent(&layout, span), ["P-CUR", "P-TMP"]);
        // A backlog of old windows changes nothing; a new one clears the sensor.
        watch.saw(vib.id, t(10), span);
        watch.saw(tmp.id, t(5), span);
        assert_eq!(watch.silent(&layout, span), ["P-CUR", "P-TMP"]);
        watch.saw(tmp.id, t(700), span);
        assert_eq!(watch.silent(&layout, span), ["P-CUR"]);

        // From stored rows: each sensor's newest window among them.
        let mut rows = Rows::new();
        rows.merge(&layout, &fv(&tmp, 0, 1.0));
        for start in (0..=1_000).step_by(10) {
            rows.merge(&layout, &fv(&vib, start, 1.0));
            rows.merge(&layout, &fv(&cur, start, 1.0));
        }
        let rebuilt = SensorWatch::from_rows(&rows, &layout, Some(span));
        assert_eq!(rebuilt.silent(&layout, span), ["P-TMP"]);
        // A rebuilt watch keeps what the one before it saw.
        let mut kept = SensorWatch::default();
        kept.saw(tmp.id, t(990), span);
        kept.absorb(&rebuilt);
        assert!(kept.silent(&layout, span).is_empty());
    }

    #[test]
    fn a_sensor_that_reports_rarely_is_not_silent_and_does_not_hide_a_dead_one() {
        let (vib, tmp) = (
            sensor(1, "P-VIB", SensorType::Vibration),
            sensor(2, "P-TMP", SensorType::Temperature),
        );
        let layout = AssetLayout::new(&asset(), &[vib.clone(), tmp.clone()]);
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        // Windows of 1 s; the temperature is polled every two minutes.
        let span = chrono::Duration::seconds(72);
        let mut watch = SensorWatch::default();
        for s in 0..=719 {
            watch.saw(vib.id, t(s), span);
            if s % 120 == 0 {
                watch.saw(tmp.id, t(s), span);
            }
        }
        assert!(
            watch.silent(&layout, span).is_empty(),
            "119 s behind: its usual"
        );
        // The vibration dies; the temperature goes on every two minutes: not a pause.
        for s in [720, 840, 960] {
            watch.saw(tmp.id, t(s), span);
        }
        assert_eq!(watch.silent(&layout, span), ["P-VIB"]);
    }

    #[test]
    fn sensors_whose_windows_never_line_up_are_told() {
        let (vib, tmp) = (
            sensor(1, "P-VIB", SensorType::Vibration),
            sensor(2, "P-TMP", SensorType::Temperature),
        );
        let layout = AssetLayout::new(&asset(), &[vib.clone(), tmp.clone()]);
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        let span = chrono::Duration::seconds(100);
        let mut watch = SensorWatch::default();
        // Both report, 5 s apart, every 10 s: never the same window.
        for k in 0..10 {
            watch.saw(vib.id, t(k * 10), span);
            watch.saw(tmp.id, t(k * 10 + 5), span);
        }
        assert!(watch.silent(&layout, span).is_empty());
        assert!(!watch.unaligned(span), "95 s since the first window");
        watch.saw(vib.id, t(110), span);
        assert!(
            !watch.unaligned(span),
            "the temperature has not gone further yet"
        );
        watch.saw(tmp.id, t(115), span);
        assert!(watch.unaligned(span));
        watch.completed(t(110));
        assert!(!watch.unaligned(span));

        let mut rows = Rows::new();
        for (s, start) in [(&vib, 0), (&tmp, 0), (&vib, 10)] {
            rows.merge(&layout, &fv(s, start, 1.0));
        }
        let rebuilt = SensorWatch::from_rows(&rows, &layout, Some(span));
        assert_eq!(rebuilt.complete, Some(t(0)));
        // One sensor lagging the other by less than the span, no row in common among those
        // read (each sensor's newest after a restart): not reported.
        let span = chrono::Duration::seconds(720);
        let mut rows = Rows::new();
        for k in 0..=30 {
            rows.merge(&layout, &fv(&vib, 700 + k * 10, 1.0));
            rows.merge(&layout, &fv(&tmp, 200 + k * 10, 1.0));
        }
        let lagging = SensorWatch::from_rows(&rows, &layout, Some(span));
        assert!(lagging.silent(&layout, span).is_empty());
        assert!(!lagging.unaligned(span));
    }

    #[test]
    fn a_pause_of_the_whole_asset_is_not_a_silence() {
        let (vib, tmp) = (
            sensor(1, "P-VIB", SensorType::Vibration),
            sensor(2, "P-TMP", SensorType::Temperature),
        );
        let layout = AssetLayout::new(&asset(), &[vib.clone(), tmp.clone()]);
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        let span = chrono::Duration::seconds(720);
        let mut watch = SensorWatch::default();
        for k in 0..10 {
            watch.saw(vib.id, t(k * 10), span);
            watch.saw(tmp.id, t(k * 10), span);
            watch.completed(t(k * 10));
        }
        // Two days later the vibration reports first: the temperature is not silent.
        let monday = 2 * 86_400;
        watch.saw(vib.id, t(monday), span);
        assert!(watch.silent(&layout, span).is_empty());
        assert!(!watch.unaligned(span));
        // A sensor silent before the pause stays as far behind after it.
        let mut watch = SensorWatch::default();
        watch.saw(tmp.id, t(0), span);
        for k in 0..=80 {
            watch.saw(vib.id, t(k * 10), span);
        }
        assert_eq!(watch.silent(&layout, span), ["P-TMP"]);
        watch.saw(vib.id, t(monday), span);
        assert_eq!(watch.silent(&layout, span), ["P-TMP"]);
        // Rebuilt from rows across the pause alike.
        let mut rows = Rows::new();
        for start in [0, 10, 20] {
            rows.merge(&layout, &fv(&vib, start, 1.0));
            rows.merge(&layout, &fv(&tmp, start, 1.0));
        }
        rows.merge(&layout, &fv(&vib, monday, 1.0));
        assert!(
            SensorWatch::from_rows(&rows, &layout, Some(span))
                .silent(&layout, span)
                .is_empty()
        );
    }

    #[test]
    fn rows_fill_per_window_and_the_newest_are_kept() {
        let s = sensor(2, "A-VIB", SensorType::Vibration);
        let other = sensor(9, "X", SensorType::Current);
        let layout = AssetLayout::new(&asset(), std::slice::from_ref(&s));
        let mut rows = Rows::new();
        for i in 0..10 {
            assert!(rows.merge(&layout, &fv(&s, i * 10, i as f64)).is_some());
        }
        assert!(rows.merge(&layout, &fv(&other, 0, 1.0)).is_none());
        let last = rows.last_until(DateTime::from_timestamp(50, 0).expect("time"), 3);
        assert_eq!(
            last.iter()
                .map(|r| r.values["vibration.rms"])
                .collect::<Vec<_>>(),
            vec![3.0, 4.0, 5.0]
        );
        rows.keep_last(4);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows.iter().next().map(|r| r.values["vibration.rms"]),
            Some(6.0)
        );
    }

    #[test]
    fn a_window_beyond_two_window_lengths_after_the_newest_row_skips_history() {
        let s = sensor(2, "A-VIB", SensorType::Vibration);
        let layout = AssetLayout::new(&asset(), std::slice::from_ref(&s));
        let mut rows = Rows::new();
        let at = |secs: i64| DateTime::from_timestamp(secs, 0).expect("time");
        assert!(!rows.skips_to(at(1_000)), "no rows: nothing to skip");
        rows.merge(&layout, &fv(&s, 100, 1.0)); // 10 s windows: [100, 110)
        assert!(!rows.skips_to(at(90)), "an older window (redelivered)");
        assert!(!rows.skips_to(at(110)), "the next window");
        assert!(!rows.skips_to(at(120)), "one window missing");
        assert!(rows.skips_to(at(121)), "more than two window lengths on");
    }

    #[test]
    fn a_prediction_reads_the_lifes_first_rows_before_its_window() {
        let s = sensor(2, "A-VIB", SensorType::Vibration);
        let layout = AssetLayout::new(&asset(), std::slice::from_ref(&s));
        let t = |secs| DateTime::from_timestamp(secs, 0).expect("time");
        let rms = |rows: &[&Row]| {
            rows.iter()
                .map(|r| r.values["vibration.rms"])
                .collect::<Vec<_>>()
        };
        let mut rows = Rows::new();
        let mut early = Rows::new();
        for i in [4, 0, 2, 1, 3, 5, 6, 7, 8, 9] {
            rows.merge(&layout, &fv(&s, i * 10, i as f64));
            early.merge(&layout, &fv(&s, i * 10, i as f64));
        }
        early.keep_first(3);
        assert_eq!(early.len(), 3);
        assert_eq!(early.last_start(), Some(t(20)));
        // A window far from the start: the first rows, then the window, no row twice.
        let input = with_early(&early, rows.last_until(t(90), 4));
        assert_eq!(rms(&input), vec![0.0, 1.0, 2.0, 6.0, 7.0, 8.0, 9.0]);
        // A window that overlaps the first rows: the history from the start, once.
        let input = with_early(&early, rows.last_until(t(30), 3));
        assert_eq!(rms(&input), vec![0.0, 1.0, 2.0, 3.0]);
        // Without a baseline (no first rows kept), only the window.
        let none = Rows::new();
        let input = with_early(&none, rows.last_until(t(90), 2));
        assert_eq!(rms(&input), vec![8.0, 9.0]);
        assert!(with_early(&early, Vec::new()).is_empty());
    }
}
