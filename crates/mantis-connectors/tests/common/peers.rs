//! The third-party peers of the connector tests, started and stopped by the tests: Mosquitto
//! (the machine's on 127.0.0.1:1883, or an instance of our own on a free port, with TLS when
//! asked), paho-mqtt as the publishing device and pymodbus as the Modbus device (Python 3.11,
//! `pip install -r crates/mantis-connectors/tests/peers/requirements.txt`), and a throw-away
//! PKI made with `openssl`.
//!
//! Nothing is skipped: a peer that cannot start fails the test with a message saying what to
//! install or start. Every child process is killed and reaped when its handle is dropped.
//! Environment: `MANTIS_TEST_PYTHON` (default `python3.11`, else `python3`),
//! `MANTIS_TEST_MOSQUITTO` (default `mosquitto` on PATH or /usr/sbin/mosquitto).

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Beside this file (which other crates' tests include by path).
#[path = "pki.rs"]
pub mod pki;
pub use pki::{Pki, readable_by_all};

/// The machine's broker.
pub const SHARED_BROKER_PORT: u16 = 1883;

/// The folder of the Python peers.
pub fn peers_dir() -> PathBuf {
    // Two levels below the workspace root in both crates that include this file
    // (crates/mantis-connectors, services/ingestion).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/mantis-connectors/tests/peers")
}

pub use mantis_telemetry::testing::{free_port, listens_on};

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A unique suffix for topics, client ids and sensor codes, so tests never see each other's
/// messages on the shared broker.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails the test unless the machine's Mosquitto listens on 1883.
pub fn shared_broker() -> u16 {
    assert!(
        port_open(SHARED_BROKER_PORT),
        "the machine's Mosquitto does not listen on 127.0.0.1:{SHARED_BROKER_PORT}; start it with \
         `mosquitto -d -c /etc/mosquitto/mosquitto.conf` (Debian package `mosquitto`)"
    );
    SHARED_BROKER_PORT
}

/// The Python interpreter with the peers' packages, checked once.
pub fn python() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("MANTIS_TEST_PYTHON") {
            Ok(p) => vec![p],
            Err(_) => vec!["python3.11".into(), "python3".into()],
        };
        let mut tried = Vec::new();
        for py in candidates {
            match Command::new(&py)
                .args(["-c", "import paho.mqtt, pymodbus, asyncua"])
                .output()
            {
                Ok(out) if out.status.success() => return py,
                Ok(out) => tried.push(format!(
                    "{py}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => tried.push(format!("{py}: {e}")),
            }
        }
        panic!(
            "no Python with paho-mqtt, pymodbus and asyncua ({}); install them with `python3.11 -m pip \
             install -r crates/mantis-connectors/tests/peers/requirements.txt` (scripts/test.sh \
             does) or set MANTIS_TEST_PYTHON",
            tried.join("; ")
        )
    })
    .clone()
}

fn mosquitto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MANTIS_TEST_MOSQUITTO") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "mosquitto is not installed (Debian: `apt-get install mosquitto`), or set MANTIS_TEST_MOSQUITTO"
    )
}

/// A child process killed (SIGKILL) and reaped on drop, its output in `log`.
pub struct Proc {
    pub label: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(label: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({:?}): {e}", cmd.get_program()));
        Proc {
            label: label.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds (bounded); fails with the log when the process ends first.
    fn wait_ready(&mut self, what: &str, ready: impl Fn(&Proc) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ready(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // What it wrote before it ended may be what was waited for.
                if ready(self) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before {what}; its log:\n{}",
                    self.label,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not get {what} within 20 s; its log:\n{}",
            self.label,
            self.log_text()
        );
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot send SIG{signal} to {}", self.label);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die cleanly.
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// A Mosquitto of our own on a free port (plain, or TLS requiring a client certificate).
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Mosquitto {
    /// Starts a broker in `dir` (its configuration and log live there). Its port is picked
    /// free before it binds it, so a parallel test process may take it meanwhile: then another
    /// is tried.
    pub fn start(dir: &Path, tls: Option<&Pki>) -> Mosquitto {
        for _ in 0..3 {
            let mut m = Self::configure(dir, tls);
            if m.try_restart() {
                return m;
            }
        }
        panic!("mosquitto found its port taken three times");
    }

    /// A broker's configuration on a free port, not started.
    fn configure(dir: &Path, tls: Option<&Pki>) -> Mosquitto {
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
        );
        if let Some(pki) = tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\ntls_version tlsv1.2\n",
                pki.ca().display(),
                pki.server_cert().display(),
                pki.server_key().display()
            ));
        }
        let conf_path = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        readable_by_all(dir);
        Mosquitto {
            port,
            conf: conf_path,
            dir: dir.to_owned(),
            proc: None,
        }
    }

    /// Kills the broker (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while port_open(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (Re)starts the broker on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(
            self.try_restart(),
            "mosquitto could not listen on its port {} again",
            self.port
        );
    }

    /// [`Self::restart`]; `false` when the port was taken (the broker said so and exited).
    fn try_restart(&mut self) -> bool {
        self.kill();
        let log = self
            .dir
            .join(format!("mosquitto-{}-{}.log", self.port, unique("run")));
        let mut p = Proc::spawn(
            "mosquitto (Debian package `mosquitto`, or set MANTIS_TEST_MOSQUITTO)",
            Command::new(mosquitto_binary()).arg("-c").arg(&self.conf),
            &log,
        );
        let port = self.port;
        // Its own socket: a connection alone may reach another test process's broker.
        let taken = |p: &Proc| p.log_text().contains("Address already in use");
        p.wait_ready("listening", |p| listens_on(p.pid(), port) || taken(p));
        if taken(&p) {
            return false;
        }
        self.proc = Some(p);
        true
    }
}

/// A pymodbus device (see `peers/modbus_server.py`).
pub struct ModbusDevice {
    pub port: u16,
    pub proc: Proc,
}

impl ModbusDevice {
    /// Starts a device serving `spec` on `port` (a free one when `None`) and waits until it
    /// accepts connections.
    pub fn start(dir: &Path, port: Option<u16>, spec: &serde_json::Value) -> ModbusDevice {
        let port = port.unwrap_or_else(free_port);
        let log = dir.join(format!("pymodbus-{port}-{}.log", unique("run")));
        let mut proc = Proc::spawn(
            "pymodbus",
            Command::new(python())
                .arg(peers_dir().join("modbus_server.py"))
                .args(["--port", &port.to_string(), "--spec", &spec.to_string()]),
            &log,
        );
        proc.wait_ready("READY", |p| p.log_text().contains("READY"));
        ModbusDevice { port, proc }
    }
}

/// A Python `asyncua` OPC UA server (`peers/opcua_server.py`): security policies None and
/// Basic256Sha256 (Sign, SignAndEncrypt), anonymous and, with `user`, one user name/password.
pub struct OpcUaServer {
    pub port: u16,
    pub proc: Proc,
}

impl OpcUaServer {
    /// Starts a server on `port` (a free one when `None`), its certificate kept in
    /// `dir/opcua-server` (so a restarted server presents the same one), `user` as
    /// `name:password`, `epoch` served as `Line1.Epoch`; waits until it accepts connections.
    pub fn start(dir: &Path, port: Option<u16>, user: Option<&str>, epoch: u32) -> OpcUaServer {
        let port = port.unwrap_or_else(free_port);
        let log = dir.join(format!("asyncua-{port}-{}.log", unique("run")));
        let mut cmd = Command::new(python());
        cmd.arg(peers_dir().join("opcua_server.py"))
            .args(["--port", &port.to_string(), "--epoch", &epoch.to_string()])
            .arg("--certdir")
            .arg(dir.join("opcua-server"));
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let mut proc = Proc::spawn("asyncua", &mut cmd, &log);
        proc.wait_ready("READY", |p| p.log_text().contains("READY"));
        OpcUaServer { port, proc }
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/mantis-test/", self.port)
    }
}

/// TLS files for the publishing device.
pub struct ClientTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// Publishes `(topic, payload)` messages with paho-mqtt and waits for the broker's
/// acknowledgements; panics with paho's explanation when it fails.
pub fn paho_publish(
    port: u16,
    version: &str,
    qos: u8,
    tls: Option<ClientTls<'_>>,
    messages: &[(String, String)],
) {
    paho_publish_with(port, version, qos, tls, messages, false);
}

/// [`paho_publish`], the messages retained by the broker when `retain`.
pub fn paho_publish_with(
    port: u16,
    version: &str,
    qos: u8,
    tls: Option<ClientTls<'_>>,
    messages: &[(String, String)],
    retain: bool,
) {
    let mut cmd = Command::new(python());
    cmd.arg(peers_dir().join("mqtt_publish.py")).args([
        "--port",
        &port.to_string(),
        "--version",
        version,
        "--qos",
        &qos.to_string(),
    ]);
    if let Some(t) = tls {
        cmd.arg("--ca")
            .arg(t.ca)
            .arg("--cert")
            .arg(t.cert)
            .arg("--key")
            .arg(t.key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the paho publisher: {e}"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for (topic, payload) in messages {
            let line = serde_json::json!({"topic": topic, "payload": payload, "retain": retain});
            writeln!(stdin, "{line}").expect("write to paho");
        }
    }
    let out = child.wait_with_output().expect("paho ran");
    assert!(
        out.status.success(),
        "paho-mqtt could not publish: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `f` every 50 ms until it returns `Some`, at most `secs` seconds; then fails, naming
/// `what` and showing `context()`.
pub async fn eventually<T>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {secs} s waiting for {what}; {}", context());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
