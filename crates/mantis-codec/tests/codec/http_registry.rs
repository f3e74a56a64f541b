//! `HttpRegistry` against a stand-in for a Confluent-compatible schema registry.
//!
//! No Confluent-compatible registry can be installed on this machine (Karapace is not on PyPI;
//! Confluent and Apicurio need Maven Central or Docker), so the test serves the three endpoints
//! the client calls — `POST /subjects/{s}/versions`, `GET /subjects/{s}/versions/latest` and
//! `GET /schemas/ids/{id}` — from a small axum app on 127.0.0.1, port 0, with its state in a
//! Mutex. It answers the way Confluent does (`{"id":..}`, `{"schema":..}`, and error bodies with
//! `error_code` 40401 / 40403 / 409), but checks no compatibility itself. For `https://`, a TLS
//! end made with rustls (a certificate of a throw-away CA made by `openssl`) passes the bytes
//! on to it.

use crate::fixtures::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mantis_codec::{Codec, Error, HttpRegistry, Record, SCHEMAS, SchemaRegistry, wire};
use mantis_domain::Reading;
use serde_json::{Value as JsonValue, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Ids the stand-in hands out start here, far from the embedded table's.
const FIRST_ID: u32 = 101;

#[derive(Default)]
struct StandIn {
    /// Schema texts; the id of `schemas[i]` is `FIRST_ID + i`.
    schemas: Vec<String>,
    /// Subject → ids of its versions, oldest first.
    subjects: BTreeMap<String, Vec<u32>>,
    /// How many times `GET /schemas/ids/{id}` was called.
    fetches_by_id: usize,
    /// The `Authorization` headers of the requests (none: `None`).
    authorizations: std::collections::BTreeSet<Option<String>>,
}

type Shared = Arc<Mutex<StandIn>>;

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({ "error_code": code, "message": message })),
    )
        .into_response()
}

fn same_schema(a: &str, b: &str) -> bool {
    serde_json::from_str::<JsonValue>(a).ok() == serde_json::from_str::<JsonValue>(b).ok()
}

async fn register(
    State(state): State<Shared>,
    Path(subject): Path<String>,
    body: String,
) -> Response {
    let Some(schema) = serde_json::from_str::<JsonValue>(&body)
        .ok()
        .and_then(|b| b["schema"].as_str().map(str::to_owned))
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    if subject == "frozen-value" {
        return error(
            StatusCode::CONFLICT,
            409,
            "Schema being registered is incompatible with an earlier schema",
        );
    }
    let mut s = state.lock().expect("stand-in state");
    let index = match s
        .schemas
        .iter()
        .position(|known| same_schema(known, &schema))
    {
        Some(i) => i,
        None => {
            s.schemas.push(schema);
            s.schemas.len() - 1
        }
    };
    let id = FIRST_ID + index as u32;
    let versions = s.subjects.entry(subject).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    Json(json!({ "id": id })).into_response()
}

async fn by_id(State(state): State<Shared>, Path(id): Path<u32>) -> Response {
    let mut s = state.lock().expect("stand-in state");
    s.fetches_by_id += 1;
    match id
        .checked_sub(FIRST_ID)
        .and_then(|i| s.schemas.get(i as usize))
    {
        Some(schema) => Json(json!({ "schema": schema })).into_response(),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn latest(State(state): State<Shared>, Path(subject): Path<String>) -> Response {
    let s = state.lock().expect("stand-in state");
    match s
        .subjects
        .get(&subject)
        .and_then(|v| v.last().map(|id| (v.len(), *id)))
    {
        Some((version, id)) => Json(json!({
            "subject": subject,
            "version": version,
            "id": id,
            "schema": s.schemas[(id - FIRST_ID) as usize],
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            40401,
            &format!("Subject '{subject}' not found."),
        ),
    }
}

async fn note_authorization(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let seen = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    state
        .lock()
        .expect("stand-in state")
        .authorizations
        .insert(seen);
    next.run(request).await
}

/// Starts the stand-in; returns its base URL and its state.
async fn spawn_stand_in() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/subjects/{subject}/versions/latest", get(latest))
        .route("/schemas/ids/{id}", get(by_id))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            note_authorization,
        ))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn the_codec_registers_and_fetches_its_schemas_over_http() {
    let (url, state) = spawn_stand_in().await;
    let registry = Arc::new(HttpRegistry::new(url).expect("a client"));

    let codec = Codec::new(registry.clone())
        .await
        .expect("registers every topic");

    // The ids are the stand-in's, not the embedded table's.
    let raw_id = codec.schema_id(Reading::TOPIC).expect("sensor.raw");
    assert!(raw_id >= FIRST_ID, "id {raw_id} came from the stand-in");
    let latest = registry.latest("sensor.raw-value").await.expect("latest");
    assert_eq!(latest.map(|l| (l.id, l.version)), Some((raw_id, 1)));
    assert_eq!(
        state.lock().expect("state").subjects.len(),
        SCHEMAS.iter().filter(|s| s.is_latest()).count()
    );

    every_record_round_trips(&codec).await;
    assert_eq!(
        state.lock().expect("state").fetches_by_id,
        0,
        "the codec knows the schemas it registered"
    );

    // An older producer registered v1; its records are fetched by id, once.
    let v1 = SCHEMAS.iter().find(|s| s.id == 1).expect("sensor.raw v1");
    let v1_id = registry
        .register("sensor.raw-value", v1.source)
        .await
        .expect("registers v1");
    assert!(v1_id >= FIRST_ID && v1_id != raw_id);
    let (_, v1_schema) = schema("sensor.raw", 1);
    let asset = "0b7e4c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d";
    let bytes = frame_by_hand(v1_id, &v1_schema, sensor_raw_v1(asset, 90));
    for _ in 0..2 {
        let reading: Reading = codec.decode(&bytes).await.expect("v2 reads v1 over HTTP");
        assert_eq!(reading.asset_id.to_string(), asset);
    }
    assert_eq!(state.lock().expect("state").fetches_by_id, 1);

    // Registering again is idempotent.
    assert_eq!(
        registry.register("sensor.raw-value", v1.source).await.ok(),
        Some(v1_id)
    );
}

#[tokio::test]
async fn registry_errors_map_onto_the_codec_errors() {
    let (url, _state) = spawn_stand_in().await;
    let registry = Arc::new(HttpRegistry::new(url).expect("a client"));
    let codec = Codec::new(registry.clone()).await.expect("codec");

    let err = codec
        .decode::<Reading>(&wire::frame(9999, &[]))
        .await
        .expect_err("unknown id");
    assert!(matches!(err, Error::UnknownSchemaId { id: 9999 }), "{err}");

    assert_eq!(registry.latest("nope-value").await.ok(), Some(None));

    let err = registry
        .register("frozen-value", SCHEMAS[0].source)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_registry_is_a_retriable_error_not_a_dead_letter() {
    // A port that was just free: nothing listens on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let registry = Arc::new(HttpRegistry::new(format!("http://{addr}")).expect("a client"));
    let err = Codec::new(registry).await.expect_err("nothing to talk to");
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(err.is_retriable() && !err.is_dead_letter(), "{err}");
}

/// A TLS end in front of `plain` (`http://host:port`) with `pki`'s server certificate:
/// answers its `https://127.0.0.1:<port>` address.
async fn spawn_tls_end(pki: &crate::pki::Pki, plain: &str) -> String {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(pki.server_cert())
        .expect("server certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_file(pki.server_key()).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let plain = plain.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, plain) = (acceptor.clone(), plain.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends its handshake: nothing to pass on.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut inner) = tokio::net::TcpStream::connect(&plain).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
                }
            });
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

/// An `https://` registry whose certificate a private CA signed, with credentials in its URL
/// (Confluent Cloud's API key and secret, percent-encoded): trusted through the CA given, the
/// credentials sent as basic authentication; without the CA the registry is not trusted (a
/// registry error, retried, never a dead letter); a CA that is not PEM is refused at once.
#[tokio::test]
async fn an_https_registry_is_trusted_through_its_ca_and_given_the_urls_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = crate::pki::Pki::generate(dir.path());
    let (plain, state) = spawn_stand_in().await;
    let tls = spawn_tls_end(&pki, &plain).await;
    let ca = std::fs::read(pki.ca()).expect("CA");

    let url = format!("https://mantis%40plant:s3cr+t%2Fx@{tls}/");
    let registry = HttpRegistry::connect(&url, Some(&ca)).expect("a client");
    let codec = Codec::new(Arc::new(registry))
        .await
        .expect("registers every topic over TLS");
    every_record_round_trips(&codec).await;
    let seen = state.lock().expect("state").authorizations.clone();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [Some("Basic bWFudGlzQHBsYW50OnMzY3IrdC94".to_owned())],
        "every request carries `mantis@plant:s3cr+t/x`"
    );

    let untrusted = HttpRegistry::connect(&format!("https://{tls}"), None).expect("a client");
    let err = Codec::new(Arc::new(untrusted))
        .await
        .expect_err("a certificate of an unknown CA");
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(err.is_retriable() && !err.is_dead_letter(), "{err}");

    let err = HttpRegistry::connect(&url, Some(b"not a certificate")).expect_err("not PEM");
    assert!(err.to_string().contains("CA"), "{err}");
    let err = HttpRegistry::connect("ftp://registry", None).expect_err("not http");
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}
