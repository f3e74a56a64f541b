//! Maintenance planning: which technician does which active work order, and when.
//!
//! The plan minimises the priority-weighted lateness of the work orders (hours started after
//! their due time, the criticality's response time), then the hours of work done outside the
//! planned stops of the assets that have some (the production calendar: work inside a stop
//! costs no production, work outside stops the machine), then the weighted sum of their
//! finishing times (sooner is better when nothing is late). So an order that can wait for its
//! asset's next planned stop without being late waits for it; one that cannot is done when
//! it is due. A work order it leaves out counts as starting an hour after the horizon (all
//! of it outside stops): one due within the horizon is placed if at all possible, one due
//! beyond it may wait for a later plan rather than make urgent work late. A
//! work order runs in one piece within one shift of one technician who has the skill it needs
//! (or the technician it is assigned to), never before it is ready, never overlapping the
//! technician's other work; one whose start a person fixed stays where it is.
//!
//! How: the plan is decoded from a priority list (each work order in turn goes to the
//! technician who can start it earliest, into the first free stretch of a shift long enough,
//! gaps left by earlier placements included, unless the search chose its technician or to
//! put it after that technician's last one), starting from three dispatch rules (earliest
//! due; priority then due; shortest weighted duration) and improved by local search (late
//! orders forward, to another technician, swapped; any order anywhere; an order into its
//! asset's planned stops or at its earliest) with restarts, within
//! a budget of decodings and of time. Exact mixed-integer programming (good_lp) was measured
//! too slow in pure Rust for a plant's backlog (`../shared/design/DEPENDENCIES.md`: microlp
//! took over 180 s at 45 orders × 6 technicians); the tests check this search against
//! exhaustive enumeration on small plans.
//!
//! [`Estimates`] says how long a work order takes and which skill it needs (`rules/planning.toml`).

use crate::{Error, Result};
use mantis_domain::{Priority, Timestamp, join_spans, normalise_skill};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const BUILTIN_PLANNING: &str = include_str!("../../../rules/planning.toml");

/// The longest a work order may be estimated to take, in hours (a fortnight).
pub const MAX_TASK_HOURS: f64 = 336.0;

/// How much a work order's lateness weighs, by priority.
pub fn weight(priority: Priority) -> u32 {
    match priority {
        Priority::Urgent => 8,
        Priority::High => 4,
        Priority::Normal => 2,
        Priority::Low => 1,
    }
}

/// What the planner assumes of a work order: how long it takes and which skill it needs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimates {
    /// Hours a work order takes when neither its asset type nor its cause says.
    pub default_hours: f64,
    /// By cause (`anomaly`, `rul`, …).
    #[serde(default)]
    pub causes: BTreeMap<String, CauseEstimate>,
    /// By asset type: the skill its work needs, and hours by cause.
    #[serde(default)]
    pub asset_types: BTreeMap<String, AssetTypeEstimate>,
}

/// Estimates for one cause.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CauseEstimate {
    /// Hours a work order of this cause takes.
    pub hours: f64,
    /// Its work is done while the asset runs (an inspection round): it is not moved into the
    /// asset's planned stops and costs no production. Default false: work stops the asset.
    #[serde(default)]
    pub while_running: bool,
}

/// Estimates for one asset type.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetTypeEstimate {
    /// The skill its work orders need (none: anyone).
    #[serde(default)]
    pub skill: Option<String>,
    /// Hours by cause, before the cause's own estimate.
    #[serde(default)]
    pub hours: BTreeMap<String, f64>,
    /// The parts its work orders of a cause take (`rul = ["BRG-6204 x2", "SEAL-12"]`): listed
    /// on the work orders the orchestrator opens, so they are reserved in the stores.
    #[serde(default)]
    pub parts: BTreeMap<String, Vec<KitPart>>,
}

/// Most of one part a kit may list (as a work order's parts list).
pub const MAX_KIT_QUANTITY: u32 = 100_000;
/// Most parts a kit may list (as a work order's parts list).
pub const MAX_KIT_PARTS: usize = 200;

/// A part a kind of work takes, written `BRG-6204 x2` (`BRG-6204`: one).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct KitPart {
    /// The part number, as the stores keep it.
    pub part_number: String,
    /// How many.
    pub quantity: u32,
}

impl TryFrom<String> for KitPart {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        let text = text.trim();
        let (number, quantity) = match text.rsplit_once(|c: char| c.is_whitespace()) {
            Some((number, q)) if q.starts_with(['x', 'X', '×']) => {
                let digits = q.trim_start_matches(['x', 'X', '×']);
                let n: u32 = digits
                    .parse()
                    .map_err(|_| format!("`{text}`: the quantity after x is a whole number"))?;
                (number.trim(), n)
            }
            _ => (text, 1),
        };
        if !(1..=MAX_KIT_QUANTITY).contains(&quantity) {
            return Err(format!(
                "`{text}`: the quantity must be 1 to {MAX_KIT_QUANTITY}"
            ));
        }
        let part_number = mantis_domain::normalise_part_number(number)
            .map_err(|e| format!("`{text}`: {e} (write `PART-NUMBER x2`)"))?;
        Ok(Self {
            part_number,
            quantity,
        })
    }
}

impl Estimates {
    /// The estimates shipped in `rules/planning.toml`.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_PLANNING)
    }

    /// The text of `planning.toml` in `dir` when given and present, the built-in one otherwise
    /// (a rules directory from before the planner has no such file).
    pub fn source(dir: Option<&Path>) -> Result<String> {
        if let Some(d) = dir {
            let path = d.join("planning.toml");
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Read { path, source }),
            }
        }
        Ok(BUILTIN_PLANNING.to_owned())
    }

    /// Reads `planning.toml` from `dir` (see [`Estimates::source`]).
    pub fn load_or_builtin(dir: Option<&Path>) -> Result<Self> {
        Self::parse(&Self::source(dir)?)
    }

    /// Parses and checks `planning.toml`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut e: Self = toml::from_str(text).map_err(|e| Error::Parse {
            file: "planning.toml".into(),
            message: e.to_string(),
        })?;
        let check = |what: String, hours: f64| {
            if hours.is_finite() && hours > 0.0 && hours <= MAX_TASK_HOURS {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "planning.toml: {what} must be above 0 and at most {MAX_TASK_HOURS} hours, got {hours}"
                )))
            }
        };
        check("default_hours".into(), e.default_hours)?;
        for (cause, c) in &e.causes {
            check(format!("causes.{cause}.hours"), c.hours)?;
        }
        // Compared in lower case: two keys that differ only in case would hide one another.
        let once = |what: &str, keys: &mut dyn Iterator<Item = &String>| {
            let mut seen = std::collections::BTreeSet::new();
            for key in keys {
                if !seen.insert(key.to_lowercase()) {
                    return Err(Error::Invalid(format!(
                        "planning.toml: {what} lists `{key}` twice (compared in lower case)"
                    )));
                }
            }
            Ok(())
        };
        once("causes", &mut e.causes.keys())?;
        once("asset_types", &mut e.asset_types.keys())?;
        for (ty, a) in &e.asset_types {
            once(&format!("asset_types.{ty}.hours"), &mut a.hours.keys())?;
            once(&format!("asset_types.{ty}.parts"), &mut a.parts.keys())?;
            for (cause, kit) in &a.parts {
                if kit.len() > MAX_KIT_PARTS {
                    return Err(Error::Invalid(format!(
                        "planning.toml: asset_types.{ty}.parts.{cause} lists more than {MAX_KIT_PARTS} parts"
                    )));
                }
            }
        }
        // Looked up in lower case: an asset type or cause written `Pump` is `pump`.
        e.causes = std::mem::take(&mut e.causes)
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        e.asset_types = std::mem::take(&mut e.asset_types)
            .into_iter()
            .map(|(k, mut v)| {
                v.hours = v
                    .hours
                    .into_iter()
                    .map(|(c, h)| (c.to_lowercase(), h))
                    .collect();
                v.parts = v
                    .parts
                    .into_iter()
                    .map(|(c, p)| (c.to_lowercase(), p))
                    .collect();
                (k.to_lowercase(), v)
            })
            .collect();
        for (ty, a) in &mut e.asset_types {
            for (cause, h) in &a.hours {
                check(format!("asset_types.{ty}.hours.{cause}"), *h)?;
            }
            if let Some(skill) = &a.skill {
                let skill = normalise_skill(skill);
                if skill.is_empty() {
                    return Err(Error::Invalid(format!(
                        "planning.toml: asset_types.{ty}.skill must not be empty"
                    )));
                }
                a.skill = Some(skill);
            }
        }
        Ok(e)
    }

    /// Hours a work order of `cause` on an asset of `asset_type` takes (compared in lower
    /// case).
    pub fn hours(&self, asset_type: &str, cause: &str) -> f64 {
        let cause = cause.to_lowercase();
        self.asset_types
            .get(&asset_type.to_lowercase())
            .and_then(|a| a.hours.get(&cause).copied())
            .or_else(|| self.causes.get(&cause).map(|c| c.hours))
            .unwrap_or(self.default_hours)
    }

    /// Whether work orders of `cause` are done while their asset runs (compared in lower
    /// case).
    pub fn while_running(&self, cause: &str) -> bool {
        self.causes
            .get(&cause.to_lowercase())
            .is_some_and(|c| c.while_running)
    }

    /// The skill work on an asset of `asset_type` needs (compared in lower case).
    pub fn skill(&self, asset_type: &str) -> Option<&str> {
        self.asset_types
            .get(&asset_type.to_lowercase())
            .and_then(|a| a.skill.as_deref())
    }

    /// The parts a work order of `cause` on an asset of `asset_type` takes (compared in lower
    /// case; none when the rules list none).
    pub fn kit(&self, asset_type: &str, cause: &str) -> &[KitPart] {
        self.asset_types
            .get(&asset_type.to_lowercase())
            .and_then(|a| a.parts.get(&cause.to_lowercase()))
            .map_or(&[], Vec::as_slice)
    }
}

/// A technician as the planner sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    /// Name (as on work orders).
    pub name: String,
    /// Normalised skills.
    pub skills: Vec<String>,
    /// Working time: sorted, disjoint.
    pub available: Vec<(Timestamp, Timestamp)>,
    /// Time already taken (work in progress), in any order.
    pub busy: Vec<(Timestamp, Timestamp)>,
}

/// A work order to place.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Not to start before (now, for work that can start at once).
    pub ready: Timestamp,
    /// To be started by.
    pub due: Timestamp,
    /// How long it takes (positive).
    pub duration: chrono::Duration,
    /// Its priority (the weight of its lateness).
    pub priority: Priority,
    /// The skill it needs.
    pub skill: Option<String>,
    /// The technician it is assigned to, who keeps it.
    pub technician: Option<String>,
    /// A start a person set: kept as it is, taking the time of `technician`, or without one of
    /// a crew member who has the skill and is free then (the first by name; none free: left
    /// out, [`Unplanned::NobodyFreeThen`]).
    pub fixed: Option<Timestamp>,
    /// Its asset's planned stops (in any order; overlaps are joined): its work within them
    /// costs no production. Empty: the asset has none, and when it is done costs the same.
    pub stops: Vec<(Timestamp, Timestamp)>,
    /// It is done while the asset runs (an inspection, a measurement): it costs no
    /// production wherever it goes, so it is not moved into the stops.
    pub while_running: bool,
}

/// Where and when a task goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// Index into the tasks.
    pub task: usize,
    /// Index into the workers.
    pub worker: usize,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// How much of it falls within its asset's planned stops.
    pub in_stops: chrono::Duration,
}

/// Why a task is not in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplanned {
    /// No active technician has the skill.
    NoSkill(String),
    /// The technician it is assigned to is not in the crew (or not active).
    UnknownTechnician(String),
    /// No technician who could do it has a free stretch of a shift long enough before the end
    /// of the horizon (or placing it there would make more urgent work later).
    NoTime,
    /// Nobody is in the crew (or everyone is away).
    NoCrew,
    /// Its start was set by a person, and nobody who could do it is free on shift then.
    NobodyFreeThen,
}

impl std::fmt::Display for Unplanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSkill(skill) => write!(f, "no active technician has the skill `{skill}`"),
            Self::UnknownTechnician(name) => write!(
                f,
                "it is assigned to `{name}`, who is not an active technician of the crew"
            ),
            Self::NoTime => f.write_str(
                "no technician who could do it has a free stretch of a shift long enough before the end of the horizon, but for more urgent work",
            ),
            Self::NoCrew => f.write_str("no active technician in the crew"),
            Self::NobodyFreeThen => f.write_str(
                "its start was set by hand, and no technician who could do it is free on shift then",
            ),
        }
    }
}

/// A plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The placed tasks, by start.
    pub slots: Vec<Slot>,
    /// The others, with why.
    pub unplanned: Vec<(usize, Unplanned)>,
    /// Σ priority weight × hours started late, over the placed tasks.
    pub weighted_late_hours: f64,
    /// Hours of the placed tasks outside their assets' planned stops (but those done while
    /// the asset runs): the production time the plan's work stops machines for.
    pub downtime_hours: f64,
    /// Whether the search stopped at the budget's time limit.
    pub timed_out: bool,
    /// How many priority lists were decoded to find it.
    pub evaluations: usize,
}

/// How much searching a plan may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Priority lists decoded at most.
    pub evaluations: usize,
    /// Wall-clock time at most (the best plan found by then is returned).
    pub time: Option<std::time::Duration>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            evaluations: 3_000,
            time: Some(std::time::Duration::from_secs(2)),
        }
    }
}

/// A plan's cost, compared lexicographically: Σ weight × lateness, then the time of the tasks
/// whose assets have planned stops outside those stops, then Σ weight × end. A task left out
/// counts as starting an hour after the horizon (so leaving out an order due beyond the
/// horizon costs little, one already late a lot), all of it outside the stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    weighted_late_ms: i128,
    outside_stops_ms: i128,
    weighted_end_ms: i128,
}

/// Where a task left out of the plan counts as starting: an hour after the horizon.
const LEFT_OUT_AFTER_MS: i64 = 3_600_000;

/// The problem in milliseconds.
struct Problem {
    available: Vec<Vec<(i64, i64)>>,
    busy: Vec<Vec<(i64, i64)>>,
    ready: Vec<i64>,
    due: Vec<i64>,
    duration: Vec<i64>,
    weight: Vec<u32>,
    /// Who may do each task (empty: nobody, or it is fixed).
    eligible: Vec<Vec<usize>>,
    /// Each task's asset's planned stops: sorted, disjoint.
    stops: Vec<Vec<(i64, i64)>>,
    /// The least `outside_stops_ms` any plan can have: each placeable task with stops less the
    /// most of its stops any start after it is ready could cover.
    least_outside_ms: i128,
    /// Where a task left out counts as starting.
    left_out: i64,
}

/// The earliest start at or after `ready` of a `d`-long stretch within one of `available`'s
/// spans that overlaps none of `busy` (sorted, disjoint).
fn earliest(available: &[(i64, i64)], busy: &[(i64, i64)], ready: i64, d: i64) -> Option<i64> {
    let first = available.partition_point(|&(_, b)| b <= ready);
    for &(a, b) in &available[first..] {
        let mut t = a.max(ready);
        if b.saturating_sub(t) < d {
            continue;
        }
        let mut i = busy.partition_point(|&(_, e)| e <= t);
        loop {
            if t.saturating_add(d) > b {
                break;
            }
            match busy.get(i) {
                Some(&(s, e)) if s < t + d => {
                    t = t.max(e);
                    i += 1;
                }
                _ => return Some(t),
            }
        }
    }
    None
}

/// How much of `[t, t + d)` falls within `stops` (sorted, disjoint).
fn overlap(stops: &[(i64, i64)], t: i64, d: i64) -> i64 {
    let end = t.saturating_add(d);
    let first = stops.partition_point(|&(_, b)| b <= t);
    stops[first..]
        .iter()
        .take_while(|&&(a, _)| a < end)
        .map(|&(a, b)| b.min(end) - a.max(t))
        .sum()
}

/// The start at or after `ready` of a `d`-long stretch of `available` clear of `busy` (as
/// [`earliest`]) that is least late for `due`, then most within `stops`, then earliest: the
/// earliest start, or the earliest from a stop's start or from where the work would end with
/// the stop, with a shift's end or with the start of other work within the stop (work longer
/// than what is left of the stop overlaps it most ending there); with the stretch's time
/// within the stops.
fn into_stops(
    available: &[(i64, i64)],
    busy: &[(i64, i64)],
    stops: &[(i64, i64)],
    (ready, due, d): (i64, i64, i64),
) -> Option<(i64, i64)> {
    let t = earliest(available, busy, ready, d)?;
    let mut best = (t, overlap(stops, t, d));
    if t > due {
        // Already late: any later start is later still.
        return Some(best);
    }
    // A later stop's candidates start no earlier than an earlier one's (`a.min(e - d)` grows
    // with the stops, sorted and disjoint): once the best is all within a stop, or a stop's
    // candidates are all late (none starts before `a - d`), no later stop does better.
    for &(a, b) in &stops[stops.partition_point(|&(_, b)| b <= t)..] {
        if best.1 == d || a.saturating_sub(d).max(ready) > due {
            break;
        }
        let shift_ends = available[available.partition_point(|&(_, e)| e <= a)..]
            .iter()
            .map(|&(_, e)| e)
            .take_while(|&e| e < b);
        let work_starts = busy[busy.partition_point(|&(s, _)| s <= a)..]
            .iter()
            .map(|&(s, _)| s)
            .take_while(|&s| s < b);
        let mut tried = None;
        for e in shift_ends.chain(work_starts).chain([b]) {
            let from = a.min(e - d).max(ready);
            if from > due || tried == Some(from) {
                continue;
            }
            tried = Some(from);
            let Some(t) = earliest(available, busy, from, d) else {
                continue;
            };
            let within = overlap(stops, t, d);
            if t <= due && (within > best.1 || within == best.1 && t < best.0) {
                best = (t, within);
            }
            if best.1 == d {
                break;
            }
        }
    }
    Some(best)
}

impl Problem {
    /// Places the tasks in `order`, each with the worker who can start it earliest (or, for a
    /// task whose asset has planned stops, most within them without being late).
    /// `genes[j]`: what the search chose for task `j` beside its place in the list.
    fn decode(&self, order: &[usize], genes: &[Gene]) -> (Cost, Vec<Option<(usize, i64)>>) {
        let mut busy = self.busy.clone();
        let mut placed = vec![None; self.ready.len()];
        let mut cost = Cost {
            weighted_late_ms: 0,
            outside_stops_ms: 0,
            weighted_end_ms: 0,
        };
        for &j in order {
            let d = self.duration[j];
            let stops = &self.stops[j];
            let mut best: Option<(i64, usize, i64)> = None;
            let who = match genes[j].worker {
                Some(w) => std::slice::from_ref(&self.eligible[j][w]),
                None => &self.eligible[j][..],
            };
            for &w in who {
                let ready = if genes[j].after_last {
                    // After the worker's last task so far: a gap is left for later ones.
                    busy[w]
                        .last()
                        .map_or(self.ready[j], |&(_, e)| e.max(self.ready[j]))
                } else {
                    self.ready[j]
                };
                let anytime = stops.is_empty() || genes[j].anytime;
                let found = if anytime {
                    earliest(&self.available[w], &busy[w], ready, d)
                        .map(|t| (t, overlap(stops, t, d)))
                } else {
                    into_stops(&self.available[w], &busy[w], stops, (ready, self.due[j], d))
                };
                // The least late, then (into the stops) the most within them, then the
                // earliest.
                let key = |(t, within): (i64, i64)| {
                    let within = if anytime { 0 } else { within };
                    ((t - self.due[j]).max(0), -within, t)
                };
                if let Some((t, within)) = found
                    && best.is_none_or(|(bt, _, bw)| key((t, within)) < key((bt, bw)))
                {
                    best = Some((t, w, within));
                }
            }
            let weight = i128::from(self.weight[j]);
            let outside = |within: i64| {
                if stops.is_empty() {
                    0
                } else {
                    i128::from(d - within)
                }
            };
            match best {
                Some((t, w, within)) => {
                    let at = busy[w].partition_point(|&(s, _)| s < t);
                    busy[w].insert(at, (t, t + d));
                    placed[j] = Some((w, t));
                    cost.weighted_late_ms += weight * i128::from((t - self.due[j]).max(0));
                    cost.outside_stops_ms += outside(within);
                    cost.weighted_end_ms += weight * i128::from(t + d);
                }
                None => {
                    cost.weighted_late_ms +=
                        weight * i128::from((self.left_out - self.due[j]).max(0));
                    cost.outside_stops_ms += outside(0);
                    cost.weighted_end_ms += weight * i128::from(self.left_out + d);
                }
            }
        }
        (cost, placed)
    }
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

/// Plans `tasks` over `workers`' working time until `horizon`.
pub fn plan(workers: &[Worker], tasks: &[Task], horizon: Timestamp, budget: Budget) -> Plan {
    let mut unplanned = Vec::new();
    let find = |name: &str| workers.iter().position(|w| w.name == name);
    // Tasks a person fixed take their technician's time first.
    let mut fixed_slots = Vec::new();
    let mut busy: Vec<Vec<(i64, i64)>> = workers
        .iter()
        .map(|w| w.busy.iter().map(|&(a, b)| (ms(a), ms(b))).collect())
        .collect();
    let duration: Vec<i64> = tasks
        .iter()
        .map(|t| t.duration.num_milliseconds().max(1))
        .collect();
    let skilled = |task: &Task, w: usize| {
        task.skill
            .as_deref()
            .map(normalise_skill)
            .is_none_or(|s| workers[w].skills.contains(&s))
    };
    let mut nobody_free = Vec::new();
    // Fixed starts with their technician first, then those whose technician is to be found
    // (by start): the first skilled crew member on shift and free for the whole job.
    let mut order: Vec<usize> = (0..tasks.len())
        .filter(|&j| tasks[j].fixed.is_some())
        .collect();
    order.sort_by_key(|&j| (tasks[j].technician.is_none(), tasks[j].fixed, j));
    for j in order {
        let (task, d) = (&tasks[j], duration[j]);
        let Some(start) = task.fixed else { continue };
        let (a, b) = (ms(start), ms(start).saturating_add(d));
        let w = match &task.technician {
            Some(name) => find(name),
            None => {
                let w = (0..workers.len()).find(|&w| {
                    skilled(task, w)
                        && workers[w]
                            .available
                            .iter()
                            .any(|&(s, e)| ms(s) <= a && b <= ms(e))
                        && busy[w].iter().all(|&(s, e)| b <= s || e <= a)
                });
                if w.is_none() {
                    nobody_free.push(j);
                }
                w
            }
        };
        if let Some(w) = w {
            busy[w].push((a, b));
            fixed_slots.push(Slot {
                task: j,
                worker: w,
                start,
                end: at(b),
                in_stops: chrono::Duration::zero(),
            });
        }
    }
    let eligible: Vec<Vec<usize>> = tasks
        .iter()
        .enumerate()
        .map(|(j, task)| {
            if fixed_slots.iter().any(|s| s.task == j) {
                return Vec::new();
            }
            if nobody_free.contains(&j) {
                unplanned.push((j, Unplanned::NobodyFreeThen));
                return Vec::new();
            }
            let who: Vec<usize> = match &task.technician {
                Some(name) => find(name).into_iter().collect(),
                None => {
                    let skill = task.skill.as_deref().map(normalise_skill);
                    (0..workers.len())
                        .filter(|&w| skill.as_ref().is_none_or(|s| workers[w].skills.contains(s)))
                        .collect()
                }
            };
            if who.is_empty() {
                unplanned.push((
                    j,
                    match (&task.technician, &task.skill) {
                        (Some(name), _) => Unplanned::UnknownTechnician(name.clone()),
                        _ if workers.is_empty() => Unplanned::NoCrew,
                        (None, Some(skill)) => Unplanned::NoSkill(normalise_skill(skill)),
                        (None, None) => Unplanned::NoCrew,
                    },
                ));
            }
            who
        })
        .collect();
    let stops: Vec<Vec<(i64, i64)>> = tasks
        .iter()
        .map(|t| {
            if t.while_running {
                Vec::new()
            } else {
                join_spans(t.stops.iter().map(|&(a, b)| (ms(a), ms(b))).collect())
            }
        })
        .collect();
    // The most of each task any start after it is ready could put within its stops: the
    // overlap is piecewise linear in the start, so it peaks where the work starts or ends at
    // a stop's edge (or at `ready`).
    let least_outside_ms = (0..tasks.len())
        .filter(|&j| !eligible[j].is_empty() && !stops[j].is_empty())
        .map(|j| {
            let (ready, d, s) = (ms(tasks[j].ready), duration[j], &stops[j]);
            let most = s
                .iter()
                .flat_map(|&(a, b)| [a, b, a.saturating_sub(d), b.saturating_sub(d)])
                .chain([ready])
                .map(|t| overlap(s, t.max(ready), d))
                .max()
                .unwrap_or(0);
            i128::from(d - most)
        })
        .sum();
    let problem = Problem {
        available: workers
            .iter()
            .map(|w| join_spans(w.available.iter().map(|&(a, b)| (ms(a), ms(b))).collect()))
            .collect(),
        busy: busy.into_iter().map(join_spans).collect(),
        ready: tasks.iter().map(|t| ms(t.ready)).collect(),
        due: tasks.iter().map(|t| ms(t.due)).collect(),
        duration,
        weight: tasks.iter().map(|t| weight(t.priority)).collect(),
        eligible,
        stops,
        least_outside_ms,
        left_out: ms(horizon).saturating_add(LEFT_OUT_AFTER_MS),
    };
    let (order, genes, evaluations, timed_out) = search(&problem, budget);
    let (_, placed) = problem.decode(&order, &genes);
    let mut slots: Vec<Slot> = placed
        .iter()
        .enumerate()
        .filter_map(|(j, p)| {
            p.map(|(w, t)| Slot {
                task: j,
                worker: w,
                start: at(t),
                end: at(t + problem.duration[j]),
                in_stops: chrono::Duration::zero(),
            })
        })
        .chain(fixed_slots)
        .collect();
    for s in &mut slots {
        let (t, d) = (ms(s.start), ms(s.end) - ms(s.start));
        s.in_stops = chrono::Duration::milliseconds(overlap(&problem.stops[s.task], t, d));
    }
    slots.sort_by_key(|s| (s.start, s.worker, s.task));
    for (j, p) in placed.iter().enumerate() {
        if p.is_none() && !problem.eligible[j].is_empty() {
            unplanned.push((j, Unplanned::NoTime));
        }
    }
    unplanned.sort_by_key(|(j, _)| *j);
    let weighted_late_ms: i128 = slots
        .iter()
        .map(|s| {
            i128::from(problem.weight[s.task])
                * i128::from((ms(s.start) - problem.due[s.task]).max(0))
        })
        .sum();
    let downtime_ms: i64 = slots
        .iter()
        .filter(|s| !tasks[s.task].while_running)
        .map(|s| (s.end - s.start - s.in_stops).num_milliseconds())
        .sum();
    Plan {
        slots,
        unplanned,
        weighted_late_hours: weighted_late_ms as f64 / 3_600_000.0,
        downtime_hours: downtime_ms as f64 / 3_600_000.0,
        evaluations,
        timed_out,
    }
}

/// A change the search tries.
#[derive(Clone, Copy, Debug)]
enum Move {
    /// The task at list position `from` moves to position `to`.
    Insert { from: usize, to: usize },
    /// Task `task` goes to its `worker`-th eligible worker (`None`: whoever starts earliest).
    Force { task: usize, worker: Option<usize> },
    /// Both: the task at `from` moves to `to` and goes to its `worker`-th eligible worker.
    Both {
        from: usize,
        to: usize,
        worker: usize,
    },
    /// The tasks at list positions `a` and `b` change places.
    Swap { a: usize, b: usize },
    /// Task `task` goes after its worker's last task so far, or (again) into the first gap.
    AfterLast { task: usize },
    /// Task `task` goes at its earliest start, or (again) into its asset's planned stops.
    Anytime { task: usize },
    /// Every task at its earliest start (`true`), or into its asset's planned stops.
    AllAnytime(bool),
}

/// What the search chose for a task beside its place in the list.
#[derive(Clone, Copy, Debug, Default)]
struct Gene {
    /// Which of its eligible workers it goes to (`None`: whoever can start it earliest).
    worker: Option<usize>,
    /// After the worker's last task placed before it, leaving earlier gaps for tasks later in
    /// the list (a gap a long task ahead needs, say), rather than into the first gap.
    after_last: bool,
    /// At its earliest start, rather than most within its asset's planned stops (a stop
    /// another task needs more, say).
    anytime: bool,
}

/// A point of the search: a priority list, the choices beside it, and what it decodes to.
#[derive(Clone)]
struct Point {
    order: Vec<usize>,
    genes: Vec<Gene>,
    cost: Cost,
    placed: Vec<Option<(usize, i64)>>,
}

/// The search's state: the problem and what is left of the budget.
struct Search<'a> {
    p: &'a Problem,
    budget: usize,
    evaluations: usize,
    deadline: Option<std::time::Instant>,
    timed_out: bool,
}

/// A group of moves the search tries together (the best of them is made), built only when
/// its turn comes: a large plan has millions of moves in all.
#[derive(Clone, Copy, Debug)]
enum Group {
    /// The late task at list position `i` to every earlier position.
    Forward(usize),
    /// The task to each of its other eligible workers (or back to whoever starts first).
    Reassign(usize),
    /// The late task at position `i` swapped with every other.
    SwapWith(usize),
    /// The late task at position `i` to every earlier position and every eligible worker.
    ForwardTo(usize),
    /// Every task after its worker's last one (or back into the first gap).
    AfterLast,
    /// Every task whose asset has planned stops at its earliest (or back into the stops),
    /// and all of them at once.
    Anytime,
    /// The task at position `a` swapped with every later one.
    SwapAfter(usize),
    /// The task at position `from` to every other position.
    Anywhere(usize),
}

impl Search<'_> {
    fn decode(&mut self, order: Vec<usize>, genes: Vec<Gene>) -> Point {
        self.evaluations += 1;
        let (cost, placed) = self.p.decode(&order, &genes);
        Point {
            order,
            genes,
            cost,
            placed,
        }
    }

    fn spent(&mut self) -> bool {
        if self.evaluations >= self.budget || self.timed_out {
            return true;
        }
        // The clock is read every 16 decodings: a decoding of a large plan is short.
        if self.evaluations.is_multiple_of(16)
            && self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
        {
            self.timed_out = true;
        }
        self.timed_out
    }

    /// Nothing left to gain that matters: no task late, none left out, none outside its
    /// asset's planned stops but for what no stop is long enough for.
    fn perfect(&self, at: &Point) -> bool {
        at.cost.weighted_late_ms == 0
            && at.cost.outside_stops_ms <= self.p.least_outside_ms
            && at.order.iter().all(|&j| at.placed[j].is_some())
    }

    /// `m` made to `order` and `genes`.
    fn apply(order: &mut Vec<usize>, genes: &mut [Gene], m: Move) {
        match m {
            Move::Insert { from, to } => {
                let j = order.remove(from);
                order.insert(to, j);
            }
            Move::Force { task, worker } => genes[task].worker = worker,
            Move::AfterLast { task } => genes[task].after_last = !genes[task].after_last,
            Move::Anytime { task } => genes[task].anytime = !genes[task].anytime,
            Move::AllAnytime(anytime) => genes.iter_mut().for_each(|g| g.anytime = anytime),
            Move::Both { from, to, worker } => {
                let j = order.remove(from);
                order.insert(to, j);
                genes[j].worker = Some(worker);
            }
            Move::Swap { a, b } => order.swap(a, b),
        }
    }

    /// The groups of moves to try from `at`, the most promising first: late (or left-out)
    /// tasks, the latest first, forward in the list, to another worker, swapped, forward to
    /// another worker; then tasks into or out of their assets' planned stops (all at once, or
    /// one); then any task to another worker or after its worker's last task; then any two
    /// tasks swapped, any task anywhere.
    fn groups(&self, at: &Point) -> Vec<Group> {
        let p = self.p;
        let n = at.order.len();
        let mut late: Vec<(i128, usize)> = at
            .order
            .iter()
            .enumerate()
            .filter_map(|(i, &j)| {
                let start = at.placed[j].map_or(p.left_out, |(_, t)| t);
                let lateness =
                    i128::from((start - p.due[j]).max(0)) + i128::from(at.placed[j].is_none());
                (lateness > 0).then_some((-(lateness * i128::from(p.weight[j])), i))
            })
            .collect();
        late.sort_unstable();
        let mut groups = Vec::with_capacity(4 * late.len() + 3 * n + 1);
        for &(_, i) in &late {
            groups.extend([
                Group::Forward(i),
                Group::Reassign(at.order[i]),
                Group::SwapWith(i),
                Group::ForwardTo(i),
            ]);
        }
        groups.extend(at.order.iter().map(|&j| Group::Reassign(j)));
        groups.push(Group::AfterLast);
        if at.order.iter().any(|&j| !p.stops[j].is_empty()) {
            groups.push(Group::Anytime);
        }
        groups.extend((0..n).map(Group::SwapAfter));
        groups.extend((0..n).map(Group::Anywhere));
        groups
    }

    /// The moves of `group` from `at`.
    fn moves(&self, at: &Point, group: Group) -> Vec<Move> {
        let p = self.p;
        let n = at.order.len();
        match group {
            Group::Forward(i) => (0..i).map(|to| Move::Insert { from: i, to }).collect(),
            Group::Reassign(j) => {
                let mut moves: Vec<Move> = (0..p.eligible[j].len())
                    .filter(|&w| at.genes[j].worker != Some(w))
                    .map(|w| Move::Force {
                        task: j,
                        worker: Some(w),
                    })
                    .collect();
                if at.genes[j].worker.is_some() {
                    moves.push(Move::Force {
                        task: j,
                        worker: None,
                    });
                }
                moves
            }
            Group::SwapWith(i) => (0..n)
                .filter(|&b| b != i)
                .map(|b| Move::Swap { a: i, b })
                .collect(),
            Group::ForwardTo(i) => {
                let workers = p.eligible[at.order[i]].len();
                (0..i)
                    .flat_map(|to| {
                        (0..workers).map(move |worker| Move::Both {
                            from: i,
                            to,
                            worker,
                        })
                    })
                    .collect()
            }
            Group::AfterLast => at
                .order
                .iter()
                .map(|&task| Move::AfterLast { task })
                .collect(),
            Group::Anytime => [true, false]
                .into_iter()
                // All at once only where that changes something.
                .filter(|&anytime| {
                    at.order
                        .iter()
                        .any(|&j| !p.stops[j].is_empty() && at.genes[j].anytime != anytime)
                })
                .map(Move::AllAnytime)
                .chain(
                    at.order
                        .iter()
                        .filter(|&&task| !p.stops[task].is_empty())
                        .map(|&task| Move::Anytime { task }),
                )
                .collect(),
            Group::SwapAfter(a) => (a + 1..n).map(|b| Move::Swap { a, b }).collect(),
            Group::Anywhere(from) => (0..n)
                .filter(|&to| to != from)
                .map(|to| Move::Insert { from, to })
                .collect(),
        }
    }

    /// From `at`, every task whose asset has planned stops into them at once, then each in
    /// turn, each change kept if it lowers the cost (one pass: a plan-sized descent over
    /// these moves would take the budget many times over).
    fn move_into_stops(&mut self, mut at: Point) -> Point {
        let p = self.p;
        let mut moves = vec![Move::AllAnytime(false)];
        moves.extend(
            at.order
                .iter()
                .filter(|&&j| !p.stops[j].is_empty())
                .map(|&task| Move::Anytime { task }),
        );
        for m in moves {
            if self.spent() {
                break;
            }
            let (mut order, mut genes) = (at.order.clone(), at.genes.clone());
            Self::apply(&mut order, &mut genes, m);
            let q = self.decode(order, genes);
            if q.cost < at.cost {
                at = q;
            }
        }
        at
    }

    /// From `at`, the best move of the first group that lowers the cost, again and again,
    /// until none does or the budget is spent.
    fn descend(&mut self, mut at: Point) -> Point {
        'improve: while !self.spent() {
            for group in self.groups(&at) {
                let mut found: Option<Point> = None;
                for m in self.moves(&at, group) {
                    if self.spent() {
                        break 'improve;
                    }
                    let (mut order, mut genes) = (at.order.clone(), at.genes.clone());
                    Self::apply(&mut order, &mut genes, m);
                    let q = self.decode(order, genes);
                    if q.cost < at.cost && found.as_ref().is_none_or(|f| q.cost < f.cost) {
                        found = Some(q);
                    }
                }
                if let Some(q) = found {
                    at = q;
                    continue 'improve;
                }
            }
            break;
        }
        at
    }
}

/// The best priority list (and choices beside it) found within `budget`: a descent from each
/// of three dispatch rules (earliest due; priority, then due; shortest weighted duration),
/// each with every task at its earliest and, given planned stops, into them (the best start
/// first), then, while the budget lasts, descents from the best plan shaken by a few random swaps (a
/// fixed seed: the same problem gets the same plan unless the time limit cuts the search).
/// Also returns the decodings made and whether the time limit was reached.
fn search(p: &Problem, budget: Budget) -> (Vec<usize>, Vec<Gene>, usize, bool) {
    let n = p.ready.len();
    let placeable: Vec<usize> = (0..n).filter(|&j| !p.eligible[j].is_empty()).collect();
    if placeable.is_empty() {
        return (placeable, vec![Gene::default(); n], 0, false);
    }
    // The dispatch rules' sort keys.
    type Rule = fn(&Problem, usize) -> (i64, i64, usize);
    let starts: [Rule; 3] = [
        |p, j| (p.due[j], -i64::from(p.weight[j]), j),
        |p, j| (-i64::from(p.weight[j]), p.due[j], j),
        |p, j| (p.duration[j] / i64::from(p.weight[j].max(1)), p.due[j], j),
    ];
    let mut search = Search {
        p,
        budget: budget.evaluations.max(1),
        evaluations: 0,
        deadline: budget.time.map(|t| std::time::Instant::now() + t),
        timed_out: false,
    };
    // Each rule's list with every task at its earliest start; then, when some tasks' assets
    // have planned stops, with those tasks into them (which may take time more urgent work
    // needs: the descents from the earliest starts come first, so the budget goes to
    // lateness first).
    let calendar = placeable.iter().any(|&j| !p.stops[j].is_empty());
    // With a calendar, the descents from the earliest starts get three fifths of the budget:
    // the rest goes to moving work into the stops.
    let (evaluations, deadline) = (search.budget, search.deadline);
    if calendar {
        search.budget = (evaluations / 5 * 3).max(1);
        search.deadline = budget.time.map(|t| std::time::Instant::now() + t / 5 * 3);
    }
    let mut cut = false;
    let mut best: Option<Point> = None;
    for anytime in [true, false].into_iter().take(1 + usize::from(calendar)) {
        for key in &starts {
            let mut order = placeable.clone();
            order.sort_by_key(|&j| key(p, j));
            let genes = vec![
                Gene {
                    anytime,
                    ..Gene::default()
                };
                n
            ];
            let start = search.decode(order, genes);
            let found = search.descend(start);
            if best.as_ref().is_none_or(|b| found.cost < b.cost) {
                best = Some(found);
            }
        }
        if anytime && calendar {
            // The first phase's time limit counts (said if it cut the search), not spent.
            cut = search.timed_out;
            (search.budget, search.deadline, search.timed_out) = (evaluations, deadline, false);
            if let Some(b) = best.take() {
                best = Some(search.move_into_stops(b));
            }
        }
    }
    let Some(mut best) = best else {
        return (
            placeable,
            vec![Gene::default(); n],
            search.evaluations,
            false,
        );
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ n as u64;
    let mut random = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below.max(1) as u64) as usize
    };
    let m = best.order.len();
    while m > 1 && !search.spent() && !search.perfect(&best) {
        let (mut order, genes) = (best.order.clone(), best.genes.clone());
        for _ in 0..2 + random(2) {
            let (a, b) = (random(m), random(m));
            order.swap(a, b);
        }
        let shaken = search.decode(order, genes);
        let found = search.descend(shaken);
        if found.cost < best.cost {
            best = found;
        }
    }
    (
        best.order,
        best.genes,
        search.evaluations,
        search.timed_out || cut,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn t0() -> Timestamp {
        "2026-12-07T00:00:00Z"
            .parse::<chrono::DateTime<Utc>>()
            .expect("time")
    }

    fn h(hours: f64) -> Timestamp {
        t0() + Duration::milliseconds((hours * 3_600_000.0) as i64)
    }

    /// The horizon of the tests' plans: two days.
    fn horizon() -> Timestamp {
        h(48.0)
    }

    fn worker(name: &str, skills: &[&str], shifts: &[(f64, f64)]) -> Worker {
        Worker {
            name: name.into(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            available: shifts.iter().map(|&(a, b)| (h(a), h(b))).collect(),
            busy: Vec::new(),
        }
    }

    fn task(due: f64, hours: f64, priority: Priority, skill: Option<&str>) -> Task {
        Task {
            ready: t0(),
            due: h(due),
            duration: Duration::milliseconds((hours * 3_600_000.0) as i64),
            priority,
            skill: skill.map(str::to_owned),
            technician: None,
            fixed: None,
            stops: Vec::new(),
            while_running: false,
        }
    }

    fn stops(spans: &[(f64, f64)]) -> Vec<(Timestamp, Timestamp)> {
        spans.iter().map(|&(a, b)| (h(a), h(b))).collect()
    }

    /// Of `t` placed at `start`, the milliseconds outside its stops (none without stops).
    fn outside(t: &Task, start: Option<i64>) -> i128 {
        if t.stops.is_empty() {
            return 0;
        }
        let d = t.duration.num_milliseconds();
        let spans = join_spans(t.stops.iter().map(|&(a, b)| (ms(a), ms(b))).collect());
        i128::from(d - start.map_or(0, |s| overlap(&spans, s, d)))
    }

    fn plan_of(workers: &[Worker], tasks: &[Task]) -> Plan {
        plan(
            workers,
            tasks,
            horizon(),
            Budget {
                evaluations: 3_000,
                time: None,
            },
        )
    }

    /// Every slot is within one shift of a worker who may do the task (a fixed one where it
    /// was fixed), after it is ready, overlapping nothing else of that worker.
    fn assert_feasible(workers: &[Worker], tasks: &[Task], plan: &Plan) {
        for s in &plan.slots {
            let (w, t) = (&workers[s.worker], &tasks[s.task]);
            assert_eq!(s.end - s.start, t.duration.max(Duration::milliseconds(1)));
            if let Some(fixed) = t.fixed {
                assert_eq!(s.start, fixed, "{s:?} moved");
            } else {
                assert!(s.start >= t.ready, "{s:?} before ready");
                assert!(
                    w.available.iter().any(|&(a, b)| a <= s.start && s.end <= b),
                    "{s:?} outside the shifts"
                );
            }
            // A person's fixed start is kept even over other work; the planner's never is.
            let free = t.fixed.is_none();
            assert!(!free || w.busy.iter().all(|&(a, b)| s.end <= a || b <= s.start));
            match (&t.technician, &t.skill) {
                (Some(name), _) => assert_eq!(&w.name, name),
                (None, Some(skill)) => assert!(w.skills.contains(skill)),
                _ => {}
            }
            for o in &plan.slots {
                if o.task != s.task
                    && o.worker == s.worker
                    && (free || tasks[o.task].fixed.is_none())
                {
                    assert!(o.end <= s.start || s.end <= o.start, "{s:?} overlaps {o:?}");
                }
            }
        }
        let mut seen: Vec<usize> = plan
            .slots
            .iter()
            .map(|s| s.task)
            .chain(plan.unplanned.iter().map(|(j, _)| *j))
            .collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..tasks.len()).collect::<Vec<_>>(),
            "every task once"
        );
    }

    /// The cost of `plan` as the planner defines it, computed from its slots.
    fn cost_of(tasks: &[Task], plan: &Plan) -> (i128, i128, i128) {
        let left_out = ms(horizon()) + LEFT_OUT_AFTER_MS;
        let mut cost = (0, 0, 0);
        for (j, t) in tasks.iter().enumerate() {
            let w = i128::from(weight(t.priority));
            let slot = plan.slots.iter().find(|s| s.task == j);
            let (start, end) = match slot {
                Some(s) => (ms(s.start), ms(s.end)),
                None => (left_out, left_out + t.duration.num_milliseconds()),
            };
            cost.0 += w * i128::from((start - ms(t.due)).max(0));
            cost.1 += outside(t, slot.map(|s| ms(s.start)));
            cost.2 += w * i128::from(end);
        }
        cost
    }

    /// The exact optimum, written independently of the planner: every assignment of the
    /// tasks to workers who may do them (or to none: left out) and every order on each
    /// worker, each task at the earliest start after its predecessor on the worker that lies
    /// within one shift and clear of the worker's fixed and busy time, or (a task whose asset
    /// has planned stops) the earliest such start from any one stop's start (from where it
    /// would end with the stop, for work longer than the stop).
    fn optimum(workers: &[Worker], tasks: &[Task]) -> (i128, i128, i128) {
        let n = tasks.len();
        let m = workers.len();
        let left_out = ms(horizon()) + LEFT_OUT_AFTER_MS;
        let may = |j: usize, w: usize| match (&tasks[j].technician, &tasks[j].skill) {
            (Some(name), _) => workers[w].name == *name,
            (None, Some(skill)) => workers[w].skills.contains(skill),
            _ => true,
        };
        // Each worker's blocked time: busy, and the fixed tasks.
        let blocked: Vec<Vec<(i64, i64)>> = (0..m)
            .map(|w| {
                let mut b: Vec<(i64, i64)> = workers[w]
                    .busy
                    .iter()
                    .map(|&(a, b)| (ms(a), ms(b)))
                    .collect();
                for t in tasks {
                    if let (Some(f), Some(name)) = (t.fixed, &t.technician)
                        && *name == workers[w].name
                    {
                        b.push((ms(f), ms(f) + t.duration.num_milliseconds()));
                    }
                }
                b
            })
            .collect();
        // The first start ≥ `from` of a `d`-long stretch inside a shift, clear of `blocked`:
        // tried at `from` and at every end of a blocked stretch or start of a shift after it.
        let fit = |w: usize, from: i64, d: i64| -> Option<i64> {
            let mut candidates: Vec<i64> = vec![from];
            candidates.extend(blocked[w].iter().map(|&(_, e)| e).filter(|&e| e > from));
            candidates.extend(
                workers[w]
                    .available
                    .iter()
                    .map(|&(a, _)| ms(a))
                    .filter(|&a| a > from),
            );
            candidates.sort_unstable();
            candidates.into_iter().find(|&t| {
                workers[w]
                    .available
                    .iter()
                    .any(|&(a, b)| ms(a) <= t && t + d <= ms(b))
                    && blocked[w].iter().all(|&(s, e)| t + d <= s || e <= t)
            })
        };
        let free: Vec<usize> = (0..n).filter(|&j| tasks[j].fixed.is_none()).collect();
        let mut best: Option<(i128, i128, i128)> = None;
        // Fixed tasks cost the same in every plan.
        let mut fixed_cost = (0i128, 0i128, 0i128);
        for t in tasks.iter().filter(|t| t.fixed.is_some()) {
            let (wt, f) = (i128::from(weight(t.priority)), t.fixed.map_or(0, ms));
            fixed_cost.0 += wt * i128::from((f - ms(t.due)).max(0));
            fixed_cost.1 += outside(t, Some(f));
            fixed_cost.2 += wt * i128::from(f + t.duration.num_milliseconds());
        }
        // Where each free task may be started from besides its earliest: each stop's start,
        // or where it would end with the stop.
        let froms: Vec<Vec<i64>> = free
            .iter()
            .map(|&j| {
                let d = tasks[j].duration.num_milliseconds();
                tasks[j]
                    .stops
                    .iter()
                    .map(|&(a, b)| ms(a).min(ms(b) - d))
                    .collect()
            })
            .collect();
        let ways: Vec<usize> = froms.iter().map(|f| 1 + f.len()).collect();
        let choices = m + 1; // a worker, or left out
        let mut assign = vec![0usize; free.len()];
        let mut perm: Vec<usize> = (0..free.len()).collect();
        fn permutations(k: usize, perm: &mut Vec<usize>, out: &mut dyn FnMut(&[usize])) {
            if k == perm.len() {
                out(perm);
                return;
            }
            for i in k..perm.len() {
                perm.swap(k, i);
                permutations(k + 1, perm, out);
                perm.swap(k, i);
            }
        }
        for code in 0..choices.pow(free.len() as u32) {
            let mut c = code;
            for a in assign.iter_mut() {
                *a = c % choices;
                c /= choices;
            }
            if (0..free.len()).any(|k| assign[k] < m && !may(free[k], assign[k])) {
                continue;
            }
            permutations(0, &mut perm, &mut |order| {
                // Every choice of where each task is started from.
                let combinations: usize = ways.iter().product();
                for mut code in 0..combinations {
                    let mut after = vec![i64::MIN; m];
                    let mut cost = fixed_cost;
                    for &k in order {
                        let (j, w) = (free[k], assign[k]);
                        let way = code % ways[k];
                        code /= ways[k];
                        let t = &tasks[j];
                        let (d, wt) = (
                            t.duration.num_milliseconds(),
                            i128::from(weight(t.priority)),
                        );
                        let start = (w < m)
                            .then(|| {
                                let from = ms(t.ready).max(after[w]);
                                match way {
                                    0 => fit(w, from, d),
                                    way => fit(w, from.max(froms[k][way - 1]), d),
                                }
                            })
                            .flatten();
                        if let Some(s) = start {
                            after[w] = s + d;
                        }
                        cost.0 += wt * i128::from((start.unwrap_or(left_out) - ms(t.due)).max(0));
                        cost.1 += outside(t, start);
                        cost.2 += wt * i128::from(start.unwrap_or(left_out) + d);
                    }
                    if best.is_none_or(|b| cost < b) {
                        best = Some(cost);
                    }
                }
            });
        }
        best.expect("leaving everything out is a plan")
    }

    /// The cost of the plan of `tasks` and the exhaustive search's, the plan checked feasible
    /// and its lateness no lower than the search's (the least there is: some plan of least
    /// lateness starts every task at its earliest, which the search tries).
    fn against_optimum(
        workers: &[Worker],
        tasks: &[Task],
    ) -> ((i128, i128, i128), (i128, i128, i128)) {
        let plan = plan_of(workers, tasks);
        assert_feasible(workers, tasks, &plan);
        let (found, best) = (cost_of(tasks, &plan), optimum(workers, tasks));
        assert!(
            found.0 >= best.0,
            "less late than the optimum: {found:?} < {best:?}"
        );
        (found, best)
    }

    /// A small deterministic generator (xorshift), so that the instances are the same on
    /// every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn the_urgent_order_goes_first_and_each_to_a_technician_with_its_skill() {
        let workers = [
            worker("ana", &["electrical"], &[(6.0, 14.0), (30.0, 38.0)]),
            worker("ben", &["mechanical"], &[(6.0, 14.0), (30.0, 38.0)]),
        ];
        let tasks = [
            task(24.0, 4.0, Priority::Normal, Some("electrical")),
            task(8.0, 3.0, Priority::Urgent, Some("electrical")),
            task(24.0, 2.0, Priority::High, Some("mechanical")),
            task(24.0, 1.0, Priority::Low, Some("hydraulics")),
            task(24.0, 9.0, Priority::Low, None),
        ];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let slot = |j: usize| plan.slots.iter().find(|s| s.task == j).expect("placed");
        assert_eq!((slot(1).worker, slot(1).start), (0, h(6.0)), "urgent first");
        assert_eq!((slot(0).worker, slot(0).start), (0, h(9.0)));
        assert_eq!((slot(2).worker, slot(2).start), (1, h(6.0)));
        assert_eq!(
            plan.unplanned,
            [
                (3, Unplanned::NoSkill("hydraulics".into())),
                // Nine hours fit in no eight-hour shift.
                (4, Unplanned::NoTime),
            ]
        );
        assert_eq!(plan.weighted_late_hours, 0.0);
        assert!(!plan.timed_out);
        let nobody = super::plan(&[], &tasks[..1], horizon(), Budget::default());
        assert_eq!(nobody.unplanned, [(0, Unplanned::NoCrew)]);
    }

    #[test]
    fn work_in_progress_fixed_starts_and_assigned_technicians_are_kept() {
        let mut ana = worker("ana", &["electrical"], &[(0.0, 8.0)]);
        ana.busy = vec![(h(0.0), h(2.0))];
        let workers = [ana, worker("ben", &["electrical"], &[(0.0, 8.0)])];
        let mut assigned = task(1.0, 1.0, Priority::Urgent, Some("electrical"));
        assigned.technician = Some("ana".into());
        let mut gone = task(1.0, 1.0, Priority::Low, None);
        gone.technician = Some("carl".into());
        let mut later = task(8.0, 1.0, Priority::Normal, None);
        later.ready = h(5.5);
        // Ben's, fixed by a person at 03:00 (outside no shift, but it would be kept anyway).
        let mut fixed = task(8.0, 2.0, Priority::Low, None);
        (fixed.technician, fixed.fixed) = (Some("ben".into()), Some(h(3.0)));
        let tasks = [assigned, gone, later, fixed];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let slot = |j: usize| plan.slots.iter().find(|s| s.task == j).expect("placed");
        assert_eq!(
            (slot(0).worker, slot(0).start),
            (0, h(2.0)),
            "after ana's work in progress, though ben is free"
        );
        assert_eq!(slot(2).start, h(5.5), "not before it is ready");
        assert_eq!((slot(3).worker, slot(3).start), (1, h(3.0)), "kept");
        assert_eq!(
            plan.unplanned,
            [(1, Unplanned::UnknownTechnician("carl".into()))]
        );
        assert!(
            (plan.weighted_late_hours - 8.0).abs() < 1e-9,
            "urgent, 1 h late"
        );
    }

    /// A start set by hand without a technician goes to the first skilled crew member free on
    /// shift then; nobody free: left out and said so.
    #[test]
    fn a_start_set_by_hand_finds_a_technician_free_then() {
        let mut ana = worker("ana", &["electrical"], &[(0.0, 8.0)]);
        ana.busy = vec![(h(2.0), h(3.0))];
        let workers = [
            ana,
            worker("ben", &["electrical"], &[(0.0, 8.0)]),
            worker("cem", &["mechanical"], &[(0.0, 8.0)]),
        ];
        let mut first = task(8.0, 1.0, Priority::Normal, Some("electrical"));
        first.fixed = Some(h(2.5));
        let mut second = task(8.0, 1.0, Priority::Normal, Some("electrical"));
        second.fixed = Some(h(2.5));
        let mut off_shift = task(8.0, 1.0, Priority::Normal, Some("mechanical"));
        off_shift.fixed = Some(h(7.5));
        let tasks = [first, second, off_shift];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let slot = |j: usize| plan.slots.iter().find(|s| s.task == j).expect("placed");
        assert_eq!(
            (slot(0).worker, slot(0).start),
            (1, h(2.5)),
            "ana is busy then"
        );
        assert_eq!(
            plan.unplanned,
            [
                (1, Unplanned::NobodyFreeThen),
                (2, Unplanned::NobodyFreeThen),
            ],
            "ben taken by the first; cem's shift ends at 8"
        );
    }

    #[test]
    fn short_orders_fill_the_gaps_the_long_ones_leave() {
        let workers = [worker("ana", &[], &[(0.0, 4.0), (8.0, 16.0)])];
        // The long one fits only the second shift; the short ones go before it.
        let tasks = [
            task(8.0, 6.0, Priority::High, None),
            task(20.0, 2.0, Priority::Low, None),
            task(20.0, 2.0, Priority::Low, None),
        ];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let starts: Vec<_> = plan.slots.iter().map(|s| (s.task, s.start)).collect();
        assert_eq!(starts, [(1, h(0.0)), (2, h(2.0)), (0, h(8.0))]);
    }

    /// Work due beyond the horizon waits rather than make urgent work late: the urgent order
    /// takes the first shift's start; one of the two long low-priority ones, due next week,
    /// is left for a later plan (placing both would push the urgent one to the next day).
    #[test]
    fn work_due_beyond_the_horizon_does_not_make_urgent_work_late() {
        let workers = [worker("ana", &[], &[(8.0, 16.0), (32.0, 44.0)])];
        let tasks = [
            task(8.0, 4.0, Priority::Urgent, None),
            task(168.0, 8.0, Priority::Low, None),
            task(168.0, 8.0, Priority::Low, None),
        ];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let urgent = plan.slots.iter().find(|s| s.task == 0).expect("placed");
        assert_eq!(urgent.start, h(8.0));
        assert_eq!(plan.weighted_late_hours, 0.0);
        assert_eq!(plan.slots.len(), 2);
        assert_eq!(plan.unplanned.len(), 1);
    }

    /// The search against the exact optimum on 300 small random plans (work in progress,
    /// assigned technicians, fixed starts, orders too long for any shift among them): never
    /// better than the optimum (it cannot be), and equal to it on almost all.
    #[test]
    fn the_search_finds_the_optimum_of_small_plans() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let priorities = [
            Priority::Urgent,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ];
        let skills = ["electrical", "mechanical"];
        let (mut exact, mut exact_both, mut total, mut worst) = (0, 0, 0, 0.0f64);
        for _ in 0..300 {
            let m = 1 + rng.below(3) as usize;
            let workers: Vec<Worker> = (0..m)
                .map(|w| {
                    let mut own = vec![skills[w % 2]];
                    if rng.below(2) == 0 {
                        own.push(skills[(w + 1) % 2]);
                    }
                    let first = rng.below(4) as f64;
                    let mut worker = worker(
                        &format!("w{w}"),
                        &own,
                        &[(first, first + 8.0), (first + 24.0, first + 32.0)],
                    );
                    if rng.below(4) == 0 {
                        let from = rng.below(8) as f64;
                        worker.busy = vec![(h(from), h(from + 1.5))];
                    }
                    worker
                })
                .collect();
            let n = 3 + rng.below(if m == 3 { 2 } else { 3 }) as usize;
            let tasks: Vec<Task> = (0..n)
                .map(|_| {
                    let mut t = task(
                        1.0 + rng.below(60) as f64,
                        0.5 * (1 + rng.below(18)) as f64,
                        priorities[rng.below(4) as usize],
                        (rng.below(3) != 0).then(|| skills[rng.below(2) as usize]),
                    );
                    t.ready = h(rng.below(6) as f64);
                    match rng.below(10) {
                        0 => t.technician = Some(format!("w{}", rng.below(m as u64 + 1))),
                        1 => {
                            t.technician = Some(format!("w{}", rng.below(m as u64)));
                            t.fixed = Some(h(rng.below(30) as f64));
                        }
                        _ => {}
                    }
                    t
                })
                .collect();
            let (found, best) = against_optimum(&workers, &tasks);
            // Without stops the search is exact: nothing does better.
            assert!(
                found >= best,
                "better than the optimum: {found:?} < {best:?}"
            );
            total += 1;
            if found == best {
                exact_both += 1;
            }
            if found.0 == best.0 {
                exact += 1;
            } else {
                worst = worst.max((found.0 - best.0) as f64 / 3_600_000.0);
            }
        }
        eprintln!(
            "optimal lateness on {exact}/{total} plans (lateness and finishing times both: {exact_both}); worst gap {worst:.2} weighted hours"
        );
        assert!(
            exact * 100 >= total * 99,
            "{exact}/{total}, worst gap {worst}"
        );
        assert!(exact_both * 100 >= total * 97, "{exact_both}/{total}");
    }

    /// An order that can wait for its asset's planned stop without being late waits for it;
    /// one due before the stop is done at once; one without stops at its earliest; one longer
    /// than its stop overruns it as little as it can, as early as it can.
    #[test]
    fn work_waits_for_its_assets_planned_stop_when_it_can_without_being_late() {
        let workers = [
            worker("ana", &["mechanical"], &[(6.0, 14.0), (30.0, 38.0)]),
            worker("ben", &["electrical"], &[(6.0, 14.0), (30.0, 38.0)]),
        ];
        let mut waits = task(40.0, 3.0, Priority::Normal, Some("mechanical"));
        waits.stops = stops(&[(32.0, 36.0)]);
        let mut due_first = task(10.0, 3.0, Priority::High, Some("mechanical"));
        due_first.stops = stops(&[(32.0, 36.0)]);
        let no_stops = task(40.0, 2.0, Priority::Low, Some("mechanical"));
        // Six hours against a half-hour lunch break: ending with the first one.
        let mut longer = task(40.0, 6.0, Priority::Normal, Some("electrical"));
        longer.stops = stops(&[(13.0, 13.5), (37.0, 37.5)]);
        // An inspection of the running machine: after the longer one, and no downtime.
        let mut inspection = task(40.0, 1.0, Priority::Low, Some("electrical"));
        (inspection.stops, inspection.while_running) = (stops(&[(32.0, 36.0)]), true);
        let tasks = [waits, due_first, no_stops, longer, inspection];
        let plan = plan_of(&workers, &tasks);
        assert_feasible(&workers, &tasks, &plan);
        let slot = |j: usize| plan.slots.iter().find(|s| s.task == j).expect("placed");
        let hours = |d: chrono::Duration| d.num_milliseconds() as f64 / 3_600_000.0;
        assert_eq!((slot(0).start, hours(slot(0).in_stops)), (h(32.0), 3.0));
        assert_eq!((slot(1).start, hours(slot(1).in_stops)), (h(6.0), 0.0));
        assert_eq!((slot(2).start, hours(slot(2).in_stops)), (h(9.0), 0.0));
        assert_eq!((slot(3).start, hours(slot(3).in_stops)), (h(7.5), 0.5));
        assert_eq!((slot(4).start, hours(slot(4).in_stops)), (h(6.0), 0.0));
        assert_eq!(plan.weighted_late_hours, 0.0);
        assert!(
            (plan.downtime_hours - 10.5).abs() < 1e-9,
            "{}",
            plan.downtime_hours
        );
        // Without stops, the same orders go at their earliest.
        let plain: Vec<Task> = tasks
            .iter()
            .cloned()
            .map(|mut t| {
                t.stops.clear();
                t
            })
            .collect();
        let plan = plan_of(&workers, &plain);
        let starts: Vec<_> = plan.slots.iter().map(|s| (s.task, s.start)).collect();
        assert_eq!(
            starts,
            [
                (1, h(6.0)),
                (4, h(6.0)),
                (3, h(7.0)),
                (0, h(9.0)),
                (2, h(12.0))
            ],
            "due first, then the weighted finishing times"
        );
        assert!((plan.downtime_hours - 14.0).abs() < 1e-9);
    }

    /// Work longer than what it can have of a stop ends with the technician's shift, or with
    /// their next job, within the stop when that overlaps it most.
    #[test]
    fn work_overlaps_a_stop_up_to_the_shifts_end_or_the_next_job() {
        let hours = |d: chrono::Duration| d.num_milliseconds() as f64 / 3_600_000.0;
        // The stop runs past the shift's end at 14: 11–14 has two hours of it.
        let workers = [worker("ana", &[], &[(6.0, 14.0)])];
        let mut t = task(40.0, 3.0, Priority::Normal, None);
        t.stops = stops(&[(12.0, 16.0)]);
        let plan = plan_of(&workers, std::slice::from_ref(&t));
        assert_eq!(
            (plan.slots[0].start, hours(plan.slots[0].in_stops)),
            (h(11.0), 2.0)
        );
        // Work in progress 12–13 within the stop 10–14: 9–12 has two hours of it, 13–16 one.
        let mut ben = worker("ben", &[], &[(6.0, 20.0)]);
        ben.busy = vec![(h(12.0), h(13.0))];
        t.stops = stops(&[(10.0, 14.0)]);
        let plan = plan_of(&[ben], std::slice::from_ref(&t));
        assert_eq!(
            (plan.slots[0].start, hours(plan.slots[0].in_stops)),
            (h(9.0), 2.0)
        );
    }

    /// The search against the exact optimum on small random plans whose orders' assets have
    /// planned stops (or not), as the plain one above.
    #[test]
    fn the_search_finds_the_optimum_of_small_plans_with_planned_stops() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let priorities = [
            Priority::Urgent,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ];
        let (mut exact, mut exact_outside, mut exact_all, mut total) = (0, 0, 0, 0);
        for _ in 0..150 {
            let m = 1 + rng.below(2) as usize;
            let workers: Vec<Worker> = (0..m)
                .map(|w| {
                    let first = rng.below(4) as f64;
                    worker(
                        &format!("w{w}"),
                        &[],
                        &[(first, first + 8.0), (first + 24.0, first + 32.0)],
                    )
                })
                .collect();
            // Two assets' calendars: a stop or two of half an hour to five hours.
            let calendars: Vec<Vec<(Timestamp, Timestamp)>> = (0..2)
                .map(|_| {
                    (0..1 + rng.below(2))
                        .map(|_| {
                            let from = rng.below(72) as f64 * 0.5;
                            (h(from), h(from + 0.5 * (1 + rng.below(10)) as f64))
                        })
                        .collect()
                })
                .collect();
            let n = 3 + rng.below(2) as usize;
            let tasks: Vec<Task> = (0..n)
                .map(|_| {
                    let mut t = task(
                        1.0 + rng.below(48) as f64,
                        0.5 * (1 + rng.below(12)) as f64,
                        priorities[rng.below(4) as usize],
                        None,
                    );
                    t.ready = h(rng.below(6) as f64);
                    match rng.below(5) {
                        0 => {}
                        1 | 2 => t.stops = calendars[0].clone(),
                        _ => t.stops = calendars[1].clone(),
                    }
                    if rng.below(10) == 0 {
                        t.technician = Some(format!("w{}", rng.below(m as u64)));
                        t.fixed = Some(h(rng.below(30) as f64));
                    }
                    t
                })
                .collect();
            let (found, best) = against_optimum(&workers, &tasks);
            // With stops, the exhaustive search tries the starts from a stop's start or end only
            // (the planner, also those ending with a shift or the next job within a stop): it
            // may do better on the time outside the stops, never on lateness.
            total += 1;
            exact += usize::from(found.0 == best.0);
            exact_outside += usize::from((found.0, found.1) <= (best.0, best.1));
            exact_all += usize::from(found <= best);
        }
        eprintln!(
            "optimal lateness on {exact}/{total} plans; as good as the exhaustive search on the time outside the stops too: {exact_outside}, and on the finishing times too: {exact_all}"
        );
        assert!(exact * 100 >= total * 99, "{exact}/{total}");
        assert!(exact_outside * 100 >= total * 97, "{exact_outside}/{total}");
        assert!(exact_all * 100 >= total * 90, "{exact_all}/{total}");
    }

    #[test]
    fn estimates_come_from_the_asset_type_then_the_cause() {
        let e = Estimates::builtin().expect("built-in planning.toml");
        assert_eq!(e.skill("motor"), Some("electrical"));
        assert!(e.hours("nothing-known", "nothing-known") > 0.0);
        let e = Estimates::parse(
            "default_hours = 2\n[causes.rul]\nhours = 4\n[causes.Inspection]\nhours = 1\nwhile_running = true\n[asset_types.pump]\nskill = \" Mechanical\"\nhours = { rul = 6 }\n",
        )
        .expect("valid");
        assert!(e.while_running("inspection") && e.while_running("INSPECTION"));
        assert!(!e.while_running("rul") && !e.while_running("anything else"));
        assert_eq!(e.hours("pump", "rul"), 6.0);
        assert_eq!(e.hours("Pump", "RUL"), 6.0, "in lower case");
        assert_eq!(e.hours("fan", "rul"), 4.0);
        assert_eq!(e.hours("pump", "anomaly"), 2.0);
        assert_eq!(e.skill("pump"), Some("mechanical"));
        for (text, named) in [
            ("default_hours = 0", "default_hours"),
            (
                "default_hours = 1\n[causes.rul]\nhours = 400",
                "causes.rul.hours",
            ),
            (
                "default_hours = 1\n[asset_types.fan]\nskill = \" \"",
                "asset_types.fan.skill",
            ),
            ("default_hours = 1\nhours = 2", "unknown field"),
            (
                "default_hours = 1\n[asset_types.pump]\nparts = { rul = [\"BRG 6204 x2\"] }",
                "part number",
            ),
            (
                "default_hours = 1\n[asset_types.pump]\nparts = { rul = [\"BRG-6204 x0\"] }",
                "quantity",
            ),
            (
                "default_hours = 1\n[asset_types.pump]\nparts = { rul = [\"BRG-6204 xtwo\"] }",
                "whole number",
            ),
            (
                "default_hours = 1\n[asset_types.pump]\nparts = { rul = [\"A\"], RUL = [\"B\"] }",
                "twice",
            ),
            (
                "default_hours = 1\n[asset_types.pump]\nskill = \"a\"\n[asset_types.Pump]\nskill = \"b\"",
                "asset_types lists `pump` twice",
            ),
        ] {
            let message = Estimates::parse(text).expect_err(named).to_string();
            assert!(message.contains(named), "{named}: {message}");
        }
    }

    #[test]
    fn kits_list_the_parts_a_kind_of_work_takes() {
        let e = Estimates::parse(
            "default_hours = 2\n[asset_types.Pump]\nparts = { RUL = [\" SEAL-12 x2 \", \"BRG-6204\", \"GREASE-EP2 ×3\"] }\n",
        )
        .expect("valid");
        let kit: Vec<(&str, u32)> = e
            .kit("pump", "rul")
            .iter()
            .map(|p| (p.part_number.as_str(), p.quantity))
            .collect();
        assert_eq!(kit, [("SEAL-12", 2), ("BRG-6204", 1), ("GREASE-EP2", 3)]);
        assert_eq!(e.kit("PUMP", "Rul").len(), 3, "in lower case");
        assert!(e.kit("pump", "anomaly").is_empty());
        assert!(e.kit("fan", "rul").is_empty());
        assert!(
            Estimates::builtin()
                .expect("built-in")
                .kit("pump", "rul")
                .is_empty(),
            "the shipped rules list no parts: the plant's own part numbers go there"
        );
    }
}
