//! A real S3 server on loopback for the tests: moto (`moto_server`, from PyPI's
//! `moto[server]`, pinned in services/mantis/tests/peers/requirements.txt), started on a port
//! the kernel picks (it announces it) and killed when dropped. A missing `moto_server` fails the
//! test with what to install.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A moto S3 server on a free loopback port.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts the server; returns once it listens.
    pub fn start() -> Self {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need moto_server, an S3 server (pip install -r \
                     services/mantis/tests/peers/requirements.txt): {e}"
                )
            });
        // Werkzeug announces the port once it listens.
        let port = mantis_telemetry::testing::announced_port(
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

    /// Creates bucket `name`.
    pub async fn create_bucket(&self, name: &str) {
        self.put(name, String::new()).await;
    }

    /// Stores `body` at `path` (`bucket/key`); moto takes unsigned requests.
    pub async fn put(&self, path: &str, body: String) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{path}", self.endpoint()))
            .body(body)
            .send()
            .await
            .expect("S3 reachable");
        assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
