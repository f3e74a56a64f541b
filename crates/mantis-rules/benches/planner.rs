//! The maintenance planner on plant-sized backlogs: how long a plan takes and how much the
//! search improves on the best of its three dispatch rules (`start`: no search), within the
//! default budget (3 000 decodings, 2 s); then the same backlogs with a production calendar
//! (a plant-wide lunch break 12:00–12:30 each day and a 4-hour stop of each machine once in
//! the week): the hours of work outside the planned stops, and what that costs in time.
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
                stops: Vec::new(),
                while_running: false,
            }
        })
        .collect();
    (workers, tasks)
}

/// Gives the orders a production calendar: one machine per two orders, each stopped 08:00–12:00
/// on one weekday and, with the whole plant, 12:00–12:30 every weekday.
fn with_calendar(tasks: &mut [Task], seed: u64) {
    let mut rng = Rng(seed);
    let monday: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap_or_default();
    let at = |day: u64, minutes: u64| monday + Duration::minutes((day * 24 * 60 + minutes) as i64);
    let machines = tasks.len().div_ceil(2) as u64;
    let calendars: Vec<Vec<(DateTime<Utc>, DateTime<Utc>)>> = (0..machines)
        .map(|_| {
            let day = rng.below(5);
            (0..5)
                .map(|d| (at(d, 12 * 60), at(d, 12 * 60 + 30)))
                .chain([(at(day, 8 * 60), at(day, 12 * 60))])
                .collect()
        })
        .collect();
    for task in tasks {
        task.stops = calendars[rng.below(machines) as usize].clone();
    }
}

/// The plan's median time of three runs, the plan, and the dispatch rules' best (no search).
fn timed(
    workers: &[Worker],
    tasks: &[Task],
    horizon: DateTime<Utc>,
) -> Option<(f64, mantis_rules::plan::Plan, mantis_rules::plan::Plan)> {
    let start = plan(
        workers,
        tasks,
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
        let p = plan(workers, tasks, horizon, Budget::default());
        times.push(t.elapsed());
        last = Some(p);
    }
    times.sort();
    Some((times[1].as_secs_f64() * 1e3, last?, start))
}

const SIZES: [(usize, usize); 6] = [
    (20, 4),
    (50, 6),
    (100, 10),
    (200, 20),
    (400, 30),
    (1000, 40),
];

fn horizon_of(workers: &[Worker]) -> DateTime<Utc> {
    workers
        .iter()
        .flat_map(|w| w.available.iter().map(|&(_, b)| b))
        .max()
        .unwrap_or_default()
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
    for (orders, technicians) in SIZES {
        let (workers, tasks) = backlog(orders, technicians, 0x5eed ^ orders as u64);
        let Some((ms, p, start)) = timed(&workers, &tasks, horizon_of(&workers)) else {
            continue;
        };
        println!(
            "{:>7} {:>12} {:>10} {:>12.1} {:>14.1} {:>9} {:>15.1} {:>9} {:>11}",
            orders,
            technicians,
            p.evaluations,
            ms,
            start.weighted_late_hours,
            start.unplanned.len(),
            p.weighted_late_hours,
            p.unplanned.len(),
            if p.timed_out { "reached" } else { "-" }
        );
    }
    println!(
        "\nwith a production calendar (downtime: hours of work outside planned stops; blind: the \
         plan made without the calendar)"
    );
    println!(
        "{:>7} {:>12} {:>10} {:>12} {:>15} {:>14} {:>15} {:>15} {:>16} {:>11}",
        "orders",
        "technicians",
        "decodings",
        "ms per plan",
        "blind: downtime",
        "start: late h",
        "start: downtime",
        "search: late h",
        "search: downtime",
        "time limit"
    );
    for (orders, technicians) in SIZES {
        let (workers, mut tasks) = backlog(orders, technicians, 0x5eed ^ orders as u64);
        let blind = plan(&workers, &tasks, horizon_of(&workers), Budget::default());
        with_calendar(&mut tasks, 0xca1e ^ orders as u64);
        let blind_downtime: f64 = blind
            .slots
            .iter()
            .map(|s| {
                let within: i64 = tasks[s.task]
                    .stops
                    .iter()
                    .map(|&(a, b)| (b.min(s.end) - a.max(s.start)).num_milliseconds().max(0))
                    .sum();
                ((s.end - s.start).num_milliseconds() - within) as f64 / 3_600_000.0
            })
            .sum();
        let Some((ms, p, start)) = timed(&workers, &tasks, horizon_of(&workers)) else {
            continue;
        };
        println!(
            "{:>7} {:>12} {:>10} {:>12.1} {:>15.1} {:>14.1} {:>15.1} {:>15.1} {:>16.1} {:>11}",
            orders,
            technicians,
            p.evaluations,
            ms,
            blind_downtime,
            start.weighted_late_hours,
            start.downtime_hours,
            p.weighted_late_hours,
            p.downtime_hours,
            if p.timed_out { "reached" } else { "-" }
        );
    }
}
