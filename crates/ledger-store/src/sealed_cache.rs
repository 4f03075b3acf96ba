//! Sealed values of recently read versions, by the seq of the record that holds them: reading a
//! secret again skips the store read and the decoding of the whole record.
//!
//! A record never changes once appended, so an entry never goes stale. It holds ciphertext only
//! (the store's own page cache holds the same bytes); opening a value still takes the secret's
//! data key, so a purged secret's cached value opens no more than its record does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ledger_core::SealedValue;

/// Ciphertext bytes held at most; past it the cache starts over (cheaper than an LRU, and the
/// hot secrets are back after one read each).
const BYTES_MAX: usize = 16 << 20;

/// Bytes an entry costs beyond its value: two `Arc` counts, the map's key, pointer and control
/// byte, rounded up for the allocator.
const ENTRY_OVERHEAD: usize = 48;

#[derive(Default)]
pub(crate) struct SealedCache {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    values: HashMap<u64, Arc<SealedValue>>,
    bytes: usize,
}

impl SealedCache {
    pub(crate) fn get(&self, seq: u64) -> Option<Arc<SealedValue>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).values.get(&seq).cloned()
    }

    pub(crate) fn insert(&self, seq: u64, value: Arc<SealedValue>) {
        // The value, its `Arc` counts and its slot in the map.
        let size = value.ciphertext.len() + std::mem::size_of::<SealedValue>() + ENTRY_OVERHEAD;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = None;
        if held.bytes + size > BYTES_MAX {
            dropped = Some(std::mem::take(&mut *held));
        }
        if held.values.insert(seq, value).is_none() {
            held.bytes += size;
        }
        drop(held);
        // Freed outside the lock: readers do not wait for thousands of frees.
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(len: usize) -> Arc<SealedValue> {
        Arc::new(SealedValue { kind: ledger_core::ValueKind::String, nonce: [0; 24], ciphertext: vec![7; len] })
    }

    #[test]
    fn values_are_found_by_seq_and_the_bytes_held_stay_bounded() {
        let cache = SealedCache::default();
        cache.insert(1, sealed(10));
        assert_eq!(cache.get(1).map(|v| v.ciphertext.len()), Some(10));
        assert!(cache.get(2).is_none());
        for seq in 2..2_000 {
            cache.insert(seq, sealed(64 << 10));
        }
        let held = cache.held.lock().unwrap();
        assert!(held.bytes <= BYTES_MAX, "{} bytes held", held.bytes);
        assert!(!held.values.is_empty() && held.values.len() < 2_000);
    }
}
