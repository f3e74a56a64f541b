//! A real S3 server on loopback for the tests: moto (`moto_server`, from PyPI's `moto[server]`,
//! pinned in services/mantis/tests/peers/requirements.txt), started on a port the kernel picks
//! (it announces it) and killed when dropped. A missing `moto_server` fails the test with what
//! to install.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mantis_telemetry::testing::announced_port;
pub use mantis_telemetry::testing::free_port;

/// The bucket every test server starts with.
pub const BUCKET: &str = "mantis-test";

/// A moto S3 server on a free loopback port.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts the server and creates [`BUCKET`]; returns once both are done.
    pub async fn start() -> Self {
        // Waiting for the port sleeps: off the async threads. A panic (no moto_server) is
        // passed on as it is.
        let server = tokio::task::spawn_blocking(Self::spawn)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        server.create_bucket(BUCKET).await;
        server
    }

    fn spawn() -> Self {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need moto_server, an S3 server (pip install -r \
                     services/mantis/tests/peers/requirements.txt, i.e. `pip install \
                     'moto[server]==5.2.1'`): {e}"
                )
            });
        // Werkzeug announces the port once it listens.
        let port = announced_port(
            &mut child,
            "Running on http://127.0.0.1:",
            Duration::from_secs(30),
        );
        Self { child, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name`; moto takes unsigned requests.
    pub async fn create_bucket(&self, name: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .expect("S3 reachable");
        assert!(
            resp.status().is_success(),
            "creating bucket {name}: {}",
            resp.status()
        );
    }

    /// Settings reaching [`BUCKET`] on this server (moto accepts any credentials).
    pub fn settings(&self) -> mantis_objects::S3Settings {
        mantis_objects::S3Settings::new(BUCKET, self.endpoint(), "testing", "testing-secret")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
