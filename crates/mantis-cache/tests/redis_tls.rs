//! Redis over TLS (`rediss://`): the machine's `redis-server` (Debian's is built with TLS;
//! `MANTIS_TEST_REDIS_SERVER` names another) started on a free port with a throw-away PKI made
//! by `openssl`, listening for TLS only. A private CA is trusted, a client certificate given
//! where the server asks for one, and a server whose certificate the CA did not sign is a
//! configuration to mend, not an outage.

#[path = "../../mantis-connectors/tests/common/pki.rs"]
#[allow(dead_code, unreachable_pub)]
mod pki;

use mantis_cache::{Cache, Error, RedisCache, RedisTls};
use pki::Pki;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of our own, TLS only, stopped when dropped.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    /// Starts one with `pki`'s server certificate; it asks clients for a certificate signed
    /// by `pki`'s CA when `mutual`. Its port is picked free before it binds it, so another
    /// process may take it meanwhile: then another is tried.
    fn start(pki: &Pki, mutual: bool) -> TlsRedis {
        let server =
            std::env::var("MANTIS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let path = |p: std::path::PathBuf| p.display().to_string();
            let mut child = Command::new(&server)
                .args(["--port", "0", "--bind", "127.0.0.1"])
                .args(["--tls-port", &port.to_string()])
                .args(["--tls-cert-file", &path(pki.server_cert())])
                .args(["--tls-key-file", &path(pki.server_key())])
                .args(["--tls-ca-cert-file", &path(pki.ca())])
                .args(["--tls-auth-clients", if mutual { "yes" } else { "no" }])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", &path(pki.dir.clone())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {server} ({e}): install redis-server"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Ours, not another process's that took the port first (ours exits then).
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(None) = child.try_wait() {
                        return TlsRedis { port, child };
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{server} did not start with TLS (is it built with TLS?)");
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn pki() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = dir.path().to_owned();
    let pki = tokio::task::spawn_blocking(move || Pki::generate(&at))
        .await
        .expect("openssl");
    (dir, pki)
}

#[tokio::test]
async fn a_private_ca_is_trusted_and_a_client_certificate_given_where_asked() {
    let (_dir, pki) = pki().await;
    let redis = TlsRedis::start(&pki, true);
    let tls = RedisTls {
        ca_file: Some(pki.ca()),
        client_files: Some((pki.client_cert(), pki.client_key())),
    };
    let cache = RedisCache::connect_with(&redis.url(), &tls)
        .await
        .expect("connects over TLS");
    cache
        .set(
            "mantis-test:tls",
            b"over TLS".to_vec(),
            Duration::from_secs(60),
        )
        .await
        .expect("set");
    assert_eq!(
        cache.get("mantis-test:tls").await.expect("get"),
        Some(b"over TLS".to_vec())
    );
    let count = cache
        .count("mantis-test:tls-count", 2, Duration::from_secs(60))
        .await
        .expect("count");
    assert_eq!(count.value, 2);

    // No client certificate, or one another CA signed: the server refuses the handshake.
    for client_files in [
        None,
        Some((pki.rogue_client_cert(), pki.rogue_client_key())),
    ] {
        let tls = RedisTls {
            ca_file: Some(pki.ca()),
            client_files,
        };
        assert!(
            RedisCache::connect_with(&redis.url(), &tls).await.is_err(),
            "refused by the server"
        );
    }
}

/// A client certificate renewed in place (a cert-manager Secret mounted in a pod) is taken at
/// the next connection, without a new cache (a restart).
#[tokio::test]
async fn a_certificate_renewed_in_place_is_taken_at_the_next_connection() {
    let (_dir, pki) = pki().await;
    let redis = TlsRedis::start(&pki, true);
    let mounted = pki.dir.join("mounted");
    std::fs::create_dir(&mounted).expect("mkdir");
    let (cert, key) = (mounted.join("tls.crt"), mounted.join("tls.key"));
    // What is mounted at first is not accepted (lapsed, or from another CA).
    std::fs::copy(pki.rogue_client_cert(), &cert).expect("copy");
    std::fs::copy(pki.rogue_client_key(), &key).expect("copy");
    let tls = RedisTls {
        ca_file: Some(pki.ca()),
        client_files: Some((cert.clone(), key.clone())),
    };
    let cache = RedisCache::lazy_with(&redis.url(), &tls).expect("valid settings");
    assert!(
        cache.ping().await.is_err(),
        "refused with the old certificate"
    );
    std::fs::copy(pki.client_cert(), &cert).expect("renewed");
    std::fs::copy(pki.client_key(), &key).expect("renewed");
    // After the back-off of a failed connect (1 s), the next call connects with the new one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cache
        .ping()
        .await
        .expect("the renewed certificate is taken");
}

/// A server whose certificate the trusted CA did not sign (the system's CAs here, or another
/// private CA) is refused: a configuration to mend, which stops a service's start.
#[tokio::test]
async fn a_server_the_trusted_cas_did_not_sign_is_invalid() {
    let (_dir, pki) = pki().await;
    let redis = TlsRedis::start(&pki, false);
    for ca_file in [None, Some(pki.rogue_ca())] {
        let tls = RedisTls {
            ca_file,
            client_files: None,
        };
        let e = RedisCache::connect_with(&redis.url(), &tls)
            .await
            .expect_err("not trusted");
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    // Without a client certificate where none is asked for: connects.
    let tls = RedisTls {
        ca_file: Some(pki.ca()),
        client_files: None,
    };
    RedisCache::connect_with(&redis.url(), &tls)
        .await
        .expect("trusted");
}

#[tokio::test]
async fn tls_settings_need_a_rediss_url_and_readable_certificates() {
    let (_dir, pki) = pki().await;
    let tls = RedisTls {
        ca_file: Some(pki.ca()),
        client_files: None,
    };
    assert!(matches!(
        RedisCache::check("redis://127.0.0.1:6379/", &tls),
        Err(Error::Invalid(_))
    ));
    let not_pem = pki.dir.join("not-a-certificate.pem");
    std::fs::write(&not_pem, "not a certificate").expect("written");
    for bad in [
        RedisTls {
            ca_file: Some(not_pem.clone()),
            client_files: None,
        },
        RedisTls {
            ca_file: Some(pki.dir.join("missing.pem")),
            client_files: None,
        },
        RedisTls {
            ca_file: None,
            client_files: Some((pki.client_cert(), not_pem.clone())),
        },
    ] {
        assert!(
            matches!(
                RedisCache::check("rediss://127.0.0.1:6379/", &bad),
                Err(Error::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    // No certificate check at all is not offered.
    assert!(matches!(
        RedisCache::check("rediss://127.0.0.1:6379/#insecure", &RedisTls::default()),
        Err(Error::Invalid(_))
    ));
    RedisCache::check("rediss://127.0.0.1:6379/", &RedisTls::default()).expect("the system's CAs");
}
