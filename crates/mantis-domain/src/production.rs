//! Production counts: how many good and rejected units an asset made in a period, as the line's
//! counters, an MES or a shift lead report them. They give OEE its quality term (good ÷ all
//! units made) and, when they state the ideal cycle time of what was made, its performance
//! term (ideal cycle × units ÷ run time). Planned stops (the production calendar: breaks,
//! changeovers planned, weekends, a shutdown) are the time an asset was not meant to run: OEE
//! counts neither its availability nor its performance over them.

use crate::{AssetId, Day, DomainError, PlannedStopId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// The longest period one count may cover (a month: counts are reported per hour, shift, day
/// or order; a longer one would be spread thin over shifts it says nothing about).
pub const MAX_PRODUCTION_PERIOD_DAYS: i64 = 31;

/// The largest count of one period (far beyond any line's output; keeps sums exact in `i64`
/// and `f64`).
pub const MAX_PRODUCTION_COUNT: u64 = 1_000_000_000_000;

/// The shortest ideal cycle time of a unit, in seconds (a thousand units a second: beyond the
/// fastest tablet press or can line).
pub const MIN_IDEAL_CYCLE_SECONDS: f64 = 0.001;

/// The longest ideal cycle time of a unit, in seconds (a day).
pub const MAX_IDEAL_CYCLE_SECONDS: f64 = 86_400.0;

/// Units one asset made in `[starts_at, ends_at)`. An asset's counts never overlap one
/// another; a count sent again for the same start replaces the one recorded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductionCount {
    /// The asset that made them.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub asset_id: AssetId,
    /// Start of the period.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// End of the period (after the start, at most 31 days later).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Good units (first time right).
    pub good: u64,
    /// Units scrapped or sent to rework.
    pub rejected: u64,
    /// The ideal cycle time of the units made, in seconds per unit (the fastest the asset makes
    /// that product: its nameplate rate or the engineering standard), when stated. It gives the
    /// period OEE's performance term; a count per product run keeps a product mix exact.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.001, maximum = 86400))]
    pub ideal_cycle_seconds: Option<f64>,
    /// Who reported them (a user or an API key's name).
    pub recorded_by: String,
    /// When they were recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub recorded_at: Timestamp,
}

impl ProductionCount {
    /// Keeps the times to the millisecond (as stored) and checks the period (ending after it
    /// starts, within [`MAX_PRODUCTION_PERIOD_DAYS`]) and the counts (at most
    /// [`MAX_PRODUCTION_COUNT`] each) and the ideal cycle time (within
    /// [`MIN_IDEAL_CYCLE_SECONDS`]..=[`MAX_IDEAL_CYCLE_SECONDS`] when stated).
    pub fn normalise(mut self) -> Result<Self, DomainError> {
        (self.starts_at, self.ends_at) = crate::checked_period(
            "production period",
            "ending after it starts, at most 31 days later",
            self.starts_at,
            self.ends_at,
            MAX_PRODUCTION_PERIOD_DAYS,
        )?;
        for (what, n) in [("good count", self.good), ("rejected count", self.rejected)] {
            if n > MAX_PRODUCTION_COUNT {
                return Err(DomainError::OutOfRange {
                    what,
                    value: n as f64,
                    min: 0.0,
                    max: MAX_PRODUCTION_COUNT as f64,
                });
            }
        }
        if let Some(cycle) = self.ideal_cycle_seconds
            && !(MIN_IDEAL_CYCLE_SECONDS..=MAX_IDEAL_CYCLE_SECONDS).contains(&cycle)
        {
            return Err(DomainError::OutOfRange {
                what: "ideal cycle time",
                value: cycle,
                min: MIN_IDEAL_CYCLE_SECONDS,
                max: MAX_IDEAL_CYCLE_SECONDS,
            });
        }
        Ok(self)
    }

    /// Whether its period and `other`'s share an instant.
    pub fn overlaps(&self, other: &ProductionCount) -> bool {
        self.starts_at < other.ends_at && other.starts_at < self.ends_at
    }

    /// Its units within `[from, to)`: all of them when the period lies inside, none when it
    /// lies outside, else pro rata to the time shared (a count over a shift's edge is split
    /// by the time on each side), with their ideal and covered time when the ideal cycle time
    /// is stated.
    pub fn within(&self, from: Timestamp, to: Timestamp) -> ProductionTotals {
        let (b, e) = (self.starts_at.max(from), self.ends_at.min(to));
        if b >= e {
            return ProductionTotals::default();
        }
        let length = (self.ends_at - self.starts_at).num_milliseconds();
        let share = if b == self.starts_at && e == self.ends_at {
            1.0
        } else {
            (e - b).num_milliseconds() as f64 / length.max(1) as f64
        };
        let units = (self.good + self.rejected) as f64 * share;
        let (ideal_seconds, timed_seconds) = match self.ideal_cycle_seconds {
            Some(cycle) => (cycle * units, (e - b).num_milliseconds() as f64 / 1000.0),
            None => (0.0, 0.0),
        };
        ProductionTotals {
            good: self.good as f64 * share,
            rejected: self.rejected as f64 * share,
            ideal_seconds,
            timed_seconds,
        }
    }
}

/// Units made within a period; fractional where a count spanning its edge was shared out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductionTotals {
    /// Good units.
    pub good: f64,
    /// Rejected units.
    pub rejected: f64,
    /// How long the units of the counts stating an ideal cycle time would take at it, in
    /// seconds (ideal cycle × units).
    #[serde(default)]
    pub ideal_seconds: f64,
    /// How long those counts last (within the period), in seconds.
    #[serde(default)]
    pub timed_seconds: f64,
}

impl ProductionTotals {
    /// Adds `other`'s units.
    pub fn add(&mut self, other: ProductionTotals) {
        self.good += other.good;
        self.rejected += other.rejected;
        self.ideal_seconds += other.ideal_seconds;
        self.timed_seconds += other.timed_seconds;
    }

    /// Good ÷ all units; none when nothing was made (or reported).
    pub fn quality(&self) -> Option<f64> {
        let all = self.good + self.rejected;
        (all > 0.0).then(|| (self.good / all).clamp(0.0, 1.0))
    }

    /// Performance over the counts stating an ideal cycle time: their ideal time ÷ their run
    /// time, the time they last less `down_seconds` (the asset's downtime within them), at
    /// most 1 (an ideal cycle beaten is one set too slow). None without such counts, or when
    /// the asset was down all their time (less than a millisecond, the resolution of the
    /// times, left: the two sums are of floating-point seconds).
    pub fn performance(&self, down_seconds: f64) -> Option<f64> {
        let run = self.timed_seconds - down_seconds.max(0.0);
        (run >= 0.001).then(|| (self.ideal_seconds / run).clamp(0.0, 1.0))
    }
}

/// The longest planned stop, in days (a year: a mothballed line).
pub const MAX_PLANNED_STOP_DAYS: i64 = 366;

/// Longest reason given for a planned stop.
pub const MAX_PLANNED_STOP_REASON: usize = crate::MAX_REASON;

/// A stretch in which an asset (or, without one, the whole plant) is not planned to produce:
/// a break, a planned changeover or cleaning, a weekend without shifts, a holiday, a
/// shutdown. The production calendar: OEE's availability is of the planned production time
/// (a failure during a planned stop costs none), its performance of the run time outside
/// planned stops.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStop {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: PlannedStopId,
    /// The tenant whose plant it concerns.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub tenant_id: TenantId,
    /// The asset stopped; none: the whole plant.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub asset_id: Option<AssetId>,
    /// When it starts.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// When it ends (after the start; at most 366 days later).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Why (`lunch break`, `changeover`, `no weekend shift`), at most 200 characters.
    pub reason: String,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The repetition it was recorded with: an id all its stops share ([`PlannedStop::repeated`]
    /// gives the first one's); none for a stop recorded without one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub series_id: Option<PlannedStopId>,
}

impl PlannedStop {
    /// Trims the reason, keeps times to the millisecond (as stored), and checks the stretch:
    /// it ends after it starts, within [`MAX_PLANNED_STOP_DAYS`].
    pub fn normalise(mut self) -> Result<Self, DomainError> {
        self.reason = crate::checked_reason("planned stop reason", &self.reason)?;
        (self.starts_at, self.ends_at) = crate::checked_period(
            "planned stop",
            "ending after it starts, at most 366 days later",
            self.starts_at,
            self.ends_at,
            MAX_PLANNED_STOP_DAYS,
        )?;
        Ok(self)
    }

    /// Whether it stops `asset` (its own, or the whole plant's).
    pub fn applies_to(&self, asset: AssetId) -> bool {
        self.asset_id.is_none_or(|a| a == asset)
    }

    /// This stop on each day of `repeat` from its own day on (its own included when listed),
    /// at its time of day on the repeat's clock (daylight saving time followed), as long, each
    /// with a new id; the last starts before `repeat.until`. Checks the repetition: at least
    /// one day, a known time zone, `until` after the start and at most
    /// [`MAX_PLANNED_STOP_DAYS`] later (so at most 367 stops), and at least one stop.
    pub fn repeated(&self, repeat: &Repeat) -> Result<Vec<PlannedStop>, DomainError> {
        if repeat.days.is_empty() {
            return Err(DomainError::Empty("repeat days"));
        }
        let zone = match repeat.time_zone.as_deref().map(str::trim) {
            None | Some("") => chrono_tz::UTC,
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map_err(|_| DomainError::BadName {
                    what: "time zone",
                    value: name.to_owned(),
                    rule: "an IANA time zone such as Europe/Berlin or America/Chicago",
                })?,
        };
        let until = chrono::SubsecRound::trunc_subsecs(repeat.until, 3);
        let span = until - self.starts_at;
        if span <= chrono::Duration::zero() || span > chrono::Duration::days(MAX_PLANNED_STOP_DAYS)
        {
            return Err(DomainError::BadName {
                what: "repeat until",
                value: until.to_rfc3339(),
                rule: "after the first start, at most 366 days later",
            });
        }
        let length = self.ends_at - self.starts_at;
        let first = self.starts_at.with_timezone(&zone).naive_local();
        // Its length on the clock: a stop from Friday 22:00 to Monday 06:00 ends at 06:00 on
        // either side of a change of the clocks (an hour shorter or longer).
        let local_length = self.ends_at.with_timezone(&zone).naive_local() - first;
        let mut stops = Vec::new();
        for days in 0..=MAX_PLANNED_STOP_DAYS {
            let local = first + chrono::Duration::days(days);
            if !repeat
                .days
                .contains(&Day::of(chrono::Datelike::weekday(&local)))
            {
                continue;
            }
            let Some(starts_at) = crate::crew::local_instant(&zone, local) else {
                continue;
            };
            if starts_at >= until {
                break;
            }
            let ends_at = crate::crew::local_instant(&zone, local + local_length)
                .filter(|end| *end > starts_at)
                .unwrap_or(starts_at + length);
            let id = PlannedStopId::new_random();
            let series_id = stops.first().map_or(id, |first: &PlannedStop| first.id);
            stops.push(PlannedStop {
                id,
                starts_at,
                ends_at,
                series_id: Some(series_id),
                ..self.clone()
            });
        }
        if stops.is_empty() {
            return Err(DomainError::Empty(
                "repeated stops (no day of the repetition before until)",
            ));
        }
        Ok(stops)
    }
}

/// How a planned stop repeats: on the days of the week listed, at the first stop's time of day
/// on the clock of `time_zone` (UTC without one), until `until`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Repeat {
    /// The days of the week it falls on (`["MON", "TUE", "WED", "THU", "FRI"]`).
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub days: Vec<Day>,
    /// No stop starts at or after it (at most 366 days after the first start).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub until: Timestamp,
    /// The IANA time zone of the plant's clock (`Europe/Berlin`): a break at 12:00 stays at
    /// 12:00 across daylight saving time. UTC when left out.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn t(h: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::hours(h)
    }

    fn count(from: i64, to: i64, good: u64, rejected: u64) -> ProductionCount {
        ProductionCount {
            asset_id: AssetId::new_random(),
            starts_at: t(from),
            ends_at: t(to),
            good,
            rejected,
            ideal_cycle_seconds: None,
            recorded_by: "mes".into(),
            recorded_at: t(to),
        }
    }

    #[test]
    fn a_period_must_end_after_it_starts_within_a_month_and_counts_be_bounded() {
        assert!(count(0, 8, 10, 1).normalise().is_ok());
        assert!(count(8, 8, 10, 1).normalise().is_err());
        assert!(count(8, 0, 10, 1).normalise().is_err());
        assert!(count(0, 24 * 31, 1, 0).normalise().is_ok());
        assert!(count(0, 24 * 31 + 1, 1, 0).normalise().is_err());
        assert!(
            count(0, 1, MAX_PRODUCTION_COUNT + 1, 0)
                .normalise()
                .is_err()
        );
        assert!(count(0, 1, 0, MAX_PRODUCTION_COUNT).normalise().is_ok());
        for (cycle, ok) in [
            (Some(30.0), true),
            (None, true),
            (Some(MIN_IDEAL_CYCLE_SECONDS), true),
            (Some(MAX_IDEAL_CYCLE_SECONDS), true),
            (Some(0.0), false),
            (Some(-1.0), false),
            (Some(MAX_IDEAL_CYCLE_SECONDS * 2.0), false),
            (Some(f64::NAN), false),
            (Some(f64::INFINITY), false),
        ] {
            let mut c = count(0, 1, 1, 0);
            c.ideal_cycle_seconds = cycle;
            assert_eq!(c.normalise().is_ok(), ok, "ideal cycle {cycle:?}");
        }
        // Stored to the millisecond: what is answered is what a later read gives.
        let mut c = count(0, 1, 1, 0);
        c.starts_at += Duration::nanoseconds(1_500_000);
        assert_eq!(
            c.normalise().map(|c| c.starts_at),
            Ok(t(0) + Duration::milliseconds(1))
        );
    }

    #[test]
    fn units_are_shared_out_by_the_time_a_period_has_in_common() {
        let c = count(4, 12, 80, 8);
        assert_eq!(
            c.within(t(0), t(24)),
            ProductionTotals {
                good: 80.0,
                rejected: 8.0,
                ..ProductionTotals::default()
            }
        );
        assert_eq!(c.within(t(12), t(24)), ProductionTotals::default());
        let first = c.within(t(0), t(6));
        assert_eq!((first.good, first.rejected), (20.0, 2.0));
        let mut sum = first;
        sum.add(c.within(t(6), t(14)));
        assert_eq!((sum.good, sum.rejected), (80.0, 8.0));
        assert_eq!(sum.quality(), Some(80.0 / 88.0));
        assert_eq!(ProductionTotals::default().quality(), None);
        assert!(c.overlaps(&count(11, 13, 0, 0)));
        assert!(!c.overlaps(&count(12, 13, 0, 0)));
        assert!(!c.overlaps(&count(0, 4, 0, 0)));
    }

    #[test]
    fn performance_is_the_ideal_time_of_the_units_over_the_time_run() {
        // 8 h at 300 s a unit ideally: 96 units; 72 made.
        let mut c = count(0, 8, 70, 2);
        c.ideal_cycle_seconds = Some(300.0);
        let all = c.within(t(0), t(8));
        assert_eq!(
            (all.ideal_seconds, all.timed_seconds),
            (72.0 * 300.0, 8.0 * 3600.0)
        );
        assert_eq!(all.performance(0.0), Some(0.75));
        // Down 2 of the 8 hours: the 72 units took 6 h, 6 h ideally; down 1 h 36 min: 0.9375.
        assert_eq!(all.performance(2.0 * 3600.0), Some(1.0));
        assert_eq!(all.performance(96.0 * 60.0), Some(0.9375));
        assert_eq!(all.performance(8.0 * 3600.0), None);
        assert_eq!(all.performance(8.0 * 3600.0 - 1e-9), None);
        // Shared out by time like the units, and summed.
        let mut halves = c.within(t(0), t(4));
        assert_eq!(halves.timed_seconds, 4.0 * 3600.0);
        halves.add(c.within(t(4), t(12)));
        assert_eq!(halves, all);
        // Counts without an ideal cycle time tell no performance, and leave it as it is.
        let untimed = count(8, 16, 1000, 0).within(t(0), t(24));
        assert_eq!(untimed.performance(0.0), None);
        let mut mixed = all;
        mixed.add(untimed);
        assert_eq!(mixed.performance(0.0), Some(0.75));
    }

    fn stop(asset_id: Option<AssetId>, from: i64, to: i64, reason: &str) -> PlannedStop {
        PlannedStop {
            id: PlannedStopId::new_random(),
            tenant_id: TenantId::DEFAULT,
            asset_id,
            starts_at: t(from),
            ends_at: t(to),
            reason: reason.into(),
            created_by: "manager".into(),
            created_at: t(0),
            series_id: None,
        }
    }

    #[test]
    fn a_planned_stop_ends_after_it_starts_within_a_year_with_a_short_reason() {
        let asset = AssetId::new_random();
        let ok = stop(Some(asset), 12, 13, "  lunch break ")
            .normalise()
            .expect("valid");
        assert_eq!(ok.reason, "lunch break");
        assert!(stop(None, 0, 24 * 366, "").normalise().is_ok());
        assert!(stop(None, 0, 24 * 366 + 1, "").normalise().is_err());
        assert!(stop(None, 5, 5, "").normalise().is_err());
        assert!(stop(None, 5, 4, "").normalise().is_err());
        assert!(stop(None, 0, 1, &"x".repeat(201)).normalise().is_err());
        assert!(stop(None, 0, 1, "line\nfeed").normalise().is_err());
        // An asset's own stops and the whole plant's apply to it.
        assert!(ok.applies_to(asset));
        assert!(!ok.applies_to(AssetId::new_random()));
        assert!(stop(None, 0, 1, "").applies_to(asset));
    }

    #[test]
    fn a_stop_repeats_on_the_days_listed_at_its_local_time_across_daylight_saving() {
        let at = |s: &str| s.parse::<Timestamp>().expect("instant");
        // Mondays to Fridays at 12:00 in Berlin, from Monday 22 March 2027 (CET, 11:00 UTC);
        // the clocks go forward on Sunday 28 March (CEST: 10:00 UTC).
        let lunch = PlannedStop {
            starts_at: at("2027-03-22T11:00:00Z"),
            ends_at: at("2027-03-22T11:30:00Z"),
            ..stop(None, 0, 1, "lunch")
        };
        let weekdays = Repeat {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            until: at("2027-04-03T00:00:00Z"),
            time_zone: Some("Europe/Berlin".into()),
        };
        let stops = lunch.repeated(&weekdays).expect("valid");
        let starts: Vec<String> = stops
            .iter()
            .map(|s| s.starts_at.format("%a %d %H:%M").to_string())
            .collect();
        assert_eq!(
            starts,
            [
                "Mon 22 11:00",
                "Tue 23 11:00",
                "Wed 24 11:00",
                "Thu 25 11:00",
                "Fri 26 11:00",
                "Mon 29 10:00",
                "Tue 30 10:00",
                "Wed 31 10:00",
                "Thu 01 10:00",
                "Fri 02 10:00",
            ]
        );
        assert!(
            stops
                .iter()
                .all(|s| s.ends_at - s.starts_at == chrono::Duration::minutes(30)
                    && s.reason == "lunch"
                    && s.asset_id.is_none())
        );
        let mut ids: Vec<_> = stops.iter().map(|s| s.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 10, "each its own id");
        assert!(
            stops.iter().all(|s| s.series_id == Some(stops[0].id)),
            "one series, named by its first stop"
        );
        // A weekend from Friday 22:00 to Monday 06:00 ends at 06:00 on the clock after the
        // clocks went forward (an hour shorter).
        let weekend = PlannedStop {
            starts_at: at("2027-03-19T21:00:00Z"),
            ends_at: at("2027-03-22T05:00:00Z"),
            ..stop(None, 0, 1, "no weekend shift")
        };
        let weekends = weekend
            .repeated(&Repeat {
                days: vec![Day::Fri],
                until: at("2027-04-01T00:00:00Z"),
                time_zone: Some("Europe/Berlin".into()),
            })
            .expect("valid");
        let spans: Vec<(Timestamp, Timestamp)> =
            weekends.iter().map(|s| (s.starts_at, s.ends_at)).collect();
        assert_eq!(
            spans,
            [
                (at("2027-03-19T21:00:00Z"), at("2027-03-22T05:00:00Z")),
                (at("2027-03-26T21:00:00Z"), at("2027-03-29T04:00:00Z")),
            ]
        );
        // On UTC without a zone; the first day left out when it is not listed; `until`
        // exclusive.
        let sundays = Repeat {
            days: vec![Day::Sun],
            until: at("2027-04-04T11:00:00Z"),
            time_zone: None,
        };
        let starts: Vec<Timestamp> = lunch
            .repeated(&sundays)
            .expect("valid")
            .iter()
            .map(|s| s.starts_at)
            .collect();
        assert_eq!(starts, [at("2027-03-28T11:00:00Z")]);
        // A year of days at most; none, an unknown zone, an end before the start, no stop at
        // all: refused.
        let every_day = |until: &str, zone: Option<&str>, days: Vec<Day>| Repeat {
            days,
            until: at(until),
            time_zone: zone.map(str::to_owned),
        };
        let all = Day::ALL.to_vec();
        assert_eq!(
            lunch
                .repeated(&every_day("2028-03-22T11:00:00Z", None, all.clone()))
                .map(|s| s.len()),
            Ok(366)
        );
        for bad in [
            every_day("2028-03-22T11:00:01Z", None, all.clone()),
            every_day("2027-03-22T11:00:00Z", None, all.clone()),
            every_day("2027-04-01T00:00:00Z", Some("Mars/Olympus"), all.clone()),
            every_day("2027-04-01T00:00:00Z", None, vec![]),
            every_day("2027-03-23T00:00:00Z", None, vec![Day::Sat]),
        ] {
            assert!(lunch.repeated(&bad).is_err(), "{bad:?}");
        }
    }
}
