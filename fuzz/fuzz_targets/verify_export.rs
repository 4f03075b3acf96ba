//! The offline export verifier on arbitrary input: it never panics, whatever the lines hold.
//! Seed the corpus with a real export (`secret-ledger export --out fuzz/corpus/verify_export/x`)
//! so mutations start from valid records.
//!
//! `cargo +nightly fuzz run verify_export`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ledger_audit::export::verify_export(&mut std::io::Cursor::new(data), None, &mut |_, _| {});
});
