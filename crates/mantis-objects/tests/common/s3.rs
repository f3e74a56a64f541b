//! A real S3 server on loopback for the tests: moto (`moto_server`, from PyPI's `moto[server]`,
//! pinned in services/mantis/tests/peers/requirements.txt), started on a free port and killed
//! when dropped. A missing `moto_server` fails the test with what to install.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The bucket every test server starts with.
pub const BUCKET: &str = "mantis-test";

pub use mantis_telemetry::testing::free_port;

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
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need moto_server, an S3 server (pip install -r \
                     services/mantis/tests/peers/requirements.txt, i.e. `pip install \
                     'moto[server]==5.2.1'`): {e}"
                )
            });
        let mut server = Self { child, port };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited ({status}) before listening on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not listen on 127.0.0.1:{port} within 30 s");
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
