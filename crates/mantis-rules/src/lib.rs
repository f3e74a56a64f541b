//! # mantis-rules
//!
//! The decision logic of MANTIS as data: the asset criticality matrix (thresholds, response
//! times) and the routing rules that turn anomalies and RUL predictions into alerts, work orders
//! and scheduled maintenance. Both are TOML files in the workspace's `rules/` directory
//! (`criticality.toml`, `routing.toml`), editable without recompiling; the files shipped in the
//! repository are also compiled in as defaults for when no directory is configured.
//!
//! ```
//! use mantis_domain::Criticality;
//! use mantis_rules::{Event, RuleSet};
//! let rules = RuleSet::builtin().unwrap();
//! let d = rules.evaluate(&Event::Anomaly { criticality: Criticality::Critical, score: 0.9 });
//! assert!(d.alert && d.notify_on_call);
//! assert_eq!(d.work_order.unwrap().cause, "anomaly");
//! ```

pub mod parts;
pub mod plan;

use mantis_domain::{Criticality, Priority};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUILTIN_CRITICALITY: &str = include_str!("../../../rules/criticality.toml");
const BUILTIN_ROUTING: &str = include_str!("../../../rules/routing.toml");

/// Errors loading rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rules file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A rules file is not valid TOML of the expected shape.
    #[error("invalid rules in {file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The rules are well-formed but inconsistent.
    #[error("invalid rules: {0}")]
    Invalid(String),
}

/// The longest response time a criticality level may set, in hours (a year).
pub const MAX_RESPONSE_HOURS: u64 = 8_760;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Thresholds and response time of one criticality level.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalityPolicy {
    /// Anomaly score in [0,1] at or above which an anomaly is raised.
    pub anomaly_threshold: f64,
    /// RUL (cycles) below which maintenance is scheduled.
    pub rul_threshold_cycles: f64,
    /// A work order must be started within this many hours.
    pub max_response_hours: u64,
    /// Whether anomalies page the on-call technician.
    #[serde(default)]
    pub notify_on_call: bool,
}

impl CriticalityPolicy {
    /// The maximum response time.
    pub fn max_response(&self) -> Duration {
        Duration::from_secs(self.max_response_hours * 3600)
    }
}

/// The event kinds rules fire on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An anomaly score.
    Anomaly,
    /// A RUL prediction.
    Rul,
}

/// Conditions a rule may test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Anomaly score ≥ the asset's anomaly threshold.
    ScoreAboveThreshold,
    /// RUL < the asset's RUL threshold.
    RulBelowThreshold,
    /// Always.
    Always,
}

/// Actions a rule may request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Raise an alert on `alerts.critical`.
    Alert,
    /// Open (or keep) the active work order for the asset and cause.
    WorkOrder,
    /// Publish on `maintenance.scheduled`.
    ScheduleMaintenance,
    /// Flag the alert for the on-call technician.
    NotifyOnCall,
}

/// What kind of work order a rule opens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderTemplate {
    /// The cause: at most one active work order per asset and cause.
    pub cause: String,
    /// Its priority.
    #[serde(deserialize_with = "de_priority")]
    pub priority: Priority,
}

fn de_priority<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    let s = String::deserialize(d)?;
    Priority::parse(&s).map_err(serde::de::Error::custom)
}

/// One routing rule.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name, recorded on the work orders it opens.
    pub name: String,
    /// The event kind it fires on.
    pub event: EventKind,
    /// Its condition.
    pub when: Condition,
    /// Only for these criticalities (empty: all).
    #[serde(default)]
    pub criticality: Vec<String>,
    /// What to do.
    pub actions: Vec<Action>,
    /// Required when `actions` has `work_order`.
    #[serde(default)]
    pub work_order: Option<WorkOrderTemplate>,
    /// Disabled rules are loaded but never fire.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// An event to evaluate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// An anomaly score of an asset.
    Anomaly {
        /// The asset's criticality.
        criticality: Criticality,
        /// Score in [0,1].
        score: f64,
    },
    /// A RUL prediction of an asset.
    Rul {
        /// The asset's criticality.
        criticality: Criticality,
        /// Remaining cycles.
        rul_cycles: f64,
    },
}

impl Event {
    fn kind(&self) -> EventKind {
        match self {
            Event::Anomaly { .. } => EventKind::Anomaly,
            Event::Rul { .. } => EventKind::Rul,
        }
    }
    fn criticality(&self) -> Criticality {
        match self {
            Event::Anomaly { criticality, .. } | Event::Rul { criticality, .. } => *criticality,
        }
    }
}

/// A work order requested by the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkOrderRequest {
    /// Its cause.
    pub cause: String,
    /// Its priority (the most urgent among the matching rules).
    pub priority: Priority,
    /// The rule that requested it.
    pub rule: String,
    /// Due within this time of creation (the criticality's max response).
    pub due_within: Duration,
}

/// The combined outcome of every rule that matched an event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Names of the rules that matched.
    pub matched: Vec<String>,
    /// Raise an alert.
    pub alert: bool,
    /// Open a work order.
    pub work_order: Option<WorkOrderRequest>,
    /// Publish scheduled maintenance.
    pub schedule_maintenance: bool,
    /// Page the on-call technician.
    pub notify_on_call: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriticalityFile {
    criticality: BTreeMap<String, CriticalityPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    rules: Vec<Rule>,
}

/// The loaded, validated rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    policies: BTreeMap<Criticality, CriticalityPolicy>,
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The rules shipped in the repository's `rules/` directory, compiled in.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_CRITICALITY, BUILTIN_ROUTING)
    }

    /// Loads `criticality.toml` and `routing.toml` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.as_ref().join(name);
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
        };
        let rules = Self::parse(&read("criticality.toml")?, &read("routing.toml")?)?;
        tracing::info!(dir = %dir.as_ref().display(), rules = rules.rules.len(), "loaded rules");
        Ok(rules)
    }

    /// The text of `criticality.toml` and `routing.toml`: from `dir` when given, the built-in
    /// ones otherwise; validated like [`RuleSet::parse`] (for showing the rules in effect).
    pub fn sources(dir: Option<&Path>) -> Result<(String, String)> {
        let (criticality, routing) = match dir {
            Some(d) => {
                let read = |name: &str| {
                    let path = d.join(name);
                    std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
                };
                (read("criticality.toml")?, read("routing.toml")?)
            }
            None => (BUILTIN_CRITICALITY.to_owned(), BUILTIN_ROUTING.to_owned()),
        };
        Self::parse(&criticality, &routing)?;
        Ok((criticality, routing))
    }

    /// Loads from `dir` when given, the built-in rules otherwise.
    pub fn load_or_builtin(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(d) => Self::load(d),
            None => Self::builtin(),
        }
    }

    /// Parses the two files' contents and validates them.
    pub fn parse(criticality_toml: &str, routing_toml: &str) -> Result<Self> {
        let cf: CriticalityFile = toml::from_str(criticality_toml).map_err(|e| Error::Parse {
            file: "criticality.toml".into(),
            message: e.to_string(),
        })?;
        let rf: RoutingFile = toml::from_str(routing_toml).map_err(|e| Error::Parse {
            file: "routing.toml".into(),
            message: e.to_string(),
        })?;
        let mut policies = BTreeMap::new();
        for (name, policy) in cf.criticality {
            let level = Criticality::parse(&name).map_err(|e| Error::Invalid(e.to_string()))?;
            if !(0.0..=1.0).contains(&policy.anomaly_threshold) {
                return Err(Error::Invalid(format!(
                    "anomaly_threshold of {name} must be within [0, 1], got {}",
                    policy.anomaly_threshold
                )));
            }
            if !(policy.rul_threshold_cycles.is_finite() && policy.rul_threshold_cycles >= 0.0) {
                return Err(Error::Invalid(format!(
                    "rul_threshold_cycles of {name} must be a non-negative number"
                )));
            }
            if !(1..=MAX_RESPONSE_HOURS).contains(&policy.max_response_hours) {
                return Err(Error::Invalid(format!(
                    "max_response_hours of {name} must be within 1..={MAX_RESPONSE_HOURS} (a year), got {}",
                    policy.max_response_hours
                )));
            }
            policies.insert(level, policy);
        }
        for level in Criticality::ALL {
            if !policies.contains_key(&level) {
                return Err(Error::Invalid(format!(
                    "criticality.toml has no entry for {level}"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for rule in &rf.rules {
            if !names.insert(rule.name.as_str()) {
                return Err(Error::Invalid(format!(
                    "duplicate rule name `{}`",
                    rule.name
                )));
            }
            for c in &rule.criticality {
                Criticality::parse(c)
                    .map_err(|e| Error::Invalid(format!("rule `{}`: {e}", rule.name)))?;
            }
            if rule.actions.contains(&Action::WorkOrder) && rule.work_order.is_none() {
                return Err(Error::Invalid(format!(
                    "rule `{}` has the work_order action but no `work_order` table",
                    rule.name
                )));
            }
            if rule.actions.contains(&Action::ScheduleMaintenance)
                && !rule.actions.contains(&Action::WorkOrder)
            {
                return Err(Error::Invalid(format!(
                    "rule `{}` has the schedule_maintenance action but not work_order: what \
                     maintenance.scheduled announces is the rule's work order",
                    rule.name
                )));
            }
            let fits = matches!(
                (rule.event, rule.when),
                (_, Condition::Always)
                    | (EventKind::Anomaly, Condition::ScoreAboveThreshold)
                    | (EventKind::Rul, Condition::RulBelowThreshold)
            );
            if !fits {
                return Err(Error::Invalid(format!(
                    "rule `{}`: condition {:?} does not apply to {:?} events",
                    rule.name, rule.when, rule.event
                )));
            }
        }
        Ok(Self {
            policies,
            rules: rf.rules,
        })
    }

    /// The policy of a criticality level.
    pub fn policy(&self, c: Criticality) -> &CriticalityPolicy {
        // Every level is present: `parse` refuses rule sets that miss one.
        &self.policies[&c]
    }

    /// The anomaly threshold of a criticality level.
    pub fn anomaly_threshold(&self, c: Criticality) -> f64 {
        self.policy(c).anomaly_threshold
    }

    /// The loaded rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every enabled rule against `event` and merges their actions.
    pub fn evaluate(&self, event: &Event) -> Decision {
        let criticality = event.criticality();
        let policy = self.policy(criticality);
        let mut d = Decision::default();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.enabled && r.event == event.kind())
        {
            let applies_to_level = rule.criticality.is_empty()
                || rule
                    .criticality
                    .iter()
                    .any(|c| Criticality::parse(c).ok() == Some(criticality));
            let holds = match (rule.when, event) {
                (Condition::Always, _) => true,
                (Condition::ScoreAboveThreshold, Event::Anomaly { score, .. }) => {
                    *score >= policy.anomaly_threshold
                }
                (Condition::RulBelowThreshold, Event::Rul { rul_cycles, .. }) => {
                    *rul_cycles < policy.rul_threshold_cycles
                }
                _ => false,
            };
            if !(applies_to_level && holds) {
                continue;
            }
            d.matched.push(rule.name.clone());
            for action in &rule.actions {
                match action {
                    Action::Alert => d.alert = true,
                    Action::ScheduleMaintenance => d.schedule_maintenance = true,
                    Action::NotifyOnCall => d.notify_on_call = true,
                    Action::WorkOrder => {
                        if let Some(t) = &rule.work_order {
                            let more_urgent = d
                                .work_order
                                .as_ref()
                                .is_none_or(|w| t.priority < w.priority);
                            if more_urgent {
                                d.work_order = Some(WorkOrderRequest {
                                    cause: t.cause.clone(),
                                    priority: t.priority,
                                    rule: rule.name.clone(),
                                    due_within: policy.max_response(),
                                });
                            }
                        }
                    }
                }
            }
        }
        if policy.notify_on_call && d.alert && event.kind() == EventKind::Anomaly {
            d.notify_on_call = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        RuleSet::builtin().expect("built-in rules parse")
    }

    #[test]
    fn the_shipped_files_load_from_the_rules_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let loaded = RuleSet::load(&dir).expect("rules/ loads");
        assert_eq!(loaded.rules().len(), rules().rules().len());
    }

    #[test]
    fn thresholds_follow_the_decision_matrix() {
        let r = rules();
        assert_eq!(r.anomaly_threshold(Criticality::Critical), 0.75);
        assert_eq!(r.anomaly_threshold(Criticality::Low), 0.90);
        assert_eq!(r.policy(Criticality::High).rul_threshold_cycles, 100.0);
        assert_eq!(
            r.policy(Criticality::Medium).max_response(),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn anomaly_above_threshold_alerts_and_opens_an_urgent_work_order() {
        let d = rules().evaluate(&Event::Anomaly {
            criticality: Criticality::Medium,
            score: 0.86,
        });
        assert!(d.alert);
        assert!(!d.notify_on_call);
        let wo = d.work_order.expect("work order");
        assert_eq!(
            (wo.cause.as_str(), wo.priority),
            ("anomaly", Priority::Urgent)
        );
        assert_eq!(wo.due_within, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn anomaly_below_threshold_does_nothing() {
        let d = rules().evaluate(&Event::Anomaly {
            criticality: Criticality::Low,
            score: 0.89,
        });
        assert_eq!(d, Decision::default());
    }

    #[test]
    fn critical_asset_anomalies_page_the_on_call_technician() {
        let d = rules().evaluate(&Event::Anomaly {
            criticality: Criticality::Critical,
            score: 0.76,
        });
        assert!(d.notify_on_call);
        assert!(
            d.matched
                .iter()
                .any(|m| m == "critical-asset-anomaly-pages-on-call")
        );
    }

    #[test]
    fn rul_below_threshold_schedules_maintenance() {
        let r = rules();
        let d = r.evaluate(&Event::Rul {
            criticality: Criticality::High,
            rul_cycles: 99.0,
        });
        assert!(d.schedule_maintenance);
        assert_eq!(d.work_order.map(|w| w.cause), Some("rul".to_string()));
        let d = r.evaluate(&Event::Rul {
            criticality: Criticality::High,
            rul_cycles: 100.0,
        });
        assert!(!d.schedule_maintenance);
    }

    #[test]
    fn invalid_rule_files_are_refused_with_a_clear_message() {
        let bad_threshold = BUILTIN_CRITICALITY.replace("0.75", "1.5");
        let e = RuleSet::parse(&bad_threshold, BUILTIN_ROUTING).expect_err("refused");
        assert!(
            e.to_string().contains("anomaly_threshold of CRITICAL"),
            "{e}"
        );

        let missing_table = "[[rules]]\nname = \"x\"\nevent = \"anomaly\"\nwhen = \"score_above_threshold\"\nactions = [\"work_order\"]\n";
        let e = RuleSet::parse(BUILTIN_CRITICALITY, missing_table).expect_err("refused");
        assert!(e.to_string().contains("no `work_order` table"), "{e}");

        let wrong_condition = "[[rules]]\nname = \"x\"\nevent = \"rul\"\nwhen = \"score_above_threshold\"\nactions = [\"alert\"]\n";
        assert!(RuleSet::parse(BUILTIN_CRITICALITY, wrong_condition).is_err());

        let e = RuleSet::parse("[criticality.HIGH]\nanomaly_threshold = 0.8\nrul_threshold_cycles = 1\nmax_response_hours = 1\n", BUILTIN_ROUTING).expect_err("refused");
        assert!(e.to_string().contains("no entry for CRITICAL"), "{e}");

        for hours in ["0", "10000000000"] {
            let bad = BUILTIN_CRITICALITY.replace(
                "max_response_hours = 8\n",
                &format!("max_response_hours = {hours}\n"),
            );
            let e = RuleSet::parse(&bad, BUILTIN_ROUTING).expect_err("refused");
            assert!(e.to_string().contains("max_response_hours of HIGH"), "{e}");
        }

        let orphan_schedule = "[[rules]]\nname = \"x\"\nevent = \"rul\"\nwhen = \"rul_below_threshold\"\nactions = [\"alert\", \"schedule_maintenance\"]\n";
        let e = RuleSet::parse(BUILTIN_CRITICALITY, orphan_schedule).expect_err("refused");
        assert!(
            e.to_string()
                .contains("schedule_maintenance action but not work_order"),
            "{e}"
        );
    }

    #[test]
    fn missing_directory_is_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(RuleSet::load(dir.path()), Err(Error::Read { .. })));
    }
}
