//! The acknowledged-head watermark of a [`crate::SledStore`]: a 40-byte file `ledger.head` beside sled's files holding the
//! seq and hash of the newest durable group, rewritten in place after every group commit.
//!
//! sled's recovery stops at the first damaged spot of its log and quietly drops everything
//! after it, which leaves a shorter log that is still perfectly consistent. The watermark lives
//! outside sled, so on open a log that ends before an acknowledged head is refused as damaged
//! instead of being served. It is written after the group's `fdatasync` and not synced itself:
//! after a power loss it may lag the log (never lead it), which is harmless.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ledger_core::ChainHash;

pub const FILE_NAME: &str = "ledger.head";

pub(crate) struct Watermark {
    file: File,
}

impl Watermark {
    pub(crate) fn open(dir: &Path) -> std::io::Result<Watermark> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE_NAME))?;
        Ok(Watermark { file })
    }

    pub(crate) fn write(&self, seq: u64, hash: &ChainHash) -> std::io::Result<()> {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&seq.to_be_bytes());
        bytes[8..].copy_from_slice(&hash.0);
        self.file.write_all_at(&bytes, 0)
    }
}

/// The watermark of a data dir: `None` if it has none, an error if it is malformed.
pub fn read(dir: &Path) -> std::io::Result<Option<(u64, ChainHash)>> {
    let bytes = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() != 40 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "ledger.head is not 40 bytes"));
    }
    let seq = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    Ok(Some((seq, ChainHash(bytes[8..].try_into().expect("32 bytes")))))
}

/// Checks a log against its acknowledged head: the log must reach it, and hold its hash at its
/// seq.
pub(crate) fn check(store: &dyn crate::LogStore, head_seq: u64) -> Result<(), crate::StoreError> {
    let Some((seq, hash)) = store.acknowledged_head()? else {
        // The writer records the head before its first append, so a log without one lost it.
        if head_seq > 0 {
            return Err(crate::StoreError::Damaged {
                reason: format!("{FILE_NAME} is missing from a data dir with records"),
            });
        }
        return Ok(());
    };
    if seq > head_seq {
        return Err(crate::StoreError::Damaged {
            reason: format!("the log ends at seq {head_seq} but seq {seq} was acknowledged; records were lost"),
        });
    }
    if seq == 0 {
        return Ok(());
    }
    if store.record_hash(seq).ok() != Some(hash) {
        return Err(crate::StoreError::Damaged {
            reason: format!("the record at seq {seq} is not the one acknowledged"),
        });
    }
    Ok(())
}
