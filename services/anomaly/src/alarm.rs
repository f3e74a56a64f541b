//! Per-sensor alarm state with confirmation and hysteresis. Pure, no I/O.
//!
//! A score at or above the threshold does not raise an anomaly on its own: the alarm *opens*
//! after `confirm` consecutive windows at or above the threshold (the window that confirms it,
//! and every following one, is an anomaly). An open alarm stays open while scores stay above
//! `threshold − hysteresis`, and *closes* after `clear` consecutive windows below that. So one
//! noisy window neither raises an anomaly nor, once an alarm is open, closes and re-opens it.
//!
//! Decisions are replay-safe: a window at or before the last one that changed the state is a
//! redelivery (the consumer restarted before committing it) and gets the decision it got the
//! first time, without changing the state again.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many emitted windows are remembered for redeliveries.
const REMEMBERED: usize = 64;

/// The alarm rule (from the service configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmRule {
    /// Consecutive windows at or above the threshold that open the alarm (≥ 1).
    pub confirm: u32,
    /// Consecutive windows below `threshold − hysteresis` that close it (≥ 1).
    pub clear: u32,
    /// How far below the threshold an open alarm's scores may fall and still count.
    pub hysteresis: f64,
}

/// The alarm state of one sensor (persisted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmState {
    /// Whether the alarm is open.
    pub open: bool,
    /// Consecutive windows at or above the threshold while closed.
    pub above: u32,
    /// Consecutive windows below the release level while open.
    pub below: u32,
    /// Start (ms) of the newest window that changed the state.
    pub last_window_ms: Option<i64>,
    /// Starts (ms) of the latest windows that were anomalies, newest last.
    pub emitted: VecDeque<i64>,
}

/// What to do with one scored window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The window is an anomaly.
    pub anomaly: bool,
    /// The state changed and must be persisted.
    pub changed: bool,
}

impl AlarmState {
    /// Judges the window starting at `window_ms` with `score` against `threshold`.
    pub fn judge(
        &mut self,
        rule: AlarmRule,
        window_ms: i64,
        score: f64,
        threshold: f64,
    ) -> Decision {
        if self.last_window_ms.is_some_and(|last| window_ms <= last) {
            return Decision {
                anomaly: self.emitted.contains(&window_ms),
                changed: false,
            };
        }
        let before = (self.open, self.above, self.below);
        let anomaly = if self.open {
            if score >= threshold - rule.hysteresis {
                self.below = 0;
                true
            } else {
                self.below += 1;
                if self.below >= rule.clear.max(1) {
                    self.open = false;
                    self.below = 0;
                }
                false
            }
        } else if score >= threshold {
            self.above += 1;
            if self.above >= rule.confirm.max(1) {
                self.open = true;
                self.above = 0;
                true
            } else {
                false
            }
        } else {
            self.above = 0;
            false
        };
        if anomaly {
            self.emitted.push_back(window_ms);
            while self.emitted.len() > REMEMBERED {
                self.emitted.pop_front();
            }
        }
        let changed = anomaly || before != (self.open, self.above, self.below);
        if changed {
            self.last_window_ms = Some(window_ms);
        }
        Decision { anomaly, changed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: AlarmRule = AlarmRule {
        confirm: 2,
        clear: 2,
        hysteresis: 0.1,
    };

    fn run(state: &mut AlarmState, scores: &[f64]) -> Vec<bool> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| state.judge(RULE, i as i64 * 1000, *s, 0.8).anomaly)
            .collect()
    }

    #[test]
    fn one_noisy_window_raises_nothing() {
        let mut s = AlarmState::default();
        assert_eq!(
            run(&mut s, &[0.1, 0.95, 0.2, 0.1, 0.99, 0.1]),
            [false; 6].to_vec()
        );
        assert!(!s.open);
    }

    #[test]
    fn confirmed_windows_open_the_alarm_and_it_rides_out_a_dip() {
        let mut s = AlarmState::default();
        let got = run(&mut s, &[0.9, 0.9, 0.75, 0.6, 0.9, 0.6, 0.5, 0.9]);
        // Opens on the 2nd window; 0.75 is within the hysteresis band; a single dip below
        // it does not close; two do; then one window alone does not re-open.
        assert_eq!(got, [false, true, true, false, true, false, false, false]);
        assert!(!s.open);
    }

    #[test]
    fn confirm_one_judges_every_window_alone() {
        let rule = AlarmRule {
            confirm: 1,
            clear: 1,
            hysteresis: 0.0,
        };
        let mut s = AlarmState::default();
        let got: Vec<bool> = [0.9, 0.1, 0.9]
            .iter()
            .enumerate()
            .map(|(i, v)| s.judge(rule, i as i64, *v, 0.8).anomaly)
            .collect();
        assert_eq!(got, [true, false, true]);
    }

    #[test]
    fn a_redelivered_window_gets_its_first_decision_and_changes_nothing() {
        let mut s = AlarmState::default();
        run(&mut s, &[0.9, 0.9]);
        let snapshot = s.clone();
        assert_eq!(
            s.judge(RULE, 1000, 0.9, 0.8),
            Decision {
                anomaly: true,
                changed: false
            }
        );
        assert_eq!(
            s.judge(RULE, 0, 0.9, 0.8),
            Decision {
                anomaly: false,
                changed: false
            }
        );
        assert_eq!(s, snapshot);
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut s = AlarmState::default();
        run(&mut s, &[0.9, 0.9, 0.9]);
        let back: AlarmState =
            serde_json::from_value(serde_json::to_value(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
    }
}
