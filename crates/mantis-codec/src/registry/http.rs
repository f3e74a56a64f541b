//! A client for a Confluent-compatible schema registry, built on `schema_registry_converter`.

use crate::{Error, LatestSchema, Result, SchemaRegistry};
use async_trait::async_trait;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, get_schema_by_subject_and_version, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};
use std::time::Duration;

/// A Confluent-compatible schema registry reached over HTTP or HTTPS (Confluent, Confluent
/// Cloud, Karapace, Apicurio's compatibility API, Redpanda).
#[derive(Clone, Debug)]
pub struct HttpRegistry {
    settings: SrSettings,
}

impl HttpRegistry {
    /// A client for the registry at `url` (e.g. `http://schema-registry:8081`), with a 10 s
    /// timeout per request: [`HttpRegistry::connect`] without a CA of its own.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Self::connect(&url.into(), None)
    }

    /// A client for the registry at `url`, `http://` or `https://` (trusting the system's
    /// roots and, when given, the certificates of `ca_pem`: a private CA, PEM). Credentials in
    /// the URL (`https://<key>:<secret>@host`, percent-encoded) are sent as basic
    /// authentication — Confluent Cloud's API key and secret — and taken out of the URL.
    /// 10 s timeout per request.
    pub fn connect(url: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let invalid = Error::RegistrySettings;
        let mut parsed = url::Url::parse(url)
            .map_err(|e| invalid(format!("the registry's URL does not parse: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the registry's URL must be http:// or https://, not {}://",
                parsed.scheme()
            )));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decode(parsed.username());
        let password = parsed.password().map(decode);
        // Neither fails on an http(s) URL with a host.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let mut client = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("the registry's CA is not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(invalid(
                    "the registry's CA file holds no certificate".into(),
                ));
            }
            client = client.tls_certs_merge(certs);
        }
        let mut builder = SrSettings::new_builder(parsed.as_str().trim_end_matches('/').into());
        builder.set_timeout(Duration::from_secs(10));
        if !user.is_empty() || password.is_some() {
            if parsed.scheme() == "http" {
                tracing::warn!(registry = %parsed, "the schema registry's credentials go in clear over http://: use https://");
            }
            builder.set_basic_authorization(&user, password.as_deref());
        }
        let settings = builder.build_with(client).map_err(registry_error)?;
        Ok(Self { settings })
    }

    /// A client with settings built by the caller (several URLs, authentication, headers).
    pub fn from_settings(settings: SrSettings) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl SchemaRegistry for HttpRegistry {
    #[tracing::instrument(skip(self, schema))]
    async fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        match post_schema(&self.settings, subject.to_owned(), supplied).await {
            Ok(registered) => Ok(registered.id),
            Err(e) => Err(match http_status(&e) {
                Some(409) => Error::Incompatible {
                    subject: subject.to_owned(),
                    reason: describe(&e),
                },
                Some(422) => Error::InvalidSchema {
                    what: format!("for subject `{subject}`"),
                    reason: describe(&e),
                },
                _ => registry_error(e),
            }),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn schema_by_id(&self, id: u32) -> Result<String> {
        let registered =
            get_schema_by_id(id, &self.settings)
                .await
                .map_err(|e| match http_status(&e) {
                    Some(404) => Error::UnknownSchemaId { id },
                    _ => registry_error(e),
                })?;
        if registered.schema_type != SchemaType::Avro {
            return Err(Error::InvalidSchema {
                what: format!("id {id}"),
                reason: format!("it is a {:?} schema, not Avro", registered.schema_type),
            });
        }
        Ok(registered.schema)
    }

    #[tracing::instrument(skip(self))]
    async fn latest(&self, subject: &str) -> Result<Option<LatestSchema>> {
        match get_schema_by_subject_and_version(&self.settings, subject, None).await {
            Ok(registered) => Ok(Some(LatestSchema {
                id: registered.id,
                version: registered.version.unwrap_or_default(),
                schema: registered.schema,
            })),
            Err(e) if http_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(registry_error(e)),
        }
    }
}

/// The HTTP status of a registry's error answer. Confluent error codes are the status, sometimes
/// followed by two digits (`40403` schema not found, `40401` subject not found); when the body
/// was not a Confluent error, the status is read from the client's message.
fn http_status(e: &SRCError) -> Option<u32> {
    let code = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
        .filter(|code| *code != 0);
    match code {
        Some(code) if code >= 10_000 => Some(code / 100),
        Some(code) => Some(code),
        None => e
            .error
            .split_once("status ")
            .and_then(|(_, rest)| rest.get(..3))
            .and_then(|status| status.parse().ok()),
    }
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    }
}

fn registry_error(e: SRCError) -> Error {
    Error::Registry {
        reason: describe(&e),
        retriable: e.retriable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_confluent_error_code_or_the_message() {
        let raw: RawError =
            serde_json::from_str(r#"{"error_code":40403,"message":"Schema not found"}"#)
                .expect("a Confluent error body");
        let not_found = SRCError::non_retryable_with_cause(
            raw,
            "HTTP request to schema registry failed with status 404 Not Found",
        );
        assert_eq!(http_status(&not_found), Some(404));
        let plain = SRCError::non_retryable_without_cause(
            "HTTP request to schema registry failed with status 409 Conflict",
        );
        assert_eq!(http_status(&plain), Some(409));
        assert_eq!(
            http_status(&SRCError::non_retryable_without_cause("boom")),
            None
        );
    }
}
