//! The OPC UA source (async-opcua client).
//!
//! One session is one OPC UA session: make (once) or load the client's application instance
//! certificate from the PKI directory, get the server's endpoints, open a secure channel with
//! the configured policy and mode, activate a session (anonymous or user name/password), then
//! create one subscription with a monitored item per configured node (its sampling interval and
//! an absolute or percent deadband filter: report-by-exception, so a quiet plant sends little).
//! Every data change becomes a reading whose quality is the OPC UA status code's severity
//! (`node`). The subscription's publications, keep-alives included, are the watchdog's signs of
//! life.
//!
//! async-opcua can reconnect by itself; here it is told not to: when the connection is lost
//! (the server restarted, the network failed) the session ends, and the supervisor reconnects
//! with back-off and creates the subscription again — a restarted server has forgotten it.
//! A server that refuses us (wrong password, untrusted certificate) puts the source in state
//! `ERROR` with the reason in `lastError`; it keeps retrying at the back-off's pace.
//!
//! Layout: `node` (node ids, status → quality, data values → readings), this file (the
//! session, browsing).

pub(crate) mod node;

use crate::config::{DeadbandType, OpcUaConfig, OpcUaSecurityMode, OpcUaSecurityPolicy};
use crate::runtime::{BrowseError, BrowsedNode, SessionCtx, SessionError, Source};
use crate::sink::Unreadable;
use async_trait::async_trait;
use futures::StreamExt;
use mantis_domain::{IncomingReading, Quality, SensorRef, SourceProtocol};
use node::{Change, Mapped, NodeRef};
use opcua::client::{
    ClientBuilder, DataChangeCallback, IdentityToken, Password, Session, SessionPollResult,
    SubscriptionActivity,
};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataChangeFilter,
    DataChangeTrigger, DataValue, ExtensionObject, MessageSecurityMode, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeClass, NodeId, ObjectId, QualifiedName, ReadValueId,
    ReferenceTypeId, StatusCode, TimestampsToReturn,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest number of references returned by one browse.
const BROWSE_LIMIT: u32 = 1000;
/// Monitored items created per CreateMonitoredItems call (servers often allow 1 000 or fewer,
/// and bound the request size).
const MONITORED_ITEMS_PER_CALL: usize = 100;
/// Data changes per publish response: a bounded message (the server sends the rest in the
/// next responses) rather than one that outgrows the connection's message size limit when
/// thousands of items change at once.
const MAX_NOTIFICATIONS_PER_PUBLISH: u32 = 1000;
/// Subscriptions one session opens at most (a new one each time the server says the current
/// one holds as many monitored items as it allows).
const MAX_SUBSCRIPTIONS: usize = 64;
/// Data changes received and not yet handed to the sink, at most (about 100 bytes each). The
/// subscription's callback runs inside the client's event loop and must not wait: while the
/// sink stalls (the bus and the edge buffer both full), changes beyond this are counted as
/// lost (`mantis_connector_lost_observations_total`, status `lastError`) rather than held
/// until the process runs out of memory.
const MAX_PENDING_CHANGES: usize = 200_000;

/// Creating the client may write its certificate and key into a PKI directory shared by
/// several sources: one at a time.
static PKI_LOCK: Mutex<()> = Mutex::new(());

pub(crate) struct OpcUaSource {
    config: OpcUaConfig,
    nodes: Vec<(NodeRef, Mapped)>,
    pki_dir: PathBuf,
    /// The session while connected, for browsing.
    session: Mutex<Option<Arc<Session>>>,
    /// The last good value of each node (by index), carried by bad-quality readings.
    last_good: Mutex<HashMap<usize, f64>>,
}

/// What the session's event loop reports to the session.
enum LoopEvent {
    Connected,
    /// A publication (data or keep-alive) arrived: a sign of life.
    Alive,
    /// The connection is gone (or could not be made), with the status code's name.
    Lost(String),
}

impl OpcUaSource {
    /// A source for a validated configuration; `default_pki` is used when the configuration
    /// names no PKI directory.
    pub(crate) fn new(config: OpcUaConfig, default_pki: &Path) -> Result<Self, crate::ConfigError> {
        let mut nodes = Vec::with_capacity(config.nodes.len());
        for (i, n) in config.nodes.iter().enumerate() {
            let node = NodeRef::parse(&n.node_id).map_err(|e| crate::ConfigError {
                source_name: config.name.clone(),
                problems: vec![(format!("/nodes/{i}/node_id"), e)],
            })?;
            nodes.push((
                node,
                Mapped {
                    sensor: SensorRef::parse(&n.sensor),
                    unit: n.unit.clone(),
                },
            ));
        }
        let pki_dir = config
            .pki_dir
            .clone()
            .unwrap_or_else(|| default_pki.to_path_buf());
        Ok(Self {
            config,
            nodes,
            pki_dir,
            session: Mutex::new(None),
            last_good: Mutex::new(HashMap::new()),
        })
    }

    fn set_session(&self, s: Option<Arc<Session>>) {
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    fn current_session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn client_builder(&self) -> ClientBuilder {
        let c = &self.config;
        let request_timeout = Duration::from_millis(c.request_timeout_ms.max(1));
        ClientBuilder::new()
            .application_name(format!("MANTIS ingestion ({})", c.name))
            .application_uri(c.application_uri.clone())
            .product_uri("urn:mantis")
            .create_sample_keypair(true)
            .pki_dir(self.pki_dir.clone())
            .trust_server_certs(c.trust_server_certificate)
            .verify_server_certs(true)
            // The supervisor reconnects (and re-creates the subscription): no retries inside.
            .session_retry_limit(0)
            .recreate_subscriptions(false)
            .request_timeout(request_timeout)
            .keep_alive_interval(Duration::from_secs(10))
            .session_timeout(60_000)
            .session_name(format!("mantis-{}", c.name))
            // Informational only (the session is made from `endpoint()`); without one the
            // client warns on every connection.
            .endpoint(
                "configured",
                opcua::client::ClientEndpoint {
                    url: c.endpoint.clone(),
                    security_policy: c.security_policy.as_str().to_owned(),
                    security_mode: c.security_mode().as_str().to_owned(),
                    user_token_id: opcua::client::ANONYMOUS_USER_TOKEN_ID.to_owned(),
                },
            )
    }

    fn identity(&self) -> IdentityToken {
        match (&self.config.username, &self.config.password) {
            (Some(user), password) => IdentityToken::new_user_name(
                user.clone(),
                Password::new(password.as_ref().map(|p| p.expose()).unwrap_or("")),
            ),
            (None, _) => IdentityToken::Anonymous,
        }
    }

    fn endpoint(&self) -> (String, &'static str, MessageSecurityMode) {
        let c = &self.config;
        let policy = match c.security_policy {
            OpcUaSecurityPolicy::None => SecurityPolicy::None,
            OpcUaSecurityPolicy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
        };
        let mode = match c.security_mode() {
            OpcUaSecurityMode::None => MessageSecurityMode::None,
            OpcUaSecurityMode::Sign => MessageSecurityMode::Sign,
            OpcUaSecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        };
        (c.endpoint.clone(), policy.to_uri(), mode)
    }

    /// Explains a refused connection, with what to do about it.
    fn explain(&self, e: &opcua::types::Error) -> SessionError {
        let status = e.status();
        let code = node::describe(status);
        let refused = |why: String| SessionError::Rejected(why);
        match status {
            StatusCode::BadUserAccessDenied
            | StatusCode::BadIdentityTokenInvalid
            | StatusCode::BadIdentityTokenRejected => refused(format!(
                "the server refused the identity {}: {code}; check username and password",
                match &self.config.username {
                    Some(u) => format!("of user `{u}`"),
                    None => "anonymous".into(),
                }
            )),
            StatusCode::BadCertificateUntrusted
            | StatusCode::BadCertificateInvalid
            | StatusCode::BadSecurityChecksFailed
            | StatusCode::BadCertificateUriInvalid
            | StatusCode::BadCertificateHostNameInvalid
            | StatusCode::BadCertificateTimeInvalid => refused(format!(
                "certificate refused: {code} ({e}); a server certificate not yet trusted is in {}/rejected: move it to {}/trusted (or set trust_server_certificate, unsafe outside tests); the server must also trust MANTIS's certificate {}/own/cert.der",
                self.pki_dir.display(),
                self.pki_dir.display(),
                self.pki_dir.display()
            )),
            StatusCode::BadSecurityPolicyRejected | StatusCode::BadSecurityModeRejected => {
                refused(format!(
                    "the server offers no endpoint with security policy {} and mode {}: {code}",
                    self.config.security_policy.as_str(),
                    self.config.security_mode().as_str()
                ))
            }
            _ => SessionError::Connect(format!("{code}: {e}")),
        }
    }

    fn monitored_items(
        &self,
        index_of: impl Fn(&str) -> Option<u16>,
    ) -> (Vec<MonitoredItemCreateRequest>, Vec<(usize, String)>) {
        let c = &self.config;
        let mut items = Vec::new();
        let mut unresolved = Vec::new();
        for (i, ((node, _), conf)) in self.nodes.iter().zip(&c.nodes).enumerate() {
            let node_id = match node.resolve(&index_of) {
                Ok(id) => id,
                Err(e) => {
                    unresolved.push((i, e));
                    continue;
                }
            };
            let deadband = conf.deadband.unwrap_or(c.deadband);
            let filter = if deadband > 0.0 {
                ExtensionObject::from_message(DataChangeFilter {
                    trigger: DataChangeTrigger::StatusValue,
                    deadband_type: match c.deadband_type {
                        DeadbandType::Absolute => opcua::types::DeadbandType::Absolute as u32,
                        DeadbandType::Percent => opcua::types::DeadbandType::Percent as u32,
                    },
                    deadband_value: deadband,
                })
            } else {
                ExtensionObject::null()
            };
            items.push(MonitoredItemCreateRequest {
                item_to_monitor: ReadValueId {
                    node_id,
                    attribute_id: AttributeId::Value as u32,
                    index_range: Default::default(),
                    data_encoding: QualifiedName::null(),
                },
                monitoring_mode: MonitoringMode::Reporting,
                requested_parameters: MonitoringParameters {
                    // The handle is the node's index + 1 (0 means "choose one").
                    client_handle: (i + 1) as u32,
                    sampling_interval: conf.sampling_interval_ms.unwrap_or(c.sampling_interval_ms),
                    filter,
                    queue_size: c.queue_size,
                    discard_oldest: true,
                },
            });
        }
        (items, unresolved)
    }

    /// A quality-0 reading of node `i` saying `reason`.
    fn bad(&self, i: usize, reason: &str) -> Option<IncomingReading> {
        let (_, m) = self.nodes.get(i)?;
        let last = self
            .last_good
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&i)
            .copied()
            .unwrap_or(0.0);
        let mut metadata = BTreeMap::new();
        metadata.insert(IncomingReading::QUALITY_REASON.into(), reason.to_owned());
        Some(IncomingReading {
            timestamp: chrono::Utc::now(),
            asset_id: None,
            sensor: m.sensor.clone(),
            value: last,
            unit: m.unit.clone(),
            quality: Quality::new(0).unwrap_or_default(),
            metadata,
        })
    }

    /// Turns data changes into readings, and the values that are not readings into
    /// [`Unreadable`]s (counted, logged and shown in the status).
    fn readings(
        &self,
        ctx: &SessionCtx,
        changes: Vec<(u32, DataValue)>,
    ) -> (Vec<IncomingReading>, Vec<Unreadable>) {
        let now = chrono::Utc::now();
        let mut out = Vec::with_capacity(changes.len());
        let mut unreadable = Vec::new();
        let mut last_good = self
            .last_good
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (handle, dv) in changes {
            let i = (handle as usize).wrapping_sub(1);
            let Some((node, mapped)) = self.nodes.get(i) else {
                continue;
            };
            match node::to_change(mapped, &dv, last_good.get(&i).copied(), now) {
                Change::Reading(r) => {
                    if r.quality == Quality::GOOD {
                        last_good.insert(i, r.value);
                    } else if r.quality.get() == 0 {
                        crate::metrics::bad_quality(&ctx.name, 1);
                    }
                    out.push(r);
                }
                Change::Empty => {
                    tracing::debug!(connector = %ctx.name, node = %describe_node(node), "a data change without a value: nothing to read");
                }
                Change::NotNumeric(why) => {
                    let origin = describe_node(node);
                    let sent = match &dv.value {
                        Some(v) => format!("{v:?}"),
                        None => String::new(),
                    };
                    unreadable.push(ctx.unreadable(
                        SourceProtocol::OpcUa,
                        origin.clone(),
                        &format!("node {origin}"),
                        sent.into_bytes(),
                        why,
                    ));
                }
            }
        }
        (out, unreadable)
    }
}

fn describe_node(n: &NodeRef) -> String {
    match n {
        NodeRef::Id(id) => id.to_string(),
        NodeRef::Uri { uri, identifier } => format!("nsu={uri};{identifier}"),
    }
}

/// Closes the session (bounded) and stops its event loop when dropped.
struct Opened {
    session: Arc<Session>,
    event_loop: tokio::task::JoinHandle<()>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

#[async_trait]
impl Source for OpcUaSource {
    async fn session(self: Arc<Self>, ctx: SessionCtx) -> Result<(), SessionError> {
        let connect_timeout = Duration::from_millis(self.config.connect_timeout_ms.max(1));
        // 1. The client, its certificate made on first use (RSA key generation: off the
        //    async threads).
        let builder = self.client_builder();
        let mut client = tokio::task::spawn_blocking(move || {
            let _pki = PKI_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            builder.client()
        })
        .await
        .map_err(|e| SessionError::Connect(format!("creating the OPC UA client: {e}")))?
        .map_err(|e| {
            SessionError::Connect(format!("OPC UA client configuration: {}", e.join("; ")))
        })?;

        // 2. Endpoints and the session (not yet connected).
        let (url, policy, mode) = self.endpoint();
        let (session, event_loop) = match tokio::time::timeout(
            connect_timeout,
            client.connect_to_matching_endpoint((url.as_str(), policy, mode), self.identity()),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.status() == StatusCode::BadTcpEndpointUrlInvalid => {
                return Err(SessionError::Rejected(format!(
                    "the server at {url} offers no endpoint at that URL with security policy {} and mode {}",
                    self.config.security_policy.as_str(),
                    self.config.security_mode().as_str()
                )));
            }
            Ok(Err(e)) => return Err(self.explain(&e)),
            Err(_) => {
                return Err(SessionError::Connect(format!(
                    "no answer from {url} within {} ms",
                    connect_timeout.as_millis()
                )));
            }
        };
        session.disable_reconnects();

        // 3. Drive the event loop; it reports what the session needs to know.
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let stream = event_loop.enter();
            futures::pin_mut!(stream);
            loop {
                let event = match stream.next().await {
                    Some(Ok(SessionPollResult::Reconnected(_))) => LoopEvent::Connected,
                    Some(Ok(SessionPollResult::Subscription(SubscriptionActivity::Publish))) => {
                        LoopEvent::Alive
                    }
                    Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                        LoopEvent::Lost(format!("connection lost: {}", node::describe(code)))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(code)) => {
                        LoopEvent::Lost(format!("session ended: {}", node::describe(code)))
                    }
                    None => LoopEvent::Lost("the connection was closed".into()),
                };
                let last = matches!(event, LoopEvent::Lost(_));
                if events_tx.send(event).is_err() || last {
                    return;
                }
            }
        });
        let opened = Opened {
            session: session.clone(),
            event_loop: driver,
        };
        // The connection attempt's error comes through the stream as `Err(status)`; the
        // detailed error is lost there, so the status code names it.
        let first = tokio::time::timeout(connect_timeout, async {
            loop {
                tokio::select! {
                    () = ctx.stop.cancelled() => return Ok(false),
                    event = events.recv() => match event {
                        Some(LoopEvent::Connected) => return Ok(true),
                        Some(LoopEvent::Alive) => {}
                        Some(LoopEvent::Lost(why)) => return Err(why),
                        None => return Err("the session's event loop ended".into()),
                    },
                }
            }
        })
        .await;
        match first {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Ok(()),
            // The status code named in `why` says what to do about it.
            Ok(Err(why)) => return Err(explain_text(&self, &why)),
            Err(_) => {
                return Err(SessionError::Connect(format!(
                    "no session with {url} within {} ms",
                    connect_timeout.as_millis()
                )));
            }
        }
        tracing::info!(connector = %ctx.name, endpoint = %url, "OPC UA session activated");

        // 4. Namespaces (for `nsu=` nodes), the subscription and its monitored items.
        let needs_namespaces = self
            .nodes
            .iter()
            .any(|(n, _)| matches!(n, NodeRef::Uri { .. }));
        let namespaces = if needs_namespaces {
            session.read_namespace_array().await.map_err(|e| {
                SessionError::Connection(format!("reading the namespace array: {e}"))
            })?
        } else {
            Default::default()
        };
        let (items, unresolved) = self.monitored_items(|uri| namespaces.get_index(uri));
        let (data_tx, mut data) = mpsc::channel::<(u32, DataValue)>(MAX_PENDING_CHANGES);
        let overflow = Arc::new(AtomicU64::new(0));
        let overflowed = overflow.clone();
        let c = &self.config;
        // One subscription, and another whenever the server says the current one is full
        // (servers limit the monitored items per subscription: MaxMonitoredItemsPerSubscription).
        let on_session = &session;
        // Owns the sender: once it is dropped (below), the channel closes with the last
        // subscription, as the session's end.
        let subscribe = move || {
            let data_tx = data_tx.clone();
            let overflow = overflow.clone();
            on_session.create_subscription(
                Duration::from_secs_f64(c.publishing_interval_ms / 1000.0),
                c.keep_alive_count.saturating_mul(3),
                c.keep_alive_count,
                MAX_NOTIFICATIONS_PER_PUBLISH,
                0,
                true,
                DataChangeCallback::new(move |value, item| {
                    // The callback runs inside the event loop and must not wait.
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        data_tx.try_send((item.client_handle(), value))
                    {
                        overflow.fetch_add(1, Ordering::Relaxed);
                    }
                }),
            )
        };
        let mut subscription = subscribe().await.map_err(|e| {
            SessionError::Refused(format!("the server refused the subscription: {e}"))
        })?;
        let mut subscriptions = 1usize;
        let mut in_subscription = 0usize;
        let mut problems: Vec<String> = Vec::new();
        let mut bad = Vec::new();
        for (i, why) in unresolved {
            problems.push(format!("{}: {why}", describe_node(&self.nodes[i].0)));
            bad.extend(self.bad(i, &why));
        }
        let mut active = Vec::new();
        let index = |handle: u32| (handle as usize).saturating_sub(1);
        let name_of = |handle: u32| {
            self.nodes
                .get(index(handle))
                .map(|(n, _)| describe_node(n))
                .unwrap_or_default()
        };
        // In calls of a bounded size: servers limit the monitored items per call
        // (MaxMonitoredItemsPerCall) and the request size, and close the connection of a
        // client that exceeds them.
        let mut pending: std::collections::VecDeque<Vec<MonitoredItemCreateRequest>> = items
            .chunks(MONITORED_ITEMS_PER_CALL)
            .map(<[MonitoredItemCreateRequest]>::to_vec)
            .collect();
        let full = |status: StatusCode| status == StatusCode::BadTooManyMonitoredItems;
        while let Some(chunk) = pending.pop_front() {
            let created = match session
                .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.clone())
                .await
            {
                // The whole call refused: it does not fit in this subscription.
                Err(e) if full(e.status()) => None,
                Err(e) => {
                    return Err(SessionError::Refused(format!(
                        "the server refused the monitored items: {e}"
                    )));
                }
                Ok(created) => Some(created),
            };
            let overflow = match created {
                Some(created) => {
                    let mut overflow = Vec::new();
                    for (k, request) in chunk.iter().enumerate() {
                        let handle = request.requested_parameters.client_handle;
                        let name = name_of(handle);
                        let Some(result) = created.get(k) else {
                            let why = format!("the server returned no result for {name}");
                            problems.push(why.clone());
                            bad.extend(self.bad(index(handle), &why));
                            continue;
                        };
                        let status = result.result.status_code;
                        if full(status) {
                            overflow.push(request.clone());
                        } else if status.is_good() {
                            active.push(name);
                            in_subscription += 1;
                        } else {
                            let why = format!(
                                "the server refused to monitor {name}: {}",
                                node::describe(status)
                            );
                            problems.push(why.clone());
                            bad.extend(self.bad(index(handle), &why));
                        }
                    }
                    overflow
                }
                None if chunk.len() > 1 => {
                    // Smaller calls fill the room this subscription has left.
                    let (first, second) = chunk.split_at(chunk.len() / 2);
                    pending.push_front(second.to_vec());
                    pending.push_front(first.to_vec());
                    continue;
                }
                None => chunk,
            };
            if overflow.is_empty() {
                continue;
            }
            // This subscription is full: the rest goes to a new one, unless it holds nothing
            // (the server takes no item at all) or no other subscription can be opened.
            let next = if in_subscription == 0 {
                Err("the server takes no monitored item in a subscription".to_owned())
            } else if subscriptions >= MAX_SUBSCRIPTIONS {
                Err(format!("{MAX_SUBSCRIPTIONS} subscriptions are open"))
            } else {
                match subscribe().await {
                    Ok(id) => Ok(id),
                    Err(e) if e.status() == StatusCode::BadTooManySubscriptions => Err(format!(
                        "the server opens no more subscriptions ({subscriptions} open): {}",
                        node::describe(e.status())
                    )),
                    Err(e) => {
                        return Err(SessionError::Connection(format!(
                            "opening another subscription: {e}"
                        )));
                    }
                }
            };
            match next {
                Ok(id) => {
                    tracing::info!(
                        connector = %ctx.name,
                        monitored = in_subscription,
                        "subscription full: monitoring the next nodes in another one"
                    );
                    subscription = id;
                    subscriptions += 1;
                    in_subscription = 0;
                    pending.push_front(overflow);
                }
                Err(reason) => {
                    let why = format!(
                        "not monitored: the server monitors no more nodes ({} in {subscriptions} \
                         subscription(s)); {reason}",
                        active.len()
                    );
                    let mut left = Vec::new();
                    for request in overflow.iter().chain(pending.iter().flatten()) {
                        let handle = request.requested_parameters.client_handle;
                        left.push(name_of(handle));
                        bad.extend(self.bad(index(handle), &why));
                    }
                    tracing::warn!(connector = %ctx.name, nodes = left.len(), %why, "some nodes are not monitored");
                    // One line for them all (there may be thousands); each bad reading names
                    // its node.
                    let more = if left.len() > 3 { ", …" } else { "" };
                    problems.push(format!(
                        "{} nodes ({}{more}) {why}",
                        left.len(),
                        left[..left.len().min(3)].join(", ")
                    ));
                    pending.clear();
                }
            }
        }
        drop(subscribe);
        ctx.connected(active);
        self.set_session(Some(session.clone()));
        if problems.is_empty() {
            ctx.status.healthy();
        } else {
            let detail = problems.join("; ");
            tracing::warn!(connector = %ctx.name, %detail, "some nodes are not monitored");
            ctx.status
                .error("subscribe", &detail, Some(crate::ConnectorState::Error));
        }
        if !bad.is_empty() {
            crate::metrics::bad_quality(&ctx.name, bad.len() as u64);
            ctx.deliver(bad, SourceProtocol::OpcUa, None).await;
        }

        // 5. Data changes → readings, until the connection is lost or we stop.
        let max = self.config.max_batch.max(1);
        let result = loop {
            tokio::select! {
                biased;
                () = ctx.stop.cancelled() => break Ok(()),
                event = events.recv() => match event {
                    Some(LoopEvent::Alive) => ctx.status.alive(),
                    Some(LoopEvent::Connected) => {}
                    Some(LoopEvent::Lost(why)) => break Err(SessionError::Connection(why)),
                    None => break Err(SessionError::Connection("the session's event loop ended".into())),
                },
                first = data.recv() => {
                    let Some(first) = first else {
                        break Err(SessionError::Connection("the subscription ended".into()));
                    };
                    let mut changes = vec![first];
                    while changes.len() < max {
                        match data.try_recv() {
                            Ok(c) => changes.push(c),
                            Err(_) => break,
                        }
                    }
                    ctx.status.received(changes.len() as u64);
                    let lost = overflowed.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        crate::metrics::lost_observations(&ctx.name, lost);
                        let detail = format!(
                            "{lost} data changes lost: more than {MAX_PENDING_CHANGES} were waiting for the sink"
                        );
                        tracing::warn!(connector = %ctx.name, lost, "OPC UA data changes lost while the sink stalled");
                        ctx.status.error("overflow", &detail, None);
                    }
                    let (readings, unreadable) = self.readings(&ctx, changes);
                    if !readings.is_empty()
                        && ctx.deliver(readings, SourceProtocol::OpcUa, None).await.is_none()
                    {
                        break Ok(());
                    }
                    if !ctx.keep_unreadable(unreadable).await {
                        break Ok(());
                    }
                }
            }
        };
        self.set_session(None);
        if result.is_ok() {
            // Stopping: close the session politely (bounded), deleting its subscription.
            let _ = tokio::time::timeout(Duration::from_secs(2), opened.session.disconnect()).await;
        }
        drop(opened);
        result
    }

    async fn browse(&self, node: Option<&str>) -> Result<Vec<BrowsedNode>, BrowseError> {
        let session = self.current_session().ok_or(BrowseError::NotConnected)?;
        let node_id: NodeId = match node.map(str::trim).filter(|n| !n.is_empty()) {
            None => ObjectId::ObjectsFolder.into(),
            Some(n) => {
                let r = NodeRef::parse(n).map_err(BrowseError::InvalidNode)?;
                let namespaces = if matches!(r, NodeRef::Uri { .. }) {
                    session
                        .read_namespace_array()
                        .await
                        .map_err(|e| BrowseError::Failed(e.to_string()))?
                } else {
                    Default::default()
                };
                r.resolve(|uri| namespaces.get_index(uri))
                    .map_err(BrowseError::InvalidNode)?
            }
        };
        let results = session
            .browse(
                &[BrowseDescription {
                    node_id: node_id.clone(),
                    browse_direction: BrowseDirection::Forward,
                    reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                    include_subtypes: true,
                    node_class_mask: 0,
                    result_mask: BrowseResultMask::All as u32,
                }],
                BROWSE_LIMIT,
                None,
            )
            .await
            .map_err(|e| BrowseError::Failed(e.to_string()))?;
        let Some(result) = results.into_iter().next() else {
            return Ok(Vec::new());
        };
        if result.status_code.is_bad() {
            return Err(BrowseError::InvalidNode(format!(
                "{node_id}: {}",
                node::describe(result.status_code)
            )));
        }
        let refs = result.references.unwrap_or_default();
        let mut nodes: Vec<BrowsedNode> = refs
            .iter()
            .map(|r| BrowsedNode {
                node_id: r.node_id.node_id.to_string(),
                browse_name: r.browse_name.name.to_string(),
                display_name: r.display_name.text.to_string(),
                node_class: format!("{:?}", r.node_class),
                type_definition: (!r.type_definition.node_id.is_null())
                    .then(|| r.type_definition.node_id.to_string()),
                value: None,
                status: None,
            })
            .collect();
        // The current value of the variables, in one request.
        let variables: Vec<usize> = refs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.node_class == NodeClass::Variable)
            .map(|(i, _)| i)
            .collect();
        if !variables.is_empty() {
            let to_read: Vec<ReadValueId> = variables
                .iter()
                .map(|&i| ReadValueId {
                    node_id: refs[i].node_id.node_id.clone(),
                    attribute_id: AttributeId::Value as u32,
                    index_range: Default::default(),
                    data_encoding: QualifiedName::null(),
                })
                .collect();
            if let Ok(values) = session
                .read(&to_read, TimestampsToReturn::Neither, 0.0)
                .await
            {
                for (&i, dv) in variables.iter().zip(values) {
                    let status = dv.status.unwrap_or(StatusCode::Good);
                    nodes[i].value = dv.value.as_ref().and_then(node::number);
                    nodes[i].status = Some(node::describe(status));
                }
            }
        }
        Ok(nodes)
    }
}

/// The explanation of a connection failure known only by its text (the event loop reports a
/// status code).
fn explain_text(source: &OpcUaSource, why: &str) -> SessionError {
    for code in [
        StatusCode::BadUserAccessDenied,
        StatusCode::BadIdentityTokenInvalid,
        StatusCode::BadIdentityTokenRejected,
        StatusCode::BadCertificateUntrusted,
        StatusCode::BadCertificateInvalid,
        StatusCode::BadSecurityChecksFailed,
        StatusCode::BadCertificateUriInvalid,
        StatusCode::BadCertificateHostNameInvalid,
        StatusCode::BadCertificateTimeInvalid,
        StatusCode::BadSecurityPolicyRejected,
        StatusCode::BadSecurityModeRejected,
    ] {
        if why.contains(&code.to_string()) {
            return source.explain(&opcua::types::Error::new(code, why.to_owned()));
        }
    }
    SessionError::Connect(why.to_owned())
}
