//! How ids and timestamps are laid out in each backend.
//!
//! The two backends store the same values differently: PostgreSQL has native `uuid` and
//! `timestamptz` columns, while SQLite keeps ids as hyphenated `TEXT` and instants as `INTEGER`
//! milliseconds since the Unix epoch. [`DbId`] and [`DbTime`] hide that difference, so the row
//! structs of [`super::rows`] and every query are written once for both.
//!
//! Timestamps are truncated to whole milliseconds on the way in, in both backends: MANTIS
//! timestamps have millisecond precision, and truncating in PostgreSQL too (which would keep
//! microseconds) makes both backends store and return exactly the same instant.

use chrono::{DateTime, Utc};
use mantis_domain::{
    AlertId, AnomalyId, AssetId, MaintenanceEventId, PlannedStopId, SensorId, TenantId, Timestamp,
    WorkOrderId, timestamp_from_millis,
};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// A UUID column: `uuid` in PostgreSQL, hyphenated `TEXT` in SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DbId(pub(crate) Uuid);

/// An instant: `timestamptz` in PostgreSQL, `INTEGER` Unix milliseconds in SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DbTime(pub(crate) Timestamp);

impl DbTime {
    /// The instant truncated to the millisecond (what both backends store).
    fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

macro_rules! id_into_db_id {
    ($($id:ty),*) => {$(
        impl From<$id> for DbId {
            fn from(id: $id) -> Self {
                Self(id.as_uuid())
            }
        }
    )*};
}

id_into_db_id!(
    AlertId,
    AnomalyId,
    AssetId,
    MaintenanceEventId,
    PlannedStopId,
    SensorId,
    TenantId,
    WorkOrderId
);

impl From<Timestamp> for DbTime {
    fn from(t: Timestamp) -> Self {
        Self(t)
    }
}

// --- PostgreSQL -----------------------------------------------------------------------------

impl Type<Postgres> for DbId {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbId {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbId {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<'r, Postgres>>::decode(value).map(Self)
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let truncated = timestamp_from_millis(self.millis())
            .ok_or_else(|| format!("timestamp {} is out of range", self.0))?;
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&truncated, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(Self)
    }
}

// --- SQLite ---------------------------------------------------------------------------------

impl Type<Sqlite> for DbId {
    fn type_info() -> SqliteTypeInfo {
        <Hyphenated as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <Hyphenated as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbId {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <Hyphenated as Encode<'_, Sqlite>>::encode_by_ref(&self.0.hyphenated(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbId {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <Hyphenated as Decode<'r, Sqlite>>::decode(value).map(|h| Self(h.into_uuid()))
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Sqlite>>::encode(self.millis(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let ms = <i64 as Decode<'r, Sqlite>>::decode(value)?;
        timestamp_from_millis(ms)
            .map(Self)
            .ok_or_else(|| format!("{ms} ms since the Unix epoch is out of range").into())
    }
}
