//! Reliability of an asset type from the lives its assets recorded: a Weibull fit by maximum
//! likelihood with suspended lives, the mean life, the B10 life, and the preventive
//! replacement interval that minimises the cost per hour (age replacement), for the planner.
//!
//! A life runs, in calendar hours, from a renewal recorded in MANTIS to its end: a FAILURE
//! (observed failure) or a REPLACEMENT of a running component (suspended: still good when taken
//! out); the life still running is suspended too. A failure's downtime is no life: the next life
//! starts when the REPAIR or REPLACEMENT that ends the downtime is recorded (as the KPIs count
//! downtime), or at the failure when none is before the next event. Lives before an asset's first recorded renewal
//! are left out: when a component in service before then was installed is not known, and
//! counting its life from the start of the data would shorten it. Events at the same instant
//! are one event (a failure among them wins).
//!
//! The fit solves the profile likelihood equation in the shape β,
//! `Σ tᵢ^β ln tᵢ / Σ tᵢ^β − 1/β − (1/r) Σ_failures ln tᵢ = 0` (increasing in β), by bisection,
//! then the scale `η = (Σ tᵢ^β / r)^(1/β)`; it needs two failures at two different times.
//! Checked against SciPy on a censored sample (`tests`).
//!
//! The age-replacement cost rate of an interval T is `(Cp·R(T) + Cf·(1 − R(T))) / ∫₀ᵀ R(t) dt`
//! (Barlow and Proschan); running to failure costs `Cf / mean life` per hour. Only an
//! increasing failure rate (β > 1) has a finite best interval.

use crate::api::{ApiResult, ApiState, Params, tenant_assets};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Query, State};
use chrono::{DateTime, Utc};
use mantis_domain::{Asset, AssetId, MaintenanceEventKind};
use mantis_runtime::Problem;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One life of a component, in hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Life {
    pub(crate) hours: f64,
    /// Ended by a failure (else suspended: replaced before failing, or still running).
    pub(crate) failed: bool,
}

/// Why no Weibull model could be fitted.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum FitError {
    /// Too few failures to tell a shape.
    #[error("{failures} failure(s) recorded: at least 2 are needed to fit a failure model")]
    TooFewFailures { failures: usize },
    /// Every failure is at the longest life recorded: the likelihood grows without bound.
    #[error(
        "every failure happened at the longest age recorded: no spread to fit a failure model to"
    )]
    NoSpread,
    /// The failures are so close in age that the shape is beyond any physical one.
    #[error("the failures are too close in age to fit a failure model (shape above 1000)")]
    TooSteep,
}

/// A two-parameter Weibull distribution of the life, in hours.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Weibull {
    /// β: below 1 failures come early (infant mortality), 1 at random, above 1 with wear.
    pub(crate) shape: f64,
    /// η, hours: the age by which 63.2 % have failed.
    pub(crate) scale: f64,
}

impl Weibull {
    /// The maximum-likelihood fit of `lives` (positive hours; suspended ones count as
    /// survived that long).
    pub(crate) fn fit(lives: &[Life]) -> Result<Self, FitError> {
        let lives: Vec<Life> = lives
            .iter()
            .copied()
            .filter(|l| l.hours.is_finite() && l.hours > 0.0)
            .collect();
        let failures: Vec<f64> = lives.iter().filter(|l| l.failed).map(|l| l.hours).collect();
        let r = failures.len();
        if r < 2 {
            return Err(FitError::TooFewFailures { failures: r });
        }
        // On ages scaled to the longest, so that t^β stays in range for any β searched.
        let longest = lives.iter().map(|l| l.hours).fold(0.0, f64::max);
        if failures.iter().all(|t| *t >= longest * (1.0 - 1e-12)) {
            return Err(FitError::NoSpread);
        }
        let s: Vec<f64> = lives.iter().map(|l| l.hours / longest).collect();
        let ln_s: Vec<f64> = s.iter().map(|x| x.ln()).collect();
        let mean_ln_failure = lives
            .iter()
            .zip(&ln_s)
            .filter(|(l, _)| l.failed)
            .map(|(_, ln)| ln)
            .sum::<f64>()
            / r as f64;
        let g = |beta: f64| {
            let (mut num, mut den) = (0.0, 0.0);
            for (x, ln) in s.iter().zip(&ln_s) {
                let p = x.powf(beta);
                num += p * ln;
                den += p;
            }
            num / den - 1.0 / beta - mean_ln_failure
        };
        // g → −∞ as β → 0 and → −mean ln(failure / longest) > 0 as β → ∞: one root.
        let (mut lo, mut hi) = (1e-3, 1e3);
        if g(hi) < 0.0 {
            return Err(FitError::TooSteep);
        }
        if g(lo) > 0.0 {
            // Not with failures at ages a thousand-fold apart or less.
            return Err(FitError::NoSpread);
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if g(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo <= 1e-13 * hi {
                break;
            }
        }
        let shape = 0.5 * (lo + hi);
        let sum: f64 = s.iter().map(|x| x.powf(shape)).sum();
        let scale = longest * (sum / r as f64).powf(1.0 / shape);
        if !(scale.is_finite() && scale > 0.0 && shape.is_finite()) {
            return Err(FitError::NoSpread);
        }
        Ok(Self { shape, scale })
    }

    /// The probability of surviving `hours`.
    pub(crate) fn reliability(&self, hours: f64) -> f64 {
        (-(hours.max(0.0) / self.scale).powf(self.shape)).exp()
    }

    /// The mean life, hours: η Γ(1 + 1/β).
    pub(crate) fn mean(&self) -> f64 {
        self.scale * gamma(1.0 + 1.0 / self.shape)
    }

    /// The age by which `fraction` (0–1) have failed (B10: 0.1).
    pub(crate) fn b_life(&self, fraction: f64) -> f64 {
        self.scale * (-(1.0 - fraction).ln()).powf(1.0 / self.shape)
    }

    /// ∫₀ᵀ R(t) dt, the mean time in service of a component replaced at age `t` at the latest
    /// (composite Simpson: R is smooth for β > 1, the only case this is used for).
    fn mean_up(&self, t: f64) -> f64 {
        const N: usize = 2_000;
        let h = t / N as f64;
        let mut sum = self.reliability(0.0) + self.reliability(t);
        for i in 1..N {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            sum += w * self.reliability(i as f64 * h);
        }
        sum * h / 3.0
    }

    /// The cost per hour of replacing at age `t` (or at failure, whichever comes first).
    fn cost_rate(&self, t: f64, preventive: f64, failure: f64) -> f64 {
        let r = self.reliability(t);
        (preventive * r + failure * (1.0 - r)) / self.mean_up(t)
    }

    /// The preventive replacement interval with the lowest cost per hour, when replacing
    /// before failure pays at all (a failure rate that grows, β > 1, and a failure dearer than
    /// a planned replacement); `None` otherwise.
    pub(crate) fn optimal_replacement(&self, preventive: f64, failure: f64) -> Option<Replacement> {
        if self.shape <= WEAR_OUT || !(preventive > 0.0 && failure > preventive) {
            return None;
        }
        let rate = |t: f64| self.cost_rate(t, preventive, failure);
        // A coarse scan from 10⁻⁶ η (a failure a million times dearer) to 3 η (geometric), then
        // golden section around the best.
        let (lo, hi, n) = (1e-6 * self.scale, 3.0 * self.scale, 400);
        let at = |i: usize| lo * (hi / lo).powf(i as f64 / n as f64);
        let best = (0..=n)
            .map(|i| (i, rate(at(i))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)?;
        if best == n {
            // Still falling at three times the characteristic life: running to failure is as
            // good as any interval.
            return None;
        }
        let (mut a, mut b) = (at(best.saturating_sub(1)), at((best + 1).min(n)));
        let phi = (5f64.sqrt() - 1.0) / 2.0;
        let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
        let (mut fc, mut fd) = (rate(c), rate(d));
        for _ in 0..100 {
            if fc < fd {
                b = d;
                d = c;
                fd = fc;
                c = b - phi * (b - a);
                fc = rate(c);
            } else {
                a = c;
                c = d;
                fc = fd;
                d = a + phi * (b - a);
                fd = rate(d);
            }
            if b - a <= 1e-10 * b {
                break;
            }
        }
        let interval = 0.5 * (a + b);
        let cost = rate(interval);
        let run_to_failure = failure / self.mean();
        Some(Replacement {
            interval_hours: interval,
            cost_per_hour: cost,
            run_to_failure_cost_per_hour: run_to_failure,
            saving: 1.0 - cost / run_to_failure,
        })
    }
}

/// Shapes above this are wear-out (the failure rate grows): below it, down to 0.95, failures
/// come at random and replacing before failure does not pay.
const WEAR_OUT: f64 = 1.05;

/// Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 digits).
fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

/// The best preventive replacement interval and what it saves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Replacement {
    /// Replace at this age (hours) unless it failed before.
    pub(crate) interval_hours: f64,
    /// Cost per hour replacing so, in the unit of the costs given.
    pub(crate) cost_per_hour: f64,
    /// Cost per hour running every component to failure.
    pub(crate) run_to_failure_cost_per_hour: f64,
    /// The share of the run-to-failure cost saved (0–1).
    pub(crate) saving: f64,
}

/// The lives recorded by one asset, from its maintenance events (any order), up to `now`.
pub(crate) fn lives_of(
    events: &[(DateTime<Utc>, MaintenanceEventKind)],
    now: DateTime<Utc>,
) -> Vec<Life> {
    use MaintenanceEventKind::{Failure, Inspection, Repair, Replacement};
    // One event per instant, a failure winning (then a replacement, then a repair).
    let rank = |k: &MaintenanceEventKind| match k {
        Failure => 0,
        Replacement => 1,
        Repair => 2,
        Inspection => 3,
    };
    let mut sorted: Vec<(DateTime<Utc>, MaintenanceEventKind)> = events.to_vec();
    sorted.sort_by_key(|(at, kind)| (*at, rank(kind)));
    sorted.dedup_by_key(|(at, _)| *at);
    let hours =
        |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 3.6e6;
    let mut lives = Vec::new();
    // The running life's start (unknown before the first renewal), and whether the asset is
    // down after a failure.
    let (mut start, mut down): (Option<DateTime<Utc>>, bool) = (None, false);
    for (at, kind) in sorted {
        match (kind, down) {
            // (While down too: failing again, it was running again.)
            (Failure, _) => {
                if let Some(from) = start {
                    lives.push(Life {
                        hours: hours(from, at),
                        failed: true,
                    });
                }
                // Renewed at the failure unless a repair or replacement ends the downtime.
                (start, down) = (Some(at), true);
            }
            (Repair | Replacement, true) => (start, down) = (Some(at), false),
            (Replacement, false) => {
                if let Some(from) = start {
                    lives.push(Life {
                        hours: hours(from, at),
                        failed: false,
                    });
                }
                start = Some(at);
            }
            // A repair of a running asset or an inspection renews nothing.
            (Repair | Inspection, false) | (Inspection, true) => {}
        }
    }
    if let Some(from) = start
        && now > from
    {
        lives.push(Life {
            hours: hours(from, now),
            failed: false,
        });
    }
    lives.retain(|l| l.hours > 0.0);
    lives
}

/// The reliability of one asset type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypeReliability {
    asset_type: String,
    assets: usize,
    /// Lives ended by a failure.
    failures: usize,
    /// Lives replaced before failing or still running.
    suspensions: usize,
    /// The fitted life distribution (null when it cannot be fitted: see `reason`).
    weibull: Option<Weibull>,
    /// "decreasing" (β < 0.95: early failures), "constant" (random), "increasing" (wear-out).
    failure_rate: Option<&'static str>,
    mean_life_hours: Option<f64>,
    b10_hours: Option<f64>,
    /// The best preventive replacement interval for the costs asked (null when replacing
    /// before failure does not pay, or no costs were given).
    replacement: Option<Replacement>,
    /// Why there is no fit, or no replacement interval.
    reason: Option<String>,
}

/// `GET /api/v1/reliability?assetType&preventiveCost&failureCost`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReliabilityReport {
    /// When the running lives were counted to.
    at: DateTime<Utc>,
    items: Vec<TypeReliability>,
}

fn positive(params: &Params, key: &str) -> ApiResult<Option<f64>> {
    match params.get(key) {
        None => Ok(None),
        Some(raw) => match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
            _ => Err(
                Problem::bad_request(format!("`{key}` must be a positive number"))
                    .with_field(format!("/{key}"), "a positive number"),
            ),
        },
    }
}

/// `GET /api/v1/reliability?assetType&preventiveCost&failureCost`: per asset type of the
/// tenant (or one), the Weibull model of its lives, mean and B10 life, failure-rate trend and,
/// given what a planned replacement and a failure cost (any one currency), the preventive
/// replacement interval with the lowest cost per hour.
#[utoipa::path(get, path = "/api/v1/reliability", tag = "kpis",
    params(("assetType" = Option<String>, Query, description = "one asset type; default every type of the tenant"),
        ("preventiveCost" = Option<f64>, Query, description = "cost of a planned replacement (> 0; with failureCost)"),
        ("failureCost" = Option<f64>, Query, description = "cost of a failure, more than preventiveCost (with it)")),
    responses((status = 200, body = ReliabilityReport)))]
pub(crate) async fn reliability(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<Params>,
) -> ApiResult<Json<ReliabilityReport>> {
    let preventive = positive(&params, "preventiveCost")?;
    let failure = positive(&params, "failureCost")?;
    let costs = match (preventive, failure) {
        (Some(p), Some(f)) if f > p => Some((p, f)),
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request(
                "`failureCost` must exceed `preventiveCost` (a failure also costs the replacement)",
            )
            .with_field("/failureCost", "more than preventiveCost"));
        }
        (None, None) => None,
        _ => {
            return Err(Problem::bad_request(
                "give both `preventiveCost` and `failureCost`, or neither",
            )
            .with_field(
                if preventive.is_none() {
                    "/preventiveCost"
                } else {
                    "/failureCost"
                },
                "missing",
            ));
        }
    };
    let mut by_type: BTreeMap<String, Vec<Asset>> = BTreeMap::new();
    for asset in tenant_assets(s.store.as_ref(), &who).await? {
        if params
            .get("assetType")
            .is_none_or(|t| *t == asset.asset_type)
        {
            by_type
                .entry(asset.asset_type.clone())
                .or_default()
                .push(asset);
        }
    }
    if let Some(t) = params.get("assetType")
        && by_type.is_empty()
    {
        return Err(Problem::not_found(format!("no asset of type `{t}`")));
    }
    let now = Utc::now();
    // Every asset's history in one query: its newest 10 000 events (older ones only make its
    // first known renewal later), newest first.
    let mut history: HashMap<AssetId, Vec<(DateTime<Utc>, MaintenanceEventKind)>> = HashMap::new();
    for e in s
        .store
        .tenant_maintenance_events(who.tenant_id, 10_000)
        .await?
    {
        history
            .entry(e.asset_id)
            .or_default()
            .push((e.occurred_at, e.kind));
    }
    let mut items = Vec::with_capacity(by_type.len());
    for (asset_type, assets) in by_type {
        let lives: Vec<Life> = assets
            .iter()
            .flat_map(|a| lives_of(history.get(&a.id).map_or(&[][..], Vec::as_slice), now))
            .collect();
        items.push(report(asset_type, assets.len(), &lives, costs));
    }
    Ok(Json(ReliabilityReport { at: now, items }))
}

fn report(
    asset_type: String,
    assets: usize,
    lives: &[Life],
    costs: Option<(f64, f64)>,
) -> TypeReliability {
    let failures = lives.iter().filter(|l| l.failed).count();
    let mut out = TypeReliability {
        asset_type,
        assets,
        failures,
        suspensions: lives.len() - failures,
        weibull: None,
        failure_rate: None,
        mean_life_hours: None,
        b10_hours: None,
        replacement: None,
        reason: None,
    };
    match Weibull::fit(lives) {
        Err(e) => out.reason = Some(e.to_string()),
        Ok(w) if !(w.mean().is_finite() && w.b_life(0.1).is_finite()) => {
            out.reason = Some(format!(
                "the fitted model (shape {:.4}) is beyond the range its figures can be computed in",
                w.shape
            ));
        }
        Ok(w) => {
            out.weibull = Some(w);
            out.failure_rate = Some(if w.shape < 0.95 {
                "decreasing"
            } else if w.shape <= WEAR_OUT {
                "constant"
            } else {
                "increasing"
            });
            out.mean_life_hours = Some(w.mean());
            out.b10_hours = Some(w.b_life(0.1));
            if let Some((p, f)) = costs {
                out.replacement = w.optimal_replacement(p, f);
                if out.replacement.is_none() {
                    out.reason = Some(
                        "replacing before failure does not pay: the failure rate does not grow \
                         with age, or its best interval is beyond three characteristic lives"
                            .into(),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The sample of `tests/peers/weibull_reference.py`: 8 failures, 4 suspensions (hours).
    fn sample() -> Vec<Life> {
        let failed = [412.0, 587.0, 690.0, 745.0, 820.0, 903.0, 1010.0, 1102.0];
        let suspended = [300.0, 650.0, 950.0, 1200.0];
        failed
            .iter()
            .map(|&hours| Life {
                hours,
                failed: true,
            })
            .chain(suspended.iter().map(|&hours| Life {
                hours,
                failed: false,
            }))
            .collect()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// Figures printed by `tests/peers/weibull_reference.py` (SciPy 1.14, not needed by the
    /// tests: Nelder-Mead on the censored log-likelihood, `quad` and `minimize_scalar` for the
    /// replacement interval).
    #[test]
    fn the_fit_and_the_interval_match_scipy_on_a_censored_sample() {
        let w = Weibull::fit(&sample()).expect("fits");
        assert!(close(w.shape, 3.693_770_561_8, 1e-7), "{w:?}");
        assert!(close(w.scale, 979.396_406_165_0, 1e-7), "{w:?}");
        assert!(close(w.mean(), 883.777_765_138_1, 1e-7), "{}", w.mean());
        assert!(close(w.b_life(0.1), 532.564_149_968_1, 1e-7));
        let r = w.optimal_replacement(1.0, 10.0).expect("pays");
        assert!(close(r.interval_hours, 413.643_650_668_6, 1e-5), "{r:?}");
        assert!(close(r.cost_per_hour, 0.003_329_576_758, 1e-7), "{r:?}");
        assert!(close(
            r.run_to_failure_cost_per_hour,
            0.011_315_061_766,
            1e-7
        ));
        assert!(close(
            r.saving,
            1.0 - 0.003_329_576_758 / 0.011_315_061_766,
            1e-6
        ));
    }

    #[test]
    fn without_suspensions_the_fit_is_scipys_weibull_min_fit() {
        let failed: Vec<Life> = sample().into_iter().filter(|l| l.failed).collect();
        let w = Weibull::fit(&failed).expect("fits");
        // scipy.stats.weibull_min.fit(failures, floc=0)
        assert!(close(w.shape, 4.307_700_166_6, 1e-6), "{w:?}");
        assert!(close(w.scale, 862.930_693_267_0, 1e-6), "{w:?}");
    }

    #[test]
    fn gamma_is_right_where_it_is_known() {
        assert!(close(gamma(1.0), 1.0, 1e-14));
        assert!(close(gamma(5.0), 24.0, 1e-13));
        assert!(close(gamma(0.5), std::f64::consts::PI.sqrt(), 1e-13));
        assert!(close(gamma(1.5), std::f64::consts::PI.sqrt() / 2.0, 1e-13));
    }

    #[test]
    fn a_model_needs_two_failures_at_different_ages() {
        let one = [
            Life {
                hours: 10.0,
                failed: true,
            },
            Life {
                hours: 30.0,
                failed: false,
            },
        ];
        assert_eq!(
            Weibull::fit(&one),
            Err(FitError::TooFewFailures { failures: 1 })
        );
        let same = [
            Life {
                hours: 10.0,
                failed: true,
            },
            Life {
                hours: 10.0,
                failed: true,
            },
        ];
        assert_eq!(Weibull::fit(&same), Err(FitError::NoSpread));
        // Failures at one age, but a longer suspension: a finite fit.
        let mut longer = same.to_vec();
        longer.push(Life {
            hours: 20.0,
            failed: false,
        });
        assert!(Weibull::fit(&longer).is_ok_and(|w| w.shape > 1.0));
        let close_together = [
            Life {
                hours: 1000.0,
                failed: true,
            },
            Life {
                hours: 1000.1,
                failed: true,
            },
        ];
        assert_eq!(Weibull::fit(&close_together), Err(FitError::TooSteep));
    }

    #[test]
    fn random_failures_have_no_replacement_interval() {
        let w = Weibull {
            shape: 1.0,
            scale: 500.0,
        };
        assert_eq!(w.optimal_replacement(1.0, 10.0), None);
        let wearing = Weibull {
            shape: 3.0,
            scale: 500.0,
        };
        assert_eq!(
            wearing.optimal_replacement(10.0, 10.0),
            None,
            "no dearer failure"
        );
        assert!(wearing.optimal_replacement(1.0, 10.0).is_some());
        // A failure a million times dearer: replace very early, found below 1 % of η.
        let r = wearing.optimal_replacement(1.0, 1e6).expect("pays");
        assert!(r.interval_hours < 5.0, "{r:?}");
        assert!(r.cost_per_hour < wearing.cost_rate(5.0, 1.0, 1e6), "{r:?}");
    }

    #[test]
    fn lives_run_between_renewals_and_the_current_one_is_suspended() {
        let t = |h: i64| {
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("valid")
                + chrono::Duration::hours(h)
        };
        use MaintenanceEventKind::*;
        let life = |hours: f64, failed: bool| Life { hours, failed };
        // Before the first renewal (a failure at 40 h, ended by a replacement at 100 h) nothing
        // is known; a failure at 500 h repaired at 510 h (its downtime is no life); a repair
        // and an inspection of a running asset renew nothing; a preventive replacement at
        // 900 h; running since.
        let events = [
            (t(700), Repair),
            (t(500), Failure),
            (t(510), Replacement),
            (t(100), Replacement),
            (t(900), Replacement),
            (t(1000), Inspection),
            (t(40), Failure),
        ];
        assert_eq!(
            lives_of(&events, t(1200)),
            vec![life(400.0, true), life(390.0, false), life(300.0, false)]
        );
        // A failure and a replacement recorded at the same instant: a failure, renewed then.
        let same = [
            (t(100), Replacement),
            (t(300), Replacement),
            (t(300), Failure),
        ];
        assert_eq!(
            lives_of(&same, t(400)),
            vec![life(200.0, true), life(100.0, false)]
        );
        // Failures with no repair recorded: each renews at the failure.
        let down = [(t(0), Replacement), (t(50), Failure), (t(60), Failure)];
        assert_eq!(
            lives_of(&down, t(100)),
            vec![life(50.0, true), life(10.0, true), life(40.0, false)]
        );
        assert_eq!(lives_of(&[], t(100)), vec![]);
        assert_eq!(lives_of(&[(t(10), Repair)], t(100)), vec![]);
    }
}
