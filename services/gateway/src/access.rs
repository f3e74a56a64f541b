//! Logging in, the caller's identity, users and API keys (admins of the tenant).

use crate::api::{ApiResult, ApiState, Params, list_response, parse_id, wants_csv};
use crate::auth::{Principal, hash_password};
use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mantis_domain::{ApiKeyId, Role, User};
use mantis_runtime::Problem;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/v1/auth/login`: a token for a username and password.
pub(crate) async fn login(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let credentials: Credentials = mantis_runtime::parse_json(&body)?;
    let client = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(a))| a.ip().to_string(),
    );
    let (token, expires_at, user) = s
        .auth
        .login(credentials.username.trim(), &credentials.password, &client)
        .await?;
    Ok(Json(serde_json::json!({
        "token": token,
        "expiresAt": expires_at,
        "user": user_json(&user),
    }))
    .into_response())
}

fn user_json(u: &User) -> serde_json::Value {
    serde_json::json!({
        "username": u.username,
        "displayName": u.display_name,
        "role": u.role,
        "tenantId": u.tenant_id,
        "disabled": u.disabled,
        "createdAt": u.created_at,
    })
}

/// `GET /api/v1/auth/me`.
pub(crate) async fn me(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}

/// `GET /api/v1/users`: the tenant's users.
pub(crate) async fn list_users(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let users: Vec<serde_json::Value> = s
        .store
        .list_users(Some(who.tenant_id))
        .await?
        .iter()
        .map(user_json)
        .collect();
    list_response(&users, wants_csv(&headers, &params), "users")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    username: String,
    #[serde(default)]
    display_name: String,
    role: String,
    password: String,
}

fn parse_role(raw: &str) -> ApiResult<Role> {
    Role::parse(raw)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field("/role", e.to_string()))
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 10 {
        return Err(Problem::bad_request("the password is too short")
            .with_field("/password", "at least 10 characters"));
    }
    if password.len() > 256 {
        return Err(Problem::bad_request("the password is too long")
            .with_field("/password", "at most 256 bytes"));
    }
    Ok(())
}

async fn hashed(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(Problem::internal)?
        .map_err(Problem::internal)
}

/// `POST /api/v1/users`: a new user of the admin's tenant.
pub(crate) async fn create_user(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewUser = mantis_runtime::parse_json(&body)?;
    let username = new.username.trim().to_owned();
    let valid_name = (2..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !valid_name {
        return Err(Problem::bad_request("invalid username")
            .with_field("/username", "2 to 64 characters: letters, digits, . _ - @"));
    }
    let role = parse_role(&new.role)?;
    check_password(&new.password)?;
    if s.store.get_user(&username).await?.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("user `{username}` already exists"),
        ));
    }
    let user = User {
        display_name: if new.display_name.trim().is_empty() {
            username.clone()
        } else {
            new.display_name.trim().to_owned()
        },
        username,
        tenant_id: who.tenant_id,
        role,
        password_hash: hashed(new.password).await?,
        disabled: false,
        created_at: Utc::now(),
    };
    s.store.upsert_user(&user).await?;
    tracing::info!(user = %user.username, role = %user.role, by = %who.username, "user created");
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserPatch {
    display_name: Option<String>,
    role: Option<String>,
    password: Option<String>,
    disabled: Option<bool>,
}

/// `PATCH /api/v1/users/{username}`: role, name, password, disabled.
pub(crate) async fn update_user(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let patch: UserPatch = mantis_runtime::parse_json(&body)?;
    let role = patch.role.as_deref().map(parse_role).transpose()?;
    if let Some(p) = &patch.password {
        check_password(p)?;
    }
    let mut user = match s.store.get_user(&username).await? {
        Some(u) if u.tenant_id == who.tenant_id => u,
        _ => {
            return Err(Problem::not_found(format!(
                "user `{username}` does not exist"
            )));
        }
    };
    if user.username == who.username
        && (role.is_some_and(|r| r != Role::Admin) || patch.disabled == Some(true))
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            "an admin cannot demote or disable themselves",
        ));
    }
    if let Some(name) = patch.display_name {
        user.display_name = name.trim().to_owned();
    }
    if let Some(role) = role {
        user.role = role;
    }
    if let Some(disabled) = patch.disabled {
        user.disabled = disabled;
    }
    if let Some(password) = patch.password {
        user.password_hash = hashed(password).await?;
    }
    s.store.upsert_user(&user).await?;
    Ok(Json(user_json(&user)).into_response())
}

/// `GET /api/v1/api-keys`: the tenant's keys (never the secrets).
pub(crate) async fn list_api_keys(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let keys = s.store.list_api_keys(who.tenant_id).await?;
    list_response(&keys, wants_csv(&headers, &params), "api-keys")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
}

/// `POST /api/v1/api-keys`: a new key; the answer is the only time the key is shown.
pub(crate) async fn create_api_key(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewKey = mantis_runtime::parse_json(&body)?;
    let role = parse_role(&new.role)?;
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(
            Problem::bad_request("invalid key name").with_field("/name", "1 to 100 characters")
        );
    }
    let (record, key) = s.auth.create_api_key(who.tenant_id, name, role).await?;
    tracing::info!(key = %record.prefix, role = %role, by = %who.username, "API key created");
    let mut body = serde_json::to_value(&record).map_err(Problem::internal)?;
    if let Some(map) = body.as_object_mut() {
        map.insert("key".into(), serde_json::Value::String(key));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/api-keys/{id}`: revokes a key at once.
pub(crate) async fn revoke_api_key(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: ApiKeyId = parse_id(&id, "the key id", "/id")?;
    let mine = s.store.list_api_keys(who.tenant_id).await?;
    if !mine.iter().any(|k| k.id == id) {
        return Err(Problem::not_found(format!("API key {id} does not exist")));
    }
    s.store.revoke_api_key(id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
