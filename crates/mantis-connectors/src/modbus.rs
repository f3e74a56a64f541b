//! The Modbus TCP source (tokio-modbus): polls a device on a schedule, one request per block of
//! contiguous registers (`plan`), decodes each point (`decode`) and delivers the readings.
//!
//! Device errors never stop the source:
//! - a Modbus exception (the device answered "illegal data address", "device busy", ...) turns
//!   the points of that block into quality-0 readings carrying the reason (metadata
//!   `qualityReason`) and puts the source in state `ERROR` with the reason as `lastError`;
//! - a timeout or a lost connection does the same for every point not read, then the session
//!   ends and the supervisor reconnects with back-off.
//!
//! Bad quality is reported by exception: one quality-0 reading per point when it turns bad or
//! its reason changes (not one per poll while a device is down), carrying the point's last good
//! value (0 before the first); the next good value clears it.

pub(crate) mod decode;
pub(crate) mod plan;

use crate::config::{ModbusConfig, RegisterTable};
use crate::runtime::{SessionCtx, SessionError, Source};
use async_trait::async_trait;
use mantis_domain::{IncomingReading, Quality, SensorRef, SourceProtocol, Timestamp};
use plan::Block;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_modbus::client::{Client as _, Context, Reader};

pub(crate) struct ModbusSource {
    config: ModbusConfig,
    blocks: Vec<Block>,
    points: Mutex<PointStates>,
}

#[derive(Default)]
struct PointStates {
    /// The reason each bad point was last reported with.
    bad: HashMap<usize, String>,
    /// The last good value of each point.
    last_good: HashMap<usize, f64>,
}

enum Data {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

impl ModbusSource {
    pub(crate) fn new(config: ModbusConfig) -> Self {
        let blocks = plan::plan(
            &config.points,
            config.max_block_registers,
            config.max_block_gap,
        );
        Self {
            config,
            blocks,
            points: Mutex::new(PointStates::default()),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, PointStates> {
        self.points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn active(&self) -> Vec<String> {
        self.blocks.iter().map(Block::describe).collect()
    }

    fn reading(&self, i: usize, value: f64, at: Timestamp) -> Option<IncomingReading> {
        let p = self.config.points.get(i)?;
        Some(IncomingReading {
            timestamp: at,
            asset_id: None,
            sensor: SensorRef::parse(&p.sensor),
            value,
            unit: p.unit.clone(),
            quality: Quality::GOOD,
            metadata: BTreeMap::new(),
        })
    }

    fn good(&self, i: usize, value: f64, at: Timestamp) -> Option<IncomingReading> {
        let mut s = self.states();
        s.bad.remove(&i);
        s.last_good.insert(i, value);
        self.reading(i, value, at)
    }

    /// Quality-0 readings for the `points` whose bad reason is new.
    fn bad(
        &self,
        points: impl IntoIterator<Item = usize>,
        reason: &str,
        at: Timestamp,
    ) -> Vec<IncomingReading> {
        let mut out = Vec::new();
        let mut s = self.states();
        for i in points {
            if s.bad.get(&i).is_some_and(|r| r == reason) {
                continue;
            }
            s.bad.insert(i, reason.to_owned());
            let last = s.last_good.get(&i).copied().unwrap_or(0.0);
            if let Some(mut r) = self.reading(i, last, at) {
                r.quality = Quality::new(0).unwrap_or_default();
                r.metadata
                    .insert(IncomingReading::QUALITY_REASON.into(), reason.to_owned());
                out.push(r);
            }
        }
        out
    }

    fn decode_block(&self, block: &Block, data: &Data, at: Timestamp) -> Vec<IncomingReading> {
        let mut out = Vec::new();
        for &i in &block.points {
            let Some(p) = self.config.points.get(i) else {
                continue;
            };
            let offset = usize::from(p.address.saturating_sub(block.start));
            let raw = match data {
                Data::Words(w) => w
                    .get(offset..)
                    .and_then(|w| decode::raw_from_registers(w, p)),
                Data::Bits(b) => b.get(offset).map(|bit| decode::raw_from_bit(*bit)),
            };
            match raw.map(|raw| decode::scaled(raw, p)) {
                Some(value) if value.is_finite() => out.extend(self.good(i, value, at)),
                // A float register holding NaN or infinity: many devices mark a sensor fault
                // that way. A bad-quality reading (with the last good value), not a value.
                Some(_) => out.extend(self.bad(
                    [i],
                    "the device reported a non-finite value (NaN or infinity: a sensor fault)",
                    at,
                )),
                None => out.extend(self.bad(
                    [i],
                    &format!(
                        "the device answered {} with too few values",
                        block.describe()
                    ),
                    at,
                )),
            }
        }
        out
    }

    async fn connect(&self) -> Result<Context, String> {
        let target = format!("{}:{}", self.config.host, self.config.port);
        let addrs = tokio::net::lookup_host(&target)
            .await
            .map_err(|e| format!("cannot resolve {target}: {e}"))?;
        let mut last = format!("{target} resolves to no address");
        for addr in addrs {
            match tokio_modbus::client::tcp::connect_slave(
                addr,
                tokio_modbus::Slave(self.config.unit_id),
            )
            .await
            {
                Ok(ctx) => return Ok(ctx),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }

    async fn deliver(&self, ctx: &SessionCtx, readings: Vec<IncomingReading>, deadline: Instant) {
        if readings.is_empty() {
            return;
        }
        let n = readings.len();
        if ctx
            .deliver(readings, SourceProtocol::ModbusTcp, Some(deadline))
            .await
            .is_none()
            && !ctx.stop.is_cancelled()
        {
            // A polled value cannot be asked for again: counted and logged, never silent. A
            // fault reported by this poll was not delivered: reported again by the next poll
            // that still finds it (a point's bad reason is otherwise sent once).
            self.states().bad.clear();
            crate::metrics::error(&ctx.name, "dropped");
            tracing::warn!(connector = %ctx.name, readings = n, "readings of this poll dropped: the sink stayed unavailable until the next poll");
        }
    }
}

async fn read(mb: &mut Context, b: &Block) -> tokio_modbus::Result<Data> {
    Ok(match b.table {
        RegisterTable::Holding => mb
            .read_holding_registers(b.start, b.count)
            .await?
            .map(Data::Words),
        RegisterTable::Input => mb
            .read_input_registers(b.start, b.count)
            .await?
            .map(Data::Words),
        RegisterTable::Coil => mb.read_coils(b.start, b.count).await?.map(Data::Bits),
        RegisterTable::DiscreteInput => mb
            .read_discrete_inputs(b.start, b.count)
            .await?
            .map(Data::Bits),
    })
}

/// The next clock-aligned poll strictly after `now_ms` (since the epoch): its slot `k` (the
/// instant `k × interval_ms + offset_ms`) and the milliseconds until it.
fn next_aligned(now_ms: i64, interval_ms: u64, offset_ms: u64) -> (i64, u64) {
    let interval = i64::try_from(interval_ms.max(1)).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset_ms).unwrap_or(0) % interval;
    let since = now_ms.saturating_sub(offset);
    let wait = interval - since.rem_euclid(interval);
    (
        since.div_euclid(interval).saturating_add(1),
        u64::try_from(wait).unwrap_or(0),
    )
}

/// How far back the wall clock may step before aligned polling restarts from the new time
/// rather than waiting for the clock to pass the last instant polled.
const CLOCK_STEP_TOLERANCE_MS: u64 = 60_000;

/// The clock-aligned slots a session has polled. A wall clock stepped back by up to a minute
/// (an NTP correction) brings slots already polled round again: they are not polled twice, the
/// device goes unread until the clock passes the last one (at most that minute). A larger step
/// back (a clock set by hand, a bad RTC corrected) restarts the count at once, with a warning,
/// rather than leaving the device unread for as long.
struct Slots {
    last: Option<i64>,
    tolerance: i64,
}

impl Slots {
    /// Slots of `interval_ms`.
    fn new(interval_ms: u64) -> Self {
        let tolerance = (CLOCK_STEP_TOLERANCE_MS / interval_ms.max(1)).max(1);
        Self {
            last: None,
            tolerance: i64::try_from(tolerance).unwrap_or(i64::MAX),
        }
    }

    /// Whether `slot` is due; it then counts as the last polled.
    fn claim(&mut self, slot: i64) -> bool {
        let due = match self.last {
            None => true,
            Some(last) if slot > last => true,
            Some(last) if slot < last.saturating_sub(self.tolerance) => {
                tracing::warn!(
                    slots_back = last.saturating_sub(slot),
                    "the wall clock stepped back; aligned polling restarts from now"
                );
                true
            }
            Some(_) => false,
        };
        if due {
            self.last = Some(slot);
        }
        due
    }
}

#[async_trait]
impl Source for ModbusSource {
    async fn session(self: Arc<Self>, ctx: SessionCtx) -> Result<(), SessionError> {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let request_timeout = Duration::from_millis(self.config.request_timeout_ms.max(1));
        let connect_timeout = Duration::from_millis(self.config.connect_timeout_ms.max(1));
        let all_points = || 0..self.config.points.len();
        let mut mb = match tokio::time::timeout(connect_timeout, self.connect()).await {
            Ok(Ok(mb)) => mb,
            Ok(Err(e)) => {
                let bad = self.bad(
                    all_points(),
                    &format!("device unreachable: {e}"),
                    chrono::Utc::now(),
                );
                self.deliver(&ctx, bad, Instant::now() + poll).await;
                return Err(SessionError::Connect(e));
            }
            Err(_) => {
                let why = format!("no connection within {} ms", connect_timeout.as_millis());
                let bad = self.bad(
                    all_points(),
                    &format!("device unreachable: {why}"),
                    chrono::Utc::now(),
                );
                self.deliver(&ctx, bad, Instant::now() + poll).await;
                return Err(SessionError::Connect(why));
            }
        };
        tracing::info!(connector = %ctx.name, blocks = self.blocks.len(), "connected");
        ctx.connected(self.active());
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let aligned = self.config.poll_offset_ms;
        let poll_ms = u64::try_from(poll.as_millis()).unwrap_or(u64::MAX);
        // The clock-aligned slots polled: a clock stepping back does not poll one again.
        let mut slots = Slots::new(poll_ms);
        loop {
            let next_poll = async {
                match aligned {
                    Some(offset) => loop {
                        let now_ms = chrono::Utc::now().timestamp_millis();
                        let (slot, wait) = next_aligned(now_ms, poll_ms, offset);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        if slots.claim(slot) {
                            break;
                        }
                    },
                    None => {
                        ticker.tick().await;
                    }
                }
            };
            tokio::select! {
                biased;
                () = ctx.stop.cancelled() => {
                    let _ = mb.disconnect().await;
                    return Ok(());
                }
                () = next_poll => {}
            }
            let at = chrono::Utc::now();
            let deadline = Instant::now() + poll;
            let mut readings = Vec::new();
            let mut exceptions = Vec::new();
            let mut failure = None;
            for (k, block) in self.blocks.iter().enumerate() {
                match tokio::time::timeout(request_timeout, read(&mut mb, block)).await {
                    Ok(Ok(Ok(data))) => {
                        ctx.status.received(1);
                        readings.extend(self.decode_block(block, &data, at));
                    }
                    Ok(Ok(Err(code))) => {
                        ctx.status.received(1);
                        let reason = format!(
                            "Modbus exception 0x{:02X} ({code}) reading {}",
                            u8::from(code),
                            block.describe()
                        );
                        readings.extend(self.bad(block.points.iter().copied(), &reason, at));
                        exceptions.push(reason);
                    }
                    Ok(Err(e)) => {
                        failure = Some((k, SessionError::Connection(e.to_string())));
                        break;
                    }
                    Err(_) => {
                        failure = Some((
                            k,
                            SessionError::Timeout(format!(
                                "no answer to {} within {} ms",
                                block.describe(),
                                request_timeout.as_millis()
                            )),
                        ));
                        break;
                    }
                }
            }
            if let Some((k, e)) = failure {
                // The rest of this poll is lost: every point not read is bad, then reconnect
                // (after a timeout a late answer could be taken for the next request's).
                let unread = self.blocks[k..]
                    .iter()
                    .flat_map(|b| b.points.iter().copied());
                readings.extend(self.bad(unread, &e.to_string(), at));
                crate::metrics::bad_quality(&ctx.name, bad_count(&readings));
                self.deliver(&ctx, readings, deadline).await;
                return Err(e);
            }
            if exceptions.is_empty() {
                ctx.status.healthy();
            } else {
                let detail = exceptions.join("; ");
                tracing::warn!(connector = %ctx.name, %detail, "device answered with exceptions");
                ctx.status
                    .error("exception", &detail, Some(crate::ConnectorState::Error));
            }
            crate::metrics::bad_quality(&ctx.name, bad_count(&readings));
            self.deliver(&ctx, readings, deadline).await;
        }
    }
}

fn bad_count(readings: &[IncomingReading]) -> u64 {
    readings.iter().filter(|r| r.quality.get() == 0).count() as u64
}

#[cfg(test)]
mod tests {
    use super::{Data, ModbusSource, Slots, next_aligned};
    use crate::config::ModbusConfig;

    /// A float register holding NaN (a common sensor-fault marker) is a bad-quality reading
    /// carrying the last good value, not a value: a NaN reading would be refused downstream,
    /// and so would every later quality-0 reading carrying it.
    #[test]
    fn a_non_finite_float_is_a_bad_quality_reading_with_the_last_good_value() {
        let config: ModbusConfig = serde_json::from_value(serde_json::json!({
            "name": "plc", "host": "127.0.0.1",
            "points": [{"sensor": "F", "address": 0, "data_type": "f32"}],
        }))
        .expect("config");
        let source = ModbusSource::new(config);
        let block = source.blocks[0].clone();
        let at = chrono::Utc::now();
        let good = source.decode_block(&block, &Data::Words(vec![0x4148, 0x0000]), at);
        assert_eq!((good[0].value, good[0].quality.get()), (12.5, 100));
        let nan = source.decode_block(&block, &Data::Words(vec![0x7FC0, 0x0000]), at);
        assert_eq!(nan.len(), 1);
        assert_eq!((nan[0].value, nan[0].quality.get()), (12.5, 0));
        let infinity = source.decode_block(&block, &Data::Words(vec![0x7F80, 0x0000]), at);
        assert!(infinity.is_empty(), "the same fault is reported once");
        let back = source.decode_block(&block, &Data::Words(vec![0x4149, 0x0000]), at);
        assert_eq!((back[0].value, back[0].quality.get()), (12.5625, 100));
    }

    /// The slots a session polls when it wakes at each of `clock` (wall-clock readings, ms),
    /// as its loop does: the slot after the reading, polled if due.
    fn polled(clock: &[i64]) -> Vec<i64> {
        let mut slots = Slots::new(1_000);
        clock
            .iter()
            .map(|now| next_aligned(*now, 1_000, 500).0)
            .filter(|slot| slots.claim(*slot))
            .collect()
    }

    #[test]
    fn a_clock_stepping_back_never_polls_a_slot_twice() {
        // Steady: every slot once.
        assert_eq!(
            polled(&[9_600, 10_500, 11_500, 12_500]),
            vec![10, 11, 12, 13]
        );
        // After polling slot 11 (at 11.5 s) the clock steps back 800 ms: slot 11 comes round
        // again and is skipped; the next poll is slot 12's.
        assert_eq!(
            polled(&[9_600, 10_500, 10_700, 11_500, 12_500]),
            vec![10, 11, 12, 13]
        );
        // Stepped back 30 s after polling slot 12: nothing until the clock passes 12.5 s again.
        assert_eq!(
            polled(&[10_500, 11_500, -18_500, -4_500, 11_400, 12_500]),
            vec![11, 12, 13]
        );
        // Stepped back an hour: polling goes on from the new time at once, not an hour later;
        // every slot of the new count once.
        assert_eq!(
            polled(&[10_500, 11_500, -3_588_500, -3_587_500, -3_586_500]),
            vec![11, 12, -3_588, -3_587, -3_586]
        );
        // Stepping forward skips the slots in between, never polling two at once.
        assert_eq!(polled(&[10_500, 15_500, 16_500]), vec![11, 16, 17]);
    }

    #[test]
    fn aligned_polls_fall_on_the_interval_grid_plus_the_offset() {
        // 1 s interval, offset 500 ms: polls at …0.5 s (slot 9), 10.5 s (slot 10), 11.5 s.
        assert_eq!(next_aligned(10_000, 1_000, 500), (10, 500));
        assert_eq!(next_aligned(10_499, 1_000, 500), (10, 1));
        // Exactly on a poll instant: the next one, never the same instant twice.
        assert_eq!(next_aligned(10_500, 1_000, 500), (11, 1_000));
        assert_eq!(next_aligned(10_501, 1_000, 500), (11, 999));
        // No offset: whole seconds; before the epoch too.
        assert_eq!(next_aligned(12_345, 1_000, 0), (13, 655));
        assert_eq!(next_aligned(-250, 1_000, 0), (0, 250));
        // An offset of whole intervals is the same grid.
        assert_eq!(next_aligned(10_000, 1_000, 2_500), (10, 500));
        // A clock stepping back lands on a slot already polled (the session skips it).
        assert!(next_aligned(10_400, 1_000, 500).0 <= next_aligned(10_499, 1_000, 500).0);
    }
}
