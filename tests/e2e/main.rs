//! End-to-end tests of the ledger against real sled stores in temp dirs.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod access_dates;
mod audit;
mod errors;
mod faults;
mod filters;
mod fixture;
mod fuzz_export;
mod kat;
mod model;
mod old_format;
mod pg;
mod rekey;
mod rotation;
mod shredding;
mod sled_files;
mod traces;
mod verify;
