//! Helpers shared by the test files.

// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code, unreachable_pub)]

pub mod s3;
