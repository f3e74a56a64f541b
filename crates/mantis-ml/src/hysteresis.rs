//! Alert state with hysteresis, so one noisy window neither opens nor closes an alert.

use crate::error::{Result, invalid};
use serde::{Deserialize, Serialize};

/// When an alert opens and closes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HysteresisConfig {
    /// A score at or above this counts towards opening. Default 0.9.
    pub threshold: f64,
    /// A score below `threshold − margin` counts towards closing. Default 0.1.
    pub margin: f64,
    /// Consecutive windows at or above the threshold that open the alert. Default 1.
    pub open_after: usize,
    /// Consecutive windows below `threshold − margin` that close it. Default 1.
    pub close_after: usize,
}

impl Default for HysteresisConfig {
    fn default() -> Self {
        Self {
            threshold: 0.9,
            margin: 0.1,
            open_after: 1,
            close_after: 1,
        }
    }
}

/// What an update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The alert opened with this window.
    Opened,
    /// The alert closed with this window.
    Closed,
    /// Nothing changed (open or closed).
    Unchanged,
}

/// The alert state machine. Serialisable, so the service can persist it with the asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hysteresis {
    config: HysteresisConfig,
    open: bool,
    /// Consecutive windows counting towards the opposite state.
    run: usize,
}

impl Hysteresis {
    /// A closed alert. The margin must be in [0, threshold] and the counts at least 1.
    pub fn new(config: HysteresisConfig) -> Result<Self> {
        if !config.threshold.is_finite() {
            return Err(invalid("threshold", "must be a number"));
        }
        if !(config.margin >= 0.0 && config.margin.is_finite()) {
            return Err(invalid("margin", "must not be negative"));
        }
        if config.open_after == 0 || config.close_after == 0 {
            return Err(invalid("open_after / close_after", "must be at least 1"));
        }
        Ok(Self {
            config,
            open: false,
            run: 0,
        })
    }

    /// Whether the alert is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The configuration.
    pub fn config(&self) -> &HysteresisConfig {
        &self.config
    }

    /// Replaces the configuration (e.g. the asset's threshold changed with the rules), keeping
    /// whether the alert is open and the run in progress. Validated as in [`Hysteresis::new`].
    pub fn reconfigure(&mut self, config: HysteresisConfig) -> Result<()> {
        let fresh = Self::new(config)?;
        self.config = fresh.config;
        Ok(())
    }

    /// A break in the data: the windows on either side of it are not consecutive, so the run
    /// in progress towards the opposite state no longer counts. Open or closed stays as is.
    pub fn break_run(&mut self) {
        self.run = 0;
    }

    /// Feeds the next window's score. A NaN counts as "not normal" (it neither opens nor
    /// closes: it breaks both runs).
    pub fn update(&mut self, score: f64) -> Transition {
        let c = &self.config;
        if self.open {
            if score < c.threshold - c.margin {
                self.run += 1;
                if self.run >= c.close_after {
                    self.open = false;
                    self.run = 0;
                    return Transition::Closed;
                }
            } else {
                self.run = 0;
            }
        } else if score >= c.threshold {
            self.run += 1;
            if self.run >= c.open_after {
                self.open = true;
                self.run = 0;
                return Transition::Opened;
            }
        } else {
            self.run = 0;
        }
        Transition::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(margin: f64, open_after: usize, close_after: usize) -> Hysteresis {
        Hysteresis::new(HysteresisConfig {
            threshold: 0.8,
            margin,
            open_after,
            close_after,
        })
        .expect("valid config")
    }

    #[test]
    fn opens_at_the_threshold_and_closes_only_below_threshold_minus_margin() {
        let mut h = machine(0.1, 1, 1);
        assert_eq!(h.update(0.79), Transition::Unchanged);
        assert_eq!(h.update(0.80), Transition::Opened);
        // Between threshold − margin and threshold: stays open.
        assert_eq!(h.update(0.75), Transition::Unchanged);
        assert_eq!(h.update(0.71), Transition::Unchanged);
        assert!(h.is_open());
        assert_eq!(h.update(0.69), Transition::Closed);
        assert!(!h.is_open());
        // And below the threshold it does not reopen.
        assert_eq!(h.update(0.75), Transition::Unchanged);
    }

    #[test]
    fn a_noisy_score_around_the_threshold_does_not_flap() {
        let mut h = machine(0.1, 1, 1);
        let transitions = [0.81, 0.78, 0.82, 0.76, 0.85, 0.79]
            .iter()
            .filter(|s| h.update(**s) != Transition::Unchanged)
            .count();
        assert_eq!(transitions, 1, "one opening, no closing");
    }

    #[test]
    fn needs_consecutive_windows_to_open_and_to_close() {
        let mut h = machine(0.0, 2, 3);
        assert_eq!(h.update(0.9), Transition::Unchanged);
        assert_eq!(h.update(0.1), Transition::Unchanged); // run broken
        assert_eq!(h.update(0.9), Transition::Unchanged);
        assert_eq!(h.update(0.9), Transition::Opened);
        assert_eq!(h.update(0.1), Transition::Unchanged);
        assert_eq!(h.update(0.1), Transition::Unchanged);
        assert_eq!(h.update(0.9), Transition::Unchanged); // run broken
        assert_eq!(h.update(0.1), Transition::Unchanged);
        assert_eq!(h.update(0.1), Transition::Unchanged);
        assert_eq!(h.update(0.1), Transition::Closed);
    }

    #[test]
    fn rejects_bad_configs_and_round_trips() {
        assert!(
            Hysteresis::new(HysteresisConfig {
                margin: -0.1,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            Hysteresis::new(HysteresisConfig {
                open_after: 0,
                ..Default::default()
            })
            .is_err()
        );
        let mut h = machine(0.1, 1, 1);
        h.update(0.95);
        let back: Hysteresis =
            serde_json::from_str(&serde_json::to_string(&h).expect("encode")).expect("decode");
        assert_eq!(back, h);
    }
}
