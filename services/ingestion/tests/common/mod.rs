//! Helpers shared by the ingestion integration tests.

use mantis_domain::{Asset, AssetId, Criticality, Sensor, SensorId, SensorType, TenantId};
use mantis_runtime::Infra;

/// Registers a pump with one pressure sensor `code` (bar, 0..=10).
pub(crate) async fn register_sensor(infra: &Infra, code: &str) -> Sensor {
    register_sensor_of(infra, code, TenantId::DEFAULT).await
}

/// Registers a pump of `tenant` with one pressure sensor `code` (bar, 0..=10).
pub(crate) async fn register_sensor_of(infra: &Infra, code: &str, tenant: TenantId) -> Sensor {
    let asset = Asset {
        id: AssetId::new_random(),
        tenant_id: tenant,
        code: format!("{code}-ASSET"),
        name: format!("Pump {code}"),
        asset_type: "pump".into(),
        location: String::new(),
        criticality: Criticality::High,
    };
    infra.store.upsert_asset(&asset).await.expect("asset");
    let sensor = Sensor {
        id: SensorId::new_random(),
        asset_id: asset.id,
        code: code.into(),
        sensor_type: SensorType::Pressure,
        unit: "bar".into(),
        min_value: 0.0,
        max_value: 10.0,
        sampling_rate_hz: 1.0,
    };
    infra.store.upsert_sensor(&sensor).await.expect("sensor");
    sensor
}
