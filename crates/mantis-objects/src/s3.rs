//! [`S3Objects`]: objects in an S3-compatible bucket (the cluster mode's object store), through
//! the `object_store` crate, whose types stop here.
//!
//! A put is a single `PutObject` request, which S3 (and MinIO, and moto) make visible whole or
//! not at all, so readers never see a partial object. Requests are retried by `object_store`
//! (at most 3 times within 15 s) so that an unreachable server fails
//! in seconds rather than minutes.

use crate::settings::check_endpoint;
use crate::{
    Error, ObjectInfo, ObjectStore, Result, S3Settings, normalise_prefix, under_prefix,
    validate_key,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore as _, ObjectStoreExt as _, PutPayload, RetryConfig,
};
use std::time::Duration;

/// Retries of one request after the first attempt.
const MAX_RETRIES: usize = 3;
/// Time after which a request is not retried any more.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one whole request (a model of some megabytes over a slow link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Objects in an S3-compatible bucket (cluster mode).
pub struct S3Objects {
    store: AmazonS3,
    /// `endpoint/bucket`, for logs.
    location: String,
}

impl S3Objects {
    /// A client of the bucket `settings` name. Makes no request: an unreachable server or a
    /// missing bucket shows on the first operation (a write fails with [`Error::Storage`];
    /// reads may find nothing, as S3 answers 404 for a missing bucket as for a missing
    /// object). Settings that cannot work (no bucket, a
    /// malformed endpoint, plain HTTP to a remote host without `allow_http`) are
    /// [`Error::Config`].
    pub fn new(settings: &S3Settings) -> Result<Self> {
        if settings.bucket.trim().is_empty() {
            return Err(Error::Config("the S3 bucket is empty".into()));
        }
        // From the environment first (AWS_* variables, including a pod's web identity), then
        // what the settings say explicitly.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_retry(RetryConfig {
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
                ..RetryConfig::default()
            });
        let mut allow_http = settings.allow_http;
        if let Some(endpoint) = &settings.endpoint {
            allow_http = check_endpoint(endpoint, settings.allow_http)?;
            builder = builder.with_endpoint(endpoint);
        }
        builder = builder.with_client_options(
            ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT),
        );
        // Empty keys (a chart or compose file that always sets the variables) are none: the
        // environment's credentials or the pod's role are used, not an empty credential.
        if let Some(id) = settings
            .access_key_id
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = settings
            .secret_access_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the S3 client: {e}")))?;
        let server = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("aws:{}", settings.region));
        Ok(Self {
            store,
            location: format!("{}/{}", server.trim_end_matches('/'), settings.bucket),
        })
    }
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The `object_store` path of a validated key.
fn path_of(key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| Error::InvalidKey {
        key: key.to_owned(),
        reason: if matches!(e, object_store::path::Error::EmptySegment { .. }) {
            "the key has an empty segment"
        } else {
            "S3 does not accept this key"
        },
    })
}

fn storage(op: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> Error {
    move |e| Error::Storage {
        op,
        key: key.to_owned(),
        message: e.to_string(),
    }
}

fn info(meta: ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key: meta.location.to_string(),
        size: meta.size,
        last_modified: meta.last_modified,
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    #[tracing::instrument(level = "debug", skip(self, bytes), fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        validate_key(key)?;
        self.store
            .put(&path_of(key)?, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(storage("put", key))
    }

    async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        validate_key(key)?;
        // `If-None-Match: *` (object_store's default conditional put, `etag`).
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .store
            .put_opts(&path_of(key)?, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(storage("put", key)(e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        let found = match self.store.get(&path_of(key)?).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage("get", key)(e)),
        };
        found.bytes().await.map(Some).map_err(storage("get", key))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        match self.store.head(&path_of(key)?).await {
            Ok(meta) => Ok(Some(info(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage("head", key)(e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self.store.delete(&path_of(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage("delete", key)(e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = normalise_prefix(prefix)?;
        let path = if prefix.is_empty() {
            None
        } else {
            Some(path_of(prefix)?)
        };
        let metas: Vec<ObjectMeta> = self
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(storage("list", prefix))?;
        let mut found: Vec<ObjectInfo> = metas
            .into_iter()
            .map(info)
            // object_store already matches whole segments; this keeps the contract explicit.
            .filter(|o| under_prefix(&o.key, prefix))
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn describe(&self) -> String {
        format!("s3 ({})", self.location)
    }
}
