//! Integration tests: the server runs in-process on `127.0.0.1:0` with a temporary data dir and
//! is driven over real HTTP by the AWS SDK for Rust (`sdk`, `regions`) and by hand-made requests
//! (`raw`, `audit`), which also check the exact JSON shapes and that refused requests append
//! nothing.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod access;
mod audit;
mod common;
mod health;
mod hostile;
mod idempotency;
mod lambda;
mod metrics;
mod raw;
mod regions;
mod rotation;
mod sdk;
mod surface;
mod tls;
mod trail;
