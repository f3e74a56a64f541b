//! Reliability of an asset type from the lives its assets recorded: a Weibull fit by maximum
//! likelihood with suspended lives, the mean life, the B10 life, and the preventive
//! replacement interval that minimises the cost per hour (age replacement), for the planner.
//!
//! A life runs from a renewal to the next: a FAILURE (observed failure) or a REPLACEMENT before
//! failing (suspended: the component was still good), and the current life, still running, is
//! suspended too. An asset's first life counts from its oldest stored features window (the
//! platform does not know when a component older than its data was installed). REPAIR and
//! INSPECTION do not renew (as for RUL training).
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
use mantis_domain::{Asset, MaintenanceEventKind};
use mantis_runtime::Problem;
use mantis_store::Store;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// The failures all happened at the same age: no spread to fit.
    #[error("every failure happened at the same age: no spread to fit a failure model to")]
    NoSpread,
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
        let first = failures[0];
        if failures.iter().all(|t| (t - first).abs() <= 1e-9 * first) {
            return Err(FitError::NoSpread);
        }
        // On ages scaled to the longest, so that t^β stays in range for any β searched.
        let longest = lives.iter().map(|l| l.hours).fold(0.0, f64::max);
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
        let (mut lo, mut hi) = (1e-3, 1e3);
        if g(lo) > 0.0 || g(hi) < 0.0 {
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
        if self.shape <= 1.0 || !(preventive > 0.0 && failure > preventive) {
            return None;
        }
        let rate = |t: f64| self.cost_rate(t, preventive, failure);
        // A coarse scan over 1 % to 300 % of η (geometric), then golden section around the best.
        let (lo, hi, n) = (0.01 * self.scale, 3.0 * self.scale, 240);
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

/// The lives recorded by one asset, from its maintenance events (any order), the start of its
/// data (its first life's start, when known) and `now`.
pub(crate) fn lives_of(
    events: &[(DateTime<Utc>, MaintenanceEventKind)],
    data_start: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Life> {
    let mut ends: Vec<(DateTime<Utc>, bool)> = events
        .iter()
        .filter_map(|(at, kind)| match kind {
            MaintenanceEventKind::Failure => Some((*at, true)),
            MaintenanceEventKind::Replacement => Some((*at, false)),
            MaintenanceEventKind::Repair | MaintenanceEventKind::Inspection => None,
        })
        .collect();
    ends.sort_by_key(|(at, _)| *at);
    let hours =
        |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 3.6e6;
    let mut lives = Vec::new();
    let mut start = data_start.filter(|s| ends.first().is_none_or(|(first, _)| s < first));
    for (at, failed) in ends {
        if let Some(from) = start
            && at > from
        {
            lives.push(Life {
                hours: hours(from, at),
                failed,
            });
        }
        start = Some(at);
    }
    if let Some(from) = start
        && now > from
    {
        lives.push(Life {
            hours: hours(from, now),
            failed: false,
        });
    }
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
    params(("assetType" = Option<String>, Query), ("preventiveCost" = Option<f64>, Query),
        ("failureCost" = Option<f64>, Query)),
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
    let mut items = Vec::with_capacity(by_type.len());
    for (asset_type, assets) in by_type {
        let mut lives = Vec::new();
        for asset in &assets {
            lives.extend(asset_lives(s.store.as_ref(), asset, now).await?);
        }
        items.push(report(asset_type, assets.len(), &lives, costs));
    }
    Ok(Json(ReliabilityReport { at: now, items }))
}

async fn asset_lives(
    store: &dyn Store,
    asset: &Asset,
    now: DateTime<Utc>,
) -> Result<Vec<Life>, mantis_store::Error> {
    let events: Vec<(DateTime<Utc>, MaintenanceEventKind)> = store
        .list_maintenance_events(Some(asset.id), 10_000)
        .await?
        .into_iter()
        .map(|e| (e.occurred_at, e.kind))
        .collect();
    let mut data_start: Option<DateTime<Utc>> = None;
    for sensor in store.list_sensors(Some(asset.id)).await? {
        let first = store
            .first_features(sensor.id, DateTime::<Utc>::UNIX_EPOCH, now, 1)
            .await?;
        if let Some(f) = first.first() {
            data_start = Some(data_start.map_or(f.window_start, |d| d.min(f.window_start)));
        }
    }
    Ok(lives_of(&events, data_start, now))
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
        Ok(w) => {
            out.weibull = Some(w);
            out.failure_rate = Some(if w.shape < 0.95 {
                "decreasing"
            } else if w.shape <= 1.05 {
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
                         with age (or not enough within three characteristic lives)"
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
        let events = [
            (t(700), Repair),
            (t(500), Failure),
            (t(900), Replacement),
            (t(1000), Inspection),
        ];
        assert_eq!(
            lives_of(&events, Some(t(100)), t(1200)),
            vec![
                Life {
                    hours: 400.0,
                    failed: true
                },
                Life {
                    hours: 400.0,
                    failed: false
                },
                Life {
                    hours: 300.0,
                    failed: false
                },
            ]
        );
        // Data that starts after the first renewal: that first life's start is unknown.
        assert_eq!(lives_of(&events, Some(t(600)), t(1200)).len(), 2);
        assert_eq!(lives_of(&events, None, t(1200)).len(), 2);
        assert_eq!(
            lives_of(&[], Some(t(100)), t(1200)),
            vec![Life {
                hours: 1100.0,
                failed: false
            }]
        );
    }
}
