//! Which work orders the parts on the shelf (and on order) go to, for the planner: work in
//! progress first (it is being done with them), then the most urgent work, due soonest
//! first. An order gets every stocked part it lists or none (it cannot start with half of
//! them, and what it would hold back is free for the next one); an order that needs what is
//! on order waits for the delivery; one whose parts are neither on the shelf nor expected is
//! not planned, with why. Parts the stores do not keep are not counted (the plant gets them
//! elsewhere).

use mantis_domain::{Priority, Timestamp};
use std::collections::BTreeMap;

/// A part as the stores keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stocked {
    /// On the shelf.
    pub on_hand: u64,
    /// Ordered, not received.
    pub on_order: u64,
    /// When what is on order is expected.
    pub expected_at: Option<Timestamp>,
}

/// The parts a work order needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    /// How many of each part (by part number).
    pub parts: BTreeMap<String, u64>,
    /// Being done now: served first, and never refused (what is missing is its technician's
    /// concern already).
    pub in_progress: bool,
    /// Its priority.
    pub priority: Priority,
    /// When it is due.
    pub due: Timestamp,
}

/// When an order's parts can be there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartsReady {
    /// On the shelf now (or none of its parts are stocked).
    Now,
    /// When the delivery of what is on order is expected.
    At(Timestamp),
    /// Not enough of a part, on the shelf and on order (with a known, future delivery time),
    /// once more urgent work has its share.
    Short {
        /// The part.
        part_number: String,
        /// How many the order needs.
        needed: u64,
        /// How many are left for it on the shelf.
        free: u64,
        /// How many are left for it on order with a future delivery time.
        on_order: u64,
    },
}

impl std::fmt::Display for PartsReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now => f.write_str("its parts are on the shelf"),
            Self::At(t) => write!(f, "its parts are expected at {}", t.to_rfc3339()),
            Self::Short {
                part_number,
                needed,
                free,
                on_order,
            } => {
                write!(
                    f,
                    "parts short: {needed} × {part_number} needed, {free} free on the shelf"
                )?;
                if *on_order > 0 {
                    write!(f, " and {on_order} on order")?;
                }
                f.write_str(" once more urgent work has its share")
            }
        }
    }
}

/// Shares `stock` out among `demands` (see the module's documentation); `now` tells a
/// delivery still expected from one that is late (not counted: nobody knows when it comes).
/// One answer per demand, in their order.
pub fn allocate(
    demands: &[Demand],
    stock: &BTreeMap<String, Stocked>,
    now: Timestamp,
) -> Vec<PartsReady> {
    let mut shelf: BTreeMap<&str, u64> =
        stock.iter().map(|(n, s)| (n.as_str(), s.on_hand)).collect();
    let mut ordered: BTreeMap<&str, u64> = stock
        .iter()
        .filter(|(_, s)| s.expected_at.is_some_and(|t| t > now))
        .map(|(n, s)| (n.as_str(), s.on_order))
        .collect();
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| {
        let d = &demands[i];
        (!d.in_progress, d.priority, d.due, i)
    });
    let mut answers = vec![PartsReady::Now; demands.len()];
    for i in order {
        let demand = &demands[i];
        let mut ready = PartsReady::Now;
        // What it takes from the shelf and from the delivery, part by part.
        let mut takes: Vec<(&str, u64, u64)> = Vec::new();
        for (number, &needed) in &demand.parts {
            let Some((number, stocked)) = stock.get_key_value(number) else {
                continue; // Not kept in the stores.
            };
            let number = number.as_str();
            let free = shelf.get(number).copied().unwrap_or(0);
            if free >= needed || demand.in_progress {
                takes.push((number, needed.min(free), 0));
                continue;
            }
            let coming = ordered.get(number).copied().unwrap_or(0);
            match stocked.expected_at {
                Some(at) if at > now && free + coming >= needed => {
                    // It waits for the delivery anyway: it takes from the delivery first, and
                    // from the shelf only what the delivery lacks (the shelf's stay free for
                    // work that can start now).
                    let from_delivery = needed.min(coming);
                    takes.push((number, needed - from_delivery, from_delivery));
                    ready = match ready {
                        PartsReady::At(t) => PartsReady::At(t.max(at)),
                        _ => PartsReady::At(at),
                    };
                }
                _ => {
                    ready = PartsReady::Short {
                        part_number: number.to_owned(),
                        needed,
                        free,
                        on_order: coming,
                    };
                    break;
                }
            }
        }
        if !matches!(ready, PartsReady::Short { .. }) {
            for (number, from_shelf, from_delivery) in takes {
                if let Some(n) = shelf.get_mut(number) {
                    *n -= from_shelf;
                }
                if let Some(n) = ordered.get_mut(number) {
                    *n -= from_delivery;
                }
            }
        }
        answers[i] = ready;
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn t0() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0)
            .single()
            .expect("a valid instant")
    }

    fn h(hours: i64) -> Timestamp {
        t0() + Duration::hours(hours)
    }

    fn demand(parts: &[(&str, u64)], priority: Priority, due_h: i64) -> Demand {
        Demand {
            parts: parts.iter().map(|(n, q)| ((*n).to_owned(), *q)).collect(),
            in_progress: false,
            priority,
            due: h(due_h),
        }
    }

    fn stock(entries: &[(&str, u64, u64, Option<i64>)]) -> BTreeMap<String, Stocked> {
        entries
            .iter()
            .map(|(n, on_hand, on_order, at)| {
                (
                    (*n).to_owned(),
                    Stocked {
                        on_hand: *on_hand,
                        on_order: *on_order,
                        expected_at: at.map(h),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn urgent_work_gets_the_parts_first_and_the_rest_waits_for_the_delivery() {
        let stock = stock(&[("BRG", 2, 4, Some(48)), ("SEAL", 1, 0, None)]);
        let demands = [
            demand(&[("BRG", 2)], Priority::Low, 1),
            demand(&[("BRG", 2), ("SEAL", 1)], Priority::Urgent, 10),
            demand(&[("BRG", 3)], Priority::Normal, 5),
            demand(&[("GREASE", 9)], Priority::Low, 1),
        ];
        let answers = allocate(&demands, &stock, t0());
        assert_eq!(answers[1], PartsReady::Now, "urgent first: the shelf's two");
        assert_eq!(
            answers[2],
            PartsReady::At(h(48)),
            "normal next: three of the four coming"
        );
        assert_eq!(
            answers[0],
            PartsReady::Short {
                part_number: "BRG".into(),
                needed: 2,
                free: 0,
                on_order: 1
            },
            "low last: one left of the delivery"
        );
        assert_eq!(answers[3], PartsReady::Now, "not a stocked part");
        assert!(answers[0].to_string().contains("2 × BRG needed, 0 free"));
    }

    #[test]
    fn an_order_short_of_one_part_holds_back_none_of_the_others() {
        let stock = stock(&[("BRG", 2, 0, None), ("SEAL", 0, 0, None)]);
        let demands = [
            demand(&[("BRG", 2), ("SEAL", 1)], Priority::Urgent, 1),
            demand(&[("BRG", 2)], Priority::Low, 9),
        ];
        let answers = allocate(&demands, &stock, t0());
        assert!(
            matches!(&answers[0], PartsReady::Short { part_number, .. } if part_number == "SEAL")
        );
        assert_eq!(
            answers[1],
            PartsReady::Now,
            "the bearings were not held back"
        );
    }

    #[test]
    fn work_in_progress_takes_its_parts_first_and_a_late_delivery_is_not_counted() {
        let stock = stock(&[("BRG", 3, 5, Some(-2))]);
        let mut started = demand(&[("BRG", 4)], Priority::Low, 99);
        started.in_progress = true;
        let demands = [demand(&[("BRG", 1)], Priority::Urgent, 0), started];
        let answers = allocate(&demands, &stock, t0());
        assert_eq!(answers[1], PartsReady::Now, "never refused");
        assert_eq!(
            answers[0],
            PartsReady::Short {
                part_number: "BRG".into(),
                needed: 1,
                free: 0,
                on_order: 0
            },
            "the delivery is two hours late: not counted"
        );
    }

    #[test]
    fn work_that_waits_for_a_delivery_leaves_the_shelf_to_work_that_can_start() {
        let stock = stock(&[("BRG", 2, 4, Some(48))]);
        let demands = [
            demand(&[("BRG", 3)], Priority::Urgent, 1),
            demand(&[("BRG", 2)], Priority::Low, 9),
            demand(&[("BRG", 2)], Priority::Low, 10),
        ];
        let answers = allocate(&demands, &stock, t0());
        assert_eq!(
            answers[0],
            PartsReady::At(h(48)),
            "three of the four coming"
        );
        assert_eq!(answers[1], PartsReady::Now, "the shelf's two, at once");
        assert!(
            matches!(
                answers[2],
                PartsReady::Short {
                    free: 0,
                    on_order: 1,
                    ..
                }
            ),
            "{:?}",
            answers[2]
        );
    }

    #[test]
    fn the_latest_delivery_an_order_needs_is_when_it_can_start() {
        let stock = stock(&[("BRG", 0, 2, Some(24)), ("SEAL", 0, 2, Some(72))]);
        let answers = allocate(
            &[demand(&[("BRG", 1), ("SEAL", 1)], Priority::High, 0)],
            &stock,
            t0(),
        );
        assert_eq!(answers, [PartsReady::At(h(72))]);
    }
}
