//! Typed identifiers. Every entity id is a UUID wrapped in its own type so that an asset id can
//! never be passed where a sensor id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
            /// Parses the textual UUID form.
            pub fn parse(s: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(s.trim()).map(Self)
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// Identifies an asset (a machine: motor, pump, conveyor, fan...).
    AssetId
);
uuid_id!(
    /// Identifies a sensor mounted on an asset.
    SensorId
);
uuid_id!(
    /// Identifies a work order.
    WorkOrderId
);
uuid_id!(
    /// Identifies an alert.
    AlertId
);
uuid_id!(
    /// Identifies a detected anomaly.
    AnomalyId
);
uuid_id!(
    /// Identifies a recorded maintenance event (failure, replacement, repair...).
    MaintenanceEventId
);
uuid_id!(
    /// Identifies an API key.
    ApiKeyId
);
uuid_id!(
    /// Identifies a stretch of time off (a technician's, or the whole crew's).
    TimeOffId
);
uuid_id!(
    /// Identifies a planned stop of an asset (or of the whole plant).
    PlannedStopId
);
uuid_id!(
    /// Identifies the tenant (plant or company) that owns a row.
    TenantId
);

impl TenantId {
    /// The tenant used when a deployment has only one (the embedded default).
    pub const DEFAULT: TenantId = TenantId(Uuid::from_u128(0x6d616e74_6973_4000_8000_000000000001));
}

impl Default for TenantId {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The namespace under which MANTIS derives deterministic ids.
const MANTIS_NAMESPACE: Uuid = Uuid::from_u128(0x1b4e28ba_2fa1_11d2_883f_0016d3cca427);

/// Derives a stable UUID (v5) from a kind and key parts, so that reprocessing the same input
/// (after a redelivery or a restart) yields the same id and idempotent writes can recognise it.
pub fn deterministic_uuid(kind: &str, parts: &[&str]) -> Uuid {
    let mut name = String::with_capacity(64);
    name.push_str(kind);
    for p in parts {
        name.push('\u{1f}');
        name.push_str(p);
    }
    Uuid::new_v5(&MANTIS_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ids_are_stable_and_distinct() {
        let a = deterministic_uuid("anomaly", &["a", "b"]);
        assert_eq!(a, deterministic_uuid("anomaly", &["a", "b"]));
        assert_ne!(a, deterministic_uuid("anomaly", &["ab"]));
        assert_ne!(a, deterministic_uuid("alert", &["a", "b"]));
    }

    #[test]
    fn ids_parse_and_reject_garbage() {
        let id = AssetId::new_random();
        assert_eq!(AssetId::parse(&id.to_string()).ok(), Some(id));
        assert!(SensorId::parse("not-a-uuid").is_err());
    }
}
