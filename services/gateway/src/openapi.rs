//! `GET /api/openapi.json`: the OpenAPI 3 description of the API, built from the routing and
//! access-policy table ([`crate::auth::POLICY`]).

use crate::auth::POLICY;
use axum::Json;
use serde_json::{Value, json};

fn problem_schema() -> Value {
    json!({
        "type": "object",
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

/// The document.
pub(crate) async fn document() -> Json<Value> {
    let mut paths = serde_json::Map::new();
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let mut add = |method: &str, route: &str, role: Option<&str>| {
        let params: Vec<Value> = route
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut responses = json!({
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            "400": {"description": "Invalid request", "content": problem},
            "401": {"description": "Not authenticated", "content": problem},
            "403": {"description": "The role may not", "content": problem},
            "404": {"description": "Not found", "content": problem},
            "409": {"description": "Conflict", "content": problem},
            "429": {"description": "Rate limited", "content": problem},
        });
        if method == "POST" {
            responses["201"] =
                json!({"description": "Created", "content": {"application/json": {"schema": {}}}});
        }
        if method == "DELETE" {
            responses["204"] = json!({"description": "Deleted"});
        }
        let mut op = json!({
            "operationId": format!("{} {}", method, route),
            "parameters": params,
            "responses": responses,
        });
        if let Some(role) = role {
            op["security"] = json!([{"bearer": []}, {"apiKey": []}]);
            op["description"] = Value::String(format!("Needs the {role} role."));
        } else {
            op["security"] = json!([]);
        }
        if matches!(method, "POST" | "PATCH") {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(route.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        entry[method.to_ascii_lowercase()] = op;
    };
    add("POST", "/api/v1/auth/login", None);
    for (method, route, role) in POLICY {
        if *route != "/ws" {
            add(method, route, Some(role.as_str()));
        }
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "MANTIS gateway", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": {"Problem": problem_schema()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
        }
    }))
}
