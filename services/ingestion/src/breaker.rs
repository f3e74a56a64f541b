//! The circuit breaker around the producer.
//!
//! Closed: every publish goes to the bus; failures are counted in a sliding window, and
//! `failure_threshold` failures within `failure_window` open the circuit. Open: nothing is sent
//! to the bus (readings go to the edge buffer at once) until `open_for` has passed. Half-open:
//! one trial publish is let through; its success closes the circuit, its failure opens it
//! again for another `open_for`.
//!
//! Time comes from `tokio::time::Instant`, so tests drive it with `tokio::time::pause()` and
//! `advance()` instead of sleeping.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Settings of the circuit breaker (`[ingestion.circuit_breaker]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures within `failure_window_ms` that open the circuit. Default 5.
    pub failure_threshold: u32,
    /// The sliding window failures are counted in. Default 10 000 ms.
    pub failure_window_ms: u64,
    /// How long the circuit stays open before one trial publish is let through. Default
    /// 30 000 ms.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_window_ms: 10_000,
            open_ms: 30_000,
        }
    }
}

/// The state of a circuit, as shown in `/health` and the `mantis_circuit_breaker_state` gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    /// Publishes go to the bus.
    Closed,
    /// Publishes do not go to the bus.
    Open,
    /// One trial publish may go to the bus.
    HalfOpen,
}

impl CircuitState {
    /// Value of the state gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// Whether a publish may go to the bus now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Yes; report the outcome with [`CircuitBreaker::on_success`] or
    /// [`CircuitBreaker::on_failure`].
    Granted,
    /// No; the bus should not be tried for this long.
    Denied {
        /// Time until a trial may be let through.
        retry_in: Duration,
    },
}

#[derive(Debug)]
enum State {
    Closed {
        failures: VecDeque<Instant>,
    },
    Open {
        until: Instant,
    },
    /// `trial_since`: when the trial in flight was let through.
    HalfOpen {
        trial_since: Option<Instant>,
    },
}

/// A circuit breaker (see the module docs). Shared by every publisher of the service.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed circuit.
    pub fn new(config: BreakerConfig) -> Self {
        let breaker = Self {
            config,
            state: Mutex::new(State::Closed {
                failures: VecDeque::new(),
            }),
        };
        breaker.report(CircuitState::Closed);
        breaker
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.config.failure_window_ms)
    }

    fn open_for(&self) -> Duration {
        Duration::from_millis(self.config.open_ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state (an open circuit whose time is up reads as half-open).
    pub fn state(&self) -> CircuitState {
        match &*self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < *until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether nothing may go to the bus right now (open, or half-open with its trial in
    /// flight): publishers then go to the edge buffer without trying.
    pub fn is_blocking(&self) -> bool {
        let now = Instant::now();
        match &*self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => now < *until,
            State::HalfOpen { trial_since } => {
                trial_since.is_some_and(|t| now.duration_since(t) < self.open_for())
            }
        }
    }

    /// Asks to publish. In the half-open state only one caller at a time gets the trial (a
    /// trial never reported is given up after `open_ms`).
    pub fn try_acquire(&self) -> Permit {
        let now = Instant::now();
        let mut state = self.lock();
        match &mut *state {
            State::Closed { .. } => Permit::Granted,
            State::Open { until } => {
                if now < *until {
                    Permit::Denied {
                        retry_in: *until - now,
                    }
                } else {
                    *state = State::HalfOpen {
                        trial_since: Some(now),
                    };
                    drop(state);
                    self.report(CircuitState::HalfOpen);
                    Permit::Granted
                }
            }
            State::HalfOpen { trial_since } => match trial_since {
                Some(t) if now.duration_since(*t) < self.open_for() => Permit::Denied {
                    retry_in: self.open_for() - now.duration_since(*t),
                },
                _ => {
                    *trial_since = Some(now);
                    Permit::Granted
                }
            },
        }
    }

    /// A publish succeeded: the circuit closes.
    pub fn on_success(&self) {
        let mut state = self.lock();
        if !matches!(&*state, State::Closed { failures } if failures.is_empty()) {
            let was_closed = matches!(&*state, State::Closed { .. });
            *state = State::Closed {
                failures: VecDeque::new(),
            };
            drop(state);
            if !was_closed {
                tracing::info!("circuit breaker closed: the bus accepts records again");
                self.report(CircuitState::Closed);
            }
        }
    }

    /// A publish failed with an error that retrying may cure (the bus is unavailable).
    pub fn on_failure(&self) {
        let now = Instant::now();
        let window = self.window();
        let threshold = self.config.failure_threshold.max(1) as usize;
        let mut state = self.lock();
        let open = match &mut *state {
            State::Closed { failures } => {
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    failures.pop_front();
                }
                failures.len() >= threshold
            }
            State::HalfOpen { .. } => true,
            // Failures of publishes let through before the circuit opened change nothing.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: now + self.open_for(),
            };
            drop(state);
            tracing::warn!(
                open_ms = self.config.open_ms,
                "circuit breaker opened: publishes go to the edge buffer"
            );
            self.report(CircuitState::Open);
        }
    }

    fn report(&self, state: CircuitState) {
        metrics::gauge!("mantis_circuit_breaker_state", "circuit" => "bus").set(state.gauge());
        if state == CircuitState::Open {
            metrics::counter!("mantis_circuit_breaker_opened_total", "circuit" => "bus")
                .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    #[tokio::test(start_paused = true)]
    async fn five_failures_within_ten_seconds_open_the_circuit() {
        let b = breaker();
        for _ in 0..4 {
            b.on_failure();
            advance(Duration::from_secs(2)).await;
        }
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "four failures are not enough"
        );
        assert_eq!(b.try_acquire(), Permit::Granted);
        b.on_failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.is_blocking());
        assert_eq!(
            b.try_acquire(),
            Permit::Denied {
                retry_in: Duration::from_secs(30)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_wider_than_the_window_do_not_open_it() {
        let b = breaker();
        for _ in 0..20 {
            b.on_failure();
            advance(Duration::from_millis(2_600)).await;
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        for _ in 0..4 {
            b.on_failure();
        }
        b.on_success();
        for _ in 0..4 {
            b.on_failure();
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn after_thirty_seconds_one_trial_is_let_through_and_its_success_closes() {
        let b = breaker();
        for _ in 0..5 {
            b.on_failure();
        }
        advance(Duration::from_millis(29_999)).await;
        assert!(matches!(b.try_acquire(), Permit::Denied { .. }));
        advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(!b.is_blocking(), "a trial may go");
        assert_eq!(b.try_acquire(), Permit::Granted, "the trial");
        assert!(b.is_blocking(), "the trial is in flight");
        assert!(
            matches!(b.try_acquire(), Permit::Denied { .. }),
            "only one trial at a time"
        );
        b.on_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.try_acquire(), Permit::Granted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_circuit_for_another_period() {
        let b = breaker();
        for _ in 0..5 {
            b.on_failure();
        }
        advance(Duration::from_secs(30)).await;
        assert_eq!(b.try_acquire(), Permit::Granted);
        b.on_failure();
        assert_eq!(b.state(), CircuitState::Open);
        advance(Duration::from_secs(29)).await;
        assert!(matches!(b.try_acquire(), Permit::Denied { .. }));
        advance(Duration::from_secs(1)).await;
        assert_eq!(b.try_acquire(), Permit::Granted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_never_reported_is_given_up_after_the_open_period() {
        let b = breaker();
        for _ in 0..5 {
            b.on_failure();
        }
        advance(Duration::from_secs(30)).await;
        assert_eq!(b.try_acquire(), Permit::Granted);
        advance(Duration::from_secs(30)).await;
        assert_eq!(b.try_acquire(), Permit::Granted, "a new trial");
    }

    #[tokio::test(start_paused = true)]
    async fn the_seed_values_are_configurable() {
        let b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            failure_window_ms: 1_000,
            open_ms: 500,
        });
        b.on_failure();
        b.on_failure();
        assert_eq!(b.state(), CircuitState::Open);
        advance(Duration::from_millis(500)).await;
        assert_eq!(b.try_acquire(), Permit::Granted);
    }
}
