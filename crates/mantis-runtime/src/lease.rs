//! Work that one replica of a service does at a time, under a lease in the store
//! ([`mantis_store::Store::acquire_lease`]): the orchestrator's overdue sweep, an automatic model
//! training, the ingestion service's device sources.

use mantis_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// This process's name in the leases it holds, `<name>#<pid>.<random>`: `instance` (else the
/// `HOSTNAME` variable, a pod's name in Kubernetes, else the machine's host name, else
/// `fallback`), then the process id and a random suffix after the last `#` (what others show
/// of a holder is the part before it), so that two processes given one name (two on one host, one configuration
/// shared by several) never both take themselves for the holder of one lease.
pub fn lease_holder(instance: Option<&str>, fallback: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let name = instance
        .filter(|h| !h.trim().is_empty())
        .map_or_else(|| host_name(fallback), str::to_owned);
    let suffix = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{name}#{}.{:06x}", std::process::id(), suffix & 0xff_ffff)
}

/// This machine's name: the `HOSTNAME` variable (a pod's name in Kubernetes), else the host
/// name, else `fallback`.
pub fn host_name(fallback: &str) -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

/// What others show of `holder` (see [`lease_holder`]): its name, without the process id and
/// suffix.
pub fn holder_name(holder: &str) -> &str {
    holder.rsplit_once('#').map_or(holder, |(name, _)| name)
}

/// Runs `work` while `holder` holds the lease `name`, renewed every third of `ttl` while it
/// runs and given back when it ends; `Ok(None)` without running it when another holder has the
/// lease ([`hold`] says which). A lease that cannot be renewed (the store down, or lost to another holder after the
/// clocks drifted apart) is logged and `work` goes on: what it does must tolerate being done
/// twice now and then (a second training of the same model, say), the lease only keeps the
/// replicas from doing it twice as a rule.
pub async fn while_holding<T>(
    store: &dyn Store,
    name: &str,
    holder: &str,
    ttl: Duration,
    work: impl Future<Output = T>,
) -> Result<Option<T>, mantis_store::Error> {
    Ok(hold(store, name, holder, ttl, work).await?.ok())
}

/// [`while_holding`], answering `Err` with the lease as another holder holds it when `work`
/// did not run.
pub async fn hold<T>(
    store: &dyn Store,
    name: &str,
    holder: &str,
    ttl: Duration,
    work: impl Future<Output = T>,
) -> Result<Result<T, mantis_store::Lease>, mantis_store::Error> {
    hold_watched(store, name, holder, ttl, |_| work).await
}

/// Whether the lease of a [`hold_watched`] work may be another holder's now: taken by one, or
/// not renewed in time (the store away) — it lapses before the next renewal.
#[derive(Clone, Debug, Default)]
pub struct LeaseWatch(Arc<AtomicBool>);

impl LeaseWatch {
    /// Whether the lease is lost (for good: a work told so stops).
    pub fn lost(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Says the lease is lost (tests).
    #[cfg(test)]
    pub(crate) fn lose(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// [`hold`], handing `work` a [`LeaseWatch`]: a work that must not run beside another holder's
/// (each would do what the other has not recorded yet) stops once its lease is lost.
pub async fn hold_watched<T, F: Future<Output = T>>(
    store: &dyn Store,
    name: &str,
    holder: &str,
    ttl: Duration,
    work: impl FnOnce(LeaseWatch) -> F,
) -> Result<Result<T, mantis_store::Lease>, mantis_store::Error> {
    let lease = store
        .acquire_lease(name, holder, chrono::Utc::now(), ttl)
        .await?;
    if !lease.is_held_by(holder) {
        return Ok(Err(lease));
    }
    let mut expires = lease.expires_at;
    let period = (ttl / 3).max(Duration::from_millis(10));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = LeaseWatch::default();
    let mut work = std::pin::pin!(work(watch.clone()));
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = renew.tick() => {
                match store.acquire_lease(name, holder, chrono::Utc::now(), ttl).await {
                    Ok(l) if l.is_held_by(holder) => {
                        // Taken afresh: it had lapsed, and another holder may have had it since.
                        if l.acquired_at != lease.acquired_at {
                            watch.0.store(true, Ordering::Relaxed);
                            tracing::warn!(lease = name, "lease lapsed and taken afresh while its work runs");
                        }
                        expires = l.expires_at;
                    }
                    Ok(l) => {
                        watch.0.store(true, Ordering::Relaxed);
                        tracing::warn!(lease = name, holder = %l.holder, "lease taken by another holder while its work runs");
                    }
                    Err(e) => {
                        // Lapsing before the next renewal: another holder may take it then.
                        let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
                        if left <= period {
                            watch.0.store(true, Ordering::Relaxed);
                        }
                        tracing::warn!(lease = name, error = %e, "lease not renewed; its work goes on");
                    }
                }
            }
        }
    };
    // Given back at once, so another replica need not wait for it to lapse; only while it is
    // still the hold last seen (a late release never ends a newer one).
    if let Err(e) = store.release_lease(name, holder, Some(expires)).await {
        tracing::debug!(lease = name, error = %e, "lease not given back; it lapses");
    }
    Ok(Ok(out))
}

/// Whether the time noted under `key` in the store's state ([`note_time`]) is less than
/// `within` ago: e.g. a failure one replica met, which the others need not meet again before
/// it is time to try. A state that cannot be read counts as none.
pub async fn noted_within(store: &dyn Store, key: &str, within: Duration) -> bool {
    let noted = match store.get_state(key).await {
        Ok(v) => v.and_then(|v| v.get("atMs").and_then(serde_json::Value::as_i64)),
        Err(e) => {
            tracing::debug!(key, error = %e, "state not read");
            None
        }
    };
    let within_ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
    noted.is_some_and(|ms| {
        let ago = chrono::Utc::now().timestamp_millis().saturating_sub(ms);
        (0..within_ms).contains(&ago)
    })
}

/// Notes the time now under `key` in the store's state (see [`noted_within`]); a failure to
/// write is logged only.
pub async fn note_time(store: &dyn Store, key: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(e) = store
        .put_state(key, &serde_json::json!({ "atMs": now }))
        .await
    {
        tracing::debug!(key, error = %e, "state not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_store::sqlite::SqliteStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_time_noted_is_seen_within_its_span_by_anyone_sharing_the_store() {
        let store = SqliteStore::in_memory().await.expect("sqlite");
        let key = "svc.train.failed.x";
        assert!(!noted_within(&store, key, Duration::from_secs(60)).await);
        note_time(&store, key).await;
        assert!(noted_within(&store, key, Duration::from_secs(60)).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!noted_within(&store, key, Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn a_work_is_told_when_another_holder_takes_its_lease() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
        let (first, second) = ("a#1.000001", "b#2.000002");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task = {
            let store = store.clone();
            tokio::spawn(async move {
                let ttl = Duration::from_millis(300);
                hold_watched(store.as_ref(), "dlq.x", first, ttl, |watch| async move {
                    let _ = started_tx.send(());
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while !watch.lost() {
                        assert!(tokio::time::Instant::now() < deadline, "never told");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    "stopped"
                })
                .await
            })
        };
        started_rx.await.expect("started under its lease");
        // Taken from under it (its holder's clock drifted, say): told at its next renewal.
        assert!(
            store
                .release_lease("dlq.x", first, None)
                .await
                .expect("store")
        );
        let taken = store
            .acquire_lease("dlq.x", second, chrono::Utc::now(), Duration::from_secs(60))
            .await
            .expect("store");
        assert!(taken.is_held_by(second));
        let out = task.await.expect("joined").expect("store");
        assert_eq!(out.ok(), Some("stopped"));
        let still = store
            .acquire_lease("dlq.x", first, chrono::Utc::now(), Duration::from_secs(60))
            .await
            .expect("store");
        assert!(
            still.is_held_by(second),
            "its end gives back no lease of another"
        );
    }

    #[test]
    fn holders_of_one_name_differ() {
        let (a, b) = (
            lease_holder(Some("anomaly-0"), "anomaly"),
            lease_holder(Some("anomaly-0"), "anomaly"),
        );
        assert_eq!(holder_name(&a), "anomaly-0", "{a}");
        assert_ne!(a, b, "a random suffix each");
        assert!(!lease_holder(None, "rul").is_empty());
    }

    #[tokio::test]
    async fn work_runs_in_one_holder_at_a_time_renewed_while_it_runs_and_given_back() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
        let ttl = Duration::from_millis(300);
        let (first, second) = ("a#1#000001", "b#2#000002");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let long = {
            let store = store.clone();
            tokio::spawn(async move {
                while_holding(store.as_ref(), "svc.train.x", first, ttl, async move {
                    let _ = started_tx.send(());
                    let _ = finish_rx.await;
                    "first"
                })
                .await
            })
        };
        started_rx.await.expect("started");
        // Three lease durations later the first is still running and still holds the lease.
        tokio::time::sleep(ttl * 3).await;
        let refused = while_holding(store.as_ref(), "svc.train.x", second, ttl, async {
            "second"
        })
        .await
        .expect("store");
        assert_eq!(refused, None, "renewed while its work runs");
        let other = while_holding(store.as_ref(), "svc.train.y", second, ttl, async {
            "second"
        })
        .await
        .expect("store");
        assert_eq!(other, Some("second"), "another lease is free");
        finish_tx.send(()).expect("still running");
        assert_eq!(long.await.expect("joined").expect("store"), Some("first"));
        // Given back at its end: the other holder need not wait for it to lapse.
        let after = while_holding(
            store.as_ref(),
            "svc.train.x",
            second,
            Duration::from_secs(60),
            async { "second" },
        )
        .await
        .expect("store");
        assert_eq!(after, Some("second"));
    }
}
