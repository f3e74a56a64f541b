//! Helpers for the workspace's own tests (they start servers and peers on loopback).

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Child;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

/// Ports are picked from here: below Linux's ephemeral range (32768–60999 by default), from
/// which the kernel takes the local port of every outgoing connection and of every bind to
/// port 0. A port found free there is not handed to an outgoing connection; a port found free
/// by binding to port 0 may be handed to the next one (a test talking to PostgreSQL or Kafka)
/// before the server it was meant for binds it.
const PICK_FROM: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port that is free now and was not handed out before in this process, for a
/// server or peer that must be told its port before it starts (a child process, a service
/// configured by address). Picked at random, so parallel test processes rarely try the same.
///
/// # Panics
/// When no port of the range can be bound (a test fails with that message).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let random = RandomState::new();
    let span = u64::from(PICK_FROM.end - PICK_FROM.start);
    for attempt in 0u64..10_000 {
        let offset = u16::try_from(random.hash_one(attempt) % span).unwrap_or(0);
        let port = PICK_FROM.start + offset;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {PICK_FROM:?}");
}

/// The port a child told to listen on port 0 announces on its stderr (piped): the number
/// right after `prefix` on the first line holding it (werkzeug's `Running on
/// http://127.0.0.1:`, for instance). The kernel picked that port as the child bound it, so it
/// is the child's: a port picked free beforehand ([`free_port`]) can be taken meanwhile by a
/// parallel test process, whose server then answers in this one's place until it stops. The
/// rest of stderr is read and dropped, so the child never blocks writing its log.
///
/// # Panics
/// When the child's stderr is not piped, or it closes stderr (exits) without announcing a
/// port, or has not announced one `within` of the call (the child is killed then); the
/// message holds what it wrote.
pub fn announced_port(child: &mut Child, prefix: &str, within: Duration) -> u16 {
    let stderr = child
        .stderr
        .take()
        .expect("the child's stderr is piped (Stdio::piped())");
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut seen = String::new();
        let mut line = Vec::new();
        let mut announced = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if announced => continue,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let port = text.find(&prefix).and_then(|at| {
                let rest = &text[at + prefix.len()..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                rest[..end].parse::<u16>().ok().filter(|&p| p != 0)
            });
            match port {
                Some(port) => {
                    announced = true;
                    let _ = tx.send(Ok(port));
                }
                None => seen.push_str(&text),
            }
        }
        if !announced {
            let _ = tx.send(Err(seen));
        }
    });
    let outcome = rx.recv_timeout(within);
    if !matches!(outcome, Ok(Ok(_))) {
        // Not left behind listening when the test fails.
        let _ = child.kill();
        let _ = child.wait();
    }
    match outcome {
        Ok(Ok(port)) => port,
        Ok(Err(stderr)) => {
            panic!("the child exited without announcing its port; stderr:\n{stderr}")
        }
        Err(_) => {
            // Killed, it closes stderr: what it wrote comes.
            let stderr = match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(Err(stderr)) => stderr,
                _ => String::new(),
            };
            panic!("the child did not announce its port within {within:?}; stderr:\n{stderr}")
        }
    }
}

/// Whether process `pid` holds a TCP socket listening on `port` (Linux: the listening sockets
/// of `/proc/net/tcp` and `tcp6` matched with the process's descriptors). A server told a port
/// picked beforehand ([`free_port`]) may find it taken by a parallel test process; a connection
/// to the port then reaches that process's server, and only this tells the two apart.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes: BTreeSet<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .into_iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| listening_inode(line, port))
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| {
                target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

/// The socket inode of a `/proc/net/tcp` row (`sl local rem st … uid timeout inode`) when it
/// is a socket listening (state `0A`) on `port`.
fn listening_inode(row: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
    let listening = u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == "0A";
    listening.then(|| fields.get(9)?.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn the_port_a_child_announces_is_read_and_the_rest_of_its_output_drained() {
        // The announcement after other lines, then more than a pipe's buffer (64 KiB): the
        // child finishes only if the rest is read.
        let script = "echo starting >&2; echo ' * Running on http://127.0.0.1:41234/' >&2; \
                      head -c 200000 /dev/zero | tr '\\0' x >&2; echo done";
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let port = announced_port(
            &mut child,
            "Running on http://127.0.0.1:",
            Duration::from_secs(10),
        );
        assert_eq!(port, 41234);
        // Finishes (within 10 s: a child blocked on a full pipe would not) and succeeds.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waits") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child blocked writing what was not read");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("piped"), &mut out)
            .expect("stdout");
        assert_eq!(out, "done\n");
    }

    #[test]
    #[should_panic(expected = "exited without announcing its port; stderr:\nno port here")]
    fn a_child_that_exits_without_announcing_its_port_fails_with_what_it_wrote() {
        let mut child = Command::new("sh")
            .args(["-c", "echo 'no port here' >&2; exit 3"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        announced_port(
            &mut child,
            "Running on http://127.0.0.1:",
            Duration::from_secs(10),
        );
    }

    #[test]
    fn a_listening_port_is_told_apart_by_the_process_holding_it() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binds");
        let port = listener.local_addr().expect("address").port();
        assert!(listens_on(std::process::id(), port));
        // Another process does not hold it; a connected socket is not a listening one.
        let mut other = Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep starts");
        assert!(!listens_on(other.id(), port));
        let _ = other.kill();
        let _ = other.wait();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
        let client_port = client.local_addr().expect("address").port();
        assert!(!listens_on(std::process::id(), client_port));
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
        assert_eq!(
            listening_inode(
                "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1",
                8080
            ),
            Some(4242)
        );
    }

    #[test]
    fn ports_are_free_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(PICK_FROM.contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}
