//! # mantis-objects
//!
//! The object storage of MANTIS: whole objects (trained models, imported history files) under
//! `/`-separated keys. One [`ObjectStore`] trait, two implementations:
//!
//! - [`LocalObjects`] (embedded mode): a directory on local disk, `<data_dir>/objects` by default.
//!   A put writes a temporary file, syncs it to disk and renames it into place.
//! - [`S3Objects`] (cluster mode): an S3-compatible bucket (AWS S3, MinIO, moto in tests) through
//!   the `object_store` crate. A put is one `PutObject`, which S3 makes visible whole.
//!
//! Either way a reader sees the old object or the new one, never part of one. [`connect`] builds
//! the one named by [`ObjectStoreSettings`]. On top sits the [`registry::ModelRegistry`]:
//! numbered versions of each kind of model per scope, and which version is promoted.
//!
//! Layout: `lib.rs` (the trait, keys, errors), `local.rs`, `s3.rs`, `settings.rs` (config and
//! [`connect`]), `registry.rs`, and `conformance.rs` (feature `conformance`): the one test suite
//! both implementations pass, run by `tests/conformance_local.rs` and `tests/conformance_s3.rs`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mantis_objects::Error> {
//! use mantis_objects::{Bytes, LocalObjects, ObjectStore};
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let objects = LocalObjects::open(dir.path())?;
//! objects.put("imports/2024/pumps.csv", Bytes::from_static(b"t,value\n")).await?;
//! assert_eq!(
//!     objects.get("imports/2024/pumps.csv").await?,
//!     Some(Bytes::from_static(b"t,value\n"))
//! );
//! let listed = objects.list("imports").await?;
//! assert_eq!(listed[0].key, "imports/2024/pumps.csv");
//! assert!(objects.get("imports/2025/none.csv").await?.is_none());
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use bytes::Bytes;

#[cfg(feature = "conformance")]
pub mod conformance;
mod local;
mod memory;
pub mod registry;
mod s3;
mod settings;

pub use local::LocalObjects;
pub use memory::MemoryObjects;
pub use s3::S3Objects;
pub use settings::{ObjectStoreSettings, S3Settings, check, connect};

/// Errors of the object store and the model registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is not a valid object key (see [`validate_key`]).
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The settings cannot describe a working store.
    #[error("invalid object storage settings: {0}")]
    Config(String),
    /// The storage (disk or S3 server) failed or could not be reached.
    #[error("object storage failed to {op} `{key}`: {message}")]
    Storage {
        /// What was attempted: `put`, `get`, `list`, …
        op: &'static str,
        /// The key or prefix concerned.
        key: String,
        /// The cause, as the disk or the server reported it.
        message: String,
    },
    /// The write conflicts with what is stored (e.g. on local disk, a key that is also a prefix
    /// of other keys; or a registry version that other writers kept claiming).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Something the request names does not exist.
    #[error("{what} `{id}` does not exist")]
    NotFound {
        /// Kind of thing.
        what: &'static str,
        /// Which one.
        id: String,
    },
    /// A rollback was asked for, but no version was promoted before the current one.
    #[error("model `{series}` has no earlier promoted version to roll back to")]
    NoRollback {
        /// The model series (`kind/scope`).
        series: String,
    },
    /// A request that is invalid whatever is stored (a bad model kind, a NaN metric).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A stored object could not be read back as what it should be (unparsable metadata, a
    /// model whose size or checksum does not match its metadata).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is known of one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the storage reports it (file modification time on disk).
    pub last_modified: DateTime<Utc>,
}

/// A store of whole objects under `/`-separated keys, shared as `Arc<dyn ObjectStore>`.
///
/// Every method validates its key first ([`validate_key`]) and answers
/// [`Error::InvalidKey`] without touching the storage when it is invalid.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `bytes` under `key`, replacing any previous object. Atomic: a concurrent reader
    /// gets the previous object or this one, never part of one.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()>;
    /// Stores `bytes` under `key` only if no object is there: `true` when stored, `false`
    /// when one was (nothing of ours written, but for S3: a write whose answer was lost and
    /// was retried may find itself there and answer `false`, leaving our object; the registry
    /// then only skips a number). Atomic across processes sharing the storage: of writers
    /// racing for one key, exactly one stores (the model registry claims version numbers so).
    /// S3 needs conditional writes (`If-None-Match: *`: AWS S3, MinIO, Ceph RGW, R2 have
    /// them); a server without them fails the call.
    async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool>;
    /// The object under `key`, `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Size and modification time of the object under `key`, `None` when there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Whether an object exists under `key`.
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.head(key).await?.is_some())
    }
    /// Removes the object under `key`; removing an absent object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every object whose key starts with `prefix/` (at any depth), sorted by key. Prefixes
    /// match whole segments: `models/a` lists `models/a/x` but neither `models/ab/x` nor an
    /// object named `models/a` itself. An empty prefix lists everything; a trailing `/` is
    /// ignored.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Which implementation this is and where it stores, for logs (never a secret).
    fn describe(&self) -> String;
}

/// Longest key accepted, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Checks that `key` is a valid object key: non-empty, at most [`MAX_KEY_LEN`] bytes,
/// `/`-separated segments that are not empty (so no leading, trailing or doubled `/`), none
/// `..`, `.` or starting with `.` (names starting with a dot are reserved for the local store's
/// temporary files), and no backslash or control character. The same keys are valid for
/// every implementation, so that a key that works embedded works on S3 and the other way round.
pub fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("the key is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("keys are relative: no leading `/`");
    }
    if key.contains('\\') {
        return invalid("keys use `/` as separator: no backslash");
    }
    if key.chars().any(char::is_control) {
        return invalid("the key contains a control character");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return invalid("the key has an empty segment (`//` or a trailing `/`)");
        }
        if segment == ".." || segment == "." {
            return invalid("`.` and `..` segments are not allowed");
        }
        if segment.starts_with('.') {
            return invalid("segments must not start with `.`");
        }
    }
    Ok(())
}

/// The prefix of a [`ObjectStore::list`] call without its trailing `/`, validated like a key
/// unless empty.
fn normalise_prefix(prefix: &str) -> Result<&str> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if !trimmed.is_empty() {
        validate_key(trimmed)?;
    }
    Ok(trimmed)
}

/// Whether `key` lies under `prefix/` (whole segments; an empty prefix holds everything).
fn under_prefix(key: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_valid() {
        for key in [
            "a",
            "models/anomaly/fleet/v000001/model.bin",
            "imports/2024-01-01 pumps.csv",
            "models/rul/4f1c0a2e-1b8e-4c5e-9d0a-000000000001/promoted.json",
            "ünïcode/ключ",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn traversal_empty_segments_backslashes_and_hidden_names_are_invalid() {
        for key in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/../b",
            "a/./b",
            "a\\b",
            ".staging/x",
            "a/.hidden",
            "a\nb",
        ] {
            assert!(
                matches!(validate_key(key), Err(Error::InvalidKey { .. })),
                "{key:?} should be invalid"
            );
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        assert!(validate_key(&long).is_err());
    }

    #[test]
    fn the_error_names_the_key_and_the_reason() {
        let e = validate_key("a/../b").expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "invalid object key `a/../b`: `.` and `..` segments are not allowed"
        );
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("models/a/x", "models/a"));
        assert!(!under_prefix("models/a", "models/a"));
        assert!(!under_prefix("models/ab/x", "models/a"));
        assert!(under_prefix("anything", ""));
        assert_eq!(normalise_prefix("models/").ok(), Some("models"));
        assert_eq!(normalise_prefix("").ok(), Some(""));
        assert!(normalise_prefix("/models").is_err());
    }
}
