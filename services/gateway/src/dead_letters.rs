//! `/api/v1/dead-letters`: what the services set aside (`dlq.*` topics), why, and sending it
//! again once the cause is mended — what `mantis dlq` does, reachable while the embedded
//! platform runs (whose log the command line cannot open then). Admins of the installation's
//! default tenant only: the letters hold every tenant's records.

use crate::api::{ApiResult, ApiState, Params};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mantis_domain::TenantId;
use mantis_runtime::Problem;
use mantis_runtime::dead_letters::{self, Filter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Reads of dead-letter topics at once at most (each reads a whole topic).
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// One replay at a time in a gateway (each reads its topic whole). Two replays of one topic
/// would both send the letters neither had recorded yet: a replay holds a lease in the store
/// too, which keeps replicas of the gateway and `mantis dlq` apart.
static REPLAYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A topic holding more than this is read with `mantis dlq`, not over HTTP.
const MAX_RECORDS: i64 = 1_000_000;

/// 403 for any but the default tenant's admins (the role is checked by the policy).
fn platform_admin(who: &Principal) -> ApiResult<()> {
    if who.tenant_id == TenantId::DEFAULT {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "dead letters hold every tenant's records: only the admins of the installation's \
             default tenant see them",
        ))
    }
}

fn problem(e: dead_letters::Error) -> Problem {
    match e {
        dead_letters::Error::NotADeadLetterTopic(topic) => Problem::not_found(format!(
            "`{topic}` is not a dead-letter topic (GET /api/v1/dead-letters lists them)"
        )),
        // The gateway's credentials lack a right on the bus (read the topic, join a reader
        // group, write a source topic): said, for the operator to grant.
        dead_letters::Error::Bus(b @ mantis_bus::Error::Denied(_)) => {
            Problem::unavailable(format!("{b} (the gateway's rights on the bus)"))
        }
        dead_letters::Error::Bus(b) if !b.is_retryable() => Problem::internal(b),
        // Rights to grant: said, not an invitation to try again in 5 s.
        e @ dead_letters::Error::NotRecorded(mantis_bus::Error::Denied(_)) => {
            Problem::unavailable(e.to_string())
        }
        dead_letters::Error::NotRecorded(b) if !b.is_retryable() => {
            Problem::internal(dead_letters::Error::NotRecorded(b))
        }
        e @ dead_letters::Error::Busy { .. } => {
            Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
        }
        e => Problem::unavailable(e.to_string()).with_retry_after(5),
    }
}

/// One of the [`READS`] permits, or 503 at once when both are taken (a read may take minutes).
fn permit() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    READS.try_acquire().map_err(|_| {
        Problem::unavailable("dead-letter topics are being read by other requests; try again")
            .with_retry_after(10)
    })
}

/// A dead-letter topic (`GET /api/v1/dead-letters`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicView {
    /// e.g. `dlq.preprocessing`.
    topic: String,
    /// Records it retains.
    records: i64,
    partitions: usize,
}

/// `GET /api/v1/dead-letters`: every dead-letter topic and how many records it retains.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "operations",
    responses((status = 200, body = Vec<TopicView>)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Response> {
    platform_admin(&who)?;
    let topics = dead_letters::list(s.bus.as_ref()).await.map_err(problem)?;
    let views: Vec<TopicView> = topics
        .iter()
        .map(|t| TopicView {
            topic: t.name.clone(),
            records: t.retained(),
            partitions: t.partitions.len(),
        })
        .collect();
    Ok(Json(views).into_response())
}

/// Which letters (query of `GET /api/v1/dead-letters/{topic}`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads `Params`
pub(crate) struct LetterQuery {
    /// Only those whose reason contains this (case-insensitive).
    #[param(max_length = 200)]
    reason: Option<String>,
    /// Only those set aside since: RFC 3339, or this long ago (`30m`, `12h`, `7d`).
    since: Option<String>,
    /// At most this many, the newest (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A dead letter (for the OpenAPI document; the answer is `mantis_runtime::dead_letters::Letter`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct LetterView {
    partition: i32,
    offset: i64,
    /// When it was set aside (RFC 3339).
    at: Option<String>,
    reason: String,
    /// `topic/partition/offset` it came from; the topic alone for a record refused before it
    /// was written; none for a device message.
    source: Option<String>,
    key: Option<String>,
    payload_bytes: usize,
    /// Its other headers (`mantis.dlq.connector`, …).
    headers: BTreeMap<String, String>,
    /// When a replay first sent it again (RFC 3339), if one did.
    replayed_at: Option<String>,
}

fn filter(reason: Option<&String>, since: Option<&String>) -> ApiResult<Filter> {
    let reason = match reason.map(|r| r.trim()) {
        Some(r) if r.chars().count() > 200 => {
            return Err(Problem::bad_request("the reason filter is too long")
                .with_field("/reason", "at most 200 characters"));
        }
        Some("") | None => None,
        Some(r) => Some(r.to_owned()),
    };
    let since = match since {
        Some(raw) => Some(
            dead_letters::parse_since(raw)
                .map_err(|e| Problem::bad_request(e.clone()).with_field("/since", e))?,
        ),
        None => None,
    };
    Ok(Filter { reason, since })
}

/// Refuses a topic too large to be read over HTTP, and a name that is not a dead-letter one.
async fn readable(s: &ApiState, topic: &str) -> ApiResult<()> {
    let not_one = || problem(dead_letters::Error::NotADeadLetterTopic(topic.to_owned()));
    if !topic.starts_with(dead_letters::PREFIX) {
        return Err(not_one());
    }
    let held: i64 = s
        .bus
        .offsets_of(topic)
        .await
        .map_err(|e| problem(e.into()))?
        .ok_or_else(not_one)?
        .iter()
        .map(mantis_bus::PartitionOffsets::retained)
        .sum();
    if held > MAX_RECORDS {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Too large",
            format!(
                "`{topic}` holds {held} records, more than {MAX_RECORDS} are read over HTTP: \
                 use `mantis dlq` on the host"
            ),
        ));
    }
    Ok(())
}

/// `GET /api/v1/dead-letters/{topic}`: its letters, newest last.
#[utoipa::path(get, path = "/api/v1/dead-letters/{topic}", tag = "operations",
    params(("topic" = String, Path, description = "e.g. dlq.preprocessing"), LetterQuery),
    responses((status = 200, body = Vec<LetterView>),
        (status = 422, description = "The topic holds over a million records: read it with `mantis dlq`")))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(topic): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    platform_admin(&who)?;
    let filter = filter(params.get("reason"), params.get("since"))?;
    let limit = match params.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                Problem::bad_request("invalid limit").with_field("/limit", "1 to 1000")
            })?,
    };
    let _reading = permit()?;
    readable(&s, &topic).await?;
    let letters = dead_letters::show(s.bus.as_ref(), &topic, &filter, limit)
        .await
        .map_err(problem)?;
    Ok(Json(letters).into_response())
}

/// What to replay (`POST /api/v1/dead-letters/{topic}/replay`; no body: all of them).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Only those whose reason contains this (case-insensitive).
    #[schema(max_length = 200)]
    reason: Option<String>,
    /// Only those set aside since: RFC 3339, or this long ago (`30m`, `12h`, `7d`).
    since: Option<String>,
    /// Count what would be published; publish nothing.
    #[serde(default)]
    dry_run: bool,
    /// Send again the letters an earlier replay sent too.
    #[serde(default)]
    again: bool,
}

/// What a replay did (for the OpenAPI document).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct ReplayedView {
    /// Records published back, per source topic.
    published: BTreeMap<String, u64>,
    /// Letters the filter left.
    filtered: u64,
    /// Copies of letters this replay sends (a replayed record set aside again): left.
    copies: u64,
    /// Device messages, and records whose topic is gone.
    not_replayable: u64,
    /// Letters an earlier replay sent: left (unless `again`).
    already_replayed: u64,
    /// The start of the period the filter took (RFC 3339, `since` resolved on the gateway's
    /// clock): send it back with the replay a dry run counted, to cover the same period.
    since: Option<String>,
    /// Records the bus refused for good; the others went on.
    refused: u64,
    /// Why the replay stopped before the end (the bus went away): what is counted was
    /// published.
    stopped: Option<String>,
}

/// `POST /api/v1/dead-letters/{topic}/replay`: publishes its letters back to the topics they
/// came from, for their consumers to read again (a sensor since registered, a receiver since
/// mended); the letters stay. Device messages are not replayed, nor letters an earlier replay
/// sent (unless `again`); one replay runs at a time in a gateway, and one of a topic across
/// the gateway's replicas and `mantis dlq` (409 while another does).
#[utoipa::path(post, path = "/api/v1/dead-letters/{topic}/replay", tag = "operations",
    params(("topic" = String, Path, description = "e.g. dlq.preprocessing")),
    request_body(content = Option<ReplayRequest>),
    responses((status = 200, body = ReplayedView),
        (status = 409, description = "Another replay is running in this gateway, or one of the topic elsewhere (another replica, `mantis dlq`)"),
        (status = 422, description = "The topic holds over a million records: replay it with `mantis dlq`")))]
pub(crate) async fn replay(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(topic): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    platform_admin(&who)?;
    let trimmed = body.trim_ascii();
    let request: ReplayRequest = if trimmed.is_empty() || trimmed == b"null" {
        ReplayRequest::default()
    } else {
        mantis_runtime::parse_json_object(&body)?
    };
    let filter = filter(request.reason.as_ref(), request.since.as_ref())?;
    let replaying = if request.dry_run {
        None
    } else {
        Some(REPLAYING.try_acquire().map_err(|_| {
            Problem::new(
                StatusCode::CONFLICT,
                "Conflict",
                "another replay is running in this gateway: try again once it is done",
            )
        })?)
    };
    let reading = permit()?;
    readable(&s, &topic).await?;
    // To its end even when the caller goes away (a proxy's timeout): a replay cut short
    // would be run again and publish twice what it had published; the outcome is logged.
    let (bus, store, dry_run) = (s.bus.clone(), s.store.clone(), request.dry_run);
    let user = who.username.clone();
    let options = dead_letters::ReplayOptions {
        dry_run,
        again: request.again,
        by: user.clone(),
    };
    let done = tokio::spawn(async move {
        let (_reading, _replaying) = (reading, replaying);
        let done =
            dead_letters::replay_alone(store.as_ref(), bus.as_ref(), &topic, &filter, &options)
                .await;
        match &done {
            Ok(d) => tracing::info!(%user, %topic, dry_run, again = options.again, published = ?d.published, filtered = d.filtered, copies = d.copies, not_replayable = d.not_replayable, already_replayed = d.already_replayed, refused = d.refused, stopped = ?d.stopped, "dead letters replayed"),
            Err(e) => tracing::warn!(%user, %topic, dry_run, error = %e, "dead letters not replayed"),
        }
        done
    })
    .await
    .map_err(|e| Problem::internal(format!("the replay task failed: {e}")))?
    .map_err(problem)?;
    Ok(Json(done).into_response())
}
