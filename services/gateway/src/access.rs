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
use mantis_store::UserChanges;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView {
    username: String,
    display_name: String,
    role: Role,
    #[schema(value_type = String, format = Uuid)]
    tenant_id: mantis_domain::TenantId,
    disabled: bool,
    #[schema(value_type = String, format = DateTime)]
    created_at: chrono::DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            tenant_id: u.tenant_id,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// The answer to a login.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginAnswer {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: chrono::DateTime<Utc>,
    user: UserView,
}

/// A new API key: the record and, this once, the key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedKey {
    #[serde(flatten)]
    record: mantis_domain::ApiKey,
    /// The key itself: shown only in this answer.
    key: String,
}

/// `POST /api/v1/auth/login`: a token for a username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "access", security(()),
    request_body = Credentials, responses((status = 200, body = LoginAnswer)))]
pub(crate) async fn login(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let credentials: Credentials = mantis_runtime::parse_json_object(&body)?;
    let client = client_of(&s, peer, &headers);
    logged_in(
        &s,
        credentials.username.trim(),
        &credentials.password,
        &client,
    )
    .await
}

/// The address a login is throttled by (behind a trusted proxy, the client it names).
fn client_of(
    s: &ApiState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> String {
    s.auth
        .client(peer.map(|Extension(ConnectInfo(a))| a.ip()), headers)
}

/// Logs `username` in with `password` from `client`: the answer to a login.
async fn logged_in(
    s: &ApiState,
    username: &str,
    password: &str,
    client: &str,
) -> ApiResult<Response> {
    let (token, expires_at, user) = s.auth.login(username, password, client).await?;
    Ok(Json(LoginAnswer {
        token,
        expires_at,
        user: UserView::from(&user),
    })
    .into_response())
}

/// A change of one's own password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PasswordChange {
    /// The password now.
    #[schema(max_length = 256)]
    current_password: String,
    /// The new one: 10 characters to 256 bytes, not the current one, not easy to guess
    /// (`crate::auth::password_problem`).
    #[schema(min_length = 10, max_length = 256)]
    new_password: String,
}

/// `POST /api/v1/auth/password`: a user changes their own password (the current one checked,
/// as a login is, throttled alike). Every token issued before ends, the caller's too: the
/// answer carries a new one.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "access",
    request_body = PasswordChange, responses((status = 200, body = LoginAnswer)))]
pub(crate) async fn change_password(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let change: PasswordChange = mantis_runtime::parse_json_object(&body)?;
    if who.credential != crate::auth::Credential::Login {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            "only a user who logs in with a password here can change it (API keys are \
             replaced; an identity provider's users change theirs there)",
        ));
    }
    check_password(&change.new_password, &who.username, "/newPassword")?;
    if change.current_password.len() > 256 {
        return Err(Problem::bad_request("the current password is wrong")
            .with_field("/currentPassword", "wrong password"));
    }
    if change.new_password == change.current_password {
        return Err(Problem::bad_request("the new password is the current one")
            .with_field("/newPassword", "the same as the current password"));
    }
    let client = client_of(&s, peer, &headers);
    // The current password is checked as a login checks it (throttled per address and user).
    // A wrong one is the request's fault, not a lost session: 400, not 401.
    let verified = s
        .auth
        .verify(&who.username, &change.current_password, &client)
        .await
        .map_err(|p| {
            if p.status == StatusCode::UNAUTHORIZED.as_u16() {
                Problem::bad_request("the current password is wrong")
                    .with_field("/currentPassword", "wrong password")
            } else {
                p
            }
        })?;
    // Written only over the password just checked: a change meanwhile (an admin's reset, the
    // same user in another tab) is not overwritten.
    let changes = UserChanges {
        password_hash: Some(hashed(change.new_password).await?),
        password_hash_was: Some(verified.password_hash),
        ..UserChanges::default()
    };
    let Some(user) = s
        .store
        .update_user(who.tenant_id, &who.username, &changes)
        .await?
    else {
        // Nothing written: the account was disabled, or its password changed, meanwhile.
        let disabled = s
            .store
            .get_user(&who.username)
            .await?
            .is_none_or(|u| u.disabled);
        return Err(if disabled {
            Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the account was disabled meanwhile; nothing was changed",
            )
        } else {
            Problem::new(
                StatusCode::CONFLICT,
                "Conflict",
                "the password was changed meanwhile (by an admin or another session); nothing \
                 was changed: log in again",
            )
        });
    };
    tracing::info!(user = %who.username, "password changed by its user");
    // The new token straight from the user as written: no second check of the password.
    let (token, expires_at) = s.auth.issue(&user)?;
    Ok(Json(LoginAnswer {
        token,
        expires_at,
        user: UserView::from(&user),
    })
    .into_response())
}

/// `GET /api/v1/auth/me`.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "access", responses((status = 200, body = Principal)))]
pub(crate) async fn me(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}

/// `GET /api/v1/users`: the tenant's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "access", params(crate::api::FormatQuery),
    responses((status = 200, body = Vec<UserView>)))]
pub(crate) async fn list_users(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let users: Vec<UserView> = s
        .store
        .list_users(Some(who.tenant_id))
        .await?
        .iter()
        .map(UserView::from)
        .collect();
    list_response(&users, wants_csv(&headers, &params)?, "users")
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUser {
    #[schema(min_length = 2, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{2,64}$")]
    username: String,
    #[serde(default)]
    display_name: String,
    #[schema(value_type = Role)]
    role: String,
    #[schema(min_length = 10, max_length = 256)]
    password: String,
}

fn parse_role(raw: &str) -> ApiResult<Role> {
    Role::parse(raw)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field("/role", e.to_string()))
}

/// `password` may be set for `username` ([`crate::auth::password_problem`]), else a 400 naming
/// the field `pointer`.
fn check_password(password: &str, username: &str, pointer: &str) -> ApiResult<()> {
    match crate::auth::password_problem(password, username) {
        None => Ok(()),
        Some(why) => Err(Problem::bad_request(why.clone()).with_field(pointer, why)),
    }
}

async fn hashed(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(Problem::internal)?
        .map_err(Problem::internal)
}

/// `POST /api/v1/users`: a new user of the admin's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = NewUser,
    responses((status = 201, body = UserView)))]
pub(crate) async fn create_user(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewUser = mantis_runtime::parse_json_object(&body)?;
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
    check_password(&new.password, &username, "/password")?;
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
        token_epoch: 0,
    };
    // Insert, never replace: a username is taken once, whoever took it.
    if !s.store.insert_user(&user).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("the username `{}` is taken", user.username),
        ));
    }
    tracing::info!(user = %user.username, role = %user.role, by = %who.username, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserPatch {
    display_name: Option<String>,
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    #[schema(min_length = 10, max_length = 256)]
    password: Option<String>,
    disabled: Option<bool>,
}

/// `PATCH /api/v1/users/{username}`: role, name, password, disabled.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "access",
    params(("username" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView)))]
pub(crate) async fn update_user(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let patch: UserPatch = mantis_runtime::parse_json_object(&body)?;
    let role = patch.role.as_deref().map(parse_role).transpose()?;
    if let Some(p) = &patch.password {
        check_password(p, &username, "/password")?;
    }
    if username == who.username
        && (role.is_some_and(|r| r != Role::Admin) || patch.disabled == Some(true))
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            "an admin cannot demote or disable themselves",
        ));
    }
    let password_hash = match patch.password {
        Some(password) => Some(hashed(password).await?),
        None => None,
    };
    // Only the fields given are written, in one statement: a concurrent change of another
    // field (an admin disabling the account meanwhile) is kept, not overwritten.
    let changes = UserChanges {
        display_name: patch.display_name.map(|name| name.trim().to_owned()),
        role,
        disabled: patch.disabled,
        password_hash,
        password_hash_was: None,
    };
    match s
        .store
        .update_user(who.tenant_id, &username, &changes)
        .await?
    {
        Some(user) => Ok(Json(UserView::from(&user)).into_response()),
        None => Err(Problem::not_found(format!(
            "user `{username}` does not exist"
        ))),
    }
}

/// `GET /api/v1/api-keys`: the tenant's keys (never the secrets).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "access", params(crate::api::FormatQuery),
    responses((status = 200, body = Vec<mantis_domain::ApiKey>)))]
pub(crate) async fn list_api_keys(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let keys = s.store.list_api_keys(who.tenant_id).await?;
    list_response(&keys, wants_csv(&headers, &params)?, "api-keys")
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    #[schema(value_type = Role)]
    role: String,
}

/// `POST /api/v1/api-keys`: a new key; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "access", request_body = NewKey,
    responses((status = 201, body = CreatedKey)))]
pub(crate) async fn create_api_key(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewKey = mantis_runtime::parse_json_object(&body)?;
    let role = parse_role(&new.role)?;
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(
            Problem::bad_request("invalid key name").with_field("/name", "1 to 100 characters")
        );
    }
    let (record, key) = s.auth.create_api_key(who.tenant_id, name, role).await?;
    tracing::info!(key = %record.prefix, role = %role, by = %who.username, "API key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { record, key })).into_response())
}

/// `DELETE /api/v1/api-keys/{id}`: revokes a key at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "access",
    params(("id" = String, Path, format = Uuid)), responses((status = 204, description = "Revoked")))]
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
