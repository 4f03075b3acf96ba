//! Projection snapshots in a [`crate::SledStore`], cut into pieces under the `S` key space.
//!
//! A snapshot of a large projection is megabytes. Stored as one sled value it would sit in a leaf
//! with its key-space neighbours, and sled rewrites a leaf with all its values whenever a
//! neighbour changes: the first layout put snapshots next to the Merkle chunk roots and rewrote
//! tens of megabytes every 1,024 events. Pieces of at most 6 KiB, under a prefix that sorts
//! before the log (whose first leaf never changes), keep every leaf small and every snapshot
//! write to its own leaves. sled splits leaves above 16 entries, so a leaf of pieces stays below
//! sled's blob threshold (a quarter of its 512 KiB segment) and never becomes a separate blob
//! file, which the writer would have to fsync.
//!
//! `S ‖ seq (8, BE) ‖ piece (4, BE)`: piece 0 is `digest (32) ‖ length (8, BE) ‖ pieces (4, BE)`,
//! pieces 1..=n hold the bincode of the projection in order. The pieces are written in batches
//! of [`PIECES_PER_BATCH`] (one batch of a whole snapshot held sled's batch lock, and so the
//! writer's next group, for hundreds of milliseconds), piece 0 last: a snapshot exists once its
//! piece 0 does, so a crash in between leaves only pieces no snapshot names, which the next
//! snapshot write removes.

use crate::error::StoreError;
use crate::layout::{META, PROJECTION_FORMAT, SNAPSHOT};
use ledger_core::chain::snapshot_digest as state_digest;

const PIECE_BYTES: usize = 6 * 1024;

fn key(seq: u64, piece: u32) -> [u8; 13] {
    let mut k = [SNAPSHOT; 13];
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(&piece.to_be_bytes());
    k
}

fn seq_prefix(seq: u64) -> [u8; 9] {
    let mut k = [SNAPSHOT; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Pieces written per `sled::Batch`.
const PIECES_PER_BATCH: usize = 64;

/// Piece 0 of a snapshot: `digest ‖ length ‖ pieces`.
fn head_piece(encoded: &[u8], pieces: usize) -> Vec<u8> {
    let n = u32::try_from(pieces).expect("a snapshot below 256 TiB");
    let mut head = Vec::with_capacity(44);
    head.extend_from_slice(&state_digest(encoded));
    head.extend_from_slice(&(encoded.len() as u64).to_be_bytes());
    head.extend_from_slice(&n.to_be_bytes());
    head
}

/// Pieces 1..=n of a snapshot with their keys.
fn data_pieces(seq: u64, encoded: &[u8]) -> impl Iterator<Item = ([u8; 13], &[u8])> {
    encoded
        .chunks(PIECE_BYTES)
        .enumerate()
        .map(move |(i, piece)| (key(seq, u32::try_from(i + 1).expect("a snapshot below 256 TiB")), piece))
}

/// The batches that write a snapshot (an encoded projection) after `seq`: the pieces, then
/// piece 0 alone. Built one at a time as they are taken, so only one batch's copy of the
/// snapshot exists at once.
pub(crate) fn batches(seq: u64, encoded: &[u8]) -> impl Iterator<Item = sled::Batch> + '_ {
    let pieces = data_pieces(seq, encoded).collect::<Vec<_>>();
    let count = pieces.len();
    let runs = (0..count.div_ceil(PIECES_PER_BATCH)).map(move |run| {
        let mut batch = sled::Batch::default();
        for (k, piece) in pieces.iter().skip(run * PIECES_PER_BATCH).take(PIECES_PER_BATCH) {
            batch.insert(k, *piece);
        }
        batch
    });
    let last = std::iter::once_with(move || {
        let mut last = sled::Batch::default();
        last.insert(&key(seq, 0), head_piece(encoded, count));
        last
    });
    runs.chain(last)
}

/// [`batches`] as one batch (a rebuild writes derived data and snapshots together).
pub(crate) fn add_to_batch(batch: &mut sled::Batch, seq: u64, encoded: &[u8]) {
    batch.insert(&key(seq, 0), head_piece(encoded, encoded.chunks(PIECE_BYTES).count()));
    for (k, piece) in data_pieces(seq, encoded) {
        batch.insert(&k, piece);
    }
}

/// Removes pieces of snapshots that have no piece 0 (a snapshot write stopped by a crash).
/// Reads one key per snapshot (see [`first_pieces`]) and only an orphan's pieces beyond it.
pub(crate) fn remove_orphans(tree: &sled::Tree) -> Result<(), StoreError> {
    for (seq, named) in first_pieces(tree)? {
        if named {
            continue;
        }
        for key in tree.scan_prefix(seq_prefix(seq)).keys() {
            let key = key?;
            // Pieces only: a key of another length is not ours to remove.
            if key.len() == 13 {
                tree.remove(key)?;
            }
        }
    }
    Ok(())
}

/// Whether the stored snapshots are of this build's encoding ([`PROJECTION_FORMAT`]).
pub(crate) fn current(tree: &sled::Tree) -> Result<bool, StoreError> {
    Ok(tree.get([META])?.is_some_and(|v| v[..] == [PROJECTION_FORMAT]))
}

/// Seqs of the stored snapshots of this build's encoding, ascending (none when they are older).
pub(crate) fn seqs(tree: &sled::Tree) -> Result<Vec<u64>, StoreError> {
    if !current(tree)? {
        return Ok(Vec::new());
    }
    Ok(first_pieces(tree)?.into_iter().filter(|&(_, named)| named).map(|(seq, _)| seq).collect())
}

/// Each seq under the `S` key space, ascending, with whether its first key is its piece 0 (a
/// snapshot) or not (an orphan's pieces: piece 0 sorts first and is written last).
///
/// Reads one key per seq, jumping from each seq to the next seq's piece 0: a scan of the `S` key
/// space would load every piece of every snapshot into sled's page cache (sled reads whole
/// leaves, values included), which held over 100 MB during a verify of 1M events.
fn first_pieces(tree: &sled::Tree) -> Result<Vec<(u64, bool)>, StoreError> {
    let mut out = Vec::new();
    let mut from = key(0, 0).to_vec();
    while let Some((found, _)) = tree.range(from.as_slice()..).next().transpose()? {
        if found.first() != Some(&SNAPSHOT) {
            break;
        }
        if found.len() != 13 {
            // Not a piece: step over this key alone.
            from = [&found[..], &[0]].concat();
            continue;
        }
        let seq = u64::from_be_bytes(found[1..9].try_into().expect("8 bytes"));
        out.push((seq, found[9..] == [0, 0, 0, 0]));
        let Some(next) = seq.checked_add(1) else { break };
        from = key(next, 0).to_vec();
    }
    Ok(out)
}

/// The snapshot after `seq` as a stream read piece by piece, never whole in memory. A missing
/// or misplaced piece fails the read (`InvalidData`); so does, when the pieces run out, a wrong
/// length or digest: the stream only ends cleanly for an intact snapshot. `Ok(Err(why))` when
/// its piece 0 is missing or malformed.
pub(crate) fn stream(tree: &sled::Tree, seq: u64) -> Result<Result<SnapshotStream, String>, StoreError> {
    let mut items = tree.scan_prefix(seq_prefix(seq));
    let Some(first) = items.next().transpose()? else { return Ok(Err("missing".into())) };
    let (k, head) = first;
    if k[..] != key(seq, 0) || head.len() != 44 {
        return Ok(Err("bad first piece".into()));
    }
    Ok(Ok(SnapshotStream {
        seq,
        items,
        digest: head[..32].try_into().expect("32 bytes"),
        len: u64::from_be_bytes(head[32..40].try_into().expect("8 bytes")),
        pieces: u32::from_be_bytes(head[40..44].try_into().expect("4 bytes")),
        next: 1,
        read: 0,
        hasher: ledger_core::chain::SnapshotDigest::new(),
        current: sled::IVec::default(),
        at: 0,
    }))
}

/// See [`stream`].
pub(crate) struct SnapshotStream {
    seq: u64,
    items: sled::Iter,
    digest: [u8; 32],
    len: u64,
    pieces: u32,
    next: u32,
    read: u64,
    hasher: ledger_core::chain::SnapshotDigest,
    current: sled::IVec,
    at: usize,
}

impl std::io::Read for SnapshotStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let damaged = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        while self.at == self.current.len() {
            match self.items.next() {
                Some(Ok((k, piece))) => {
                    if k[..] != key(self.seq, self.next) {
                        return Err(damaged("piece missing"));
                    }
                    self.next += 1;
                    // Hashed and counted whole, as it arrives.
                    self.hasher.update(&piece);
                    self.read += piece.len() as u64;
                    self.current = piece;
                    self.at = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => {
                    // `next` counts from 1; written so that a damaged `pieces` of u32::MAX cannot overflow.
                    let whole = self.next - 1 == self.pieces && self.read == self.len;
                    return match (whole, self.hasher.finish() == self.digest) {
                        (true, true) => Ok(0),
                        (false, _) => Err(damaged("pieces missing or extra")),
                        (true, false) => Err(damaged("digest mismatch")),
                    };
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The encoded projection of the snapshot after `seq`: `Ok(Err(why))` when it is damaged
/// (pieces missing, lengths or digest wrong).
pub(crate) fn read(tree: &sled::Tree, seq: u64) -> Result<Result<Vec<u8>, String>, StoreError> {
    let mut stream = match stream(tree, seq)? {
        Ok(stream) => stream,
        Err(why) => return Ok(Err(why)),
    };
    let mut encoded = Vec::with_capacity(usize::try_from(stream.len).unwrap_or(0).min(1 << 30));
    match std::io::Read::read_to_end(&mut stream, &mut encoded) {
        Ok(_) => Ok(Ok(encoded)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Err(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_name_snapshots_with_a_piece_0_only() {
        let db = sled::Config::new().temporary(true).open().expect("temporary sled");
        db.insert([META], &[PROJECTION_FORMAT]).expect("insert");
        for seq in [5, 9, u64::MAX] {
            for batch in batches(seq, &[7; 3 * PIECE_BYTES]) {
                db.apply_batch(batch).expect("batch");
            }
        }
        // An orphan (pieces without piece 0, a crash mid-write) and a key of another length.
        db.insert(key(7, 2), &[1][..]).expect("insert");
        db.insert([SNAPSHOT, 0, 0], &[1][..]).expect("insert");
        assert_eq!(seqs(&db).expect("seqs"), [5, 9, u64::MAX]);
    }

    #[test]
    fn only_the_pieces_of_orphans_are_removed() {
        let db = sled::Config::new().temporary(true).open().expect("temporary sled");
        db.insert([META], &[PROJECTION_FORMAT]).expect("insert");
        for seq in [5, 9] {
            for batch in batches(seq, &[7; 3 * PIECE_BYTES]) {
                db.apply_batch(batch).expect("batch");
            }
        }
        // Orphans before, between and after the snapshots, and keys that are not pieces.
        for (seq, piece) in [(1, 1), (7, 2), (7, 3), (8, 1), (u64::MAX, 1)] {
            db.insert(key(seq, piece), &[1][..]).expect("insert");
        }
        // Keys that are not pieces: before every seq, inside seq 7's keys, just after where seq
        // 8's piece 0 would be (stepped over on the way to the orphan's first piece), after
        // every seq.
        let strays = [
            vec![SNAPSHOT, 0, 0],
            [&seq_prefix(7)[..], &[1]].concat(),
            [&key(8, 0)[..], &[1]].concat(),
            vec![SNAPSHOT, 1],
        ];
        for stray in &strays {
            db.insert(stray.as_slice(), &[1][..]).expect("insert");
        }
        let before = db.scan_prefix([SNAPSHOT]).count();
        remove_orphans(&db).expect("remove");
        let left: Vec<sled::IVec> = db.scan_prefix([SNAPSHOT]).keys().map(|k| k.expect("key")).collect();
        assert_eq!(left.len(), before - 5, "{left:?}");
        assert!(strays.iter().all(|s| left.iter().any(|k| k[..] == s[..])));
        assert_eq!(seqs(&db).expect("seqs"), [5, 9]);
        for seq in [5, 9] {
            let read = read(&db, seq).expect("read").expect("intact");
            assert_eq!(read, vec![7; 3 * PIECE_BYTES]);
        }
    }
}
