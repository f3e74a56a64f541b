//! [`LocalObjects`]: objects as files in a directory (the embedded mode's object store).
//!
//! Key `a/b/c` is the file `<root>/a/b/c`. A put writes `<root>/.staging/<unique>.tmp`, syncs it,
//! renames it over the target (atomic on one file system) and syncs the directory, so a reader
//! opens either the old file or the new one and a crash leaves either, never a torn object.
//! Names starting with `.` are never keys ([`validate_key`](crate::validate_key)), so the staging
//! directory cannot collide with an object. Emptied directories are removed on delete.
//!
//! A file system cannot hold both `a` and `a/b` (a file and a directory of one name), which S3
//! can: the second put answers [`Error::Conflict`]. MANTIS keys never do this.

use crate::{Error, ObjectInfo, ObjectStore, Result, normalise_prefix, validate_key};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Directory under the root for files being written.
const STAGING: &str = ".staging";

/// Staging files older than this are leftovers of a crash and are removed on open.
const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Objects as files under a root directory, written atomically (embedded mode).
#[derive(Clone, Debug)]
pub struct LocalObjects {
    root: PathBuf,
}

impl LocalObjects {
    /// Opens (creating if needed) the store rooted at `root`, and removes temporary files that
    /// a crashed writer left behind more than an hour ago.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let staging = root.join(STAGING);
        fs::create_dir_all(&staging).map_err(|e| Error::Storage {
            op: "open",
            key: root.display().to_string(),
            message: e.to_string(),
        })?;
        sweep_stale_staging(&staging);
        tracing::debug!(root = %root.display(), "local object store opened");
        Ok(Self { root })
    }

    /// The directory the objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a validated key.
    fn path_of(&self, key: &str) -> PathBuf {
        key.split('/').fold(self.root.clone(), |p, s| p.join(s))
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    key: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Storage {
            op,
            key: key.to_owned(),
            message: format!("the disk task did not finish: {e}"),
        })?
}

fn storage(op: &'static str, key: &str) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Storage {
        op,
        key: key.to_owned(),
        message: e.to_string(),
    }
}

/// Whether an I/O error means "there is no object there" (a missing file, a directory, or a
/// path through a file).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

#[async_trait]
impl ObjectStore for LocalObjects {
    #[tracing::instrument(level = "debug", skip(self, bytes), fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        validate_key(key)?;
        let (root, target, owned) = (self.root.clone(), self.path_of(key), key.to_owned());
        blocking("put", key, move || {
            put_file(&root, &target, &owned, &bytes, true).map(drop)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self, bytes), fields(size = bytes.len()))]
    async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        validate_key(key)?;
        let (root, target, owned) = (self.root.clone(), self.path_of(key), key.to_owned());
        blocking("put", key, move || {
            put_file(&root, &target, &owned, &bytes, false)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        let (path, owned) = (self.path_of(key), key.to_owned());
        blocking("get", key, move || match fs::read(&path) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if is_absent(&e) || path.is_dir() => Ok(None),
            Err(e) => Err(storage("get", &owned)(e)),
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        let (path, owned) = (self.path_of(key), key.to_owned());
        blocking("head", key, move || match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(info(owned, &meta))),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(storage("head", &owned)(e)),
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let (root, path, owned) = (self.root.clone(), self.path_of(key), key.to_owned());
        blocking("delete", key, move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if is_absent(&e) || path.is_dir() => return Ok(()),
                Err(e) => return Err(storage("delete", &owned)(e)),
            }
            // Remove directories the delete emptied, so that the tree does not fill with empty
            // folders; a non-empty one (or a concurrent writer's fresh one) stops the walk.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root.as_path()) {
                if fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = normalise_prefix(prefix)?.to_owned();
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.path_of(&prefix)
        };
        let op_key = prefix.clone();
        blocking("list", &op_key, move || {
            let mut found = walk(&start, &prefix).map_err(storage("list", &prefix))?;
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("local ({})", self.root.display())
    }
}

fn info(key: String, meta: &fs::Metadata) -> ObjectInfo {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    ObjectInfo {
        key,
        size: meta.len(),
        last_modified: DateTime::<Utc>::from(modified),
    }
}

/// A staging file name no other writer (thread or process) uses at the same time.
fn staging_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{}-{nanos}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `bytes` to a staging file, then moves it to `target` (replacing what is there when
/// `replace`; otherwise `false` when something is there). `true` when stored.
fn put_file(root: &Path, target: &Path, key: &str, bytes: &[u8], replace: bool) -> Result<bool> {
    let staging = root.join(STAGING);
    let tmp = staging.join(staging_name());
    let written = write_synced(&tmp, bytes).or_else(|e| {
        // The staging directory was removed behind our back: recreate it once.
        if e.kind() == ErrorKind::NotFound {
            fs::create_dir_all(&staging).and_then(|()| write_synced(&tmp, bytes))
        } else {
            Err(e)
        }
    });
    let result = written
        .map_err(storage("put", key))
        .and_then(|()| move_into_place(root, &tmp, target, key, replace));
    if !matches!(result, Ok(true)) || !replace {
        // Left over when the move failed, or linked (not moved) to its place.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Moves `tmp` to `target`: a rename, replacing what is there, when `replace`; otherwise a hard
/// link, which fails (answered `false`) when `target` exists, atomically across processes.
fn move_into_place(
    root: &Path,
    tmp: &Path,
    target: &Path,
    key: &str,
    replace: bool,
) -> Result<bool> {
    let parent = target.parent().unwrap_or(root);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = fs::create_dir_all(parent) {
            return Err(file_in_the_way(root, key).unwrap_or_else(|| storage("put", key)(e)));
        }
        if target.is_dir() {
            return Err(Error::Conflict(format!(
                "`{key}` is a prefix of other objects, which the local store cannot also hold \
                 as an object"
            )));
        }
        let moved = if replace {
            fs::rename(tmp, target)
        } else {
            match fs::hard_link(tmp, target) {
                // NFS may answer a retransmitted link "exists" once it made it: ours when the
                // staging file has gained a link.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    use std::os::unix::fs::MetadataExt;
                    let same = match (fs::metadata(tmp), fs::metadata(target)) {
                        (Ok(ours), Ok(there)) => {
                            (ours.dev(), ours.ino()) == (there.dev(), there.ino())
                        }
                        _ => false,
                    };
                    if same {
                        Ok(())
                    } else {
                        return Ok(false);
                    }
                }
                // A file system without hard links (FAT; some FUSE and SMB mounts answer
                // EOPNOTSUPP, 95 on Linux): looking first is enough where no other process
                // shares the store (the registry serialises its own writers).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Unsupported | ErrorKind::PermissionDenied
                    ) || e.raw_os_error() == Some(95) =>
                {
                    if target.exists() {
                        return Ok(false);
                    }
                    fs::rename(tmp, target)
                }
                linked => linked,
            }
        };
        match moved {
            Ok(()) => break,
            // A concurrent delete removed the directory it had emptied: make it again.
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 5 => continue,
            Err(e) => {
                return Err(file_in_the_way(root, key).unwrap_or_else(|| storage("put", key)(e)));
            }
        }
    }
    // The rename is durable once its directory is synced, and that directory's own entry
    // (made by `create_dir_all`, perhaps just now, with its ancestors) once its parent is:
    // every directory up to the root, so that a power loss cannot take back a directory of a
    // new version (puts are a registry's, rare). The object is in place by now: an ancestor
    // that cannot be synced is said, not failed for.
    sync_dir(parent).map_err(storage("put", key))?;
    let mut dir = parent;
    while dir != root
        && let Some(up) = dir.parent().filter(|p| p.starts_with(root))
    {
        if let Err(e) = sync_dir(up) {
            tracing::warn!(dir = %up.display(), key, error = %e, "a directory of the object store could not be synced");
        }
        dir = up;
    }
    Ok(true)
}

/// The conflict when an ancestor of `key` is an object (a file where a directory must be).
fn file_in_the_way(root: &Path, key: &str) -> Option<Error> {
    let segments: Vec<&str> = key.split('/').collect();
    let mut path = root.to_path_buf();
    for (i, segment) in segments.iter().enumerate().take(segments.len() - 1) {
        path.push(segment);
        if path.is_file() {
            let object = segments[..=i].join("/");
            return Some(Error::Conflict(format!(
                "`{object}` is an object, so the local store cannot hold `{key}` under it"
            )));
        }
    }
    None
}

/// Makes a rename durable: the directory entry is on disk once this returns.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Windows has no directory handles to sync; its renames are journaled by NTFS.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Every object under the directory `start`, whose key is `prefix` (empty for the root) plus
/// the path below `start`. Vanishing entries (a concurrent delete) are skipped; names that cannot be keys
/// (starting with `.`, not UTF-8) are not objects.
fn walk(start: &Path, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
    let mut found = Vec::new();
    match fs::metadata(start) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(found),
        Err(e) if is_absent(&e) => return Ok(found),
        Err(e) => return Err(e),
    }
    let mut pending = vec![(start.to_path_buf(), prefix.to_owned())];
    while let Some((dir, key)) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let child = if key.is_empty() {
                name
            } else {
                format!("{key}/{name}")
            };
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e),
            };
            if file_type.is_dir() {
                pending.push((entry.path(), child));
            } else if file_type.is_file() {
                match entry.metadata() {
                    Ok(meta) => found.push(info(child, &meta)),
                    Err(e) if is_absent(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(found)
}

/// Removes staging files older than [`STALE_STAGING`]; best effort (a failure is logged).
fn sweep_stale_staging(staging: &Path) {
    let Ok(entries) = fs::read_dir(staging) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_STAGING);
        if stale && let Err(e) = fs::remove_file(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a stale staging file");
        }
    }
}
