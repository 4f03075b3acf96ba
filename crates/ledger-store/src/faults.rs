//! Fault injection below the ledger, for tests of the failure paths: make the Nth group
//! commit fail at a chosen step with a chosen I/O error (a full disk, an I/O error).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;

/// The steps of a group commit where a fault can strike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStep {
    /// Before the atomic batch reaches sled: nothing of the group is written.
    ApplyBatch,
    /// After the batch, before sled's flush: the group is in sled's memory only.
    Flush,
    /// After sled's flush, before `fdatasync`: the group may or may not survive power loss.
    Fsync,
}

/// Fails the `nth` group commit (1-based, counting groups that reach `step`) at `step`, and
/// every later one too when `sticky` (a disk that stays full).
#[derive(Debug)]
pub struct FaultPlan {
    pub step: FaultStep,
    pub nth: u64,
    pub sticky: bool,
    pub error: std::io::ErrorKind,
    seen: AtomicU64,
}

impl FaultPlan {
    pub fn new(step: FaultStep, nth: u64, error: std::io::ErrorKind) -> FaultPlan {
        FaultPlan { step, nth, sticky: true, error, seen: AtomicU64::new(0) }
    }

    /// A full disk: `ENOSPC` from then on.
    pub fn disk_full(step: FaultStep, nth: u64) -> FaultPlan {
        FaultPlan::new(step, nth, std::io::ErrorKind::StorageFull)
    }

    pub(crate) fn check(&self, step: FaultStep) -> Result<(), StoreError> {
        if step != self.step {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.nth || (self.sticky && n > self.nth) {
            let error = match self.error {
                std::io::ErrorKind::StorageFull => std::io::Error::from_raw_os_error(28), // ENOSPC
                kind => std::io::Error::new(kind, "injected fault"),
            };
            return Err(StoreError::Io(error));
        }
        Ok(())
    }
}
