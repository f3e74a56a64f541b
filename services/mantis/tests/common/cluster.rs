//! A MANTIS cluster for end-to-end tests: every service in its own OS process (`mantis service
//! <name>`), configured only by `MANTIS_*` environment variables, over a Kafka-protocol broker
//! of its own (tansu, in memory, or in a SQLite file when the test restarts it), a fresh
//! PostgreSQL database and the machine's Redis.
//!
//! Nothing is skipped silently: a missing tansu, `psql` or PostgreSQL fails the test with a
//! message saying what to install or start. Every child is killed (and reaped) when the
//! [`Cluster`] is dropped, also when the test panics; a failing test prints the tail of every
//! process's log and keeps the full logs.
//!
//! Environment: `MANTIS_TANSU` (the tansu binary; otherwise `tansu` on `PATH` or in
//! `~/.cargo/bin`), `MANTIS_TEST_DATABASE_URL` (a server where the user may create databases,
//! default `postgres://postgres@127.0.0.1:5432/test`), `MANTIS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `MANTIS_TEST_KEEP_LOGS` (keep the logs of passing tests too).

use mantis_store::postgres::PgStore;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The seven services, in the order they are started.
pub const SERVICES: [&str; 7] = [
    "gateway",
    "ingestion",
    "preprocessing",
    "features",
    "anomaly",
    "rul",
    "orchestrator",
];

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long a process may take to start answering (tansu) or to become ready (a service).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 40;

pub use mantis_telemetry::testing::{free_port, listens_on};

/// A child process that is killed and reaped when dropped.
struct Proc {
    label: String,
    child: Child,
}

impl Proc {
    /// Whether the process has ended (reaping it if so).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, then wait for it to end.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `program args` with `env`, stdout and stderr appended to `log`.
fn spawn(label: &str, program: &Path, args: &[&str], env: &[(String, String)], log: &Path) -> Proc {
    spawn_in(label, None, program, args, env, log)
}

/// [`spawn`] with `cwd` as the working directory (default: the test's).
fn spawn_in(
    label: &str,
    cwd: Option<&Path>,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
) -> Proc {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log file");
    let err = out.try_clone().expect("clone the log file handle");
    let mut command = Command::new(program);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let child = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label} ({}): {e}", program.display()));
    Proc {
        label: label.to_owned(),
        child,
    }
}

/// The last `n` lines of `path`.
fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    // The tail is in the last 64 KiB unless lines are huge; read no more than that.
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The tansu binary: `MANTIS_TANSU`, `tansu` on `PATH`, or `~/.cargo/bin/tansu`.
fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MANTIS_TANSU") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MANTIS_TANSU names {}, which does not exist",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tansu"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    let in_cargo_home = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .filter(|p| p.is_file());
    on_path.or(in_cargo_home).unwrap_or_else(|| {
        panic!(
            "the cluster end-to-end tests need tansu, a Kafka-protocol broker, and it was not \
             found (MANTIS_TANSU, PATH, ~/.cargo/bin). Install it with \
             `cargo install tansu --locked --version 0.6.0 --features dynostore,libsql`, or set \
             MANTIS_TANSU to its path."
        )
    })
}

/// Where the test broker keeps its records.
#[derive(Clone, Debug)]
pub enum BrokerStorage {
    /// In memory: lost when the broker stops.
    Memory,
    /// In a SQLite file of the cluster's directory (tansu's `libsql` engine): kept across
    /// broker restarts, and indexed, so fetches stay cheap however many batches a partition
    /// holds.
    Sqlite,
}

/// A tansu broker of its own on a free port.
struct Broker {
    proc: Proc,
    port: u16,
    storage: BrokerStorage,
}

impl Broker {
    fn start(dir: &Path, storage: BrokerStorage) -> Self {
        // A port picked free may be taken before tansu binds it: try a few.
        for _ in 0..3 {
            if let Some(broker) = Self::start_on(dir, free_port(), storage.clone()) {
                return broker;
            }
        }
        let log = dir.join("tansu.log");
        panic!(
            "tansu did not start listening; its log ({}):\n{}",
            log.display(),
            tail(&log, TAIL_LINES)
        );
    }

    fn start_on(dir: &Path, port: u16, storage: BrokerStorage) -> Option<Self> {
        let binary = tansu_binary();
        let log = dir.join("tansu.log");
        let url = format!("tcp://127.0.0.1:{port}");
        let engine = match &storage {
            BrokerStorage::Memory => "memory://tansu/",
            // Relative to the broker's working directory, the cluster's directory.
            BrokerStorage::Sqlite => "sqlite://tansu.db",
        };
        let mut proc = spawn_in(
            "tansu",
            Some(dir),
            &binary,
            &[
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                engine,
            ],
            &[],
            &log,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if proc.exited().is_some() {
                break;
            }
            // Its own socket: a connection alone may reach the broker of a parallel test
            // process that took the port first (this one then fails to bind and exits).
            if listens_on(proc.child.id(), port) {
                return Some(Self {
                    proc,
                    port,
                    storage,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        proc.kill();
        None
    }

    /// Starts the broker again on its port with its storage (its records come back only with
    /// [`BrokerStorage::Sqlite`]), retrying while the port is still being released; `false`
    /// when it did not start within [`START_TIMEOUT`].
    fn restart(&mut self, dir: &Path) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(again) = Self::start_on(dir, self.port, self.storage.clone()) {
                *self = again;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The broker and what the test and the watchdog know about it.
struct BrokerSlot {
    broker: Broker,
    /// Set while the test keeps the broker down on purpose ([`Cluster::stop_broker`]).
    stopped: bool,
    /// Every exit the watchdog saw that the test did not cause (see [`watch_broker`]).
    crashes: Vec<String>,
}

/// `line` without its ANSI colour sequences (`ESC [ ... m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Why the broker ended, from its log: each panic (the `panicked at` line and the message on
/// the line after it) when there is one, otherwise its last line.
fn crash_report(log: &Path) -> String {
    let text = tail(log, 400);
    let lines: Vec<String> = text.lines().map(plain).collect();
    let panic: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("panicked"))
        .flat_map(|(i, _)| {
            lines[i..(i + 2).min(lines.len())]
                .iter()
                .map(String::as_str)
        })
        .collect();
    if panic.is_empty() {
        format!(
            "no panic in its log; its last line: {}",
            lines.last().map_or("(empty)", String::as_str)
        )
    } else {
        panic.join(" | ")
    }
}

/// Watches the broker while the test has not stopped it. The test broker is itself software
/// with bugs: tansu 0.6.0's SQLite engine can panic inside a Produce (`lite.rs` "more or less
/// than one row" in its idempotent-producer check) and the process ends. For a cluster whose
/// records live in the SQLite file, that is one more bus outage the services must ride out, so
/// the watchdog says so loudly (stderr, and in the failure report) and starts the broker again
/// on its port with its records; every reading check of the test still applies. A broker in
/// memory cannot come back with its records: the crash is reported and the test fails on what
/// it then misses.
fn watch_broker(slot: Arc<Mutex<BrokerSlot>>, dir: PathBuf, done: Arc<AtomicBool>) {
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(250));
        let mut slot = lock(&slot);
        if slot.stopped || done.load(Ordering::SeqCst) {
            continue;
        }
        let Some(status) = slot.broker.proc.exited() else {
            continue;
        };
        let crash = format!(
            "tansu exited on its own ({status}): {}",
            crash_report(&dir.join("tansu.log"))
        );
        eprintln!("\n!!!!! the test broker crashed: {crash}");
        slot.crashes.push(crash);
        if !matches!(slot.broker.storage, BrokerStorage::Sqlite) {
            eprintln!("!!!!! its records were in memory: not restarted");
            slot.stopped = true;
        } else if slot.broker.restart(&dir) {
            eprintln!("!!!!! tansu started again with its SQLite records\n");
        } else {
            eprintln!("!!!!! tansu did not start again");
            slot.stopped = true;
        }
    }
}

/// The broker, also when a thread panicked holding it (the state is still meaningful).
fn lock(slot: &Mutex<BrokerSlot>) -> MutexGuard<'_, BrokerSlot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let base = match before_query[authority_start..].find('/') {
        Some(slash) => &before_query[..authority_start + slash],
        None => before_query,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Runs one SQL statement with `psql` against `url`.
fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql ({e}); install the PostgreSQL client"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A fresh database `mantis_e2e_<random>` on the test server, dropped (best effort) on drop.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn create() -> Self {
        let admin_url = std::env::var("MANTIS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let name = format!("mantis_e2e_{:032x}", rand::random::<u128>());
        psql(&admin_url, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the cluster tests and a database could not be \
                 created at {admin_url}: {e}. Start PostgreSQL, or point \
                 MANTIS_TEST_DATABASE_URL at a server where the user may CREATE DATABASE."
            )
        });
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// The MANTIS services, each its own process, over their own broker and database.
pub struct Cluster {
    // Dropped in this order: services first, then the broker, then the database; the log
    // directory last.
    services: BTreeMap<&'static str, Proc>,
    broker: Arc<Mutex<BrokerSlot>>,
    /// The thread of [`watch_broker`] and its stop flag.
    watchdog: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
    database: TestDatabase,
    env: Vec<(String, String)>,
    ports: BTreeMap<&'static str, u16>,
    /// Every log written, in start order (also of processes killed since).
    logs: Vec<(String, PathBuf)>,
    starts: BTreeMap<&'static str, usize>,
    http: reqwest::Client,
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts a broker, creates a database and starts every service with these section
    /// settings (e.g. `("preprocessing", "window_secs", "10")` for
    /// `MANTIS_PREPROCESSING__WINDOW_SECS=10`); returns once every service is ready.
    pub async fn start(settings: &[(&str, &str, &str)]) -> Self {
        Self::start_with(settings, BrokerStorage::Memory).await
    }

    /// [`Cluster::start`] with the broker's records kept in `storage`.
    pub async fn start_with(settings: &[(&str, &str, &str)], storage: BrokerStorage) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mantis-cluster-")
            .tempdir()
            .expect("tempdir");
        let broker = Broker::start(dir.path(), storage);
        let broker_port = broker.port;
        let database = TestDatabase::create();
        let redis =
            std::env::var("MANTIS_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
        let mut env: Vec<(String, String)> = vec![
            ("MANTIS_INFRA__BUS__KIND".into(), "kafka".into()),
            (
                "MANTIS_INFRA__BUS__BROKERS".into(),
                format!("127.0.0.1:{broker_port}"),
            ),
            ("MANTIS_INFRA__DATABASE_URL".into(), database.url.clone()),
            ("MANTIS_INFRA__REDIS_URL".into(), redis),
            (
                "MANTIS_INFRA__DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
            ("MANTIS_LOG_FORMAT".into(), "pretty".into()),
            // Cluster mode refuses to start without explicit secrets.
            (
                "MANTIS_GATEWAY__AUTH__JWT_SECRET".into(),
                format!("cluster-test-secret-{:032x}", rand::random::<u128>()),
            ),
            (
                "MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD".into(),
                "cluster-test-admin-password".into(),
            ),
            {
                let (k, v) = super::test_api_keys_env();
                (k.into(), v)
            },
            ("NO_COLOR".into(), "1".into()),
        ];
        let mut ports = BTreeMap::new();
        for name in SERVICES {
            let port = free_port();
            ports.insert(name, port);
            env.push((
                format!("MANTIS_{}__BIND", name.to_uppercase()),
                format!("127.0.0.1:{port}"),
            ));
        }
        // The gateway forwards readings posted to it to the ingestion process.
        if let Some(port) = ports.get("ingestion") {
            env.push((
                "MANTIS_GATEWAY__INGESTION_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        for (section, key, value) in settings {
            env.push((
                format!("MANTIS_{}__{}", section.to_uppercase(), key.to_uppercase()),
                (*value).to_owned(),
            ));
        }
        let broker = Arc::new(Mutex::new(BrokerSlot {
            broker,
            stopped: false,
            crashes: Vec::new(),
        }));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (broker, dir, done) = (broker.clone(), dir.path().to_path_buf(), done.clone());
            std::thread::spawn(move || watch_broker(broker, dir, done))
        };
        let mut cluster = Self {
            services: BTreeMap::new(),
            broker,
            watchdog: Some((watchdog, done)),
            database,
            env,
            ports,
            logs: Vec::new(),
            starts: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            dir: Some(dir),
        };
        // The first service migrates the database and creates the topics alone; the others
        // then start together.
        let (first, rest) = SERVICES.split_first().expect("services");
        cluster.start_together(&[*first]).await;
        cluster.start_together(rest).await;
        cluster
    }

    /// Starts `services` together and waits until each is ready. Their ports were picked free
    /// before they bind them, so a parallel test process may take one meanwhile: a service
    /// that could not listen on its port is started again on another (the gateway too, when it
    /// is the ingestion service's, which the gateway forwards to).
    async fn start_together(&mut self, services: &[&'static str]) {
        for name in services {
            self.start_service(name);
        }
        for &name in services {
            let mut attempts = 0;
            while !self.ready_or_port_taken(name).await {
                attempts += 1;
                assert!(
                    attempts <= 3,
                    "{name} found its port taken {attempts} times"
                );
                self.services.remove(name);
                let port = free_port();
                self.ports.insert(name, port);
                self.set_env(
                    &format!("MANTIS_{}__BIND", name.to_uppercase()),
                    format!("127.0.0.1:{port}"),
                );
                if name == "ingestion" {
                    self.set_env(
                        "MANTIS_GATEWAY__INGESTION_URL",
                        format!("http://127.0.0.1:{port}"),
                    );
                    if self.services.contains_key("gateway") {
                        self.kill_service("gateway");
                        self.start_service("gateway");
                        self.await_ready("gateway").await;
                    }
                }
                self.start_service(name);
            }
        }
    }

    /// Sets (or replaces) a variable of the services' environment.
    fn set_env(&mut self, key: &str, value: String) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value));
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("log directory").path()
    }

    /// Starts (or starts again) `service` with the cluster's environment.
    pub fn start_service(&mut self, service: &'static str) {
        assert!(
            !self.services.contains_key(service),
            "{service} is already running"
        );
        let n = {
            let n = self.starts.entry(service).or_insert(0);
            *n += 1;
            *n
        };
        let label = format!("{service}#{n}");
        let log = self.dir().join(format!("{service}.{n}.log"));
        let proc = spawn(
            &label,
            Path::new(env!("CARGO_BIN_EXE_mantis")),
            &["service", service],
            &self.env,
            &log,
        );
        self.logs.push((label, log));
        self.services.insert(service, proc);
    }

    /// Kills `service` with SIGKILL (no shutdown, nothing flushed) and reaps it.
    pub fn kill_service(&mut self, service: &str) {
        let mut proc = self
            .services
            .remove(service)
            .unwrap_or_else(|| panic!("{service} is not running"));
        proc.kill();
    }

    /// Kills the broker with SIGKILL (an outage of the bus).
    pub fn stop_broker(&mut self) {
        let mut slot = lock(&self.broker);
        slot.stopped = true;
        slot.broker.proc.kill();
    }

    /// Starts the broker again on the same port, with the same storage (records kept only
    /// with [`BrokerStorage::Sqlite`]).
    pub fn restart_broker(&mut self) {
        let dir = self.dir().to_path_buf();
        let mut slot = lock(&self.broker);
        let started = slot.broker.restart(&dir);
        assert!(
            started,
            "tansu did not start again on port {}:\n{}",
            slot.broker.port,
            tail(&dir.join("tansu.log"), TAIL_LINES)
        );
        slot.stopped = false;
    }

    /// Runs `sql` with `psql` on the cluster's database; returns the unaligned rows.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                self.database.url.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the `mantis` command line with `args` against this cluster (its environment):
    /// success, standard output, standard error.
    pub fn mantis(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_mantis"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .output()
            .expect("mantis runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The broker's address (`127.0.0.1:<port>`).
    pub fn brokers(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "MANTIS_INFRA__BUS__BROKERS")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>` of `service`.
    pub fn url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[service])
    }

    /// The gateway's live alert WebSocket.
    pub fn ws_alerts_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.ports["gateway"])
    }

    /// The cluster's database through the product's store (migrations already applied).
    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.database.url)
            .await
            .expect("the test database is reachable")
    }

    /// Panics (with the log) when `service` has exited.
    fn assert_running(&mut self, service: &str) {
        let proc = self
            .services
            .get_mut(service)
            .unwrap_or_else(|| panic!("{service} is not running"));
        if let Some(status) = proc.exited() {
            let log = self
                .logs
                .iter()
                .rev()
                .find(|(label, _)| *label == proc.label)
                .map(|(_, p)| tail(p, TAIL_LINES))
                .unwrap_or_default();
            panic!("{} exited ({status}); its log:\n{log}", proc.label);
        }
    }

    /// Panics (with its log) when a service that was started and not killed has exited.
    pub fn assert_all_running(&mut self) {
        let running: Vec<&'static str> = self.services.keys().copied().collect();
        for service in running {
            self.assert_running(service);
        }
    }

    /// Waits until `GET /ready` of `service` answers 200 (bus, database and Redis reachable).
    pub async fn await_ready(&mut self, service: &str) {
        if !self.ready_or_port_taken(service).await {
            panic!(
                "{service} could not listen on port {}; its log:\n{}",
                self.ports[service],
                tail(&self.current_log(service), TAIL_LINES)
            );
        }
    }

    /// The log of the current (last) start of `service`.
    fn current_log(&self, service: &str) -> PathBuf {
        let n = self.starts.get(service).copied().unwrap_or(0);
        self.dir().join(format!("{service}.{n}.log"))
    }

    /// [`Self::await_ready`], but `false` when the service exited because its port was taken
    /// (its log says it cannot listen there). A 200 counts only from a process that holds the
    /// port itself: another test process's service may answer on it meanwhile.
    async fn ready_or_port_taken(&mut self, service: &str) -> bool {
        let url = format!("{}/ready", self.url(service));
        let port = self.ports[service];
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            let pid = {
                let proc = self
                    .services
                    .get_mut(service)
                    .unwrap_or_else(|| panic!("{service} is not running"));
                let exited = proc.exited().is_some();
                let pid = proc.child.id();
                if exited
                    && std::fs::read_to_string(self.current_log(service))
                        .is_ok_and(|log| log.contains("cannot listen on"))
                {
                    return false;
                }
                pid
            };
            self.assert_running(service);
            match self.http.get(&url).send().await {
                Ok(resp) if resp.status() == 200 && listens_on(pid, port) => return true,
                Ok(resp) if resp.status() == 200 => {
                    last = format!("200 from another process holding port {port}");
                }
                Ok(resp) => {
                    last = format!(
                        "{}: {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    )
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{service} not ready within {START_TIMEOUT:?}; last answer: {last}");
    }

    /// Waits until the current log of `service` contains `needle` (e.g. a consumer's
    /// "partitions assigned"), for facts that no API exposes.
    pub async fn await_log(&mut self, service: &'static str, needle: &str, timeout: Duration) {
        let log = self.current_log(service);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.assert_running(service);
            if std::fs::read_to_string(&log).is_ok_and(|t| t.contains(needle)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("`{needle}` did not appear in the log of {service} within {timeout:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop every process first, so the tails are complete and nothing writes any more.
        self.services.clear();
        if let Some((watchdog, done)) = self.watchdog.take() {
            done.store(true, Ordering::SeqCst);
            let _ = watchdog.join();
        }
        let crashes = std::mem::take(&mut lock(&self.broker).crashes);
        if !crashes.is_empty() {
            eprintln!(
                "the test broker ended on its own {} time(s) during the test:\n  {}",
                crashes.len(),
                crashes.join("\n  ")
            );
        }
        if std::thread::panicking() {
            let mut report = String::from("\n===== the test failed; logs of the cluster =====\n");
            let broker_log = self.dir().join("tansu.log");
            let all = std::iter::once(("tansu".to_owned(), broker_log)).chain(self.logs.clone());
            for (label, path) in all {
                report.push_str(&format!(
                    "----- {label} (last {TAIL_LINES} lines of {}) -----\n{}\n",
                    path.display(),
                    tail(&path, TAIL_LINES)
                ));
            }
            if let Some(dir) = self.dir.take() {
                report.push_str(&format!("full logs kept in {}\n", dir.keep().display()));
            }
            eprintln!("{report}");
        } else if std::env::var_os("MANTIS_TEST_KEEP_LOGS").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("cluster logs kept in {}", dir.keep().display());
        }
        lock(&self.broker).broker.proc.kill();
        // The database is dropped with its field, after this body.
    }
}
