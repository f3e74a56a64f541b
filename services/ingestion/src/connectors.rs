//! The device connectors inside the ingestion service: the [`IngestorSink`] through which every
//! connector reading goes into the [`Ingestor`] (validation, quality routing, publishing), the
//! connector HTTP API, and the sources added at run time (kept in the store so that a restart
//! keeps them).
//!
//! - `GET /api/v1/connectors`: the status of every source;
//! - `GET /api/v1/connectors/{name}/status`: the status of one (404 when unknown);
//! - `GET /api/v1/connectors/{name}/browse?node=<node id>`: the children of a node in the
//!   device's address space (OPC UA: the Objects folder when `node` is absent; MTConnect: the
//!   agent's DataItems), through the source's own connection: 200 with a list of
//!   `{nodeId, browseName, displayName, nodeClass, typeDefinition, value, status}`, 404 for
//!   an unknown source, 400 for a bad node or a protocol that cannot be browsed, 503 while the
//!   source is not connected, 502 when the device fails to answer;
//! - `POST /api/v1/connectors`: adds a source (the JSON form of an `[[ingestion.sources]]`
//!   table) and starts it (with connector leases: once a replica holds its lease, within a
//!   round; `STANDBY` until then): 201 with its status, 400 with a problem body naming the fields when
//!   the configuration is invalid, 409 when the name is taken.

use crate::ingestor::{IngestError, Ingestor};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mantis_bus::TraceContext;
use mantis_connectors::{
    BrowseError, Connectors, Delivered, ReadingSink, SinkError, SourceConfig, Unreadable,
};
use mantis_domain::{IncomingReading, SourceProtocol};
use mantis_runtime::{FieldError, Problem};
use mantis_store::Store;
use std::collections::HashSet;
use std::sync::Arc;

/// Key in the store's state of the sources added through the API.
const ADDED_SOURCES_KEY: &str = "ingestion.connectors.added";

/// The sink of the connectors: the service's [`Ingestor`]. A batch with refused readings is
/// not refused whole (as a REST request is): the refused readings were reported on
/// `data.quality.issues` by the ingestor, and the rest of the batch is accepted.
pub struct IngestorSink {
    ingestor: Arc<Ingestor>,
}

impl IngestorSink {
    /// A sink into `ingestor`.
    pub fn new(ingestor: Arc<Ingestor>) -> Self {
        Self { ingestor }
    }
}

#[async_trait]
impl ReadingSink for IngestorSink {
    async fn deliver(
        &self,
        batch: Vec<IncomingReading>,
        source: SourceProtocol,
    ) -> Result<Delivered, SinkError> {
        let trace = TraceContext::new_root();
        let mut batch = batch;
        let mut refused = 0;
        // Each round removes at least one refused reading, so this ends.
        loop {
            if batch.is_empty() {
                return Ok(Delivered {
                    accepted: 0,
                    refused,
                });
            }
            match self
                .ingestor
                .accept_from_device(&batch, source, trace)
                .await
            {
                Ok(a) => {
                    return Ok(Delivered {
                        accepted: a.accepted,
                        refused,
                    });
                }
                Err(IngestError::Rejected(rejections)) => {
                    refused += rejections.len();
                    let out: HashSet<usize> = rejections.iter().map(|(i, _)| *i).collect();
                    batch = batch
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !out.contains(i))
                        .map(|(_, r)| r)
                        .collect();
                }
                Err(IngestError::Unavailable(reason)) => {
                    return Err(SinkError::Unavailable(reason));
                }
            }
        }
    }

    async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), SinkError> {
        self.ingestor
            .keep_unreadable(messages)
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}

/// The MTConnect sources' cursors in the store (`service_state`, one document per source),
/// shared by the replicas: the one taking a source over reads on where the other stopped. A
/// source with none there reads on from its file (kept before the replicas shared them).
pub(crate) struct StoreCursors {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) files: mantis_connectors::FileCursors,
}

/// How long reading or writing a cursor may take (it holds the source's reading up).
const CURSOR_CALL: std::time::Duration = std::time::Duration::from_secs(2);

fn cursor_key(source: &str) -> String {
    format!("ingestion.mtconnect.cursor.{source}")
}

#[async_trait]
impl mantis_connectors::CursorStore for StoreCursors {
    async fn load(&self, source: &str) -> Result<Option<serde_json::Value>, String> {
        let kept = tokio::time::timeout(CURSOR_CALL, self.store.get_state(&cursor_key(source)))
            .await
            .map_err(|_| "the database did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        match kept {
            Some(v) => Ok(Some(v)),
            None => self.files.load(source).await,
        }
    }

    async fn save(&self, source: &str, cursor: serde_json::Value) -> Result<(), String> {
        tokio::time::timeout(
            CURSOR_CALL,
            self.store.put_state(&cursor_key(source), &cursor),
        )
        .await
        .map_err(|_| "the database did not answer in time".to_owned())?
        .map_err(|e| e.to_string())
    }
}

/// Adds the sources added through the API before the last restart, or since by another replica
/// (the configuration file's sources win over a stored one of the same name; the sources
/// already here are left as they are). `quiet`: called every round, problems are logged at
/// debug level (they were at start).
pub(crate) async fn restore_added(connectors: &Connectors, store: &dyn Store, quiet: bool) {
    let problem = |what: &str, error: &dyn std::fmt::Display| {
        if quiet {
            tracing::debug!(%error, "{what}");
        } else {
            tracing::warn!(%error, "{what}");
        }
    };
    let stored = match store.get_state(ADDED_SOURCES_KEY).await {
        Ok(Some(v)) => v,
        Ok(None) => return,
        Err(e) => {
            problem("the sources added through the API cannot be read now", &e);
            return;
        }
    };
    let Some(entries) = stored.as_array() else {
        problem(
            "the stored sources added through the API are not a list; they do not run",
            &"not a JSON array",
        );
        return;
    };
    // One by one: an entry this version cannot read (written by another one) does not keep
    // the others from running.
    for entry in entries {
        let source: SourceConfig = match serde_json::from_value(entry.clone()) {
            Ok(s) => s,
            Err(e) => {
                let name = entry["name"].as_str().unwrap_or("?");
                problem(
                    &format!("stored source `{name}` is not readable; it does not run"),
                    &e,
                );
                continue;
            }
        };
        let name = source.name().to_owned();
        if connectors.config(&name).is_some() {
            continue;
        }
        if let Err(e) = connectors.add(source) {
            problem(&format!("stored source `{name}` not started"), &e);
        }
    }
}

#[derive(Clone)]
struct ApiState {
    connectors: Connectors,
    store: Arc<dyn Store>,
    /// Serialises the read-modify-write of the stored list in this process.
    save: Arc<tokio::sync::Mutex<()>>,
    /// With connector leases (several replicas): this process's holder name, under which it
    /// takes the lease that serialises the stored list's changes across the replicas.
    holder: Option<String>,
}

/// The lease that serialises changes of the stored list across replicas.
const ADDED_SOURCES_LOCK: &str = "ingestion.connectors.added";

/// The connector API; `holder`: this process's name in the leases, when replicas share the
/// sources.
pub(crate) fn router(
    connectors: Connectors,
    store: Arc<dyn Store>,
    holder: Option<String>,
) -> Router {
    Router::new()
        .route("/api/v1/connectors", get(list).post(add))
        .route("/api/v1/connectors/{name}/status", get(status))
        .route("/api/v1/connectors/{name}/browse", get(browse))
        .with_state(ApiState {
            connectors,
            store,
            save: Arc::new(tokio::sync::Mutex::new(())),
            holder,
        })
}

async fn list(State(s): State<ApiState>) -> Response {
    Json(s.connectors.statuses()).into_response()
}

async fn status(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    match s.connectors.status(&name) {
        Some(st) => Json(st).into_response(),
        None => Problem::not_found(format!("no connector named `{name}`")).into_response(),
    }
}

/// The query of a browse.
#[derive(serde::Deserialize)]
struct BrowseQuery {
    /// The node whose children are listed; the root when absent.
    node: Option<String>,
}

async fn browse(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> Response {
    match s.connectors.browse(&name, q.node.as_deref()).await {
        Ok(nodes) => Json(nodes).into_response(),
        Err(e @ BrowseError::UnknownSource(_)) => Problem::not_found(e.to_string()).into_response(),
        Err(e @ (BrowseError::NotSupported(_) | BrowseError::InvalidNode(_))) => {
            let mut p = Problem::bad_request(e.to_string());
            if matches!(e, BrowseError::InvalidNode(_)) {
                p.errors = vec![FieldError {
                    pointer: "/node".into(),
                    detail: e.to_string(),
                }];
            }
            p.into_response()
        }
        Err(e @ BrowseError::NotConnected) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            e.to_string(),
        )
        .into_response(),
        Err(e @ BrowseError::Failed(_)) => {
            Problem::new(StatusCode::BAD_GATEWAY, "Bad Gateway", e.to_string()).into_response()
        }
    }
}

async fn add(State(s): State<ApiState>, body: Bytes) -> Response {
    let config: SourceConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return Problem::bad_request(format!("the body is not a valid source: {e}"))
                .into_response();
        }
    };
    // Apart from the request: a client that goes away must not cut the change short between
    // storing the source and adding it, nor leave the lock held.
    match tokio::spawn(add_serialised(s, config)).await {
        Ok(answer) => answer,
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            format!("the source was not added: {e}"),
        )
        .into_response(),
    }
}

/// How long one database call of an addition may take (three of them stay within the 10 s of
/// the lock's lease, which runs from the ask that took it), and how long it waits for the lock.
const STORE_CALL: std::time::Duration = std::time::Duration::from_secs(3);

/// How often the lock is asked for again while another replica holds it.
const RETRY_LOCK: std::time::Duration = std::time::Duration::from_millis(100);

async fn add_serialised(s: ApiState, config: SourceConfig) -> Response {
    let name = config.name().to_owned();
    let _guard = s.save.lock().await;
    let locked = match lock_list(&s).await {
        Ok(l) => l,
        Err(p) => return p.into_response(),
    };
    let answer = add_locked(&s, config, &name).await;
    if let Some((holder, expires_at)) = locked {
        let released = tokio::time::timeout(
            STORE_CALL,
            s.store
                .release_lease(ADDED_SOURCES_LOCK, &holder, Some(expires_at)),
        )
        .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::debug!("the stored sources' lock not handed back; it lapses by itself");
        }
    }
    answer
}

/// Adds `config` under the locks: refused when its name is taken here or in the stored list
/// (added through another replica); else validated and built, stored, and only then added
/// (started): a source that cannot be stored is not added at all (503), so it never runs
/// where it would not survive a restart nor reach the other replicas.
async fn add_locked(s: &ApiState, config: SourceConfig, name: &str) -> Response {
    let conflict =
        |detail: String| Problem::new(StatusCode::CONFLICT, "Conflict", detail).into_response();
    let unavailable = |detail: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            detail,
        )
        .into_response()
    };
    let mut stored = match stored_sources(s).await {
        Ok(list) => list,
        Err(e) => return unavailable(e),
    };
    // A stored source of that name that this version cannot read or validate (written by
    // another one) may be replaced; a good one takes the name.
    let taken = stored.iter().any(|entry| {
        entry["name"].as_str() == Some(name)
            && serde_json::from_value::<SourceConfig>(entry.clone())
                .is_ok_and(|c| c.validate().is_ok())
    });
    if taken && s.connectors.config(name).is_none() {
        return conflict(format!(
            "a source named `{name}` exists already (added through another replica)"
        ));
    }
    let prepared = match s.connectors.prepare(config.clone()) {
        Ok(p) => p,
        Err(mantis_connectors::Error::Config(e)) => {
            let mut p = Problem::bad_request(e.to_string());
            p.errors = e
                .problems
                .into_iter()
                .map(|(pointer, detail)| FieldError { pointer, detail })
                .collect();
            return p.into_response();
        }
        Err(e @ mantis_connectors::Error::Duplicate(_)) => return conflict(e.to_string()),
    };
    let value = match serde_json::to_value(&config) {
        Ok(v) => v,
        Err(e) => return unavailable(format!("the source cannot be stored: {e}")),
    };
    stored.retain(|entry| entry["name"].as_str() != Some(name));
    stored.push(value.clone());
    let list = serde_json::Value::Array(stored);
    let written = tokio::time::timeout(STORE_CALL, s.store.put_state(ADDED_SOURCES_KEY, &list))
        .await
        .unwrap_or_else(|_| {
            Err(mantis_store::Error::Unavailable(
                "the database did not answer in time".into(),
            ))
        });
    if let Err(e) = written {
        // The write may have been committed all the same (an answer lost): read it back.
        let landed = stored_sources(s)
            .await
            .is_ok_and(|list| list.contains(&value));
        if !landed {
            tracing::warn!(connector = %name, error = %e, "added source not stored; not added");
            return unavailable(format!(
                "the source cannot be stored now ({e}); it was not added: try again"
            ));
        }
    }
    let status = match s.connectors.insert(prepared) {
        Ok(st) => st,
        // Taken from the store by this replica's own round meanwhile: added all the same.
        Err(mantis_connectors::Error::Duplicate(_)) => match s.connectors.status(name) {
            Some(st) => st,
            None => {
                return unavailable(format!(
                    "the source `{name}` was stored; it starts within a round"
                ));
            }
        },
        Err(e) => return unavailable(format!("the source was stored but not started: {e}")),
    };
    let mut resp = (StatusCode::CREATED, Json(status)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/connectors/{name}/status")) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

/// The stored list of the sources added through the API, entry by entry (an entry this
/// version cannot read is kept as it is).
async fn stored_sources(s: &ApiState) -> Result<Vec<serde_json::Value>, String> {
    let read = tokio::time::timeout(STORE_CALL, s.store.get_state(ADDED_SOURCES_KEY))
        .await
        .map_err(|_| {
            "the stored sources cannot be read now (the database did not answer in time)".to_owned()
        })?;
    match read {
        Ok(Some(serde_json::Value::Array(list))) => Ok(list),
        Ok(Some(_)) => Err(
            "the stored sources are not a list; nothing was overwritten (fix or remove the state \
             `ingestion.connectors.added`)"
                .into(),
        ),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(format!("the stored sources cannot be read now ({e})")),
    }
}

/// With several replicas, takes the lease that serialises changes of the stored list (held
/// for 10 s at most; waits up to 3 s for another replica's change). Returns the holder to
/// release it with, and the expiry granted (a release reaching the database late must not
/// end the next change's hold of the same holder).
async fn lock_list(
    s: &ApiState,
) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, Problem> {
    let Some(holder) = &s.holder else {
        return Ok(None);
    };
    let busy = |detail: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            detail,
        )
    };
    // Every ask bounded too: a database that hangs must not hold the request (and this
    // replica's other additions) for the pool's own timeout.
    let deadline = tokio::time::Instant::now() + STORE_CALL;
    loop {
        let asked = tokio::time::timeout_at(
            deadline,
            s.store.acquire_lease(
                ADDED_SOURCES_LOCK,
                holder,
                chrono::Utc::now(),
                std::time::Duration::from_secs(10),
            ),
        )
        .await;
        match asked {
            Ok(Ok(lease)) if lease.is_held_by(holder) => {
                return Ok(Some((holder.clone(), lease.expires_at)));
            }
            Ok(Ok(_)) if tokio::time::Instant::now() + RETRY_LOCK < deadline => {
                tokio::time::sleep(RETRY_LOCK).await;
            }
            Ok(Ok(_)) => {
                return Err(busy(
                    "another replica is changing the stored sources; try again".into(),
                ));
            }
            Ok(Err(e)) => {
                return Err(busy(format!(
                    "the stored sources cannot be changed now ({e})"
                )));
            }
            Err(_) => {
                return Err(busy(
                    "the stored sources cannot be changed now (the database did not answer in time)"
                        .into(),
                ));
            }
        }
    }
}
