//! The pure, synchronous core of secret-ledger.
//!
//! Every Secrets Manager write is *decided* here into immutable [`Event`]s, and every event is
//! *evolved* into the [`State`] projection. Nothing in this crate does I/O, reads a clock or
//! touches an RNG it was not handed: time, randomness and data keys come in through [`Ctx`] and
//! [`KeyLookup`], and everything they decide is stored in the events, so replay is deterministic.
//!
//! ```
//! use ledger_core::{decide, evolve, Command, CreateSecret, Ctx, Scope, SecretValue, State};
//! use ledger_core::crypto::DataKeys;
//! use rand_core::OsRng;
//!
//! let scope = Scope::new("us-east-1", "000000000000");
//! let mut state = State::default();
//! let mut keys = DataKeys::default();
//! let cmd = Command::CreateSecret(CreateSecret {
//!     name: "db/prod".into(),
//!     client_request_token: Some("a".repeat(32)),
//!     value: Some(SecretValue::string("hunter2")),
//!     ..CreateSecret::default()
//! });
//! let mut rng = OsRng;
//! let mut ctx = Ctx { scope: &scope, now_ms: 1_700_000_000_000, rng: &mut rng };
//! let decision = decide(&state, &keys, &cmd, &mut ctx).unwrap();
//! if let Some((uid, key)) = decision.new_data_key { keys.insert(uid, key); }
//! for (i, event) in decision.events.iter().enumerate() {
//!     evolve(&mut state, i as u64 + 1, ctx.now_ms, event).unwrap();
//! }
//! assert_eq!(state.len(), 1);
//! ```

pub mod chain;
pub mod checkpoint;
pub mod codec;
pub mod crypto;
mod decide;
mod error;
mod event;
mod ids;
pub mod limits;
pub mod merkle;
pub mod names;
pub mod password;
pub mod policy;
pub mod query;
pub mod rotation;
mod state;
pub mod time;
pub mod validate;
mod value;

pub use crypto::KeyLookup;
pub use decide::{
    decide, CancelRotateSecret, Command, CreateSecret, Ctx, Decision, DeleteResourcePolicy, DeleteSecret,
    PutResourcePolicy, PutSecretValue, Reply, RestoreSecret, RotateSecret, TagResource, UntagResource, UpdateSecret,
    UpdateSecretVersionStage,
};
pub use error::{ErrorCode, RuleViolation, SmError};
pub use event::{Event, Record, RotationRules, SealedValue, Tag};
pub use ids::{ChainHash, Scope, SecretUid};
pub use state::{evolve, SecretState, State, StateSnapshot, VersionState};
pub use value::{SecretValue, ValueKind};

/// Labels with a meaning of their own in Secrets Manager.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The label the previous `AWSCURRENT` version receives.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The label of a version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
