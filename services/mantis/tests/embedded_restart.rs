//! The edge profile survives a hard stop: the `mantis run` process is SIGKILLed right after
//! readings were acknowledged (HTTP 202), restarted on the same data directory, and every
//! acknowledged reading is still there, windowed exactly once.

mod common;

use common::*;
use mantis_store::Store;
use mantis_telemetry::testing::{free_port, listens_on};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WINDOW_SECS: i64 = 10;

/// A `mantis run` process, killed when dropped.
struct Mantis {
    child: Child,
    log: std::path::PathBuf,
}

impl Mantis {
    /// Waits until the service on `port` is ready; fails with the process's log if it exits.
    async fn await_ready(&mut self, http: &reqwest::Client, port: u16) {
        let url = format!("http://127.0.0.1:{port}/ready");
        for _ in 0..240 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("mantis exited with {status} before it was ready:\n{log}");
            }
            // From this process: another test's may hold the port (this one then exits).
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
                && listens_on(self.child.id(), port)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("mantis not ready on port {port} after 60 s:\n{log}");
    }
}

impl Drop for Mantis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ports {
    gateway: u16,
    ingestion: u16,
    others: [u16; 5],
}

fn start(dir: &std::path::Path, ports: &Ports, log_name: &str) -> Mantis {
    let log_path = dir.join(log_name);
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mantis"));
    cmd.arg("run")
        .env("MANTIS_INFRA__DATA_DIR", dir.join("data"))
        .env(
            "MANTIS_GATEWAY__BIND",
            format!("127.0.0.1:{}", ports.gateway),
        )
        .env(
            "MANTIS_INGESTION__BIND",
            format!("127.0.0.1:{}", ports.ingestion),
        )
        .env("MANTIS_PREPROCESSING__WINDOW_SECS", WINDOW_SECS.to_string())
        .env("MANTIS_PREPROCESSING__IDLE_CLOSE_SECS", "2")
        .env("MANTIS_PREPROCESSING__ALLOWED_LATENESS_SECS", "0")
        .env("RUST_LOG", "info")
        .env(test_api_keys_env().0, test_api_keys_env().1)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (service, port) in [
        "preprocessing",
        "features",
        "anomaly",
        "rul",
        "orchestrator",
    ]
    .iter()
    .zip(ports.others)
    {
        cmd.env(
            format!("MANTIS_{}__BIND", service.to_uppercase()),
            format!("127.0.0.1:{port}"),
        );
    }
    Mantis {
        child: cmd.spawn().expect("mantis starts"),
        log: log_path,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_readings_survive_a_sigkill_of_the_embedded_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports {
        gateway: free_port(),
        ingestion: free_port(),
        others: [
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        ],
    };
    let http = common::http();
    let gateway = format!("http://127.0.0.1:{}", ports.gateway);
    let ingestion = format!("http://127.0.0.1:{}", ports.ingestion);

    // Arrange: a running platform with a registered motor.
    let mut first = start(dir.path(), &ports, "first.log");
    first.await_ready(&http, ports.gateway).await;
    first.await_ready(&http, ports.ingestion).await;
    let (_, sensor) = register_motor(&http, &gateway, "MTR-EDGE").await;

    // Act: 6 windows of readings are acknowledged, then the process is killed at once.
    let base = base_ms();
    let readings = healthy_windows(base, WINDOW_SECS, 0, 6);
    for chunk in readings.chunks(7) {
        post_readings(&http, &ingestion, &sensor, chunk).await;
    }
    drop(first); // SIGKILL: no graceful shutdown, nothing flushed on the way out.

    let mut second = start(dir.path(), &ports, "second.log");
    second.await_ready(&http, ports.gateway).await;

    // Assert: every acknowledged reading is stored once, and all six windows exist once (the
    // last one closes when the sensor stays idle).
    let store = mantis_store::sqlite::SqliteStore::open(dir.path().join("data/mantis.db"))
        .await
        .expect("database opens");
    let sensor_id = mantis_domain::SensorId::parse(&sensor).expect("uuid");
    let from = mantis_domain::timestamp_from_millis(base).expect("valid");
    let to = mantis_domain::timestamp_from_millis(base + 3_600_000).expect("valid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (mut stored, mut windows) = (0, 0);
    while tokio::time::Instant::now() < deadline {
        stored = store
            .list_readings(sensor_id, from, to)
            .await
            .expect("readings")
            .len();
        windows = store.count_windows(Some(sensor_id)).await.expect("windows");
        if stored == readings.len() && windows == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    assert_eq!(
        stored,
        readings.len(),
        "every acknowledged reading is stored\n{tail}"
    );
    assert_eq!(windows, 6, "every window is built exactly once\n{tail}");
    drop(second);
}
