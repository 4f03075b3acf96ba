//! Key spaces of the one sled tree of a [`crate::SledStore`]. One tree, so one `sled::Batch` makes every request atomic
//! across the log, the head, the key store and the derived indexes. See `docs/FORMAT.md`.

/// `e ‖ seq (8, BE)` → record bytes. The log: append-only, never rewritten.
pub const EVENT: u8 = b'e';
/// `h` → `seq (8, BE) ‖ hash (32)`: the head of the log.
pub const HEAD: u8 = b'h';
/// `k ‖ uid (8, BE)` → wrapped data key. Mutable: deleted when a secret is purged.
pub const KEY: u8 = b'k';
/// `S ‖ seq (8, BE) ‖ piece (4, BE)`: projection snapshot after `seq`, in pieces; see
/// `snapshots.rs`. Derived. (`S` sorts before the log, away from key spaces that change.)
pub const SNAPSHOT: u8 = b'S';
/// The first layout's single-value snapshots, only ever removed (by `rebuild`).
pub const OLD_SNAPSHOT: u8 = b's';
/// `i ‖ uid (8, BE) ‖ seq (8, BE)` → empty, or a run length `n (4, BE)`: the records
/// `seq .. seq + n` all belong to the secret (one entry per request, not per event). The
/// per-secret index for history and point-in-time reads. Derived.
pub const INDEX: u8 = b'i';
/// `n ‖ name ‖ 0x00 ‖ uid (8, BE)` → region: every secret ever created under a name, for
/// history and point-in-time lookups of purged secrets. Derived.
pub const NAME: u8 = b'n';
/// `r ‖ chunk (8, BE)` → the Merkle root (32) of the leaves from `chunk · MERKLE_CHUNK` up to
/// (not including) `(chunk + 1) · MERKLE_CHUNK`, written with the group that completes the
/// chunk. Derived: proofs and checkpoints combine these instead of hashing every leaf.
pub const MERKLE: u8 = b'r';
/// Leaves per stored Merkle chunk root (a power of two).
pub const MERKLE_CHUNK: u64 = 1024;
/// `m` → the encoding of the projection snapshots (1 byte): [`PROJECTION_FORMAT`] when the data
/// dir was created or last upgraded. Snapshots of an older encoding are neither read nor
/// checked; opening the ledger rebuilds them.
pub const META: u8 = b'm';
/// `K` → the id of the master key the log knows wraps the data keys (u32 BE; not secret), for
/// export headers: set when a data dir is created, and in the batch of every `MasterKeyRotated`.
/// An open under a newer key (the key file says the keys moved to it) records the rotation.
/// The keys themselves live in the data-key file, never in sled.
pub const MASTER_KEY_ID: u8 = b'K';
/// The encoding of the projection this build writes: 1 until rotation, resource policies and
/// access dates joined the projection, 2 since.
pub const PROJECTION_FORMAT: u8 = 2;

pub fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [EVENT; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn key_key(uid: u64) -> [u8; 9] {
    let mut k = [KEY; 9];
    k[1..].copy_from_slice(&uid.to_be_bytes());
    k
}

pub fn index_key(uid: u64, seq: u64) -> [u8; 17] {
    let mut k = [INDEX; 17];
    k[1..9].copy_from_slice(&uid.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Reads the big-endian u64 after a one-byte prefix.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

pub fn name_key(name: &str, uid: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 10);
    k.push(NAME);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

/// The prefix of every `name_key` of `name`.
pub fn name_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 2);
    k.push(NAME);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

pub fn merkle_key(chunk: u64) -> [u8; 9] {
    let mut k = [MERKLE; 9];
    k[1..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// How many records an index entry covers: empty means one (the first layout), else a u32 BE.
pub fn index_run_len(value: &[u8]) -> u64 {
    match <[u8; 4]>::try_from(value) {
        Ok(n) => u64::from(u32::from_be_bytes(n)).max(1),
        Err(_) => 1,
    }
}

/// The prefix of every index key of secret `uid`.
pub fn index_prefix(uid: u64) -> [u8; 9] {
    let mut p = [INDEX; 9];
    p[1..].copy_from_slice(&uid.to_be_bytes());
    p
}
