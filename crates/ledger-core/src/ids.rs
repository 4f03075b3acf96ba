//! Identifier and hash newtypes.

use serde::{Deserialize, Serialize};

/// The ledger's own identity for a secret: assigned in creation order, never reused, stable
/// across renames of nothing (names are immutable) and across re-creation of a purged name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretUid(pub u64);

impl SecretUid {
    /// Never a secret's (uids start at 1): the uid of events about the ledger as a whole.
    pub const LEDGER: SecretUid = SecretUid(0);
}

/// A blake3 chain hash. The hash "before" seq 1 is all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

/// Where a request runs: secrets are regional and owned by one account, as in AWS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn new(region: &str, account: &str) -> Scope {
        Scope { partition: "aws".to_string(), region: region.to_string(), account: account.to_string() }
    }
}
