//! Storage for secret-ledger: the ledger over a [`LogStore`], with sled ([`SledStore`]) as the
//! embedded default.
//!
//! [`Ledger`] owns one sled database. One writer thread decides requests against its own copy of
//! the projection, appends the events of a whole group of requests in one atomic batch, makes
//! them durable (sled `flush` plus `fdatasync` of sled's data file) and only then publishes them
//! to the read view and answers the callers (group commit). Reads never see an event that is not
//! yet durable and are never blocked by a flush.
//!
//! ```no_run
//! use ledger_core::{Command, CreateSecret, Scope, SecretValue};
//! use ledger_store::{Ledger, LedgerOptions, RequestMeta};
//! use ledger_core::crypto::MasterKey;
//!
//! let ledger = Ledger::open("./data".as_ref(), MasterKey::from_bytes(1, [7; 32]), LedgerOptions::default())?;
//! let meta = RequestMeta::local(Scope::new("us-east-1", "000000000000"));
//! let reply = ledger.execute(Command::CreateSecret(CreateSecret {
//!     name: "db/prod".into(),
//!     client_request_token: Some(uuid::Uuid::new_v4().to_string()),
//!     value: Some(SecretValue::string("hunter2")),
//!     ..CreateSecret::default()
//! }), &meta)?;
//! # Ok::<(), ledger_store::StoreError>(())
//! ```

mod derive;
mod error;
pub mod faults;
pub mod keyfile;
pub mod layout;
mod ledger;
pub mod master_key;
mod migrate;
mod options;
mod rebuild;
pub mod rekey;
mod replay;
mod sealed_cache;
mod sled_store;
mod snapshots;
mod store;
mod verify;
mod view;
pub mod watermark;
mod writer;

pub use error::StoreError;
pub use layout::{MERKLE_CHUNK, PROJECTION_FORMAT};
pub use ledger::{BatchValues, Ledger, SecretValueOut};
pub use migrate::copy_log;
pub use options::{Clock, CommitObserver, LedgerOptions, ManualClock, RequestMeta, SystemClock};
pub use rebuild::rebuild_derived;
pub use replay::state_at;
pub use sled_store::{SledOptions, SledStore};
pub use store::{Appended, Derived, Group, Head, IndexRun, LogStore, RecordBytes, Records};
pub use verify::{
    verify_dir, verify_store, verify_store_upto, Checker, FailureReason, Verifier, VerifyFailure, VerifyReport,
};
