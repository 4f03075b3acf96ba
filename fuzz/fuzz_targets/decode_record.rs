//! Every record decoder on arbitrary bytes: nothing panics, the decoders agree, and whatever
//! decodes re-encodes to the very same body (the encoding is canonical).
//!
//! `cargo +nightly fuzz run decode_record`
#![no_main]

use ledger_core::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = codec::decode_header(data);
    let time = codec::record_time(data);
    let verified = codec::verify_record_hash(data);
    assert_eq!(header.is_ok(), verified.is_ok(), "header and hash check disagree");
    if let Ok(record) = codec::decode_record(data) {
        let Ok((header, body)) = header else { panic!("a record decoded without a header") };
        assert_eq!((record.seq, record.hash), (header.seq, header.hash));
        assert_eq!(time.ok(), Some(record.recorded_at_ms));
        let again = codec::encode_body(record.recorded_at_ms, &record.actor, &record.request_id, &record.event);
        assert_eq!(again, body, "non-canonical encoding");
    }
    if let Ok(mut state) = codec::decode::<ledger_core::State>(data) {
        state.rebuild_indexes();
    }
    let _ = codec::decode::<ledger_core::crypto::WrappedKey>(data);
    let _ = codec::decode::<ledger_core::Event>(data);
});
