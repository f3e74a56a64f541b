//! Assets, their sensors and criticality.

use crate::{AssetId, DomainError, SensorId, TenantId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How much the plant depends on an asset (brief: decision matrix).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Criticality {
    /// A main motor: the line stops without it.
    Critical,
    /// A hydraulic pump.
    High,
    /// A conveyor.
    Medium,
    /// A fan.
    Low,
}

impl Criticality {
    /// All levels, most critical first.
    pub const ALL: [Criticality; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    /// Parses `CRITICAL`, `high`, ... (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Ok(Self::Critical),
            "HIGH" => Ok(Self::High),
            "MEDIUM" => Ok(Self::Medium),
            "LOW" => Ok(Self::Low),
            _ => Err(DomainError::UnknownSymbol {
                what: "criticality",
                value: s.to_owned(),
                expected: "CRITICAL, HIGH, MEDIUM, LOW",
            }),
        }
    }

    /// The symbol as stored and sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Critical => "CRITICAL",
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
        }
    }

    /// Anomaly-score threshold of the brief's decision matrix (overridable in `rules/`).
    pub fn default_anomaly_threshold(&self) -> f64 {
        match self {
            Self::Critical => 0.75,
            Self::High => 0.80,
            Self::Medium => 0.85,
            Self::Low => 0.90,
        }
    }

    /// RUL threshold in cycles of the brief's decision matrix (overridable in `rules/`).
    pub fn default_rul_threshold_cycles(&self) -> f64 {
        match self {
            Self::Critical => 50.0,
            Self::High => 100.0,
            Self::Medium => 200.0,
            Self::Low => 500.0,
        }
    }

    /// Maximum response time of the brief's decision matrix (overridable in `rules/`).
    pub fn default_max_response(&self) -> Duration {
        let hours = match self {
            Self::Critical => 2,
            Self::High => 8,
            Self::Medium => 24,
            Self::Low => 24 * 7,
        };
        Duration::from_secs(hours * 3600)
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sensor measures (seed Avro enum `SensorType`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SensorType {
    /// Temperature (°C).
    Temperature,
    /// Vibration (mm/s RMS or g).
    Vibration,
    /// Pressure (bar).
    Pressure,
    /// Electrical current (A).
    Current,
    /// Rotational speed (rpm).
    Speed,
    /// Volume flow (l/min).
    Flow,
}

impl SensorType {
    /// Parses the symbol (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TEMPERATURE" => Ok(Self::Temperature),
            "VIBRATION" => Ok(Self::Vibration),
            "PRESSURE" => Ok(Self::Pressure),
            "CURRENT" => Ok(Self::Current),
            "SPEED" => Ok(Self::Speed),
            "FLOW" => Ok(Self::Flow),
            _ => Err(DomainError::UnknownSymbol {
                what: "sensor type",
                value: s.to_owned(),
                expected: "TEMPERATURE, VIBRATION, PRESSURE, CURRENT, SPEED, FLOW",
            }),
        }
    }

    /// The symbol as stored and sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Temperature => "TEMPERATURE",
            Self::Vibration => "VIBRATION",
            Self::Pressure => "PRESSURE",
            Self::Current => "CURRENT",
            Self::Speed => "SPEED",
            Self::Flow => "FLOW",
        }
    }
}

impl fmt::Display for SensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A machine on the plant floor.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// Its id.
    pub id: AssetId,
    /// The tenant that owns it.
    #[serde(default)]
    pub tenant_id: TenantId,
    /// Short unique code, e.g. `MTR-001`.
    pub code: String,
    /// Human name.
    pub name: String,
    /// Asset type, e.g. `motor`, `pump`.
    pub asset_type: String,
    /// Where it stands (line, cell).
    #[serde(default)]
    pub location: String,
    /// How critical it is.
    pub criticality: Criticality,
}

impl Asset {
    /// The longest asset type: a fleet's name in a model registry (its tenant id, a dot, its
    /// type) stays within the registries' 128 bytes.
    pub const MAX_TYPE_LEN: usize = 64;

    /// Checks an asset type: 1 to [`Asset::MAX_TYPE_LEN`] ASCII letters, digits, `-`, `_` or
    /// `.`, beginning with a letter or digit. The type names its fleet's models (in the
    /// registry, in API paths), so it keeps to what those accept: `hydraulic-pump`, not
    /// `Hydraulic Pump`.
    pub fn check_type(asset_type: &str) -> Result<(), DomainError> {
        let valid = asset_type.len() <= Self::MAX_TYPE_LEN
            && asset_type
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && asset_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(())
        } else {
            Err(DomainError::BadName {
                what: "asset type",
                value: asset_type.chars().take(80).collect(),
                rule: "1 to 64 ASCII letters, digits, `-`, `_` or `.`, beginning with a letter or \
                       digit (it names the type's models)",
            })
        }
    }

    /// The fleet the asset belongs to: its tenant's assets of its type.
    pub fn fleet(&self) -> Fleet {
        Fleet::new(self.tenant_id, self.asset_type.clone())
    }
}

/// One tenant's assets of one type: what a per-type model (RUL) learns from and serves. Tenants
/// never share one: a model trained on a tenant's runs to failure names its assets and carries
/// what they went through.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fleet {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The asset type, e.g. `pump`.
    pub asset_type: String,
}

impl Fleet {
    /// The assets of `asset_type` of `tenant_id`.
    pub fn new(tenant_id: TenantId, asset_type: impl Into<String>) -> Self {
        Self {
            tenant_id,
            asset_type: asset_type.into(),
        }
    }

    /// Its name in a model registry: the asset type for the default tenant (the one tenant of
    /// a single-plant deployment, whose registries predate tenants), `{tenant}.{asset type}`
    /// for any other. No two fleets share a name: a default-tenant type that itself begins
    /// with a tenant id and a dot (and so could pass for another tenant's fleet) is prefixed
    /// with the default tenant's id too.
    pub fn scope(&self) -> String {
        if self.tenant_id == TenantId::DEFAULT && !looks_scoped(&self.asset_type) {
            self.asset_type.clone()
        } else {
            format!("{}.{}", self.tenant_id, self.asset_type)
        }
    }
}

/// Whether `name` begins as a scoped fleet name does: a UUID, then a dot.
fn looks_scoped(name: &str) -> bool {
    name.get(..36)
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
        && name.as_bytes().get(36) == Some(&b'.')
}

/// The asset type, and the tenant unless it is the default one.
impl fmt::Display for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tenant_id == TenantId::DEFAULT {
            f.write_str(&self.asset_type)
        } else {
            write!(f, "{} of tenant {}", self.asset_type, self.tenant_id)
        }
    }
}

/// A sensor mounted on an asset, with the metadata readings are validated against.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sensor {
    /// Its id.
    pub id: SensorId,
    /// The asset it is mounted on.
    pub asset_id: AssetId,
    /// Short unique code, e.g. `MTR-001-VIB`.
    pub code: String,
    /// What it measures.
    pub sensor_type: SensorType,
    /// The unit readings must be expressed in, e.g. `mm/s`.
    pub unit: String,
    /// Smallest physically plausible value.
    pub min_value: f64,
    /// Largest physically plausible value.
    pub max_value: f64,
    /// Nominal sampling rate.
    pub sampling_rate_hz: f64,
}

impl Sensor {
    /// Whether `value` lies within the sensor's plausible range.
    pub fn in_range(&self, value: f64) -> bool {
        value >= self.min_value && value <= self.max_value
    }

    /// Whether `unit` names the sensor's unit (case and surrounding blanks ignored).
    pub fn unit_matches(&self, unit: &str) -> bool {
        self.unit.trim().eq_ignore_ascii_case(unit.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_type_keeps_to_what_names_its_models() {
        for ok in [
            "pump",
            "hydraulic-pump",
            "Pump_2",
            "cnc.5-axis",
            &"m".repeat(64),
        ] {
            assert!(Asset::check_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hydraulic Pump",
            ".hidden",
            "-x",
            "pompe/à-eau",
            &"m".repeat(65),
        ] {
            let e = Asset::check_type(bad).expect_err(bad);
            assert!(e.to_string().contains("asset type"), "{e}");
        }
    }

    #[test]
    fn criticality_parses_case_insensitively_and_rejects_unknown() {
        assert_eq!(Criticality::parse(" critical "), Ok(Criticality::Critical));
        assert!(matches!(
            Criticality::parse("urgent"),
            Err(DomainError::UnknownSymbol { .. })
        ));
    }

    #[test]
    fn decision_matrix_defaults_follow_the_brief() {
        let t: Vec<f64> = Criticality::ALL
            .iter()
            .map(|c| c.default_anomaly_threshold())
            .collect();
        assert_eq!(t, vec![0.75, 0.80, 0.85, 0.90]);
        assert_eq!(Criticality::Low.default_rul_threshold_cycles(), 500.0);
        assert_eq!(
            Criticality::Critical.default_max_response(),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn sensor_range_and_unit_checks() {
        let s = Sensor {
            id: SensorId::new_random(),
            asset_id: AssetId::new_random(),
            code: "X".into(),
            sensor_type: SensorType::Vibration,
            unit: "mm/s".into(),
            min_value: 0.0,
            max_value: 50.0,
            sampling_rate_hz: 1.0,
        };
        assert!(s.in_range(0.0) && s.in_range(50.0) && !s.in_range(50.1));
        assert!(s.unit_matches(" MM/S") && !s.unit_matches("g"));
    }

    #[test]
    fn a_fleet_is_scoped_by_its_tenant_except_the_default_one() {
        let default = Fleet::new(TenantId::DEFAULT, "pump");
        assert_eq!(default.scope(), "pump");
        assert_eq!(default.to_string(), "pump");
        let other = TenantId(uuid::Uuid::from_u128(7));
        let theirs = Fleet::new(other, "pump");
        assert_eq!(theirs.scope(), "00000000-0000-0000-0000-000000000007.pump");
        assert_ne!(theirs, default);
        assert!(
            theirs
                .to_string()
                .contains("00000000-0000-0000-0000-000000000007")
        );
        // The default tenant naming a type after another tenant's fleet gets a name of its own.
        let posing = Fleet::new(TenantId::DEFAULT, theirs.scope());
        assert_ne!(posing.scope(), theirs.scope());
        assert_eq!(
            posing.scope(),
            format!("{}.{}", TenantId::DEFAULT, theirs.scope())
        );
        assert_eq!(Fleet::new(TenantId::DEFAULT, "pump.v2").scope(), "pump.v2");
    }
}
