//! Who may use MANTIS: people (users with a role) and machines (API keys), each bound to one
//! tenant.

use crate::{ApiKeyId, DomainError, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a person or a machine may do. Each role may do everything the roles before it may.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches the plant and acknowledges alerts.
    Operator,
    /// Works the work orders and records what was done.
    Technician,
    /// Plans: creates and assigns work, manages assets, reads KPIs.
    Manager,
    /// Manages users and API keys.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 4] = [Self::Operator, Self::Technician, Self::Manager, Self::Admin];

    /// The symbol as stored and sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Technician => "technician",
            Self::Manager => "manager",
            Self::Admin => "admin",
        }
    }

    /// Parses the symbol (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "operator" => Ok(Self::Operator),
            "technician" => Ok(Self::Technician),
            "manager" => Ok(Self::Manager),
            "admin" => Ok(Self::Admin),
            _ => Err(DomainError::UnknownSymbol {
                what: "role",
                value: s.to_owned(),
                expected: "operator, technician, manager, admin",
            }),
        }
    }

    /// Whether this role may do what `required` may.
    pub fn includes(&self, required: Role) -> bool {
        *self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who logs in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Login name, unique across tenants.
    pub username: String,
    /// The tenant whose assets the user sees.
    pub tenant_id: TenantId,
    /// Name shown in the dashboard.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// PHC string of the password hash (argon2id). Never sent to clients.
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    /// A disabled user cannot log in and their tokens are refused.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: Timestamp,
    /// Goes up each time the account is disabled: a token carries the epoch it was issued in,
    /// so enabling the account again does not bring back the tokens it had. Never sent.
    #[serde(skip_serializing, default)]
    pub token_epoch: u32,
}

/// A key a machine or a third-party system sends in `X-API-Key`. Only a hash of the secret is
/// kept; the prefix finds the key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Identity of the key.
    pub id: ApiKeyId,
    /// The tenant whose assets the key reaches.
    pub tenant_id: TenantId,
    /// What the key is for ("line-2 PLC bridge").
    pub name: String,
    /// The key's public prefix (how it is found and shown).
    pub prefix: String,
    /// Hex SHA-256 of the whole key. Never sent to clients.
    #[serde(skip_serializing, default)]
    pub key_hash: String,
    /// What the key may do.
    pub role: Role,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
}
