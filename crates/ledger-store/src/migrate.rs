//! Copying a log from one store to another, verbatim (`secret-ledger migrate`): the same record
//! bytes, so the same hashes, head and Merkle root; the data keys and the master key id with
//! them; derived data computed afresh at the destination.

use ledger_core::codec;

use crate::derive::Deriver;
use crate::error::StoreError;
use crate::replay::Replay;
use crate::store::{Appended, Derived, Group, Head, LogStore};

/// Records per append at the destination.
const BATCH_RECORDS: usize = 1024;

/// Copies every record of `from` into the empty store `to`, checking each on the way as verify's
/// first stage and the rules do, then the data keys' owners: the copy refuses a damaged log.
/// Returns the head both stores now share. Neither store may be written meanwhile.
pub fn copy_log(
    from: &dyn LogStore,
    to: &dyn LogStore,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Head, StoreError> {
    let target = from.head()?;
    if to.head()?.0 != 0 {
        return Err(StoreError::Engine(format!("the destination {} already holds a log", to.location())));
    }
    // A data dir of the first layout keeps its keys inside sled: they move into the key file.
    let keys: Vec<_> = match from.key_file()? {
        Some(file) => file.keys.into_iter().collect(),
        None => from.legacy_keys()?,
    };
    if !keys.is_empty() {
        to.put_data_keys(&keys)?;
    }
    if let Some(id) = from.master_key_id()? {
        to.init_master_key_id(id)?;
    }
    to.init_projection_format()?;
    let mut replay = Replay::from_genesis();
    let mut deriver = Deriver::default();
    let mut batch = Batch::default();
    let mut head = to.head()?;
    for item in from.records(1, target.0) {
        let (seq, bytes) = item?;
        let record = replay.apply(seq, &bytes)?;
        deriver.push(&mut batch.derived, &record);
        batch.records.push((seq, bytes.to_vec()));
        batch.head = (seq, record.hash);
        if batch.records.len() == BATCH_RECORDS {
            deriver.end_run(&mut batch.derived);
            head = batch.append(to, head)?;
            progress(seq, target.0);
        }
    }
    deriver.end_run(&mut batch.derived);
    if !batch.records.is_empty() {
        head = batch.append(to, head)?;
    }
    replay.check_ends_at(target)?;
    if head != target {
        return Err(StoreError::Corrupt { seq: head.0, reason: "the copy ends elsewhere than the source".into() });
    }
    if target.0 > 0 {
        to.put_snapshot(target.0, &codec::encode(&replay.state))?;
    }
    to.flush()?;
    progress(target.0, target.0);
    Ok(head)
}

/// Records on their way to the destination.
#[derive(Default)]
struct Batch {
    records: Vec<(u64, Vec<u8>)>,
    derived: Derived,
    head: Head,
}

impl Batch {
    /// Appends the batch after `expected`; returns the new head.
    fn append(&mut self, to: &dyn LogStore, expected: Head) -> Result<Head, StoreError> {
        let head = self.head;
        let group = Group {
            expected,
            records: std::mem::take(&mut self.records),
            head,
            derived: std::mem::take(&mut self.derived),
            master_key_id: None,
            new_keys: Vec::new(),
            destroyed_keys: Vec::new(),
        };
        match to.append(group)? {
            Appended::Durable => Ok(head),
            Appended::Conflict { .. } => {
                Err(StoreError::Engine(format!("the destination {} was written during the copy", to.location())))
            }
        }
    }
}
