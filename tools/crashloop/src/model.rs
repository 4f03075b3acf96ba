//! What the harness knows: every write it sent, when it was sent, and what (if anything) came
//! back. Only a response that arrived makes a write *acknowledged*; a write whose answer never
//! came (the server was killed) is *unknown* until the next start shows whether it is there.

use std::collections::BTreeMap;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Most versions the harness lets a secret reach (the server allows 100 a day; pruning needs a
/// day's grace, so a full secret stays full). A secret with no budget left is retired.
pub const VERSIONS_PER_SECRET: u32 = 90;

/// A secret value, regenerated from its seed whenever it is needed (check, retry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(String),
    Binary(Vec<u8>),
}

impl Value {
    /// The value `seed` stands for: 1..=2048 alphanumeric characters or random bytes.
    pub fn from_seed(seed: u64, binary: bool) -> Value {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = 1 + (rng.next_u32() % 2048) as usize;
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        if binary {
            Value::Binary(bytes)
        } else {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            Value::String(bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        match self {
            Value::String(s) => *blake3::hash(s.as_bytes()).as_bytes(),
            Value::Binary(b) => {
                let mut h = blake3::Hasher::new();
                h.update(b"binary:");
                h.update(b);
                *h.finalize().as_bytes()
            }
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, no answer yet.
    InFlight,
    /// A success response arrived: the write is durable and must survive every crash.
    Acked,
    /// A 4xx error arrived: nothing was written.
    Refused,
    /// No answer (connection reset by the kill, timeout, 5xx): written or not.
    Unknown,
}

/// What a later start showed about a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Not looked at since its request ended.
    Unchecked,
    /// Seen after a restart: it must stay.
    Present,
    /// Its request was not acknowledged and a restart showed it absent: it must stay absent.
    Absent,
}

/// One version the harness tried to create.
#[derive(Clone, Debug)]
pub struct VersionRec {
    pub value_seed: u64,
    pub binary: bool,
    /// Sent with `VersionStages: [AWSPENDING]` (else the default AWSCURRENT promotion).
    pub pending: bool,
    /// Created by CreateSecret (not retried with PutSecretValue).
    pub by_create: bool,
    pub outcome: Outcome,
    pub presence: Presence,
    /// Iteration whose traffic sent it.
    pub iteration: u32,
    /// Its value was read back after a restart.
    pub value_checked: bool,
}

impl VersionRec {
    pub fn value(&self) -> Value {
        Value::from_seed(self.value_seed, self.binary)
    }

    /// Must be in the store: acknowledged, or seen there since.
    pub fn must_exist(&self) -> bool {
        self.outcome == Outcome::Acked || self.presence == Presence::Present
    }

    /// Must not be in the store: refused, or unacknowledged and seen absent since.
    pub fn must_not_exist(&self) -> bool {
        self.outcome == Outcome::Refused || self.presence == Presence::Absent
    }
}

/// A request that may have put AWSCURRENT on `version` (a default put, a promotion, or the
/// state a check observed): its send time and the time its answer (or failure) came back.
#[derive(Clone, Debug)]
pub struct CurrentMove {
    pub version: String,
    pub start: Instant,
    pub end: Option<Instant>,
    pub outcome: Outcome,
}

/// Whether the secret is scheduled for deletion, as far as acknowledged requests say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    Live,
    Deleted,
    /// A DeleteSecret or RestoreSecret was not answered.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct SecretTrack {
    pub name: String,
    pub versions: BTreeMap<String, VersionRec>,
    /// Puts still allowed (each attempt takes one, answered or not).
    pub budget: u32,
    /// AWSCURRENT moves since (and including) the last observation.
    pub current_moves: Vec<CurrentMove>,
    pub deletion: Deletion,
    /// A worker is running its DeleteSecret/RestoreSecret pair.
    pub delete_busy: bool,
    /// Took traffic since the last check.
    pub dirty: bool,
}

impl SecretTrack {
    /// The versions AWSCURRENT may sit on now: every move that answered or may have been
    /// applied, except those certainly followed by an acknowledged one (its answer came back
    /// before the later one was sent, so the store applied it first).
    pub fn current_candidates(&self) -> Vec<&str> {
        let possible = |m: &&CurrentMove| matches!(m.outcome, Outcome::Acked | Outcome::Unknown | Outcome::InFlight);
        let acked_starts: Vec<Instant> =
            self.current_moves.iter().filter(|m| m.outcome == Outcome::Acked).map(|m| m.start).collect();
        let mut out: Vec<&str> = self
            .current_moves
            .iter()
            .filter(possible)
            .filter(|m| match m.end {
                Some(end) => !acked_starts.iter().any(|s| end < *s),
                None => true,
            })
            .map(|m| m.version.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// After a check saw AWSCURRENT on `version`: that is the new starting point.
    pub fn observe_current(&mut self, version: &str, at: Instant) {
        self.current_moves.clear();
        self.current_moves.push(CurrentMove {
            version: version.to_string(),
            start: at,
            end: Some(at),
            outcome: Outcome::Acked,
        });
    }
}

/// Counters for the summary.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Acknowledged writes of every kind (creates, puts, label moves, deletes, restores).
    pub acked_writes: u64,
    pub acked_puts: u64,
    pub acked_promotions: u64,
    pub acked_delete_restore: u64,
    /// Unanswered writes a restart showed to be durable anyway.
    pub durable_unacked: u64,
    /// Unanswered writes a restart showed absent.
    pub absent_unacked: u64,
    /// 4xx answers during traffic, by error code.
    pub refused: BTreeMap<String, u64>,
    pub values_checked: u64,
    pub retries_checked: u64,
}

#[derive(Debug, Default)]
pub struct Model {
    pub secrets: Vec<SecretTrack>,
    pub counters: Counters,
}

impl Model {
    /// Secrets that still take puts.
    pub fn active(&self) -> Vec<usize> {
        (0..self.secrets.len()).filter(|i| self.secrets[*i].budget > 0).collect()
    }
}
