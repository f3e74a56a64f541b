//! Batch import of history files (CSV, JSON, NDJSON) from object storage: a local directory
//! (embedded mode) or S3 (cluster mode), through the same [`Ingestor`] as every other source
//! (source `BATCH`).
//!
//! - Where: [`HistorySource::parse`] takes a path (a directory or one file), a `file://` URL
//!   or `s3://bucket/prefix`; S3 is configured by the usual `AWS_*` variables
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT`,
//!   `AWS_ALLOW_HTTP`). Files ending `.csv`, `.json`, `.ndjson` or `.jsonl` are imported in name
//!   order.
//! - What: CSV with a header naming the columns `timestamp`, `sensorId` or `sensorCode`,
//!   `value` and optionally `unit`, `quality`, `assetId` (case, `_` and `-` ignored;
//!   timestamps RFC 3339 or epoch milliseconds); JSON files hold either one array of reading
//!   objects (the REST shape; read item by item as it arrives, so its size does not matter)
//!   or one object per line. Lines (and array items) that cannot be parsed are counted
//!   and named (file, line or item, field), and the import goes on; an array that turns out
//!   broken (truncated, unbalanced) stops the import with the file named, the batches of items
//!   before the fault accepted (a run after the file is mended resumes after them); readings
//!   refused by validation are
//!   reported on `data.quality.issues` by the ingestor, as for any source.
//! - Resumable: after every batch the ingestor accepted, a cursor (files done, current file,
//!   line and byte offset) is written to the store's state under
//!   `ingestion.import.<source>`. An interrupted import started again resumes after the last
//!   accepted batch: nothing accepted is sent twice when it was stopped between batches (a
//!   cancelled import stops there); a process killed mid-batch sends that one batch again,
//!   which the idempotent writes downstream absorb.

use crate::{Ingestor, IngestorSink};
use futures::StreamExt;
use mantis_connectors::{ReadingSink, SinkError};
use mantis_domain::{IncomingReading, SourceProtocol};
use mantis_store::Store;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source location is not usable.
    #[error("invalid import source `{location}`: {detail}")]
    Source {
        /// The location given.
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Object storage failed (listing or reading).
    #[error("object storage: {0}")]
    Storage(#[from] object_store::Error),
    /// The source holds no history file.
    #[error("no history files (.csv, .json, .ndjson, .jsonl) at {0}")]
    Empty(String),
    /// A file cannot be imported at all (e.g. a CSV header without the required columns).
    #[error("{file}: {detail}")]
    File {
        /// The file.
        file: String,
        /// Why.
        detail: String,
    },
    /// The cursor cannot be read or written.
    #[error("the import cursor cannot be read or written: {0}")]
    Cursor(String),
    /// The ingestor cannot take readings (after retries); start the import again later to
    /// resume.
    #[error("readings cannot be ingested right now: {0}")]
    Unavailable(String),
}

/// Format of history files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header line.
    Csv,
    /// A JSON array of reading objects, or one reading object per line.
    Json,
}

impl Format {
    /// The format of a file by its extension.
    pub fn of(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Self::Csv),
            "json" | "ndjson" | "jsonl" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Where history files are: an object store and a prefix in it.
pub struct HistorySource {
    store: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    location: String,
}

impl HistorySource {
    /// A local directory or file (a path or `file://` URL), or `s3://bucket[/prefix]`.
    pub fn parse(location: &str) -> Result<Self, ImportError> {
        let bad = |detail: String| ImportError::Source {
            location: location.to_owned(),
            detail,
        };
        if location.starts_with("s3://") || location.starts_with("s3a://") {
            let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("the URL names no bucket".into()))?;
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let prefix = url.path().trim_matches('/');
            return Ok(Self {
                store: Arc::new(store),
                prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
                location: location.to_owned(),
            });
        }
        let path = match location.strip_prefix("file://") {
            Some(p) => std::path::PathBuf::from(p),
            None => std::path::PathBuf::from(location),
        };
        let path = std::fs::canonicalize(&path).map_err(|e| bad(e.to_string()))?;
        let (root, prefix) = if path.is_dir() {
            (path.clone(), None)
        } else {
            let parent = path
                .parent()
                .ok_or_else(|| bad("a file without a directory".into()))?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad("the file name is not UTF-8".into()))?;
            (parent.to_path_buf(), Some(ObjectPath::from(name)))
        };
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            location: path.display().to_string(),
        })
    }

    /// Files of `store` under `prefix` (tests, other stores).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: Option<&str>,
        location: impl Into<String>,
    ) -> Self {
        Self {
            store,
            prefix: prefix.map(ObjectPath::from),
            location: location.into(),
        }
    }

    /// The location as given (after normalisation), which names the cursor.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The history files, in name order. A prefix that names one object is that object.
    async fn files(&self, format: Option<Format>) -> Result<Vec<ObjectMeta>, ImportError> {
        let mut files: Vec<ObjectMeta> = Vec::new();
        let mut listing = self.store.list(self.prefix.as_ref());
        while let Some(meta) = listing.next().await {
            files.push(meta?);
        }
        if files.is_empty()
            && let Some(prefix) = &self.prefix
        {
            match self.store.head(prefix).await {
                Ok(meta) => files.push(meta),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        files.retain(|m| format.is_some() || Format::of(m.location.as_ref()).is_some());
        files.sort_by(|a, b| a.location.cmp(&b.location));
        if files.is_empty() {
            return Err(ImportError::Empty(self.location.clone()));
        }
        Ok(files)
    }
}

/// Options of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Format of every file; by extension when `None`.
    pub format: Option<Format>,
    /// Readings per batch handed to the ingestor (and per cursor update). Default 1 000.
    pub batch_size: usize,
    /// Start from the beginning, ignoring the stored cursor.
    pub restart: bool,
    /// Attempts of a batch the ingestor cannot take before the import stops. Default 5.
    pub attempts: u32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: None,
            batch_size: 1_000,
            restart: false,
            attempts: 5,
        }
    }
}

/// Where an import is, for a progress display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files to import.
    pub files_total: usize,
    /// Files finished (including ones finished by an earlier run).
    pub files_done: usize,
    /// Bytes of all files.
    pub bytes_total: u64,
    /// Bytes read (including ones read by an earlier run).
    pub bytes_done: u64,
    /// Readings accepted by this run.
    pub accepted: u64,
    /// Readings refused by validation (reported on `data.quality.issues`).
    pub refused: u64,
    /// Lines that could not be parsed.
    pub invalid: u64,
    /// The file being read.
    pub file: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// The final progress.
    pub progress: Progress,
    /// Whether the run resumed a stored cursor.
    pub resumed: bool,
    /// Whether the run was cancelled before the end (start it again to resume).
    pub interrupted: bool,
    /// The first unparsable lines, as `file:line: pointer: detail`.
    pub errors: Vec<String>,
}

/// Lines named in [`ImportSummary::errors`] at most.
const MAX_ERRORS: usize = 20;

/// The resumable position of an import, in the store's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Files finished.
    done: Vec<String>,
    /// The file in progress.
    file: Option<String>,
    /// Lines (or array items) of `file` consumed.
    line: u64,
    /// Bytes of `file` consumed (line-oriented files).
    offset: u64,
    /// The CSV header of `file`.
    header: Option<Vec<String>>,
}

/// The key of a source's cursor in the store's state.
pub fn cursor_key(source: &HistorySource) -> String {
    format!("ingestion.import.{}", source.location())
}

/// Imports every history file of `source` through `ingestor`, resuming the stored cursor,
/// calling `progress` after every batch, until done or `token` is cancelled (then it stops
/// after the batch in flight).
pub async fn import(
    ingestor: Arc<Ingestor>,
    store: &dyn Store,
    source: &HistorySource,
    options: &ImportOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
    token: &CancellationToken,
) -> Result<ImportSummary, ImportError> {
    let files = source.files(options.format).await?;
    let key = cursor_key(source);
    let stored = if options.restart {
        None
    } else {
        store
            .get_state(&key)
            .await
            .map_err(|e| ImportError::Cursor(e.to_string()))?
    };
    let resumed = stored.is_some();
    let cursor: Cursor = match stored {
        Some(v) => serde_json::from_value(v).map_err(|e| ImportError::Cursor(e.to_string()))?,
        None => Cursor::default(),
    };
    let mut run = Run {
        sink: IngestorSink::new(ingestor),
        store,
        key,
        options,
        cursor,
        summary: ImportSummary {
            resumed,
            progress: Progress {
                files_total: files.len(),
                bytes_total: files.iter().map(|f| f.size).sum(),
                ..Progress::default()
            },
            ..ImportSummary::default()
        },
        progress,
        token,
    };
    for meta in &files {
        let name = meta.location.to_string();
        if run.cursor.done.contains(&name) {
            run.summary.progress.files_done += 1;
            run.summary.progress.bytes_done += meta.size;
            continue;
        }
        if token.is_cancelled() {
            run.summary.interrupted = true;
            return Ok(run.summary);
        }
        if run.cursor.file.as_deref() != Some(name.as_str()) {
            run.cursor.file = Some(name.clone());
            run.cursor.line = 0;
            run.cursor.offset = 0;
            run.cursor.header = None;
        }
        run.summary.progress.file = name.clone();
        run.summary.progress.bytes_done += run.cursor.offset;
        let format = options
            .format
            .or_else(|| Format::of(&name))
            .unwrap_or(Format::Json);
        let finished = run.file(source, meta, format).await?;
        if !finished {
            run.summary.interrupted = true;
            (run.progress)(&run.summary.progress);
            return Ok(run.summary);
        }
        run.cursor.done.push(name);
        run.cursor.file = None;
        run.cursor.line = 0;
        run.cursor.offset = 0;
        run.cursor.header = None;
        run.save().await?;
        run.summary.progress.files_done += 1;
        (run.progress)(&run.summary.progress);
    }
    Ok(run.summary)
}

/// A reading parsed from a file, with its line.
struct Parsed {
    reading: IncomingReading,
    line: u64,
}

struct Run<'a> {
    sink: IngestorSink,
    store: &'a dyn Store,
    key: String,
    options: &'a ImportOptions,
    cursor: Cursor,
    summary: ImportSummary,
    progress: &'a mut (dyn FnMut(&Progress) + Send),
    token: &'a CancellationToken,
}

impl Run<'_> {
    /// Imports one file from the cursor; `false` when cancelled before its end.
    async fn file(
        &mut self,
        source: &HistorySource,
        meta: &ObjectMeta,
        format: Format,
    ) -> Result<bool, ImportError> {
        let name = meta.location.to_string();
        let start = self.cursor.offset;
        if start >= meta.size && start > 0 {
            return Ok(true);
        }
        let options = GetOptions {
            range: (start > 0).then_some(GetRange::Offset(start)),
            ..GetOptions::default()
        };
        let mut stream = source
            .store
            .get_opts(&meta.location, options)
            .await?
            .into_stream();
        let mut buf: Vec<u8> = Vec::new();
        // Absolute offset of `buf[0]`.
        let mut base = start;
        let mut line_no = self.cursor.line;
        let mut batch: Vec<Parsed> = Vec::with_capacity(self.options.batch_size);
        // Whether the file's first character is still to be seen (a JSON file starting with
        // `[` is one array, else one object per line).
        let mut first = start == 0 && format == Format::Json;
        let mut eof = false;
        // Within a line longer than [`MAX_LINE`] (counted invalid): dropped up to its end.
        let mut skipping = false;
        loop {
            if skipping {
                match buf.iter().position(|b| *b == b'\n') {
                    Some(nl) => {
                        buf.drain(..=nl);
                        base += nl as u64 + 1;
                        skipping = false;
                    }
                    None => {
                        base += buf.len() as u64;
                        buf.clear();
                    }
                }
            }
            if first {
                match first_byte(&buf) {
                    // One JSON array: its items are taken as they arrive.
                    Some(b'[') => return self.array(&name, buf, &mut stream, meta.size).await,
                    Some(_) => first = false,
                    None if !eof => {}
                    None => first = false,
                }
            }
            // Complete lines in `buf`, or the last one at the end of the file.
            let mut consumed = 0usize;
            while let Some(nl) = buf[consumed..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|i| consumed + i)
                .or_else(|| (eof && consumed < buf.len()).then_some(buf.len()))
            {
                if first {
                    // Only blanks so far: wait for the first character.
                    break;
                }
                let line = &buf[consumed..nl];
                let end = base + (nl + 1).min(buf.len()) as u64;
                consumed = (nl + 1).min(buf.len());
                line_no += 1;
                if line.len() > MAX_LINE {
                    // As one that arrives in pieces (below): however it arrived.
                    self.too_long(&name, line_no);
                    continue;
                }
                if let Some(parsed) = self.parse_line(&name, format, line, line_no)? {
                    batch.push(Parsed {
                        reading: parsed,
                        line: line_no,
                    });
                }
                if batch.len() >= self.options.batch_size.max(1) {
                    self.flush(&mut batch, line_no, end).await?;
                    if self.token.is_cancelled() {
                        return Ok(false);
                    }
                }
            }
            buf.drain(..consumed);
            base += consumed as u64;
            if !first && !skipping && buf.len() > MAX_LINE {
                // No end in sight: not held whole (a file without newlines would fill the
                // memory); counted invalid and skipped.
                line_no += 1;
                self.too_long(&name, line_no);
                base += buf.len() as u64;
                buf.clear();
                skipping = true;
            }
            if eof {
                break;
            }
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => eof = true,
            }
        }
        self.flush(&mut batch, line_no, base).await?;
        Ok(true)
    }

    /// Imports a file holding one JSON array, `head` (its first bytes) and then the rest of
    /// `stream`, one item at a time: a file of any size is read with one item in memory (items
    /// over [`MAX_ARRAY_ITEM`] bytes are counted as invalid). The cursor counts the items; a
    /// resumed import reads the file again from its start and skips those.
    async fn array<S, B>(
        &mut self,
        name: &str,
        head: Vec<u8>,
        stream: &mut S,
        size: u64,
    ) -> Result<bool, ImportError>
    where
        S: futures::Stream<Item = Result<B, object_store::Error>> + Unpin,
        B: AsRef<[u8]>,
    {
        let not_an_array = |detail: String| ImportError::File {
            file: name.to_owned(),
            detail: format!("not a JSON array of readings: {detail}"),
        };
        let skip = self.cursor.line;
        let mut splitter = ArrayItems::default();
        let mut items = Vec::new();
        let mut index = 0u64;
        let mut batch = Vec::with_capacity(self.options.batch_size);
        // Progress follows the bytes read (the cursor itself counts items).
        let done_before = self.summary.progress.bytes_done;
        let mut read = 0u64;
        let mut chunk = head;
        loop {
            splitter.feed(&chunk, &mut items).map_err(not_an_array)?;
            read += chunk.len() as u64;
            self.summary.progress.bytes_done = done_before + read.min(size);
            for item in items.drain(..) {
                index += 1;
                if index <= skip {
                    continue;
                }
                let parsed = item.and_then(|bytes| {
                    let value: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| vec![("", format!("not JSON: {e}"))])?;
                    crate::payload::parse_reading(&value)
                });
                match parsed {
                    Ok(reading) => batch.push(Parsed {
                        reading,
                        line: index,
                    }),
                    Err(errs) => self.invalid(name, &format!("item {}", index - 1), &errs),
                }
                if batch.len() >= self.options.batch_size.max(1) {
                    self.flush(&mut batch, index, 0).await?;
                    if self.token.is_cancelled() {
                        return Ok(false);
                    }
                }
            }
            match stream.next().await {
                Some(next) => chunk = next?.as_ref().to_vec(),
                None => break,
            }
        }
        splitter.finish().map_err(not_an_array)?;
        self.summary.progress.bytes_done = done_before + size;
        self.flush(&mut batch, index, 0).await?;
        Ok(true)
    }

    /// Parses one line; `None` for blank lines, the CSV header and unparsable lines (counted).
    fn parse_line(
        &mut self,
        name: &str,
        format: Format,
        line: &[u8],
        line_no: u64,
    ) -> Result<Option<IncomingReading>, ImportError> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(None);
        }
        let where_ = format!("line {line_no}");
        let Ok(text) = std::str::from_utf8(line) else {
            self.invalid(name, &where_, &[("", "the line is not UTF-8".into())]);
            return Ok(None);
        };
        let item = match format {
            Format::Json => match serde_json::from_str::<Value>(text) {
                Ok(v) => v,
                Err(e) => {
                    self.invalid(name, &where_, &[("", format!("not valid JSON: {e}"))]);
                    return Ok(None);
                }
            },
            Format::Csv => {
                let fields = split_csv_line(text);
                let Some(header) = &self.cursor.header else {
                    self.cursor.header = Some(csv_header(name, fields)?);
                    return Ok(None);
                };
                csv_row(header, &fields)
            }
        };
        match crate::payload::parse_reading(&item) {
            Ok(r) => Ok(Some(r)),
            Err(errs) => {
                self.invalid(name, &where_, &errs);
                Ok(None)
            }
        }
    }

    /// Counts line `line_no` invalid for its length ([`MAX_LINE`]).
    fn too_long(&mut self, name: &str, line_no: u64) {
        self.invalid(
            name,
            &format!("line {line_no}"),
            &[(
                "",
                format!("a line longer than {MAX_LINE} bytes is not a reading"),
            )],
        );
    }

    fn invalid(&mut self, name: &str, where_: &str, errs: &[(&'static str, String)]) {
        self.summary.progress.invalid += 1;
        for (field, detail) in errs {
            if self.summary.errors.len() < MAX_ERRORS {
                self.summary
                    .errors
                    .push(format!("{name}: {where_}: /{field}: {detail}"));
            }
        }
    }

    /// Hands `batch` to the ingestor (retrying while it is unavailable), then moves the cursor
    /// to `line`/`end` and saves it.
    async fn flush(
        &mut self,
        batch: &mut Vec<Parsed>,
        line: u64,
        end: u64,
    ) -> Result<(), ImportError> {
        if !batch.is_empty() {
            let readings: Vec<IncomingReading> = batch.iter().map(|p| p.reading.clone()).collect();
            let mut delay = Duration::from_millis(500);
            let mut attempt = 1;
            let delivered = loop {
                match self
                    .sink
                    .deliver(readings.clone(), SourceProtocol::Batch)
                    .await
                {
                    Ok(d) => break d,
                    Err(SinkError::Unavailable(e)) if attempt >= self.options.attempts.max(1) => {
                        let last = batch.first().map_or(0, |p| p.line);
                        return Err(ImportError::Unavailable(format!(
                            "{e} (at line {last} of {}; start the import again to resume there)",
                            self.summary.progress.file
                        )));
                    }
                    Err(SinkError::Unavailable(e)) => {
                        tracing::warn!(error = %e, attempt, "the ingestor cannot take the batch; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                        attempt += 1;
                    }
                }
            };
            self.summary.progress.accepted += delivered.accepted as u64;
            self.summary.progress.refused += delivered.refused as u64;
            batch.clear();
        }
        if end > 0 {
            self.summary.progress.bytes_done += end.saturating_sub(self.cursor.offset);
            self.cursor.offset = end;
        }
        self.cursor.line = line;
        self.save().await?;
        (self.progress)(&self.summary.progress);
        Ok(())
    }

    async fn save(&self) -> Result<(), ImportError> {
        let value =
            serde_json::to_value(&self.cursor).map_err(|e| ImportError::Cursor(e.to_string()))?;
        self.store
            .put_state(&self.key, &value)
            .await
            .map_err(|e| ImportError::Cursor(e.to_string()))
    }
}

/// The first character of a file that is not blank (nor a UTF-8 byte-order mark).
fn first_byte(buf: &[u8]) -> Option<u8> {
    buf.iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)
}

/// Largest item of a JSON array file, in bytes (a reading object is far smaller).
const MAX_ARRAY_ITEM: usize = 64 << 10;

/// Bytes of a line of a CSV or NDJSON file at most (as an item of a JSON array): a longer one
/// is counted invalid and skipped.
const MAX_LINE: usize = MAX_ARRAY_ITEM;

/// An item of a JSON array: its bytes, or why it is not kept.
type ArrayItem = Result<Vec<u8>, Vec<(&'static str, String)>>;

/// Splits a JSON array arriving in chunks into its items' bytes, holding one item at a time.
/// Only the array's structure is checked here (brackets, strings, commas); each item is parsed
/// on its own, so a bad item is one invalid reading, not a bad file.
#[derive(Debug, Default)]
struct ArrayItems {
    opened: bool,
    closed: bool,
    /// Nesting inside the current item.
    depth: u32,
    in_string: bool,
    escaped: bool,
    item: Vec<u8>,
    /// Bytes of the current item beyond [`MAX_ARRAY_ITEM`] are not kept: it is invalid.
    too_long: bool,
    /// Items ended so far.
    items: u64,
}

impl ArrayItems {
    /// Feeds the next bytes of the file; complete items are appended to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<ArrayItem>) -> Result<(), String> {
        for &b in chunk {
            if self.closed {
                if !b.is_ascii_whitespace() {
                    return Err("data after the closing `]`".into());
                }
                continue;
            }
            if !self.opened {
                match b {
                    b'[' => self.opened = true,
                    0xEF | 0xBB | 0xBF => {}
                    b if b.is_ascii_whitespace() => {}
                    _ => return Err("it does not start with `[`".into()),
                }
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                self.push(b);
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.push(b);
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    self.push(b);
                }
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    self.push(b);
                }
                b'}' => return Err("an unmatched `}`".into()),
                b',' | b']' if self.depth == 0 => {
                    let empty = self.item.is_empty() && !self.too_long;
                    // `[]` is an empty array; `[,`, `,,` and `,]` have an empty item.
                    if empty && (b == b',' || self.items > 0) {
                        return Err(format!("an empty item after item {}", self.items));
                    }
                    if !empty {
                        out.push(self.take());
                        self.items += 1;
                    }
                    self.closed = b == b']';
                }
                b if b.is_ascii_whitespace() && self.depth == 0 => {
                    if !self.item.is_empty() {
                        self.push(b);
                    }
                }
                _ => self.push(b),
            }
        }
        Ok(())
    }

    /// Checks that the array was complete.
    fn finish(&self) -> Result<(), String> {
        if !self.opened {
            return Err("the file is empty".into());
        }
        if !self.closed {
            return Err("the file ends before the array's closing `]`".into());
        }
        Ok(())
    }

    fn push(&mut self, b: u8) {
        if self.item.len() < MAX_ARRAY_ITEM {
            self.item.push(b);
        } else {
            self.too_long = true;
        }
    }

    fn take(&mut self) -> ArrayItem {
        let bytes = std::mem::take(&mut self.item);
        if std::mem::take(&mut self.too_long) {
            return Err(vec![(
                "",
                format!("an item longer than {MAX_ARRAY_ITEM} bytes is not a reading"),
            )]);
        }
        Ok(bytes)
    }
}

/// Splits one CSV line into fields (RFC 4180 quoting, `""` for a quote; a record does not
/// span lines).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_owned()),
            (c, _) => field.push(c),
        }
    }
    fields.push(field.trim().to_owned());
    fields
}

/// The canonical name of a CSV column: the reading field it fills, if any.
fn column(name: &str) -> Option<&'static str> {
    let n: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    Some(match n.as_str() {
        "timestamp" | "time" | "ts" => "timestamp",
        "sensorid" => "sensorId",
        "sensorcode" | "sensor" => "sensorCode",
        "value" => "value",
        "unit" => "unit",
        "quality" => "quality",
        "assetid" => "assetId",
        _ => return None,
    })
}

fn csv_header(file: &str, fields: Vec<String>) -> Result<Vec<String>, ImportError> {
    let header: Vec<String> = fields
        .iter()
        .map(|f| column(f).unwrap_or("").to_owned())
        .collect();
    let has = |c: &str| header.iter().any(|h| h == c);
    if !has("timestamp") || !has("value") || !(has("sensorId") || has("sensorCode")) {
        return Err(ImportError::File {
            file: file.to_owned(),
            detail: format!(
                "the CSV header ({}) must name the columns timestamp, sensorId or sensorCode, and value",
                fields.join(",")
            ),
        });
    }
    Ok(header)
}

/// A CSV row as the JSON object of a reading, so that it is checked like a REST reading.
fn csv_row(header: &[String], fields: &[String]) -> Value {
    let mut obj = Map::new();
    for (name, raw) in header.iter().zip(fields) {
        if name.is_empty() || raw.is_empty() {
            continue;
        }
        let value = match name.as_str() {
            "timestamp" | "quality" => raw
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(raw.as_str())),
            "value" => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::from(raw.as_str())),
            _ => Value::from(raw.as_str()),
        };
        obj.insert(name.clone(), value);
    }
    // A row naming both keeps the id (the REST rule).
    if obj.contains_key("sensorId") {
        obj.remove("sensorCode");
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(split_csv_line("a,b , c"), vec!["a", "b", "c"]);
        assert_eq!(
            split_csv_line("\"x, y\",\"say \"\"hi\"\"\",,3\r"),
            vec!["x, y", "say \"hi\"", "", "3"]
        );
        assert_eq!(split_csv_line("\u{feff}timestamp"), vec!["timestamp"]);
    }

    #[test]
    fn csv_rows_become_readings_checked_like_rest_ones() {
        let header = csv_header(
            "f.csv",
            split_csv_line("Timestamp,sensor_code,Value,unit,quality,comment"),
        )
        .expect("header");
        let row = csv_row(
            &header,
            &split_csv_line("1763892000000,P-1,4.5,mm/s,80,hello"),
        );
        let r = crate::payload::parse_reading(&row).expect("valid");
        assert_eq!(r.value, 4.5);
        assert_eq!(r.quality.get(), 80);
        assert_eq!(r.sensor, mantis_domain::SensorRef::Code("P-1".into()));
        let row = csv_row(&header, &split_csv_line("2026-11-23T10:00:00Z,P-1,high,,,"));
        let errs = crate::payload::parse_reading(&row).expect_err("not a number");
        assert_eq!(errs[0].0, "value");
    }

    #[test]
    fn a_csv_header_without_the_required_columns_is_refused() {
        let e = csv_header("f.csv", split_csv_line("time,value")).expect_err("no sensor");
        assert!(e.to_string().contains("sensorId or sensorCode"), "{e}");
    }

    /// Splits `text` fed in chunks of `size` bytes.
    fn split(text: &str, size: usize) -> Result<Vec<ArrayItem>, String> {
        let mut splitter = ArrayItems::default();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(size) {
            splitter.feed(chunk, &mut out)?;
        }
        splitter.finish()?;
        Ok(out)
    }

    #[test]
    fn a_json_array_is_split_into_its_items_whatever_the_chunks() {
        let text = r#" [ {"sensorCode": "A,]}", "value": 1.5, "metadata": {"k": [1, {"x": "\"]"}]}},
            {"sensorCode":"B","value":2} , 7, "s" ]  "#;
        let expected: Vec<String> = vec![
            r#"{"sensorCode": "A,]}", "value": 1.5, "metadata": {"k": [1, {"x": "\"]"}]}}"#.into(),
            r#"{"sensorCode":"B","value":2} "#.into(),
            "7".into(),
            r#""s" "#.into(),
        ];
        for size in [1, 2, 3, 7, 64, 4096] {
            let items: Vec<String> = split(text, size)
                .expect("an array")
                .into_iter()
                .map(|i| String::from_utf8(i.expect("kept")).expect("utf-8"))
                .collect();
            assert_eq!(items, expected, "chunks of {size}");
            for item in &items {
                let _: Value = serde_json::from_str(item).expect("each item parses alone");
            }
        }
        assert_eq!(split("[]", 1).expect("empty").len(), 0);
        assert_eq!(split("\u{feff}[ ]\n", 1).expect("with a BOM").len(), 0);
    }

    #[test]
    fn what_is_not_a_json_array_is_named() {
        for (text, why) in [
            ("", "empty"),
            (r#"[{"a": 1}"#, "ends before"),
            (r#"[{"a": 1},]"#, "empty item"),
            (r#"[,{"a": 1}]"#, "empty item"),
            (r#"[1,,2]"#, "empty item"),
            (r#"[1] 2"#, "after the closing"),
            (r#"[1}]"#, "unmatched"),
            (r#"{"a": 1}"#, "does not start"),
        ] {
            let e = split(text, 3).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn an_item_too_long_is_invalid_and_the_next_ones_go_on() {
        let long = "x".repeat(MAX_ARRAY_ITEM + 10);
        let text = format!(r#"[{{"sensorCode": "{long}"}}, {{"value": 1}}]"#);
        let items = split(&text, 1000).expect("an array");
        assert_eq!(items.len(), 2);
        assert!(items[0].as_ref().is_err_and(|e| e[0].1.contains("longer")));
        assert_eq!(items[1].as_deref().ok(), Some(&br#"{"value": 1}"#[..]));
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::of("a/b.CSV"), Some(Format::Csv));
        assert_eq!(Format::of("x.jsonl"), Some(Format::Json));
        assert_eq!(Format::of("x.parquet"), None);
        assert_eq!(Format::of("noext"), None);
    }
}
