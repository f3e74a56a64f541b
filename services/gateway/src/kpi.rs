//! Maintenance KPIs per asset, per line and per shift: availability, MTBF, MTTR, downtime and
//! OEE, from the recorded maintenance events, the production counts and speed sensors.
//!
//! - A FAILURE starts a downtime; the next REPAIR or REPLACEMENT of the asset ends it (a failure
//!   not repaired yet is down until the end of the period).
//! - Planned stops (`/api/v1/planned-stops`: the asset's own and the whole plant's) are time
//!   the asset was not meant to run: the planned production time is the period less them, and
//!   a downtime counts only outside them (a failure over a weekend without shifts costs the
//!   hours from the first shift on).
//! - availability = 1 − downtime / planned production time (1 when the whole period was a
//!   planned stop); MTBF = uptime (planned production time less downtime) / failures; MTTR =
//!   repaired downtime / repaired failures (no failure: MTBF and MTTR are null).
//! - OEE = availability × performance × quality. Performance is ideal cycle × units ÷ run time
//!   over the production counts stating an ideal cycle time (run time: the time they last less
//!   the asset's downtime and planned stops within them; per shift, of the shift's hours), else
//!   the mean speed
//!   over the rated speed (a SPEED sensor's `maxValue`) when the asset has a speed sensor,
//!   else 1; quality is good ÷ all units of the production counts recorded for the period
//!   (per shift: those of the shift; a count over a shift's edge shared out by time), else 1.
//!   `oeeBasis` says which terms were measured. A group's performance is the mean over the
//!   assets it was measured for, its quality weighs its assets by the units they made, its
//!   availability and OEE are the means over its assets weighted by their planned production
//!   time (so a machine planned to stand still all period does not lift them).

use crate::api::{
    ApiResult, ApiState, Params, list_response, parse_id, tenant_asset, tenant_assets, time_range,
    wants_csv,
};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use mantis_domain::{
    Asset, AssetId, MaintenanceEvent, MaintenanceEventKind, PlannedStop, ProductionCount,
    ProductionTotals, Sensor, SensorId, SensorType, join_spans, subtract_spans,
};
use mantis_runtime::Problem;
use mantis_store::{ProductionPeriod, ProductionSpan, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One shift of the plant's day (`[[gateway.shifts]]`), in UTC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    /// Name shown ("A", "Night").
    pub name: String,
    /// Start time of day, `HH:MM` UTC; the shift lasts until the next one starts.
    pub start: String,
}

/// The default: three eight-hour shifts from 06:00 UTC.
pub fn default_shifts() -> Vec<ShiftConfig> {
    [("A", "06:00"), ("B", "14:00"), ("C", "22:00")]
        .into_iter()
        .map(|(n, s)| ShiftConfig {
            name: n.into(),
            start: s.into(),
        })
        .collect()
}

/// Parsed shifts, ordered by start.
#[derive(Clone, Debug)]
pub(crate) struct Shifts(Vec<(String, NaiveTime)>);

impl Shifts {
    pub(crate) fn parse(config: &[ShiftConfig]) -> Result<Self, String> {
        let mut shifts = Vec::new();
        for s in config {
            let t = NaiveTime::parse_from_str(&s.start, "%H:%M")
                .map_err(|_| format!("shift `{}`: start `{}` is not HH:MM", s.name, s.start))?;
            shifts.push((s.name.clone(), t));
        }
        shifts.sort_by_key(|(_, t)| *t);
        Ok(Self(shifts))
    }

    /// Every shift instance overlapping `[from, to)`, clipped to it.
    fn instances(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        if self.0.is_empty() {
            return out;
        }
        let mut day = from.date_naive() - chrono::Days::new(1);
        while let Some(start_of_day) = Utc
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .single()
        {
            if start_of_day >= to {
                break;
            }
            for (i, (name, start)) in self.0.iter().enumerate() {
                let begin = Utc.from_utc_datetime(&day.and_time(*start));
                let end = match self.0.get(i + 1) {
                    Some((_, next)) => Utc.from_utc_datetime(&day.and_time(*next)),
                    None => {
                        Utc.from_utc_datetime(&(day + chrono::Days::new(1)).and_time(self.0[0].1))
                    }
                };
                let (b, e) = (begin.max(from), end.min(to));
                if b < e {
                    out.push((name.clone(), b, e));
                }
            }
            day = day + chrono::Days::new(1);
        }
        out
    }
}

/// KPIs of one asset or of a group.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Kpi {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    asset_id: Option<AssetId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<String>,
    availability: f64,
    mtbf_hours: Option<f64>,
    mttr_hours: Option<f64>,
    failures: u32,
    /// Downtime outside planned stops, in hours (a group's: summed over its assets).
    downtime_hours: f64,
    /// Hours of the period in planned stops, the asset's own and the whole plant's (a
    /// group's: summed over its assets); the rest is the planned production time.
    planned_stop_hours: f64,
    /// Ideal cycle × units ÷ run time, or mean ÷ rated speed; none when neither is measured (a
    /// group's: the mean over the assets it was measured for).
    performance: Option<f64>,
    /// Good ÷ all units made in the period; none without production counts.
    quality: Option<f64>,
    /// Good units made in the period (fractional where a count over its edge was shared out).
    good_units: f64,
    /// Rejected units made in the period.
    rejected_units: f64,
    oee: f64,
    oee_basis: String,
    shifts: Vec<ShiftKpi>,
    /// What the performance rests on (for a group's `oeeBasis`).
    #[serde(skip)]
    performance_by: PerformanceBy,
}

/// What an asset's performance was measured by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum PerformanceBy {
    /// Production counts stating an ideal cycle time.
    IdealCycle,
    /// A speed sensor.
    Speed,
    /// Nothing: assumed 1.
    #[default]
    Assumed,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShiftKpi {
    shift: String,
    hours: f64,
    /// Hours of the shift's occurrences in planned stops (a group's: the mean over its assets).
    planned_stop_hours: f64,
    availability: f64,
    /// Ideal cycle × units ÷ run time of the counts of the shift's hours, else the asset's
    /// speed over the period; none when neither is measured (a group's: the mean over the
    /// assets it was measured for).
    performance: Option<f64>,
    /// Good ÷ all units made in the shift's hours; none without production counts then.
    quality: Option<f64>,
    good_units: f64,
    rejected_units: f64,
    oee: f64,
}

impl ShiftKpi {
    /// A shift of `hours` with nothing summed yet.
    fn empty(shift: String, hours: f64) -> Self {
        Self {
            shift,
            hours,
            planned_stop_hours: 0.0,
            availability: 0.0,
            performance: None,
            quality: None,
            good_units: 0.0,
            rejected_units: 0.0,
            oee: 0.0,
        }
    }
}

/// Downtime intervals, failures started in the period, repaired downtime, repairs.
type Downtimes = (Vec<(DateTime<Utc>, DateTime<Utc>)>, u32, Duration, u32);

/// Downtime intervals of one asset from its events (oldest first), clipped to `[from, to)`;
/// also how many failures started in the period and the repaired downtime.
fn downtimes(events: &[MaintenanceEvent], from: DateTime<Utc>, to: DateTime<Utc>) -> Downtimes {
    let mut sorted: Vec<&MaintenanceEvent> = events.iter().collect();
    // At one instant a failure comes first (the repair recorded with it ends its downtime),
    // then a replacement, a repair, an inspection.
    let rank = |k: MaintenanceEventKind| match k {
        MaintenanceEventKind::Failure => 0,
        MaintenanceEventKind::Replacement => 1,
        MaintenanceEventKind::Repair => 2,
        MaintenanceEventKind::Inspection => 3,
    };
    sorted.sort_by_key(|e| (e.occurred_at, rank(e.kind)));
    let mut intervals = Vec::new();
    let (mut failures, mut repaired, mut repaired_count) = (0u32, Duration::zero(), 0u32);
    let mut down_since: Option<DateTime<Utc>> = None;
    for e in sorted {
        match e.kind {
            MaintenanceEventKind::Failure => {
                if down_since.is_none() {
                    down_since = Some(e.occurred_at);
                    if e.occurred_at >= from && e.occurred_at < to {
                        failures += 1;
                    }
                }
            }
            MaintenanceEventKind::Repair | MaintenanceEventKind::Replacement => {
                if let Some(start) = down_since.take() {
                    let (b, en) = (start.max(from), e.occurred_at.min(to));
                    if b < en {
                        intervals.push((b, en));
                    }
                    // A repair at the failure's own instant tells no repair time (a failure
                    // found and mended by one work order, its failure time not given).
                    if start >= from && start < to && e.occurred_at > start {
                        repaired += e.occurred_at - start;
                        repaired_count += 1;
                    }
                }
            }
            MaintenanceEventKind::Inspection => {}
        }
    }
    if let Some(start) = down_since {
        let (b, en) = (start.max(from), to);
        if b < en {
            intervals.push((b, en));
        }
    }
    (intervals, failures, repaired, repaired_count)
}

/// Per asset and group of `periods` (shift instances, following one another; `groups` of
/// them), the seconds of its downtime within its counts stating an ideal cycle time: the
/// overlap of each downtime span (`spans`) with each such count found overlapping it
/// (`found`: index of the span, count), cut at the periods' edges.
fn downtime_within_counts(
    periods: &[ProductionPeriod],
    groups: usize,
    spans: &[ProductionSpan],
    found: &[(usize, ProductionCount)],
) -> HashMap<AssetId, Vec<f64>> {
    let mut down: HashMap<AssetId, Vec<f64>> = HashMap::new();
    for (i, count) in found {
        let Some(span) = spans.get(*i) else { continue };
        if count.ideal_cycle_seconds.is_none() || count.asset_id != span.asset_id {
            continue;
        }
        let (b, e) = (span.from.max(count.starts_at), span.to.min(count.ends_at));
        if b >= e {
            continue;
        }
        let per_group = down
            .entry(span.asset_id)
            .or_insert_with(|| vec![0.0; groups]);
        let first = periods.partition_point(|p| p.to <= b);
        for p in periods[first..].iter().take_while(|p| p.from < e) {
            let (pb, pe) = (p.from.max(b), p.to.min(e));
            if pb < pe
                && let Some(slot) = per_group.get_mut(p.group)
            {
                *slot += (pe - pb).num_milliseconds() as f64 / 1000.0;
            }
        }
    }
    down
}

fn overlap(
    intervals: &[(DateTime<Utc>, DateTime<Utc>)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Duration {
    intervals.iter().fold(Duration::zero(), |acc, (b, e)| {
        let (b, e) = ((*b).max(from), (*e).min(to));
        if b < e { acc + (e - b) } else { acc }
    })
}

fn hours(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 3_600_000.0
}

/// The speed sensor an asset's performance is measured by (the first SPEED sensor of its
/// `sensors` with a rated speed), if any.
fn speed_sensor(sensors: &[Sensor]) -> Option<&Sensor> {
    sensors
        .iter()
        .find(|s| s.sensor_type == SensorType::Speed && s.max_value > 0.0)
}

/// Each asset's performance in `[from, to)`: the mean of its speed sensor's readings over the
/// rated speed, for the assets with a speed sensor that has readings then; one query for all.
async fn performances(
    store: &dyn Store,
    sensors: &HashMap<AssetId, Vec<Sensor>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<HashMap<AssetId, f64>> {
    let speed: HashMap<SensorId, (AssetId, f64)> = sensors
        .iter()
        .filter_map(|(asset, its)| speed_sensor(its).map(|s| (s.id, (*asset, s.max_value))))
        .collect();
    let ids: Vec<SensorId> = speed.keys().copied().collect();
    Ok(store
        .mean_readings(&ids, from, to)
        .await?
        .into_iter()
        .filter(|(_, mean)| mean.is_finite())
        .filter_map(|(id, mean)| {
            speed
                .get(&id)
                .map(|(asset, rated)| (*asset, (mean / rated).clamp(0.0, 1.0)))
        })
        .collect())
}

/// Ten thousand events per asset cover decades of maintenance.
const EVENTS_PER_ASSET: u32 = 10_000;

/// Most planned stops a report reads (a year of two breaks a day on a hundred machines).
const STOPS_PER_REPORT: u32 = 100_000;

/// A report's shift instances within its period: (shift, start, end).
type Instances = [(String, DateTime<Utc>, DateTime<Utc>)];

/// A stretch of time.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Each asset's planned stops within `[from, to)` (of `stops`: the asset's own and the whole
/// plant's), as sorted, disjoint spans; assets without any are left out.
pub(crate) fn stopped(
    stops: &[PlannedStop],
    assets: impl IntoIterator<Item = AssetId>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> HashMap<AssetId, Vec<Span>> {
    let clip = |s: &PlannedStop| (s.starts_at.max(from), s.ends_at.min(to));
    let plant: Vec<_> = stops
        .iter()
        .filter(|s| s.asset_id.is_none())
        .map(clip)
        .collect();
    let mut own: HashMap<AssetId, Vec<Span>> = HashMap::new();
    for s in stops {
        if let Some(asset) = s.asset_id {
            own.entry(asset).or_default().push(clip(s));
        }
    }
    assets
        .into_iter()
        .filter_map(|id| {
            let mut spans = plant.clone();
            spans.extend(own.remove(&id).unwrap_or_default());
            let spans = join_spans(spans);
            (!spans.is_empty()).then_some((id, spans))
        })
        .collect()
}

/// The share of the `planned` hours not `down`: 1 when none were planned (nothing was to be
/// available).
fn available(down: f64, planned: f64) -> f64 {
    if planned > 0.0 {
        (1.0 - down / planned).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// `asset`'s KPIs over `from..to`, from its downtimes then (`downtime`, of its maintenance
/// events), its planned stops (`stopped`: sorted, disjoint, within the period), its speed's
/// share of the rated speed `speed`, the units it made per shift (`made[g]`: in the instances
/// of the shift `shifts[g]`; without shifts, `made[0]` in the whole period) and the time it was
/// down or stopped as planned within the counts stating an ideal cycle time per shift
/// (`down_timed[g]`, seconds).
#[allow(clippy::too_many_arguments)]
fn asset_kpi(
    instances: &Instances,
    shifts: &[String],
    asset: &Asset,
    downtime: &Downtimes,
    stopped: &[Span],
    speed: Option<f64>,
    made: &[ProductionTotals],
    down_timed: &[f64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Kpi {
    let (failures, repaired, repaired_count) = (downtime.1, downtime.2, downtime.3);
    // A downtime costs only the planned production time.
    let intervals = &subtract_spans(downtime.0.clone(), stopped);
    let period = to - from;
    let stop = overlap(stopped, from, to);
    let planned = period - stop;
    let down = overlap(intervals, from, to);
    let availability = available(hours(down), hours(planned));
    let mut units = ProductionTotals::default();
    made.iter().for_each(|m| units.add(*m));
    let quality = units.quality();
    let (perf, performance_by) = match (units.performance(down_timed.iter().sum()), speed) {
        (Some(p), _) => (Some(p), PerformanceBy::IdealCycle),
        (None, Some(p)) => (Some(p), PerformanceBy::Speed),
        (None, None) => (None, PerformanceBy::Assumed),
    };
    let oee = availability * perf.unwrap_or(1.0) * quality.unwrap_or(1.0);
    let mut shift_kpis: Vec<ShiftKpi> = Vec::new();
    for (name, b, e) in instances {
        let down = overlap(intervals, *b, *e);
        let entry = match shift_kpis.iter_mut().find(|k| &k.shift == name) {
            Some(k) => k,
            None => {
                shift_kpis.push(ShiftKpi::empty(name.clone(), 0.0));
                shift_kpis.last_mut().expect("just pushed")
            }
        };
        // Accumulate down hours in `availability` first; turned into a ratio below.
        entry.hours += hours(*e - *b);
        entry.planned_stop_hours += hours(overlap(stopped, *b, *e));
        entry.availability += hours(down);
    }
    for k in &mut shift_kpis {
        let g = shifts.iter().position(|s| *s == k.shift);
        let m = g.and_then(|g| made.get(g)).copied().unwrap_or_default();
        let down = g
            .and_then(|g| down_timed.get(g))
            .copied()
            .unwrap_or_default();
        (k.good_units, k.rejected_units) = (m.good, m.rejected);
        k.availability = available(k.availability, k.hours - k.planned_stop_hours);
        k.quality = m.quality();
        k.performance = m.performance(down).or(speed);
        k.oee = k.availability * k.performance.unwrap_or(1.0) * k.quality.unwrap_or(1.0);
    }
    Kpi {
        asset_id: Some(asset.id),
        asset_code: Some(asset.code.clone()),
        line: Some(asset.location.clone()),
        availability,
        mtbf_hours: (failures > 0).then(|| hours(planned - down) / f64::from(failures)),
        mttr_hours: (repaired_count > 0).then(|| hours(repaired) / f64::from(repaired_count)),
        failures,
        downtime_hours: hours(down),
        planned_stop_hours: hours(stop),
        performance: perf,
        quality,
        good_units: units.good,
        rejected_units: units.rejected,
        oee,
        oee_basis: basis(&[performance_by], usize::from(quality.is_some())),
        shifts: shift_kpis,
        performance_by,
    }
}

/// What an OEE figure rests on: what the performance of each asset (`performance`) was
/// measured by, and for how many of them quality was (`counted`).
fn basis(performance: &[PerformanceBy], counted: usize) -> String {
    let of = performance.len();
    let by = |kind: PerformanceBy| performance.iter().filter(|p| **p == kind).count();
    format!(
        "availability × performance {} × quality {}",
        term(
            &[
                (
                    by(PerformanceBy::IdealCycle),
                    "ideal cycle × units ÷ run time"
                ),
                (by(PerformanceBy::Speed), "speed"),
            ],
            of,
            "no ideal cycle time or speed sensor"
        ),
        term(
            &[(counted, "good ÷ all units counted")],
            of,
            "no production counts"
        )
    )
}

/// One term of [`basis`]: how it was measured (`ways`: for how many assets each) of `of`
/// assets, the others assumed 1 (`missing`: why).
fn term(ways: &[(usize, &str)], of: usize, missing: &str) -> String {
    let used: Vec<&(usize, &str)> = ways.iter().filter(|(n, _)| *n > 0).collect();
    let measured: usize = used.iter().map(|(n, _)| n).sum();
    match used.as_slice() {
        [] => format!("(assumed 1: {missing})"),
        [(_, how)] if measured >= of => format!("({how})"),
        _ => {
            let list = used
                .iter()
                .map(|(n, how)| format!("{how} for {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rest = if measured >= of {
                ""
            } else {
                ", the others assumed 1"
            };
            format!("({list} of {of} assets{rest})")
        }
    }
}

/// A group's availability and OEE: its assets' means weighted by their planned production time
/// (equal weights without planned stops; plain means when none of them was to run).
#[derive(Default)]
struct Weighed {
    planned: f64,
    availability: f64,
    oee: f64,
    assets: f64,
    plain_availability: f64,
    plain_oee: f64,
}

impl Weighed {
    fn add(&mut self, planned: f64, availability: f64, oee: f64) {
        let planned = planned.max(0.0);
        self.planned += planned;
        self.availability += planned * availability;
        self.oee += planned * oee;
        self.assets += 1.0;
        self.plain_availability += availability;
        self.plain_oee += oee;
    }

    /// (availability, OEE).
    fn means(&self) -> (f64, f64) {
        if self.planned > 0.0 {
            (self.availability / self.planned, self.oee / self.planned)
        } else {
            let n = self.assets.max(1.0);
            (self.plain_availability / n, self.plain_oee / n)
        }
    }
}

/// The group's KPIs: availability and OEE averaged over assets weighted by their planned
/// production time, performance over the assets it was measured for, MTBF and MTTR over all
/// failures.
fn total(kpis: &[Kpi], period: Duration) -> Kpi {
    let failures: u32 = kpis.iter().map(|k| k.failures).sum();
    let down: f64 = kpis.iter().map(|k| k.downtime_hours).sum();
    let stopped: f64 = kpis.iter().map(|k| k.planned_stop_hours).sum();
    let up = hours(period) * kpis.len() as f64 - stopped - down;
    let repaired: Vec<f64> = kpis.iter().filter_map(|k| k.mttr_hours).collect();
    let mut overall = Weighed::default();
    let mut shifts: Vec<ShiftKpi> = Vec::new();
    let mut per_shift: Vec<Weighed> = Vec::new();
    for k in kpis {
        overall.add(hours(period) - k.planned_stop_hours, k.availability, k.oee);
        for s in &k.shifts {
            let i = match shifts.iter().position(|t| t.shift == s.shift) {
                Some(i) => i,
                None => {
                    shifts.push(ShiftKpi::empty(s.shift.clone(), s.hours));
                    per_shift.push(Weighed::default());
                    shifts.len() - 1
                }
            };
            let t = &mut shifts[i];
            // Summed here, a mean over the assets below (comparable with the shift's hours).
            t.planned_stop_hours += s.planned_stop_hours;
            t.good_units += s.good_units;
            t.rejected_units += s.rejected_units;
            per_shift[i].add(s.hours - s.planned_stop_hours, s.availability, s.oee);
        }
    }
    for (s, w) in shifts.iter_mut().zip(&per_shift) {
        (s.availability, s.oee) = w.means();
        s.planned_stop_hours /= w.assets.max(1.0);
    }
    let (availability, oee) = overall.means();
    let mean = |measured: Vec<f64>| {
        (!measured.is_empty()).then(|| measured.iter().sum::<f64>() / measured.len() as f64)
    };
    for s in &mut shifts {
        s.performance = mean(
            kpis.iter()
                .flat_map(|k| &k.shifts)
                .filter(|t| t.shift == s.shift)
                .filter_map(|t| t.performance)
                .collect(),
        );
        s.quality = ProductionTotals {
            good: s.good_units,
            rejected: s.rejected_units,
            ..ProductionTotals::default()
        }
        .quality();
    }
    let units = ProductionTotals {
        good: kpis.iter().map(|k| k.good_units).sum(),
        rejected: kpis.iter().map(|k| k.rejected_units).sum(),
        ..ProductionTotals::default()
    };
    let by: Vec<PerformanceBy> = kpis.iter().map(|k| k.performance_by).collect();
    let counted = kpis.iter().filter(|k| k.quality.is_some()).count();
    Kpi {
        asset_id: None,
        asset_code: None,
        line: None,
        availability,
        mtbf_hours: (failures > 0).then(|| up / f64::from(failures)),
        mttr_hours: (!repaired.is_empty())
            .then(|| repaired.iter().sum::<f64>() / repaired.len() as f64),
        failures,
        downtime_hours: down,
        planned_stop_hours: stopped,
        performance: mean(kpis.iter().filter_map(|k| k.performance).collect()),
        quality: units.quality(),
        good_units: units.good,
        rejected_units: units.rejected,
        oee,
        oee_basis: basis(&by, counted),
        shifts,
        performance_by: PerformanceBy::Assumed,
    }
}

/// KPIs over a period.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KpiReport {
    #[schema(value_type = String, format = DateTime)]
    from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    to: DateTime<Utc>,
    scope: KpiScope,
    assets: Vec<Kpi>,
    total: Kpi,
}

/// What the KPIs cover.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KpiScope {
    asset_id: Option<String>,
    line: Option<String>,
}

/// `GET /api/v1/kpis?from&to&assetId|line`: KPIs of the tenant's assets (or one asset, or one
/// line) over a period (default: the last 7 days); CSV lists the assets.
#[utoipa::path(get, path = "/api/v1/kpis", tag = "kpis",
    params(("from" = Option<String>, Query, format = DateTime), ("to" = Option<String>, Query, format = DateTime),
        ("assetId" = Option<String>, Query, format = Uuid), ("line" = Option<String>, Query),
        ("format" = Option<crate::api::Format>, Query, description = "csv for a CSV download")),
    responses((status = 200, body = KpiReport)))]
pub(crate) async fn kpis(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let (from, to) = time_range(&params, Duration::days(7))?;
    if to - from < Duration::seconds(1) {
        // Shares of no time are 0 / 0: not a figure to answer.
        return Err(
            Problem::bad_request("a KPI period must last at least a second")
                .with_field("/to", "less than a second after `from`"),
        );
    }
    let assets = match (params.get("assetId"), params.get("line")) {
        (Some(raw), _) => {
            let id: AssetId = parse_id(raw, "assetId", "/assetId")?;
            vec![tenant_asset(s.store.as_ref(), &who, id).await?]
        }
        (None, Some(line)) => tenant_assets(s.store.as_ref(), &who)
            .await?
            .into_iter()
            .filter(|a| &a.location == line)
            .collect(),
        (None, None) => tenant_assets(s.store.as_ref(), &who).await?,
    };
    // The events and sensors of one asset, or of the whole tenant in one query each.
    let mut events: HashMap<AssetId, Vec<MaintenanceEvent>> = HashMap::new();
    let mut sensors: HashMap<AssetId, Vec<Sensor>> = HashMap::new();
    let (read, listed) = match assets.as_slice() {
        [one] => (
            s.store
                .list_maintenance_events(Some(one.id), EVENTS_PER_ASSET)
                .await?,
            s.store.list_sensors(Some(one.id)).await?,
        ),
        _ => (
            s.store
                .tenant_maintenance_events(who.tenant_id, EVENTS_PER_ASSET)
                .await?,
            s.store.tenant_sensors(who.tenant_id).await?,
        ),
    };
    for e in read {
        events.entry(e.asset_id).or_default().push(e);
    }
    for sensor in listed {
        sensors.entry(sensor.asset_id).or_default().push(sensor);
    }
    // The units made per shift (or in the whole period), summed by the database.
    let instances = s.shifts.instances(from, to);
    let mut shifts: Vec<String> = Vec::new();
    let mut periods = Vec::with_capacity(instances.len().max(1));
    for (name, b, e) in &instances {
        let group = shifts.iter().position(|s| s == name).unwrap_or_else(|| {
            shifts.push(name.clone());
            shifts.len() - 1
        });
        periods.push(ProductionPeriod {
            from: *b,
            to: *e,
            group,
        });
    }
    if periods.is_empty() {
        periods.push(ProductionPeriod { from, to, group: 0 });
    }
    let one = match assets.as_slice() {
        [one] => Some(one.id),
        _ => None,
    };
    let mut made: HashMap<AssetId, Vec<ProductionTotals>> = HashMap::new();
    for p in s
        .store
        .production_totals(who.tenant_id, one, &periods)
        .await?
    {
        let per_group = made
            .entry(p.asset_id)
            .or_insert_with(|| vec![ProductionTotals::default(); shifts.len().max(1)]);
        if let Some(slot) = per_group.get_mut(p.group) {
            slot.add(p.units);
        }
    }
    // The planned stops of the period: each asset's own and the whole plant's.
    let stops = s
        .store
        .list_planned_stops(who.tenant_id, from, to, one, STOPS_PER_REPORT + 1)
        .await?;
    if stops.len() > STOPS_PER_REPORT as usize {
        return Err(Problem::bad_request(format!(
            "more than {STOPS_PER_REPORT} planned stops in the period: ask for a shorter one"
        ))
        .with_field("/from", "too long a period for its planned stops"));
    }
    let stopped = stopped(&stops, assets.iter().map(|a| a.id), from, to);
    // The time down or stopped as planned within the counts stating an ideal cycle time
    // (performance's run time is their time less it), per shift: the counts overlapping the
    // downtimes and planned stops of the assets that have such counts, read in one statement
    // (per few hundred spans).
    let downtime: HashMap<AssetId, Downtimes> = assets
        .iter()
        .map(|a| {
            let of = events.get(&a.id).map_or(&[][..], Vec::as_slice);
            (a.id, downtimes(of, from, to))
        })
        .collect();
    let mut spans = Vec::new();
    for (asset, (intervals, ..)) in &downtime {
        let timed = made
            .get(asset)
            .is_some_and(|m| m.iter().any(|t| t.timed_seconds > 0.0));
        if timed {
            let mut idle = intervals.clone();
            idle.extend(stopped.get(asset).into_iter().flatten().copied());
            spans.extend(
                join_spans(idle)
                    .into_iter()
                    .map(|(from, to)| ProductionSpan {
                        asset_id: *asset,
                        from,
                        to,
                    }),
            );
        }
    }
    let found = if spans.is_empty() {
        Vec::new()
    } else {
        s.store
            .production_overlapping(who.tenant_id, &spans)
            .await?
    };
    let down_timed = downtime_within_counts(&periods, shifts.len().max(1), &spans, &found);
    // The speed sensors of the assets in scope (a line's, not the whole tenant's).
    let in_scope: std::collections::HashSet<AssetId> = assets.iter().map(|a| a.id).collect();
    sensors.retain(|asset, _| in_scope.contains(asset));
    let speed = performances(s.store.as_ref(), &sensors, from, to).await?;
    // (Every asset in scope has its entry.)
    let none: Downtimes = (Vec::new(), 0, Duration::zero(), 0);
    let per_asset: Vec<Kpi> = assets
        .iter()
        .map(|asset| {
            asset_kpi(
                &instances,
                &shifts,
                asset,
                downtime.get(&asset.id).unwrap_or(&none),
                stopped.get(&asset.id).map_or(&[][..], Vec::as_slice),
                speed.get(&asset.id).copied(),
                made.get(&asset.id).map_or(&[][..], Vec::as_slice),
                down_timed.get(&asset.id).map_or(&[][..], Vec::as_slice),
                from,
                to,
            )
        })
        .collect();
    if wants_csv(&headers, &params)? {
        return list_response(&per_asset, true, "kpis");
    }
    let total = total(&per_asset, to - from);
    Ok(Json(KpiReport {
        from,
        to,
        scope: KpiScope {
            asset_id: params.get("assetId").cloned(),
            line: params.get("line").cloned(),
        },
        assets: per_asset,
        total,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::MaintenanceEventId;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::hours(h)
    }

    fn event(kind: MaintenanceEventKind, h: i64) -> MaintenanceEvent {
        MaintenanceEvent {
            id: MaintenanceEventId::new_random(),
            asset_id: AssetId::new_random(),
            kind,
            occurred_at: t(h),
            work_order_id: None,
            note: String::new(),
        }
    }

    #[test]
    fn a_failure_is_down_until_its_repair_and_open_failures_until_the_end() {
        use MaintenanceEventKind::*;
        let events = [
            event(Failure, 10),
            event(Inspection, 11),
            event(Repair, 12),
            event(Failure, 90),
        ];
        let (intervals, failures, repaired, n) = downtimes(&events, t(0), t(100));
        assert_eq!(intervals, vec![(t(10), t(12)), (t(90), t(100))]);
        assert_eq!((failures, n), (2, 1));
        assert_eq!(repaired, Duration::hours(2));
        // A failure before the period is down from the period's start, not counted as one.
        let (intervals, failures, _, _) =
            downtimes(&[event(Failure, -5), event(Replacement, 3)], t(0), t(100));
        assert_eq!(intervals, vec![(t(0), t(3))]);
        assert_eq!(failures, 0);
    }

    #[test]
    fn downtime_within_timed_counts_is_cut_at_the_shift_edges() {
        let period = |from: i64, to: i64, group: usize| ProductionPeriod {
            from: t(from),
            to: t(to),
            group,
        };
        // Shifts 0–8, 8–16, 16–24 (groups 0, 1, 2) and 24–32 (group 0 again).
        let periods = [
            period(0, 8, 0),
            period(8, 16, 1),
            period(16, 24, 2),
            period(24, 32, 0),
        ];
        let (a, b) = (AssetId::new_random(), AssetId::new_random());
        let span = |asset_id: AssetId, from: i64, to: i64| ProductionSpan {
            asset_id,
            from: t(from),
            to: t(to),
        };
        // Asset a: down 6–10 and 20–26; asset b: down 2–10.
        let spans = [span(a, 6, 10), span(a, 20, 26), span(b, 2, 10)];
        let count = |asset_id: AssetId, from: i64, to: i64, cycle: Option<f64>| ProductionCount {
            asset_id,
            starts_at: t(from),
            ends_at: t(to),
            good: 10,
            rejected: 0,
            ideal_cycle_seconds: cycle,
            recorded_by: "mes".into(),
            recorded_at: t(to),
        };
        let found = [
            // 4–9 timed: 6–8 in shift 0, 8–9 in shift 1.
            (0, count(a, 4, 9, Some(30.0))),
            // 9–21 timed, overlapping both of a's downtimes (found for each): 9–10 in shift
            // 1, 20–21 in shift 2.
            (0, count(a, 9, 21, Some(30.0))),
            (1, count(a, 9, 21, Some(30.0))),
            // 21–30 timed: 21–24 in shift 2, 24–26 in shift 0 (its second instance).
            (1, count(a, 21, 30, Some(30.0))),
            // b's count 0–8 timed: 2–8 in shift 0; its 8–12 without an ideal cycle time is
            // no run time of performance.
            (2, count(b, 0, 8, Some(60.0))),
            (2, count(b, 8, 12, None)),
            // A span index out of range, or a count of another asset: ignored.
            (7, count(a, 0, 8, Some(30.0))),
            (2, count(a, 0, 8, Some(30.0))),
        ];
        let down = downtime_within_counts(&periods, 3, &spans, &found);
        let h = 3600.0;
        assert_eq!(down.get(&a), Some(&vec![4.0 * h, 2.0 * h, 4.0 * h]));
        assert_eq!(down.get(&b), Some(&vec![6.0 * h, 0.0, 0.0]));
        assert_eq!(down.len(), 2);
    }

    #[test]
    fn an_assets_planned_stops_are_its_own_and_the_plants_joined_within_the_period() {
        use mantis_domain::{PlannedStopId, TenantId};
        let (press, lathe, idle) = (
            AssetId::new_random(),
            AssetId::new_random(),
            AssetId::new_random(),
        );
        let stop = |asset_id: Option<AssetId>, from: i64, to: i64| PlannedStop {
            id: PlannedStopId::new_random(),
            tenant_id: TenantId::DEFAULT,
            asset_id,
            starts_at: t(from),
            ends_at: t(to),
            reason: String::new(),
            created_by: "max".into(),
            created_at: t(0),
            series_id: None,
        };
        let stops = [
            // The plant's night (clipped to the period) and lunch break.
            stop(None, -2, 6),
            stop(None, 12, 13),
            // The press's changeover overlapping the lunch break, and one touching the night.
            stop(Some(press), 11, 12),
            stop(Some(press), 6, 7),
            // Another asset's, not in the report.
            stop(Some(AssetId::new_random()), 0, 24),
        ];
        let both = stopped(&stops, [press, lathe], t(0), t(24));
        assert_eq!(both.get(&press), Some(&vec![(t(0), t(7)), (t(11), t(13))]));
        assert_eq!(both.get(&lathe), Some(&vec![(t(0), t(6)), (t(12), t(13))]));
        assert_eq!(both.len(), 2);
        // Without the plant's stops, an asset with none of its own is left out.
        let own = stopped(&stops[2..], [press, idle], t(0), t(24));
        assert_eq!(own.get(&press).map(Vec::len), Some(2));
        assert!(!own.contains_key(&idle));
        // Nothing planned, nothing to be available: 1; else the share not down.
        assert_eq!(available(0.0, 0.0), 1.0);
        assert_eq!(available(2.0, 8.0), 0.75);
        assert_eq!(available(9.0, 8.0), 0.0);
    }

    #[test]
    fn the_oee_basis_says_what_each_term_rests_on_for_how_many_assets() {
        use PerformanceBy::*;
        assert_eq!(
            basis(&[IdealCycle], 1),
            "availability × performance (ideal cycle × units ÷ run time) × quality (good ÷ all \
             units counted)"
        );
        assert_eq!(
            basis(&[Assumed, Assumed], 0),
            "availability × performance (assumed 1: no ideal cycle time or speed sensor) × \
             quality (assumed 1: no production counts)"
        );
        assert_eq!(
            basis(&[IdealCycle, Speed, Assumed], 2),
            "availability × performance (ideal cycle × units ÷ run time for 1, speed for 1 of 3 \
             assets, the others assumed 1) × quality (good ÷ all units counted for 2 of 3 \
             assets, the others assumed 1)"
        );
        assert_eq!(
            basis(&[Speed, IdealCycle], 2),
            "availability × performance (ideal cycle × units ÷ run time for 1, speed for 1 of 2 \
             assets) × quality (good ÷ all units counted)"
        );
    }

    #[test]
    fn shifts_cover_the_period_exactly_and_wrap_midnight() {
        let shifts = Shifts::parse(&default_shifts()).expect("valid");
        let instances = shifts.instances(t(0), t(24));
        let total: f64 = instances.iter().map(|(_, b, e)| hours(*e - *b)).sum();
        assert!((total - 24.0).abs() < 1e-9);
        assert_eq!(
            instances.first().map(|(n, b, e)| (n.as_str(), *b, *e)),
            Some(("C", t(0), t(6)))
        );
        assert!(
            instances
                .iter()
                .any(|(n, b, e)| n == "C" && *b == t(22) && *e == t(24))
        );
        assert!(
            Shifts::parse(&[ShiftConfig {
                name: "x".into(),
                start: "25:00".into()
            }])
            .is_err()
        );
    }
}
