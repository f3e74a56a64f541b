//! The maintenance crew: technicians, their skills and their shifts, from which the planner
//! knows who can do which work order and when.

use crate::{DomainError, TenantId, TimeOffId, Timestamp};
use chrono::{Datelike, Duration, NaiveTime, Offset, TimeZone};
use serde::{Deserialize, Serialize};

/// Longest technician name (as written on work orders).
pub const MAX_TECHNICIAN_NAME: usize = 100;
/// Most skills per technician.
pub const MAX_SKILLS: usize = 32;
/// Longest skill name.
pub const MAX_SKILL: usize = 64;
/// Most shifts per technician.
pub const MAX_SHIFTS: usize = 21;
/// Furthest a technician's clock may be from UTC, in minutes (UTC−14:00 … UTC+14:00).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// Longest reason given for time off.
pub const MAX_TIME_OFF_REASON: usize = crate::MAX_REASON;
/// Longest stretch of time off, in days.
pub const MAX_TIME_OFF_DAYS: i64 = 366;

/// A day of the week.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl From<chrono::Weekday> for Day {
    fn from(weekday: chrono::Weekday) -> Self {
        Self::of(weekday)
    }
}

impl Day {
    /// Every day of the week, Monday first.
    pub const ALL: [Day; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    pub(crate) fn of(weekday: chrono::Weekday) -> Self {
        match weekday {
            chrono::Weekday::Mon => Self::Mon,
            chrono::Weekday::Tue => Self::Tue,
            chrono::Weekday::Wed => Self::Wed,
            chrono::Weekday::Thu => Self::Thu,
            chrono::Weekday::Fri => Self::Fri,
            chrono::Weekday::Sat => Self::Sat,
            chrono::Weekday::Sun => Self::Sun,
        }
    }
}

/// The instant of the local time `naive` on `clock`: the earlier of two when the clocks go
/// back; when it does not exist (the clocks went forward over it, by however much), read on the
/// offset in force before the change, which lands as far after the change as it was after its
/// start.
pub(crate) fn local_instant<Z: TimeZone>(
    clock: &Z,
    naive: chrono::NaiveDateTime,
) -> Option<Timestamp> {
    if let Some(t) = clock.from_local_datetime(&naive).earliest() {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let before = clock
        .from_local_datetime(&(naive - Duration::hours(3)))
        .earliest()?
        .offset()
        .fix();
    Some(
        chrono::Utc
            .from_utc_datetime(&(naive - Duration::seconds(i64::from(before.local_minus_utc())))),
    )
}

/// A weekly shift: on each of `days`, from `start` to `end` on the technician's clock (an `end`
/// at or before `start` runs past midnight into the next day; `"24:00"` is the day's end).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shift {
    /// The days it starts on.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub days: Vec<Day>,
    /// Start, `HH:MM`.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "06:00", pattern = r"^\d{2}:\d{2}$")
    )]
    pub start: String,
    /// End, `HH:MM`.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "14:00", pattern = r"^\d{2}:\d{2}$")
    )]
    pub end: String,
}

/// Minutes after midnight of an `HH:MM` time (`24:00` is 1440).
fn minutes(what: &'static str, s: &str) -> Result<u32, DomainError> {
    let bad = || DomainError::BadName {
        what,
        value: s.to_owned(),
        rule: "a time of day as HH:MM (00:00 to 24:00)",
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

impl Shift {
    /// Start and end in minutes after the start day's midnight (end > start; up to 2880).
    pub fn span_minutes(&self) -> Result<(u32, u32), DomainError> {
        let start = minutes("shift start", &self.start)?;
        let end = minutes("shift end", &self.end)?;
        if start == 1440 {
            return Err(DomainError::BadName {
                what: "shift start",
                value: self.start.clone(),
                rule: "before 24:00",
            });
        }
        Ok((start, if end <= start { end + 1440 } else { end }))
    }

    /// Checks the days and times.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.days.is_empty() {
            return Err(DomainError::Empty("shift days"));
        }
        self.span_minutes().map(|_| ())
    }
}

/// A member of the maintenance crew, as the planner sees them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Technician {
    /// The tenant whose work orders the technician takes.
    pub tenant_id: TenantId,
    /// The name work orders are assigned to (a dashboard username where they have one).
    pub name: String,
    /// What the technician can do (`mechanical`, `electrical`, …): a work order needing a skill
    /// goes only to technicians who have it. Lower case.
    pub skills: Vec<String>,
    /// When the technician works.
    pub shifts: Vec<Shift>,
    /// The shifts' clock: minutes east of UTC (60 for UTC+01:00), when no time zone is given.
    pub utc_offset_minutes: i32,
    /// The shifts' clock as an IANA time zone (`Europe/Berlin`): daylight saving time is
    /// followed. Takes the place of the fixed offset.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// An inactive technician (away, left) is given no work.
    pub active: bool,
    /// Last change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A skill as compared: trimmed, lower case.
pub fn normalise_skill(skill: &str) -> String {
    skill.trim().to_lowercase()
}

impl Technician {
    /// Checks the name, skills, shifts and clock; skills are normalised (trimmed, lower case,
    /// sorted, once each).
    pub fn normalise(mut self) -> Result<Self, DomainError> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() {
            return Err(DomainError::Empty("technician name"));
        }
        if self.name.chars().count() > MAX_TECHNICIAN_NAME
            || self.name.chars().any(char::is_control)
        {
            return Err(DomainError::BadName {
                what: "technician name",
                value: self.name,
                rule: "at most 100 characters, none of them control characters",
            });
        }
        let mut skills: Vec<String> = self.skills.iter().map(|s| normalise_skill(s)).collect();
        skills.sort();
        skills.dedup();
        if skills.len() > MAX_SKILLS {
            return Err(DomainError::OutOfRange {
                what: "number of skills",
                value: skills.len() as f64,
                min: 0.0,
                max: MAX_SKILLS as f64,
            });
        }
        if let Some(bad) = skills.iter().find(|s| {
            s.is_empty() || s.chars().count() > MAX_SKILL || s.chars().any(char::is_control)
        }) {
            return Err(DomainError::BadName {
                what: "skill",
                value: bad.clone(),
                rule: "1 to 64 characters, none of them control characters",
            });
        }
        self.skills = skills;
        if self.shifts.len() > MAX_SHIFTS {
            return Err(DomainError::OutOfRange {
                what: "number of shifts",
                value: self.shifts.len() as f64,
                min: 0.0,
                max: MAX_SHIFTS as f64,
            });
        }
        for shift in &mut self.shifts {
            shift.validate()?;
            shift.days.sort();
            shift.days.dedup();
        }
        self.time_zone = self
            .time_zone
            .map(|z| z.trim().to_owned())
            .filter(|z| !z.is_empty());
        if let Some(zone) = &self.time_zone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(DomainError::BadName {
                what: "time zone",
                value: zone.clone(),
                rule: "an IANA time zone such as Europe/Berlin or America/Chicago",
            });
        }
        if !(-MAX_UTC_OFFSET_MINUTES..=MAX_UTC_OFFSET_MINUTES).contains(&self.utc_offset_minutes) {
            return Err(DomainError::OutOfRange {
                what: "utcOffsetMinutes",
                value: f64::from(self.utc_offset_minutes),
                min: f64::from(-MAX_UTC_OFFSET_MINUTES),
                max: f64::from(MAX_UTC_OFFSET_MINUTES),
            });
        }
        Ok(self)
    }

    /// Whether the technician has `skill` (compared normalised).
    pub fn has_skill(&self, skill: &str) -> bool {
        let skill = normalise_skill(skill);
        self.skills.contains(&skill)
    }

    /// The technician's working time within `[from, to)`: sorted, disjoint intervals (shifts
    /// that overlap or touch are joined). None when inactive. Shifts are read on the
    /// technician's time zone when they have one (daylight saving time included), else on the
    /// fixed offset.
    pub fn availability(&self, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        if !self.active || from >= to {
            return Vec::new();
        }
        if let Some(zone) = self
            .time_zone
            .as_deref()
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        {
            return self.spans_on(&zone, from, to);
        }
        match self
            .utc_offset_minutes
            .checked_mul(60)
            .and_then(chrono::FixedOffset::east_opt)
        {
            Some(clock) => self.spans_on(&clock, from, to),
            None => Vec::new(),
        }
    }

    /// The shifts within `[from, to)` on `clock`.
    fn spans_on<Z: TimeZone>(
        &self,
        clock: &Z,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<(Timestamp, Timestamp)> {
        let instant = |day: chrono::NaiveDate, minutes: u32| -> Option<Timestamp> {
            local_instant(
                clock,
                day.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minutes)),
            )
        };
        let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
        // A shift may start the day before `from` and run past midnight.
        let mut day = from.with_timezone(clock).date_naive() - Duration::days(1);
        let last = to.with_timezone(clock).date_naive();
        while day <= last {
            let today = Day::of(day.weekday());
            for shift in &self.shifts {
                let Ok((start, end)) = shift.span_minutes() else {
                    continue;
                };
                if !shift.days.contains(&today) {
                    continue;
                }
                let (Some(a), Some(b)) = (instant(day, start), instant(day, end)) else {
                    continue;
                };
                let (a, b) = (a.max(from), b.min(to));
                if a < b {
                    spans.push((a, b));
                }
            }
            day += Duration::days(1);
        }
        join_spans(spans)
    }
}

/// Time in which a technician (or, without one, the whole crew: a plant holiday, a shutdown)
/// takes no work, whatever their shifts say: the planner places nothing of theirs in it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeOff {
    /// Its id.
    pub id: TimeOffId,
    /// The tenant whose crew it concerns.
    pub tenant_id: TenantId,
    /// The technician away (a crew member's name); none: the whole crew.
    pub technician: Option<String>,
    /// When it starts.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// When it ends (after the start; at most 366 days later).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Why (`holiday`, `training`, `plant shutdown`), at most 200 characters.
    pub reason: String,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl TimeOff {
    /// Trims the technician and reason, keeps times to the millisecond (as stored), and
    /// checks the stretch: it ends after it starts, within [`MAX_TIME_OFF_DAYS`]. A blank
    /// technician is refused (none at all is the whole crew: never by accident).
    pub fn normalise(mut self) -> Result<Self, DomainError> {
        if let Some(name) = &mut self.technician {
            *name = name.trim().to_owned();
            if name.is_empty() {
                return Err(DomainError::Empty("time off technician"));
            }
        }
        self.reason = crate::checked_reason("time off reason", &self.reason)?;
        (self.starts_at, self.ends_at) = crate::checked_period(
            "time off",
            "ending after it starts, at most 366 days later",
            self.starts_at,
            self.ends_at,
            MAX_TIME_OFF_DAYS,
        )?;
        Ok(self)
    }

    /// Whether it keeps `technician` from work (their own, or the whole crew's).
    pub fn applies_to(&self, technician: &str) -> bool {
        self.technician.as_deref().is_none_or(|t| t == technician)
    }
}

impl Technician {
    /// The technician's working time within `[from, to)` ([`Technician::availability`]) less
    /// the stretches of `time_off` that apply to them.
    pub fn working_time(
        &self,
        from: Timestamp,
        to: Timestamp,
        time_off: &[TimeOff],
    ) -> Vec<(Timestamp, Timestamp)> {
        let off: Vec<(Timestamp, Timestamp)> = time_off
            .iter()
            .filter(|o| o.applies_to(&self.name))
            .map(|o| (o.starts_at, o.ends_at))
            .collect();
        subtract_spans(self.availability(from, to), &off)
    }
}

/// What is left of `spans` (sorted, disjoint) once every span of `off` (any order, may
/// overlap) is taken out: sorted, disjoint, none empty.
pub fn subtract_spans<T: Ord + Copy>(spans: Vec<(T, T)>, off: &[(T, T)]) -> Vec<(T, T)> {
    let off = join_spans(off.to_vec());
    let mut left = Vec::with_capacity(spans.len());
    for (mut a, b) in spans {
        // The stretches of time off that end after this span starts, in order.
        let first = off.partition_point(|&(_, e)| e <= a);
        for &(s, e) in &off[first..] {
            if s >= b {
                break;
            }
            if a < s {
                left.push((a, s));
            }
            a = a.max(e);
            if a >= b {
                break;
            }
        }
        if a < b {
            left.push((a, b));
        }
    }
    left
}

/// The union of `spans` as sorted, disjoint spans (empty ones dropped; spans that overlap or
/// touch joined).
pub fn join_spans<T: Ord + Copy>(mut spans: Vec<(T, T)>) -> Vec<(T, T)> {
    spans.retain(|(a, b)| a < b);
    spans.sort_unstable();
    let mut joined: Vec<(T, T)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match joined.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => joined.push((a, b)),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn at(s: &str) -> Timestamp {
        s.parse::<chrono::DateTime<Utc>>().expect("time")
    }

    fn technician(shifts: Vec<Shift>, offset: i32) -> Technician {
        Technician {
            tenant_id: TenantId::DEFAULT,
            name: "  Ana  ".into(),
            skills: vec![
                " Electrical".into(),
                "mechanical".into(),
                "electrical ".into(),
            ],
            shifts,
            utc_offset_minutes: offset,
            time_zone: None,
            active: true,
            updated_at: at("2026-12-01T00:00:00Z"),
        }
    }

    fn shift(days: &[Day], start: &str, end: &str) -> Shift {
        Shift {
            days: days.to_vec(),
            start: start.into(),
            end: end.into(),
        }
    }

    /// Berlin's clocks go forward on 2027-03-28 at 02:00 and back on 2027-10-31 at 03:00: a
    /// 06:00 shift starts at 05:00 UTC in winter, 04:00 UTC in summer; a night shift over the
    /// change is an hour shorter (or longer).
    #[test]
    fn a_time_zone_s_daylight_saving_time_is_followed() {
        let mut t = technician(vec![shift(&Day::ALL, "06:00", "14:00")], 0);
        t.time_zone = Some(" Europe/Berlin ".into());
        let t = t.normalise().expect("valid");
        assert_eq!(t.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(
            t.availability(at("2027-03-27T00:00:00Z"), at("2027-03-29T00:00:00Z")),
            [
                (at("2027-03-27T05:00:00Z"), at("2027-03-27T13:00:00Z")),
                (at("2027-03-28T04:00:00Z"), at("2027-03-28T12:00:00Z")),
            ]
        );
        let mut night = technician(vec![shift(&[Day::Sat], "22:00", "06:00")], 0);
        night.time_zone = Some("Europe/Berlin".into());
        assert_eq!(
            night.availability(at("2027-03-27T00:00:00Z"), at("2027-03-29T00:00:00Z")),
            [(at("2027-03-27T21:00:00Z"), at("2027-03-28T04:00:00Z"))],
            "seven hours"
        );
        let mut autumn = technician(vec![shift(&[Day::Sun], "01:00", "05:00")], 0);
        autumn.time_zone = Some("Europe/Berlin".into());
        assert_eq!(
            autumn.availability(at("2027-10-30T00:00:00Z"), at("2027-11-01T00:00:00Z")),
            [(at("2027-10-30T23:00:00Z"), at("2027-10-31T04:00:00Z"))],
            "five hours (02:00 to 03:00 twice)"
        );
        // Lord Howe Island moves its clocks by half an hour (02:00 → 02:30 on 2027-10-03): a
        // shift written from 02:15 starts at 02:45 local, 15:45 UTC the day before.
        let mut half = technician(vec![shift(&[Day::Sun], "02:15", "06:00")], 0);
        half.time_zone = Some("Australia/Lord_Howe".into());
        assert_eq!(
            half.availability(at("2027-10-02T00:00:00Z"), at("2027-10-04T00:00:00Z")),
            [(at("2027-10-02T15:45:00Z"), at("2027-10-02T19:00:00Z"))]
        );
        let mut bad = technician(vec![], 0);
        bad.time_zone = Some("Europe/Gotham".into());
        let e = bad.normalise().expect_err("unknown zone");
        assert!(e.to_string().contains("time zone"), "{e}");
    }

    #[test]
    fn names_and_skills_are_normalised_and_bad_values_named() {
        let t = technician(vec![shift(&[Day::Mon], "06:00", "14:00")], 60)
            .normalise()
            .expect("valid");
        assert_eq!(t.name, "Ana");
        assert_eq!(t.skills, ["electrical", "mechanical"]);
        assert!(t.has_skill(" MECHANICAL"));
        for (shifts, offset, named) in [
            (vec![shift(&[], "06:00", "14:00")], 0, "shift days"),
            (vec![shift(&[Day::Mon], "6:00", "14:00")], 0, "shift start"),
            (vec![shift(&[Day::Mon], "06:00", "24:01")], 0, "shift end"),
            (vec![shift(&[Day::Mon], "24:00", "06:00")], 0, "shift start"),
            (vec![], 15 * 60, "utcOffsetMinutes"),
            (vec![], i32::MIN, "utcOffsetMinutes"),
            (vec![shift(&[Day::Mon], "+6:+0", "14:00")], 0, "shift start"),
        ] {
            let e = technician(shifts, offset).normalise().expect_err(named);
            assert!(e.to_string().contains(named), "{named}: {e}");
        }
        let mut blank = technician(vec![], 0);
        blank.name = " ".into();
        assert_eq!(
            blank.normalise(),
            Err(DomainError::Empty("technician name"))
        );
    }

    #[test]
    fn availability_follows_the_shifts_on_the_technician_s_clock() {
        // 2026-12-07 is a Monday. Day shift Mon–Fri 06:00–14:00 at UTC+01:00, night shift
        // Sunday 22:00–06:00.
        let t = technician(
            vec![
                shift(
                    &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                    "06:00",
                    "14:00",
                ),
                shift(&[Day::Sun], "22:00", "06:00"),
            ],
            60,
        );
        let spans = t.availability(at("2026-12-06T00:00:00Z"), at("2026-12-08T12:00:00Z"));
        assert_eq!(
            spans,
            [
                // Sunday night joined with Monday's day shift (they touch at 06:00 local).
                (at("2026-12-06T21:00:00Z"), at("2026-12-07T13:00:00Z")),
                (at("2026-12-08T05:00:00Z"), at("2026-12-08T12:00:00Z")),
            ]
        );
        // Clipped to the window asked for; nothing for an inactive technician.
        assert_eq!(
            t.availability(at("2026-12-07T10:00:00Z"), at("2026-12-07T11:00:00Z")),
            [(at("2026-12-07T10:00:00Z"), at("2026-12-07T11:00:00Z"))]
        );
        let away = Technician {
            active: false,
            ..t.clone()
        };
        assert!(
            away.availability(at("2026-12-06T00:00:00Z"), at("2026-12-08T12:00:00Z"))
                .is_empty()
        );
        // "24:00" ends the day.
        let late = technician(vec![shift(&[Day::Sat], "18:00", "24:00")], 0);
        assert_eq!(
            late.availability(at("2026-12-05T00:00:00Z"), at("2026-12-06T00:00:00Z")),
            [(at("2026-12-05T18:00:00Z"), at("2026-12-06T00:00:00Z"))]
        );
    }

    fn off(technician: Option<&str>, from: &str, to: &str) -> TimeOff {
        TimeOff {
            id: TimeOffId::new_random(),
            tenant_id: TenantId::DEFAULT,
            technician: technician.map(str::to_owned),
            starts_at: at(from),
            ends_at: at(to),
            reason: " holiday ".into(),
            created_by: "mia".into(),
            created_at: at("2026-12-01T00:00:00Z"),
        }
    }

    #[test]
    fn time_off_is_taken_out_of_the_shifts_of_those_it_applies_to() {
        // Mon–Fri 06:00–14:00 UTC; Ana away Tuesday morning until 10:00, the whole crew off
        // on Wednesday (a plant holiday), Bo away on Thursday (not Ana's business).
        let mut t = technician(
            vec![shift(
                &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                "06:00",
                "14:00",
            )],
            0,
        )
        .normalise()
        .expect("valid");
        t.name = "Ana".into();
        let time_off = [
            off(Some("Ana"), "2026-12-08T00:00:00Z", "2026-12-08T10:00:00Z"),
            off(None, "2026-12-09T00:00:00Z", "2026-12-10T00:00:00Z"),
            off(Some("Bo"), "2026-12-10T00:00:00Z", "2026-12-11T00:00:00Z"),
            // Overlapping stretches of hers: one hole.
            off(Some("Ana"), "2026-12-11T07:00:00Z", "2026-12-11T09:00:00Z"),
            off(Some("Ana"), "2026-12-11T08:00:00Z", "2026-12-11T11:00:00Z"),
        ];
        assert_eq!(
            t.working_time(
                at("2026-12-07T00:00:00Z"),
                at("2026-12-12T00:00:00Z"),
                &time_off
            ),
            [
                (at("2026-12-07T06:00:00Z"), at("2026-12-07T14:00:00Z")),
                (at("2026-12-08T10:00:00Z"), at("2026-12-08T14:00:00Z")),
                (at("2026-12-10T06:00:00Z"), at("2026-12-10T14:00:00Z")),
                (at("2026-12-11T06:00:00Z"), at("2026-12-11T07:00:00Z")),
                (at("2026-12-11T11:00:00Z"), at("2026-12-11T14:00:00Z")),
            ]
        );
        assert!(time_off[1].applies_to("anyone"));
        assert!(!time_off[2].applies_to("Ana"));
    }

    #[test]
    fn subtracting_spans_leaves_what_is_outside_all_of_them() {
        let spans = vec![(0, 10), (20, 30), (40, 50)];
        assert_eq!(subtract_spans(spans.clone(), &[]), spans);
        assert_eq!(subtract_spans(spans.clone(), &[(-5, 100)]), []);
        assert_eq!(
            subtract_spans(spans.clone(), &[(25, 45), (2, 3), (5, 8)]),
            [(0, 2), (3, 5), (8, 10), (20, 25), (45, 50)]
        );
        // Touching and empty stretches take nothing more.
        assert_eq!(subtract_spans(spans.clone(), &[(10, 20), (30, 30)]), spans);
        assert_eq!(subtract_spans(vec![(0, 10)], &[(0, 10)]), []);
    }

    #[test]
    fn time_off_is_checked_and_trimmed() {
        let t = off(
            Some(" Ana "),
            "2026-12-08T00:00:00.1234Z",
            "2026-12-09T00:00:00Z",
        )
        .normalise()
        .expect("valid");
        assert_eq!(t.technician.as_deref(), Some("Ana"));
        assert_eq!(t.reason, "holiday");
        assert_eq!(
            off(Some("  "), "2026-12-08T00:00:00Z", "2026-12-09T00:00:00Z").normalise(),
            Err(DomainError::Empty("time off technician")),
            "blank is not the whole crew"
        );
        assert_eq!(t.starts_at, at("2026-12-08T00:00:00.123Z"));
        for (from, to) in [
            ("2026-12-08T00:00:00Z", "2026-12-08T00:00:00Z"),
            ("2026-12-09T00:00:00Z", "2026-12-08T00:00:00Z"),
            ("2026-12-08T00:00:00Z", "2027-12-10T00:00:00Z"),
        ] {
            let e = off(None, from, to).normalise().expect_err(to);
            assert!(e.to_string().contains("ending after it starts"), "{e}");
        }
        let mut long = off(None, "2026-12-08T00:00:00Z", "2026-12-09T00:00:00Z");
        long.reason = "x".repeat(201);
        let e = long.normalise().expect_err("long reason");
        assert!(e.to_string().contains("time off reason"), "{e}");
        let mut control = off(None, "2026-12-08T00:00:00Z", "2026-12-09T00:00:00Z");
        control.reason = "a\u{7}b".into();
        assert!(control.normalise().is_err());
    }
}
