//! Per-sensor alarm state: `mantis-ml`'s [`Hysteresis`] machine (open after `confirm`
//! consecutive windows at or above the threshold, close after `clear` consecutive windows below
//! `threshold − hysteresis`), made replay-safe and persistable for the service. Pure, no I/O.
//!
//! A window is an anomaly while the alarm is open and its score is within the hysteresis band
//! (`≥ threshold − hysteresis`); the window that opens the alarm is the first. So one noisy
//! window neither raises an anomaly (with `confirm` ≥ 2) nor closes an open alarm.
//!
//! Runs are of consecutive windows: when the span of a judged window starts more than one
//! window length after the end of the previous judged one (a sensor offline, a gap in the
//! readings; windows too sparse to be judged count as missing), the run in progress is broken,
//! so two high windows on either side of an outage do not confirm each other, nor two low ones
//! close an open alarm. Nor do windows of different scorers (the robust baseline, a model
//! version) confirm each other: their scores are not on one scale.
//!
//! Decisions are replay-safe: a window at or before the last one that changed the state is a
//! redelivery (the consumer restarted before committing it) and gets the decision it got the
//! first time, without changing the state again.

use mantis_ml::{Hysteresis, HysteresisConfig};
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

impl AlarmRule {
    fn config(&self, threshold: f64) -> HysteresisConfig {
        HysteresisConfig {
            threshold,
            margin: self.hysteresis.clamp(0.0, threshold.max(0.0)),
            open_after: self.confirm.max(1) as usize,
            close_after: self.clear.max(1) as usize,
        }
    }
}

/// The alarm state of one sensor (persisted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmState {
    /// The open/close machine (absent until the sensor's first scored window).
    pub machine: Option<Hysteresis>,
    /// Start (ms) of the newest window that changed the state.
    pub last_window_ms: Option<i64>,
    /// Starts (ms) of the latest windows that were anomalies, newest last.
    pub emitted: VecDeque<i64>,
    /// End (ms) of the newest window judged. Persisted whenever a run is in progress (each of
    /// its steps changes the machine) and whenever a gap breaks one, which is when it matters: a
    /// stored value older than the last judged window can only break a run of length 0.
    #[serde(default)]
    pub last_judged_end_ms: Option<i64>,
    /// What scored the newest judged window (the robust baseline, or a model version): a run
    /// of windows in progress is judged by one scorer, a new one starts it again.
    #[serde(default)]
    pub scorer: Option<String>,
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
    /// Whether the alarm is open.
    pub fn is_open(&self) -> bool {
        self.machine.as_ref().is_some_and(Hysteresis::is_open)
    }

    /// Judges the window starting at `window_ms` and lasting `len_ms` with `score` against
    /// `threshold`, scored by `scorer` (`robust-zscore`, `ensemble:3`). The scores of two scorers are not on one scale (the robust baseline before a model is
    /// trained, a model and its retrained successor): a run toward opening the alarm begun
    /// under one scorer is not confirmed by windows of another, it starts again. An open alarm
    /// stays open (it closes after `clear` low windows, whoever scores them).
    pub fn judge(
        &mut self,
        rule: AlarmRule,
        window_ms: i64,
        len_ms: i64,
        score: f64,
        threshold: f64,
        scorer: &str,
    ) -> Decision {
        if self.last_window_ms.is_some_and(|last| window_ms <= last) {
            return Decision {
                anomaly: self.emitted.contains(&window_ms),
                changed: false,
            };
        }
        let config = rule.config(threshold);
        let before = self.machine.clone();
        let configured = match self.machine.as_mut() {
            Some(m) => m.reconfigure(config.clone()).is_ok(),
            None => match Hysteresis::new(config) {
                Ok(m) => {
                    self.machine = Some(m);
                    true
                }
                Err(_) => false,
            },
        };
        let Some(machine) = self.machine.as_mut().filter(|_| configured) else {
            // A threshold the machine refuses (not a number): nothing can be judged.
            return Decision {
                anomaly: false,
                changed: false,
            };
        };
        let previous_end = self.last_judged_end_ms;
        let end = window_ms.saturating_add(len_ms.max(0));
        self.last_judged_end_ms = Some(previous_end.map_or(end, |p| p.max(end)));
        // A window of unknown length (0) breaks nothing.
        let gap = len_ms > 0 && previous_end.is_some_and(|p| window_ms.saturating_sub(p) > len_ms);
        let rescored = self.scorer.as_deref().is_some_and(|s| s != scorer);
        if gap || (rescored && !machine.is_open()) {
            machine.break_run();
        }
        let new_scorer = self.scorer.as_deref() != Some(scorer);
        if new_scorer {
            self.scorer = Some(scorer.to_owned());
        }
        machine.update(score);
        let margin = machine.config().margin;
        let anomaly = machine.is_open() && score >= threshold - margin;
        if anomaly {
            self.emitted.push_back(window_ms);
            while self.emitted.len() > REMEMBERED {
                self.emitted.pop_front();
            }
        }
        let changed = anomaly || gap || new_scorer || before != self.machine;
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
            .map(|(i, s)| {
                state
                    .judge(RULE, i as i64 * 1000, 1000, *s, 0.8, "")
                    .anomaly
            })
            .collect()
    }

    #[test]
    fn a_run_is_confirmed_by_windows_of_one_scorer_only() {
        let mut s = AlarmState::default();
        let mut judge = |i: i64, score: f64, scorer: &str| {
            s.judge(RULE, i * 1000, 1000, score, 0.8, scorer).anomaly
        };
        // A high window scored by the robust baseline, the next by the model trained
        // meanwhile: two scales, no confirmation; the model's second high window confirms.
        assert!(!judge(0, 0.95, "zscore"));
        assert!(!judge(1, 0.9, "ensemble:1"));
        assert!(judge(2, 0.9, "ensemble:1"));
        // Open, the alarm rides out a new model version (within the band), and closes after
        // two low windows, whoever scores them.
        assert!(judge(3, 0.85, "ensemble:2"));
        assert!(!judge(4, 0.1, "ensemble:2"));
        assert!(!judge(5, 0.1, "ensemble:2"));
        assert!(!s.is_open());
        // The scorer is kept with the state (a restart judges on as before).
        assert_eq!(s.scorer.as_deref(), Some("ensemble:2"));
        let back: AlarmState =
            serde_json::from_value(serde_json::to_value(&s).expect("json")).expect("state");
        assert_eq!(back, s);
    }

    #[test]
    fn a_state_stored_before_scorers_were_kept_carries_its_run_on() {
        // A run of one high window, stored by a version that kept no scorer.
        let mut s = AlarmState::default();
        assert!(!s.judge(RULE, 0, 1000, 0.9, 0.8, "").anomaly);
        s.scorer = None;
        let mut json = serde_json::to_value(&s).expect("json");
        json.as_object_mut().expect("object").remove("scorer");
        let mut back: AlarmState = serde_json::from_value(json).expect("read back");
        // Its next high window confirms it, whoever scored it; the scorer is kept from then on.
        let d = back.judge(RULE, 1000, 1000, 0.9, 0.8, "ensemble:1");
        assert!(d.anomaly && d.changed);
        assert_eq!(back.scorer.as_deref(), Some("ensemble:1"));
        // A redelivered window changes nothing, whichever scorer scores it again.
        let again = back.judge(RULE, 1000, 1000, 0.1, 0.8, "robust-zscore");
        assert_eq!(
            again,
            Decision {
                anomaly: true,
                changed: false
            }
        );
        assert_eq!(back.scorer.as_deref(), Some("ensemble:1"));
    }

    #[test]
    fn one_noisy_window_raises_nothing() {
        let mut s = AlarmState::default();
        assert_eq!(
            run(&mut s, &[0.1, 0.95, 0.2, 0.1, 0.99, 0.1]),
            [false; 6].to_vec()
        );
        assert!(!s.is_open());
    }

    #[test]
    fn confirmed_windows_open_the_alarm_and_it_rides_out_a_dip() {
        let mut s = AlarmState::default();
        let got = run(&mut s, &[0.9, 0.9, 0.75, 0.6, 0.9, 0.6, 0.5, 0.9]);
        // Opens on the 2nd window; 0.75 is within the hysteresis band; a single dip below
        // it does not close; two do; then one window alone does not re-open.
        assert_eq!(got, [false, true, true, false, true, false, false, false]);
        assert!(!s.is_open());
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
            .map(|(i, v)| s.judge(rule, i as i64, 1, *v, 0.8, "").anomaly)
            .collect();
        assert_eq!(got, [true, false, true]);
    }

    #[test]
    fn windows_on_either_side_of_a_gap_are_not_consecutive() {
        let mut s = AlarmState::default();
        // High, then the sensor is silent for a minute, then high: no confirmation yet.
        assert!(!s.judge(RULE, 0, 1000, 0.9, 0.8, "").anomaly);
        assert!(!s.judge(RULE, 60_000, 1000, 0.9, 0.8, "").anomaly);
        assert!(!s.is_open());
        // The next window follows on: confirmed.
        assert!(s.judge(RULE, 61_000, 1000, 0.9, 0.8, "").anomaly);
        assert!(s.is_open());
        // Low, an outage, low: the alarm stays open; low again right after: closed.
        assert!(!s.judge(RULE, 62_000, 1000, 0.5, 0.8, "").anomaly);
        assert!(!s.judge(RULE, 120_000, 1000, 0.5, 0.8, "").anomaly);
        assert!(s.is_open());
        assert!(!s.judge(RULE, 121_000, 1000, 0.5, 0.8, "").anomaly);
        assert!(!s.is_open());
    }

    #[test]
    fn one_missing_window_keeps_a_run_going() {
        let mut s = AlarmState::default();
        assert!(!s.judge(RULE, 0, 1000, 0.9, 0.8, "").anomaly);
        assert!(s.judge(RULE, 2000, 1000, 0.9, 0.8, "").anomaly);
    }

    #[test]
    fn a_restart_after_a_gap_resumes_the_run_that_followed_it() {
        // The service keeps only what `changed` decisions persisted.
        let mut live = AlarmState::default();
        let mut stored = AlarmState::default();
        for (start, score) in [(0, 0.9), (60_000, 0.9)] {
            if live.judge(RULE, start, 1000, score, 0.8, "").changed {
                stored = live.clone();
            }
        }
        // Restarted from the store, the window right after the gap's first one confirms.
        assert!(stored.judge(RULE, 61_000, 1000, 0.9, 0.8, "").anomaly);
    }

    #[test]
    fn a_state_stored_before_gaps_counted_is_read_back() {
        let stored = serde_json::json!({"machine": null, "last_window_ms": 5, "emitted": [5]});
        let s: AlarmState = serde_json::from_value(stored).expect("older state");
        assert_eq!(s.last_judged_end_ms, None);
        assert_eq!(s.last_window_ms, Some(5));
    }

    #[test]
    fn a_new_threshold_applies_to_an_open_alarm() {
        let mut s = AlarmState::default();
        run(&mut s, &[0.9, 0.9]);
        assert!(s.is_open());
        // The rules raised the threshold to 0.95: 0.9 is now below its band, twice: closed.
        assert!(!s.judge(RULE, 2_000, 1000, 0.8, 0.95, "").anomaly);
        assert!(!s.judge(RULE, 3_000, 1000, 0.8, 0.95, "").anomaly);
        assert!(!s.is_open());
    }

    #[test]
    fn a_redelivered_window_gets_its_first_decision_and_changes_nothing() {
        let mut s = AlarmState::default();
        run(&mut s, &[0.9, 0.9]);
        let snapshot = s.clone();
        assert_eq!(
            s.judge(RULE, 1000, 1000, 0.9, 0.8, ""),
            Decision {
                anomaly: true,
                changed: false
            }
        );
        assert_eq!(
            s.judge(RULE, 0, 1000, 0.9, 0.8, ""),
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
