//! Gateway figures on the embedded infrastructure (SQLite, release build): the server-side
//! downsampling of a long reading history, the plant overview of a hundred and of a thousand
//! machines (each with a history of scored windows, RUL predictions and readings), the KPIs of
//! a hundred machines with hourly production counts (at an ideal cycle time), a failure every
//! ten days and a production calendar (a daily lunch break, a weekly stop of each machine), a
//! login (argon2id) and the WebSocket
//! fan-out. Prints medians; asserts nothing.
//!
//! `cargo bench -p mantis-gateway --bench api`

use mantis_bus::embedded::EmbeddedBus;
use mantis_domain::{
    Asset, AssetId, Criticality, Day, MaintenanceEvent, MaintenanceEventId, MaintenanceEventKind,
    PlannedStop, PlannedStopId, ProductionCount, Quality, Reading, Repeat, Role, Sensor, SensorId,
    SensorType, SourceProtocol, TenantId,
};
use mantis_gateway::{AuthConfig, Config, StaticApiKey};
use mantis_runtime::Infra;
use mantis_store::Store;
use mantis_store::sqlite::SqliteStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const KEY: &str = "gateway-bench-admin-key-0123456789";
const PASSWORD: &str = "a long bench password";

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn asset(i: usize) -> Asset {
    Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: format!("M-{i:03}"),
        name: format!("Machine {i}"),
        asset_type: "motor".into(),
        location: format!("Line {}", i % 4),
        criticality: Criticality::ALL[i % 4],
    }
}

/// What the overview reads of a machine: `n` scored windows of its sensor, `n` RUL predictions
/// and a reading, the newest a minute old.
async fn machine_history(store: &dyn Store, s: &Sensor, n: i64) {
    let now = chrono::Utc::now();
    for k in 0..n {
        let t = now - chrono::Duration::seconds(60 + 10 * k);
        store
            .upsert_anomaly_score(&mantis_domain::AnomalyScore {
                window_start: t,
                sensor_id: s.id,
                asset_id: s.asset_id,
                anomaly_id: None,
                ensemble_score: 0.2 + 0.001 * k as f64,
                zscore_score: Some(0.2),
                isolation_forest_score: Some(0.3),
                ocsvm_score: None,
                autoencoder_score: None,
                threshold: 0.8,
                severity: None,
                method: "ensemble".into(),
                model_version: Some("1".into()),
            })
            .await
            .expect("score");
        store
            .insert_rul_prediction(&mantis_domain::RulPrediction {
                asset_id: s.asset_id,
                predicted_at: t,
                rul_cycles: 400.0 + k as f64,
                confidence_lower: 350.0,
                confidence_upper: 450.0,
                model_version: "rul/motor/v1".into(),
            })
            .await
            .expect("prediction");
    }
    store
        .insert_readings(&[Reading {
            timestamp: now - chrono::Duration::seconds(60),
            asset_id: s.asset_id,
            sensor_id: s.id,
            sensor_code: s.code.clone(),
            sensor_type: s.sensor_type,
            value: 2.0,
            unit: s.unit.clone(),
            quality: Quality::new(100).expect("quality"),
            source: SourceProtocol::Rest,
            metadata: BTreeMap::new(),
        }])
        .await
        .expect("reading");
}

/// Registers machines (each with one sensor and its history) until there are `total`.
async fn add_machines(store: &dyn Store, sensors: &mut Vec<Sensor>, total: usize) {
    for i in sensors.len()..total {
        let a = asset(i);
        store.upsert_asset(&a).await.expect("asset");
        let s = sensor(&a);
        store.upsert_sensor(&s).await.expect("sensor");
        machine_history(store, &s, 20).await;
        sensors.push(s);
    }
}

fn sensor(a: &Asset) -> Sensor {
    Sensor {
        id: SensorId::new_random(),
        asset_id: a.id,
        code: format!("{}-VIB", a.code),
        sensor_type: SensorType::Vibration,
        unit: "mm/s".into(),
        min_value: 0.0,
        max_value: 50.0,
        sampling_rate_hz: 10.0,
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path().join("log"))
        .await
        .expect("log");
    let store = SqliteStore::open(dir.path().join("mantis.db"))
        .await
        .expect("sqlite");
    let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    infra.ensure_topics(&[]).await.expect("topics");
    let store: Arc<dyn Store> = infra.store.clone();

    // A hundred machines; the first has a long vibration history.
    let mut sensors = Vec::new();
    add_machines(store.as_ref(), &mut sensors, 100).await;
    let history = 500_000i64;
    let from = chrono::Utc::now() - chrono::Duration::milliseconds(history * 100);
    let started = Instant::now();
    let vib = &sensors[0];
    for chunk in 0..(history / 5000) {
        let batch: Vec<Reading> = (0..5000)
            .map(|j| {
                let i = chunk * 5000 + j;
                Reading {
                    timestamp: from + chrono::Duration::milliseconds(i * 100),
                    asset_id: vib.asset_id,
                    sensor_id: vib.id,
                    sensor_code: vib.code.clone(),
                    sensor_type: vib.sensor_type,
                    value: 2.0 + ((i as f64) * 0.01).sin(),
                    unit: vib.unit.clone(),
                    quality: Quality::new(100).expect("quality"),
                    source: SourceProtocol::Rest,
                    metadata: BTreeMap::new(),
                }
            })
            .collect();
        store.insert_readings(&batch).await.expect("insert");
    }
    println!(
        "history: {history} readings of one sensor (10 Hz, {:.1} h) stored in {:.1} s",
        history as f64 / 36_000.0,
        started.elapsed().as_secs_f64()
    );

    let config = Config {
        bind: "127.0.0.1:0".into(),
        auth: AuthConfig {
            admin_password: PASSWORD.into(),
            rate_limit_per_minute: 0,
            api_keys: vec![StaticApiKey {
                name: "bench".into(),
                key: KEY.into(),
                role: Role::Admin,
                tenant: TenantId::DEFAULT,
            }],
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let app = mantis_gateway::build(infra, config).await.expect("gateway");
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let t = Instant::now();
            let resp = http
                .get(format!("{url}{path}"))
                .header("x-api-key", KEY)
                .send()
                .await
                .expect("request");
            assert!(resp.status().is_success(), "{}", resp.status());
            let body = resp.bytes().await.expect("body");
            (t.elapsed(), body.len())
        }
    };
    let enc = |t: chrono::DateTime<chrono::Utc>| -> String {
        url::form_urlencoded::byte_serialize(t.to_rfc3339().as_bytes()).collect()
    };
    let to = chrono::Utc::now();
    for (label, span) in [
        ("whole history (~14 h)", to - from),
        ("last hour", chrono::Duration::hours(1)),
    ] {
        let path = format!(
            "/api/v1/sensors/{}/readings?from={}&to={}&points=600",
            vib.id,
            enc(to - span),
            enc(to)
        );
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..15 {
            let (t, n) = get(path.clone()).await;
            times.push(t);
            size = n;
        }
        println!(
            "readings, {label}, downsampled to 600 points: {:.1} ms median ({size} bytes)",
            median(times).as_secs_f64() * 1000.0
        );
    }
    // KPIs of the hundred machines with hourly production counts for 90 days (216 000 counts):
    // the quality and performance terms per machine and shift, summed by the database.
    let started = Instant::now();
    let hour0 = to.timestamp().div_euclid(3600) - 90 * 24;
    let machines: Vec<AssetId> = {
        let mut seen = Vec::new();
        for s in &sensors {
            if !seen.contains(&s.asset_id) {
                seen.push(s.asset_id);
            }
        }
        seen
    };
    for asset in &machines {
        for day in 0..90 {
            let counts: Vec<ProductionCount> = (0..24)
                .filter_map(|h| {
                    let start = chrono::DateTime::from_timestamp((hour0 + day * 24 + h) * 3600, 0)?;
                    Some(ProductionCount {
                        asset_id: *asset,
                        starts_at: start,
                        ends_at: start + chrono::Duration::hours(1),
                        good: 115,
                        rejected: 5,
                        ideal_cycle_seconds: Some(27.0),
                        recorded_by: "bench".into(),
                        recorded_at: start + chrono::Duration::hours(1),
                    })
                })
                .collect();
            store
                .record_production(*asset, &counts, true)
                .await
                .expect("counts");
        }
    }
    println!(
        "production: {} hourly counts of {} machines stored in {:.1} s",
        machines.len() * 90 * 24,
        machines.len(),
        started.elapsed().as_secs_f64()
    );
    for (failures, stops) in [(false, false), (true, false), (true, true)] {
        if stops {
            // A year of the plant's lunch break every day and of each machine's 8-hour weekly
            // stop (on a day of its own): about 5 600 planned stops.
            let day0 = (hour0 + 90 * 24).div_euclid(24) - 365;
            let lunch = PlannedStop {
                id: PlannedStopId::new_random(),
                tenant_id: TenantId::DEFAULT,
                asset_id: None,
                starts_at: chrono::DateTime::from_timestamp((day0 * 24 + 12) * 3600, 0)
                    .expect("an instant"),
                ends_at: chrono::DateTime::from_timestamp((day0 * 24 + 12) * 3600 + 1800, 0)
                    .expect("an instant"),
                reason: "lunch break".into(),
                created_by: "bench".into(),
                created_at: chrono::Utc::now(),
                series_id: None,
            };
            let every_day = Repeat {
                days: Day::ALL.to_vec(),
                until: lunch.starts_at + chrono::Duration::days(366),
                time_zone: None,
            };
            let mut planned = lunch.repeated(&every_day).expect("a year of breaks");
            for (i, asset) in machines.iter().enumerate() {
                let starts_at = lunch.starts_at + chrono::Duration::days(i as i64 % 7)
                    - chrono::Duration::hours(6);
                let weekly = PlannedStop {
                    asset_id: Some(*asset),
                    starts_at,
                    ends_at: starts_at + chrono::Duration::hours(8),
                    reason: "cleaning".into(),
                    ..lunch.clone()
                };
                planned.extend(
                    weekly
                        .repeated(&Repeat {
                            days: vec![Day::from(chrono::Datelike::weekday(&starts_at))],
                            until: starts_at + chrono::Duration::days(365),
                            ..every_day.clone()
                        })
                        .expect("a year of weekly stops"),
                );
            }
            store
                .insert_planned_stops(&planned)
                .await
                .expect("planned stops");
            println!("production calendar: {} planned stops", planned.len());
        }
        if failures && !stops {
            // Each machine down 4 h every ten days (on a day of its own): nine failures in the
            // 90 days, so the KPIs also read each machine's counts within its downtimes
            // (performance's run time leaves them out).
            for (i, asset) in machines.iter().enumerate() {
                for k in 0..9 {
                    let failed = chrono::DateTime::from_timestamp(
                        (hour0 + (k * 10 + i as i64 % 10) * 24 + 5) * 3600,
                        0,
                    )
                    .expect("an instant");
                    for (kind, at) in [
                        (MaintenanceEventKind::Failure, failed),
                        (
                            MaintenanceEventKind::Repair,
                            failed + chrono::Duration::hours(4),
                        ),
                    ] {
                        store
                            .insert_maintenance_event(&MaintenanceEvent {
                                id: MaintenanceEventId::new_random(),
                                asset_id: *asset,
                                kind,
                                occurred_at: at,
                                work_order_id: None,
                                note: String::new(),
                            })
                            .await
                            .expect("event");
                    }
                }
            }
        }
        let down = match (failures, stops) {
            (_, true) => "failures every ten days, a daily break and weekly stops",
            (true, false) => "failures every ten days",
            (false, _) => "no failures",
        };
        for (label, span) in [
            ("7 days", chrono::Duration::days(7)),
            ("90 days", chrono::Duration::days(90)),
            ("one year", chrono::Duration::days(365)),
        ] {
            // The store's part alone: the sums per machine and shift over 8-hour periods.
            let periods: Vec<mantis_store::ProductionPeriod> = (0..)
                .map(|k| to - span + chrono::Duration::hours(8 * k))
                .take_while(|b| *b < to)
                .enumerate()
                .map(|(k, b)| mantis_store::ProductionPeriod {
                    from: b,
                    to: (b + chrono::Duration::hours(8)).min(to),
                    group: k % 3,
                })
                .collect();
            let mut times = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                let sums = store
                    .production_totals(TenantId::DEFAULT, None, &periods)
                    .await
                    .expect("totals");
                times.push(t.elapsed());
                assert_eq!(sums.len(), machines.len() * 3);
            }
            println!(
                "production sums of {} machines per shift over {label} ({} periods; {down}): \
                 {:.1} ms median",
                machines.len(),
                periods.len(),
                median(times).as_secs_f64() * 1000.0
            );
            let path = format!("/api/v1/kpis?from={}&to={}", enc(to - span), enc(to));
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..7 {
                let (t, n) = get(path.clone()).await;
                times.push(t);
                size = n;
            }
            println!(
                "KPIs of {} machines over {label} (3 shifts a day, quality and performance from \
                 hourly counts, {down}): {:.1} ms median ({size} bytes)",
                machines.len(),
                median(times).as_secs_f64() * 1000.0
            );
        }
    }

    for machines in [100, 1000] {
        add_machines(store.as_ref(), &mut sensors, machines).await;
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..15 {
            let (t, n) = get("/api/v1/overview".into()).await;
            times.push(t);
            size = n;
        }
        println!(
            "overview of {machines} machines (20 scored windows and RUL predictions each): \
             {:.1} ms median ({size} bytes)",
            median(times).as_secs_f64() * 1000.0
        );
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let resp = http
            .post(format!("{url}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert!(resp.status().is_success());
        times.push(t.elapsed());
    }
    println!(
        "login (argon2id, 19 MiB, t=2): {:.1} ms median",
        median(times).as_secs_f64() * 1000.0
    );
    shutdown.cancel();
}
