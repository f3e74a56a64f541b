//! Live updates over one WebSocket (`/ws`): alerts as they are raised (from `alerts.critical`)
//! and as people acknowledge or assign them, work-order changes, and the live tail of one asset's
//! readings.
//!
//! Memory stays bounded whatever the clients do: a tenant's events go through one broadcast
//! ring of `ws_buffer` entries shared by its clients (one ring per tenant with a client
//! connected, so one tenant's burst never makes another's clients skip, and what a client is
//! told it missed counts its own tenant's events only); a client that reads too slowly skips
//! ahead and is told how much it missed (`lagged`); an asset's readings are polled once a second by one
//! poller shared by every client that tails it (the store sees one query per sensor and second
//! whatever the number of screens) and sent as the latest values per sensor, so a slow reader
//! gets fresher data, never a backlog.

use crate::api::{ApiState, tenant_asset};
use crate::auth::{Presented, Principal};
use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use mantis_bus::Position;
use mantis_domain::{Alert, AlertId, AssetId, SensorId, TenantId};
use mantis_runtime::{HandleError, Handler, RecordContext};
use mantis_store::{AlertRecord, Store, WorkOrderRecord};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// What a client can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Channel {
    Alerts,
    WorkOrders,
    Readings,
}

/// One event for the clients of one tenant.
pub(crate) struct LiveEvent {
    tenant: TenantId,
    channel: Channel,
    json: String,
}

/// Each tenant's ring of events, while it has clients.
type Rings = Mutex<HashMap<TenantId, broadcast::Sender<Arc<LiveEvent>>>>;

/// Distributes events to every connected client of their tenant.
#[derive(Clone)]
pub(crate) struct LiveHub {
    rings: Arc<Rings>,
    buffer: usize,
    tails: ReadingTails,
    recent: Arc<RecentEvents>,
    /// When the first client of an unbroken run of connected clients connected.
    clients_since: Arc<Mutex<Option<DateTime<Utc>>>>,
}

/// The versions of work orders and alerts sent lately (digests), so that a change reaching
/// the hub twice (sent as this replica made it, then read from the store's change feed) is
/// sent once.
#[derive(Default)]
struct RecentEvents(Mutex<(HashSet<u64>, VecDeque<u64>)>);

/// Versions remembered by [`RecentEvents`].
const RECENT_EVENTS: usize = 4096;

impl RecentEvents {
    /// Whether `version` was not sent lately (and remembers it).
    fn first_time(&self, version: &impl std::hash::Hash) -> bool {
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        version.hash(&mut h);
        let digest = h.finish();
        let mut recent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, order) = &mut *recent;
        if !seen.insert(digest) {
            return false;
        }
        order.push_back(digest);
        if order.len() > RECENT_EVENTS
            && let Some(old) = order.pop_front()
        {
            seen.remove(&old);
        }
        true
    }
}

impl LiveHub {
    pub(crate) fn new(buffer: usize) -> Self {
        Self {
            rings: Arc::default(),
            buffer: buffer.max(1),
            tails: ReadingTails::default(),
            recent: Arc::default(),
            clients_since: Arc::default(),
        }
    }

    /// A receiver of `tenant`'s events from now on.
    fn subscribe(&self, tenant: TenantId) -> broadcast::Receiver<Arc<LiveEvent>> {
        // A panic while holding the map cannot leave it inconsistent (single inserts and
        // removals), so a poisoned lock is used as is.
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        // The rings of tenants whose clients have all left are dropped on the way.
        rings.retain(|_, tx| tx.receiver_count() > 0);
        {
            let mut since = self
                .clients_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if rings.is_empty() || since.is_none() {
                *since = Some(Utc::now());
            }
        }
        rings
            .entry(tenant)
            .or_insert_with(|| broadcast::channel(self.buffer).0)
            .subscribe()
    }

    /// The tenants with a ring (tests).
    #[cfg(test)]
    fn rings(&self) -> usize {
        self.rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn send(&self, tenant: TenantId, channel: Channel, kind: &str, data: &impl Serialize) {
        let json = match serde_json::to_string(&serde_json::json!({"type": kind, "data": data})) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "live event not serialisable");
                return;
            }
        };

        // No connected client is fine: everything is in the store and listed by the API.
        let clients = {
            let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
            match rings.get(&tenant).map(|tx| {
                tx.send(Arc::new(LiveEvent {
                    tenant,
                    channel,
                    json,
                }))
            }) {
                Some(Ok(clients)) => clients,
                Some(Err(_)) => {
                    // Its last client has left.
                    rings.remove(&tenant);
                    0
                }
                None => 0,
            }
        };
        metrics::counter!("mantis_ws_events_total", "channel" => kind.to_owned())
            .increment(clients as u64);
    }

    /// Sends `alert` as it stands now (raised, or changed by this replica), unless the change
    /// feed was quicker (every change of an alert has a later `changed_at`, so a state is
    /// never sent twice nor taken for another).
    pub(crate) fn alert_changed(&self, alert: &AlertRecord, tenant: TenantId) {
        if self.recent.first_time(&alert_version(alert)) {
            self.send(tenant, Channel::Alerts, "alert", alert);
        }
    }

    /// Sends `order` as changed by this replica, unless the change feed was quicker (every
    /// change of a work order has a later `updated_at`, so a version is never sent twice nor
    /// taken for another).
    pub(crate) fn work_order_changed(&self, order: &WorkOrderRecord, tenant: TenantId) {
        if self.recent.first_time(&work_order_version(order)) {
            self.send(tenant, Channel::WorkOrders, "workOrder", order);
        }
    }

    /// Sends `alert` as the change feed read it, unless this replica sent that state lately.
    fn alert_read(&self, alert: &AlertRecord, tenant: TenantId) {
        if self.recent.first_time(&alert_version(alert)) {
            self.send(tenant, Channel::Alerts, "alert", alert);
        }
    }

    /// Sends `order` as the change feed read it, unless this replica sent that version lately.
    fn work_order_read(&self, order: &WorkOrderRecord, tenant: TenantId) {
        if self.recent.first_time(&work_order_version(order)) {
            self.send(tenant, Channel::WorkOrders, "workOrder", order);
        }
    }

    /// Since when a client has been connected without a break; `None` when none is.
    fn clients_since(&self) -> Option<DateTime<Utc>> {
        // Both under the rings' lock (the order `subscribe` takes them in), so a client
        // subscribing meanwhile is not missed.
        let rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let connected = rings.values().any(|tx| tx.receiver_count() > 0);
        let mut since = self
            .clients_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *since = match (connected, *since) {
            (false, _) => None,
            (true, None) => Some(Utc::now()),
            (true, Some(at)) => Some(at),
        };
        *since
    }
}

/// An alert's state as the live feed tells it apart (times to the millisecond, as the
/// databases keep them).
fn alert_version(alert: &AlertRecord) -> impl std::hash::Hash + '_ {
    (
        "alert",
        alert.alert.id,
        alert.acknowledged_at.map(|t| t.timestamp_millis()),
        alert.changed_at.map(|t| t.timestamp_millis()),
        alert.assignee.as_deref(),
    )
}

/// A work order's version: its last change, to the millisecond.
fn work_order_version(order: &WorkOrderRecord) -> impl std::hash::Hash {
    (
        "workOrder",
        order.order.id,
        order.updated_at.timestamp_millis(),
    )
}

/// How often each replica reads the store's change feed for its clients.
const CHANGES_EVERY: Duration = Duration::from_secs(1);
/// How far back each read of the change feed looks (from now): a change is found by every
/// read within this span of its stamp, so one stamped by a writer whose clock is a little
/// behind, or committed a moment after a later one, is still found (each version is sent
/// once). A writer's clock ahead only keeps its changes in view longer.
const CHANGES_OVERLAP: chrono::Duration = chrono::Duration::seconds(10);
/// Changes read at a time (pages follow while they come full).
const CHANGES_PAGE: u32 = 2000;
/// Assets whose tenant is remembered before the memory is cleared.
const TENANTS_REMEMBERED: usize = 100_000;

/// Sends the clients of this replica the work orders changed and the alerts acknowledged or assigned by
/// anyone (another gateway replica, the orchestrator opening or escalating work, the
/// planner), read from the store every [`CHANGES_EVERY`], until `shutdown`. The changes this
/// replica makes are sent at once as well (and not again from here: see [`RecentEvents`]).
pub(crate) async fn follow_changes(
    hub: LiveHub,
    store: Arc<dyn Store>,
    shutdown: tokio_util::sync::CancellationToken,
) -> mantis_runtime::Result<()> {
    let mut feed = ChangeFeed {
        hub,
        store: store.clone(),
        orders_sent: HashMap::new(),
        alerts_sent: HashMap::new(),
        tenants: AssetTenants::new(store),
        watching_since: None,
    };
    let mut every = tokio::time::interval(CHANGES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        if let Err(e) = feed.read(Utc::now()).await {
            tracing::debug!(error = %e, "change feed not read; next time");
        }
    }
}

struct ChangeFeed {
    hub: LiveHub,
    store: Arc<dyn Store>,
    /// The versions read within the overlap: one read again is not sent again.
    orders_sent: HashMap<mantis_domain::WorkOrderId, DateTime<Utc>>,
    alerts_sent: HashMap<AlertId, DateTime<Utc>>,
    tenants: AssetTenants,
    /// Since when a client has been connected: what was stamped before is in the lists the
    /// clients loaded through the API as they connected, and is not sent.
    watching_since: Option<DateTime<Utc>>,
}

impl ChangeFeed {
    async fn read(&mut self, now: DateTime<Utc>) -> Result<(), mantis_store::Error> {
        let Some(connected) = self.hub.clients_since() else {
            // Nobody to tell: what changes meanwhile is in the API when someone connects.
            self.watching_since = None;
            self.orders_sent.clear();
            self.alerts_sent.clear();
            return Ok(());
        };
        let watching_since = *self.watching_since.get_or_insert(connected);
        let since = now - CHANGES_OVERLAP;
        // Page after page (a burst of more than a page within the span is read whole); a full
        // page of one time only ends it (what is read again is not sent again anyway).
        let mut from = since;
        loop {
            let orders = self
                .store
                .work_orders_changed_since(from, CHANGES_PAGE)
                .await?;
            for record in &orders {
                let id = record.order.id;
                if self.orders_sent.get(&id) == Some(&record.updated_at) {
                    continue;
                }
                // Noted as sent only once its tenant is known (a lookup that fails is tried
                // again at the next read).
                let tenant = if record.updated_at >= watching_since {
                    self.tenants.of(record.order.asset_id).await?
                } else {
                    None
                };
                if let Some(tenant) = tenant {
                    self.hub.work_order_read(record, tenant);
                }
                self.orders_sent.insert(id, record.updated_at);
            }
            match orders.last() {
                Some(last) if orders.len() == CHANGES_PAGE as usize && last.updated_at > from => {
                    from = last.updated_at;
                }
                _ => break,
            }
        }
        let mut from = since;
        loop {
            let changes = self.store.alerts_changed_since(from, CHANGES_PAGE).await?;
            let mut last_at = None;
            for record in &changes {
                let Some(at) = record.changed_at else {
                    continue;
                };
                last_at = Some(at);
                if self.alerts_sent.get(&record.alert.id) == Some(&at) {
                    continue;
                }
                let tenant = if at >= watching_since {
                    self.tenants.of(record.alert.asset_id).await?
                } else {
                    None
                };
                if let Some(tenant) = tenant {
                    self.hub.alert_read(record, tenant);
                }
                self.alerts_sent.insert(record.alert.id, at);
            }
            match last_at {
                Some(at) if changes.len() == CHANGES_PAGE as usize && at > from => from = at,
                _ => break,
            }
        }
        // Only what the next reads can see again is remembered.
        self.orders_sent.retain(|_, at| *at >= since);
        self.alerts_sent.retain(|_, at| *at >= since);
        Ok(())
    }
}

/// The tenants of assets, read from the store once each (at most [`TENANTS_REMEMBERED`] kept).
struct AssetTenants {
    store: Arc<dyn Store>,
    known: HashMap<AssetId, TenantId>,
}

impl AssetTenants {
    fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            known: HashMap::new(),
        }
    }

    /// The tenant of `asset`; none when it is not registered (shown to nobody; not
    /// remembered, so its later tenant is found).
    async fn of(&mut self, asset: AssetId) -> Result<Option<TenantId>, mantis_store::Error> {
        if let Some(t) = self.known.get(&asset) {
            return Ok(Some(*t));
        }
        let Some(found) = self.store.get_asset(asset).await? else {
            return Ok(None);
        };
        if self.known.len() >= TENANTS_REMEMBERED {
            self.known.clear();
        }
        self.known.insert(asset, found.tenant_id);
        Ok(Some(found.tenant_id))
    }
}

/// Consumes `alerts.critical` and hands each new alert, once, to the hub.
pub(crate) struct AlertFanOut {
    hub: LiveHub,
    tenants: AssetTenants,
    seen: HashSet<AlertId>,
    order: VecDeque<AlertId>,
}

const REMEMBERED: usize = 4096;

impl AlertFanOut {
    pub(crate) fn new(hub: LiveHub, store: Arc<dyn Store>) -> Self {
        Self {
            hub,
            tenants: AssetTenants::new(store),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// The tenant of `asset`; none when it is not registered (the API shows its alerts to
    /// nobody, and so does the live feed).
    async fn tenant_of(&mut self, asset: AssetId) -> Result<Option<TenantId>, HandleError> {
        Ok(self.tenants.of(asset).await?)
    }
}

#[async_trait]
impl Handler for AlertFanOut {
    type Input = Alert;

    async fn handle(
        &mut self,
        alert: &Alert,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        if !self.seen.contains(&alert.id) {
            let Some(tenant) = self.tenant_of(alert.asset_id).await? else {
                tracing::debug!(alert = %alert.id, asset = %alert.asset_id, "alert of an unregistered asset: not sent live");
                return Ok(ctx.done());
            };
            self.seen.insert(alert.id);
            self.order.push_back(alert.id);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
            let record = AlertRecord {
                alert: alert.clone(),
                acknowledged_by: None,
                acknowledged_at: None,
                ack_note: String::new(),
                assignee: None,
                changed_at: None,
            };
            self.hub.alert_changed(&record, tenant);
        }
        Ok(ctx.done())
    }
}

/// A message from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        channel: Channel,
        #[serde(rename = "assetId")]
        asset_id: Option<AssetId>,
    },
    Unsubscribe {
        channel: Channel,
    },
    Ping,
}

/// How often subscribed readings are polled and sent.
const READINGS_EVERY: Duration = Duration::from_secs(1);

/// How far behind the clock the live tail reads: readings are taken from the pipeline into the
/// store within this time (the bus and the preprocessing's batch), so none is passed over.
const TAIL_SETTLE: chrono::Duration = chrono::Duration::seconds(2);

/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// `GET /ws`: upgrades an authenticated request (bearer token, API key, the token offered as
/// the subprotocol `bearer.<token>` beside `mantis.v1` — the browser's way — or `?token=`).
/// The answer names `mantis.v1` when the client offered it.
pub(crate) async fn ws(
    upgrade: WebSocketUpgrade,
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Extension(presented): Extension<Presented>,
) -> Response {
    let rx = s.live.subscribe(who.tenant_id);
    upgrade
        .protocols([crate::auth::WS_PROTOCOL])
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(socket, s, who, presented, rx))
}

/// The readings tails in progress: one poller per asset, shared by the clients that tail it and
/// stopped when the last of them leaves.
#[derive(Clone, Default)]
pub(crate) struct ReadingTails {
    by_asset: Arc<Mutex<HashMap<AssetId, Weak<TailPoller>>>>,
}

/// The poller of one asset; dropping the last handle stops it.
pub(crate) struct TailPoller {
    sensors: Vec<SensorId>,
    updates: watch::Receiver<Option<Arc<str>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TailPoller {
    fn drop(&mut self) {
        self.task.abort();
        metrics::gauge!("mantis_ws_reading_pollers").decrement(1.0);
    }
}

/// A client's share of a tail: the poller and its own view of the latest update.
struct TailSubscription {
    _poller: Arc<TailPoller>,
    updates: watch::Receiver<Option<Arc<str>>>,
}

impl ReadingTails {
    /// The tail of `asset` (whose sensors are `sensors`), started unless another client runs
    /// it over the same sensors (a client that found a sensor more gets a poller that reads it;
    /// the earlier clients keep theirs until they subscribe again).
    fn subscribe(
        &self,
        store: Arc<dyn Store>,
        asset: AssetId,
        sensors: Vec<SensorId>,
    ) -> Arc<TailPoller> {
        let mut map = self
            .by_asset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, p| p.strong_count() > 0);
        if let Some(running) = map.get(&asset).and_then(Weak::upgrade)
            && running.sensors == sensors
            && !running.task.is_finished()
        {
            return running;
        }
        let (tx, updates) = watch::channel(None);
        let task = tokio::spawn(poll_tail(store, asset, sensors.clone(), tx));
        metrics::gauge!("mantis_ws_reading_pollers").increment(1.0);
        let poller = Arc::new(TailPoller {
            sensors,
            updates,
            task,
        });
        map.insert(asset, Arc::downgrade(&poller));
        poller
    }

    /// Assets with a running poller.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.by_asset
            .lock()
            .map(|m| m.values().filter(|p| p.strong_count() > 0).count())
            .unwrap_or(0)
    }
}

/// Once a second, the newest value of each sensor of `asset` since the previous second, to
/// every subscriber (a subscriber that has not read the previous one sees only this one).
async fn poll_tail(
    store: Arc<dyn Store>,
    asset: AssetId,
    sensors: Vec<SensorId>,
    tx: watch::Sender<Option<Arc<str>>>,
) {
    let mut since = Utc::now() - TAIL_SETTLE - chrono::Duration::seconds(2);
    let mut ticker = tokio::time::interval(READINGS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        // Readings are read once they have had time to be stored: a reading stamped just
        // before a read but stored just after it would be behind every later read.
        let until = Utc::now() - TAIL_SETTLE;
        // The task ends when the last client's handle drops (TailPoller aborts it).
        if let Some(json) = readings_update(store.as_ref(), asset, &sensors, since, until).await {
            since = until;
            tx.send_replace(Some(json.into()));
        }
    }
}

async fn session(
    mut socket: WebSocket,
    s: ApiState,
    who: Principal,
    presented: Presented,
    mut rx: broadcast::Receiver<Arc<LiveEvent>>,
) {
    metrics::gauge!("mantis_ws_clients").increment(1.0);
    let hello = serde_json::json!({"type": "hello", "user": who}).to_string();
    let mut channels: HashSet<Channel> = HashSet::new();
    let mut tail: Option<TailSubscription> = None;
    // Credentials are checked again on this period: expiry, disabled user, changed password or
    // role, revoked key.
    let mut recheck = tokio::time::interval(s.ws_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    recheck.tick().await;
    // The client is pinged on the same period and must be heard from (a pong, which browsers
    // send by themselves, or any message) within three of them: a client that vanished without
    // closing (a dropped network path) does not keep its session, and its poller, forever.
    let silence_limit = s.ws_recheck.saturating_mul(3);
    let mut last_heard = tokio::time::Instant::now();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        metrics::gauge!("mantis_ws_clients").decrement(1.0);
        return;
    }
    loop {
        let outgoing: Option<String> = tokio::select! {
            event = rx.recv() => match event {
                Ok(event) => (event.tenant == who.tenant_id && channels.contains(&event.channel))
                    .then(|| event.json.clone()),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, user = %who.username, "WebSocket client too slow; skipped events");
                    metrics::counter!("mantis_ws_lagged_total").increment(skipped);
                    Some(serde_json::json!({"type": "lagged", "skipped": skipped}).to_string())
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = recheck.tick() => {
                if last_heard.elapsed() > silence_limit {
                    metrics::counter!("mantis_ws_silent_closed_total").increment(1);
                    close(&mut socket, 4408, "no answer to pings", s.ws_recheck).await;
                    break;
                }
                match presented.recheck(&s.auth).await {
                    Ok(now) if now.role == who.role && now.tenant_id == who.tenant_id => {
                        let ping = socket.send(Message::Ping(Default::default()));
                        if !matches!(tokio::time::timeout(s.ws_recheck, ping).await, Ok(Ok(()))) {
                            break;
                        }
                        None
                    }
                    Ok(_) => {
                        // The same credentials give other rights now (a role changed): the
                        // client reconnects, and its subscriptions are checked again.
                        close(&mut socket, 4403, "rights changed; reconnect", s.ws_recheck).await;
                        break;
                    }
                    Err(p) if p.status == 401 => {
                        close(
                            &mut socket,
                            4401,
                            "credentials expired or changed; log in again",
                            s.ws_recheck,
                        )
                        .await;
                        break;
                    }
                    Err(p) => {
                        // They could not be checked (the store is down): the client reconnects
                        // with back-off rather than being logged out.
                        tracing::warn!(status = p.status, detail = %p.detail, "live session's credentials not checked; closed");
                        close(&mut socket, 1011, "credentials not checked; reconnect", s.ws_recheck)
                            .await;
                        break;
                    }
                }
            }
            changed = next_update(tail.as_mut()), if tail.is_some() => match changed {
                Some(json) => Some(json.to_string()),
                None => {
                    tail = None; // the poller stopped
                    None
                }
            },
            incoming = socket.recv() => {
                if matches!(incoming, Some(Ok(_))) {
                    last_heard = tokio::time::Instant::now();
                }
                match incoming {
                    Some(Ok(Message::Text(text))) => match s.auth.rate_limit(&who.rate_key()) {
                        Ok(()) => {
                            Some(handle_client(&s, &who, text.as_str(), &mut channels, &mut tail).await)
                        }
                        Err(_) => Some(error_json("too many messages; slow down")),
                    },
                    Some(Ok(Message::Binary(_))) => Some(error_json("send JSON text messages")),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => None,
                }
            }
        };
        // Bounded: a client gone without closing fills the connection's send buffer, and a
        // send that waits for it would keep the session (and its poller) for as long as TCP
        // takes to give up.
        if let Some(json) = outgoing
            && !matches!(
                tokio::time::timeout(s.ws_recheck, socket.send(Message::Text(json.into()))).await,
                Ok(Ok(()))
            )
        {
            break;
        }
    }
    metrics::gauge!("mantis_ws_clients").decrement(1.0);
}

/// Ends a session with `code` and `reason` (best effort, within `limit`: the client may be
/// gone).
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, limit: Duration) {
    let frame = axum::extract::ws::CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(limit, socket.send(Message::Close(Some(frame)))).await;
}

/// The tail's next update (`None` once its poller stopped).
async fn next_update(tail: Option<&mut TailSubscription>) -> Option<Arc<str>> {
    let t = tail?;
    loop {
        t.updates.changed().await.ok()?;
        if let Some(json) = t.updates.borrow_and_update().clone() {
            return Some(json);
        }
    }
}

fn error_json(detail: &str) -> String {
    serde_json::json!({"type": "error", "detail": detail}).to_string()
}

async fn handle_client(
    s: &ApiState,
    who: &Principal,
    text: &str,
    channels: &mut HashSet<Channel>,
    tail: &mut Option<TailSubscription>,
) -> String {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return error_json(&format!("not a valid message: {e}")),
    };
    match message {
        ClientMessage::Ping => serde_json::json!({"type": "pong"}).to_string(),
        ClientMessage::Unsubscribe { channel } => {
            channels.remove(&channel);
            if channel == Channel::Readings {
                *tail = None;
            }
            serde_json::json!({"type": "unsubscribed", "channel": channel}).to_string()
        }
        ClientMessage::Subscribe { channel, asset_id } => {
            if channel == Channel::Readings {
                let Some(asset) = asset_id else {
                    return error_json("the readings channel needs an assetId");
                };
                if tenant_asset(s.store.as_ref(), who, asset).await.is_err() {
                    return error_json("no such asset");
                }
                let sensors = match s.store.list_sensors(Some(asset)).await {
                    Ok(list) => list.into_iter().map(|x| x.id).collect(),
                    Err(_) => return error_json("the store is unavailable; try again"),
                };
                let poller = s.live.tails.subscribe(s.store.clone(), asset, sensors);
                let mut updates = poller.updates.clone();
                // What this client sees starts with the next update.
                updates.mark_unchanged();
                *tail = Some(TailSubscription {
                    _poller: poller,
                    updates,
                });
            }
            channels.insert(channel);
            serde_json::json!({"type": "subscribed", "channel": channel, "assetId": asset_id})
                .to_string()
        }
    }
}

/// The newest value of each of `sensors` of `asset` in `[since, now)`; `None` without any.
async fn readings_update(
    store: &dyn Store,
    asset: AssetId,
    sensors: &[SensorId],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<String> {
    let mut data = Vec::new();
    for sensor in sensors {
        // One bucket over the whole interval: its mean is the value shown; min/max travel too.
        let span = (now - since).num_milliseconds().max(1);
        match store.reading_buckets(*sensor, since, now, span).await {
            Ok(buckets) => {
                if let Some(b) = buckets.last() {
                    data.push(serde_json::json!({
                        "sensorId": sensor,
                        "t": now,
                        "value": b.avg.is_finite().then_some(b.avg),
                        "min": b.min.is_finite().then_some(b.min),
                        "max": b.max.is_finite().then_some(b.max),
                        "n": b.count,
                    }));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "readings tail: store unavailable");
                return None;
            }
        }
    }
    (!data.is_empty()).then(|| {
        serde_json::json!({"type": "readings", "assetId": asset, "data": data}).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_store::sqlite::SqliteStore;

    #[tokio::test]
    async fn an_alert_of_an_unregistered_asset_goes_to_no_tenant() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
        let mut fan_out = AlertFanOut::new(LiveHub::new(8), store.clone());
        let asset = mantis_domain::Asset {
            id: AssetId::new_random(),
            tenant_id: TenantId::new_random(),
            code: "PMP-1".into(),
            name: "pump".into(),
            asset_type: "pump".into(),
            location: String::new(),
            criticality: mantis_domain::Criticality::Low,
        };
        assert_eq!(
            fan_out.tenant_of(asset.id).await.expect("read"),
            None,
            "not the default tenant's"
        );
        store.upsert_asset(&asset).await.expect("registered");
        assert_eq!(
            fan_out.tenant_of(asset.id).await.expect("read"),
            Some(asset.tenant_id),
            "found once registered"
        );
    }

    #[tokio::test]
    async fn each_tenant_has_its_own_ring_so_another_tenants_burst_is_neither_seen_nor_counted() {
        let hub = LiveHub::new(8);
        let (a, b) = (TenantId::new_random(), TenantId::new_random());
        let mut rx_a = hub.subscribe(a);
        let mut rx_b = hub.subscribe(b);
        let data = serde_json::json!({"n": 0});
        for _ in 0..100 {
            hub.send(a, Channel::Alerts, "alert", &data);
        }
        hub.send(b, Channel::Alerts, "alert", &data);
        let own = rx_b.recv().await.expect("b's own event, not a lag");
        assert_eq!(own.tenant, b);
        assert!(rx_b.try_recv().is_err(), "nothing of a's reaches b");
        match rx_a.recv().await {
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                assert_eq!(skipped, 92, "a's own events only")
            }
            other => panic!(
                "a lagged behind its own burst: {:?}",
                other.map(|e| e.tenant)
            ),
        }
        // A tenant without clients has no ring (its events go nowhere: they are in the store).
        drop(rx_a);
        hub.send(a, Channel::Alerts, "alert", &data);
        assert_eq!(hub.rings(), 1);
        drop(rx_b);
        let _c = hub.subscribe(TenantId::new_random());
        assert_eq!(hub.rings(), 1, "rings without receivers dropped on the way");
    }

    #[tokio::test]
    async fn clients_tailing_one_asset_share_one_poller_stopped_by_the_last_to_leave() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
        let tails = ReadingTails::default();
        let (pump, fan) = (AssetId::new_random(), AssetId::new_random());
        let sensors = vec![SensorId::new_random()];
        let first = tails.subscribe(store.clone(), pump, sensors.clone());
        let second = tails.subscribe(store.clone(), pump, sensors.clone());
        assert!(Arc::ptr_eq(&first, &second), "one poller per asset");
        let polling = first.task.abort_handle();
        let other = tails.subscribe(store.clone(), fan, vec![]);
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(tails.running(), 2);
        drop(first);
        assert_eq!(tails.running(), 2, "a client still tails the pump");
        tokio::task::yield_now().await;
        assert!(!polling.is_finished());
        drop(second);
        assert_eq!(
            tails.running(),
            1,
            "the pump's poller stopped with its last client"
        );
        for _ in 0..100 {
            if polling.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(polling.is_finished(), "the poller's task ended");
        drop(other);
        assert_eq!(tails.running(), 0);
        // A client arriving later gets a fresh poller; one that knows another sensor, its own.
        let again = tails.subscribe(store.clone(), pump, sensors.clone());
        assert!(!again.task.is_finished());
        let more = tails.subscribe(store, pump, vec![sensors[0], SensorId::new_random()]);
        assert!(!Arc::ptr_eq(&again, &more));
        assert_eq!(more.sensors.len(), 2);
    }
}
