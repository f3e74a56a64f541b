//! Production counts: how many good and rejected units an asset made in a period, as the line's
//! counters, an MES or a shift lead report them. They give OEE its quality term (good ÷ all
//! units made).

use crate::{AssetId, DomainError, Timestamp};
use serde::{Deserialize, Serialize};

/// The longest period one count may cover (a month: counts are reported per hour, shift, day
/// or order; a longer one would be spread thin over shifts it says nothing about).
pub const MAX_PRODUCTION_PERIOD_DAYS: i64 = 31;

/// The largest count of one period (far beyond any line's output; keeps sums exact in `i64`
/// and `f64`).
pub const MAX_PRODUCTION_COUNT: u64 = 1_000_000_000_000;

/// Units one asset made in `[starts_at, ends_at)`. An asset's counts never overlap one
/// another; a count sent again for the same start replaces the one recorded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Who reported them (a user or an API key's name).
    pub recorded_by: String,
    /// When they were recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub recorded_at: Timestamp,
}

impl ProductionCount {
    /// Keeps the times to the millisecond (as stored) and checks the period (ending after it
    /// starts, within [`MAX_PRODUCTION_PERIOD_DAYS`]) and the counts (at most
    /// [`MAX_PRODUCTION_COUNT`] each).
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
        Ok(self)
    }

    /// Whether its period and `other`'s share an instant.
    pub fn overlaps(&self, other: &ProductionCount) -> bool {
        self.starts_at < other.ends_at && other.starts_at < self.ends_at
    }

    /// Its units within `[from, to)`: all of them when the period lies inside, none when it
    /// lies outside, else pro rata to the time shared (a count over a shift's edge is split
    /// by the time on each side).
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
        ProductionTotals {
            good: self.good as f64 * share,
            rejected: self.rejected as f64 * share,
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
}

impl ProductionTotals {
    /// Adds `other`'s units.
    pub fn add(&mut self, other: ProductionTotals) {
        self.good += other.good;
        self.rejected += other.rejected;
    }

    /// Good ÷ all units; none when nothing was made (or reported).
    pub fn quality(&self) -> Option<f64> {
        let all = self.good + self.rejected;
        (all > 0.0).then(|| (self.good / all).clamp(0.0, 1.0))
    }
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
                rejected: 8.0
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
}
