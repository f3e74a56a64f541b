//! The simulated plant of `mantis demo`.
//!
//! Eight machines, two of each criticality, each with a vibration, a temperature and a current
//! sensor sampled at 1 Hz. One machine of each pair stays healthy; the other starts to wear
//! after a delay and drifts toward failure at its own speed (the critical motor first, the fan
//! last): vibration rises and gets noisier, the bearing warms up, the current climbs.
//!
//! On a fresh data directory the simulator first replays history (in-process, through the same
//! ingestion path as REST, `Ingestor::accept`, tagged `SIMULATOR`), then runs live. The history
//! holds `past_lives` earlier lives of each wearing machine, each run to failure and recorded
//! as a FAILURE maintenance event (what the RUL models learn from), then enough healthy running
//! of the current machines for the anomaly baselines and models. Live, the machines speak real
//! protocols (`devices`): the motors and fans are variables of an in-process OPC UA server, the
//! pumps registers of an in-process Modbus TCP server, the conveyors publish to an MQTT broker
//! when one answers (else they stay in-process); the ingestion service reads them back through
//! its connectors (`demo-opcua`, `demo-modbus`, `demo-mqtt`, configured automatically). The wear
//! model below is the single source of values. Ids are derived from the machine codes, so a
//! restarted demo finds its plant again.

pub mod devices;

use mantis_bus::TraceContext;
use mantis_domain::{
    Asset, AssetId, Criticality, Day, MaintenanceEvent, MaintenanceEventId, MaintenanceEventKind,
    PlannedStop, PlannedStopId, ProductionCount, Quality, Role, Sensor, SensorId, SensorType,
    Shift, SourceProtocol, SparePart, StockChange, Technician, TenantId, User, deterministic_uuid,
};
use mantis_ingestion::{IncomingReading, Ingestor, SensorRef};
use mantis_runtime::Result;
use mantis_store::{KeepStored, Store};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Configuration of the simulated plant (`[demo]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Seconds between two samples of each sensor. Default 1.
    pub sample_interval_secs: f64,
    /// Multiplies every wear speed (2 = machines fail twice as fast). Default 1.
    pub wear_speed: f64,
    /// Seed of the noise generators.
    pub seed: u64,
    /// Earlier lives of each wearing machine replayed as history, each run to failure (the
    /// RUL models' training data). Default 3.
    pub past_lives: usize,
    /// Seconds each past life runs healthy before it starts to wear. Default 150.
    pub past_life_healthy_secs: f64,
    /// The simulated devices speaking OPC UA, Modbus TCP and MQTT (`[demo.devices]`).
    pub devices: devices::DevicesConfig,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            sample_interval_secs: 1.0,
            wear_speed: 1.0,
            seed: 7,
            past_lives: 3,
            past_life_healthy_secs: 150.0,
            devices: devices::DevicesConfig::default(),
        }
    }
}

impl DemoConfig {
    /// Time between two samples (`sample_interval_secs`, at least 50 ms), in whole
    /// milliseconds: the history and the live run step on one grid.
    pub fn sample_interval(&self) -> Duration {
        let secs = if self.sample_interval_secs.is_finite() {
            self.sample_interval_secs.clamp(0.05, 86_400.0)
        } else {
            1.0
        };
        Duration::from_millis((secs * 1000.0).round() as u64)
    }
}

/// How a simulated machine behaves.
#[derive(Clone, Debug)]
struct MachineProfile {
    code: &'static str,
    name: &'static str,
    asset_type: &'static str,
    criticality: Criticality,
    /// Seconds of live running before wear starts; `None`: stays healthy.
    wear_onset_secs: Option<f64>,
    /// Wear per second once started (dimensionless, ~1 = failed).
    wear_rate: f64,
}

const MACHINES: [MachineProfile; 8] = [
    MachineProfile {
        code: "MTR-001",
        name: "Main drive motor, line 1",
        asset_type: "motor",
        criticality: Criticality::Critical,
        wear_onset_secs: Some(15.0),
        wear_rate: 1.0 / 120.0,
    },
    MachineProfile {
        code: "MTR-002",
        name: "Main drive motor, line 2",
        asset_type: "motor",
        criticality: Criticality::Critical,
        wear_onset_secs: None,
        wear_rate: 0.0,
    },
    MachineProfile {
        code: "PMP-001",
        name: "Hydraulic pump, press 1",
        asset_type: "pump",
        criticality: Criticality::High,
        wear_onset_secs: Some(30.0),
        wear_rate: 1.0 / 150.0,
    },
    MachineProfile {
        code: "PMP-002",
        name: "Hydraulic pump, press 2",
        asset_type: "pump",
        criticality: Criticality::High,
        wear_onset_secs: None,
        wear_rate: 0.0,
    },
    MachineProfile {
        code: "CNV-001",
        name: "Conveyor, packing",
        asset_type: "conveyor",
        criticality: Criticality::Medium,
        wear_onset_secs: Some(60.0),
        wear_rate: 1.0 / 240.0,
    },
    MachineProfile {
        code: "CNV-002",
        name: "Conveyor, palletiser",
        asset_type: "conveyor",
        criticality: Criticality::Medium,
        wear_onset_secs: None,
        wear_rate: 0.0,
    },
    MachineProfile {
        code: "FAN-001",
        name: "Cooling fan, paint shop",
        asset_type: "fan",
        criticality: Criticality::Low,
        wear_onset_secs: Some(90.0),
        wear_rate: 1.0 / 300.0,
    },
    MachineProfile {
        code: "FAN-002",
        name: "Cooling fan, assembly",
        asset_type: "fan",
        criticality: Criticality::Low,
        wear_onset_secs: None,
        wear_rate: 0.0,
    },
];

/// How one sensor channel behaves: healthy level and noise, and how wear moves them.
#[derive(Clone, Copy, Debug)]
struct Channel {
    suffix: &'static str,
    sensor_type: SensorType,
    unit: &'static str,
    min: f64,
    max: f64,
    level: f64,
    noise: f64,
    /// Added to the level at wear 1.
    wear_shift: f64,
    /// Noise multiplier added at wear 1.
    wear_noise: f64,
}

const CHANNELS: [Channel; 3] = [
    Channel {
        suffix: "VIB",
        sensor_type: SensorType::Vibration,
        unit: "mm/s",
        min: 0.0,
        max: 50.0,
        level: 2.0,
        noise: 0.15,
        wear_shift: 6.0,
        wear_noise: 3.0,
    },
    Channel {
        suffix: "TMP",
        sensor_type: SensorType::Temperature,
        unit: "degC",
        min: -20.0,
        max: 150.0,
        level: 55.0,
        noise: 0.4,
        wear_shift: 25.0,
        wear_noise: 0.5,
    },
    Channel {
        suffix: "CUR",
        sensor_type: SensorType::Current,
        unit: "A",
        min: 0.0,
        max: 100.0,
        level: 30.0,
        noise: 0.6,
        wear_shift: 12.0,
        wear_noise: 0.5,
    },
];

/// A seeded machine with its sensors.
#[derive(Clone, Debug)]
pub struct SimulatedMachine {
    /// The asset.
    pub asset: Asset,
    /// Its sensors, with the channel behaviour.
    sensors: Vec<(Sensor, Channel)>,
    profile: MachineProfile,
}

impl SimulatedMachine {
    /// Whether it wears out during the demo.
    pub fn degrades(&self) -> bool {
        self.profile.wear_onset_secs.is_some()
    }
}

/// The machines as the simulated devices serve them (codes, units, protocol), known before the
/// store is: the sources of the connectors are configured from them.
pub fn served_machines() -> Vec<devices::ServedMachine> {
    MACHINES
        .iter()
        .map(|m| devices::ServedMachine {
            code: m.code.to_owned(),
            sensors: CHANNELS
                .iter()
                .map(|ch| (format!("{}-{}", m.code, ch.suffix), ch.unit.to_owned()))
                .collect(),
            protocol: devices::protocol_of(m.asset_type),
        })
        .collect()
}

/// Registers the plant's assets and sensors (idempotent), sampled every `sample_interval`
/// (their nominal rate: what a window's fill is judged against), and returns it.
pub async fn seed_plant(
    store: &dyn Store,
    sample_interval: Duration,
) -> Result<Vec<SimulatedMachine>> {
    let sampling_rate_hz = 1.0 / sample_interval.as_secs_f64().max(1e-3);
    let mut plant = Vec::new();
    for profile in MACHINES {
        let asset = Asset {
            id: AssetId(deterministic_uuid("demo-asset", &[profile.code])),
            tenant_id: TenantId::DEFAULT,
            code: profile.code.to_owned(),
            name: profile.name.to_owned(),
            asset_type: profile.asset_type.to_owned(),
            location: "demo plant".to_owned(),
            criticality: profile.criticality,
        };
        let mut sensors = Vec::new();
        for ch in CHANNELS {
            let code = format!("{}-{}", profile.code, ch.suffix);
            let sensor = Sensor {
                id: SensorId(deterministic_uuid("demo-sensor", &[&code])),
                asset_id: asset.id,
                code,
                sensor_type: ch.sensor_type,
                unit: ch.unit.to_owned(),
                min_value: ch.min,
                max_value: ch.max,
                sampling_rate_hz,
            };
            sensors.push((sensor, ch));
        }
        let registered: Vec<Sensor> = sensors.iter().map(|(s, _)| s.clone()).collect();
        store.register_asset(&asset, &registered).await?;
        plant.push(SimulatedMachine {
            asset,
            sensors,
            profile,
        });
    }
    tracing::info!(machines = plant.len(), "demo plant registered");
    Ok(plant)
}

/// A weekly shift of the demo crew: days, start, end.
type ShiftSeed = (&'static [Day], &'static str, &'static str);
/// A member of the demo crew: username, display name, skills, shifts.
type CrewSeed = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [ShiftSeed],
);

/// The demo plant's maintenance crew: (username, display name, skills, shifts as days, start,
/// end), on UTC. Between them every hour of the week is covered, so the plan has someone
/// whenever the demo is started.
const CREW: &[CrewSeed] = &[
    (
        "ana",
        "Ana (electrician, early shift)",
        &["electrical"],
        &[(
            &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            "06:00",
            "14:00",
        )],
    ),
    (
        "ben",
        "Ben (mechanic, late shift)",
        &["mechanical"],
        &[(
            &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            "14:00",
            "22:00",
        )],
    ),
    (
        "carla",
        "Carla (mechanic and electrician, nights and weekends)",
        &["electrical", "mechanical"],
        &[
            (&Day::ALL, "22:00", "06:00"),
            (&[Day::Sat, Day::Sun], "06:00", "22:00"),
        ],
    ),
];

/// Registers the demo crew (users who cannot log in until an admin sets their password, and
/// their skills and shifts) unless they exist: changes made through the dashboard are kept.
pub async fn seed_crew(store: &dyn Store) -> Result<()> {
    let now = chrono::Utc::now();
    for (name, display, skills, shifts) in CREW {
        store
            .insert_user(&User {
                username: (*name).to_owned(),
                tenant_id: TenantId::DEFAULT,
                display_name: (*display).to_owned(),
                role: Role::Technician,
                // No password: an admin sets one (PATCH /api/v1/users/{name}) for them to log in.
                password_hash: "!".to_owned(),
                disabled: false,
                created_at: now,
                token_epoch: 0,
            })
            .await?;
        if store
            .get_technician(TenantId::DEFAULT, name)
            .await?
            .is_some()
        {
            continue;
        }
        let technician = Technician {
            tenant_id: TenantId::DEFAULT,
            name: (*name).to_owned(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            shifts: shifts
                .iter()
                .map(|(days, start, end)| Shift {
                    days: days.to_vec(),
                    start: (*start).to_owned(),
                    end: (*end).to_owned(),
                })
                .collect(),
            utc_offset_minutes: 0,
            time_zone: None,
            active: true,
            updated_at: now,
        };
        store.upsert_technician(&technician).await?;
    }
    tracing::info!(technicians = CREW.len(), "demo crew registered");
    Ok(())
}

/// The demo plant's stores: (part number, description, location, on hand, reorder point, on
/// order, days until it is expected).
const STORES: &[(&str, &str, &str, u32, u32, u32, i64)] = &[
    (
        "BRG-6204",
        "Deep-groove ball bearing 6204-2RS",
        "A-03",
        6,
        4,
        0,
        0,
    ),
    (
        "SEAL-12",
        "Mechanical seal, 12 mm shaft",
        "A-07",
        2,
        2,
        4,
        3,
    ),
    ("V-BELT-A42", "V-belt A42", "B-01", 3, 2, 0, 0),
    (
        "FLT-HYD-10",
        "Hydraulic return filter, 10 µm",
        "B-04",
        0,
        1,
        2,
        5,
    ),
    (
        "GREASE-EP2",
        "Bearing grease EP2, 400 g cartridge",
        "C-02",
        10,
        4,
        0,
        0,
    ),
];

/// Fills the demo plant's stores (parts and their first counts) when they are empty: changes
/// made through the dashboard are kept (stores emptied are filled again at the next start).
pub async fn seed_stores(store: &dyn Store) -> Result<()> {
    if !store.list_spare_parts(TenantId::DEFAULT).await?.is_empty() {
        return Ok(());
    }
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    for (number, description, location, on_hand, reorder_point, on_order, days) in STORES {
        let part = SparePart {
            tenant_id: TenantId::DEFAULT,
            part_number: (*number).to_owned(),
            description: (*description).to_owned(),
            location: (*location).to_owned(),
            on_hand: 0,
            reorder_point: *reorder_point,
            on_order: *on_order,
            expected_at: (*on_order > 0).then(|| now + chrono::Duration::days(*days)),
            updated_at: now,
        };
        store
            .upsert_spare_part(&part, KeepStored::default())
            .await?;
        if *on_hand > 0 {
            store
                .record_stock_movement(
                    TenantId::DEFAULT,
                    number,
                    StockChange::Counted(*on_hand),
                    "demo",
                    "first count",
                )
                .await?;
        }
    }
    tracing::info!(parts = STORES.len(), "demo stores filled");
    Ok(())
}

/// Units an hour each demo machine's line makes at most (a worn one fewer).
const UNITS_PER_HOUR: u64 = 120;

/// The demo line's ideal cycle time: 27 s a unit, 133⅓ units an hour at full speed.
const IDEAL_CYCLE_SECONDS: f64 = 27.0;

/// Hours of production counts recorded at the start: the KPI page's default week.
const COUNTED_HOURS: i64 = 7 * 24;

/// The plant's daily lunch break, a planned stop: from 12:00 UTC, 30 minutes.
const BREAK_HOUR: i64 = 12;
const BREAK_MINUTES: i64 = 30;

/// Days of lunch breaks planned ahead.
const BREAK_DAYS_AHEAD: i64 = 7;

/// Plans the plant's lunch break on each of `days` (days since the epoch) unless it is planned
/// (its id is derived from the day): one the plant's manager removed stays removed until the
/// demo starts again, and the line counters still make half the units in that hour (the demo's
/// line keeps its break).
async fn plan_breaks(store: &dyn Store, days: std::ops::Range<i64>) {
    let stops: Vec<PlannedStop> = days
        .filter_map(|day| {
            let starts_at = chrono::DateTime::from_timestamp((day * 24 + BREAK_HOUR) * 3600, 0)?;
            Some(PlannedStop {
                id: PlannedStopId(deterministic_uuid("demo-break", &[&day.to_string()])),
                tenant_id: TenantId::DEFAULT,
                asset_id: None,
                starts_at,
                ends_at: starts_at + chrono::Duration::minutes(BREAK_MINUTES),
                reason: "lunch break".to_owned(),
                created_by: "demo".to_owned(),
                created_at: chrono::Utc::now(),
                // One series: the dashboard removes the rest of it at once.
                series_id: Some(PlannedStopId(deterministic_uuid("demo-break", &["series"]))),
            })
        })
        .collect();
    if let Err(e) = store.insert_planned_stops(&stops).await {
        tracing::warn!(error = %e, "demo lunch breaks not planned");
    }
}

/// The demo's production counts of `machine` for the hour starting `hour` (hours since the
/// epoch): about [`UNITS_PER_HOUR`], of which 2 % rejected by a healthy machine and 6 % by one
/// that wears (worn bearings and drives make worse parts, and the line runs it slower), at the
/// line's [`IDEAL_CYCLE_SECONDS`]. Derived from the machine and the hour alone, so a restarted
/// demo records the same figures again (replaced, not added).
fn hour_of_production(
    machine: &SimulatedMachine,
    index: usize,
    hour: i64,
) -> Option<ProductionCount> {
    let starts_at = chrono::DateTime::from_timestamp(hour.checked_mul(3600)?, 0)?;
    let seed = (hour as u64) ^ ((index as u64) << 48) ^ 0x6d61_6e74_6973;
    let mut rng = StdRng::seed_from_u64(seed);
    let slowed = if machine.degrades() {
        UNITS_PER_HOUR / 10
    } else {
        0
    };
    let mut made = UNITS_PER_HOUR - slowed - rng.random_range(0..=UNITS_PER_HOUR / 10);
    if hour.rem_euclid(24) == BREAK_HOUR {
        // The lunch break: the line runs the rest of the hour.
        made = made * (60 - BREAK_MINUTES) as u64 / 60;
    }
    let reject_rate = if machine.degrades() { 0.06 } else { 0.02 };
    let rejected = ((made as f64) * reject_rate * rng.random_range(0.5..1.5)).round() as u64;
    Some(ProductionCount {
        asset_id: machine.asset.id,
        starts_at,
        ends_at: starts_at + chrono::Duration::hours(1),
        good: made.saturating_sub(rejected),
        rejected,
        ideal_cycle_seconds: Some(IDEAL_CYCLE_SECONDS),
        recorded_by: "demo line counter".to_owned(),
        recorded_at: starts_at + chrono::Duration::hours(1),
    })
}

/// Records each demo machine's `hours` (hours since the epoch), a day at a time; a day that
/// cannot be recorded because of counts recorded by hand (an overlapping period, a count
/// someone changed) is left as they recorded it. False when the store failed otherwise (tried
/// again at the next hour).
async fn record_hours(
    store: &dyn Store,
    plant: &[SimulatedMachine],
    hours: std::ops::Range<i64>,
) -> bool {
    let mut recorded = true;
    for (index, machine) in plant.iter().enumerate() {
        let counts: Vec<ProductionCount> = hours
            .clone()
            .filter_map(|h| hour_of_production(machine, index, h))
            .collect();
        for day in counts.chunks(24) {
            match store.record_production(machine.asset.id, day, false).await {
                Ok(()) => {}
                Err(e @ mantis_store::Error::Conflict(_)) => {
                    tracing::info!(machine = %machine.asset.code, error = %e, "demo production counts left as recorded by hand");
                }
                Err(e) => {
                    tracing::warn!(machine = %machine.asset.code, error = %e, "demo production counts not recorded; tried again at the next hour");
                    recorded = false;
                }
            }
        }
    }
    recorded
}

/// The demo's line counters: records every machine's production counts per hour for the last
/// week, then each hour as it ends, until `shutdown` (OEE's quality and performance terms on
/// the KPI page); and the plant's production calendar, a lunch break a day (a planned stop, in
/// which the line makes nothing), for that week and the week ahead.
pub async fn count_production(
    store: Arc<dyn Store>,
    plant: Vec<SimulatedMachine>,
    shutdown: CancellationToken,
) {
    let hour_now = || chrono::Utc::now().timestamp().div_euclid(3600);
    let mut planned = hour_now().div_euclid(24) + BREAK_DAYS_AHEAD;
    plan_breaks(
        store.as_ref(),
        (hour_now() - COUNTED_HOURS).div_euclid(24)..planned + 1,
    )
    .await;
    // The hours before `counted` are recorded (or left as someone recorded them by hand).
    let mut counted = hour_now() - COUNTED_HOURS;
    loop {
        let ended = hour_now();
        let ahead = ended.div_euclid(24) + BREAK_DAYS_AHEAD;
        if ahead > planned {
            plan_breaks(store.as_ref(), planned + 1..ahead + 1).await;
            planned = ahead;
        }
        // A week at most: after a long pause the hours before it are not made up.
        let from = counted.max(ended - COUNTED_HOURS);
        if ended > from && record_hours(store.as_ref(), &plant, from..ended).await {
            tracing::debug!(
                hours = ended - from,
                machines = plant.len(),
                "demo production counted"
            );
            counted = ended;
        }
        let wait = (hour_now() + 1) * 3600 - chrono::Utc::now().timestamp() + 1;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(0))) => {}
        }
    }
}

/// Produces the plant's readings.
pub struct Simulator {
    plant: Vec<SimulatedMachine>,
    config: DemoConfig,
    history_secs: f64,
    /// Seconds of history spent on past lives (from its start); healthy history follows.
    lives_secs: f64,
    rng: StdRng,
    devices: Option<Arc<devices::Devices>>,
}

/// How long the replayed past failures take to repair (the KPIs' MTTR of the demo).
const DEMO_REPAIR_SECS: i64 = 90;

impl Simulator {
    /// A simulator for `plant` that replays enough history for `history_windows` windows of
    /// `window_secs` (plus margin) before going live: the anomaly baselines and models learn
    /// from it.
    pub fn new(
        plant: Vec<SimulatedMachine>,
        config: DemoConfig,
        window_secs: u64,
        history_windows: usize,
    ) -> Self {
        let lives_secs = plant
            .iter()
            .filter_map(|m| life_secs(&m.profile, &config))
            .map(|l| l * config.past_lives as f64)
            .fold(0.0, f64::max);
        let history_secs = lives_secs + (history_windows as f64 + 2.0) * window_secs as f64;
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            plant,
            config,
            history_secs,
            lives_secs,
            rng,
            devices: None,
        }
    }

    /// Serves the live readings through `devices` (the machines they serve); the others, and
    /// the history, stay in-process.
    pub fn with_devices(mut self, devices: Arc<devices::Devices>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Hands the machines served by the devices their sample; returns the rest.
    async fn serve(&self, batch: Vec<IncomingReading>) -> Vec<IncomingReading> {
        let Some(devices) = &self.devices else {
            return batch;
        };
        let mut direct = Vec::with_capacity(batch.len());
        let mut readings = batch.into_iter();
        for machine in &self.plant {
            let sample: Vec<(String, IncomingReading)> = machine
                .sensors
                .iter()
                .filter_map(|(sensor, _)| readings.next().map(|r| (sensor.code.clone(), r)))
                .collect();
            if !devices.publish(&machine.asset.code, &sample).await {
                direct.extend(sample.into_iter().map(|(_, r)| r));
            }
        }
        direct.extend(readings);
        direct
    }

    /// How much later than the sample a replayed reading of `machine` is stamped: as its live
    /// readings will be (a polled machine's connector stamps its poll, later than the sample;
    /// see [`devices::Devices::stamp_delay`]).
    fn replay_delay(&self, machine: &SimulatedMachine) -> chrono::Duration {
        self.devices
            .as_ref()
            .and_then(|d| chrono::Duration::from_std(d.stamp_delay(&machine.asset.code)).ok())
            .unwrap_or(chrono::Duration::zero())
    }

    /// Wear of `machine` at `live_secs` seconds of live running (negative: history, where the
    /// past lives come first).
    fn wear(&self, machine: &SimulatedMachine, live_secs: f64) -> f64 {
        if live_secs < 0.0 {
            let since_start = self.history_secs + live_secs;
            let Some(life) = life_secs(&machine.profile, &self.config) else {
                return 0.0;
            };
            let n = (since_start / life).floor();
            if n < 0.0 || n >= self.config.past_lives as f64 {
                return 0.0; // a new machine since the last failure
            }
            let age = since_start - n * life;
            let wearing = age - self.config.past_life_healthy_secs;
            return if wearing > 0.0 {
                (wearing * machine.profile.wear_rate * self.config.wear_speed).min(1.0)
            } else {
                0.0
            };
        }
        match machine.profile.wear_onset_secs {
            Some(onset) if live_secs > onset => {
                ((live_secs - onset) * machine.profile.wear_rate * self.config.wear_speed).min(1.5)
            }
            _ => 0.0,
        }
    }

    /// The failures ending the past lives (each repaired [`DEMO_REPAIR_SECS`] later), for a
    /// history that starts at `history_start`.
    fn past_failures(&self, history_start: chrono::DateTime<chrono::Utc>) -> Vec<MaintenanceEvent> {
        let mut events = Vec::new();
        for machine in &self.plant {
            let Some(life) = life_secs(&machine.profile, &self.config) else {
                continue;
            };
            for n in 1..=self.config.past_lives {
                let at = history_start
                    + chrono::Duration::milliseconds((life * n as f64 * 1000.0) as i64);
                events.push(MaintenanceEvent {
                    id: MaintenanceEventId(deterministic_uuid(
                        "demo-failure",
                        &[&machine.asset.code, &n.to_string()],
                    )),
                    asset_id: machine.asset.id,
                    kind: MaintenanceEventKind::Failure,
                    occurred_at: at,
                    work_order_id: None,
                    note: format!(
                        "demo history: {} failed (life {n} of {})",
                        machine.asset.code, self.config.past_lives
                    ),
                });
                // Back in service after the component swap (a repair: it does not start
                // another run to failure; the failure did).
                events.push(MaintenanceEvent {
                    id: MaintenanceEventId(deterministic_uuid(
                        "demo-repair",
                        &[&machine.asset.code, &n.to_string()],
                    )),
                    asset_id: machine.asset.id,
                    kind: MaintenanceEventKind::Repair,
                    occurred_at: at + chrono::Duration::seconds(DEMO_REPAIR_SECS),
                    work_order_id: None,
                    note: format!(
                        "demo history: {} component replaced, back in service",
                        machine.asset.code
                    ),
                });
            }
        }
        events
    }

    /// One sample of every sensor at `at`, `live_secs` into the live run.
    fn sample(&mut self, at: mantis_domain::Timestamp, live_secs: f64) -> Vec<IncomingReading> {
        let mut batch = Vec::with_capacity(self.plant.len() * CHANNELS.len());
        for m in 0..self.plant.len() {
            // During the past lives only the machines that lived them report: the others'
            // history is the healthy tail, as long as the wearing machines' current life.
            let in_past_lives = live_secs < 0.0 && self.history_secs + live_secs < self.lives_secs;
            if in_past_lives && life_secs(&self.plant[m].profile, &self.config).is_none() {
                continue;
            }
            let wear = self.wear(&self.plant[m], live_secs);
            let stamp = if live_secs < 0.0 {
                at + self.replay_delay(&self.plant[m])
            } else {
                at
            };
            for s in 0..self.plant[m].sensors.len() {
                let (sensor_id, ch) = {
                    let (sensor, ch) = &self.plant[m].sensors[s];
                    (sensor.id, *ch)
                };
                let noise = gaussian(&mut self.rng) * ch.noise * (1.0 + ch.wear_noise * wear);
                let value =
                    (ch.level + ch.wear_shift * wear * wear.max(0.3) + noise).clamp(ch.min, ch.max);
                batch.push(IncomingReading {
                    timestamp: stamp,
                    asset_id: None,
                    sensor: SensorRef::Id(sensor_id),
                    value,
                    unit: Some(ch.unit.to_owned()),
                    quality: Quality::GOOD,
                    metadata: Default::default(),
                });
            }
        }
        batch
    }

    async fn send(
        &self,
        ingestor: &Ingestor,
        batch: &[IncomingReading],
        shutdown: &CancellationToken,
    ) -> bool {
        loop {
            match ingestor
                .accept(batch, SourceProtocol::Simulator, TraceContext::new_root())
                .await
            {
                Ok(_) => return true,
                Err(mantis_ingestion::IngestError::Unavailable(reason)) => {
                    tracing::warn!(%reason, "simulator: ingestion unavailable, retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "simulator: readings refused");
                    return true;
                }
            }
        }
    }

    /// Replays history (on a fresh store) and then produces live readings until `shutdown`.
    pub async fn run(
        mut self,
        ingestor: Arc<Ingestor>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let step = self.config.sample_interval();
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        // Samples are taken at whole multiples of the interval since the epoch, in the history
        // and live, so every window is conditioned alike whichever grid the preprocessing
        // resamples onto (with `grid = "absolute"`, a history off the grid by half an interval
        // would be smoothed by the interpolation and the live run not, or the other way round:
        // the models would see live windows unlike anything they learned, healthy machines
        // alarm and wearing ones hide).
        let now = on_grid(chrono::Utc::now(), step_ms, false);
        if store.count_windows(None).await? == 0 {
            let steps = (self.history_secs / step.as_secs_f64()).ceil() as i64;
            let history_start = now - chrono::Duration::milliseconds(steps * step_ms);
            // The failures first: the anomaly models learn only from the current lives.
            for event in self.past_failures(history_start) {
                store.insert_maintenance_event(&event).await?;
            }
            tracing::info!(
                seconds = self.history_secs,
                past_lives_secs = self.lives_secs,
                past_lives = self.config.past_lives,
                "simulator: replaying history (past lives run to failure, then healthy running) \
                 so RUL and anomaly models can be learned"
            );
            for i in (1..=steps).rev() {
                let at = now - chrono::Duration::milliseconds(i * step_ms);
                let batch = self.sample(at, -(i as f64) * step.as_secs_f64());
                if !self.send(&ingestor, &batch, &shutdown).await || shutdown.is_cancelled() {
                    return Ok(());
                }
            }
        }
        let degrading: Vec<&str> = self
            .plant
            .iter()
            .filter(|m| m.degrades())
            .map(|m| m.asset.code.as_str())
            .collect();
        tracing::info!(
            ?degrading,
            "simulator: live; these machines will start to wear"
        );
        if let Some(d) = &self.devices {
            d.go_live();
            let served: Vec<String> = self
                .plant
                .iter()
                .filter_map(|m| {
                    d.route(&m.asset.code)
                        .map(|p| format!("{} over {p:?}", m.asset.code))
                })
                .collect();
            tracing::info!(?served, "simulator: machines served by simulated devices");
        }
        // Samples are timestamped at their sampling instant, `start + k × step` (a device's
        // clock), not when this task got the CPU: on a loaded machine a late tick is caught up
        // with its own timestamp rather than skipped or stamped late, so every window holds the
        // same number of evenly spaced samples as the replayed history (otherwise live windows
        // look unlike the history the models learned and healthy machines drift or alarm).
        let wall = chrono::Utc::now();
        let start_wall = on_grid(wall, step_ms, true);
        let start =
            tokio::time::Instant::now() + (start_wall - wall).to_std().unwrap_or(Duration::ZERO);
        let mut k: u32 = 0;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(start + step * k) => {}
            }
            let behind = start.elapsed().saturating_sub(step * k);
            if behind > MAX_CATCH_UP {
                // Suspended for long (a paused VM, a laptop asleep): resume at the present
                // instead of replaying the gap.
                let skipped = (behind.as_secs_f64() / step.as_secs_f64()).floor() as u32;
                tracing::warn!(
                    skipped,
                    behind_secs = behind.as_secs_f64(),
                    "simulator: fell behind; samples of the gap skipped"
                );
                k = k.saturating_add(skipped);
            }
            let offset = step * k;
            let at =
                start_wall + chrono::Duration::from_std(offset).unwrap_or(chrono::Duration::zero());
            let batch = self.sample(at, offset.as_secs_f64());
            let direct = self.serve(batch).await;
            if !direct.is_empty() && !self.send(&ingestor, &direct, &shutdown).await {
                return Ok(());
            }
            k = k.saturating_add(1);
        }
    }
}

/// `t` on the grid of multiples of `step_ms` since the epoch: the grid point at or before it,
/// or (`up`) at or after it.
fn on_grid(
    t: chrono::DateTime<chrono::Utc>,
    step_ms: i64,
    up: bool,
) -> chrono::DateTime<chrono::Utc> {
    let ms = t.timestamp_millis();
    let mut aligned = ms - ms.rem_euclid(step_ms);
    if up && aligned < ms {
        aligned += step_ms;
    }
    chrono::DateTime::from_timestamp_millis(aligned).unwrap_or(t)
}

/// How far the live simulator catches up missed samples before it skips ahead instead.
const MAX_CATCH_UP: Duration = Duration::from_secs(60);

/// Seconds of one past life of a wearing machine: healthy running, then wear up to failure.
fn life_secs(profile: &MachineProfile, config: &DemoConfig) -> Option<f64> {
    profile.wear_onset_secs?;
    let rate = profile.wear_rate * config.wear_speed;
    (rate > 0.0 && config.past_lives > 0)
        .then(|| config.past_life_healthy_secs.max(0.0) + 1.0 / rate)
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant() -> Vec<SimulatedMachine> {
        MACHINES
            .iter()
            .map(|p| {
                let asset_id = AssetId(deterministic_uuid("demo-asset", &[p.code]));
                SimulatedMachine {
                    asset: Asset {
                        id: asset_id,
                        tenant_id: TenantId::DEFAULT,
                        code: p.code.into(),
                        name: p.name.into(),
                        asset_type: p.asset_type.into(),
                        location: String::new(),
                        criticality: p.criticality,
                    },
                    sensors: CHANNELS
                        .iter()
                        .map(|ch| {
                            (
                                Sensor {
                                    id: SensorId::new_random(),
                                    asset_id,
                                    code: format!("{}-{}", p.code, ch.suffix),
                                    sensor_type: ch.sensor_type,
                                    unit: ch.unit.into(),
                                    min_value: ch.min,
                                    max_value: ch.max,
                                    sampling_rate_hz: 1.0,
                                },
                                *ch,
                            )
                        })
                        .collect(),
                    profile: p.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn every_criticality_has_a_healthy_and_a_wearing_machine() {
        for c in Criticality::ALL {
            let of_c: Vec<_> = MACHINES.iter().filter(|m| m.criticality == c).collect();
            assert_eq!(of_c.len(), 2);
            assert_eq!(
                of_c.iter().filter(|m| m.wear_onset_secs.is_some()).count(),
                1
            );
        }
    }

    #[test]
    fn wearing_machines_drift_while_healthy_ones_stay_at_their_level() {
        let mut sim = Simulator::new(plant(), DemoConfig::default(), 10, 12);
        let t = chrono::Utc::now();
        let mean_vib = |sim: &mut Simulator, code: &str, live: f64| {
            let idx = sim
                .plant
                .iter()
                .position(|m| m.asset.code == code)
                .expect("machine");
            let mut sum = 0.0;
            for _ in 0..200 {
                sum += sim.sample(t, live)[idx * CHANNELS.len()].value;
            }
            sum / 200.0
        };
        let healthy_early = mean_vib(&mut sim, "MTR-002", 0.0);
        let healthy_late = mean_vib(&mut sim, "MTR-002", 600.0);
        assert!((healthy_early - healthy_late).abs() < 0.1);
        let worn = mean_vib(&mut sim, "MTR-001", 200.0);
        assert!(
            worn > healthy_early + 1.0,
            "worn {worn} vs healthy {healthy_early}"
        );
        // The recent history is healthy running of the current machines.
        assert_eq!(sim.wear(&sim.plant[0], -50.0), 0.0);
    }

    #[test]
    fn past_lives_run_to_failure_before_the_healthy_history() {
        let sim = Simulator::new(plant(), DemoConfig::default(), 10, 12);
        let motor = &sim.plant[0];
        let life = life_secs(&motor.profile, &sim.config).expect("the motor wears");
        assert_eq!(life, 150.0 + 120.0);
        let at = |since_start: f64| sim.wear(motor, since_start - sim.history_secs);
        assert_eq!(at(10.0), 0.0, "healthy start of the first life");
        assert!((at(150.0 + 60.0) - 0.5).abs() < 1e-9, "half worn");
        assert!(at(life - 0.5) > 0.99, "failing at the end of the life");
        assert_eq!(at(life + 1.0), 0.0, "a new machine after the failure");
        assert_eq!(
            at(3.0 * life + 1.0),
            0.0,
            "healthy after the last past life"
        );
        assert_eq!(sim.wear(&sim.plant[1], -sim.history_secs + 200.0), 0.0);
        let start = chrono::Utc::now();
        let events = sim.past_failures(start);
        let of_kind = |kind: MaintenanceEventKind| -> Vec<&MaintenanceEvent> {
            events.iter().filter(|e| e.kind == kind).collect()
        };
        let failures = of_kind(MaintenanceEventKind::Failure);
        assert_eq!(
            failures.len(),
            4 * 3,
            "three past lives per wearing machine"
        );
        assert_eq!(events.len(), 2 * failures.len(), "each failure repaired");
        let motor_events = |kind| -> Vec<i64> {
            of_kind(kind)
                .into_iter()
                .filter(|e| e.asset_id == motor.asset.id)
                .map(|e| (e.occurred_at - start).num_milliseconds())
                .collect()
        };
        assert_eq!(
            motor_events(MaintenanceEventKind::Failure),
            vec![270_000, 540_000, 810_000]
        );
        assert_eq!(
            motor_events(MaintenanceEventKind::Repair),
            vec![360_000, 630_000, 900_000]
        );
        // The fan's lives are the longest: the history fits them and the healthy tail.
        assert_eq!(sim.lives_secs, 3.0 * (150.0 + 300.0));
        assert_eq!(sim.history_secs, sim.lives_secs + 14.0 * 10.0);
    }

    #[test]
    fn samples_are_taken_on_the_absolute_grid_of_the_interval() {
        let t = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).expect("a timestamp");
        assert_eq!(on_grid(t(10_437), 1_000, false), t(10_000));
        assert_eq!(on_grid(t(10_437), 1_000, true), t(11_000));
        assert_eq!(on_grid(t(10_000), 1_000, true), t(10_000));
        assert_eq!(on_grid(t(10_437), 250, false), t(10_250));
        let config = |secs: f64| DemoConfig {
            sample_interval_secs: secs,
            ..DemoConfig::default()
        };
        assert_eq!(config(1.0).sample_interval(), Duration::from_secs(1));
        assert_eq!(config(0.0).sample_interval(), Duration::from_millis(50));
        assert_eq!(config(f64::NAN).sample_interval(), Duration::from_secs(1));
        assert_eq!(
            config(1.5005).sample_interval(),
            Duration::from_millis(1501)
        );
    }

    #[test]
    fn samples_respect_the_sensor_ranges() {
        let mut sim = Simulator::new(
            plant(),
            DemoConfig {
                wear_speed: 100.0,
                ..DemoConfig::default()
            },
            10,
            12,
        );
        for r in sim.sample(chrono::Utc::now(), 10_000.0) {
            assert!(r.value.is_finite());
        }
    }
}
