//! The only module that calls bincode. Explicit options: fixed-width little-endian integers,
//! a size limit, trailing bytes rejected.
//!
//! A stored record is `format_version (1) ‖ seq (8, BE) ‖ prev_hash (32) ‖ hash (32) ‖ body`,
//! where `body = bincode(recorded_at_ms, actor, request_id, operation, event)` (format 2; format 1
//! had no `operation`); see `docs/FORMAT.md`.

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::chain::chain_hash;
use crate::event::{Event, Record};
use crate::ids::ChainHash;

/// The record format this build writes. Format 1 (read only): the envelope without the
/// operation, and the events of the first release. Format 2: the envelope names the operation
/// that appended the event, and the events of rotation, resource policies and access dates
/// ([`Event::format_version`]) exist. Format-1 records keep their bytes and hashes.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest record format this build reads.
pub const FORMAT_VERSION_MIN: u8 = 1;
/// Bytes before the body: format_version, seq, prev_hash, hash.
pub const RECORD_HEADER_LEN: usize = 1 + 8 + 32 + 32;
/// Largest encoded body; a 64 KiB value plus its envelope is far below it.
const BODY_BYTES_MAX: u64 = 1 << 20;
/// Largest encoded snapshot or other bulk structure.
const BULK_BYTES_MAX: u64 = 1 << 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record is {len} bytes, shorter than its {RECORD_HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("unknown format_version {0}")]
    FormatVersion(u8),
    #[error("a format {event} event in a record of format {record}")]
    EventFormat { record: u8, event: u8 },
    #[error("undecodable body: {0}")]
    Body(String),
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().with_limit(limit).reject_trailing_bytes()
}

#[derive(Serialize)]
struct BodyRef<'a> {
    recorded_at_ms: i64,
    actor: &'a str,
    request_id: &'a str,
    operation: &'a str,
    event: &'a Event,
}

#[derive(Deserialize)]
struct Body {
    recorded_at_ms: i64,
    actor: String,
    request_id: String,
    operation: String,
    event: Event,
}

/// The format-1 body: no operation.
#[derive(Deserialize)]
struct BodyV1 {
    recorded_at_ms: i64,
    actor: String,
    request_id: String,
    event: Event,
}

/// Encodes the (format 2) body that the chain hash covers.
pub fn encode_body(recorded_at_ms: i64, actor: &str, request_id: &str, operation: &str, event: &Event) -> Vec<u8> {
    options(BODY_BYTES_MAX)
        .serialize(&BodyRef { recorded_at_ms, actor, request_id, operation, event })
        .expect("an event within limits always encodes")
}

/// Seals an event into a record: computes its hash and returns the record and its bytes.
pub fn seal_record(
    seq: u64,
    prev_hash: ChainHash,
    recorded_at_ms: i64,
    actor: &str,
    request_id: &str,
    operation: &str,
    event: Event,
) -> (Record, Vec<u8>) {
    let body = encode_body(recorded_at_ms, actor, request_id, operation, &event);
    let hash = chain_hash(FORMAT_VERSION, &prev_hash, seq, &body);
    let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&prev_hash.0);
    bytes.extend_from_slice(&hash.0);
    bytes.extend_from_slice(&body);
    let record = Record {
        seq,
        recorded_at_ms,
        actor: actor.to_string(),
        request_id: request_id.to_string(),
        operation: operation.to_string(),
        prev_hash,
        hash,
        event,
    };
    (record, bytes)
}

/// The header fields of a stored record, read without decoding the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub format_version: u8,
    pub seq: u64,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

pub fn decode_header(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), DecodeError> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::Short { len: bytes.len() });
    }
    let format_version = bytes[0];
    if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&format_version) {
        return Err(DecodeError::FormatVersion(format_version));
    }
    let seq = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let prev_hash = ChainHash(bytes[9..41].try_into().expect("32 bytes"));
    let hash = ChainHash(bytes[41..73].try_into().expect("32 bytes"));
    Ok((RecordHeader { format_version, seq, prev_hash, hash }, &bytes[RECORD_HEADER_LEN..]))
}

/// Decodes a stored record. Does not check its hash: see [`verify_record_hash`].
pub fn decode_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    let (header, body) = decode_header(bytes)?;
    let undecodable = |e: bincode::Error| DecodeError::Body(e.to_string());
    let body = if header.format_version == 1 {
        let b: BodyV1 = options(BODY_BYTES_MAX).deserialize(body).map_err(undecodable)?;
        Body {
            recorded_at_ms: b.recorded_at_ms,
            actor: b.actor,
            request_id: b.request_id,
            operation: String::new(),
            event: b.event,
        }
    } else {
        options(BODY_BYTES_MAX).deserialize(body).map_err(undecodable)?
    };
    if header.format_version >= 2 && body.operation.is_empty() {
        return Err(DecodeError::Body("a format-2 record without its operation".into()));
    }
    if body.event.format_version() > header.format_version {
        return Err(DecodeError::EventFormat { record: header.format_version, event: body.event.format_version() });
    }
    Ok(Record {
        seq: header.seq,
        recorded_at_ms: body.recorded_at_ms,
        actor: body.actor,
        request_id: body.request_id,
        operation: body.operation,
        prev_hash: header.prev_hash,
        hash: header.hash,
        event: body.event,
    })
}

/// `recorded_at_ms` of a stored record, read without decoding the rest (it leads the body).
pub fn record_time(bytes: &[u8]) -> Result<i64, DecodeError> {
    let (_, body) = decode_header(bytes)?;
    let raw: [u8; 8] = body.get(..8).and_then(|b| b.try_into().ok()).ok_or(DecodeError::Short { len: bytes.len() })?;
    Ok(i64::from_le_bytes(raw))
}

/// Recomputes the chain hash of stored record bytes and compares it with the stored one.
pub fn verify_record_hash(bytes: &[u8]) -> Result<bool, DecodeError> {
    let (header, body) = decode_header(bytes)?;
    Ok(chain_hash(header.format_version, &header.prev_hash, header.seq, body) == header.hash)
}

/// Encodes a bulk structure (projection snapshot, wrapped key, cursor).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    options(BULK_BYTES_MAX).serialize(value).expect("in-memory structures always encode")
}

/// Whether `value` encodes to exactly the bytes `expected` yields up to its end ([`encode`]'s
/// encoding), compared while it is written. A stream that finds itself damaged (`InvalidData`)
/// or ends early is a mismatch; any other read error (the store could not be read) is returned.
pub fn encodes_as<T: Serialize>(value: &T, expected: &mut dyn std::io::Read) -> std::io::Result<bool> {
    /// A writer that reads as many bytes from the expected stream as it is given and compares.
    struct Compare<'a> {
        expected: &'a mut dyn std::io::Read,
        scratch: Vec<u8>,
    }
    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.scratch.resize(buf.len(), 0);
            self.expected.read_exact(&mut self.scratch)?;
            if self.scratch[..] == *buf {
                Ok(buf.len())
            } else {
                Err(std::io::ErrorKind::InvalidData.into())
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mismatch = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => Ok(false),
        _ => Err(e),
    };
    // Compared in 64 KiB runs: bincode writes field by field, a few bytes at a time.
    let mut compare = std::io::BufWriter::with_capacity(64 << 10, Compare { expected, scratch: Vec::new() });
    if let Err(e) = options(BULK_BYTES_MAX).serialize_into(&mut compare, value) {
        return match *e {
            bincode::ErrorKind::Io(e) => mismatch(e),
            _ => Ok(false),
        };
    }
    let compare = match compare.into_inner() {
        Ok(compare) => compare,
        Err(e) => return mismatch(e.into_error()),
    };
    // Nothing may follow; reaching the end is also where a stream checks itself.
    let mut one = [0u8; 1];
    match compare.expected.read(&mut one) {
        Ok(n) => Ok(n == 0),
        Err(e) => mismatch(e),
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    options(BULK_BYTES_MAX).deserialize(bytes).map_err(|e| DecodeError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_compares_every_byte() {
        let value = (7u64, "projection".to_string(), vec![1u32, 2, 3]);
        let bytes = encode(&value);
        assert!(encodes_as(&value, &mut &bytes[..]).unwrap());
        let mut flipped = bytes.clone();
        flipped[3] ^= 1;
        assert!(!encodes_as(&value, &mut &flipped[..]).unwrap());
        assert!(!encodes_as(&value, &mut &bytes[..bytes.len() - 1]).unwrap());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!encodes_as(&value, &mut &longer[..]).unwrap());
    }
}
