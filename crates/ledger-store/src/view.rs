//! What the writer shares with the readers: the durable projection and keys, the store, and why
//! writes stopped if they did.

use std::sync::{Arc, RwLock};

use ledger_core::crypto::DataKeys;
use ledger_core::{ChainHash, State};

use crate::store::LogStore;

/// What the readers see: only durable state.
pub(crate) struct ReadView {
    pub state: State,
    pub keys: DataKeys,
    pub head_seq: u64,
    pub head_hash: ChainHash,
}

pub(crate) struct Shared {
    pub store: Arc<dyn LogStore>,
    pub read: RwLock<ReadView>,
    /// Why writes stopped (a failed group commit), if they did.
    pub stopped: std::sync::Mutex<Option<String>>,
}
