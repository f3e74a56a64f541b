//! Event-time windows per sensor (tumbling or hopping) with a watermark, as a pure state
//! machine: no I/O, no clock of its own (the caller passes `now`).
//!
//! A sensor's watermark is the newest timestamp it has sent minus the allowed lateness. A
//! window closes once the watermark passes its end (or when the sensor stays silent, see
//! [`Windower::idle`]). A reading for a window that is already closed, or that the watermark has
//! already passed, is late: it is not merged into that window (it still joins the later windows
//! it belongs to when hopping), and the caller counts and reports it.
//!
//! A device clock that steps back (a clock reset, a wrong time zone or DST setting mended), or a
//! single reading stamped far ahead, would leave every later reading of the sensor late until
//! its time caught up again, hours or days. When all of a sensor's readings have been a whole
//! window or more behind its watermark for [`CLOCK_STEP_AFTER`] (the caller's clock), its
//! clock is taken to have stepped: its watermark starts again from the reading's time (the
//! windows still open on the old time are closed by the sensor's silence on them), and the
//! caller is told (`Added::clock_stepped`).

use mantis_domain::{AssetId, Reading, SensorId, SensorType};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Where a reading came from on the bus, to know what may be committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// The readings of one closed window, in time order (duplicates collapsed).
#[derive(Clone, Debug, PartialEq)]
pub struct RawWindow {
    /// The asset.
    pub asset_id: AssetId,
    /// The sensor.
    pub sensor_id: SensorId,
    /// What it measures.
    pub sensor_type: SensorType,
    /// Start, ms since the epoch (inclusive).
    pub start_ms: i64,
    /// End, ms since the epoch (exclusive).
    pub end_ms: i64,
    /// Timestamps in seconds since the epoch.
    pub t: Vec<f64>,
    /// Values.
    pub x: Vec<f64>,
}

#[derive(Debug)]
struct OpenWindow {
    /// Samples by timestamp (ms): duplicates collapse (the first kept), out-of-order readings
    /// sort.
    samples: BTreeMap<i64, f64>,
    /// The earliest bus position holding one of its readings.
    first: Origin,
    last_seen: Instant,
}

#[derive(Debug)]
struct SensorWindows {
    asset_id: AssetId,
    sensor_type: SensorType,
    /// The bus partition of its latest reading (a sensor's readings share one: keyed by asset).
    partition: i32,
    /// Open windows by start.
    open: BTreeMap<i64, OpenWindow>,
    /// Newest timestamp seen.
    max_ts: i64,
    /// End of the latest window closed.
    closed_until: i64,
    /// Since when every reading has been a whole window or more behind the watermark, and
    /// the timestamp of the first of them.
    behind_since: Option<(Instant, i64)>,
    /// Readings in a row naming another asset or type than `asset_id` / `sensor_type`: the
    /// sensor is taken to have moved once [`REASSIGN_AFTER`] agree.
    moving: Option<(AssetId, SensorType, u32)>,
}

impl SensorWindows {
    /// Whether `reading` moves the sensor to its asset and type: the last of
    /// [`REASSIGN_AFTER`] readings in a row naming them.
    fn moves_with(&self, reading: &Reading) -> bool {
        if self.asset_id == reading.asset_id && self.sensor_type == reading.sensor_type {
            return false;
        }
        let before = match self.moving {
            Some((asset, kind, n)) if asset == reading.asset_id && kind == reading.sensor_type => n,
            _ => 0,
        };
        before + 1 >= REASSIGN_AFTER
    }
}

/// Readings in a row that must name a sensor's new asset (or type) before its windows move
/// there: replicas of the ingestion service learn of a move within a minute of one another,
/// and meanwhile tag its readings with either asset.
const REASSIGN_AFTER: u32 = 5;

/// How long every reading of a sensor must be a whole window or more behind its watermark
/// before its clock is taken to have stepped (its watermark starts again from its readings),
/// provided their timestamps went on at the pace of that time (a clock that stepped keeps
/// ticking; history imported or a backlog replayed runs far faster, and stays late).
pub(crate) const CLOCK_STEP_AFTER: Duration = Duration::from_secs(120);

/// Window geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length.
    pub length: Duration,
    /// Distance between two window starts (= length: tumbling; < length: hopping).
    pub hop: Duration,
    /// How late a reading may arrive (behind the newest of its sensor) and still join its window.
    pub allowed_lateness: Duration,
}

/// Cuts each sensor's readings into windows.
#[derive(Debug)]
pub struct Windower {
    length_ms: i64,
    hop_ms: i64,
    lateness_ms: i64,
    sensors: HashMap<SensorId, SensorWindows>,
}

/// What adding a reading did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// Windows the reading joined.
    pub joined: usize,
    /// Whether it belonged to a window already closed (late).
    pub late: bool,
    /// Whether the sensor's clock was taken to have stepped back with this reading: its
    /// watermark starts again from it (see the module docs).
    pub clock_stepped: bool,
    /// Whether the sensor was moved to another asset, or now measures something else: its
    /// open windows were closed (under what they were read as) before this reading, and its
    /// readings for the rest of the latest of them are late.
    pub reassigned: bool,
}

impl Windower {
    /// Windows of `spec` (lengths of at least 1 ms; a hop longer than the length is clamped).
    pub fn new(spec: WindowSpec) -> Self {
        let length_ms = (spec.length.as_millis() as i64).max(1);
        Self {
            length_ms,
            hop_ms: (spec.hop.as_millis() as i64).clamp(1, length_ms),
            lateness_ms: spec.allowed_lateness.as_millis() as i64,
            sensors: HashMap::new(),
        }
    }

    /// Starts of the windows containing `ts`, oldest first.
    fn starts(&self, ts: i64) -> impl Iterator<Item = i64> + '_ {
        let newest = ts.div_euclid(self.hop_ms) * self.hop_ms;
        let count = (self.length_ms + self.hop_ms - 1) / self.hop_ms;
        (0..count)
            .rev()
            .map(move |k| newest - k * self.hop_ms)
            .filter(move |s| *s > ts - self.length_ms)
    }

    /// The windows that adding `reading` will close, without changing anything: lets the caller
    /// publish them first and apply the change only once that succeeded.
    pub fn closing(&self, reading: &Reading) -> Vec<RawWindow> {
        let Some(s) = self.sensors.get(&reading.sensor_id) else {
            return Vec::new();
        };
        let ts = reading.timestamp.timestamp_millis();
        let watermark = s.max_ts.max(ts).saturating_sub(self.lateness_ms);
        // Moved to another asset (or measuring something else now): what it read so far is
        // the old asset's, closed as such.
        let reassigned = s.moves_with(reading);
        s.open
            .iter()
            .take_while(|(start, _)| reassigned || *start + self.length_ms <= watermark)
            .map(|(start, w)| self.raw(reading.sensor_id, s, *start, w))
            .collect()
    }

    /// Adds `reading`, closing (and dropping) the windows [`Windower::closing`] returned.
    pub fn add(&mut self, reading: &Reading, origin: Origin, now: Instant) -> Added {
        let ts = reading.timestamp.timestamp_millis();
        let starts: Vec<i64> = self.starts(ts).collect();
        let (length, lateness) = (self.length_ms, self.lateness_ms);
        let s = self
            .sensors
            .entry(reading.sensor_id)
            .or_insert_with(|| SensorWindows {
                asset_id: reading.asset_id,
                sensor_type: reading.sensor_type,
                partition: origin.partition,
                open: BTreeMap::new(),
                max_ts: i64::MIN,
                closed_until: i64::MIN,
                behind_since: None,
                moving: None,
            });
        s.partition = origin.partition;
        let mut added = Added {
            joined: 0,
            late: false,
            clock_stepped: false,
            reassigned: false,
        };
        let moved = s.moves_with(reading);
        s.moving = if s.asset_id == reading.asset_id && s.sensor_type == reading.sensor_type {
            None
        } else {
            match s.moving {
                Some((asset, kind, n))
                    if asset == reading.asset_id && kind == reading.sensor_type =>
                {
                    Some((asset, kind, n + 1))
                }
                _ => Some((reading.asset_id, reading.sensor_type, 1)),
            }
        };
        if moved {
            s.moving = None;
            // Its open windows were closed under the old asset ([`Windower::closing`]).
            if let Some((&last, _)) = s.open.last_key_value() {
                s.closed_until = s.closed_until.max(last + length);
            }
            s.open.clear();
            s.asset_id = reading.asset_id;
            s.sensor_type = reading.sensor_type;
            added.reassigned = true;
        }
        let watermark_before = s.max_ts.saturating_sub(lateness);
        // A whole window or more behind: no straggler, the clock itself may have stepped.
        let far_behind = ts.saturating_add(length) <= watermark_before;
        if !far_behind {
            s.behind_since = None;
        } else if let Some((since, first_ts)) = s.behind_since
            && now.saturating_duration_since(since) >= CLOCK_STEP_AFTER
        {
            // Their time went on at the pace of the clock (within a factor of two): a clock
            // that stepped, not history sent in bulk.
            let elapsed =
                i64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(i64::MAX);
            let advanced = ts.saturating_sub(first_ts);
            if advanced >= elapsed / 2 && advanced <= elapsed.saturating_mul(2) {
                s.behind_since = None;
                s.max_ts = ts;
                s.closed_until = i64::MIN;
                added.clock_stepped = true;
            } else {
                // Measured again from here.
                s.behind_since = Some((now, ts));
            }
        } else if s.behind_since.is_none() {
            s.behind_since = Some((now, ts));
        }
        let watermark_before = if added.clock_stepped {
            ts.saturating_sub(lateness)
        } else {
            watermark_before
        };
        for start in starts {
            let end = start + length;
            if !s.open.contains_key(&start) && end <= s.closed_until.max(watermark_before) {
                added.late = true;
                continue;
            }
            let w = s.open.entry(start).or_insert_with(|| OpenWindow {
                samples: BTreeMap::new(),
                first: origin,
                last_seen: now,
            });
            // The first value of a timestamp is kept, as the raw table keeps it (a window
            // rebuilt from either reads the same), and as the cleaner's `KeepFirst` would.
            w.samples.entry(ts).or_insert(reading.value);
            w.first = w.first.min(origin);
            w.last_seen = now;
            added.joined += 1;
        }
        s.max_ts = s.max_ts.max(ts);
        let watermark = s.max_ts.saturating_sub(lateness);
        while let Some((&start, _)) = s.open.first_key_value() {
            if start + length > watermark {
                break;
            }
            s.open.remove(&start);
            s.closed_until = s.closed_until.max(start + length);
        }
        added
    }

    /// Windows whose sensor has sent nothing for `idle` as of `now` (not removed yet).
    pub fn idle(&self, now: Instant, idle: Duration) -> Vec<RawWindow> {
        let mut out = Vec::new();
        for (id, s) in &self.sensors {
            for (start, w) in &s.open {
                if now.saturating_duration_since(w.last_seen) >= idle {
                    out.push(self.raw(*id, s, *start, w));
                }
            }
        }
        out
    }

    /// Moves every open window's idle clock on by `by`, to `now` at most: time in which the
    /// consumer read nothing (a record retried while the store was down) is not silence of the
    /// sensors.
    pub fn postpone_idle(&mut self, by: Duration, now: Instant) {
        for s in self.sensors.values_mut() {
            for w in s.open.values_mut() {
                w.last_seen = (w.last_seen + by).min(now);
            }
        }
    }

    /// Removes the open window of `sensor` starting at `start_ms` (after it was published).
    pub fn remove(&mut self, sensor: SensorId, start_ms: i64) {
        if let Some(s) = self.sensors.get_mut(&sensor)
            && s.open.remove(&start_ms).is_some()
        {
            s.closed_until = s.closed_until.max(start_ms + self.length_ms);
        }
    }

    /// Forgets every sensor whose readings come from one of `partitions` (taken by a
    /// rebalance: their next owner rebuilds the open windows from the log), open windows,
    /// watermark and all; returns those sensors.
    pub fn revoke(&mut self, partitions: &[i32]) -> Vec<SensorId> {
        let gone: Vec<SensorId> = self
            .sensors
            .iter()
            .filter(|(_, s)| {
                partitions.contains(&s.partition)
                    || s.open
                        .values()
                        .any(|w| partitions.contains(&w.first.partition))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.sensors.remove(id);
        }
        gone
    }

    /// Forgets `sensor` (its watermark) unless it has an open window; returns whether it is
    /// gone.
    pub fn forget(&mut self, sensor: SensorId) -> bool {
        match self.sensors.get(&sensor) {
            Some(s) if !s.open.is_empty() => false,
            _ => {
                self.sensors.remove(&sensor);
                true
            }
        }
    }

    /// Number of sensors it keeps state of.
    pub fn sensors(&self) -> usize {
        self.sensors.len()
    }

    /// The earliest bus offset still needed by an open window in `partition`.
    pub fn earliest_needed(&self, partition: i32) -> Option<i64> {
        self.sensors
            .values()
            .flat_map(|s| s.open.values())
            .filter(|w| w.first.partition == partition)
            .map(|w| w.first.offset)
            .min()
    }

    /// Number of open windows.
    pub fn open_windows(&self) -> usize {
        self.sensors.values().map(|s| s.open.len()).sum()
    }

    fn raw(&self, sensor_id: SensorId, s: &SensorWindows, start: i64, w: &OpenWindow) -> RawWindow {
        RawWindow {
            asset_id: s.asset_id,
            sensor_id,
            sensor_type: s.sensor_type,
            start_ms: start,
            end_ms: start + self.length_ms,
            t: w.samples.keys().map(|ms| *ms as f64 / 1000.0).collect(),
            x: w.samples.values().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::{Quality, SourceProtocol};

    const T0: i64 = 1_763_892_000_000; // a multiple of 30 s

    fn reading(sensor: SensorId, secs: f64, value: f64) -> Reading {
        Reading {
            timestamp: mantis_domain::timestamp_from_millis(T0 + (secs * 1000.0) as i64)
                .expect("valid"),
            asset_id: AssetId(sensor.0),
            sensor_id: sensor,
            sensor_code: "S".into(),
            sensor_type: SensorType::Vibration,
            value,
            unit: "mm/s".into(),
            quality: Quality::GOOD,
            source: SourceProtocol::Simulator,
            metadata: Default::default(),
        }
    }

    fn o(offset: i64) -> Origin {
        Origin {
            partition: 0,
            offset,
        }
    }

    fn tumbling(lateness_secs: u64) -> Windower {
        Windower::new(WindowSpec {
            length: Duration::from_secs(30),
            hop: Duration::from_secs(30),
            allowed_lateness: Duration::from_secs(lateness_secs),
        })
    }

    /// Adds like the handler does: closing windows first, then the reading.
    fn feed(w: &mut Windower, r: &Reading, offset: i64) -> (Vec<RawWindow>, Added) {
        let closing = w.closing(r);
        let added = w.add(r, o(offset), Instant::now());
        (closing, added)
    }

    #[test]
    fn the_watermark_closes_a_window_once_lateness_has_passed() {
        let s = SensorId::new_random();
        let mut w = tumbling(5);
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            feed(&mut w, &reading(s, i as f64, v), i as i64);
        }
        // 33 s: the watermark (28 s) has not passed the end (30 s) yet.
        let (closed, _) = feed(&mut w, &reading(s, 33.0, 9.0), 3);
        assert!(closed.is_empty());
        // A reading 4 s late still joins the first window.
        let (_, added) = feed(&mut w, &reading(s, 29.0, 4.0), 4);
        assert_eq!(
            added,
            Added {
                joined: 1,
                late: false,
                clock_stepped: false,
                reassigned: false
            }
        );
        let (closed, _) = feed(&mut w, &reading(s, 35.0, 9.0), 5);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].x, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((closed[0].end_ms - closed[0].start_ms), 30_000);
        assert_eq!(w.earliest_needed(0), Some(3));
    }

    #[test]
    fn readings_past_the_lateness_are_late_and_not_merged() {
        let s = SensorId::new_random();
        let mut w = tumbling(5);
        feed(&mut w, &reading(s, 0.0, 1.0), 0);
        feed(&mut w, &reading(s, 40.0, 1.0), 1);
        let (_, added) = feed(&mut w, &reading(s, 5.0, 1.0), 2);
        assert_eq!(
            added,
            Added {
                joined: 0,
                late: true,
                clock_stepped: false,
                reassigned: false
            }
        );
        // A window the watermark passed before it ever opened is late too.
        feed(&mut w, &reading(s, 200.0, 1.0), 3);
        let (_, added) = feed(&mut w, &reading(s, 100.0, 1.0), 4);
        assert!(added.late);
    }

    #[test]
    fn a_clock_stepped_back_restarts_the_watermark_once_readings_stay_behind() {
        let s = SensorId::new_random();
        let mut w = tumbling(2);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // Readings up to 3 600 s, then the device clock goes back an hour.
        for (i, secs) in (3_570..=3_600).step_by(5).enumerate() {
            w.add(&reading(s, f64::from(secs), 1.0), o(i as i64), at(0));
        }
        let mut offset = 100;
        let mut next = |w: &mut Windower, secs: f64, now: Instant| {
            offset += 1;
            let r = reading(s, secs, 2.0);
            let closing = w.closing(&r);
            (closing, w.add(&r, o(offset), now))
        };
        // Late for less than CLOCK_STEP_AFTER: late, as a straggler would be.
        let (_, added) = next(&mut w, 0.0, at(1));
        assert!(added.late && !added.clock_stepped);
        let (_, added) = next(&mut w, 60.0, at(61));
        assert!(added.late && !added.clock_stepped);
        // A reading on time in between (a straggler within the lateness) means the clock has
        // not stepped: the wait starts again.
        let (_, added) = next(&mut w, 3_595.0, at(62));
        assert!(!added.late);
        let (_, added) = next(&mut w, 65.0, at(63));
        assert!(added.late && !added.clock_stepped, "the wait starts again");
        let (closed, added) = next(&mut w, 190.0, at(63 + CLOCK_STEP_AFTER.as_secs()));
        assert!(closed.is_empty(), "a step closes nothing: {closed:?}");
        assert_eq!(
            added,
            Added {
                joined: 1,
                late: false,
                clock_stepped: true,
                reassigned: false
            }
        );
        // From then on the new time windows as usual.
        let (_, added) = next(&mut w, 195.0, at(190));
        assert_eq!(added.joined, 1);
        let (closed, _) = next(&mut w, 215.0, at(191));
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start_ms - T0, closed[0].x.len()), (180_000, 2));
        // The window left open on the old time is closed by the sensor's silence on it.
        let idle = w.idle(at(191 + 60), Duration::from_secs(30));
        assert!(
            idle.iter().any(|r| r.start_ms - T0 == 3_600_000),
            "{:?}",
            idle.iter().map(|r| r.start_ms - T0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_sensor_moved_to_another_asset_closes_its_windows_under_the_old_one() {
        let s = SensorId::new_random();
        let mut w = tumbling(2);
        let old = AssetId(s.0);
        let new = AssetId::new_random();
        let on = |asset: AssetId, secs: f64| Reading {
            asset_id: asset,
            ..reading(s, secs, secs)
        };
        feed(&mut w, &on(old, 61.0), 0);
        // Tagged with either asset for a while (the ingestion replicas learn of the move one
        // after the other): no move.
        for (i, secs) in [62.0, 64.0, 66.0, 68.0].into_iter().enumerate() {
            let asset = if i % 2 == 0 { new } else { old };
            let (closed, added) = feed(&mut w, &on(asset, secs), 1 + i as i64);
            assert!(closed.is_empty() && !added.reassigned);
        }
        // Then five in a row name the new asset: moved with the fifth.
        let mut moved = None;
        for (i, secs) in [70.0, 72.0, 74.0, 76.0, 78.0].into_iter().enumerate() {
            let (closed, added) = feed(&mut w, &on(new, secs), 10 + i as i64);
            if added.reassigned {
                moved = Some((i, closed));
            }
        }
        let (i, closed) = moved.expect("moved");
        assert_eq!(i, 4, "with the fifth in a row");
        assert_eq!(
            closed
                .iter()
                .map(|r| (r.start_ms - T0, r.asset_id, r.x.len()))
                .collect::<Vec<_>>(),
            vec![(60_000, old, 9)],
            "the open window, under the old asset"
        );
        // The rest of that window's time is late; the next window is the new asset's.
        let (_, added) = feed(&mut w, &on(new, 80.0), 20);
        assert!(added.late);
        feed(&mut w, &on(new, 95.0), 21);
        let (closed, _) = feed(&mut w, &on(new, 125.0), 22);
        assert_eq!(
            closed
                .iter()
                .map(|r| (r.start_ms - T0, r.asset_id, r.x.clone()))
                .collect::<Vec<_>>(),
            vec![(90_000, new, vec![95.0])],
            "the new asset's"
        );
    }

    #[test]
    fn history_sent_in_bulk_for_a_live_sensor_stays_late_and_never_steps_its_clock() {
        let s = SensorId::new_random();
        let mut w = tumbling(2);
        let start = Instant::now();
        w.add(&reading(s, 100_000.0, 1.0), o(0), start);
        // An import of the day before, 50 readings a second for four minutes, one a second
        // of its time each.
        for i in 0..12_000u64 {
            let added = w.add(
                &reading(s, i as f64, 2.0),
                o(1 + i as i64),
                start + Duration::from_millis(20 * i),
            );
            assert!(added.late && !added.clock_stepped, "reading {i}");
        }
    }

    #[test]
    fn a_reading_stamped_far_ahead_leaves_the_sensor_late_only_until_its_clock_is_believed_again() {
        let s = SensorId::new_random();
        let mut w = tumbling(2);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        w.add(&reading(s, 0.0, 1.0), o(0), at(0));
        w.add(&reading(s, 1_000.0, 9.0), o(1), at(1)); // one stamp far ahead
        let mut late = 0;
        let mut stepped_at = None;
        for i in 2..300u64 {
            let added = w.add(&reading(s, i as f64, 1.0), o(i as i64), at(i));
            if added.late {
                late += 1;
            }
            if added.clock_stepped {
                stepped_at.get_or_insert(i);
            }
        }
        // Late for CLOCK_STEP_AFTER, not for the 1 000 s until its time came back.
        assert_eq!(stepped_at, Some(2 + CLOCK_STEP_AFTER.as_secs()));
        assert_eq!(late, CLOCK_STEP_AFTER.as_secs());
    }

    #[test]
    fn hopping_windows_overlap_and_each_reading_joins_every_window_it_falls_in() {
        let s = SensorId::new_random();
        let mut w = Windower::new(WindowSpec {
            length: Duration::from_secs(30),
            hop: Duration::from_secs(10),
            allowed_lateness: Duration::ZERO,
        });
        let (_, added) = feed(&mut w, &reading(s, 25.0, 1.0), 0);
        assert_eq!(added.joined, 3); // windows starting at 0, 10 and 20 s
        let mut closed = Vec::new();
        for (i, secs) in [31.0, 41.0, 51.0, 61.0].into_iter().enumerate() {
            closed.extend(feed(&mut w, &reading(s, secs, 2.0), i as i64 + 1).0);
        }
        let starts: Vec<i64> = closed.iter().map(|c| (c.start_ms - T0) / 1000).collect();
        assert_eq!(starts, vec![0, 10, 20, 30]);
        assert_eq!(closed[2].x, vec![1.0, 2.0, 2.0]); // [20, 50): 25, 31, 41
    }

    #[test]
    fn duplicates_count_once_and_out_of_order_readings_sort() {
        let s = SensorId::new_random();
        let mut w = tumbling(10);
        feed(&mut w, &reading(s, 2.0, 2.0), 0);
        feed(&mut w, &reading(s, 1.0, 1.0), 1);
        feed(&mut w, &reading(s, 2.0, 2.5), 2);
        let (closed, _) = feed(&mut w, &reading(s, 45.0, 0.0), 3);
        assert_eq!(
            closed[0].x,
            vec![1.0, 2.0],
            "the first value of a timestamp is kept"
        );
        assert_eq!(closed[0].t[1] - closed[0].t[0], 1.0);
    }

    #[test]
    fn idle_windows_are_found_and_removed_after_publication() {
        let (a, b) = (SensorId::new_random(), SensorId::new_random());
        let mut w = tumbling(0);
        let t0 = Instant::now();
        w.add(&reading(a, 0.0, 1.0), o(0), t0);
        w.add(&reading(b, 0.0, 1.0), o(1), t0 + Duration::from_secs(50));
        let idle = w.idle(t0 + Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].sensor_id, a);
        w.remove(a, idle[0].start_ms);
        assert_eq!(w.open_windows(), 1);
        assert_eq!(w.earliest_needed(0), Some(1));
        assert!(w.add(&reading(a, 3.0, 1.0), o(2), t0).late);
    }

    #[test]
    fn a_stall_of_the_consumer_does_not_make_windows_idle() {
        let s = SensorId::new_random();
        let mut w = tumbling(0);
        let t0 = Instant::now();
        w.add(&reading(s, 0.0, 1.0), o(0), t0);
        let after = t0 + Duration::from_secs(90);
        assert_eq!(w.idle(after, Duration::from_secs(60)).len(), 1);
        w.postpone_idle(Duration::from_secs(89), after);
        assert!(w.idle(after, Duration::from_secs(60)).is_empty());
        assert_eq!(
            w.idle(after + Duration::from_secs(59), Duration::from_secs(60))
                .len(),
            1
        );
        // Never past now: a window seen during the stall closes when it would have.
        w.postpone_idle(Duration::from_secs(3_600), after);
        assert_eq!(
            w.idle(after + Duration::from_secs(60), Duration::from_secs(60))
                .len(),
            1
        );
    }

    #[test]
    fn a_revoked_partition_forgets_its_sensors_and_only_them() {
        let mut w = tumbling(0);
        let t0 = Instant::now();
        let (a, b) = (SensorId::new_random(), SensorId::new_random());
        let at = |partition, offset| Origin { partition, offset };
        w.add(&reading(a, 1.0, 1.0), at(1, 10), t0);
        w.add(&reading(b, 1.0, 1.0), at(2, 20), t0);
        w.add(&reading(a, 11.0, 1.0), at(1, 11), t0);
        // [0, 30) of `a` closes; its readings from 31 s on are in [30, 60).
        w.add(&reading(a, 31.0, 1.0), at(1, 12), t0);
        assert!(w.add(&reading(a, 2.0, 1.0), at(1, 13), t0).late);
        assert_eq!(w.revoke(&[3]), vec![]);
        assert_eq!(w.revoke(&[1]), vec![a]);
        assert_eq!(w.earliest_needed(1), None, "nothing of partition 1 is held");
        assert_eq!(
            w.idle(t0 + Duration::from_secs(3600), Duration::ZERO).len(),
            1
        );
        assert_eq!(w.earliest_needed(2), Some(20));
        assert_eq!(w.open_windows(), 1);
        // Given back later, the sensor starts afresh: its old watermark does not make the
        // redelivered readings late.
        assert!(!w.add(&reading(a, 1.0, 1.0), at(1, 10), t0).late);
    }

    #[test]
    fn closing_changes_nothing() {
        let s = SensorId::new_random();
        let mut w = tumbling(0);
        feed(&mut w, &reading(s, 0.0, 1.0), 0);
        assert_eq!(w.closing(&reading(s, 45.0, 1.0)).len(), 1);
        assert_eq!(w.open_windows(), 1);
        assert_eq!(feed(&mut w, &reading(s, 1.0, 1.0), 1).1.joined, 1);
    }
}
