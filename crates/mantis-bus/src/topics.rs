//! The topic catalogue of the brief: names, partitions, retention, and dead-letter topics.

use crate::TopicSpec;
use std::time::Duration;

/// Raw readings, keyed by asset id.
pub const SENSOR_RAW: &str = "sensor.raw";
/// Window statistics and samples, keyed by asset id.
pub const SENSOR_WINDOWED: &str = "sensor.windowed";
/// Feature vectors, keyed by asset id.
pub const FEATURES_EXTRACTED: &str = "features.extracted";
/// Anomalies, keyed by asset id, severity in the `severity` header.
pub const ANOMALY_DETECTED: &str = "anomaly.detected";
/// RUL predictions, keyed by asset id.
pub const RUL_PREDICTED: &str = "rul.predicted";
/// Scheduled maintenance, keyed by work-order id.
pub const MAINTENANCE_SCHEDULED: &str = "maintenance.scheduled";
/// Alerts for people, unkeyed.
pub const ALERTS_CRITICAL: &str = "alerts.critical";
/// Readings that failed a quality check, keyed by asset id.
pub const DATA_QUALITY_ISSUES: &str = "data.quality.issues";

/// Header carrying an anomaly's severity on `anomaly.detected`.
pub const SEVERITY_HEADER: &str = "severity";

const DAY: u64 = 24 * 3600;

fn spec(name: &str, partitions: i32, days: u64) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        retention: Duration::from_secs(days * DAY),
    }
}

/// Every data topic of the brief with its partitions and retention.
pub fn catalogue() -> Vec<TopicSpec> {
    vec![
        spec(SENSOR_RAW, 12, 7),
        spec(SENSOR_WINDOWED, 12, 30),
        spec(FEATURES_EXTRACTED, 6, 90),
        spec(ANOMALY_DETECTED, 3, 365),
        spec(RUL_PREDICTED, 3, 365),
        spec(MAINTENANCE_SCHEDULED, 1, 365),
        spec(ALERTS_CRITICAL, 1, 365),
        spec(DATA_QUALITY_ISSUES, 3, 30),
    ]
}

/// The dead-letter topic of a consumer group: `dlq.<group>`.
pub fn dead_letter_topic(group: &str) -> String {
    format!("dlq.{group}")
}

/// The spec of a consumer group's dead-letter topic (1 partition, 30 days).
pub fn dead_letter_spec(group: &str) -> TopicSpec {
    spec(&dead_letter_topic(group), 1, 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_the_brief() {
        let c = catalogue();
        let find = |n: &str| c.iter().find(|s| s.name == n).cloned();
        assert_eq!(find(SENSOR_RAW).map(|s| s.partitions), Some(12));
        assert_eq!(find(FEATURES_EXTRACTED).map(|s| s.partitions), Some(6));
        assert_eq!(find(ALERTS_CRITICAL).map(|s| s.partitions), Some(1));
        assert_eq!(
            find(ANOMALY_DETECTED).map(|s| s.retention),
            Some(Duration::from_secs(365 * DAY))
        );
        assert_eq!(c.len(), 8);
        assert_eq!(dead_letter_topic("anomaly"), "dlq.anomaly");
    }
}
