//! The conformance suite against the machine's real Redis (`MANTIS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Fails, never skips, when Redis is down.

use mantis_cache::{Cache, Error, RedisCache};

fn url() -> String {
    std::env::var("MANTIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis() -> RedisCache {
    RedisCache::connect(&url()).await.unwrap_or_else(|e| {
        panic!("Redis is needed at {} for these tests ({e}); start it with `redis-server --daemonize yes`", url())
    })
}

mantis_cache::conformance_tests!(redis());

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let e = RedisCache::connect("redis://127.0.0.1:1/")
        .await
        .expect_err("nothing listens there");
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
}

/// A password the server does not take is a configuration to mend, not an outage to wait out
/// (the services refuse to start on it). The machine's Redis has no password: any is wrong.
#[tokio::test]
async fn a_refused_password_is_invalid_not_unavailable() {
    let e = RedisCache::connect(&format!("redis://:not-the-password@{}/", server()))
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[tokio::test]
async fn describes_itself() {
    assert!(redis().await.describe().starts_with("redis ("));
}

/// A TCP relay between the cache and Redis whose connections can be cut, as a Redis restart or
/// a proxy dropping an idle connection would (the machine's Redis is shared with other tests
/// and is not restarted).
struct Relay {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accepting: tokio::task::JoinHandle<()>,
}

/// The address of the machine's Redis.
fn server() -> String {
    url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|authority| authority.rsplit('@').next())
        .unwrap_or("127.0.0.1:6379")
        .to_owned()
}

impl Relay {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::on(listener, upstream)
    }

    /// Relays what `listener` accepts to `upstream`.
    fn on(listener: tokio::net::TcpListener, upstream: String) -> Self {
        let addr = listener.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, held) = (accepted.clone(), links.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().expect("links").push(link);
            }
        });
        Self {
            addr,
            accepted,
            links,
            _accepting: accepting,
        }
    }

    /// Closes every connection relayed so far (new ones are still taken).
    async fn cut(&self) {
        let links: Vec<_> = self.links.lock().expect("links").drain(..).collect();
        for link in links {
            link.abort();
            let _ = link.await;
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_connection_cut_is_opened_again_and_the_call_answered() {
    let relay = Relay::to(server()).await;
    let cache = RedisCache::connect(&format!("redis://{}/", relay.addr))
        .await
        .expect("connected through the relay");
    let key = format!("mantis-test:reconnect:{}", std::process::id());
    cache
        .set(&key, b"kept".to_vec(), std::time::Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(relay.accepted(), 1);

    relay.cut().await;
    // The next call finds its connection closed and is answered on a new one.
    assert_eq!(
        cache.get(&key).await.expect("answered on a new connection"),
        Some(b"kept".to_vec())
    );
    assert_eq!(relay.accepted(), 2, "one new connection");
    cache.ping().await.expect("ready again");

    // Cut again while idle: the readiness check itself recovers.
    relay.cut().await;
    cache.ping().await.expect("ping on a new connection");
    cache.delete(&key).await.expect("delete");
    assert_eq!(relay.accepted(), 3);
}

/// A service that starts while Redis is down: the cache is unavailable, then answers once
/// Redis does, without a restart.
#[tokio::test]
async fn a_cache_started_before_its_server_answers_once_it_is_up() {
    // A port nothing listens on yet, held (bound, not listening: connecting is refused) so
    // that no other process takes it meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let cache = RedisCache::lazy(&format!("redis://127.0.0.1:{port}/")).expect("a valid URL");
    let down = cache
        .get("mantis-test:lazy")
        .await
        .expect_err("nothing listens");
    assert!(matches!(down, Error::Unavailable(_)), "{down}");
    assert!(cache.ping().await.is_err(), "not ready while down");

    // Redis (through a relay) comes up on that port.
    let listener = socket.listen(16).expect("listen on the held port");
    let _relay = Relay::on(listener, server());
    // After the back-off of a failed connect (1 s), the next call connects.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cache.ping().await.expect("ready once Redis answers");
    assert_eq!(cache.get("mantis-test:lazy").await.expect("answered"), None);
    assert!(matches!(
        RedisCache::lazy("http://not-redis"),
        Err(Error::Invalid(_))
    ));
}

/// A server that wants a password this client does not give answers its first command
/// `NOAUTH` (not the connect): a configuration to mend, found at start. (A stand-in server
/// that answers every command so: the machine's Redis has no password to require.)
#[tokio::test]
async fn a_server_that_wants_a_password_is_invalid_at_connect() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _server = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = client.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // One answer per command (each a RESP array: a line starting with `*`).
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let commands = text.split("\r\n").filter(|l| l.starts_with('*')).count();
                    let answer = "-NOAUTH Authentication required.\r\n".repeat(commands.max(1));
                    if client.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let e = RedisCache::connect(&format!("redis://{addr}/"))
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}
