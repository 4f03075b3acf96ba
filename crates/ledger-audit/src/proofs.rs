//! Merkle proofs over a stored log (roots, inclusion and consistency proofs, checkpoints), their
//! documents and their re-checks, and the `verify` document.

use ledger_core::checkpoint::Checkpoint;
use ledger_core::merkle::{self, LeafSource};
use ledger_core::ChainHash;
use ledger_store::{FailureReason, LogStore, StoreError, VerifyFailure, VerifyReport, MERKLE_CHUNK};
use serde::{Deserialize, Serialize};

use crate::error::AuditError;

/// Leaf hashes read from the log: leaf `m` is the record at seq `m + 1`.
pub struct LogLeaves<'a> {
    pub store: &'a dyn LogStore,
    pub size: u64,
}

impl LeafSource for LogLeaves<'_> {
    type Error = StoreError;

    fn leaf_count(&self) -> u64 {
        self.size
    }

    fn leaf_hash(&self, index: u64) -> Result<[u8; 32], StoreError> {
        let seq = index + 1;
        Ok(merkle::leaf_hash(&self.store.record_hash(seq)?))
    }

    /// Ranges of at least two chunks are combined from the stored chunk roots (`r`), so a
    /// proof or root costs O(n / 1024 + 1024 log n) reads instead of O(n).
    fn subtree_root(&self, start: u64, end: u64) -> Result<Option<[u8; 32]>, StoreError> {
        if end - start < 2 * MERKLE_CHUNK {
            return Ok(None);
        }
        self.mth(start, end).map(Some)
    }
}

impl LogLeaves<'_> {
    /// MTH of `[start, end)` per RFC 9162, using stored chunk roots for aligned perfect
    /// subtrees and the leaves for the rest.
    fn mth(&self, start: u64, end: u64) -> Result<[u8; 32], StoreError> {
        let n = end - start;
        let chunk = MERKLE_CHUNK;
        if n.is_power_of_two() && n >= chunk && start.is_multiple_of(n) {
            if let Some(root) = self.chunk_roots(start / chunk, end / chunk)? {
                return Ok(root);
            }
        }
        if n <= chunk {
            let mut builder = merkle::MerkleBuilder::new();
            for index in start..end {
                builder.push(self.leaf_hash(index)?);
            }
            return Ok(builder.root());
        }
        let k = merkle::split_point(n);
        Ok(merkle::node_hash(&self.mth(start, start + k)?, &self.mth(start + k, end)?))
    }

    /// The perfect tree over chunk roots `[first, last)`, or `None` if one is not stored.
    fn chunk_roots(&self, first: u64, last: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let mut builder = merkle::MerkleBuilder::new();
        for root in self.store.merkle_roots(first, last)? {
            // A chunk root is the root of a perfect subtree: pushed as is, the builder combines
            // 2^j of them exactly as the tree above them does.
            builder.push(root);
        }
        Ok((builder.len() == last - first).then(|| builder.root()))
    }
}

/// An inclusion proof for the record at `seq` in the tree of the first `size` records.
pub fn inclusion_proof(store: &dyn LogStore, seq: u64, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
    let leaves = LogLeaves { store, size };
    merkle::inclusion_proof(&leaves, seq.saturating_sub(1), size).map_err(merkle_error)
}

/// A consistency proof between the trees of the first `old_size` and `new_size` records.
pub fn consistency_proof(store: &dyn LogStore, old_size: u64, new_size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
    let leaves = LogLeaves { store, size: new_size };
    merkle::consistency_proof(&leaves, old_size, new_size).map_err(merkle_error)
}

fn merkle_error(e: merkle::MerkleError<StoreError>) -> StoreError {
    match e {
        merkle::MerkleError::Source(inner) => inner,
        other => StoreError::Engine(other.to_string()),
    }
}

/// Merkle root over the first `size` records.
pub fn merkle_root(store: &dyn LogStore, size: u64) -> Result<[u8; 32], StoreError> {
    let (head, _) = store.head()?;
    if size > head {
        return Err(StoreError::Corrupt { seq: head + 1, reason: "log shorter than the checkpoint".into() });
    }
    merkle::tree_root(&LogLeaves { store, size }, size).map_err(merkle_error)
}

/// A checkpoint of the log's current head.
pub fn checkpoint(store: &dyn LogStore, origin: &str, time_ms: i64) -> Result<Checkpoint, StoreError> {
    checkpoint_upto(store, store.head()?, origin, time_ms)
}

/// A checkpoint of the first `head.0` records, whose last hash is `head.1`.
pub fn checkpoint_upto(
    store: &dyn LogStore,
    head: (u64, ledger_core::ChainHash),
    origin: &str,
    time_ms: i64,
) -> Result<Checkpoint, StoreError> {
    let (size, head_hash) = head;
    let merkle_root = merkle_root(store, size)?;
    Ok(Checkpoint { origin: origin.to_string(), size, head_hash, merkle_root, time_ms, signature: None })
}

/// The chain hash of the record at `size` (the genesis hash for 0): a checkpoint's head.
fn head_at(store: &dyn LogStore, size: u64) -> Result<ChainHash, StoreError> {
    if size == 0 {
        Ok(ChainHash::GENESIS)
    } else {
        store.record_hash(size)
    }
}

/// An inclusion proof of the last leaf of the tree of `size` records (whose leaf is the head
/// hash): with it a checkpoint's head hash is checked against its root alone.
fn head_proof(store: &dyn LogStore, size: u64) -> Result<Vec<Hash>, StoreError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    Ok(inclusion_proof(store, size, size)?.into_iter().map(Hash).collect())
}

/// A 32-byte hash, hex in documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash(pub [u8; 32]);

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(|_| serde::de::Error::custom("not a 32-byte hex hash"))?;
        Ok(Hash(out))
    }
}

fn hashes(proof: &[Hash]) -> Vec<[u8; 32]> {
    proof.iter().map(|h| h.0).collect()
}

/// `prove --seq N`: an inclusion proof in the tree of the first `tree_size` records, with that
/// tree's head hash and the proof that the head hash is its last leaf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InclusionDoc {
    /// Always `inclusion`.
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    pub leaf_index: u64,
    pub record_hash: Hash,
    pub tree_size: u64,
    pub head_hash: Hash,
    pub head_proof: Vec<Hash>,
    pub merkle_root: Hash,
    pub proof: Vec<Hash>,
    /// What the producer found; a receiver re-checks ([`InclusionDoc::check`]).
    pub verified: bool,
    pub seconds: f64,
}

/// `prove --from-checkpoint A --to-checkpoint B`: a consistency proof between two checkpoints,
/// with the log's head hashes at both sizes and their proofs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyDoc {
    /// Always `consistency`.
    #[serde(rename = "type")]
    pub kind: String,
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: Hash,
    pub new_root: Hash,
    pub old_head_hash: Hash,
    pub new_head_hash: Hash,
    pub old_head_proof: Vec<Hash>,
    pub new_head_proof: Vec<Hash>,
    pub proof: Vec<Hash>,
    pub verified: bool,
}

/// An inclusion proof of the record at `seq` in the tree of the first `size` records.
pub fn inclusion(store: &dyn LogStore, size: u64, seq: u64) -> Result<InclusionDoc, AuditError> {
    let started = std::time::Instant::now();
    if seq == 0 || seq > size {
        return Err(AuditError::Invalid(format!("seq {seq} is not in the log (1..={size})")));
    }
    let proof = inclusion_proof(store, seq, size)?;
    let root = merkle_root(store, size)?;
    let record_hash = store.record_hash(seq)?;
    let ok = merkle::verify_inclusion(&merkle::leaf_hash(&record_hash), seq - 1, size, &proof, &root);
    Ok(InclusionDoc {
        kind: "inclusion".into(),
        seq,
        leaf_index: seq - 1,
        record_hash: Hash(record_hash.0),
        tree_size: size,
        head_hash: Hash(head_at(store, size)?.0),
        head_proof: head_proof(store, size)?,
        merkle_root: Hash(root),
        proof: proof.into_iter().map(Hash).collect(),
        verified: ok,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A consistency proof between checkpoints `a` and `b` of a log of `head` records.
pub fn consistency(
    store: &dyn LogStore,
    head: u64,
    a: &Checkpoint,
    b: &Checkpoint,
) -> Result<ConsistencyDoc, AuditError> {
    if a.size > b.size {
        return Err(AuditError::Invalid(format!(
            "the first checkpoint ({}) is larger than the second ({})",
            a.size, b.size
        )));
    }
    if b.size > head {
        return Err(AuditError::Invalid(format!(
            "the second checkpoint covers {} records; the log has {head}",
            b.size
        )));
    }
    let proof = consistency_proof(store, a.size, b.size)?;
    // The roots must be consistent and each checkpoint's head hash the log's at its size: a
    // checkpoint with a forged head hash does not verify.
    let (old_head, new_head) = (head_at(store, a.size)?, head_at(store, b.size)?);
    let ok = merkle::verify_consistency(a.size, b.size, &a.merkle_root, &b.merkle_root, &proof)
        && old_head == a.head_hash
        && new_head == b.head_hash;
    Ok(ConsistencyDoc {
        kind: "consistency".into(),
        old_size: a.size,
        new_size: b.size,
        old_root: Hash(a.merkle_root),
        new_root: Hash(b.merkle_root),
        old_head_hash: Hash(old_head.0),
        new_head_hash: Hash(new_head.0),
        old_head_proof: head_proof(store, a.size)?,
        new_head_proof: head_proof(store, b.size)?,
        proof: proof.into_iter().map(Hash).collect(),
        verified: ok,
    })
}

/// Whether `proof` proves `c.head_hash` the last leaf of `c`'s tree.
fn head_proven(proof: &[Hash], c: &Checkpoint) -> bool {
    if c.size == 0 {
        return c.head_hash == ChainHash::GENESIS;
    }
    merkle::verify_inclusion(&merkle::leaf_hash(&c.head_hash), c.size - 1, c.size, &hashes(proof), &c.merkle_root)
}

impl InclusionDoc {
    /// Re-checks the proof (its `verified` is ignored): it takes the record hash at `seq` to
    /// `merkle_root` for `tree_size`.
    pub fn check(&self) -> bool {
        self.check_to(&self.merkle_root.0)
    }

    fn check_to(&self, root: &[u8; 32]) -> bool {
        let leaf = merkle::leaf_hash(&ChainHash(self.record_hash.0));
        self.seq >= 1 && merkle::verify_inclusion(&leaf, self.seq - 1, self.tree_size, &hashes(&self.proof), root)
    }

    /// Re-checks the proof against a kept checkpoint: it leads to the checkpoint's root at its
    /// size, and the checkpoint's head hash is that tree's last leaf.
    pub fn check_against(&self, c: &Checkpoint) -> bool {
        self.tree_size == c.size && head_proven(&self.head_proof, c) && self.check_to(&c.merkle_root)
    }
}

impl ConsistencyDoc {
    /// Re-checks the proof against the two checkpoints the caller keeps: the roots are
    /// consistent, and each checkpoint's head hash is the last leaf of its tree (so a checkpoint
    /// with a forged head hash fails, with nothing but the checkpoints to go on).
    pub fn check(&self, a: &Checkpoint, b: &Checkpoint) -> bool {
        merkle::verify_consistency(a.size, b.size, &a.merkle_root, &b.merkle_root, &hashes(&self.proof))
            && head_proven(&self.old_head_proof, a)
            && head_proven(&self.new_head_proof, b)
    }
}

/// A verified log against a checkpoint kept elsewhere: the log must extend it.
pub fn check_against(
    store: &dyn LogStore,
    report: &VerifyReport,
    t: &Checkpoint,
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    if t.size > report.events {
        return Ok(Err(VerifyFailure {
            seq: report.events + 1,
            reason: FailureReason::Truncated { expected: t.size, found: report.events },
        }));
    }
    let root = merkle_root(store, t.size)?;
    let head = head_at(store, t.size)?;
    if root != t.merkle_root || head != t.head_hash {
        return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
    }
    Ok(Ok(report.clone()))
}

/// The `verify` document: the report of a log that verified (`ok: true`), or its first failure
/// (`ok: false`, `seq`, `reason`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyDoc {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_checked: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// The first bad record (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kept checkpoint's signature, as judged against the trusted keys (CLI only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<serde_json::Value>,
    /// The master-key rotations the log records, oldest first (verified logs only; absent from
    /// the documents of servers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_rotations: Option<Vec<KeyRotationDoc>>,
}

/// A `MasterKeyRotated` event in the `verify` document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotationDoc {
    pub seq: u64,
    pub from_key_id: u32,
    pub to_key_id: u32,
}

impl VerifyDoc {
    pub fn new(outcome: &Result<VerifyReport, VerifyFailure>, seconds: f64) -> VerifyDoc {
        match outcome {
            Ok(report) => VerifyDoc {
                ok: true,
                events: Some(report.events),
                head_hash: Some(report.head_hash.to_hex()),
                merkle_root: Some(hex::encode(report.merkle_root)),
                snapshots_checked: Some(report.snapshots_checked),
                secrets: Some(report.secrets as u64),
                seconds: Some(seconds),
                events_per_second: Some(report.events as f64 / seconds.max(1e-9)),
                master_key_rotations: Some(
                    report
                        .master_key_rotations
                        .iter()
                        .map(|&(seq, from_key_id, to_key_id)| KeyRotationDoc { seq, from_key_id, to_key_id })
                        .collect(),
                ),
                ..VerifyDoc::default()
            },
            Err(failure) => VerifyDoc {
                ok: false,
                seq: Some(failure.seq),
                reason: Some(failure.reason.to_string()),
                ..VerifyDoc::default()
            },
        }
    }
}
