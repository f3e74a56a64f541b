//! Black-box tests of the codec: round trips, framing, errors, schema evolution and the HTTP
//! registry client. One test binary, to keep link time down.

mod compatibility;
mod errors;
mod fixtures;
mod http_registry;
#[path = "../../../mantis-connectors/tests/common/pki.rs"]
#[allow(dead_code, unreachable_pub)]
mod pki;
mod round_trip;
