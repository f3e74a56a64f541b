//! Helpers for the workspace's own tests (they start servers and peers on loopback).

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
