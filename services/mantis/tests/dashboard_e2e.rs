//! The dashboard end to end, in a real headless Chromium (Debian's, driven by playwright-core
//! from `dashboard/e2e/demo.e2e.mjs`), against `mantis demo` started as a newcomer starts it:
//! log in, see the plant overview, receive a live alert over the WebSocket, acknowledge it,
//! open the asset page and see its charts drawn, move a work order on the board, … and replay
//! from the dead-letter page the alerts a webhook's receiver (served by the browser test on
//! `MANTIS_WEBHOOK_PORT`) refused with 422, once it takes them. Screenshots of every page are
//! kept in `<target>/e2e-artifacts/`.
//!
//! Needs Node.js, the dashboard's npm packages (`npm ci` in `dashboard/`) and Chromium
//! (`/usr/bin/chromium`, or `MANTIS_CHROMIUM`); `scripts/test.sh` installs them.

mod common;

use mantis_telemetry::testing::{free_port, listens_on};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "e2e-admin-password";

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mantis demo` with its services on free ports, and a webhook `e2e` posting to
/// `127.0.0.1:<webhook>`, and waits until the gateway listens; returns it, the gateway's port
/// and the log's path.
/// The ports are found free and then released, so another process may take one before the demo
/// binds it: the demo then exits at once saying so, and is started again on other ports (in a
/// fresh data directory), at most three times.
fn start_demo(dir: &Path, webhook: u16) -> (Demo, u16, PathBuf) {
    for attempt in 1..=3 {
        let data = dir.join(format!("attempt-{attempt}"));
        std::fs::create_dir_all(&data).expect("data directory");
        let gateway = std::iter::repeat_with(free_port)
            .find(|p| *p != webhook)
            .expect("a free port");
        let log_path = data.join("mantis.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mantis"));
        cmd.arg("demo")
            .current_dir(&data)
            .env("MANTIS_INFRA__DATA_DIR", data.join("data"))
            .env("MANTIS_GATEWAY__BIND", format!("127.0.0.1:{gateway}"))
            .env("MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD", PASSWORD)
            // Live sockets' credentials checked every 2 s (30 s by default): a socket left on
            // a token that ended (ana's after her password change) is closed within the test.
            .env("MANTIS_GATEWAY__WS_RECHECK_SECS", "2")
            // The test applies the plan itself (and moves a work order it picked meanwhile).
            .env("MANTIS_GATEWAY__PLANNING__AUTO_APPLY_SECS", "0")
            // The browser test's receiver refuses the alerts (422) until it replays them.
            .env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__E2E__URL",
                format!("http://127.0.0.1:{webhook}/mantis"),
            )
            .env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__E2E__SECRET",
                "e2e-webhook-secret-0123456789",
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        // The gateway's port is set above; the others' internal ports anywhere free.
        for service in common::cluster::SERVICES
            .iter()
            .filter(|s| **s != "gateway")
        {
            // Not the gateway's nor the webhook receiver's (found free too, not bound yet).
            let port = std::iter::repeat_with(free_port)
                .find(|p| *p != gateway && *p != webhook)
                .expect("a free port");
            cmd.env(
                format!("MANTIS_{}__BIND", service.to_uppercase()),
                format!("127.0.0.1:{port}"),
            );
        }
        let mut demo = Demo(cmd.spawn().expect("mantis demo starts"));
        // Ready when the demo itself listens on the gateway's port (a connection alone could
        // reach another test process that took the port meanwhile; this one then exits).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if listens_on(demo.0.id(), gateway) {
                return (demo, gateway, log_path);
            }
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Ok(Some(status)) = demo.0.try_wait() {
                let log = log();
                if log.contains("Address already in use") && attempt < 3 {
                    eprintln!("attempt {attempt}: a port was taken meanwhile; again on others");
                    break;
                }
                panic!("the demo exited ({status}) before its gateway listened; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the demo's gateway did not listen within 120 s; log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    unreachable!("the third attempt returns or panics")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn artifacts() -> PathBuf {
    // `<target>/e2e-artifacts`, next to the test binaries.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(Path::parent)
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    target.join("e2e-artifacts")
}

#[test]
fn the_dashboard_works_in_a_real_browser_against_the_demo() {
    let dashboard = workspace().join("dashboard");
    assert!(
        dashboard.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in dashboard/ first (scripts/test.sh does)"
    );
    let chromium = std::env::var("MANTIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is needed at {chromium} (Debian package `chromium`; scripts/test.sh installs it)"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    // Found free and released: the browser test binds it a few seconds later (the demo only
    // posts to it; its deliveries are retried until it listens). Another process's listener
    // taking it meanwhile would fail the browser test at its start, saying EADDRINUSE.
    let webhook = free_port();
    let (_demo, gateway, log_path) = start_demo(dir.path(), webhook);
    let url = format!("http://127.0.0.1:{gateway}");

    let out = artifacts();
    std::fs::create_dir_all(&out).expect("artefacts directory");
    let status = Command::new("node")
        .arg("e2e/demo.e2e.mjs")
        .current_dir(&dashboard)
        .env("MANTIS_URL", &url)
        .env("MANTIS_USER", "admin")
        .env("MANTIS_PASSWORD", PASSWORD)
        .env("MANTIS_ARTIFACTS", &out)
        .env("MANTIS_CHROMIUM", &chromium)
        .env("MANTIS_WEBHOOK_PORT", webhook.to_string())
        .status()
        .expect("node runs the browser test");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert!(
        status.success(),
        "the browser test failed (screenshots in {}); last lines of the demo's log:\n{}",
        out.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    for page in [
        "01-overview",
        "03-alert-live",
        "05-asset",
        "07-work-order-moved",
        "09d-dead-letters",
    ] {
        assert!(
            out.join(format!("{page}.png")).is_file(),
            "screenshot {page} saved"
        );
    }
}
