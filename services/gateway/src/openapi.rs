//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API, generated from the
//! handlers' annotations and the types they take and return (utoipa). Two things are added to
//! what the annotations say, the same for every operation: the problem answers every endpoint
//! can give, and the role each endpoint needs (from [`crate::auth::POLICY`]). `GET /api/docs`
//! is a browsable rendering of it.

use crate::auth::{POLICY, required_role};
use axum::Json;
use axum::http::Method;
use axum::response::Html;
use serde_json::{Value, json};
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "MANTIS gateway", description = "The REST API of MANTIS, the predictive-maintenance platform. \
        Log in with POST /api/v1/auth/login and send `Authorization: Bearer <token>`, or send `X-API-Key`."),
    paths(
        crate::access::login, crate::access::me, crate::access::change_password, crate::access::list_users, crate::access::create_user,
        crate::access::update_user, crate::access::list_api_keys, crate::access::create_api_key,
        crate::access::revoke_api_key,
        crate::plant::overview, crate::plant::list_assets, crate::plant::create_asset,
        crate::plant::get_asset, crate::plant::list_events, crate::plant::record_event,
        crate::plant::anomaly_scores, crate::plant::rul_history, crate::plant::readings,
        crate::plant::windows, crate::ingest::post_readings,
        crate::plant::latest_features, crate::plant::anomalies,
        crate::production::record, crate::production::list, crate::production::remove,
        crate::operations::list_alerts, crate::operations::acknowledge_alert,
        crate::operations::assign_alert, crate::operations::list_work_orders,
        crate::operations::create_work_order, crate::operations::get_work_order,
        crate::operations::update_work_order, crate::operations::transition_work_order,
        crate::operations::complete_work_order,
        crate::kpi::kpis, crate::calendar::list, crate::calendar::create, crate::calendar::remove,
        crate::calendar::remove_starting,
        crate::reliability::reliability, crate::catalog::models,
        crate::planning::list_technicians, crate::planning::put_technician,
        crate::planning::delete_technician, crate::planning::list_time_off,
        crate::planning::create_time_off, crate::planning::delete_time_off,
        crate::planning::schedule, crate::planning::apply,
        crate::stores::list_parts, crate::stores::get_part, crate::stores::put_part,
        crate::stores::delete_part, crate::stores::record_movement, crate::stores::list_movements,
        crate::catalog::rules,
        crate::dead_letters::list, crate::dead_letters::show, crate::dead_letters::replay,
    ),
    components(schemas(crate::operations::AlertStateParam, crate::api::Format, crate::ingest::ReadingIn)),
    modifiers(&Security),
    security(("bearer" = []), ("apiKey" = [])),
)]
struct Document;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object",
                "required": ["pointer", "detail"],
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}}}}
        }
    })
}

/// The problem answers every operation may give.
const PROBLEMS: &[(&str, &str)] = &[
    (
        "400",
        "The request is invalid (the problem names the fields)",
    ),
    ("401", "Not authenticated, or the token expired"),
    ("403", "The caller's role may not do this"),
    ("404", "No such thing (or another tenant's)"),
    ("405", "The endpoint does not take this method"),
    ("409", "Conflicts with the current state"),
    ("429", "Rate limited: retry after `Retry-After` seconds"),
    ("503", "A dependency (database) is unavailable"),
];

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(Document::openapi()).unwrap_or_else(|_| json!({}));
    doc["info"]["version"] = Value::String(env!("CARGO_PKG_VERSION").into());
    doc["components"]["schemas"]["Problem"] = problem_schema();
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    // Readings are posted one, an array of them, or one per line, with RFC 3339 or epoch-ms
    // times: more than the annotation says.
    let reading = json!({"$ref": "#/components/schemas/ReadingIn"});
    doc["components"]["schemas"]["ReadingIn"]["properties"]["timestamp"] = json!({
        "description": "RFC 3339 time, or milliseconds since the epoch",
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
    });
    doc["paths"]["/api/v1/sensors/data"]["post"]["requestBody"]["content"] = json!({
        "application/json": {"schema": {"oneOf": [reading, {"type": "array", "items": reading}]}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one reading object per line"}},
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (route, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in ops.iter_mut() {
                let Ok(m) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                for (status, description) in PROBLEMS {
                    if op["responses"].get(*status).is_none() {
                        op["responses"][*status] =
                            json!({"description": description, "content": problem.clone()});
                    }
                }
                // An error an operation documents itself (413, 415) is a problem body too.
                if let Some(responses) = op["responses"].as_object_mut() {
                    for (status, answer) in responses.iter_mut() {
                        if (status.starts_with('4') || status.starts_with('5'))
                            && answer.get("content").is_none()
                        {
                            answer["content"] = problem.clone();
                        }
                    }
                }
                // Lists with a `format` parameter also answer CSV.
                let has_format = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "format"));
                if has_format && op["responses"]["200"]["content"].is_object() {
                    op["responses"]["200"]["content"]["text/csv"] = json!({"schema": {"type": "string", "description": "RFC 4180 CSV, one row per item"}});
                }
                if let Some(role) = required_role(&m, route) {
                    op["x-required-role"] = Value::String(role.as_str().into());
                    let summary = op["description"].as_str().unwrap_or_default().to_owned();
                    op["description"] = Value::String(
                        format!("{summary}\n\nNeeds the `{role}` role.")
                            .trim()
                            .into(),
                    );
                }
            }
        }
    }
    doc
});

/// The document.
pub(crate) async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// Every `(method, route)` the document describes.
pub(crate) fn operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = DOCUMENT["paths"].as_object() {
        for (route, item) in paths {
            if let Some(ops) = item.as_object() {
                for method in ops.keys() {
                    out.push((method.to_ascii_uppercase(), route.clone()));
                }
            }
        }
    }
    out
}

/// `GET /api/docs`: the document rendered as a page (no external scripts: a plain listing of
/// every operation with its role, parameters and answers).
pub(crate) async fn docs() -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>MANTIS API</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2rem;max-width:70rem}\
         code{background:#f2f2f2;padding:0 .2em}h2{margin-top:2rem}\
         .op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:.6rem 0}\
         .m{font-weight:700;display:inline-block;min-width:4.5rem}</style></head><body>\
         <h1>MANTIS gateway API</h1><p>Machine-readable: <a href=\"/api/openapi.json\">/api/openapi.json</a>. \
         Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (from <code>POST /api/v1/auth/login</code>) \
         or <code>X-API-Key</code>.</p>",
    );
    if let Some(paths) = DOCUMENT["paths"].as_object() {
        for (route, item) in paths {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                let role = op["x-required-role"].as_str().unwrap_or("anyone");
                let params: Vec<String> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| {
                                p["name"]
                                    .as_str()
                                    .map(|n| format!("<code>{}</code>", escape(n)))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let answers: Vec<&str> = op["responses"]
                    .as_object()
                    .map(|r| r.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                html.push_str(&format!(
                    "<div class=\"op\"><span class=\"m\">{}</span><code>{}</code> — role: {}<br>{}<br>parameters: {}; answers: {}</div>",
                    method.to_ascii_uppercase(),
                    escape(route),
                    escape(role),
                    escape(op["description"].as_str().unwrap_or_default()).replace('\n', "<br>"),
                    if params.is_empty() { "none".to_owned() } else { params.join(", ") },
                    answers.join(", ")
                ));
            }
        }
    }
    html.push_str("</body></html>");
    Html(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether every route of the access policy is documented (checked by a test).
#[allow(dead_code)]
pub(crate) fn undocumented() -> Vec<(&'static str, &'static str)> {
    let ops = operations();
    POLICY
        .iter()
        .filter(|(m, r, _)| *r != "/ws" && !ops.iter().any(|(om, or)| om == m && or == r))
        .map(|(m, r, _)| (*m, *r))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_endpoint_of_the_policy_is_documented_with_its_role() {
        assert!(
            super::undocumented().is_empty(),
            "{:?}",
            super::undocumented()
        );
        let doc = &*super::DOCUMENT;
        assert_eq!(
            doc["paths"]["/api/v1/users"]["post"]["x-required-role"],
            "admin"
        );
        assert!(doc["paths"]["/api/v1/auth/login"]["post"]["responses"]["401"].is_object());
        assert!(doc["components"]["schemas"]["AlertRecord"].is_object());
    }
}
