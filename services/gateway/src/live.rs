//! Live alerts: the `alerts.critical` consumer and the WebSocket fan-out.

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use mantis_bus::Position;
use mantis_domain::{Alert, AlertId};
use mantis_runtime::{HandleError, Handler, RecordContext};
use std::collections::{HashSet, VecDeque};
use tokio::sync::broadcast;

/// Distributes alerts to every connected WebSocket client.
#[derive(Clone)]
pub(crate) struct AlertHub {
    tx: broadcast::Sender<String>,
}

impl AlertHub {
    pub(crate) fn new(buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer);
        Self { tx }
    }
}

/// Consumes `alerts.critical` and hands each alert, once, to the hub.
pub(crate) struct AlertFanOut {
    hub: AlertHub,
    seen: HashSet<AlertId>,
    order: VecDeque<AlertId>,
}

const REMEMBERED: usize = 4096;

impl AlertFanOut {
    pub(crate) fn new(hub: AlertHub) -> Self {
        Self {
            hub,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
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
        if self.seen.insert(alert.id) {
            self.order.push_back(alert.id);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
            let json =
                serde_json::to_string(alert).map_err(|e| HandleError::Permanent(e.to_string()))?;
            // No connected client is fine: the alert is in the store and listed by the API.
            let clients = self.hub.tx.send(json).unwrap_or(0);
            metrics::counter!("mantis_ws_alerts_sent_total").increment(clients as u64);
        }
        Ok(ctx.done())
    }
}

pub(crate) fn router(hub: AlertHub) -> Router {
    Router::new()
        .route("/ws/alerts", get(ws_alerts))
        .with_state(hub)
}

async fn ws_alerts(ws: WebSocketUpgrade, State(hub): State<AlertHub>) -> Response {
    let rx = hub.tx.subscribe();
    ws.on_upgrade(move |socket| stream_alerts(socket, rx))
}

async fn stream_alerts(mut socket: WebSocket, mut rx: broadcast::Receiver<String>) {
    metrics::gauge!("mantis_ws_clients").increment(1.0);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(json) => {
                    if socket.send(Message::Text(json.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    // A slow client skips ahead instead of growing server memory.
                    tracing::warn!(skipped, "WebSocket client too slow; skipped alerts");
                    let note = serde_json::json!({"type": "lagged", "skipped": skipped}).to_string();
                    if socket.send(Message::Text(note.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    metrics::gauge!("mantis_ws_clients").decrement(1.0);
}
