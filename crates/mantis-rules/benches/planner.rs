//! The maintenance planner on plant-sized backlogs: how long a plan takes and how much the
//! search improves on the best of its three dispatch rules (`start`: no search), within the
//! default budget (3 000 decodings, 2 s).
//!
//! ```text
//! cargo bench -p mantis-rules --bench planner
//! ```

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use mantis_domain::Priority;
use mantis_rules::plan::{Budget, Task, Worker, plan};

/// A small deterministic generator (xorshift): the same backlogs on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `technicians` on two 8-hour shifts (06–14, 14–22) Monday to Friday over a week, each with
/// one or two of three skills, and `orders` active work orders due within the week.
fn backlog(orders: usize, technicians: usize, seed: u64) -> (Vec<Worker>, Vec<Task>) {
    let mut rng = Rng(seed);
    let monday: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap_or_default();
    let at = |hours: u64| monday + Duration::minutes((hours * 60) as i64);
    let skills = ["electrical", "mechanical", "hydraulics"];
    let workers = (0..technicians)
        .map(|w| {
            let first = if w % 2 == 0 { 6 } else { 14 };
            let mut own = vec![skills[w % 3].to_owned()];
            if rng.below(2) == 0 {
                own.push(skills[(w + 1) % 3].to_owned());
            }
            Worker {
                name: format!("tech-{w}"),
                skills: own,
                available: (0..5)
                    .map(|d| (at(d * 24 + first), at(d * 24 + first + 8)))
                    .collect(),
                busy: Vec::new(),
            }
        })
        .collect();
    let priorities = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    let tasks = (0..orders)
        .map(|_| {
            let priority = priorities[rng.below(4) as usize];
            let response = match priority {
                Priority::Urgent => 2,
                Priority::High => 8,
                Priority::Normal => 24,
                Priority::Low => 168,
            };
            let created = rng.below(72);
            Task {
                ready: at(created.min(6)),
                due: at(created + response),
                duration: Duration::minutes(30 * (1 + rng.below(12)) as i64),
                priority,
                skill: (rng.below(4) != 0).then(|| skills[rng.below(3) as usize].to_owned()),
                technician: None,
                fixed: None,
            }
        })
        .collect();
    (workers, tasks)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    println!(
        "{:>7} {:>12} {:>10} {:>12} {:>14} {:>9} {:>15} {:>9} {:>11}",
        "orders",
        "technicians",
        "decodings",
        "ms per plan",
        "start: late h",
        "unplaced",
        "search: late h",
        "unplaced",
        "time limit"
    );
    for (orders, technicians) in [
        (20, 4),
        (50, 6),
        (100, 10),
        (200, 20),
        (400, 30),
        (1000, 40),
    ] {
        let (workers, tasks) = backlog(orders, technicians, 0x5eed ^ orders as u64);
        let horizon = workers
            .iter()
            .flat_map(|w| w.available.iter().map(|&(_, b)| b))
            .max()
            .unwrap_or_default();
        let start = plan(
            &workers,
            &tasks,
            horizon,
            Budget {
                evaluations: 1,
                time: None,
            },
        );
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let t = Instant::now();
            let p = plan(&workers, &tasks, horizon, Budget::default());
            times.push(t.elapsed());
            last = Some(p);
        }
        times.sort();
        let Some(p) = last else { continue };
        println!(
            "{:>7} {:>12} {:>10} {:>12.1} {:>14.1} {:>9} {:>15.1} {:>9} {:>11}",
            orders,
            technicians,
            p.evaluations,
            times[1].as_secs_f64() * 1e3,
            start.weighted_late_hours,
            start.unplanned.len(),
            p.weighted_late_hours,
            p.unplanned.len(),
            if p.timed_out { "reached" } else { "-" }
        );
    }
}
