//! Objects in memory: for tools and tests that run services in-process and must leave nothing
//! on disk. Same semantics as the other implementations (the conformance suite runs on it);
//! everything is gone with the process.

use crate::{Bytes, ObjectInfo, ObjectStore, Result, normalise_prefix, under_prefix, validate_key};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An object store in memory.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, (Bytes, chrono::DateTime<Utc>)>>,
}

impl MemoryObjects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, (Bytes, chrono::DateTime<Utc>)>) -> T,
    ) -> T {
        // A panic while holding the lock cannot leave a half-written object (every operation
        // is one map call), so a poisoned lock is still consistent.
        let mut guard = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        validate_key(key)?;
        self.with(|m| m.insert(key.to_owned(), (bytes, Utc::now())));
        Ok(())
    }

    async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        validate_key(key)?;
        Ok(self.with(|m| match m.entry(key.to_owned()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((bytes, Utc::now()));
                true
            }
        }))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        Ok(self.with(|m| m.get(key).map(|(b, _)| b.clone())))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        Ok(self.with(|m| {
            m.get(key).map(|(b, at)| ObjectInfo {
                key: key.to_owned(),
                size: b.len() as u64,
                last_modified: *at,
            })
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.with(|m| m.remove(key));
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = normalise_prefix(prefix)?;
        Ok(self.with(|m| {
            m.iter()
                .filter(|(k, _)| under_prefix(k, prefix))
                .map(|(k, (b, at))| ObjectInfo {
                    key: k.clone(),
                    size: b.len() as u64,
                    last_modified: *at,
                })
                .collect()
        }))
    }

    fn describe(&self) -> String {
        "memory (in-process)".to_owned()
    }
}
