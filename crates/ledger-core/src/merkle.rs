//! A Merkle tree over the records' chain hashes, in the shape of RFC 9162 §2.1 (Certificate
//! Transparency v2; the same tree as RFC 6962 §2.1), with blake3 in place of SHA-256.
//!
//! # Definition
//!
//! The leaves are the records in log order: leaf index `m` (0-based) is the record with
//! `seq = m + 1`, and its leaf bytes are that record's 32-byte [`ChainHash`]. For a list
//! `D[n] = d0 … d(n-1)` of leaf bytes the Merkle Tree Hash is
//!
//! ```text
//! MTH({})       = blake3("")                               (the empty string)
//! MTH({d0})     = blake3(0x00 ‖ d0)                        (leaf hash)
//! MTH(D[n])     = blake3(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) (node hash), n > 1,
//!                 k = the largest power of two smaller than n
//! ```
//!
//! Domain separation between leaves and interior nodes is by the one-byte prefixes `0x00`
//! (leaf) and `0x01` (node), exactly as RFC 9162 §2.1.1: a leaf hash can never be taken for a
//! node hash, or the other way round, without a blake3 collision. Plain (unkeyed) blake3 is
//! used, so any blake3 implementation can check a root or a proof.
//!
//! Inclusion proofs ([`inclusion_proof`], [`verify_inclusion`]) follow RFC 9162 §2.1.3 and
//! consistency proofs ([`consistency_proof`], [`verify_consistency`]) §2.1.4, including the
//! verification algorithms of §2.1.3.2 and §2.1.4.2 step by step.
//!
//! A proof only means something against a root the verifier already trusts *for that size*
//! (e.g. from a signed [`Checkpoint`](crate::checkpoint::Checkpoint)); always pass the size and
//! root together as they were published.
//!
//! Everything here is pure and synchronous. Proof generation reads leaves through
//! [`LeafSource`], so a store can serve them from disk without loading the whole log.

use std::convert::Infallible;

use crate::ids::ChainHash;

/// A 32-byte Merkle hash (leaf hash, node hash or root).
pub type Hash = [u8; 32];

/// Prefix of a leaf hash input (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash input (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// MTH of the empty tree: blake3 of the empty string.
pub fn empty_root() -> Hash {
    *blake3::hash(b"").as_bytes()
}

/// Leaf hash of one record: `blake3(0x00 ‖ chain_hash)`.
pub fn leaf_hash(chain_hash: &ChainHash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF_PREFIX]);
    hasher.update(&chain_hash.0);
    *hasher.finalize().as_bytes()
}

/// Interior node hash: `blake3(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): where RFC 9162 splits a tree.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Streaming computation of the Merkle root with O(log n) memory.
///
/// It keeps the roots of the perfect subtrees that make up the leaves pushed so far (a "compact
/// range"): one per set bit of `len`, largest (leftmost) first. Pushing merges equal-height
/// subtrees like a binary counter; [`root`](Self::root) folds them right to left, which is
/// exactly the RFC 9162 shape (the left subtree always holds the largest power of two).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleBuilder {
    len: u64,
    stack: Vec<Hash>,
}

impl MerkleBuilder {
    /// An empty tree.
    pub fn new() -> MerkleBuilder {
        MerkleBuilder::default()
    }

    /// Appends one leaf, given as its leaf hash (see [`leaf_hash`]).
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut n = self.len;
        while n & 1 == 1 {
            let left = self.stack.pop().expect("one stacked subtree per set bit of len");
            hash = node_hash(&left, &hash);
            n >>= 1;
        }
        self.stack.push(hash);
        self.len += 1;
    }

    /// Appends one record by its chain hash (hashes it with [`leaf_hash`] first).
    pub fn push_chain_hash(&mut self, chain_hash: &ChainHash) {
        self.push(leaf_hash(chain_hash));
    }

    /// The Merkle root of the leaves pushed so far ([`empty_root`] when none).
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        let Some(last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(*last, |right, left| node_hash(left, &right))
    }

    /// Number of leaves pushed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no leaf was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Leaf hashes by 0-based index (index `m` is the record with `seq = m + 1`).
///
/// Implemented for slices of leaf hashes (`[Hash]`) and of chain hashes (`[ChainHash]`, hashed
/// on the fly); a store can implement it over its on-disk log.
pub trait LeafSource {
    /// Why a leaf could not be read (use [`Infallible`] for in-memory sources).
    type Error;

    /// Number of leaves available; proofs may be asked for any tree size up to this.
    fn leaf_count(&self) -> u64;

    /// The leaf hash (`blake3(0x00 ‖ chain hash)`) at `index < leaf_count()`.
    fn leaf_hash(&self, index: u64) -> Result<Hash, Self::Error>;

    /// MTH of the leaves `[start, end)` if the source knows a faster way than hashing every
    /// leaf (say, stored roots of aligned subtrees); `None` lets the caller stream the leaves.
    fn subtree_root(&self, _start: u64, _end: u64) -> Result<Option<Hash>, Self::Error> {
        Ok(None)
    }
}

impl LeafSource for [Hash] {
    type Error = Infallible;

    fn leaf_count(&self) -> u64 {
        self.len() as u64
    }

    fn leaf_hash(&self, index: u64) -> Result<Hash, Infallible> {
        Ok(self[usize::try_from(index).unwrap_or(usize::MAX)])
    }
}

impl LeafSource for [ChainHash] {
    type Error = Infallible;

    fn leaf_count(&self) -> u64 {
        self.len() as u64
    }

    fn leaf_hash(&self, index: u64) -> Result<Hash, Infallible> {
        Ok(leaf_hash(&self[usize::try_from(index).unwrap_or(usize::MAX)]))
    }
}

/// Why a proof or root could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError<E> {
    /// An inclusion proof needs `index < size`.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The tree size asked for is larger than the leaves the source has.
    #[error("tree size {size} exceeds the {available} leaves available")]
    SizeTooLarge { size: u64, available: u64 },
    /// A consistency proof needs `old_size <= new_size`.
    #[error("consistency proof needs old size {old_size} <= new size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    /// The leaf source failed.
    #[error("leaf source failed: {0}")]
    Source(E),
}

fn check_size<L: LeafSource + ?Sized>(leaves: &L, size: u64) -> Result<(), MerkleError<L::Error>> {
    let available = leaves.leaf_count();
    if size > available {
        return Err(MerkleError::SizeTooLarge { size, available });
    }
    Ok(())
}

/// MTH of the leaves `[start, end)`, streamed through a [`MerkleBuilder`]: O(end - start) time,
/// O(log n) memory.
fn range_root<L: LeafSource + ?Sized>(leaves: &L, start: u64, end: u64) -> Result<Hash, MerkleError<L::Error>> {
    if let Some(root) = leaves.subtree_root(start, end).map_err(MerkleError::Source)? {
        return Ok(root);
    }
    let mut builder = MerkleBuilder::new();
    for index in start..end {
        builder.push(leaves.leaf_hash(index).map_err(MerkleError::Source)?);
    }
    Ok(builder.root())
}

/// The Merkle root of the first `size` leaves of `leaves` (O(size) time, O(log size) memory).
pub fn tree_root<L: LeafSource + ?Sized>(leaves: &L, size: u64) -> Result<Hash, MerkleError<L::Error>> {
    check_size(leaves, size)?;
    range_root(leaves, 0, size)
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1 `PATH(m, D[n])`) of leaf `index`
/// (0-based: the record with `seq = index + 1`) in the tree of the first `size` leaves.
///
/// The path is ordered from the leaf's sibling up to the root's child. Subtree hashes are
/// recomputed from the leaves, so one proof costs O(size) leaf reads and hashes (fine for now;
/// a store can later cache perfect-subtree roots to make it O(log² size)).
pub fn inclusion_proof<L: LeafSource + ?Sized>(
    leaves: &L,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleError<L::Error>> {
    check_size(leaves, size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Walk down from the root; each level contributes the hash of the subtree not containing
    // `index`. PATH lists them deepest first, so reverse at the end.
    let mut path = Vec::new();
    let (mut start, mut end) = (0, size);
    while end - start > 1 {
        let k = split_point(end - start);
        if index < start + k {
            path.push(range_root(leaves, start + k, end)?);
            end = start + k;
        } else {
            path.push(range_root(leaves, start, start + k)?);
            start += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.3.2: does `proof` show that `leaf_hash` is leaf `index` of the tree of `size`
/// leaves with root `root`?
pub fn verify_inclusion(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    // 1.
    if index >= size {
        return false;
    }
    // 2., 3.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    // 4.
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    snode == 0 && r == *root
}

/// The consistency proof (RFC 9162 §2.1.4.1 `PROOF(m, D[n])`, built from `SUBPROOF`) between the
/// tree of the first `old_size` leaves and the tree of the first `new_size` leaves.
///
/// It is empty when `old_size == 0` or `old_size == new_size` (nothing to prove beyond the
/// roots themselves; see [`verify_consistency`]). Costs O(new_size) leaf reads, like
/// [`inclusion_proof`].
pub fn consistency_proof<L: LeafSource + ?Sized>(
    leaves: &L,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, MerkleError<L::Error>> {
    check_size(leaves, new_size)?;
    if old_size > new_size {
        return Err(MerkleError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b), unrolled: walk down collecting sibling subtree hashes
    // (they come out root-first and the proof lists them deepest-first).
    let mut siblings = Vec::new();
    let (mut m, mut start, mut end, mut whole) = (old_size, 0, new_size, true);
    while m != end - start {
        let k = split_point(end - start);
        if m <= k {
            siblings.push(range_root(leaves, start + k, end)?);
            end = start + k;
        } else {
            siblings.push(range_root(leaves, start, start + k)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    let mut proof = Vec::with_capacity(siblings.len() + 1);
    if !whole {
        // SUBPROOF(m, D[m], false) = {MTH(D[m])}: a subtree the verifier cannot know.
        proof.push(range_root(leaves, start, end)?);
    }
    proof.extend(siblings.into_iter().rev());
    Ok(proof)
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old_size` leaves with root `old_root`
/// is a prefix of the tree of `new_size` leaves with root `new_root`?
///
/// Edge cases outside the RFC algorithm (which needs `0 < old_size < new_size`):
/// `old_size == new_size` holds iff the proof is empty and the roots are equal; `old_size == 0`
/// holds iff the proof is empty and `old_root` is [`empty_root`].
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    // 1.
    if proof.is_empty() {
        return false;
    }
    // 2.: when old_size is a power of two the old root is itself a node of the new tree, and
    // the proof omits it.
    let (first, rest) = if old_size.is_power_of_two() { (old_root, proof) } else { (&proof[0], &proof[1..]) };
    // 3.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    let (mut fr, mut sr) = (*first, *first);
    // 6.
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 7.
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests;
