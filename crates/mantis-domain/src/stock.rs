//! The plant's stores: spare parts, how many are on the shelf, and every movement of that
//! count. Work orders list the parts they need (reserved while the order is active, taken from
//! the shelf when it is completed); the planner does not place work whose parts are missing
//! before they can be there.

use crate::{DomainError, TenantId, Timestamp, WorkOrderId};
use serde::{Deserialize, Serialize};

/// Longest part number.
pub const MAX_PART_NUMBER: usize = 64;
/// Longest description or storage location.
pub const MAX_PART_TEXT: usize = 500;
/// Largest count of one part (on the shelf, on order, a reorder point, a movement).
pub const MAX_PART_QUANTITY: u32 = 1_000_000;

/// A spare part the plant keeps in its stores.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SparePart {
    /// The tenant whose stores hold it.
    pub tenant_id: TenantId,
    /// Its number, as work orders list it (`BRG-6204`).
    pub part_number: String,
    /// What it is.
    pub description: String,
    /// Where it is kept (a bin, a shelf).
    pub location: String,
    /// How many are on the shelf (changed by movements only: received, counted, taken by a
    /// completed work order).
    pub on_hand: u32,
    /// Below this many, once what active work orders reserve and what is on order are counted,
    /// it is to be reordered (0: never).
    pub reorder_point: u32,
    /// How many are ordered from the supplier and not received yet.
    pub on_order: u32,
    /// When what is on order is expected (the planner waits for it for work that needs it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expected_at: Option<Timestamp>,
    /// Last change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// Trims a part number and checks it: 1 to 64 characters, no spaces or control characters
/// (it is written in a work order's parts list as `BRG-6204 x2`).
pub fn normalise_part_number(raw: &str) -> Result<String, DomainError> {
    let number = raw.trim();
    if number.is_empty() {
        return Err(DomainError::Empty("part number"));
    }
    if number.chars().count() > MAX_PART_NUMBER
        || number
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ',')
    {
        return Err(DomainError::BadName {
            what: "part number",
            value: number.to_owned(),
            rule: "at most 64 characters without spaces, commas or control characters",
        });
    }
    Ok(number.to_owned())
}

impl SparePart {
    /// Checks and trims the number, texts and counts.
    pub fn normalise(mut self) -> Result<Self, DomainError> {
        self.part_number = normalise_part_number(&self.part_number)?;
        for (what, text) in [
            ("part description", &mut self.description),
            ("part location", &mut self.location),
        ] {
            *text = text.trim().to_owned();
            if text.chars().count() > MAX_PART_TEXT || text.chars().any(char::is_control) {
                return Err(DomainError::BadName {
                    what,
                    value: text.chars().take(80).collect(),
                    rule: "at most 500 characters without control characters",
                });
            }
        }
        for (what, n) in [
            ("on hand", self.on_hand),
            ("reorder point", self.reorder_point),
            ("on order", self.on_order),
        ] {
            check_quantity(what, n)?;
        }
        Ok(self)
    }
}

fn check_quantity(what: &'static str, n: u32) -> Result<(), DomainError> {
    if n > MAX_PART_QUANTITY {
        return Err(DomainError::OutOfRange {
            what,
            value: f64::from(n),
            min: 0.0,
            max: f64::from(MAX_PART_QUANTITY),
        });
    }
    Ok(())
}

/// What changed a part's count on the shelf.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockMovementKind {
    /// A delivery put on the shelf.
    Received,
    /// Counted (a stocktake): the count becomes what was found.
    Counted,
    /// Taken for a work order, at its completion.
    Consumed,
}

impl StockMovementKind {
    /// The symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "RECEIVED",
            Self::Counted => "COUNTED",
            Self::Consumed => "CONSUMED",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "RECEIVED" => Ok(Self::Received),
            "COUNTED" => Ok(Self::Counted),
            "CONSUMED" => Ok(Self::Consumed),
            _ => Err(DomainError::UnknownSymbol {
                what: "stock movement",
                value: s.to_owned(),
                expected: "RECEIVED, COUNTED, CONSUMED",
            }),
        }
    }
}

/// A change of a part's count on the shelf, as recorded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockMovement {
    /// The part.
    pub part_number: String,
    /// What it was.
    pub kind: StockMovementKind,
    /// By how many the count changed (negative: taken, or fewer found).
    pub delta: i64,
    /// The count after it.
    pub on_hand: u32,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The work order the parts were taken for.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub work_order_id: Option<WorkOrderId>,
    /// Who recorded it (a username, or `system`).
    pub by: String,
    /// A note (a delivery note's number, why a count differed; what a work order wanted
    /// when fewer were on record).
    pub note: String,
}

/// A change of the count asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockChange {
    /// This many were delivered (added).
    Received(u32),
    /// This many were found on the shelf (the count becomes it).
    Counted(u32),
}

impl StockChange {
    /// Checks the quantity (a delivery of at least one, a count within the limit).
    pub fn validate(self) -> Result<Self, DomainError> {
        match self {
            Self::Received(0) => Err(DomainError::OutOfRange {
                what: "quantity received",
                value: 0.0,
                min: 1.0,
                max: f64::from(MAX_PART_QUANTITY),
            }),
            Self::Received(n) => check_quantity("quantity received", n).map(|()| self),
            Self::Counted(n) => check_quantity("quantity counted", n).map(|()| self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: &str) -> SparePart {
        SparePart {
            tenant_id: TenantId::DEFAULT,
            part_number: number.into(),
            description: " Deep-groove ball bearing 6204 ".into(),
            location: "A-03".into(),
            on_hand: 4,
            reorder_point: 2,
            on_order: 0,
            expected_at: None,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn part_numbers_are_trimmed_and_must_be_one_word() {
        let p = part("  BRG-6204 ").normalise().expect("valid");
        assert_eq!(p.part_number, "BRG-6204");
        assert_eq!(p.description, "Deep-groove ball bearing 6204");
        for bad in ["", "  ", "BRG 6204", "BRG,6204", "A\u{7}", &"X".repeat(65)] {
            assert!(part(bad).normalise().is_err(), "{bad:?}");
        }
        let mut big = part("SEAL-12");
        big.on_order = MAX_PART_QUANTITY + 1;
        assert!(big.normalise().is_err());
    }

    #[test]
    fn movements_have_symbols_and_checked_quantities() {
        for kind in [
            StockMovementKind::Received,
            StockMovementKind::Counted,
            StockMovementKind::Consumed,
        ] {
            assert_eq!(StockMovementKind::parse(kind.as_str()).ok(), Some(kind));
        }
        assert!(StockMovementKind::parse("stolen").is_err());
        assert!(StockChange::Received(0).validate().is_err());
        assert!(StockChange::Counted(0).validate().is_ok());
        assert!(
            StockChange::Received(MAX_PART_QUANTITY + 1)
                .validate()
                .is_err()
        );
    }
}
