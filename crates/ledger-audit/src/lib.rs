//! Audit and forensics over a secret-ledger log, in one place for every caller: the CLI reading
//! a stopped data dir, and the server answering `SecretLedger.*` requests on a live one. Both
//! call the same functions and get the same typed documents; the server serializes them, the
//! CLI renders them (text, `--json`, `--html`). Everything here reads through
//! [`ledger_store::LogStore`]; nothing appends.
//!
//! - [`history`]: which secrets a `SecretId` names in a region, and their events; the
//!   ledger-wide history with filters.
//! - [`state`]: the secrets as they stood at a seq or a time, and which version held a label.
//! - [`proofs`]: Merkle roots, inclusion and consistency proofs, checkpoints, their re-checks,
//!   and the `verify` document.
//! - [`export`]: the export file and its verification with nothing but the file.
//! - [`events`]: the reads the others are built from.

mod error;
pub mod events;
pub mod export;
pub mod history;
pub mod proofs;
pub mod state;

pub use error::AuditError;
