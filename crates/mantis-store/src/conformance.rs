//! The conformance suite: what every [`Store`] must do, written once and run against each
//! implementation (feature `conformance`).
//!
//! Each body takes any store (`&S` with `S: Store`, or `&dyn Store`), arranges its own data
//! with fresh random ids, acts, and asserts behaviour (never timing). A backend's test file runs
//! them all with [`conformance_tests!`](crate::conformance_tests), giving each body a fresh,
//! empty store through a helper of its own (`with_store` in `tests/postgres.rs`, which creates
//! and drops a database; `with_file_store` and `with_memory_store` in `tests/sqlite.rs`).

use crate::{
    AlertFilter, AlertState, Error, Expired, KeepStored, Lease, LifeEnds, Part, PlannedSlot,
    ProductionPeriod, ProductionSpan, Retention, Store, UserChanges, WorkOrderChanges,
    WorkOrderFilter,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use mantis_domain::{
    Alert, AlertKind, Anomaly, AnomalyScore, ApiKey, ApiKeyId, Asset, AssetId, Contribution,
    Criticality, Day, FeatureVector, MaintenanceEvent, MaintenanceEventId, MaintenanceEventKind,
    PlannedStop, PlannedStopId, Priority, ProductionCount, Quality, Reading, Role, RulPrediction,
    Sensor, SensorId, SensorType, Severity, Shift, SourceProtocol, SparePart, StockChange,
    StockMovementKind, Technician, TenantId, TimeOff, TimeOffId, Timestamp, User, Window,
    WorkOrder, WorkOrderId, WorkOrderStatus,
};
use std::collections::BTreeMap;

/// Generates one `#[tokio::test]` per conformance body. `$with_store` is an async function
/// taking a closure `FnOnce(Store) -> impl Future<Output = ()> + Send + 'static`, that hands the
/// closure a fresh store and cleans up afterwards.
#[macro_export]
macro_rules! conformance_tests {
    ($with_store:path) => {
        $crate::conformance_tests!(@each $with_store;
            the_store_answers_and_describes_itself,
            assets_round_trip_and_are_updated_in_place,
            assets_and_sensors_are_listed_by_code,
            sensors_round_trip_and_are_updated_in_place,
            a_sensor_of_an_unknown_asset_is_refused,
            an_asset_is_registered_with_its_sensors_all_or_nothing,
            readings_are_stored_once_and_listed_by_time_range,
            a_batch_larger_than_one_statement_is_stored_once,
            windows_are_stored_once,
            feature_vectors_are_stored_once_and_the_newest_per_sensor_is_returned,
            anomalies_are_stored_once_and_listed_newest_first,
            anomaly_scores_are_upserted_per_window_and_keep_their_anomaly,
            recent_feature_history_is_the_newest_of_a_period_oldest_first,
            first_feature_history_is_the_oldest_of_a_period_oldest_first,
            rul_predictions_are_stored_once_and_listed_newest_first,
            alerts_are_stored_once_and_listed_newest_first,
            maintenance_events_are_stored_once_and_listed_newest_first,
            a_tenants_maintenance_events_are_read_at_once_newest_first_per_asset,
            opening_a_work_order_twice_returns_the_active_one,
            a_new_work_order_can_be_opened_once_the_active_one_is_completed,
            a_closed_work_order_opened_again_is_returned_as_stored,
            concurrent_openings_create_exactly_one_work_order,
            work_orders_are_filtered_by_asset_and_status_newest_first,
            overdue_work_orders_are_the_active_ones_past_due_longest_overdue_first,
            a_duplicate_work_order_code_is_a_conflict,
            changing_the_status_of_a_missing_work_order_is_not_found,
            service_state_round_trips_and_is_overwritten,
            leases_are_held_renewed_taken_over_once_expired_and_released,
            concurrent_acquisitions_grant_a_lease_to_one_holder,
            live_leases_are_listed_by_prefix_until_they_expire,
            timestamps_round_trip_at_millisecond_precision,
            values_that_are_not_numbers_are_stored_and_read_back_as_nan,
            readings_are_aggregated_into_time_buckets,
            the_last_reading_of_an_asset_is_found,
            time_series_older_than_their_retention_are_deleted_in_batches,
            a_tenants_newest_scores_predictions_and_readings_are_read_at_once,
            what_is_open_on_each_asset_is_counted_at_once,
            alerts_are_acknowledged_once_assigned_and_filtered_by_state_and_tenant,
            acknowledging_or_assigning_a_missing_alert_is_not_found,
            work_orders_move_only_from_the_status_they_are_in,
            changes_since_a_time_are_listed_oldest_first,
            work_order_plans_are_updated_field_by_field,
            a_work_order_is_created_with_its_plan_in_one_step,
            work_orders_are_filtered_by_tenant,
            users_round_trip_are_updated_and_listed_by_tenant,
            a_users_fields_are_changed_one_by_one_within_their_tenant,
            api_keys_are_found_by_prefix_listed_and_revoked_once,
            technicians_round_trip_are_replaced_listed_by_tenant_and_removed,
            time_off_is_listed_by_overlap_within_its_tenant_and_removed_once,
            planned_stops_are_listed_by_overlap_for_an_asset_or_the_plant_and_removed_once,
            spare_parts_are_reserved_by_active_work_orders_and_taken_at_completion,
            stock_movements_are_recorded_in_order_and_a_missing_part_is_not_found,
            production_counts_are_replaced_by_start_and_never_overlap,
            production_totals_sum_each_period_and_share_out_counts_across_edges,
        );
    };
    (@each $with_store:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $with_store(|store| async move {
                    $crate::conformance::$name(&store).await;
                })
                .await;
            }
        )*
    };
}

// --- fixtures -----------------------------------------------------------------------------

/// A fixed instant plus `ms` milliseconds (tests never depend on the clock).
fn at(ms: i64) -> Timestamp {
    let base: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("a valid fixed instant");
    base + Duration::milliseconds(ms)
}

fn asset(code: &str) -> Asset {
    Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: code.to_owned(),
        name: format!("Asset {code}"),
        asset_type: "motor".to_owned(),
        location: "Line 1".to_owned(),
        criticality: Criticality::Critical,
    }
}

fn sensor(asset: &Asset, code: &str) -> Sensor {
    Sensor {
        id: SensorId::new_random(),
        asset_id: asset.id,
        code: code.to_owned(),
        sensor_type: SensorType::Vibration,
        unit: "mm/s".to_owned(),
        min_value: 0.0,
        max_value: 50.0,
        sampling_rate_hz: 1000.0,
    }
}

async fn registered_asset<S: Store + ?Sized>(store: &S, code: &str) -> Asset {
    let a = asset(code);
    store.upsert_asset(&a).await.expect("register an asset");
    a
}

async fn registered_sensor<S: Store + ?Sized>(store: &S, asset: &Asset, code: &str) -> Sensor {
    let s = sensor(asset, code);
    store.upsert_sensor(&s).await.expect("register a sensor");
    s
}

fn reading(sensor: &Sensor, t: Timestamp, value: f64) -> Reading {
    Reading {
        timestamp: t,
        asset_id: sensor.asset_id,
        sensor_id: sensor.id,
        sensor_code: sensor.code.clone(),
        sensor_type: sensor.sensor_type,
        value,
        unit: sensor.unit.clone(),
        quality: Quality::new(97).expect("a valid quality"),
        source: SourceProtocol::OpcUa,
        metadata: BTreeMap::from([("node".to_owned(), "ns=2;s=Vib".to_owned())]),
    }
}

fn window(sensor: &Sensor, start_ms: i64) -> Window {
    Window {
        asset_id: sensor.asset_id,
        sensor_id: sensor.id,
        sensor_type: sensor.sensor_type,
        window_start: at(start_ms),
        window_end: at(start_ms + 30_000),
        count: 3,
        mean: 2.0,
        std: 0.816_496_580_927_726,
        min: 1.0,
        max: 3.0,
        values: vec![1.0, 2.0, 3.0],
        sample_rate_hz: 0.1,
    }
}

fn features(sensor: &Sensor, start_ms: i64, rms: f64) -> FeatureVector {
    FeatureVector {
        asset_id: sensor.asset_id,
        sensor_id: sensor.id,
        sensor_type: sensor.sensor_type,
        window_start: at(start_ms),
        window_end: at(start_ms + 30_000),
        feature_set_version: "v1".to_owned(),
        features: BTreeMap::from([
            ("rms".to_owned(), rms),
            ("kurtosis".to_owned(), 3.1),
            ("skewness".to_owned(), -0.2),
            ("crest_factor".to_owned(), 1.41),
            ("peak_frequency".to_owned(), 49.5),
            ("spectral_entropy".to_owned(), 0.73),
            ("peak_to_peak".to_owned(), 0.1 + 0.2),
        ]),
    }
}

fn anomaly(sensor: &Sensor, detected_ms: i64) -> Anomaly {
    let window_start = at(detected_ms - 30_000);
    Anomaly {
        id: Anomaly::id_for(sensor.id, window_start),
        asset_id: sensor.asset_id,
        sensor_id: sensor.id,
        window_start,
        detected_at: at(detected_ms),
        score: 0.91,
        threshold: 0.75,
        severity: Severity::Critical,
        criticality: Criticality::Critical,
        method: "robust-zscore".to_owned(),
        contributions: vec![
            Contribution {
                feature: "rms".to_owned(),
                sensor_id: sensor.id,
                value: 7.5,
                z_score: 6.25,
            },
            Contribution {
                feature: "kurtosis".to_owned(),
                sensor_id: sensor.id,
                value: 5.0,
                z_score: 3.5,
            },
        ],
    }
}

fn work_order(asset: &Asset, cause: &str, code: &str, created_ms: i64) -> WorkOrder {
    WorkOrder {
        id: WorkOrderId::new_random(),
        code: code.to_owned(),
        asset_id: asset.id,
        cause: cause.to_owned(),
        priority: Priority::Urgent,
        status: WorkOrderStatus::Open,
        created_at: at(created_ms),
        due_by: at(created_ms + 2 * 3_600_000),
        description: "Check bearing vibration".to_owned(),
        rule: "anomaly-critical".to_owned(),
        trigger_event: format!("anomaly:{code}"),
    }
}

/// A work-order code unique across the whole test run (codes are globally unique).
fn unique_code(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn codes_of_assets(assets: &[Asset]) -> Vec<&str> {
    assets.iter().map(|a| a.code.as_str()).collect()
}

fn codes_of_sensors(sensors: &[Sensor]) -> Vec<&str> {
    sensors.iter().map(|s| s.code.as_str()).collect()
}

fn ids_of(work_orders: &[WorkOrder]) -> Vec<WorkOrderId> {
    work_orders.iter().map(|w| w.id).collect()
}

// --- bodies -------------------------------------------------------------------------------

/// `ping` succeeds and `describe` names the backend.
pub async fn the_store_answers_and_describes_itself<S: Store + ?Sized>(store: &S) {
    store.ping().await.expect("ping");
    let description = store.describe();
    assert!(
        description.starts_with("postgres") || description.starts_with("sqlite"),
        "unexpected description {description:?}"
    );
}

/// An asset reads back as written, is updated in place by id, and another asset with the same
/// code in the same tenant is a conflict.
pub async fn assets_round_trip_and_are_updated_in_place<S: Store + ?Sized>(store: &S) {
    let mut motor = registered_asset(store, "MTR-001").await;
    assert_eq!(
        store.get_asset(motor.id).await.expect("get"),
        Some(motor.clone())
    );

    motor.name = "Main motor (rewound)".to_owned();
    motor.location = "Line 2".to_owned();
    motor.criticality = Criticality::High;
    store.upsert_asset(&motor).await.expect("update");
    assert_eq!(
        store.get_asset(motor.id).await.expect("get"),
        Some(motor.clone())
    );
    assert_eq!(store.list_assets(None).await.expect("list").len(), 1);

    assert_eq!(
        store.get_asset(AssetId::new_random()).await.expect("get"),
        None
    );
    let same_code = asset("MTR-001");
    let result = store.upsert_asset(&same_code).await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
}

/// Assets are listed by code (optionally for one tenant), sensors by code (optionally for one
/// asset), whatever the order they were written in.
pub async fn assets_and_sensors_are_listed_by_code<S: Store + ?Sized>(store: &S) {
    let c = registered_asset(store, "C-3").await;
    let lower = registered_asset(store, "b-1").await;
    let a = registered_asset(store, "A-1").await;
    let b = registered_asset(store, "B-2").await;
    let other_tenant = TenantId::new_random();
    let d = Asset {
        tenant_id: other_tenant,
        ..asset("D-4")
    };
    store
        .upsert_asset(&d)
        .await
        .expect("asset of another tenant");

    let all = store.list_assets(None).await.expect("list");
    // Byte order of the codes, in every backend (upper case sorts before lower case).
    assert_eq!(codes_of_assets(&all), ["A-1", "B-2", "C-3", "D-4", "b-1"]);
    let default = store
        .list_assets(Some(TenantId::DEFAULT))
        .await
        .expect("list");
    assert_eq!(codes_of_assets(&default), ["A-1", "B-2", "C-3", "b-1"]);
    let other = store.list_assets(Some(other_tenant)).await.expect("list");
    assert_eq!(other, vec![d.clone()]);

    registered_sensor(store, &a, "S-2").await;
    registered_sensor(store, &a, "S-1").await;
    registered_sensor(store, &b, "S-0").await;
    let of_a = store.list_sensors(Some(a.id)).await.expect("list");
    assert_eq!(codes_of_sensors(&of_a), ["S-1", "S-2"]);
    let all = store.list_sensors(None).await.expect("list");
    assert_eq!(codes_of_sensors(&all), ["S-0", "S-1", "S-2"]);
    // By tenant: the other tenant's asset's sensor is not among the default tenant's.
    registered_sensor(store, &d, "S-9").await;
    let ours = store.tenant_sensors(a.tenant_id).await.expect("list");
    assert_eq!(codes_of_sensors(&ours), ["S-0", "S-1", "S-2"]);
    let theirs = store.tenant_sensors(other_tenant).await.expect("list");
    assert_eq!(codes_of_sensors(&theirs), ["S-9"]);
    for without_sensors in [&c, &lower] {
        let sensors = store
            .list_sensors(Some(without_sensors.id))
            .await
            .expect("list");
        assert!(sensors.is_empty());
    }
}

/// A sensor reads back as written and is updated in place by id (even moved to another asset).
pub async fn sensors_round_trip_and_are_updated_in_place<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let mut vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    assert_eq!(
        store.get_sensor(vib.id).await.expect("get"),
        Some(vib.clone())
    );

    vib.asset_id = pump.id;
    vib.unit = "g".to_owned();
    vib.max_value = 16.0;
    vib.sampling_rate_hz = 25_600.0;
    store.upsert_sensor(&vib).await.expect("update");
    assert_eq!(
        store.get_sensor(vib.id).await.expect("get"),
        Some(vib.clone())
    );
    assert!(
        store
            .list_sensors(Some(motor.id))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.get_sensor(SensorId::new_random()).await.expect("get"),
        None
    );
}

/// A sensor must be mounted on a registered asset.
pub async fn a_sensor_of_an_unknown_asset_is_refused<S: Store + ?Sized>(store: &S) {
    let unregistered = asset("GHOST-1");
    let orphan = sensor(&unregistered, "GHOST-1-VIB");
    let result = store.upsert_sensor(&orphan).await;
    let expected_id = unregistered.id.to_string();
    assert!(
        matches!(&result, Err(Error::NotFound { what: "asset", id }) if *id == expected_id),
        "expected asset not found, got {result:?}"
    );
    assert_eq!(store.get_sensor(orphan.id).await.expect("get"), None);
}

/// An asset and its sensors are stored together or not at all: a sensor code taken by another
/// sensor of the tenant leaves neither the new asset nor its other sensors behind, and a
/// re-registration updates the asset and its sensors in place.
pub async fn an_asset_is_registered_with_its_sensors_all_or_nothing<S: Store + ?Sized>(store: &S) {
    let motor = asset("MTR-001");
    let vib = sensor(&motor, "MTR-001-VIB");
    let temp = Sensor {
        sensor_type: SensorType::Temperature,
        unit: "°C".to_owned(),
        ..sensor(&motor, "MTR-001-TEMP")
    };
    store
        .register_asset(&motor, &[vib.clone(), temp.clone()])
        .await
        .expect("register");
    assert_eq!(
        store.get_asset(motor.id).await.expect("get"),
        Some(motor.clone())
    );
    assert_eq!(
        store.list_sensors(Some(motor.id)).await.expect("list"),
        [temp.clone(), vib.clone()]
    );

    // The second sensor's code is the motor's vibration sensor's: nothing of the pump is kept.
    let pump = asset("PMP-001");
    let pump_flow = Sensor {
        sensor_type: SensorType::Flow,
        unit: "m3/h".to_owned(),
        ..sensor(&pump, "PMP-001-FLOW")
    };
    let clash = sensor(&pump, "MTR-001-VIB");
    let result = store
        .register_asset(&pump, &[pump_flow.clone(), clash])
        .await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
    assert_eq!(store.get_asset(pump.id).await.expect("get"), None);
    assert_eq!(store.get_sensor(pump_flow.id).await.expect("get"), None);
    assert_eq!(
        store.list_assets(None).await.expect("list"),
        std::slice::from_ref(&motor)
    );

    // A sensor of another asset in the request: refused before anything is written.
    let stray = sensor(&motor, "MTR-001-STRAY");
    let result = store
        .register_asset(&pump, &[pump_flow.clone(), stray])
        .await;
    assert!(
        matches!(result, Err(Error::Invalid(_))),
        "expected invalid, got {result:?}"
    );
    assert_eq!(store.get_asset(pump.id).await.expect("get"), None);

    // Registered again: the asset and its sensors are updated in place.
    let renamed = Asset {
        name: "Main motor, rewound".to_owned(),
        ..motor.clone()
    };
    let rescaled = Sensor {
        max_value: 80.0,
        ..vib.clone()
    };
    store
        .register_asset(&renamed, std::slice::from_ref(&rescaled))
        .await
        .expect("register again");
    assert_eq!(
        store.get_asset(motor.id).await.expect("get"),
        Some(renamed.clone())
    );
    assert_eq!(
        store.list_sensors(Some(motor.id)).await.expect("list"),
        [temp, rescaled]
    );
    store
        .register_asset(&pump, std::slice::from_ref(&pump_flow))
        .await
        .expect("the corrected pump");
    assert_eq!(
        store.list_sensors(Some(pump.id)).await.expect("list"),
        std::slice::from_ref(&pump_flow)
    );

    // Ids of another tenant's asset or sensor are never taken over (even by a request that
    // raced the caller's own check): a conflict, and nothing changes.
    let plant_b = TenantId::new_random();
    let hijack = Asset {
        tenant_id: plant_b,
        ..motor.clone()
    };
    let result = store.register_asset(&hijack, &[]).await;
    assert!(
        matches!(&result, Err(Error::Conflict(why)) if why.contains("not available")),
        "expected a conflict, got {result:?}"
    );
    let result = store.upsert_asset(&hijack).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    assert_eq!(store.get_asset(motor.id).await.expect("get"), Some(renamed));
    let theirs = Asset {
        tenant_id: plant_b,
        ..asset("THEIRS-1")
    };
    let stolen = Sensor {
        asset_id: theirs.id,
        ..pump_flow.clone()
    };
    let result = store
        .register_asset(&theirs, std::slice::from_ref(&stolen))
        .await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    assert_eq!(store.get_asset(theirs.id).await.expect("get"), None);
    store.upsert_asset(&theirs).await.expect("their asset");
    let result = store.upsert_sensor(&stolen).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    assert_eq!(
        store.get_sensor(pump_flow.id).await.expect("get"),
        Some(pump_flow)
    );
}

/// Writing the same readings again stores nothing new; a range query returns `[from, to)` of
/// one sensor, oldest first, exactly as written.
pub async fn readings_are_stored_once_and_listed_by_time_range<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let temp = registered_sensor(store, &motor, "MTR-001-TMP").await;
    // Written out of order, on purpose.
    let batch = vec![
        reading(&vib, at(1_000), 4.0),
        reading(&vib, at(0), 1.0),
        reading(&vib, at(2), 3.0),
        reading(&vib, at(1), 2.0),
        reading(&temp, at(0), 60.0),
    ];
    assert_eq!(store.insert_readings(&batch).await.expect("insert"), 5);
    assert_eq!(store.insert_readings(&batch).await.expect("again"), 0);
    let overlapping = vec![reading(&vib, at(2), 3.0), reading(&vib, at(60_000), 5.0)];
    assert_eq!(
        store.insert_readings(&overlapping).await.expect("overlap"),
        1
    );
    assert_eq!(store.insert_readings(&[]).await.expect("empty"), 0);

    let first_second = store
        .list_readings(vib.id, at(0), at(1_000))
        .await
        .expect("list");
    assert_eq!(
        first_second,
        vec![
            reading(&vib, at(0), 1.0),
            reading(&vib, at(1), 2.0),
            reading(&vib, at(2), 3.0),
        ],
        "the end of the range is exclusive and readings come oldest first"
    );
    let everything = store
        .list_readings(vib.id, at(-1), at(3_600_000))
        .await
        .expect("list");
    let values: Vec<f64> = everything.iter().map(|r| r.value).collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0], "each reading once");
    let temps = store
        .list_readings(temp.id, at(0), at(1))
        .await
        .expect("list");
    assert_eq!(temps, vec![reading(&temp, at(0), 60.0)]);
}

/// A batch larger than one `INSERT` statement holds is stored whole, and only once.
pub async fn a_batch_larger_than_one_statement_is_stored_once<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let batch: Vec<Reading> = (0..1_234)
        .map(|i| reading(&vib, at(i), i as f64 / 100.0))
        .collect();
    assert_eq!(store.insert_readings(&batch).await.expect("insert"), 1_234);
    assert_eq!(store.insert_readings(&batch).await.expect("again"), 0);
    let stored = store
        .list_readings(vib.id, at(0), at(1_234))
        .await
        .expect("list");
    assert_eq!(stored, batch);
}

/// A window is stored once per sensor and start.
pub async fn windows_are_stored_once<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let temp = registered_sensor(store, &motor, "MTR-001-TMP").await;

    assert!(store.insert_window(&window(&vib, 0)).await.expect("insert"));
    assert!(!store.insert_window(&window(&vib, 0)).await.expect("again"));
    assert!(
        store
            .insert_window(&window(&vib, 30_000))
            .await
            .expect("next")
    );
    assert!(store.insert_window(&window(&temp, 0)).await.expect("other"));

    assert_eq!(store.count_windows(Some(vib.id)).await.expect("count"), 2);
    let listed = store
        .list_windows(vib.id, at(0), at(60_000), 10)
        .await
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|w| (w.window_start, w.count, w.mean, w.max))
            .collect::<Vec<_>>(),
        vec![
            (at(0), 3, Some(2.0), Some(3.0)),
            (at(30_000), 3, Some(2.0), Some(3.0))
        ]
    );
    assert_eq!(listed[0].sensor_id, vib.id);
    assert_eq!(
        store
            .list_windows(vib.id, at(0), at(60_000), 1)
            .await
            .expect("limited")
            .len(),
        1
    );
    assert!(
        store
            .list_windows(vib.id, at(30_001), at(60_000), 10)
            .await
            .expect("later")
            .is_empty()
    );
    assert_eq!(store.count_windows(Some(temp.id)).await.expect("count"), 1);
    assert_eq!(store.count_windows(None).await.expect("count"), 3);
    assert_eq!(
        store
            .count_windows(Some(SensorId::new_random()))
            .await
            .expect("count"),
        0
    );
}

/// A feature vector is stored once per sensor and window; `latest_features` returns, for each
/// sensor of the asset, the vector of its newest window, exactly as written.
pub async fn feature_vectors_are_stored_once_and_the_newest_per_sensor_is_returned<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let temp = registered_sensor(store, &motor, "MTR-001-TMP").await;
    let flow = registered_sensor(store, &pump, "PMP-001-FLW").await;

    let vib_newest = features(&vib, 30_000, 2.5);
    for fv in [
        features(&vib, 0, 1.5),
        vib_newest.clone(),
        features(&temp, 0, 60.0),
        features(&flow, 90_000, 12.0),
    ] {
        assert!(store.insert_features(&fv).await.expect("insert"));
    }
    assert!(!store.insert_features(&vib_newest).await.expect("again"));
    let changed_replay = features(&vib, 30_000, 99.0);
    assert!(
        !store.insert_features(&changed_replay).await.expect("again"),
        "the first write of a window wins"
    );

    let mut latest = store.latest_features(motor.id).await.expect("latest");
    latest.sort_by_key(|fv| fv.sensor_id);
    let mut expected = vec![vib_newest, features(&temp, 0, 60.0)];
    expected.sort_by_key(|fv| fv.sensor_id);
    assert_eq!(latest, expected);
    assert_eq!(
        store.latest_features(pump.id).await.expect("latest"),
        vec![features(&flow, 90_000, 12.0)]
    );
    assert!(
        store
            .latest_features(AssetId::new_random())
            .await
            .expect("latest")
            .is_empty()
    );
}

/// An anomaly is stored once per id; anomalies are listed newest first, per asset or all, up to
/// the limit, with their contributions.
pub async fn anomalies_are_stored_once_and_listed_newest_first<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let flow = registered_sensor(store, &pump, "PMP-001-FLW").await;
    let first = anomaly(&vib, 60_000);
    let second = anomaly(&vib, 90_000);
    let third = anomaly(&flow, 120_000);

    for a in [&second, &first, &third] {
        assert!(store.insert_anomaly(a).await.expect("insert"));
    }
    assert!(!store.insert_anomaly(&first).await.expect("again"));

    assert_eq!(
        store.list_anomalies(None, 10).await.expect("list"),
        vec![third.clone(), second.clone(), first.clone()]
    );
    assert_eq!(
        store
            .list_anomalies(Some(motor.id), 10)
            .await
            .expect("list"),
        vec![second, first]
    );
    assert_eq!(
        store.list_anomalies(None, 1).await.expect("list"),
        vec![third.clone()]
    );
    // Per tenant: another tenant's anomalies are not listed, and do not take the limit.
    let other = Asset {
        tenant_id: TenantId(uuid::Uuid::new_v4()),
        ..asset("MTR-001")
    };
    store.upsert_asset(&other).await.expect("other tenant");
    let theirs_sensor = registered_sensor(store, &other, "OTHER-VIB").await;
    let theirs = anomaly(&theirs_sensor, 500_000);
    store.insert_anomaly(&theirs).await.expect("insert");
    assert_eq!(
        store
            .list_tenant_anomalies(TenantId::DEFAULT, 2)
            .await
            .expect("ours"),
        vec![third]
            .into_iter()
            .chain(store.list_anomalies(Some(motor.id), 1).await.expect("list"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .list_tenant_anomalies(other.tenant_id, 10)
            .await
            .expect("theirs"),
        vec![theirs]
    );
}

/// A scored window of `sensor` starting `start_ms` after the fixtures' instant.
fn score_row(sensor: &Sensor, start_ms: i64, score: f64) -> AnomalyScore {
    AnomalyScore {
        window_start: at(start_ms),
        sensor_id: sensor.id,
        asset_id: sensor.asset_id,
        anomaly_id: None,
        ensemble_score: score,
        zscore_score: Some(0.5),
        isolation_forest_score: Some(0.6),
        ocsvm_score: None,
        autoencoder_score: Some(0.7),
        threshold: 0.75,
        severity: None,
        method: "ensemble".to_owned(),
        model_version: Some("3".to_owned()),
    }
}

/// Every scored window has one score row: scoring it again updates the scores and keeps the
/// anomaly id and severity written with the anomaly; listed newest first per asset.
pub async fn anomaly_scores_are_upserted_per_window_and_keep_their_anomaly<S: Store + ?Sized>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let flow = registered_sensor(store, &pump, "PMP-001-FLW").await;
    let row = score_row;
    // The anomaly's insert writes its window's score row first ...
    let anomalous = anomaly(&vib, 60_000);
    assert!(store.insert_anomaly(&anomalous).await.expect("anomaly"));
    // ... then the service writes every window's full scores.
    let quiet = row(&vib, 0, 0.2);
    let mut scored = row(&vib, 30_000, 0.91);
    scored.anomaly_id = Some(anomalous.id);
    scored.severity = Some(Severity::Critical);
    store.upsert_anomaly_score(&quiet).await.expect("quiet");
    store.upsert_anomaly_score(&scored).await.expect("scored");
    store
        .upsert_anomaly_score(&row(&flow, 0, 0.1))
        .await
        .expect("other asset");
    // Scoring a window again (a redelivery) without the anomaly keeps it.
    let mut again = row(&vib, 30_000, 0.92);
    again.severity = None;
    store.upsert_anomaly_score(&again).await.expect("again");

    let listed = store.list_anomaly_scores(motor.id, 10).await.expect("list");
    let mut expected = again.clone();
    expected.anomaly_id = Some(anomalous.id);
    expected.severity = Some(Severity::Critical);
    assert_eq!(listed, vec![expected, quiet]);
    assert_eq!(
        store
            .list_anomaly_scores(motor.id, 1)
            .await
            .expect("limit")
            .len(),
        1
    );
}

/// A vibration sensor of a motor with windows starting at 0, 30, 60 and 90 s (rms 1, 3, 2, 0:
/// inserted out of order), and a temperature sensor of the same motor with one window at
/// `other_ms` (which the vibration sensor's history must not show).
async fn sensor_with_four_windows<S: Store + ?Sized>(store: &S, other_ms: i64) -> Sensor {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let tmp = registered_sensor(store, &motor, "MTR-001-TMP").await;
    for (i, start) in [90_000, 0, 60_000, 30_000].into_iter().enumerate() {
        store
            .insert_features(&features(&vib, start, i as f64))
            .await
            .expect("insert");
    }
    store
        .insert_features(&features(&tmp, other_ms, 9.0))
        .await
        .expect("other sensor");
    vib
}

/// The window starts of `v`, in milliseconds from the fixtures' instant.
fn window_starts(v: &[FeatureVector]) -> Vec<i64> {
    v.iter()
        .map(|f| (f.window_start - at(0)).num_milliseconds())
        .collect()
}

/// A sensor's feature history: the newest `limit` windows starting within `[from, to)`, oldest
/// first, and only that sensor's.
pub async fn recent_feature_history_is_the_newest_of_a_period_oldest_first<S: Store + ?Sized>(
    store: &S,
) {
    let vib = sensor_with_four_windows(store, 30_000).await;
    let recent = |from: i64, to: i64, limit: u32| async move {
        store
            .recent_features(vib.id, at(from), at(to), limit)
            .await
            .expect("recent features")
    };
    let all = recent(0, 120_000, 100).await;
    assert_eq!(window_starts(&all), vec![0, 30_000, 60_000, 90_000]);
    assert_eq!(all[1], features(&vib, 30_000, 3.0));
    assert_eq!(
        window_starts(&recent(30_000, 90_000, 100).await),
        vec![30_000, 60_000]
    );
    assert_eq!(
        window_starts(&recent(0, 120_000, 2).await),
        vec![60_000, 90_000]
    );
    assert_eq!(
        window_starts(&recent(0, 90_000, 10).await),
        vec![0, 30_000, 60_000]
    );
}

/// A sensor's first windows: the oldest `limit` starting within `[from, to)`, oldest first,
/// and only that sensor's.
pub async fn first_feature_history_is_the_oldest_of_a_period_oldest_first<S: Store + ?Sized>(
    store: &S,
) {
    let vib = sensor_with_four_windows(store, 0).await;
    let first = |from: i64, to: i64, limit: u32| async move {
        store
            .first_features(vib.id, at(from), at(to), limit)
            .await
            .expect("first features")
    };
    let all = first(0, 120_000, 100).await;
    assert_eq!(window_starts(&all), vec![0, 30_000, 60_000, 90_000]);
    assert_eq!(all[0], features(&vib, 0, 1.0));
    assert_eq!(window_starts(&first(0, 120_000, 2).await), vec![0, 30_000]);
    assert_eq!(
        window_starts(&first(30_000, 120_000, 2).await),
        vec![30_000, 60_000]
    );
    assert_eq!(window_starts(&first(0, 30_000, 10).await), vec![0]);
    assert!(first(120_000, 180_000, 10).await.is_empty());
}

/// A RUL prediction is stored once per asset and prediction time; listed newest first.
pub async fn rul_predictions_are_stored_once_and_listed_newest_first<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let prediction = |asset: &Asset, ms: i64, rul: f64| RulPrediction {
        asset_id: asset.id,
        predicted_at: at(ms),
        rul_cycles: rul,
        confidence_lower: rul * 0.8,
        confidence_upper: rul * 1.2,
        model_version: "lstm-2026.11".to_owned(),
    };
    let older = prediction(&motor, 0, 180.0);
    let newer = prediction(&motor, 60_000, 150.0);
    assert!(store.insert_rul_prediction(&older).await.expect("insert"));
    assert!(store.insert_rul_prediction(&newer).await.expect("insert"));
    assert!(
        store
            .insert_rul_prediction(&prediction(&pump, 0, 900.0))
            .await
            .expect("insert")
    );
    assert!(!store.insert_rul_prediction(&older).await.expect("again"));
    // Another value for the same asset and time (a redelivered window, another model) keeps
    // the first.
    assert!(
        !store
            .insert_rul_prediction(&prediction(&motor, 0, 90.0))
            .await
            .expect("again")
    );
    assert_eq!(
        store
            .get_rul_prediction(motor.id, at(0))
            .await
            .expect("get"),
        Some(older.clone())
    );
    assert_eq!(
        store
            .get_rul_prediction(motor.id, at(30_000))
            .await
            .expect("get"),
        None
    );

    assert_eq!(
        store
            .list_rul_predictions(motor.id, 10)
            .await
            .expect("list"),
        vec![newer.clone(), older]
    );
    assert_eq!(
        store.list_rul_predictions(motor.id, 1).await.expect("list"),
        vec![newer]
    );
}

/// A maintenance event is stored once per id, reads back as written, and events are listed
/// newest first, all or of one asset.
pub async fn maintenance_events_are_stored_once_and_listed_newest_first<S: Store + ?Sized>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let event = |asset: &Asset, n: u128, kind, ms: i64| MaintenanceEvent {
        id: MaintenanceEventId(uuid::Uuid::from_u128(0xe0 + n)),
        asset_id: asset.id,
        kind,
        occurred_at: at(ms),
        work_order_id: (n == 1).then(|| WorkOrderId(uuid::Uuid::from_u128(7))),
        note: format!("event {n}: bearing seized"),
    };
    let failure = event(&motor, 1, MaintenanceEventKind::Failure, 10_000);
    let repair = event(&motor, 2, MaintenanceEventKind::Repair, 20_000);
    let replacement = event(&pump, 3, MaintenanceEventKind::Replacement, 15_000);
    assert!(
        store
            .insert_maintenance_event(&failure)
            .await
            .expect("insert")
    );
    assert!(
        !store
            .insert_maintenance_event(&failure)
            .await
            .expect("again")
    );
    assert!(
        store
            .insert_maintenance_event(&repair)
            .await
            .expect("insert")
    );
    assert!(
        store
            .insert_maintenance_event(&replacement)
            .await
            .expect("insert")
    );
    assert_eq!(
        store
            .list_maintenance_events(Some(motor.id), 10)
            .await
            .expect("list"),
        vec![repair.clone(), failure.clone()]
    );
    assert_eq!(
        store.list_maintenance_events(None, 10).await.expect("list"),
        vec![repair.clone(), replacement, failure.clone()]
    );
    assert_eq!(
        store.list_maintenance_events(None, 1).await.expect("list"),
        vec![repair]
    );
    // The current life starts at the latest failure or replacement; a repair does not end it,
    // nor does an older failure recorded later.
    let older = event(&motor, 4, MaintenanceEventKind::Failure, 5_000);
    assert!(
        store
            .insert_maintenance_event(&older)
            .await
            .expect("insert")
    );
    let life = |asset: AssetId| store.last_life_end(asset);
    assert_eq!(life(motor.id).await.expect("life"), Some(at(10_000)));
    assert_eq!(life(pump.id).await.expect("life"), Some(at(15_000)));
    assert_eq!(life(AssetId::new_random()).await.expect("life"), None);
    // Every asset's at once: the motor's two failures (the repair does not count, nor a
    // replacement recorded at the instant of a failure: one life ends there), the pump's
    // replacement.
    let same = event(&motor, 5, MaintenanceEventKind::Replacement, 10_000);
    assert!(store.insert_maintenance_event(&same).await.expect("insert"));
    let mut ends = store.life_ends().await.expect("life ends");
    ends.sort_by_key(|e| e.asset_id);
    let mut expected = vec![
        LifeEnds {
            asset_id: motor.id,
            latest: at(10_000),
            count: 2,
        },
        LifeEnds {
            asset_id: pump.id,
            latest: at(15_000),
            count: 1,
        },
    ];
    expected.sort_by_key(|e| e.asset_id);
    assert_eq!(ends, expected);
    assert_eq!(
        store.get_maintenance_event(failure.id).await.expect("get"),
        Some(failure)
    );
    assert_eq!(
        store
            .get_maintenance_event(MaintenanceEventId(uuid::Uuid::from_u128(0xdead)))
            .await
            .expect("get"),
        None
    );
}

/// An alert is stored once per id, reads back as written, and alerts are listed newest first.
pub async fn alerts_are_stored_once_and_listed_newest_first<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let opened = store
        .open_work_order(&work_order(&motor, "anomaly", &unique_code("WO"), 0))
        .await
        .expect("open");
    let anomaly_alert = Alert {
        id: Alert::id_for("anomaly:1"),
        asset_id: motor.id,
        severity: Severity::Critical,
        kind: AlertKind::Anomaly,
        message: "Vibration far above baseline".to_owned(),
        created_at: at(1_000),
        work_order_id: Some(opened.work_order.id),
        trigger_event: "anomaly:1".to_owned(),
        notify_on_call: true,
    };
    let rul_alert = Alert {
        id: Alert::id_for("rul:1"),
        kind: AlertKind::Rul,
        severity: Severity::High,
        message: "RUL below threshold".to_owned(),
        created_at: at(2_000),
        work_order_id: None,
        trigger_event: "rul:1".to_owned(),
        notify_on_call: false,
        ..anomaly_alert.clone()
    };

    assert!(store.insert_alert(&anomaly_alert).await.expect("insert"));
    assert!(!store.insert_alert(&anomaly_alert).await.expect("again"));
    assert!(store.insert_alert(&rul_alert).await.expect("insert"));

    assert_eq!(
        store.get_alert(anomaly_alert.id).await.expect("get"),
        Some(anomaly_alert.clone())
    );
    assert_eq!(
        store.list_alerts(10).await.expect("list"),
        vec![rul_alert.clone(), anomaly_alert]
    );
    assert_eq!(store.list_alerts(1).await.expect("list"), vec![rul_alert]);
    assert_eq!(
        store
            .get_alert(Alert::id_for("never raised"))
            .await
            .expect("get"),
        None
    );
}

/// The second opening for the same asset and cause returns the first work order, unchanged, and
/// creates nothing; another cause gets its own work order.
pub async fn opening_a_work_order_twice_returns_the_active_one<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let first = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    let opened = store.open_work_order(&first).await.expect("open");
    assert!(opened.created);
    assert_eq!(opened.work_order, first);

    let second = work_order(&motor, "anomaly", &unique_code("WO"), 1_000);
    let again = store.open_work_order(&second).await.expect("open again");
    assert!(!again.created);
    assert_eq!(again.work_order, first);
    assert_eq!(store.get_work_order(second.id).await.expect("get"), None);

    let rul = work_order(&motor, "rul", &unique_code("WO"), 2_000);
    let other_cause = store.open_work_order(&rul).await.expect("other cause");
    assert!(other_cause.created);
    let filter = WorkOrderFilter {
        asset_id: Some(motor.id),
        ..WorkOrderFilter::default()
    };
    assert_eq!(
        ids_of(&store.list_work_orders(&filter).await.expect("list")),
        [rul.id, first.id]
    );
}

/// A work order stays the active one while scheduled or in progress; once completed, a new one
/// can be opened for the same asset and cause, and the completed one cannot be reactivated
/// while the new one is active.
pub async fn a_new_work_order_can_be_opened_once_the_active_one_is_completed<S: Store + ?Sized>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let first = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    store.open_work_order(&first).await.expect("open");

    store
        .set_work_order_status(first.id, WorkOrderStatus::InProgress)
        .await
        .expect("start");
    let while_in_progress = store
        .open_work_order(&work_order(&motor, "anomaly", &unique_code("WO"), 1_000))
        .await
        .expect("open");
    assert!(!while_in_progress.created);
    assert_eq!(while_in_progress.work_order.id, first.id);
    assert_eq!(
        while_in_progress.work_order.status,
        WorkOrderStatus::InProgress
    );

    store
        .set_work_order_status(first.id, WorkOrderStatus::Completed)
        .await
        .expect("complete");
    let next = work_order(&motor, "anomaly", &unique_code("WO"), 2_000);
    let reopened = store.open_work_order(&next).await.expect("open");
    assert!(reopened.created);
    assert_eq!(reopened.work_order, next);
    let completed = store.get_work_order(first.id).await.expect("get");
    assert_eq!(
        completed.map(|w| w.status),
        Some(WorkOrderStatus::Completed)
    );

    let result = store
        .set_work_order_status(first.id, WorkOrderStatus::Open)
        .await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "two active work orders for one asset and cause: {result:?}"
    );
}

/// Opening a work order again once it was closed (a redelivered event) returns it as stored,
/// neither created again nor refused; the store knows when the newest closed work order of an
/// asset and cause was closed.
pub async fn a_closed_work_order_opened_again_is_returned_as_stored<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let first = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    store.open_work_order(&first).await.expect("open");
    assert_eq!(
        store
            .last_closed_work_order(motor.id, "anomaly")
            .await
            .expect("closing"),
        None,
        "not closed yet"
    );
    let before = Utc::now() - Duration::seconds(1);
    store
        .set_work_order_status(first.id, WorkOrderStatus::Completed)
        .await
        .expect("complete");
    let again = store.open_work_order(&first).await.expect("opened again");
    assert!(!again.created);
    assert_eq!(again.work_order.id, first.id);
    assert_eq!(again.work_order.status, WorkOrderStatus::Completed);
    let closed = store
        .last_closed_work_order(motor.id, "anomaly")
        .await
        .expect("closing")
        .expect("closed");
    assert!(closed >= before, "closed at {closed}, before {before}");
    assert_eq!(
        store
            .last_closed_work_order(motor.id, "rul")
            .await
            .expect("closing"),
        None,
        "another cause"
    );
    let filter = WorkOrderFilter {
        asset_id: Some(motor.id),
        ..WorkOrderFilter::default()
    };
    assert_eq!(
        ids_of(&store.list_work_orders(&filter).await.expect("list")),
        [first.id]
    );
}

/// Each time series keeps what its retention allows and loses the rest, in batches, series by
/// series; a series with only recent rows is untouched; a second pass finds nothing to do.
pub async fn time_series_older_than_their_retention_are_deleted_in_batches<S: Store + ?Sized>(
    store: &S,
) {
    const DAY: i64 = 86_400_000;
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "VIB-1").await;
    let temp = registered_sensor(store, &motor, "TMP-1").await;
    // One row a day for eleven days, in each series; `temp` has readings of the last day only.
    let days = || (0..=10).map(|d| d * DAY);
    let readings: Vec<Reading> = days().map(|ms| reading(&vib, at(ms), 1.0)).collect();
    store.insert_readings(&readings).await.expect("readings");
    store
        .insert_readings(&[reading(&temp, at(10 * DAY), 20.0)])
        .await
        .expect("readings");
    for ms in days() {
        store
            .insert_window(&window(&vib, ms))
            .await
            .expect("window");
        store
            .insert_features(&features(&vib, ms, 1.0))
            .await
            .expect("features");
        store
            .upsert_anomaly_score(&score_row(&vib, ms, 0.1))
            .await
            .expect("score");
        let prediction = RulPrediction {
            asset_id: motor.id,
            predicted_at: at(ms),
            rul_cycles: 100.0,
            confidence_lower: 80.0,
            confidence_upper: 120.0,
            model_version: "v1".to_owned(),
        };
        store
            .insert_rul_prediction(&prediction)
            .await
            .expect("prediction");
    }
    let retention = Retention {
        readings_days: 3,
        windows_days: 4,
        features_days: 5,
        scores_days: 6,
        predictions_days: 7,
        batch_rows: 2,
        every_hours: 1,
    };
    let now = at(10 * DAY);
    let Some(report) = store
        .expire_time_series(&retention, now)
        .await
        .expect("expired")
    else {
        // The database expires them itself (TimescaleDB's policies).
        return;
    };
    let expired = |table, rows| Expired { table, rows };
    assert_eq!(
        report,
        vec![
            expired("sensor_data_raw", 7),
            expired("sensor_data_windowed", 6),
            expired("sensor_features", 5),
            expired("anomaly_scores", 4),
            expired("rul_predictions", 3),
        ]
    );
    let (from, to) = (at(-DAY), at(11 * DAY));
    let kept = store
        .list_readings(vib.id, from, to)
        .await
        .expect("readings");
    assert_eq!(kept.first().map(|r| r.timestamp), Some(at(7 * DAY)));
    assert_eq!(kept.len(), 4);
    assert_eq!(
        store
            .list_readings(temp.id, from, to)
            .await
            .expect("readings")
            .len(),
        1
    );
    assert_eq!(store.count_windows(Some(vib.id)).await.expect("windows"), 5);
    assert_eq!(
        store
            .recent_features(vib.id, from, to, 100)
            .await
            .expect("features")
            .len(),
        6
    );
    assert_eq!(
        store
            .list_anomaly_scores(motor.id, 100)
            .await
            .expect("scores")
            .len(),
        7
    );
    assert_eq!(
        store
            .list_rul_predictions(motor.id, 100)
            .await
            .expect("predictions")
            .len(),
        8
    );
    let again = store
        .expire_time_series(&retention, now)
        .await
        .expect("expired")
        .expect("report");
    assert!(again.iter().all(|e| e.rows == 0), "{again:?}");
    let zero = Retention {
        batch_rows: 0,
        ..retention
    };
    assert!(matches!(
        store.expire_time_series(&zero, now).await,
        Err(Error::Invalid(_))
    ));
}

/// Ten concurrent openings for the same asset and cause create exactly one work order, and all
/// ten callers get that one.
pub async fn concurrent_openings_create_exactly_one_work_order<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let candidates: Vec<WorkOrder> = (0..10)
        .map(|i| work_order(&motor, "anomaly", &unique_code("WO"), i))
        .collect();
    let outcomes =
        futures::future::join_all(candidates.iter().map(|c| store.open_work_order(c))).await;

    let opened: Vec<_> = outcomes
        .into_iter()
        .map(|o| o.expect("every concurrent opening succeeds"))
        .collect();
    assert_eq!(opened.iter().filter(|o| o.created).count(), 1);
    let winner = opened
        .iter()
        .find(|o| o.created)
        .map(|o| o.work_order.id)
        .expect("one opening created the work order");
    assert!(opened.iter().all(|o| o.work_order.id == winner));
    let filter = WorkOrderFilter {
        asset_id: Some(motor.id),
        ..WorkOrderFilter::default()
    };
    assert_eq!(
        ids_of(&store.list_work_orders(&filter).await.expect("list")),
        [winner]
    );
}

/// Overdue work orders are every tenant's active ones due before the given time, the longest
/// overdue first, in pages that resume after the last one read.
pub async fn overdue_work_orders_are_the_active_ones_past_due_longest_overdue_first<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let other = Asset {
        tenant_id: TenantId::new_random(),
        ..asset("FAN-001")
    };
    store
        .upsert_asset(&other)
        .await
        .expect("asset of another tenant");
    let due = |mut w: WorkOrder, due_ms: i64| {
        w.due_by = at(due_ms);
        w
    };
    // Due at 1 h, 2 h (two of them: the id breaks the tie), 3 h (scheduled), 4 h (in
    // progress, another tenant's), 5 h (completed) and 9 h (not due yet).
    let first = due(
        work_order(&motor, "anomaly", &unique_code("WO"), 0),
        3_600_000,
    );
    let mut tied = [
        due(work_order(&motor, "rul", &unique_code("WO"), 0), 7_200_000),
        due(
            work_order(&pump, "anomaly", &unique_code("WO"), 0),
            7_200_000,
        ),
    ];
    tied.sort_by_key(|w| w.id);
    let scheduled = due(work_order(&pump, "rul", &unique_code("WO"), 0), 10_800_000);
    let in_progress = due(
        work_order(&other, "anomaly", &unique_code("WO"), 0),
        14_400_000,
    );
    let completed = due(
        work_order(&pump, "manual", &unique_code("WO"), 0),
        18_000_000,
    );
    let not_due = due(
        work_order(&motor, "manual", &unique_code("WO"), 0),
        32_400_000,
    );
    for w in [
        &not_due,
        &completed,
        &in_progress,
        &scheduled,
        &tied[1],
        &first,
        &tied[0],
    ] {
        assert!(store.open_work_order(w).await.expect("open").created);
    }
    for (id, status) in [
        (scheduled.id, WorkOrderStatus::Scheduled),
        (in_progress.id, WorkOrderStatus::InProgress),
        (completed.id, WorkOrderStatus::Completed),
    ] {
        store
            .set_work_order_status(id, status)
            .await
            .expect("status");
    }

    let now = at(28_800_000);
    let all = store
        .list_overdue_work_orders(now, None, 100)
        .await
        .expect("overdue");
    let expected = [
        first.id,
        tied[0].id,
        tied[1].id,
        scheduled.id,
        in_progress.id,
    ];
    assert_eq!(ids_of(&all), expected);
    // Page by page: each resumes after the previous page's last one.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_overdue_work_orders(now, after, 2)
            .await
            .expect("a page");
        paged.extend(ids_of(&page));
        match page.last() {
            Some(last) if page.len() == 2 => after = Some((last.due_by, last.id)),
            _ => break,
        }
    }
    assert_eq!(paged, expected);
    // Nothing is overdue before the first due time.
    assert!(
        store
            .list_overdue_work_orders(at(3_600_000), None, 100)
            .await
            .expect("overdue")
            .is_empty()
    );
}

/// Work orders are listed newest first, filtered by asset and statuses, up to the limit.
pub async fn work_orders_are_filtered_by_asset_and_status_newest_first<S: Store + ?Sized>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let oldest = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    let middle = work_order(&motor, "rul", &unique_code("WO"), 1_000);
    let newest = work_order(&pump, "anomaly", &unique_code("WO"), 2_000);
    for w in [&middle, &newest, &oldest] {
        assert!(store.open_work_order(w).await.expect("open").created);
    }
    store
        .set_work_order_status(middle.id, WorkOrderStatus::Completed)
        .await
        .expect("complete");

    let list = |filter: WorkOrderFilter| async move {
        ids_of(&store.list_work_orders(&filter).await.expect("list"))
    };
    assert_eq!(
        list(WorkOrderFilter::default()).await,
        [newest.id, middle.id, oldest.id]
    );
    assert_eq!(
        list(WorkOrderFilter {
            asset_id: Some(motor.id),
            ..WorkOrderFilter::default()
        })
        .await,
        [middle.id, oldest.id]
    );
    assert_eq!(
        list(WorkOrderFilter {
            statuses: vec![WorkOrderStatus::Open],
            ..WorkOrderFilter::default()
        })
        .await,
        [newest.id, oldest.id]
    );
    assert_eq!(
        list(WorkOrderFilter {
            statuses: vec![
                WorkOrderStatus::Completed,
                WorkOrderStatus::Open,
                WorkOrderStatus::Completed,
            ],
            ..WorkOrderFilter::default()
        })
        .await,
        [newest.id, middle.id, oldest.id]
    );
    assert_eq!(
        list(WorkOrderFilter {
            asset_id: Some(motor.id),
            statuses: vec![WorkOrderStatus::Scheduled, WorkOrderStatus::Open],
            limit: None,
            tenant: None,
            soonest_due_first: false,
        })
        .await,
        [oldest.id]
    );
    // Soonest due first (the planner's order): the oldest is due first here.
    assert_eq!(
        list(WorkOrderFilter {
            soonest_due_first: true,
            limit: Some(2),
            ..WorkOrderFilter::default()
        })
        .await,
        [oldest.id, middle.id]
    );
    assert_eq!(
        list(WorkOrderFilter {
            limit: Some(1),
            ..WorkOrderFilter::default()
        })
        .await,
        [newest.id]
    );
}

/// Work-order codes are unique: a second work order with a taken code is a conflict.
pub async fn a_duplicate_work_order_code_is_a_conflict<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let code = unique_code("WO");
    store
        .open_work_order(&work_order(&motor, "anomaly", &code, 0))
        .await
        .expect("open");
    let result = store
        .open_work_order(&work_order(&pump, "anomaly", &code, 0))
        .await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
}

/// Changing the status of a work order that does not exist is `NotFound`.
pub async fn changing_the_status_of_a_missing_work_order_is_not_found<S: Store + ?Sized>(
    store: &S,
) {
    let missing = WorkOrderId::new_random();
    let result = store
        .set_work_order_status(missing, WorkOrderStatus::Completed)
        .await;
    let expected_id = missing.to_string();
    assert!(
        matches!(&result, Err(Error::NotFound { what: "work order", id }) if *id == expected_id),
        "expected not found, got {result:?}"
    );
    assert_eq!(store.get_work_order(missing).await.expect("get"), None);
}

/// A lease goes to the first holder, is renewed by it (keeping `acquired_at`), refused to
/// others until it expires, then taken over; released, it is free at once; names are
/// independent.
pub async fn leases_are_held_renewed_taken_over_once_expired_and_released<S: Store + ?Sized>(
    store: &S,
) {
    let ttl = std::time::Duration::from_secs(10);
    let first = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(0), ttl)
        .await
        .expect("acquire");
    assert!(first.is_held_by("pod-a"), "{first:?}");
    assert_eq!((first.acquired_at, first.expires_at), (at(0), at(10_000)));

    // Another instance is refused while the lease runs, and told who holds it.
    let other = store
        .acquire_lease("ingestion.connector.plc-1", "pod-b", at(9_999), ttl)
        .await
        .expect("refused, not an error");
    assert_eq!(other, first);
    // The holder renews it; it has held it since it first took it.
    let renewed = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(5_000), ttl)
        .await
        .expect("renew");
    assert!(renewed.is_held_by("pod-a"));
    assert_eq!(
        (renewed.acquired_at, renewed.expires_at),
        (at(0), at(15_000))
    );
    // An older ask of the holder's committed late shortens nothing.
    let late_ask = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(1_000), ttl)
        .await
        .expect("renew");
    assert_eq!(
        (late_ask.acquired_at, late_ask.expires_at),
        (at(0), at(15_000))
    );
    // A name of its own is independent.
    let elsewhere = store
        .acquire_lease("ingestion.connector.plc-2", "pod-b", at(5_000), ttl)
        .await
        .expect("acquire");
    assert!(elsewhere.is_held_by("pod-b"));

    // Expired (the holder died), it is taken over, and from then on the new holder's.
    let taken = store
        .acquire_lease("ingestion.connector.plc-1", "pod-b", at(15_001), ttl)
        .await
        .expect("take over");
    assert!(taken.is_held_by("pod-b"), "{taken:?}");
    assert_eq!(
        (taken.acquired_at, taken.expires_at),
        (at(15_001), at(25_001))
    );
    let late = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(15_002), ttl)
        .await
        .expect("refused");
    assert!(late.is_held_by("pod-b"), "{late:?}");

    // Only the holder releases it; released, the next asker gets it at once.
    assert!(
        !store
            .release_lease("ingestion.connector.plc-1", "pod-a", None)
            .await
            .expect("release")
    );
    assert!(
        store
            .release_lease("ingestion.connector.plc-1", "pod-b", None)
            .await
            .expect("release")
    );
    let again = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(15_003), ttl)
        .await
        .expect("acquire");
    assert!(again.is_held_by("pod-a"));
    assert_eq!(again.acquired_at, at(15_003));
    // A release bounded by the expiry its holder last saw: one reaching the database after
    // the holder renewed the lease leaves the renewed hold alone; an up-to-date one releases.
    let renewed = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(16_000), ttl)
        .await
        .expect("renew");
    assert!(renewed.expires_at > again.expires_at);
    assert!(
        !store
            .release_lease("ingestion.connector.plc-1", "pod-a", Some(again.expires_at))
            .await
            .expect("late release")
    );
    assert!(
        store
            .release_lease(
                "ingestion.connector.plc-1",
                "pod-a",
                Some(renewed.expires_at)
            )
            .await
            .expect("release")
    );
    let again = store
        .acquire_lease("ingestion.connector.plc-1", "pod-a", at(16_001), ttl)
        .await
        .expect("acquire");
    assert_eq!(again.acquired_at, at(16_001));
    // A lease of no duration is refused as an argument.
    assert!(matches!(
        store
            .acquire_lease("x", "pod-a", at(0), std::time::Duration::ZERO)
            .await,
        Err(Error::Invalid(_))
    ));
}

/// Instances asking for a free lease at once: exactly one gets it, and every one is told the
/// same holder.
pub async fn concurrent_acquisitions_grant_a_lease_to_one_holder<S: Store + ?Sized>(store: &S) {
    let ttl = std::time::Duration::from_secs(30);
    let asks = (0..8).map(|i| {
        let holder = format!("pod-{i}");
        async move {
            let lease = store
                .acquire_lease("orchestrator.scheduler", &holder, at(0), ttl)
                .await
                .expect("acquire");
            (holder, lease)
        }
    });
    let answers = futures::future::join_all(asks).await;
    let granted: Vec<&String> = answers
        .iter()
        .filter(|(h, l)| l.is_held_by(h))
        .map(|(h, _)| h)
        .collect();
    assert_eq!(granted.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|(_, l)| l.holder == *granted[0]));
}

/// The live leases under a prefix are listed by name, the expired and released ones left out;
/// the prefix is plain text (`_` and `%` match only themselves), whatever follows it.
pub async fn live_leases_are_listed_by_prefix_until_they_expire<S: Store + ?Sized>(store: &S) {
    let ttl = std::time::Duration::from_secs(10);
    for (name, holder, from) in [
        ("ingestion.member.pod-b", "pod-b", 0),
        ("ingestion.member.pod-a", "pod-a", 5_000),
        ("ingestion.member.pod-c", "pod-c", 2_000),
        ("ingestion.member_x", "pod-d", 5_000),
        ("ingestion.connector.plc-1", "pod-a", 5_000),
        ("ingestion.membe", "pod-e", 5_000),
        ("ingestion.member.ünï_%", "pod-f", 5_000),
    ] {
        store
            .acquire_lease(name, holder, at(from), ttl)
            .await
            .expect("acquire");
    }
    let names =
        |leases: Vec<Lease>| -> Vec<String> { leases.into_iter().map(|l| l.name).collect() };
    let live = store
        .live_leases("ingestion.member.", at(10_000))
        .await
        .expect("list");
    assert_eq!(
        names(live.clone()),
        [
            "ingestion.member.pod-a",
            "ingestion.member.pod-b",
            "ingestion.member.pod-c",
            "ingestion.member.ünï_%",
        ]
    );
    let a = &live[0];
    assert_eq!(
        (a.holder.as_str(), a.acquired_at, a.expires_at),
        ("pod-a", at(5_000), at(15_000))
    );
    // Expired at 10 s (pod-b's) or at 12 s (pod-c's): left out; released: left out at once.
    assert_eq!(
        names(
            store
                .live_leases("ingestion.member.", at(10_001))
                .await
                .expect("list")
        ),
        [
            "ingestion.member.pod-a",
            "ingestion.member.pod-c",
            "ingestion.member.ünï_%",
        ]
    );
    assert!(
        store
            .release_lease("ingestion.member.pod-a", "pod-a", None)
            .await
            .expect("release")
    );
    assert_eq!(
        names(
            store
                .live_leases("ingestion.member.", at(12_001))
                .await
                .expect("list")
        ),
        ["ingestion.member.ünï_%"]
    );
    assert_eq!(
        names(
            store
                .live_leases("ingestion.member.ünï_", at(0))
                .await
                .expect("list")
        ),
        ["ingestion.member.ünï_%"]
    );
    assert!(
        store
            .live_leases("nothing.", at(0))
            .await
            .expect("list")
            .is_empty()
    );
}

/// A state document reads back as written; the last write wins; keys are independent.
pub async fn service_state_round_trips_and_is_overwritten<S: Store + ?Sized>(store: &S) {
    assert_eq!(
        store.get_state("anomaly.baseline").await.expect("get"),
        None
    );
    let first = serde_json::json!({
        "version": 1,
        "median": [0.1, 0.30000000000000004, 1e-300],
        "label": "température ✓",
        "nested": {"ok": true, "none": null},
    });
    store
        .put_state("anomaly.baseline", &first)
        .await
        .expect("put");
    store
        .put_state("rul.cursor", &serde_json::json!(42))
        .await
        .expect("put");
    assert_eq!(
        store.get_state("anomaly.baseline").await.expect("get"),
        Some(first)
    );

    let second = serde_json::json!({"version": 2});
    store
        .put_state("anomaly.baseline", &second)
        .await
        .expect("overwrite");
    assert_eq!(
        store.get_state("anomaly.baseline").await.expect("get"),
        Some(second)
    );
    assert_eq!(
        store.get_state("rul.cursor").await.expect("get"),
        Some(serde_json::json!(42))
    );
}

/// Instants come back to the millisecond (before 1970 and far ahead too); a finer instant is
/// truncated to its millisecond, in every backend, and so is the same reading as that
/// millisecond's.
pub async fn timestamps_round_trip_at_millisecond_precision<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let instants: Vec<Timestamp> = [
        "2026-11-23T12:34:56.789Z",
        "1969-12-31T23:59:59.999Z",
        "2199-01-01T00:00:00.001Z",
    ]
    .iter()
    .map(|s| {
        DateTime::parse_from_rfc3339(s)
            .expect("a valid instant")
            .with_timezone(&Utc)
    })
    .collect();
    let readings: Vec<Reading> = instants.iter().map(|t| reading(&vib, *t, 1.0)).collect();
    assert_eq!(store.insert_readings(&readings).await.expect("insert"), 3);
    let far = Duration::days(365 * 300);
    let back = store
        .list_readings(vib.id, instants[1] - far, instants[2] + far)
        .await
        .expect("list");
    let back_instants: Vec<Timestamp> = back.iter().map(|r| r.timestamp).collect();
    assert_eq!(back_instants, [instants[1], instants[0], instants[2]]);

    let mut w = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    w.created_at = instants[0];
    w.due_by = instants[0] + Duration::milliseconds(1);
    store.open_work_order(&w).await.expect("open");
    assert_eq!(store.get_work_order(w.id).await.expect("get"), Some(w));

    let finer = instants[0] + Duration::microseconds(456);
    assert_eq!(
        store
            .insert_readings(&[reading(&vib, finer, 2.0)])
            .await
            .expect("insert"),
        0,
        "same millisecond, same reading"
    );
    let mut late = reading(&vib, instants[0] + Duration::microseconds(1_999), 3.0);
    assert_eq!(
        store
            .insert_readings(std::slice::from_ref(&late))
            .await
            .expect("insert"),
        1
    );
    late.timestamp = instants[0] + Duration::milliseconds(1);
    let stored = store
        .list_readings(
            vib.id,
            late.timestamp,
            late.timestamp + Duration::milliseconds(1),
        )
        .await
        .expect("list");
    assert_eq!(stored, vec![late], "truncated, not rounded");
}

/// NaN measurements (which SQLite and JSON cannot hold) do not fail a write and read back as
/// NaN; so do non-finite numbers inside JSON documents (feature values, contributions).
pub async fn values_that_are_not_numbers_are_stored_and_read_back_as_nan<S: Store + ?Sized>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let batch = [reading(&vib, at(0), f64::NAN), reading(&vib, at(1), 1.0)];
    assert_eq!(store.insert_readings(&batch).await.expect("insert"), 2);
    let back = store
        .list_readings(vib.id, at(0), at(2))
        .await
        .expect("list");
    assert_eq!(back.len(), 2);
    assert!(back[0].value.is_nan());
    assert_eq!(back[1].value, 1.0);

    let mut w = window(&vib, 0);
    w.std = f64::NAN;
    w.values = vec![1.0, f64::NAN, 3.0];
    assert!(store.insert_window(&w).await.expect("insert"));

    let mut fv = features(&vib, 0, 1.0);
    fv.features.insert("kurtosis".to_owned(), f64::NAN);
    assert!(store.insert_features(&fv).await.expect("insert"));
    let latest = store.latest_features(motor.id).await.expect("latest");
    assert_eq!(latest.len(), 1);
    let kurtosis = latest[0].features.get("kurtosis").copied();
    assert!(kurtosis.is_some_and(f64::is_nan), "got {kurtosis:?}");
    assert_eq!(latest[0].features.get("rms"), Some(&1.0));

    let mut a = anomaly(&vib, 60_000);
    a.contributions[0].z_score = f64::NAN;
    a.contributions[1].z_score = f64::INFINITY;
    assert!(store.insert_anomaly(&a).await.expect("insert"));
    let listed = store
        .list_anomalies(Some(motor.id), 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].contributions.iter().all(|c| c.z_score.is_nan()),
        "non-finite z-scores read back as NaN: {:?}",
        listed[0].contributions
    );
}

/// Buckets count from `from`; each holds the min, max, mean and count of its readings; empty
/// buckets are left out; readings outside `[from, to)` and of other sensors are not counted;
/// a bucket of values that are not numbers has NaN aggregates.
pub async fn readings_are_aggregated_into_time_buckets<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let vib = registered_sensor(store, &motor, "VIB-1").await;
    let temp = registered_sensor(store, &motor, "TMP-1").await;
    let mut readings = Vec::new();
    // Bucket 0 (0..1000 ms): 1, 2, 3, 6; bucket 1: nothing; bucket 2: 10, 20; bucket 3: NaN.
    for (ms, v) in [
        (0, 1.0),
        (250, 2.0),
        (500, 3.0),
        (999, 6.0),
        (2_000, 10.0),
        (2_500, 20.0),
    ] {
        readings.push(reading(&vib, at(ms), v));
    }
    readings.push(reading(&vib, at(3_100), f64::NAN));
    readings.push(reading(&vib, at(4_000), 99.0)); // at `to`: excluded
    readings.push(reading(&vib, at(-1), 99.0)); // before `from`: excluded
    readings.push(reading(&temp, at(100), 55.0)); // another sensor
    store.insert_readings(&readings).await.expect("insert");

    let buckets = store
        .reading_buckets(vib.id, at(0), at(4_000), 1_000)
        .await
        .expect("buckets");
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert_eq!(buckets[0].start, at(0));
    assert_eq!(
        (buckets[0].min, buckets[0].max, buckets[0].count),
        (1.0, 6.0, 4)
    );
    assert!((buckets[0].avg - 3.0).abs() < 1e-9);
    assert_eq!(buckets[1].start, at(2_000));
    assert_eq!(
        (buckets[1].min, buckets[1].max, buckets[1].count),
        (10.0, 20.0, 2)
    );
    assert!((buckets[1].avg - 15.0).abs() < 1e-9);
    assert_eq!(buckets[2].start, at(3_000));
    assert_eq!(buckets[2].count, 1);
    assert!(buckets[2].min.is_nan() && buckets[2].max.is_nan() && buckets[2].avg.is_nan());

    let one = store
        .reading_buckets(vib.id, at(0), at(4_000), 60_000)
        .await
        .expect("one bucket");
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].min, one[0].max, one[0].count), (1.0, 20.0, 7));
    assert!(
        store
            .reading_buckets(vib.id, at(10_000), at(20_000), 1_000)
            .await
            .expect("empty")
            .is_empty()
    );

    // Several sensors' means at once: NaN left out of a mean, a sensor without readings left
    // out of the answer, one with only NaN answering NaN.
    let mut means = store
        .mean_readings(&[vib.id, temp.id, SensorId::new_random()], at(0), at(4_000))
        .await
        .expect("means");
    means.sort_by_key(|(id, _)| *id != vib.id);
    assert_eq!(means.len(), 2, "{means:?}");
    assert_eq!(means[0].0, vib.id);
    assert!((means[0].1 - 7.0).abs() < 1e-9, "{means:?}");
    assert_eq!(means[1], (temp.id, 55.0));
    let only_nan = store
        .mean_readings(&[vib.id], at(3_000), at(4_000))
        .await
        .expect("mean");
    assert!(
        only_nan.len() == 1 && only_nan[0].1.is_nan(),
        "{only_nan:?}"
    );
    assert!(
        store
            .mean_readings(&[], at(0), at(4_000))
            .await
            .expect("none")
            .is_empty()
    );
}

/// The newest reading of any sensor of the asset; none before the first reading.
pub async fn the_last_reading_of_an_asset_is_found<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let vib = registered_sensor(store, &motor, "VIB-1").await;
    let temp = registered_sensor(store, &motor, "TMP-1").await;
    assert_eq!(
        store.last_reading_at(motor.id).await.expect("none yet"),
        None
    );
    store
        .insert_readings(&[
            reading(&vib, at(1_000), 1.0),
            reading(&temp, at(5_000), 2.0),
            reading(&vib, at(3_000), 3.0),
        ])
        .await
        .expect("insert");
    assert_eq!(
        store.last_reading_at(motor.id).await.expect("last"),
        Some(at(5_000))
    );
    assert_eq!(store.last_reading_at(pump.id).await.expect("other"), None);
}

/// A tenant's maintenance history in one query: each asset's newest events up to the limit,
/// grouped by asset, newest first; never another tenant's.
pub async fn a_tenants_maintenance_events_are_read_at_once_newest_first_per_asset<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let [motor, pump, idle, theirs] = plant_and_another_tenants_motor(store).await;
    let mut n = 0u128;
    let mut event = |asset: &Asset, kind, ms: i64| {
        n += 1;
        MaintenanceEvent {
            id: MaintenanceEventId(uuid::Uuid::from_u128(0xa0 + n)),
            asset_id: asset.id,
            kind,
            occurred_at: at(ms),
            work_order_id: None,
            note: format!("event {n}"),
        }
    };
    let motor_failure = event(&motor, MaintenanceEventKind::Failure, 10_000);
    let motor_repair = event(&motor, MaintenanceEventKind::Repair, 30_000);
    let motor_old = event(&motor, MaintenanceEventKind::Replacement, 1_000);
    let pump_replacement = event(&pump, MaintenanceEventKind::Replacement, 20_000);
    let their_failure = event(&theirs, MaintenanceEventKind::Failure, 40_000);
    for e in [
        &motor_failure,
        &motor_repair,
        &motor_old,
        &pump_replacement,
        &their_failure,
    ] {
        assert!(store.insert_maintenance_event(e).await.expect("insert"));
    }
    let mut motor_first = [&motor, &pump];
    motor_first.sort_by_key(|a| a.id.0);
    let grouped = |events: &[MaintenanceEvent]| -> Vec<(AssetId, Vec<MaintenanceEventId>)> {
        let mut out: Vec<(AssetId, Vec<MaintenanceEventId>)> = Vec::new();
        for e in events {
            match out.last_mut() {
                Some((a, ids)) if *a == e.asset_id => ids.push(e.id),
                _ => out.push((e.asset_id, vec![e.id])),
            }
        }
        out
    };
    let expected = |motor_events: Vec<MaintenanceEventId>| {
        motor_first
            .iter()
            .map(|a| {
                if a.id == motor.id {
                    (motor.id, motor_events.clone())
                } else {
                    (pump.id, vec![pump_replacement.id])
                }
            })
            .collect::<Vec<_>>()
    };
    let all = store
        .tenant_maintenance_events(motor.tenant_id, 10)
        .await
        .expect("read");
    assert_eq!(
        grouped(&all),
        expected(vec![motor_repair.id, motor_failure.id, motor_old.id])
    );
    assert_eq!(
        all.iter().find(|e| e.id == motor_failure.id),
        Some(&motor_failure)
    );
    assert!(all.iter().all(|e| e.asset_id != idle.id));
    // The limit is per asset: the pump's one event is not crowded out by the motor's.
    let newest = store
        .tenant_maintenance_events(motor.tenant_id, 2)
        .await
        .expect("read");
    assert_eq!(
        grouped(&newest),
        expected(vec![motor_repair.id, motor_failure.id])
    );
    assert_eq!(
        store
            .tenant_maintenance_events(theirs.tenant_id, 10)
            .await
            .expect("theirs"),
        vec![their_failure]
    );
}

/// Three assets of the default tenant (a motor, a pump, an idle fan) and a motor of another.
async fn plant_and_another_tenants_motor<S: Store + ?Sized>(store: &S) -> [Asset; 4] {
    let motor = registered_asset(store, "MTR-001").await;
    let pump = registered_asset(store, "PMP-001").await;
    let idle = registered_asset(store, "FAN-001").await;
    let mut theirs = asset("MTR-THEIRS");
    theirs.tenant_id = TenantId(uuid::Uuid::new_v4());
    store.upsert_asset(&theirs).await.expect("their asset");
    [motor, pump, idle, theirs]
}

/// The plant overview's reads, one query each for a whole tenant: the newest score of every
/// sensor, the newest RUL prediction and the last reading of every asset; never another
/// tenant's, nothing for an asset without any.
pub async fn a_tenants_newest_scores_predictions_and_readings_are_read_at_once<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let [motor, pump, idle, theirs] = plant_and_another_tenants_motor(store).await;
    let vib = registered_sensor(store, &motor, "MTR-001-VIB").await;
    let tmp = registered_sensor(store, &motor, "MTR-001-TMP").await;
    let flow = registered_sensor(store, &pump, "PMP-001-FLW").await;
    registered_sensor(store, &idle, "FAN-001-VIB").await;
    let their_vib = registered_sensor(store, &theirs, "MTR-THEIRS-VIB").await;
    let score = score_row;
    for s in [
        score(&vib, 30_000, 0.9),
        score(&vib, 0, 0.2),
        score(&tmp, 0, 0.4),
        score(&flow, 60_000, 0.1),
        score(&their_vib, 90_000, 0.99),
    ] {
        store.upsert_anomaly_score(&s).await.expect("score");
    }
    let mut newest = store
        .newest_anomaly_scores(TenantId::DEFAULT)
        .await
        .expect("scores");
    newest.sort_by_key(|s| s.window_start);
    let mut expected = vec![
        score(&tmp, 0, 0.4),
        score(&vib, 30_000, 0.9),
        score(&flow, 60_000, 0.1),
    ];
    expected.sort_by_key(|s| s.window_start);
    assert_eq!(newest, expected);

    let prediction = |asset: &Asset, ms: i64, rul: f64| RulPrediction {
        asset_id: asset.id,
        predicted_at: at(ms),
        rul_cycles: rul,
        confidence_lower: rul * 0.8,
        confidence_upper: rul * 1.2,
        model_version: "rul/motor/v1".to_owned(),
    };
    for p in [
        prediction(&motor, 60_000, 150.0),
        prediction(&motor, 0, 180.0),
        prediction(&pump, 0, 900.0),
        prediction(&theirs, 90_000, 5.0),
    ] {
        assert!(store.insert_rul_prediction(&p).await.expect("prediction"));
    }
    let mut newest = store
        .newest_rul_predictions(TenantId::DEFAULT)
        .await
        .expect("predictions");
    newest.sort_by_key(|p| p.predicted_at);
    assert_eq!(
        newest,
        vec![
            prediction(&pump, 0, 900.0),
            prediction(&motor, 60_000, 150.0)
        ]
    );

    assert!(
        store
            .last_readings_at(TenantId::DEFAULT)
            .await
            .expect("none yet")
            .is_empty()
    );
    store
        .insert_readings(&[
            reading(&vib, at(1_000), 1.0),
            reading(&tmp, at(5_000), 2.0),
            // two sensors' readings at the asset's last instant: the asset once
            reading(&vib, at(5_000), 2.5),
            reading(&flow, at(2_000), 3.0),
            reading(&their_vib, at(9_000), 4.0),
        ])
        .await
        .expect("insert");
    let mut last = store
        .last_readings_at(TenantId::DEFAULT)
        .await
        .expect("last");
    last.sort_by_key(|(_, t)| *t);
    assert_eq!(last, vec![(pump.id, at(2_000)), (motor.id, at(5_000))]);
}

/// Unacknowledged alerts (and the critical ones) and active work orders per asset of a tenant,
/// one query: acknowledged alerts and closed work orders do not count, another tenant's never,
/// an asset with nothing open counts zeros.
pub async fn what_is_open_on_each_asset_is_counted_at_once<S: Store + ?Sized>(store: &S) {
    let [motor, pump, idle, theirs] = plant_and_another_tenants_motor(store).await;
    let high = |asset: &Asset, event: &str| Alert {
        severity: Severity::High,
        ..alert(asset, event, 2_000)
    };
    for a in [
        alert(&motor, "m-critical", 1_000),
        high(&motor, "m-high"),
        alert(&motor, "m-acknowledged", 500),
        high(&pump, "p-high"),
        alert(&theirs, "t-critical", 1_000),
    ] {
        assert!(store.insert_alert(&a).await.expect("alert"));
    }
    assert!(
        store
            .acknowledge_alert(Alert::id_for("m-acknowledged"), "olga", at(3_000), "seen")
            .await
            .expect("acknowledge")
    );
    let mut orders = Vec::new();
    for (asset, cause) in [
        (&motor, "anomaly"),
        (&motor, "rul"),
        (&pump, "anomaly"),
        (&theirs, "anomaly"),
    ] {
        let wo = work_order(asset, cause, &unique_code("WO"), 1_000);
        store.open_work_order(&wo).await.expect("work order");
        orders.push(wo);
    }
    store
        .set_work_order_status(orders[1].id, WorkOrderStatus::Completed)
        .await
        .expect("complete");
    store
        .set_work_order_status(orders[2].id, WorkOrderStatus::Scheduled)
        .await
        .expect("schedule");

    let mut open = store.open_work(TenantId::DEFAULT).await.expect("open work");
    open.sort_by_key(|w| (w.open_alerts, w.active_work_orders));
    let counts: Vec<(AssetId, u64, u64, u64)> = open
        .iter()
        .map(|w| {
            (
                w.asset_id,
                w.open_alerts,
                w.critical_alerts,
                w.active_work_orders,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![(idle.id, 0, 0, 0), (pump.id, 1, 0, 1), (motor.id, 2, 1, 1)]
    );
}

fn alert(asset: &Asset, event: &str, created_ms: i64) -> Alert {
    Alert {
        id: Alert::id_for(event),
        asset_id: asset.id,
        severity: Severity::Critical,
        kind: AlertKind::Anomaly,
        message: format!("alert {event}"),
        created_at: at(created_ms),
        work_order_id: None,
        trigger_event: event.to_owned(),
        notify_on_call: false,
    }
}

/// The first acknowledgement is kept (a second one changes nothing and says so); assignment
/// can change and be cleared; lists filter by state, asset and tenant.
pub async fn alerts_are_acknowledged_once_assigned_and_filtered_by_state_and_tenant<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let motor = registered_asset(store, "MTR-001").await;
    let other_tenant = Asset {
        tenant_id: TenantId(uuid::Uuid::new_v4()),
        ..asset("MTR-001")
    };
    store
        .upsert_asset(&other_tenant)
        .await
        .expect("other tenant");
    let first = alert(&motor, &format!("a:{}", uuid::Uuid::new_v4()), 1_000);
    let second = alert(&motor, &format!("b:{}", uuid::Uuid::new_v4()), 2_000);
    let foreign = alert(&other_tenant, &format!("c:{}", uuid::Uuid::new_v4()), 3_000);
    for a in [&first, &second, &foreign] {
        store.insert_alert(a).await.expect("insert");
    }

    let fresh = store
        .get_alert_record(first.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fresh.alert, first);
    assert_eq!(
        (fresh.acknowledged_by, fresh.acknowledged_at, fresh.assignee),
        (None, None, None)
    );

    assert!(
        store
            .acknowledge_alert(first.id, "olga", at(5_000), "on it")
            .await
            .expect("ack")
    );
    assert!(
        !store
            .acknowledge_alert(first.id, "tom", at(6_000), "me too")
            .await
            .expect("again")
    );
    let acked = store
        .get_alert_record(first.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(acked.acknowledged_by.as_deref(), Some("olga"));
    assert_eq!(acked.acknowledged_at, Some(at(5_000)));
    assert_eq!(acked.ack_note, "on it");
    assert_eq!(
        acked.changed_at,
        Some(at(5_000)),
        "changed when acknowledged"
    );

    store
        .assign_alert(second.id, Some("tom"), at(6_000))
        .await
        .expect("assign");
    store
        .assign_alert(second.id, Some("ana"), at(7_000))
        .await
        .expect("reassign");
    let assigned = store
        .get_alert_record(second.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(assigned.assignee.as_deref(), Some("ana"));
    assert_eq!(assigned.changed_at, Some(at(7_000)));
    store
        .assign_alert(second.id, None, at(8_000))
        .await
        .expect("unassign");
    let cleared = store
        .get_alert_record(second.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(cleared.assignee, None);
    assert_eq!(cleared.changed_at, Some(at(8_000)));
    // A change stamped earlier than the last (another replica's clock behind) is still later
    // than it: every state of an alert has its own, increasing, change time.
    store
        .assign_alert(second.id, Some("tom"), at(7_500))
        .await
        .expect("assign");
    let again = store
        .get_alert_record(second.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(again.assignee.as_deref(), Some("tom"));
    assert_eq!(again.changed_at, Some(at(8_001)));
    // So is an acknowledgement (its own time kept as it was given).
    store
        .assign_alert(foreign.id, Some("ivo"), at(9_000))
        .await
        .expect("assign");
    assert!(
        store
            .acknowledge_alert(foreign.id, "ivo", at(7_000), "")
            .await
            .expect("ack")
    );
    let acked_late = store
        .get_alert_record(foreign.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(acked_late.acknowledged_at, Some(at(7_000)));
    assert_eq!(acked_late.changed_at, Some(at(9_001)));

    let ids = |records: Vec<crate::AlertRecord>| -> Vec<mantis_domain::AlertId> {
        records.into_iter().map(|r| r.alert.id).collect()
    };
    let mine = |state| AlertFilter {
        tenant: Some(TenantId::DEFAULT),
        state,
        ..AlertFilter::default()
    };
    assert_eq!(
        ids(store
            .list_alert_records(&mine(AlertState::All))
            .await
            .expect("all")),
        vec![second.id, first.id]
    );
    assert_eq!(
        ids(store
            .list_alert_records(&mine(AlertState::Open))
            .await
            .expect("open")),
        vec![second.id]
    );
    assert_eq!(
        ids(store
            .list_alert_records(&mine(AlertState::Acknowledged))
            .await
            .expect("acked")),
        vec![first.id]
    );
    assert_eq!(
        ids(store
            .list_alert_records(&AlertFilter::default())
            .await
            .expect("every tenant")),
        vec![foreign.id, second.id, first.id]
    );
    assert_eq!(
        ids(store
            .list_alert_records(&AlertFilter {
                asset_id: Some(other_tenant.id),
                limit: Some(5),
                ..AlertFilter::default()
            })
            .await
            .expect("by asset")),
        vec![foreign.id]
    );
}

pub async fn acknowledging_or_assigning_a_missing_alert_is_not_found<S: Store + ?Sized>(store: &S) {
    let missing = Alert::id_for("never raised");
    assert!(matches!(
        store.acknowledge_alert(missing, "olga", at(0), "").await,
        Err(Error::NotFound { what: "alert", .. })
    ));
    assert!(matches!(
        store.assign_alert(missing, Some("olga"), at(0)).await,
        Err(Error::NotFound { what: "alert", .. })
    ));
    assert_eq!(store.get_alert_record(missing).await.expect("get"), None);
}

/// What changed since a time (the live feed of every gateway replica): work orders created or
/// changed, alerts acknowledged or assigned, the oldest change first, nothing older. (Other bodies may
/// share the database: only this body's rows are looked at.)
pub async fn changes_since_a_time_are_listed_oldest_first<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let start = Utc::now() - chrono::Duration::seconds(1);
    let first = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    let second = work_order(&motor, "rul", &unique_code("WO"), 0);
    store.open_work_order(&first).await.expect("open");
    store.open_work_order(&second).await.expect("open");
    let ours = |records: Vec<crate::WorkOrderRecord>| -> Vec<WorkOrderId> {
        records
            .into_iter()
            .map(|r| r.order.id)
            .filter(|id| *id == first.id || *id == second.id)
            .collect()
    };
    let mut both = ours(
        store
            .work_orders_changed_since(start, 10_000)
            .await
            .expect("changed"),
    );
    both.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(both, expected, "both created since");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store
            .transition_work_order(
                first.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::InProgress,
                None
            )
            .await
            .expect("move")
    );
    let moved = store
        .get_work_order_record(first.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        ours(
            store
                .work_orders_changed_since(start, 10_000)
                .await
                .expect("changed")
        ),
        vec![second.id, first.id],
        "the latest change last"
    );
    let since_move = store
        .work_orders_changed_since(moved.updated_at, 10_000)
        .await
        .expect("changed");
    assert_eq!(ours(since_move.clone()), vec![first.id], "from its time on");
    assert_eq!(
        since_move
            .iter()
            .find(|r| r.order.id == first.id)
            .map(|r| r.order.status),
        Some(WorkOrderStatus::InProgress)
    );

    let raised = alert(&motor, &format!("f:{}", uuid::Uuid::new_v4()), 1_000);
    let other = alert(&motor, &format!("g:{}", uuid::Uuid::new_v4()), 2_000);
    store.insert_alert(&raised).await.expect("insert");
    store.insert_alert(&other).await.expect("insert");
    let acked_at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    assert!(
        store
            .acknowledge_alert(raised.id, "olga", acked_at, "seen")
            .await
            .expect("ack")
    );
    let ours = |records: Vec<crate::AlertRecord>| -> Vec<crate::AlertRecord> {
        records
            .into_iter()
            .filter(|r| r.alert.id == raised.id || r.alert.id == other.id)
            .collect()
    };
    let acked = ours(
        store
            .alerts_changed_since(acked_at, 10_000)
            .await
            .expect("changed"),
    );
    assert_eq!(acked.len(), 1, "the acknowledged one only (of this body's)");
    assert_eq!(acked[0].alert.id, raised.id);
    assert_eq!(acked[0].acknowledged_by.as_deref(), Some("olga"));
    let after_ack = acked_at + chrono::Duration::milliseconds(1);
    assert!(
        ours(
            store
                .alerts_changed_since(after_ack, 10_000)
                .await
                .expect("changed")
        )
        .is_empty(),
        "nothing changed after it"
    );
    // An assignment is a change too, listed after the acknowledgement it follows.
    let assigned_at = acked_at + chrono::Duration::milliseconds(5);
    store
        .assign_alert(other.id, Some("tom"), assigned_at)
        .await
        .expect("assign");
    let changed = ours(
        store
            .alerts_changed_since(acked_at, 10_000)
            .await
            .expect("changed"),
    );
    assert_eq!(
        changed
            .iter()
            .map(|r| (r.alert.id, r.assignee.as_deref(), r.changed_at))
            .collect::<Vec<_>>(),
        vec![
            (raised.id, None, Some(acked_at)),
            (other.id, Some("tom"), Some(assigned_at))
        ]
    );
    assert_eq!(
        ours(
            store
                .alerts_changed_since(after_ack, 10_000)
                .await
                .expect("changed")
        )
        .iter()
        .map(|r| r.alert.id)
        .collect::<Vec<_>>(),
        vec![other.id]
    );
}

/// Compare and set: a transition happens only from the status the work order is in, so two
/// technicians moving it at once cannot both win.
pub async fn work_orders_move_only_from_the_status_they_are_in<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let order = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    store.open_work_order(&order).await.expect("open");
    assert!(
        store
            .transition_work_order(
                order.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::InProgress,
                None
            )
            .await
            .expect("move")
    );
    assert!(
        !store
            .transition_work_order(
                order.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::Cancelled,
                None
            )
            .await
            .expect("stale move")
    );
    let now = store
        .get_work_order(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(now.status, WorkOrderStatus::InProgress);
    assert!(matches!(
        store
            .transition_work_order(
                WorkOrderId::new_random(),
                WorkOrderStatus::Open,
                WorkOrderStatus::Scheduled,
                None
            )
            .await,
        Err(Error::NotFound {
            what: "work order",
            ..
        })
    ));
}

/// Only the fields given change; the technician can be set and cleared; the parts list is
/// replaced as a whole.
pub async fn work_order_plans_are_updated_field_by_field<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let order = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    store.open_work_order(&order).await.expect("open");
    let fresh = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fresh.order, order);
    assert_eq!(
        (fresh.technician.clone(), fresh.parts.clone()),
        (None, Vec::new())
    );
    assert!(
        !fresh.while_running,
        "work stops its asset unless said otherwise"
    );

    let parts = vec![
        Part {
            part_number: "SKF-6205".to_owned(),
            quantity: 2,
        },
        Part {
            part_number: "GREASE-LGHP2".to_owned(),
            quantity: 1,
        },
    ];
    store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                technician: Some(Some("tom".to_owned())),
                parts: Some(parts.clone()),
                priority: Some(Priority::High),
                planned: Some(Some(PlannedSlot {
                    start: at(3_600_000),
                    end: at(7_200_000),
                })),
                while_running: Some(true),
                ..WorkOrderChanges::default()
            },
        )
        .await
        .expect("plan");
    let planned = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(planned.technician.as_deref(), Some("tom"));
    assert_eq!(planned.parts, parts);
    assert_eq!(
        planned.planned,
        Some(PlannedSlot {
            start: at(3_600_000),
            end: at(7_200_000),
        })
    );
    assert_eq!(planned.order.priority, Priority::High);
    assert!(planned.while_running);
    assert_eq!(planned.order.description, order.description);
    assert_eq!(planned.order.due_by, order.due_by);

    store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                description: Some("Replace both bearings".to_owned()),
                due_by: Some(at(99_000)),
                technician: Some(None),
                ..WorkOrderChanges::default()
            },
        )
        .await
        .expect("replan");
    let replanned = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(replanned.technician, None);
    assert_eq!(replanned.parts, parts);
    assert!(replanned.planned.is_some(), "kept when not changed");
    assert!(replanned.while_running, "kept when not changed");
    assert!(
        !replanned.technician_by_planner && !replanned.planned_by_planner,
        "a person's"
    );
    // The planner's plan, only if nobody changed the order since it was read.
    store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                technician: Some(Some("ann".to_owned())),
                planned: Some(Some(PlannedSlot {
                    start: at(7_200_000),
                    end: at(9_000_000),
                })),
                by_planner: true,
                unchanged_since: Some(replanned.updated_at),
                ..WorkOrderChanges::default()
            },
        )
        .await
        .expect("the planner's");
    let by_planner = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(by_planner.technician_by_planner && by_planner.planned_by_planner);
    assert_eq!(by_planner.technician.as_deref(), Some("ann"));
    let stale = store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                technician: Some(Some("bob".to_owned())),
                by_planner: true,
                unchanged_since: Some(at(1)),
                ..WorkOrderChanges::default()
            },
        )
        .await;
    assert!(
        matches!(&stale, Err(Error::Stale(m)) if m.contains("changed meanwhile")),
        "{stale:?}"
    );
    let kept = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(kept, by_planner, "nothing changed");
    // Compare-and-sets in quick succession (within one millisecond, the stores' precision)
    // each write a later time: the time one compared with is never written again, so a
    // holder of the old time cannot miss a change.
    let mut last = kept.updated_at;
    for _ in 0..5 {
        store
            .update_work_order(
                order.id,
                &WorkOrderChanges {
                    // The same description: a write all the same.
                    description: Some(kept.order.description.clone()),
                    unchanged_since: Some(last),
                    ..WorkOrderChanges::default()
                },
            )
            .await
            .expect("from the time read");
        let now = store
            .get_work_order_record(order.id)
            .await
            .expect("get")
            .expect("exists");
        assert!(now.updated_at > last, "{} after {last}", now.updated_at);
        last = now.updated_at;
    }
    let stale = store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                description: Some("from an old read".to_owned()),
                unchanged_since: Some(kept.updated_at),
                ..WorkOrderChanges::default()
            },
        )
        .await;
    assert!(matches!(stale, Err(Error::Stale(_))), "{stale:?}");
    // A move too: refused from a stale read (and not made), made from the time read, and
    // written at a later time still.
    let stale = store
        .transition_work_order(
            order.id,
            WorkOrderStatus::Open,
            WorkOrderStatus::Scheduled,
            Some(kept.updated_at),
        )
        .await;
    assert!(
        matches!(&stale, Err(Error::Stale(m)) if m.contains("changed meanwhile")),
        "{stale:?}"
    );
    assert!(
        store
            .transition_work_order(
                order.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::Scheduled,
                Some(last),
            )
            .await
            .expect("from the time read")
    );
    let moved = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(moved.order.status, WorkOrderStatus::Scheduled);
    assert!(moved.updated_at > last);
    // A stale read is told as such even when the status moved too (412, not a 409 about the
    // status).
    let stale = store
        .transition_work_order(
            order.id,
            WorkOrderStatus::Open,
            WorkOrderStatus::InProgress,
            Some(last),
        )
        .await;
    assert!(matches!(stale, Err(Error::Stale(_))), "{stale:?}");
    store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                technician: Some(None),
                ..WorkOrderChanges::default()
            },
        )
        .await
        .expect("a person's change");
    let replanned = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(
        !replanned.technician_by_planner,
        "a person's technician again"
    );
    assert!(
        replanned.planned_by_planner,
        "the slot untouched: still the planner's"
    );
    assert_eq!(replanned.order.description, "Replace both bearings");
    assert_eq!(replanned.order.due_by, at(99_000));
    assert_eq!(replanned.order.priority, Priority::High);
    let listed = store
        .list_work_order_records(&WorkOrderFilter {
            asset_id: Some(motor.id),
            ..WorkOrderFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed, vec![replanned]);
    store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                planned: Some(None),
                ..WorkOrderChanges::default()
            },
        )
        .await
        .expect("unplan");
    let unplanned = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(unplanned.planned, None);
    assert_eq!(unplanned.order.description, "Replace both bearings");

    assert!(matches!(
        store
            .update_work_order(WorkOrderId::new_random(), &WorkOrderChanges::default())
            .await,
        Err(Error::NotFound {
            what: "work order",
            ..
        })
    ));

    // Once closed, the plan is the one it was closed with.
    store
        .set_work_order_status(order.id, WorkOrderStatus::Completed)
        .await
        .expect("complete");
    let late = store
        .update_work_order(
            order.id,
            &WorkOrderChanges {
                description: Some("Too late".to_owned()),
                ..WorkOrderChanges::default()
            },
        )
        .await;
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    let closed = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(closed.order.description, "Replace both bearings");
    assert_eq!(closed.order.status, WorkOrderStatus::Completed);
}

/// A work order planned by hand is stored with its plan at once; its id, its code, or an active
/// work order of its asset for the same cause make it a conflict, and nothing is stored then.
pub async fn a_work_order_is_created_with_its_plan_in_one_step<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let order = work_order(&motor, "manual:1", &unique_code("WO"), 0);
    let parts = vec![Part {
        part_number: "SKF-6205".to_owned(),
        quantity: 2,
    }];
    let plan = WorkOrderChanges {
        technician: Some(Some("tom".to_owned())),
        parts: Some(parts.clone()),
        while_running: Some(true),
        ..WorkOrderChanges::default()
    };
    store
        .create_work_order(&order, &plan)
        .await
        .expect("create");
    let stored = store
        .get_work_order_record(order.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.order, order);
    assert_eq!(stored.technician.as_deref(), Some("tom"));
    assert_eq!(stored.parts, parts);
    assert!(stored.while_running);

    // The same id again, and another order of the same asset and cause while it is active.
    let result = store.create_work_order(&order, &plan).await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
    let same_cause = work_order(&motor, "manual:1", &unique_code("WO"), 1_000);
    let result = store.create_work_order(&same_cause, &plan).await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
    assert_eq!(
        store.get_work_order(same_cause.id).await.expect("get"),
        None
    );
    let same_code = WorkOrder {
        id: WorkOrderId::new_random(),
        cause: "manual:2".to_owned(),
        ..order.clone()
    };
    let result = store.create_work_order(&same_code, &plan).await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
    assert_eq!(store.get_work_order(same_code.id).await.expect("get"), None);

    // Without a plan: stored as opened.
    let bare = work_order(&motor, "manual:3", &unique_code("WO"), 2_000);
    store
        .create_work_order(&bare, &WorkOrderChanges::default())
        .await
        .expect("create without a plan");
    let stored = store
        .get_work_order_record(bare.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (stored.order, stored.technician, stored.parts),
        (bare, None, Vec::new())
    );
}

pub async fn work_orders_are_filtered_by_tenant<S: Store + ?Sized>(store: &S) {
    let motor = registered_asset(store, "MTR-001").await;
    let other_tenant = Asset {
        tenant_id: TenantId(uuid::Uuid::new_v4()),
        ..asset("MTR-001")
    };
    store
        .upsert_asset(&other_tenant)
        .await
        .expect("other tenant");
    let mine = work_order(&motor, "anomaly", &unique_code("WO"), 0);
    let theirs = work_order(&other_tenant, "anomaly", &unique_code("WO"), 1_000);
    store.open_work_order(&mine).await.expect("open");
    store.open_work_order(&theirs).await.expect("open");
    let of = |tenant| WorkOrderFilter {
        tenant: Some(tenant),
        ..WorkOrderFilter::default()
    };
    assert_eq!(
        store
            .list_work_orders(&of(TenantId::DEFAULT))
            .await
            .expect("mine"),
        vec![mine]
    );
    assert_eq!(
        store
            .list_work_orders(&of(other_tenant.tenant_id))
            .await
            .expect("theirs"),
        vec![theirs]
    );
}

fn user(username: &str, tenant: TenantId, role: Role) -> User {
    User {
        username: username.to_owned(),
        tenant_id: tenant,
        display_name: format!("User {username}"),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        disabled: false,
        created_at: at(0),
        token_epoch: 0,
    }
}

/// A user is stored whole (hash included), replaced by username, listed by tenant in username
/// order; a user of a tenant the store has not seen yet registers the tenant.
pub async fn users_round_trip_are_updated_and_listed_by_tenant<S: Store + ?Sized>(store: &S) {
    let plant_b = TenantId(uuid::Uuid::new_v4());
    let olga = user("olga", TenantId::DEFAULT, Role::Operator);
    let tom = user("tom", TenantId::DEFAULT, Role::Technician);
    let bea = user("bea", plant_b, Role::Admin);
    for u in [&tom, &olga, &bea] {
        store.upsert_user(u).await.expect("upsert");
    }
    assert_eq!(
        store.get_user("olga").await.expect("get"),
        Some(olga.clone())
    );
    assert_eq!(store.get_user("nobody").await.expect("get"), None);
    // Creating never replaces: a taken username (in any tenant) is refused.
    let impostor = User {
        tenant_id: plant_b,
        role: Role::Admin,
        ..olga.clone()
    };
    assert!(!store.insert_user(&impostor).await.expect("insert"));
    assert_eq!(
        store.get_user("olga").await.expect("get"),
        Some(olga.clone())
    );
    let new = user("nina", plant_b, Role::Operator);
    assert!(store.insert_user(&new).await.expect("insert"));
    assert_eq!(
        store.get_user("nina").await.expect("get"),
        Some(new.clone())
    );

    let promoted = User {
        role: Role::Manager,
        disabled: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned(),
        ..olga.clone()
    };
    store.upsert_user(&promoted).await.expect("update");
    assert_eq!(
        store.get_user("olga").await.expect("get"),
        Some(promoted.clone())
    );

    assert_eq!(
        store
            .list_users(Some(TenantId::DEFAULT))
            .await
            .expect("list"),
        vec![promoted, tom]
    );
    assert_eq!(
        store.list_users(Some(plant_b)).await.expect("list"),
        vec![bea, new]
    );
    assert_eq!(store.list_users(None).await.expect("all").len(), 4);
}

/// A change touches only the fields it gives: disabling an account and renaming it in two
/// requests that each read the user first can no longer undo each other. Only the user's own
/// tenant reaches it.
pub async fn a_users_fields_are_changed_one_by_one_within_their_tenant<S: Store + ?Sized>(
    store: &S,
) {
    let olga = user("olga", TenantId::DEFAULT, Role::Operator);
    store.upsert_user(&olga).await.expect("upsert");
    let disabled = store
        .update_user(
            TenantId::DEFAULT,
            "olga",
            &UserChanges {
                disabled: Some(true),
                ..UserChanges::default()
            },
        )
        .await
        .expect("disable");
    // Disabling moves the token epoch on (tokens from before stay dead once enabled again).
    let expected = User {
        disabled: true,
        token_epoch: 1,
        ..olga.clone()
    };
    assert_eq!(disabled, Some(expected.clone()));
    let renamed = store
        .update_user(
            TenantId::DEFAULT,
            "olga",
            &UserChanges {
                display_name: Some("Olga K.".to_owned()),
                ..UserChanges::default()
            },
        )
        .await
        .expect("rename");
    let expected = User {
        display_name: "Olga K.".to_owned(),
        ..expected
    };
    assert_eq!(renamed, Some(expected.clone()));
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned();
    let everything = UserChanges {
        display_name: Some("Olga Kowalska".to_owned()),
        role: Some(Role::Manager),
        disabled: Some(false),
        password_hash: Some(hash.clone()),
        password_hash_was: None,
    };
    let changed = store
        .update_user(TenantId::DEFAULT, "olga", &everything)
        .await
        .expect("change all");
    let expected = User {
        display_name: "Olga Kowalska".to_owned(),
        role: Role::Manager,
        disabled: false,
        password_hash: hash.clone(),
        token_epoch: 1,
        ..olga
    };
    assert_eq!(changed, Some(expected.clone()));
    assert_eq!(
        store.get_user("olga").await.expect("get"),
        Some(expected.clone())
    );
    // A password change checked against the hash read: refused (nothing changed) once the
    // password was changed meanwhile.
    let checked = |was: &str, new: &str| UserChanges {
        password_hash: Some(new.to_owned()),
        password_hash_was: Some(was.to_owned()),
        ..UserChanges::default()
    };
    assert_eq!(
        store
            .update_user(TenantId::DEFAULT, "olga", &checked("stale", "$x$1"))
            .await
            .expect("stale"),
        None
    );
    let rehashed = store
        .update_user(TenantId::DEFAULT, "olga", &checked(&hash, "$x$2"))
        .await
        .expect("checked")
        .expect("changed");
    assert_eq!(rehashed.password_hash, "$x$2");
    // Nor over a disabled account.
    store
        .update_user(
            TenantId::DEFAULT,
            "olga",
            &UserChanges {
                disabled: Some(true),
                ..UserChanges::default()
            },
        )
        .await
        .expect("disable");
    assert_eq!(
        store
            .update_user(TenantId::DEFAULT, "olga", &checked("$x$2", "$x$3"))
            .await
            .expect("disabled"),
        None
    );
    let expected = User {
        password_hash: "$x$2".to_owned(),
        ..expected
    };
    // Disabled (above) and again: the epoch moves once; enabling leaves it.
    for disabled in [true, false] {
        store
            .update_user(
                TenantId::DEFAULT,
                "olga",
                &UserChanges {
                    disabled: Some(disabled),
                    ..UserChanges::default()
                },
            )
            .await
            .expect("toggle");
    }
    let expected = User {
        token_epoch: 2,
        ..expected
    };
    assert_eq!(
        store.get_user("olga").await.expect("get"),
        Some(expected.clone())
    );

    let plant_b = TenantId(uuid::Uuid::new_v4());
    assert_eq!(
        store
            .update_user(plant_b, "olga", &everything)
            .await
            .expect("another tenant"),
        None
    );
    assert_eq!(
        store
            .update_user(TenantId::DEFAULT, "nobody", &everything)
            .await
            .expect("nobody"),
        None
    );
    assert_eq!(store.get_user("olga").await.expect("get"), Some(expected));
}

/// Keys are found by their prefix (hash included), a taken prefix is a conflict, lists are per
/// tenant newest first, and a key is revoked once.
pub async fn api_keys_are_found_by_prefix_listed_and_revoked_once<S: Store + ?Sized>(store: &S) {
    let key = |prefix: &str, created_ms| ApiKey {
        id: ApiKeyId::new_random(),
        tenant_id: TenantId::DEFAULT,
        name: format!("key {prefix}"),
        prefix: prefix.to_owned(),
        key_hash: "ab".repeat(32),
        role: Role::Technician,
        created_at: at(created_ms),
        revoked_at: None,
    };
    let plc = key("mk_plc00001", 0);
    let cmms = key("mk_cmms0001", 1_000);
    store.insert_api_key(&plc).await.expect("insert");
    store.insert_api_key(&cmms).await.expect("insert");
    assert_eq!(
        store.find_api_key("mk_plc00001").await.expect("find"),
        Some(plc.clone())
    );
    assert_eq!(store.find_api_key("mk_nothing").await.expect("find"), None);
    assert!(matches!(
        store
            .insert_api_key(&ApiKey {
                id: ApiKeyId::new_random(),
                ..plc.clone()
            })
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.list_api_keys(TenantId::DEFAULT).await.expect("list"),
        vec![cmms.clone(), plc.clone()]
    );
    assert!(
        store
            .list_api_keys(TenantId(uuid::Uuid::new_v4()))
            .await
            .expect("list")
            .is_empty()
    );

    assert!(
        store
            .revoke_api_key(plc.id, at(5_000))
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_api_key(plc.id, at(6_000))
            .await
            .expect("again")
    );
    assert_eq!(
        store
            .find_api_key("mk_plc00001")
            .await
            .expect("find")
            .and_then(|k| k.revoked_at),
        Some(at(5_000))
    );
}

/// Technicians are stored per tenant and name with their skills and shifts, replaced in place,
/// listed by name within their tenant only, and removed once.
pub async fn technicians_round_trip_are_replaced_listed_by_tenant_and_removed<S: Store + ?Sized>(
    store: &S,
) {
    let plant_b = TenantId::from(uuid::Uuid::new_v4());
    let technician = |tenant: TenantId, name: &str, skills: &[&str]| Technician {
        tenant_id: tenant,
        name: name.to_owned(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        shifts: vec![
            Shift {
                days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                start: "06:00".to_owned(),
                end: "14:00".to_owned(),
            },
            Shift {
                days: vec![Day::Sun],
                start: "22:00".to_owned(),
                end: "06:00".to_owned(),
            },
        ],
        utc_offset_minutes: -300,
        time_zone: None,
        active: true,
        updated_at: at(1_000),
    };
    let ana = technician(TenantId::DEFAULT, "Ana", &["electrical", "mechanical"]);
    let ben = technician(TenantId::DEFAULT, "ben", &[]);
    // The same name in another tenant is another technician.
    let other_ana = technician(plant_b, "Ana", &["hydraulics"]);
    for t in [&ben, &ana, &other_ana] {
        store.upsert_technician(t).await.expect("upsert");
    }
    assert_eq!(
        store
            .get_technician(TenantId::DEFAULT, "Ana")
            .await
            .expect("get"),
        Some(ana.clone())
    );
    assert_eq!(
        store
            .list_technicians(TenantId::DEFAULT)
            .await
            .expect("list"),
        vec![ana.clone(), ben.clone()],
        "by name (upper case first, as bytes compare)"
    );
    assert_eq!(
        store.list_technicians(plant_b).await.expect("list"),
        vec![other_ana.clone()]
    );

    let away = Technician {
        skills: vec!["electrical".to_owned()],
        shifts: Vec::new(),
        utc_offset_minutes: 60,
        time_zone: Some("Europe/Berlin".to_owned()),
        active: false,
        updated_at: at(2_000),
        ..ana.clone()
    };
    store.upsert_technician(&away).await.expect("replace");
    assert_eq!(
        store
            .get_technician(TenantId::DEFAULT, "Ana")
            .await
            .expect("get"),
        Some(away)
    );
    assert_eq!(
        store.get_technician(plant_b, "Ana").await.expect("get"),
        Some(other_ana),
        "the other tenant's is untouched"
    );

    assert!(
        store
            .delete_technician(TenantId::DEFAULT, "Ana")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_technician(TenantId::DEFAULT, "Ana")
            .await
            .expect("delete again")
    );
    assert_eq!(
        store
            .get_technician(TenantId::DEFAULT, "Ana")
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .list_technicians(TenantId::DEFAULT)
            .await
            .expect("list"),
        vec![ben]
    );
}

/// Time off is stored once by id, listed by start where it overlaps the period asked for
/// (its end exclusive), within its tenant only and up to the limit, and removed once.
pub async fn time_off_is_listed_by_overlap_within_its_tenant_and_removed_once<S: Store + ?Sized>(
    store: &S,
) {
    let plant_a = TenantId::from(uuid::Uuid::new_v4());
    let plant_b = TenantId::from(uuid::Uuid::new_v4());
    let off = |tenant: TenantId, technician: Option<&str>, from: i64, to: i64| TimeOff {
        id: TimeOffId::new_random(),
        tenant_id: tenant,
        technician: technician.map(str::to_owned),
        starts_at: at(from),
        ends_at: at(to),
        reason: "holiday".to_owned(),
        created_by: "mia".to_owned(),
        created_at: at(500),
    };
    let ana = off(plant_a, Some("Ana"), 10_000, 20_000);
    let shutdown = off(plant_a, None, 30_000, 40_000);
    let ben = off(plant_a, Some("ben"), 15_000, 35_000);
    let elsewhere = off(plant_b, Some("Ana"), 10_000, 20_000);
    for o in [&shutdown, &ana, &ben, &elsewhere] {
        assert!(store.insert_time_off(o).await.expect("insert"));
    }
    // The same id again changes nothing.
    assert!(
        !store
            .insert_time_off(&TimeOff {
                reason: "changed".to_owned(),
                ..ana.clone()
            })
            .await
            .expect("insert again")
    );
    let list = |tenant: TenantId, from: i64, to: i64, limit: u32| async move {
        store
            .list_time_off(tenant, at(from), at(to), None, limit)
            .await
            .expect("list")
    };
    assert_eq!(
        list(plant_a, 0, 100_000, 100).await,
        vec![ana.clone(), ben.clone(), shutdown.clone()],
        "by start"
    );
    // Overlap: an end at the period's start, a start at its end, are outside it.
    assert_eq!(list(plant_a, 20_000, 30_000, 100).await, vec![ben.clone()]);
    assert_eq!(
        list(plant_a, 19_999, 30_001, 100).await,
        vec![ana.clone(), ben.clone(), shutdown.clone()]
    );
    assert_eq!(
        list(plant_a, 0, 100_000, 2).await,
        vec![ana.clone(), ben.clone()]
    );
    assert_eq!(
        list(plant_b, 0, 100_000, 100).await,
        vec![elsewhere.clone()]
    );
    // What keeps one technician from work: theirs and the whole crew's, the limit on those.
    let of = |name: &'static str, limit: u32| async move {
        store
            .list_time_off(plant_a, at(0), at(100_000), Some(name), limit)
            .await
            .expect("list")
    };
    assert_eq!(of("ben", 100).await, vec![ben.clone(), shutdown.clone()]);
    assert_eq!(of("Ana", 100).await, vec![ana.clone(), shutdown.clone()]);
    assert_eq!(
        of("ana", 100).await,
        vec![shutdown.clone()],
        "names compare exactly"
    );
    assert_eq!(of("ben", 1).await, vec![ben.clone()]);

    assert!(
        !store
            .delete_time_off(plant_b, ana.id)
            .await
            .expect("another tenant's")
    );
    assert!(
        store
            .delete_time_off(plant_a, ana.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_time_off(plant_a, ana.id)
            .await
            .expect("delete again")
    );
    assert_eq!(list(plant_a, 0, 100_000, 100).await, vec![ben, shutdown]);
}

/// Planned stops are stored once by id, of an asset of their tenant's or of the whole plant;
/// listed by start where they overlap the period asked for (the end exclusive), within their
/// tenant, for one asset (its own and the plant's) and up to the limit; removed once.
pub async fn planned_stops_are_listed_by_overlap_for_an_asset_or_the_plant_and_removed_once<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let (plant_a, press) = tenant_with_motor(store).await;
    let lathe = Asset {
        tenant_id: plant_a,
        ..asset(&unique_code("LTH"))
    };
    store.upsert_asset(&lathe).await.expect("lathe");
    let (plant_b, elsewhere_motor) = tenant_with_motor(store).await;
    let stop = |tenant: TenantId, asset: Option<AssetId>, from: i64, to: i64| PlannedStop {
        id: PlannedStopId::new_random(),
        tenant_id: tenant,
        asset_id: asset,
        starts_at: at(from),
        ends_at: at(to),
        reason: "changeover".to_owned(),
        created_by: "mia".to_owned(),
        created_at: at(500),
        series_id: None,
    };
    let press_break = stop(plant_a, Some(press.id), 10_000, 20_000);
    let weekend = stop(plant_a, None, 30_000, 40_000);
    let lathe_cleaning = stop(plant_a, Some(lathe.id), 15_000, 35_000);
    let elsewhere = stop(plant_b, Some(elsewhere_motor.id), 10_000, 20_000);
    assert_eq!(
        store
            .insert_planned_stops(&[weekend.clone(), press_break.clone(), lathe_cleaning.clone()])
            .await
            .expect("insert"),
        3
    );
    assert_eq!(
        store
            .insert_planned_stops(std::slice::from_ref(&elsewhere))
            .await
            .expect("insert"),
        1
    );
    assert_eq!(store.insert_planned_stops(&[]).await.expect("none"), 0);
    // The same id again changes nothing (the new ones of the batch are recorded).
    let late_shift = stop(plant_a, Some(lathe.id), 90_000, 95_000);
    assert_eq!(
        store
            .insert_planned_stops(&[
                PlannedStop {
                    reason: "changed".to_owned(),
                    ..press_break.clone()
                },
                late_shift.clone(),
            ])
            .await
            .expect("insert again"),
        1
    );
    // An asset of another tenant, or none at all: not found, nothing of the batch stored;
    // stops of several tenants: refused.
    for foreign in [elsewhere_motor.id, AssetId::new_random()] {
        let refused = store
            .insert_planned_stops(&[
                stop(plant_a, None, 0, 1_000),
                stop(plant_a, Some(foreign), 0, 1_000),
            ])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { what: "asset", .. })),
            "{refused:?}"
        );
    }
    let mixed = store
        .insert_planned_stops(&[stop(plant_a, None, 0, 1), stop(plant_b, None, 0, 1)])
        .await;
    assert!(matches!(mixed, Err(Error::Invalid(_))), "{mixed:?}");
    let list = |tenant: TenantId, from: i64, to: i64, limit: u32| async move {
        store
            .list_planned_stops(tenant, at(from), at(to), None, limit)
            .await
            .expect("list")
    };
    assert_eq!(
        list(plant_a, 0, 100_000, 100).await,
        vec![
            press_break.clone(),
            lathe_cleaning.clone(),
            weekend.clone(),
            late_shift.clone()
        ],
        "by start"
    );
    // Overlap: an end at the period's start, a start at its end, are outside it.
    assert_eq!(
        list(plant_a, 20_000, 30_000, 100).await,
        vec![lathe_cleaning.clone()]
    );
    assert_eq!(
        list(plant_a, 19_999, 30_001, 100).await,
        vec![press_break.clone(), lathe_cleaning.clone(), weekend.clone()]
    );
    assert_eq!(
        list(plant_a, 0, 100_000, 2).await,
        vec![press_break.clone(), lathe_cleaning.clone()]
    );
    assert_eq!(
        list(plant_b, 0, 100_000, 100).await,
        vec![elsewhere.clone()]
    );
    // What stops one asset: its own and the whole plant's.
    let of = |asset: AssetId, limit: u32| async move {
        store
            .list_planned_stops(plant_a, at(0), at(100_000), Some(asset), limit)
            .await
            .expect("list")
    };
    assert_eq!(
        of(press.id, 100).await,
        vec![press_break.clone(), weekend.clone()]
    );
    assert_eq!(
        of(lathe.id, 100).await,
        vec![lathe_cleaning.clone(), weekend.clone(), late_shift.clone()]
    );
    assert_eq!(of(lathe.id, 1).await, vec![lathe_cleaning.clone()]);

    assert!(
        !store
            .delete_planned_stop(plant_b, press_break.id)
            .await
            .expect("another tenant's")
    );
    assert!(
        store
            .delete_planned_stop(plant_a, press_break.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_planned_stop(plant_a, press_break.id)
            .await
            .expect("delete again")
    );
    assert_eq!(
        list(plant_a, 0, 100_000, 100).await,
        vec![lathe_cleaning.clone(), weekend.clone(), late_shift.clone()]
    );
    // Removed by start within a period: an asset's, or the whole plant's, within the tenant.
    let starting = |asset: Option<AssetId>, from: i64, to: i64| async move {
        store
            .delete_planned_stops_starting(plant_a, asset, at(from), at(to))
            .await
            .expect("delete starting")
    };
    assert_eq!(starting(Some(lathe.id), 15_001, 100_000).await, 1);
    assert_eq!(starting(None, 0, 30_000).await, 0, "starts at the end");
    assert_eq!(starting(None, 30_000, 30_001).await, 1);
    assert_eq!(
        store
            .delete_planned_stops_starting(plant_b, Some(lathe.id), at(0), at(100_000))
            .await
            .expect("another tenant's"),
        0
    );
    assert_eq!(
        list(plant_a, 0, 100_000, 100).await,
        vec![lathe_cleaning.clone()]
    );

    // A repetition: its stops share the series; the rest of it goes at once, within the
    // tenant, the stops before `from` and others' staying.
    let series = PlannedStopId::new_random();
    let daily: Vec<PlannedStop> = (0..4)
        .map(|day| PlannedStop {
            series_id: Some(series),
            ..stop(
                plant_a,
                None,
                200_000 + day * 10_000,
                201_000 + day * 10_000,
            )
        })
        .collect();
    store.insert_planned_stops(&daily).await.expect("series");
    assert_eq!(
        list(plant_a, 200_000, 300_000, 100).await,
        daily,
        "read back with it"
    );
    assert_eq!(
        store
            .delete_planned_stop_series(plant_b, series, None)
            .await
            .expect("another tenant's"),
        0
    );
    assert_eq!(
        store
            .delete_planned_stop_series(plant_a, series, Some(at(210_000)))
            .await
            .expect("the rest"),
        3
    );
    assert_eq!(
        store
            .delete_planned_stop_series(plant_a, PlannedStopId::new_random(), None)
            .await
            .expect("no such series"),
        0
    );
    assert_eq!(
        list(plant_a, 0, 300_000, 100).await,
        vec![lathe_cleaning, daily[0].clone()]
    );
    assert_eq!(
        store
            .delete_planned_stop_series(plant_a, series, None)
            .await
            .expect("all of it"),
        1
    );
}

fn spare_part(tenant: TenantId, number: &str, on_hand: u32) -> SparePart {
    SparePart {
        tenant_id: tenant,
        part_number: number.to_owned(),
        description: format!("part {number}"),
        location: "A-01".to_owned(),
        on_hand,
        reorder_point: 2,
        on_order: 0,
        expected_at: None,
        updated_at: at(1_000),
    }
}

/// A fresh tenant with a motor (work orders belong to their asset's tenant).
async fn tenant_with_motor<S: Store + ?Sized>(store: &S) -> (TenantId, Asset) {
    let tenant = TenantId::from(uuid::Uuid::new_v4());
    let motor = Asset {
        tenant_id: tenant,
        ..asset(&unique_code("MTR"))
    };
    store.upsert_asset(&motor).await.expect("asset");
    (tenant, motor)
}

pub async fn spare_parts_are_reserved_by_active_work_orders_and_taken_at_completion<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let (plant, motor) = tenant_with_motor(store).await;
    let (other, _) = tenant_with_motor(store).await;
    store
        .upsert_spare_part(&spare_part(plant, "BRG-6204", 5), KeepStored::default())
        .await
        .expect("bearing");
    store
        .upsert_spare_part(&spare_part(plant, "SEAL-12", 1), KeepStored::default())
        .await
        .expect("seal");
    store
        .upsert_spare_part(&spare_part(other, "BRG-6204", 50), KeepStored::default())
        .await
        .expect("another plant's");
    // Defining a known part again changes its description, not its count.
    let renamed = SparePart {
        description: "Bearing 6204-2RS".to_owned(),
        on_hand: 999,
        updated_at: at(2_000),
        ..spare_part(plant, "BRG-6204", 5)
    };
    store
        .upsert_spare_part(&renamed, KeepStored::default())
        .await
        .expect("renamed");
    let bearing = store
        .get_spare_part(plant, "BRG-6204")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        bearing,
        SparePart {
            on_hand: 5,
            ..renamed.clone()
        }
    );
    let listed = store.list_spare_parts(plant).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|p| p.part_number.as_str())
            .collect::<Vec<_>>(),
        ["BRG-6204", "SEAL-12"]
    );
    assert_eq!(store.list_spare_parts(other).await.expect("list").len(), 1);
    // Adding only: a kept part is left as it is, a new one is added; of racing additions of
    // one number, one wins.
    let again = SparePart {
        description: "not this one".to_owned(),
        ..spare_part(plant, "BRG-6204", 0)
    };
    assert!(!store.add_spare_part(&again).await.expect("add a kept part"));
    assert_eq!(
        store.get_spare_part(plant, "BRG-6204").await.expect("get"),
        Some(SparePart {
            on_hand: 5,
            ..renamed.clone()
        })
    );
    let racing = futures::future::join_all((0..4).map(|i| {
        let part = SparePart {
            description: format!("writer {i}"),
            ..spare_part(plant, "VBELT-A42", 0)
        };
        async move { store.add_spare_part(&part).await.expect("add") }
    }))
    .await;
    assert_eq!(
        racing.iter().filter(|added| **added).count(),
        1,
        "{racing:?}"
    );
    let belt = store
        .get_spare_part(plant, "VBELT-A42")
        .await
        .expect("get")
        .expect("added");
    assert!(belt.description.starts_with("writer "), "{belt:?}");
    assert!(
        store
            .delete_spare_part(plant, "VBELT-A42")
            .await
            .expect("delete")
    );

    // Active work orders reserve what they list; finished ones do not.
    let order = |cause: &str| work_order(&motor, cause, &unique_code("WO"), 0);
    let with_parts = |parts: &[(&str, u32)]| WorkOrderChanges {
        parts: Some(
            parts
                .iter()
                .map(|(n, q)| Part {
                    part_number: (*n).to_owned(),
                    quantity: *q,
                })
                .collect(),
        ),
        ..WorkOrderChanges::default()
    };
    let open = order("manual:open");
    store
        .create_work_order(
            &open,
            &with_parts(&[("BRG-6204", 2), ("SEAL-12", 1), ("GREASE", 1)]),
        )
        .await
        .expect("open");
    let started = order("manual:started");
    store
        .create_work_order(&started, &with_parts(&[("BRG-6204", 1), (" BRG-6204", 2)]))
        .await
        .expect("started");
    assert!(
        store
            .transition_work_order(
                started.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::InProgress,
                None
            )
            .await
            .expect("start")
    );
    let cancelled = order("manual:cancelled");
    store
        .create_work_order(&cancelled, &with_parts(&[("BRG-6204", 100)]))
        .await
        .expect("cancelled");
    assert!(
        store
            .transition_work_order(
                cancelled.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::Cancelled,
                None
            )
            .await
            .expect("cancel")
    );
    assert_eq!(
        store.reserved_parts(plant).await.expect("reserved"),
        BTreeMap::from([
            ("BRG-6204".to_owned(), 5),
            ("GREASE".to_owned(), 1),
            ("SEAL-12".to_owned(), 1),
        ])
    );
    assert!(
        store
            .reserved_parts(other)
            .await
            .expect("reserved")
            .is_empty()
    );
    let bearing_count = || async {
        store
            .get_spare_part(plant, "BRG-6204")
            .await
            .expect("get")
            .expect("exists")
            .on_hand
    };
    assert_eq!(bearing_count().await, 5, "a cancellation takes nothing");

    // Completing takes its parts off the shelf, once.
    assert!(
        store
            .transition_work_order(
                started.id,
                WorkOrderStatus::InProgress,
                WorkOrderStatus::Completed,
                None
            )
            .await
            .expect("complete")
    );
    assert_eq!(bearing_count().await, 2);
    let moved = store
        .list_stock_movements(plant, "BRG-6204", 10)
        .await
        .expect("movements");
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].kind, StockMovementKind::Consumed);
    assert_eq!((moved[0].delta, moved[0].on_hand), (-3, 2));
    assert_eq!(moved[0].work_order_id, Some(started.id));
    assert_eq!(moved[0].by, "system");
    assert!(
        !store
            .transition_work_order(
                started.id,
                WorkOrderStatus::InProgress,
                WorkOrderStatus::Completed,
                None
            )
            .await
            .expect("again")
    );
    store
        .set_work_order_status(started.id, WorkOrderStatus::Completed)
        .await
        .expect("set as it is");
    assert_eq!(bearing_count().await, 2, "taken once");

    // Fewer on the shelf than an order takes: down to zero, with what was wanted noted; a
    // part the stores do not keep (GREASE) is no movement.
    store
        .record_stock_movement(
            plant,
            "SEAL-12",
            StockChange::Counted(0),
            "sam",
            "found none",
        )
        .await
        .expect("count");
    assert!(
        store
            .transition_work_order(
                open.id,
                WorkOrderStatus::Open,
                WorkOrderStatus::Completed,
                None
            )
            .await
            .expect("complete from open")
    );
    assert_eq!(bearing_count().await, 0);
    let seal = store
        .list_stock_movements(plant, "SEAL-12", 10)
        .await
        .expect("movements");
    assert_eq!(seal[0].kind, StockMovementKind::Consumed);
    assert_eq!((seal[0].delta, seal[0].on_hand), (0, 0));
    assert!(seal[0].note.contains("1 wanted"), "{:?}", seal[0]);
    let bearing = store
        .list_stock_movements(plant, "BRG-6204", 10)
        .await
        .expect("movements");
    assert_eq!((bearing[0].delta, bearing[0].on_hand), (-2, 0));
    assert!(bearing[0].note.is_empty());
    assert!(
        store
            .reserved_parts(plant)
            .await
            .expect("reserved")
            .is_empty()
    );
    assert_eq!(
        store
            .get_spare_part(other, "BRG-6204")
            .await
            .expect("get")
            .expect("exists")
            .on_hand,
        50,
        "another plant's stores are their own"
    );

    // Removed with its movements.
    assert!(
        store
            .delete_spare_part(plant, "BRG-6204")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_spare_part(plant, "BRG-6204")
            .await
            .expect("again")
    );
    assert_eq!(
        store.get_spare_part(plant, "BRG-6204").await.expect("get"),
        None
    );
    assert!(
        store
            .list_stock_movements(plant, "BRG-6204", 10)
            .await
            .expect("movements")
            .is_empty()
    );
}

pub async fn stock_movements_are_recorded_in_order_and_a_missing_part_is_not_found<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let (plant, _) = tenant_with_motor(store).await;
    let ordered = SparePart {
        on_order: 10,
        expected_at: Some(at(86_400_000)),
        ..spare_part(plant, "SEAL-12", 1)
    };
    store
        .upsert_spare_part(&ordered, KeepStored::default())
        .await
        .expect("seal");
    // Part of the order arrives: still expected; the rest: nothing on order any more.
    let first = store
        .record_stock_movement(plant, "SEAL-12", StockChange::Received(4), "sam", "DN-1")
        .await
        .expect("received");
    assert_eq!(
        (first.kind, first.delta, first.on_hand),
        (StockMovementKind::Received, 4, 5)
    );
    assert_eq!((first.by.as_str(), first.note.as_str()), ("sam", "DN-1"));
    let seal = store
        .get_spare_part(plant, "SEAL-12")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((seal.on_hand, seal.on_order), (5, 6));
    assert_eq!(seal.expected_at, Some(at(86_400_000)));
    // A definition read before that delivery, saved with what is on order kept as stored:
    // the delivery is not undone.
    store
        .upsert_spare_part(
            &SparePart {
                location: "B-07".to_owned(),
                ..ordered.clone()
            },
            KeepStored {
                on_order: true,
                expected_at: true,
            },
        )
        .await
        .expect("relocated");
    let seal = store
        .get_spare_part(plant, "SEAL-12")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((seal.location.as_str(), seal.on_order), ("B-07", 6));
    assert_eq!(seal.expected_at, Some(at(86_400_000)));
    // Set to nothing on order: expected at no time, whatever is kept.
    store
        .upsert_spare_part(
            &SparePart {
                on_order: 0,
                ..ordered.clone()
            },
            KeepStored {
                on_order: false,
                expected_at: true,
            },
        )
        .await
        .expect("nothing on order");
    let seal = store
        .get_spare_part(plant, "SEAL-12")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((seal.on_order, seal.expected_at), (0, None));
    store
        .upsert_spare_part(
            &SparePart {
                on_order: 6,
                location: "B-07".to_owned(),
                ..ordered.clone()
            },
            KeepStored::default(),
        )
        .await
        .expect("on order again");
    store
        .record_stock_movement(plant, "SEAL-12", StockChange::Received(8), "sam", "DN-2")
        .await
        .expect("received");
    let seal = store
        .get_spare_part(plant, "SEAL-12")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (seal.on_hand, seal.on_order, seal.expected_at),
        (13, 0, None)
    );
    // Many movements within a millisecond keep their order.
    for n in [12, 11, 10, 9] {
        let counted = store
            .record_stock_movement(plant, "SEAL-12", StockChange::Counted(n), "sam", "")
            .await
            .expect("counted");
        assert_eq!((counted.delta, counted.on_hand), (-1, n));
    }
    let movements = store
        .list_stock_movements(plant, "SEAL-12", 3)
        .await
        .expect("movements");
    assert_eq!(
        movements.iter().map(|m| m.on_hand).collect::<Vec<_>>(),
        [9, 10, 11],
        "newest first, at most the limit"
    );
    let all = store
        .list_stock_movements(plant, "SEAL-12", 100)
        .await
        .expect("movements");
    assert_eq!(all.len(), 6);
    assert_eq!(
        all.iter().map(|m| m.delta).sum::<i64>(),
        9 - 1,
        "they add up"
    );
    // Counting what is there is a movement of zero.
    let same = store
        .record_stock_movement(plant, "SEAL-12", StockChange::Counted(9), "sam", "")
        .await
        .expect("counted");
    assert_eq!(same.delta, 0);
    // Never more on the shelf than a count may be.
    let overflow = store
        .record_stock_movement(
            plant,
            "SEAL-12",
            StockChange::Received(mantis_domain::MAX_PART_QUANTITY),
            "sam",
            "",
        )
        .await;
    assert!(matches!(overflow, Err(Error::Rejected(_))), "{overflow:?}");
    assert_eq!(
        store
            .get_spare_part(plant, "SEAL-12")
            .await
            .expect("get")
            .expect("exists")
            .on_hand,
        9
    );
    for change in [StockChange::Received(1), StockChange::Counted(1)] {
        let missing = store
            .record_stock_movement(plant, "NOPE-1", change, "sam", "")
            .await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
    }
    // A part number is compared exactly.
    assert_eq!(
        store.get_spare_part(plant, "seal-12").await.expect("get"),
        None
    );
}

// --- production ------------------------------------------------------------------------------

fn hours(h: i64) -> Timestamp {
    at(h * 3_600_000)
}

fn made(
    asset: &Asset,
    from: Timestamp,
    to: Timestamp,
    good: u64,
    rejected: u64,
) -> ProductionCount {
    ProductionCount {
        asset_id: asset.id,
        starts_at: from,
        ends_at: to,
        good,
        rejected,
        ideal_cycle_seconds: None,
        recorded_by: "mes".to_owned(),
        recorded_at: to,
    }
}

/// `count` with an ideal cycle time of `seconds` a unit.
fn at_ideal(count: ProductionCount, seconds: f64) -> ProductionCount {
    ProductionCount {
        ideal_cycle_seconds: Some(seconds),
        ..count
    }
}

/// An asset's counts are replaced by start (another's only when asked to), all or none of a
/// batch; one overlapping another (stored with another start, or in the same batch) is a
/// conflict that changes nothing; listed newest first.
pub async fn production_counts_are_replaced_by_start_and_never_overlap<S: Store + ?Sized>(
    store: &S,
) {
    let (_, motor) = tenant_with_motor(store).await;
    let motor_id = motor.id;
    let listed = |from: i64, to: i64, limit: u32| async move {
        store
            .list_production(motor_id, hours(from), hours(to), limit)
            .await
            .expect("list")
    };
    let early = made(&motor, hours(0), hours(8), 100, 5);
    let late = made(&motor, hours(8), hours(16), 90, 10);
    store
        .record_production(motor.id, &[late.clone(), early.clone()], false)
        .await
        .expect("record");
    assert_eq!(listed(0, 24, 10).await, vec![late.clone(), early.clone()]);
    // Sent again for the same start by whoever recorded it: replaced, not added.
    let retried = ProductionCount {
        good: 99,
        ..early.clone()
    };
    store
        .record_production(motor.id, std::slice::from_ref(&retried), false)
        .await
        .expect("replace one's own");
    assert_eq!(listed(0, 24, 10).await, vec![late.clone(), retried]);
    // By someone else: only when asked to replace another's.
    let corrected = ProductionCount {
        good: 101,
        rejected: 4,
        recorded_by: "mia".to_owned(),
        ..early.clone()
    };
    assert!(matches!(
        store
            .record_production(motor.id, std::slice::from_ref(&corrected), false)
            .await,
        Err(Error::Conflict(_))
    ));
    store
        .record_production(motor.id, std::slice::from_ref(&corrected), true)
        .await
        .expect("replace another's");
    assert_eq!(
        listed(0, 24, 10).await,
        vec![late.clone(), corrected.clone()]
    );
    // Overlapping a stored count of another start: a conflict, and the batch's other
    // count is not stored either.
    let next = made(&motor, hours(16), hours(24), 80, 0);
    let across = made(&motor, hours(4), hours(12), 1, 1);
    for batch in [
        vec![next.clone(), across.clone()],
        vec![next.clone(), made(&motor, hours(20), hours(28), 1, 0)],
    ] {
        assert!(
            matches!(
                store.record_production(motor.id, &batch, true).await,
                Err(Error::Conflict(_))
            ),
            "{batch:?}"
        );
    }
    // A replacement that grows into the next count overlaps it too.
    assert!(matches!(
        store
            .record_production(motor.id, &[made(&motor, hours(0), hours(9), 1, 1)], true)
            .await,
        Err(Error::Conflict(_))
    ));
    // A period longer than 31 days, or ending before it starts, is not a count.
    for (from, to) in [(100, 100 + 24 * 31 + 1), (101, 100)] {
        assert!(matches!(
            store
                .record_production(
                    motor.id,
                    &[made(&motor, hours(from), hours(to), 1, 0)],
                    true
                )
                .await,
            Err(Error::Invalid(_))
        ));
    }
    assert_eq!(
        listed(0, 48, 10).await,
        vec![late.clone(), corrected.clone()]
    );
    // Touching periods do not overlap.
    store
        .record_production(motor.id, std::slice::from_ref(&next), false)
        .await
        .expect("the next period");
    assert_eq!(listed(0, 48, 2).await, vec![next.clone(), late.clone()]);
    assert_eq!(listed(12, 17, 10).await, vec![next.clone(), late.clone()]);
    assert_eq!(listed(24, 48, 10).await, vec![]);
    // A count of a month is found from any of its days.
    let month = made(&motor, hours(-24 * 31), hours(0), 3000, 30);
    store
        .record_production(motor.id, std::slice::from_ref(&month), false)
        .await
        .expect("a month");
    assert_eq!(
        listed(-1, 1, 10).await,
        vec![corrected.clone(), month.clone()]
    );
    assert_eq!(
        store
            .delete_production(
                motor.id,
                hours(-24 * 31),
                hours(-24 * 31) + Duration::milliseconds(1)
            )
            .await
            .expect("delete"),
        1
    );
    // Another asset, or one that does not exist.
    assert!(matches!(
        store
            .record_production(
                AssetId::new_random(),
                &[made(&motor, hours(30), hours(31), 1, 0)],
                true
            )
            .await,
        Err(Error::Invalid(_))
    ));
    let nowhere = Asset {
        id: AssetId::new_random(),
        ..motor.clone()
    };
    assert!(matches!(
        store
            .record_production(
                nowhere.id,
                &[made(&nowhere, hours(30), hours(31), 1, 0)],
                true
            )
            .await,
        Err(Error::NotFound { .. })
    ));
    // Removed by start.
    assert_eq!(
        store
            .delete_production(motor.id, hours(8), hours(16))
            .await
            .expect("delete"),
        1
    );
    assert_eq!(listed(0, 48, 10).await, vec![next, corrected]);
}

/// Per asset and group of periods: what lies within a period is summed into its group, a
/// count crossing a period's edge (or the first period's start) is shared out by time, other
/// tenants' counts and those outside the periods are left out; hundreds of periods are
/// answered alike.
pub async fn production_totals_sum_each_period_and_share_out_counts_across_edges<
    S: Store + ?Sized,
>(
    store: &S,
) {
    let (tenant, motor) = tenant_with_motor(store).await;
    let pump = Asset {
        tenant_id: tenant,
        ..asset(&unique_code("PMP"))
    };
    store.upsert_asset(&pump).await.expect("pump");
    let (_, theirs) = tenant_with_motor(store).await;
    // Three of the motor's counts state an ideal cycle time: one crossing the first period's
    // start, one within a period, one crossing a period's end.
    let motor_counts = [
        at_ideal(made(&motor, hours(-2), hours(2), 40, 4), 60.0),
        at_ideal(made(&motor, hours(2), hours(6), 40, 4), 30.0),
        at_ideal(made(&motor, hours(10), hours(18), 80, 8), 120.0),
        made(&motor, hours(19), hours(19) + Duration::seconds(30), 5, 1),
        made(&motor, hours(22), hours(30), 10, 0),
    ];
    store
        .record_production(motor.id, &motor_counts, false)
        .await
        .expect("motor");
    let listed = store
        .list_production(motor.id, hours(-2), hours(30), 10)
        .await
        .expect("listed");
    assert_eq!(
        listed
            .iter()
            .map(|c| c.ideal_cycle_seconds)
            .collect::<Vec<_>>(),
        [None, None, Some(120.0), Some(30.0), Some(60.0)]
    );
    store
        .record_production(pump.id, &[made(&pump, hours(0), hours(22), 220, 22)], false)
        .await
        .expect("pump");
    store
        .record_production(
            theirs.id,
            &[made(&theirs, hours(0), hours(6), 999, 999)],
            false,
        )
        .await
        .expect("theirs");

    let period =
        |from: Timestamp, to: Timestamp, group: usize| ProductionPeriod { from, to, group };
    let shifts = [
        period(hours(0), hours(6), 0),
        period(hours(6), hours(14), 1),
        period(hours(14), hours(22), 2),
    ];
    let totals = |asset: Option<AssetId>, periods: Vec<ProductionPeriod>| async move {
        store
            .production_totals(tenant, asset, &periods)
            .await
            .expect("totals")
            .into_iter()
            // Shares of a count are fractions: compared to a millionth of a unit.
            .map(|p| {
                let round = |x: f64| (x * 1e6).round() / 1e6;
                (
                    p.asset_id,
                    p.group,
                    (round(p.units.good), round(p.units.rejected)),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut expected = vec![
        (motor.id, 0, (60.0, 6.0)),
        (motor.id, 1, (40.0, 4.0)),
        (motor.id, 2, (45.0, 5.0)),
        (pump.id, 0, (60.0, 6.0)),
        (pump.id, 1, (80.0, 8.0)),
        (pump.id, 2, (80.0, 8.0)),
    ];
    expected.sort_by_key(|(a, n, _)| (*a, *n));
    assert_eq!(totals(None, shifts.to_vec()).await, expected);
    assert_eq!(
        totals(Some(motor.id), shifts.to_vec()).await,
        expected
            .iter()
            .filter(|(a, _, _)| *a == motor.id)
            .copied()
            .collect::<Vec<_>>()
    );
    // The first and third periods in one group (two instances of a shift).
    let mut grouped = shifts;
    grouped[2].group = 0;
    let mut expected = vec![
        (motor.id, 0, (105.0, 11.0)),
        (motor.id, 1, (40.0, 4.0)),
        (pump.id, 0, (140.0, 14.0)),
        (pump.id, 1, (80.0, 8.0)),
    ];
    expected.sort_by_key(|(a, n, _)| (*a, *n));
    assert_eq!(totals(None, grouped.to_vec()).await, expected);

    // The ideal time of the units of counts stating an ideal cycle, and how long those last,
    // shared out like the units: 22 units × 60 s and 2 h of the first count in the first
    // shift, with all 44 × 30 s and 4 h of the second; half the third's 88 × 120 s and 8 h in
    // each of the next two.
    let timed = |periods: Vec<ProductionPeriod>| async move {
        store
            .production_totals(tenant, Some(motor.id), &periods)
            .await
            .expect("totals")
            .into_iter()
            .map(|p| {
                let round = |x: f64| (x * 1e3).round() / 1e3;
                (
                    p.group,
                    round(p.units.ideal_seconds),
                    round(p.units.timed_seconds),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        timed(shifts.to_vec()).await,
        [
            (0, 2640.0, 6.0 * 3600.0),
            (1, 5280.0, 4.0 * 3600.0),
            (2, 5280.0, 4.0 * 3600.0)
        ]
    );

    // 1 320 one-minute periods over [0 h, 22 h): several statements, the same units.
    let minutes: Vec<ProductionPeriod> = (0..22 * 60)
        .map(|m| {
            period(
                hours(0) + Duration::minutes(m),
                hours(0) + Duration::minutes(m + 1),
                usize::try_from(m).expect("a minute"),
            )
        })
        .collect();
    let by_minute = totals(None, minutes).await;
    for (asset, units) in [(motor.id, (145.0, 15.0)), (pump.id, (220.0, 22.0))] {
        let (good, rejected) = by_minute
            .iter()
            .filter(|(a, _, _)| *a == asset)
            .fold((0.0, 0.0), |(g, r), (_, _, (dg, dr))| (g + dg, r + dr));
        assert!(
            (good - units.0).abs() < 1e-3 && (rejected - units.1).abs() < 1e-3,
            "{good} / {rejected}"
        );
    }
    // The counts overlapping spans of an asset's time (e.g. its downtimes): the one reaching
    // into a span from before it, those starting within it; none of another tenant's.
    let span = |asset: &Asset, from: Timestamp, to: Timestamp| ProductionSpan {
        asset_id: asset.id,
        from,
        to,
    };
    let spans = [
        span(&motor, hours(1), hours(3)),
        span(&motor, hours(6), hours(10)),
        span(&pump, hours(21), hours(40)),
        span(&theirs, hours(0), hours(6)),
    ];
    let mut found: Vec<(usize, AssetId, Timestamp, Option<f64>)> = store
        .production_overlapping(tenant, &spans)
        .await
        .expect("overlapping")
        .into_iter()
        .map(|(i, c)| (i, c.asset_id, c.starts_at, c.ideal_cycle_seconds))
        .collect();
    found.sort_by_key(|(i, _, at, _)| (*i, *at));
    assert_eq!(
        found,
        [
            (0, motor.id, hours(-2), Some(60.0)),
            (0, motor.id, hours(2), Some(30.0)),
            (2, pump.id, hours(0), None),
        ]
    );
    // More spans than one statement takes: each found by its own index.
    let many: Vec<ProductionSpan> = (0..1001)
        .map(|m| {
            span(
                &motor,
                hours(100) + Duration::minutes(m),
                hours(100) + Duration::minutes(m + 1),
            )
        })
        .chain([span(&motor, hours(10), hours(11))])
        .collect();
    let found = store
        .production_overlapping(tenant, &many)
        .await
        .expect("many spans");
    assert_eq!(
        found
            .iter()
            .map(|(i, c)| (*i, c.starts_at))
            .collect::<Vec<_>>(),
        [(1001, hours(10))]
    );
    assert!(matches!(
        store
            .production_overlapping(tenant, &[span(&motor, hours(3), hours(3))])
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(
        store
            .production_overlapping(tenant, &[])
            .await
            .expect("no spans")
            .is_empty()
    );

    let (ideal, run) = timed(
        (0..22 * 60)
            .map(|m| {
                period(
                    hours(0) + Duration::minutes(m),
                    hours(0) + Duration::minutes(m + 1),
                    0,
                )
            })
            .collect(),
    )
    .await
    .iter()
    .fold((0.0, 0.0), |(i, r), (_, di, dr)| (i + di, r + dr));
    assert!(
        (ideal - 13_200.0).abs() < 1e-3 && (run - 14.0 * 3600.0).abs() < 1e-3,
        "{ideal} / {run}"
    );
    // The 30-second count lies within 19:00–19:01 (period 1 140), where nothing else does.
    assert!(by_minute.contains(&(motor.id, 19 * 60, (5.0, 1.0))));

    for bad in [
        vec![period(hours(0), hours(6), 0), period(hours(7), hours(8), 1)],
        vec![period(hours(6), hours(6), 0)],
    ] {
        assert!(matches!(
            store.production_totals(tenant, None, &bad).await,
            Err(Error::Invalid(_))
        ));
    }
}
