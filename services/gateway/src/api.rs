//! The REST API: routing, what every handler shares, and list responses (JSON or CSV).

use crate::auth::{Auth, Principal, guard};
use crate::live::LiveHub;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use mantis_cache::Cache;
use mantis_domain::{Asset, AssetId};
use mantis_runtime::Problem;
use mantis_store::Store;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<dyn Cache>,
    /// The bus: the dead-letter topics are read and replayed through it.
    pub(crate) bus: Arc<dyn mantis_bus::Bus>,
    pub(crate) auth: Arc<Auth>,
    pub(crate) live: LiveHub,
    pub(crate) shifts: crate::kpi::Shifts,
    pub(crate) objects: Arc<dyn mantis_objects::ObjectStore>,
    pub(crate) rules_dir: Option<std::path::PathBuf>,
    /// The rules as loaded at start (as the orchestrator applies them): response times of
    /// work orders planned by hand.
    pub(crate) rules: Arc<mantis_rules::RuleSet>,
    /// How long work orders take and which skill they need (`rules/planning.toml`).
    pub(crate) estimates: Arc<mantis_rules::plan::Estimates>,
    /// Plans being made at once at most (each takes a CPU up to the search's time limit).
    pub(crate) planner: Arc<tokio::sync::Semaphore>,
    pub(crate) ws_recheck: std::time::Duration,
    /// Where `POST /api/v1/sensors/data` forwards readings.
    pub(crate) ingest: crate::ingest::Upstream,
}

pub(crate) type ApiResult<T> = Result<T, Problem>;

/// Query parameters of a request.
pub(crate) type Params = HashMap<String, String>;

pub(crate) fn router(state: ApiState) -> Router {
    use crate::{access, kpi, operations, plant};
    let protected = Router::new()
        .route("/api/v1/auth/me", get(access::me))
        .route("/api/v1/auth/password", post(access::change_password))
        .route(
            "/api/v1/users",
            get(access::list_users).post(access::create_user),
        )
        .route(
            "/api/v1/users/{username}",
            axum::routing::patch(access::update_user),
        )
        .route(
            "/api/v1/api-keys",
            get(access::list_api_keys).post(access::create_api_key),
        )
        .route("/api/v1/api-keys/{id}", delete(access::revoke_api_key))
        .route("/api/v1/dead-letters", get(crate::dead_letters::list))
        .route(
            "/api/v1/dead-letters/{topic}",
            get(crate::dead_letters::show),
        )
        .route(
            "/api/v1/dead-letters/{topic}/replay",
            post(crate::dead_letters::replay),
        )
        .route("/api/v1/overview", get(plant::overview))
        .route(
            "/api/v1/assets",
            get(plant::list_assets).post(plant::create_asset),
        )
        .route("/api/v1/assets/{id}", get(plant::get_asset))
        .route(
            "/api/v1/assets/{id}/events",
            get(plant::list_events).post(plant::record_event),
        )
        .route(
            "/api/v1/assets/{id}/anomaly-scores",
            get(plant::anomaly_scores),
        )
        .route("/api/v1/assets/{id}/rul", get(plant::rul_history))
        .route(
            "/api/v1/assets/{id}/production",
            get(crate::production::list)
                .post(crate::production::record)
                .delete(crate::production::remove),
        )
        .route("/api/v1/sensors/{id}/readings", get(plant::readings))
        .route("/api/v1/sensors/{id}/windows", get(plant::windows))
        .route("/api/v1/features/{asset_id}", get(plant::latest_features))
        .route("/api/v1/anomalies", get(plant::anomalies))
        .route("/api/v1/alerts", get(operations::list_alerts))
        .route(
            "/api/v1/alerts/{id}/acknowledge",
            post(operations::acknowledge_alert),
        )
        .route("/api/v1/alerts/{id}/assign", post(operations::assign_alert))
        .route(
            "/api/v1/work-orders",
            get(operations::list_work_orders).post(operations::create_work_order),
        )
        .route(
            "/api/v1/work-orders/{id}",
            get(operations::get_work_order).patch(operations::update_work_order),
        )
        .route(
            "/api/v1/work-orders/{id}/transition",
            post(operations::transition_work_order),
        )
        .route(
            "/api/v1/work-orders/{id}/complete",
            post(operations::complete_work_order),
        )
        .route("/api/v1/kpis", get(kpi::kpis))
        .route(
            "/api/v1/planned-stops",
            get(crate::calendar::list)
                .post(crate::calendar::create)
                .delete(crate::calendar::remove_starting),
        )
        .route(
            "/api/v1/planned-stops/{id}",
            delete(crate::calendar::remove),
        )
        .route("/api/v1/reliability", get(crate::reliability::reliability))
        .route(
            "/api/v1/technicians",
            get(crate::planning::list_technicians),
        )
        .route(
            "/api/v1/technicians/{name}",
            axum::routing::put(crate::planning::put_technician)
                .delete(crate::planning::delete_technician),
        )
        .route(
            "/api/v1/time-off",
            get(crate::planning::list_time_off).post(crate::planning::create_time_off),
        )
        .route(
            "/api/v1/time-off/{id}",
            delete(crate::planning::delete_time_off),
        )
        .route("/api/v1/spare-parts", get(crate::stores::list_parts))
        .route(
            "/api/v1/spare-parts/{partNumber}",
            get(crate::stores::get_part)
                .put(crate::stores::put_part)
                .delete(crate::stores::delete_part),
        )
        .route(
            "/api/v1/spare-parts/{partNumber}/movements",
            get(crate::stores::list_movements).post(crate::stores::record_movement),
        )
        .route("/api/v1/schedule", get(crate::planning::schedule))
        .route("/api/v1/schedule/apply", post(crate::planning::apply))
        .route("/api/v1/models", get(crate::catalog::models))
        .route("/api/v1/rules", get(crate::catalog::rules))
        .route("/ws", get(crate::live::ws))
        .route(
            "/api/v1/sensors/data",
            post(crate::ingest::post_readings).layer(axum::extract::DefaultBodyLimit::max(
                crate::ingest::MAX_BODY,
            )),
        )
        .route_layer(from_fn_with_state(state.auth.clone(), guard));
    Router::new()
        .route("/api/v1/auth/login", post(access::login))
        .merge(protected)
        .route("/api/openapi.json", get(crate::openapi::document))
        .route("/api/docs", get(crate::openapi::docs))
        // After routing: an unknown path is a 404 whatever its body.
        .route_layer(from_fn(mantis_runtime::json_bodies))
        .fallback(crate::web::fallback)
        .method_not_allowed_fallback(mantis_runtime::method_not_allowed)
        .with_state(state)
        .layer(from_fn(mantis_runtime::problem_bodies))
        .layer(from_fn(request_id))
}

/// Gives every request an id (`X-Request-Id`, kept when the client sent a sane one), logged
/// with the request and returned with the response.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // The id chosen is the one the handlers see (and forward to the services).
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert("x-request-id", value);
    }
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

// --- shared helpers -----------------------------------------------------------------------------

/// Query parameters of the lists that take a limit (for the OpenAPI document; handlers read
/// [`Params`]).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ListQuery {
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `csv` for a CSV download (or send `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

/// Query parameter of the lists that are always whole.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct FormatQuery {
    /// `csv` for a CSV download (or send `Accept: text/csv`).
    #[param(inline)]
    format: Option<Format>,
}

/// How a list is answered.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum Format {
    Json,
    Csv,
}

/// `limit` (1..=1000, default 100).
pub(crate) fn limit(params: &Params) -> ApiResult<u32> {
    match params.get("limit") {
        None => Ok(100),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(
                Problem::bad_request("limit must be an integer within 1..=1000")
                    .with_field("/limit", format!("`{s}` is not within 1..=1000")),
            ),
        },
    }
}

/// A UUID path or query value.
pub(crate) fn parse_id<T>(raw: &str, what: &str, pointer: &str) -> ApiResult<T>
where
    T: std::str::FromStr,
{
    raw.parse::<T>().map_err(|_| {
        Problem::bad_request(format!("{what} must be a UUID"))
            .with_field(pointer, format!("`{raw}` is not a UUID"))
    })
}

/// An optional RFC 3339 instant of the query.
pub(crate) fn instant(
    params: &Params,
    name: &str,
) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    params
        .get(name)
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    Problem::bad_request(format!("{name} must be an RFC 3339 instant")).with_field(
                        format!("/{name}"),
                        format!("`{s}` is not an RFC 3339 instant"),
                    )
                })
        })
        .transpose()
}

/// The query's `[from, to)` of a list of what lies ahead: `from` default now, `to` default
/// `days` after `from`; `400` unless `from` is before `to`.
pub(crate) fn period_ahead(
    params: &Params,
    days: i64,
) -> ApiResult<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let from = instant(params, "from")?.unwrap_or_else(chrono::Utc::now);
    let to = instant(params, "to")?.unwrap_or(from + chrono::Duration::days(days));
    if from >= to {
        return Err(
            Problem::bad_request("from must be before to").with_field("/to", "not after `from`")
        );
    }
    Ok((from, to))
}

/// The query's `[from, to)` of a removal (`what`: "counts"): both required (nothing is removed
/// by default), `400` naming the one missing, or `to` when not after `from`.
pub(crate) fn required_period(
    params: &Params,
    what: &str,
) -> ApiResult<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let (from, to) = (instant(params, "from")?, instant(params, "to")?);
    let (Some(from), Some(to)) = (from, to) else {
        let (pointer, detail) = match from {
            Some(_) => ("/to", "required with `from`"),
            None => ("/from", "required with `to`"),
        };
        return Err(Problem::bad_request(format!(
            "say which {what} to remove: from and to (the starts of those removed)"
        ))
        .with_field(pointer, detail));
    };
    if from >= to {
        return Err(
            Problem::bad_request("from must be before to").with_field("/to", "not after `from`")
        );
    }
    Ok((from, to))
}

/// `201 Created` with `value` and its `location`.
pub(crate) fn created<T: Serialize>(value: &T, location: &str) -> Response {
    let mut response = (StatusCode::CREATED, Json(value)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The `[from, to)` range of a query: `to` defaults to now, `from` to `default_span` before
/// it; `from` must be before `to` and the range at most ten years.
pub(crate) fn time_range(
    params: &Params,
    default_span: chrono::Duration,
) -> ApiResult<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let to = instant(params, "to")?.unwrap_or_else(chrono::Utc::now);
    let from = instant(params, "from")?.unwrap_or(to - default_span);
    if from >= to {
        return Err(
            Problem::bad_request("from must be before to").with_field("/from", "after `to`")
        );
    }
    if to - from > chrono::Duration::days(3660) {
        return Err(Problem::bad_request("the range may not exceed ten years")
            .with_field("/from", "too far back"));
    }
    Ok((from, to))
}

/// The sensor if it exists and its asset belongs to the caller's tenant (404 otherwise).
pub(crate) async fn tenant_sensor(
    store: &dyn Store,
    who: &Principal,
    id: mantis_domain::SensorId,
) -> ApiResult<mantis_domain::Sensor> {
    let missing = || Problem::not_found(format!("sensor {id} does not exist"));
    let sensor = store.get_sensor(id).await?.ok_or_else(missing)?;
    tenant_asset(store, who, sensor.asset_id)
        .await
        .map_err(|_| missing())?;
    Ok(sensor)
}

/// The asset if it exists and belongs to the caller's tenant (404 otherwise: another tenant's
/// asset does not exist for this caller).
pub(crate) async fn tenant_asset(
    store: &dyn Store,
    who: &Principal,
    id: AssetId,
) -> ApiResult<Asset> {
    match store.get_asset(id).await? {
        Some(asset) if asset.tenant_id == who.tenant_id => Ok(asset),
        _ => Err(Problem::not_found(format!("asset {id} does not exist"))),
    }
}

/// The ids of the caller's tenant's assets.
pub(crate) async fn tenant_assets(store: &dyn Store, who: &Principal) -> ApiResult<Vec<Asset>> {
    Ok(store.list_assets(Some(who.tenant_id)).await?)
}

/// Whether the client asked for CSV (`?format=csv` or `Accept: text/csv`); `format` must be
/// `json` or `csv`.
pub(crate) fn wants_csv(headers: &HeaderMap, params: &Params) -> ApiResult<bool> {
    let accept_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    match params.get("format").map(|f| f.to_ascii_lowercase()) {
        None => Ok(accept_csv),
        Some(f) if f == "csv" => Ok(true),
        Some(f) if f == "json" => Ok(false),
        Some(f) => Err(Problem::bad_request("format must be json or csv")
            .with_field("/format", format!("`{f}` is not json or csv"))),
    }
}

/// A list as JSON, or as CSV when asked (`name` is the download's file name).
pub(crate) fn list_response<T: Serialize>(
    items: &[T],
    csv: bool,
    name: &str,
) -> ApiResult<Response> {
    if !csv {
        return Ok(Json(items).into_response());
    }
    let body = to_csv(items).map_err(Problem::internal)?;
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// RFC 4180 CSV of a list of objects: one column per field (nested objects flattened with
/// dots, arrays as JSON); columns in name order, fields only later rows have at the end.
pub(crate) fn to_csv<T: Serialize>(items: &[T]) -> Result<String, serde_json::Error> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<HashMap<String, String>> = Vec::with_capacity(items.len());
    for item in items {
        let mut row = HashMap::new();
        flatten("", &serde_json::to_value(item)?, &mut row, &mut columns);
        rows.push(row);
    }
    let mut out = String::new();
    out.push_str(
        &columns
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = columns
            .iter()
            .map(|c| csv_field(row.get(c).map_or("", String::as_str)))
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    row: &mut HashMap<String, String>,
    columns: &mut Vec<String>,
) {
    use serde_json::Value;
    let mut put = |key: String, text: String| {
        if !columns.contains(&key) {
            columns.push(key.clone());
        }
        row.insert(key, text);
    };
    match value {
        Value::Object(map) if prefix.is_empty() || !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, row, columns);
            }
        }
        Value::Null => put(prefix.to_owned(), String::new()),
        Value::String(s) => put(prefix.to_owned(), s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            put(prefix.to_owned(), value.to_string())
        }
    }
}

/// Quotes a CSV field when needed; a leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '@', '\t', '\r'])
        || (s.starts_with('-') && s.parse::<f64>().is_err())
    {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_flattens_objects_quotes_text_and_defuses_formulas() {
        #[derive(Serialize)]
        struct Row {
            name: &'static str,
            n: f64,
            nested: serde_json::Value,
            list: Vec<u8>,
            none: Option<u8>,
        }
        let csv = to_csv(&[
            Row {
                name: "a, \"b\"",
                n: -1.5,
                nested: serde_json::json!({"x": 1}),
                list: vec![1, 2],
                none: None,
            },
            Row {
                name: "=cmd()",
                n: 2.0,
                nested: serde_json::json!({"x": 2, "y": "z"}),
                list: vec![],
                none: Some(3),
            },
        ])
        .expect("csv");
        assert_eq!(
            csv,
            "list,n,name,nested.x,none,nested.y\r\n\
             \"[1,2]\",-1.5,\"a, \"\"b\"\"\",1,,\r\n\
             [],2.0,'=cmd(),2,3,z\r\n"
        );
    }
}
