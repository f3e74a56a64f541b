//! Which object store to use ([`ObjectStoreSettings`]) and [`connect`].

use crate::{Error, LocalObjects, ObjectStore, Result, S3Objects};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which object store to use; TOML `kind = "local"` (the default) or `kind = "s3"`.
///
/// ```toml
/// [infra.objects]
/// kind = "s3"
/// bucket = "mantis"
/// endpoint = "http://minio:9000"
/// access_key_id = "mantis"
/// secret_access_key = "…"
/// allow_http = true
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ObjectStoreSettings {
    /// A directory on local disk (embedded mode).
    Local {
        /// The directory. Default: `<data_dir>/objects`.
        // Not serialised when absent: layered configuration (defaults, then file, then
        // environment) must be able to switch `kind` to `s3` without a stray `path`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// An S3-compatible bucket (cluster mode).
    S3(S3Settings),
}

impl Default for ObjectStoreSettings {
    fn default() -> Self {
        Self::Local { path: None }
    }
}

/// Where and how to reach an S3-compatible bucket.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket, which must exist. Required.
    pub bucket: String,
    /// The server, e.g. `http://minio:9000` (path-style requests). Default: AWS S3 of
    /// `region` (or `AWS_ENDPOINT` from the environment).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region. Default `us-east-1` (what MinIO and moto expect).
    #[serde(default = "default_region")]
    pub region: String,
    /// The access key id. Default: `AWS_ACCESS_KEY_ID` from the environment, then the
    /// instance's or pod's role.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key. Default: `AWS_SECRET_ACCESS_KEY` from the environment, then the
    /// instance's or pod's role. Never logged.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allows an `http://` endpoint. Default `false`; an `http://` endpoint on a loopback
    /// address (`127.0.0.0/8`, `[::1]`, `localhost`) is allowed without it, for tests and
    /// a MinIO beside the process.
    #[serde(default)]
    pub allow_http: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl S3Settings {
    /// Settings for `bucket` on the server at `endpoint` with static credentials; the other
    /// fields take their defaults.
    pub fn new(
        bucket: impl Into<String>,
        endpoint: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: Some(endpoint.into()),
            region: default_region(),
            access_key_id: Some(access_key_id.into()),
            secret_access_key: Some(secret_access_key.into()),
            allow_http: false,
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The object store `settings` name; a relative or absent local path lies in `data_dir`
/// (`<data_dir>/objects` by default). Creates the local directory; makes no request to S3
/// (the first operation does).
pub fn connect(settings: &ObjectStoreSettings, data_dir: &Path) -> Result<Arc<dyn ObjectStore>> {
    let store: Arc<dyn ObjectStore> = match settings {
        ObjectStoreSettings::Local { path } => {
            let root = match path {
                Some(p) if p.is_absolute() => p.clone(),
                Some(p) => data_dir.join(p),
                None => data_dir.join("objects"),
            };
            Arc::new(LocalObjects::open(root)?)
        }
        ObjectStoreSettings::S3(s3) => Arc::new(S3Objects::new(s3)?),
    };
    tracing::info!(store = %store.describe(), "object store ready");
    Ok(store)
}

/// Checks `settings` as [`connect`] does, without creating a directory or a client that is kept
/// (no request is made either way).
pub fn check(settings: &ObjectStoreSettings) -> Result<()> {
    match settings {
        ObjectStoreSettings::Local { .. } => Ok(()),
        ObjectStoreSettings::S3(s3) => S3Objects::new(s3).map(drop),
    }
}

/// Checks `endpoint` and tells whether it may be reached over plain HTTP.
pub(crate) fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<bool> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| Error::Config(format!("the endpoint `{endpoint}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(allow_http),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if allow_http || loopback {
                Ok(true)
            } else {
                Err(Error::Config(format!(
                    "the endpoint `{endpoint}` is plain HTTP on a non-loopback host: use \
                     https, or set allow_http = true"
                )))
            }
        }
        other => Err(Error::Config(format!(
            "the endpoint `{endpoint}` must be http:// or https://, not {other}://"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_local_directory_in_the_data_dir() {
        let s: ObjectStoreSettings = toml::from_str(r#"kind = "local""#).expect("parse");
        assert_eq!(s, ObjectStoreSettings::default());
        assert_eq!(s, ObjectStoreSettings::Local { path: None });
    }

    #[test]
    fn s3_settings_take_documented_defaults() {
        let s: ObjectStoreSettings = toml::from_str(
            r#"
            kind = "s3"
            bucket = "mantis"
            endpoint = "http://127.0.0.1:9000"
            "#,
        )
        .expect("parse");
        let ObjectStoreSettings::S3(s3) = s else {
            panic!("expected s3, got {s:?}");
        };
        assert_eq!(s3.bucket, "mantis");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.access_key_id, None);
        assert!(!s3.allow_http);
    }

    #[test]
    fn an_unknown_s3_field_is_refused() {
        let e = toml::from_str::<ObjectStoreSettings>(
            r#"
            kind = "s3"
            bucket = "mantis"
            buckit = "typo"
            "#,
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("buckit"), "{e}");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let s = S3Settings::new("b", "http://127.0.0.1:1", "id", "very-secret");
        let debug = format!("{s:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn plain_http_is_allowed_on_loopback_or_when_asked() {
        assert!(check_endpoint("http://127.0.0.1:9000", false).is_ok_and(|h| h));
        assert!(check_endpoint("http://[::1]:9000", false).is_ok_and(|h| h));
        assert!(check_endpoint("http://localhost:9000", false).is_ok_and(|h| h));
        assert!(check_endpoint("http://minio:9000", true).is_ok_and(|h| h));
        assert!(check_endpoint("https://s3.example", false).is_ok_and(|h| !h));
        assert!(matches!(
            check_endpoint("http://minio:9000", false),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            check_endpoint("ftp://minio", false),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            check_endpoint("not a url", false),
            Err(Error::Config(_))
        ));
    }
}
