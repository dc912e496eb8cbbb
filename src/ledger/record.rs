//! The stored record: its byte layout (format version 1) and its hash.
//!
//! This module is the only place that knows how a record is laid out on disk. The layout is
//! hand-written, fixed and big-endian so that a short script in another language can parse
//! it (`ledger-schema/RECORD.md` documents it byte by byte, `ledger-schema/verify_export.py`
//! implements it independently). Encoding happens once, at append time; everything after
//! that (verification, log, export) parses the stored bytes and hashes exactly those bytes,
//! never a re-encoding of a decoded value.

use std::fmt;

use uuid::Uuid;

/// The four bytes every record body starts with ("OMSL").
pub const MAGIC: [u8; 4] = *b"OMSL";

/// The record format version this build writes (and the only one it reads).
pub const FORMAT_VERSION: u16 = 1;

/// BLAKE3 derive-key context: domain separation so a record hash can never be confused with
/// any other BLAKE3 hash (a dump checksum, a hash computed by a tool that does not know the
/// rule). Changing it is a new record format version.
pub const HASH_CONTEXT: &str = "oms-upgrade 2026-11-25 ledger record v1";

/// Length of a record hash in bytes.
pub const HASH_LEN: usize = 32;

/// Largest stored record (body and hash) the ledger accepts, in bytes.
///
/// The cap keeps every sled page small enough to live in sled's main log file, which the
/// ledger fsyncs after each append; larger pages would go to sled's separate blob files,
/// which sled 0.34 never fsyncs (see `ledger-schema/RECORD.md`, "Durability").
pub const MAX_RECORD_LEN: usize = 64 * 1024;

/// Offset of the fixed-size header fields, in the order they are stored.
const OFF_VERSION: usize = 4;
const OFF_SEQ: usize = 6;
const OFF_LEDGER_ID: usize = 14;
const OFF_PREV_HASH: usize = 30;
const OFF_TIMESTAMP: usize = 62;
const OFF_RUN_ID: usize = 70;
/// First variable-length field (operator).
const OFF_VARIABLE: usize = 86;

/// A BLAKE3 record hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The "previous hash" of the first record: 32 zero bytes.
    pub const ZERO: Hash = Hash([0; HASH_LEN]);

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for tables meant for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// A BLAKE3 hasher in this ledger's derive-key mode, reusable across records.
///
/// Deriving the key from the context string costs about as much as hashing a small record,
/// so verification keeps one of these and resets it instead of building a new one per record.
#[derive(Clone)]
pub struct RecordHasher(blake3::Hasher);

impl RecordHasher {
    /// A hasher keyed with [`HASH_CONTEXT`].
    pub fn new() -> Self {
        RecordHasher(blake3::Hasher::new_derive_key(HASH_CONTEXT))
    }

    /// The record hash of `body` (the stored bytes without the trailing hash).
    pub fn hash(&mut self, body: &[u8]) -> Hash {
        self.0.reset();
        self.0.update(body);
        Hash(*self.0.finalize().as_bytes())
    }
}

impl Default for RecordHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The record hash of `body`: BLAKE3 in derive-key mode with [`HASH_CONTEXT`] over exactly
/// the stored body bytes (which include the previous record's hash at offset 30).
pub fn hash_body(body: &[u8]) -> Hash {
    RecordHasher::new().hash(body)
}

/// What a caller hands to [`crate::ledger::Ledger::append`]; the ledger adds the sequence
/// number, ledger id, previous hash and hash.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// When it happened, in microseconds since the Unix epoch, UTC. The ledger never reads
    /// the clock: the caller decides what time it is.
    pub timestamp_micros: i64,
    /// Who ran the command (operator name).
    pub operator: &'a str,
    /// The host the command ran on.
    pub host: &'a str,
    /// The run this record belongs to.
    pub run_id: Uuid,
    /// Event type name, e.g. `upgrade.intent.stop_old`. Must not be empty.
    pub event_type: &'a str,
    /// Version of the payload encoding for this event type.
    pub schema_version: u16,
    /// The payload, opaque to the ledger (bincode 2 produced by `crate::events`).
    pub payload: &'a [u8],
}

/// Why a [`NewRecord`] cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The event type is empty.
    #[error("the event type is empty; every record needs an event type name")]
    EmptyEventType,
    /// A text field does not fit its u16 length prefix.
    #[error("the {field} field is {len} bytes long; at most 65535 bytes fit")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The whole record would exceed [`MAX_RECORD_LEN`].
    #[error(
        "the record would be {len} bytes, over the {max}-byte limit; keep large data (dumps, logs) \
         in files and record their path and checksum instead"
    )]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// How many bytes [`encode`] stores for `new` (body and hash), to compare with
/// [`MAX_RECORD_LEN`] before anything is appended.
pub fn encoded_len(new: &NewRecord<'_>) -> usize {
    OFF_VARIABLE
        + [new.operator, new.host, new.event_type]
            .iter()
            .map(|t| 2 + t.len())
            .sum::<usize>()
        + 2
        + 4
        + new.payload.len()
        + HASH_LEN
}

/// Encodes a record (body followed by its hash) exactly as it will be stored.
pub fn encode(
    seq: u64,
    ledger_id: Uuid,
    prev_hash: Hash,
    new: &NewRecord<'_>,
) -> Result<(Vec<u8>, Hash), EncodeError> {
    if new.event_type.is_empty() {
        return Err(EncodeError::EmptyEventType);
    }
    let texts = [
        ("operator", new.operator),
        ("host", new.host),
        ("event type", new.event_type),
    ];
    for (field, text) in texts {
        if text.len() > u16::MAX as usize {
            return Err(EncodeError::FieldTooLong {
                field,
                len: text.len(),
            });
        }
    }
    let len = encoded_len(new);
    if len > MAX_RECORD_LEN {
        return Err(EncodeError::TooLarge {
            len,
            max: MAX_RECORD_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(ledger_id.as_bytes());
    out.extend_from_slice(&prev_hash.0);
    out.extend_from_slice(&new.timestamp_micros.to_be_bytes());
    out.extend_from_slice(new.run_id.as_bytes());
    for (_, text) in texts {
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&new.schema_version.to_be_bytes());
    // The length check above bounds the payload far below u32::MAX.
    out.extend_from_slice(&(new.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(new.payload);
    let hash = hash_body(&out);
    out.extend_from_slice(&hash.0);
    debug_assert_eq!(out.len(), len);
    Ok((out, hash))
}

/// Why stored bytes do not parse as a record.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed header plus the hash.
    #[error("only {0} bytes, shorter than the smallest possible record")]
    TooShort(usize),
    /// The first four bytes are not "OMSL".
    #[error("does not start with the record magic \"OMSL\"")]
    BadMagic,
    /// A format version this build does not know.
    #[error("record format version {0}, this build reads only version {FORMAT_VERSION}")]
    UnknownVersion(u16),
    /// A length prefix points past the end of the body.
    #[error("the {0} field runs past the end of the record")]
    Truncated(&'static str),
    /// A text field is not UTF-8.
    #[error("the {0} field is not valid UTF-8")]
    BadUtf8(&'static str),
    /// Bytes left between the payload and the hash.
    #[error("{0} unexpected bytes after the payload")]
    TrailingBytes(usize),
    /// The sled key is not an 8-byte sequence number.
    #[error("its sled key is {0} bytes long, not an 8-byte sequence number")]
    BadKey(usize),
}

/// A zero-copy view of one stored record: every field borrows from the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Record format version (always [`FORMAT_VERSION`] once parsed).
    pub format_version: u16,
    /// Sequence number the record claims.
    pub seq: u64,
    /// Ledger the record claims to belong to.
    pub ledger_id: Uuid,
    /// Hash of the previous record ([`Hash::ZERO`] for seq 1).
    pub prev_hash: Hash,
    /// Caller-given time, microseconds since the Unix epoch, UTC.
    pub timestamp_micros: i64,
    /// Run id.
    pub run_id: Uuid,
    /// Operator.
    pub operator: &'a str,
    /// Host.
    pub host: &'a str,
    /// Event type name.
    pub event_type: &'a str,
    /// Payload schema version.
    pub schema_version: u16,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// The hash as stored (not recomputed).
    pub hash: Hash,
    /// The body: the stored bytes without the trailing hash. The hash covers exactly these.
    pub body: &'a [u8],
    /// All stored bytes.
    pub stored: &'a [u8],
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(ParseError::Truncated(field))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn text(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        let n = self.u16(field)? as usize;
        std::str::from_utf8(self.take(n, field)?).map_err(|_| ParseError::BadUtf8(field))
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

impl<'a> RecordRef<'a> {
    /// Parses stored bytes. Checks the layout only: the hash is returned as stored and
    /// checked by the caller (see [`crate::ledger::verify`]).
    pub fn parse(stored: &'a [u8]) -> Result<RecordRef<'a>, ParseError> {
        if stored.len() < OFF_VERSION + 2 {
            return Err(ParseError::TooShort(stored.len()));
        }
        if stored[..4] != MAGIC {
            return Err(ParseError::BadMagic);
        }
        // The version is checked before anything else so that a record of a newer format
        // is reported as such, not as a layout error.
        let version = u16::from_be_bytes([stored[OFF_VERSION], stored[OFF_VERSION + 1]]);
        if version != FORMAT_VERSION {
            return Err(ParseError::UnknownVersion(version));
        }
        if stored.len() < OFF_VARIABLE + 2 * 3 + 2 + 4 + HASH_LEN {
            return Err(ParseError::TooShort(stored.len()));
        }
        let (body, hash) = stored.split_at(stored.len() - HASH_LEN);
        let mut c = Cursor {
            buf: body,
            pos: OFF_VARIABLE,
        };
        let operator = c.text("operator")?;
        let host = c.text("host")?;
        let event_type = c.text("event type")?;
        let schema_version = c.u16("schema version")?;
        let plen = {
            let b = c.take(4, "payload length")?;
            u32::from_be_bytes(arr(b)) as usize
        };
        let payload = c.take(plen, "payload")?;
        if c.pos != body.len() {
            return Err(ParseError::TrailingBytes(body.len() - c.pos));
        }
        Ok(RecordRef {
            format_version: version,
            seq: u64::from_be_bytes(arr(&body[OFF_SEQ..])),
            ledger_id: Uuid::from_bytes(arr(&body[OFF_LEDGER_ID..])),
            prev_hash: Hash(arr(&body[OFF_PREV_HASH..])),
            timestamp_micros: i64::from_be_bytes(arr(&body[OFF_TIMESTAMP..])),
            run_id: Uuid::from_bytes(arr(&body[OFF_RUN_ID..])),
            operator,
            host,
            event_type,
            schema_version,
            payload,
            hash: Hash(arr(hash)),
            body,
            stored,
        })
    }

    /// An owned copy.
    pub fn to_owned_record(&self) -> Record {
        Record {
            format_version: self.format_version,
            seq: self.seq,
            ledger_id: self.ledger_id,
            prev_hash: self.prev_hash,
            timestamp_micros: self.timestamp_micros,
            run_id: self.run_id,
            operator: self.operator.to_owned(),
            host: self.host.to_owned(),
            event_type: self.event_type.to_owned(),
            schema_version: self.schema_version,
            payload: self.payload.to_vec(),
            hash: self.hash,
            stored: self.stored.to_vec(),
        }
    }
}

/// The decoded view of one stored record, owning its data. `stored` holds the exact bytes
/// from the database; all other fields were parsed from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record format version.
    pub format_version: u16,
    /// Sequence number (1-based).
    pub seq: u64,
    /// Ledger id.
    pub ledger_id: Uuid,
    /// Previous record's hash ([`Hash::ZERO`] for seq 1).
    pub prev_hash: Hash,
    /// Caller-given time, microseconds since the Unix epoch, UTC.
    pub timestamp_micros: i64,
    /// Run id.
    pub run_id: Uuid,
    /// Operator.
    pub operator: String,
    /// Host.
    pub host: String,
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// Payload bytes (opaque to the ledger).
    pub payload: Vec<u8>,
    /// The hash as stored.
    pub hash: Hash,
    /// The exact stored bytes (body followed by hash).
    pub stored: Vec<u8>,
}

impl Record {
    /// Parses stored bytes into an owned record (layout only; see [`RecordRef::parse`]).
    pub fn parse(stored: &[u8]) -> Result<Record, ParseError> {
        RecordRef::parse(stored).map(|r| r.to_owned_record())
    }

    /// The body: stored bytes without the trailing hash.
    pub fn body(&self) -> &[u8] {
        &self.stored[..self.stored.len() - HASH_LEN]
    }

    /// Whether the stored hash equals the hash recomputed over the stored body.
    pub fn hash_is_valid(&self) -> bool {
        hash_body(self.body()) == self.hash
    }

    /// The timestamp as RFC 3339 UTC with microseconds, or the raw number when it is out
    /// of chrono's range.
    pub fn time_rfc3339(&self) -> String {
        rfc3339_micros(self.timestamp_micros)
    }
}

/// Formats microseconds since the epoch as RFC 3339 UTC (`2026-11-25T10:00:00.000000Z`).
pub fn rfc3339_micros(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => format!("@{micros}us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample<'a>(payload: &'a [u8]) -> NewRecord<'a> {
        NewRecord {
            timestamp_micros: 1_764_064_800_123_456,
            operator: "alice",
            host: "oms-node-1",
            run_id: Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888),
            event_type: "test.event",
            schema_version: 3,
            payload,
        }
    }

    #[test]
    fn round_trip_keeps_every_field_and_the_hash_covers_the_body() {
        let id = Uuid::from_u128(42);
        let prev = Hash([7; 32]);
        let (stored, hash) = encode(9, id, prev, &sample(b"\x01\x02payload")).unwrap();
        let r = Record::parse(&stored).unwrap();
        assert_eq!(r.seq, 9);
        assert_eq!(r.ledger_id, id);
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.timestamp_micros, 1_764_064_800_123_456);
        assert_eq!(r.operator, "alice");
        assert_eq!(r.host, "oms-node-1");
        assert_eq!(r.event_type, "test.event");
        assert_eq!(r.schema_version, 3);
        assert_eq!(r.payload, b"\x01\x02payload");
        assert_eq!(r.hash, hash);
        assert!(r.hash_is_valid());
        assert_eq!(r.time_rfc3339(), "2025-11-25T10:00:00.123456Z");
        // The documented fixed offsets (RECORD.md) hold.
        assert_eq!(&stored[0..4], b"OMSL");
        assert_eq!(&stored[6..14], &9u64.to_be_bytes());
        assert_eq!(&stored[30..62], &[7u8; 32]);
        assert_eq!(&stored[86..88], &5u16.to_be_bytes());
    }

    #[test]
    fn hash_uses_derive_key_mode_with_the_fixed_context() {
        let body = b"anything";
        let expected = blake3::Hasher::new_derive_key(HASH_CONTEXT)
            .update(body)
            .finalize();
        assert_eq!(hash_body(body).0, *expected.as_bytes());
        assert_ne!(hash_body(body).0, *blake3::hash(body).as_bytes());
        // Reusing a hasher gives the same answer as a fresh one.
        let mut h = RecordHasher::new();
        h.hash(b"first");
        assert_eq!(h.hash(body), hash_body(body));
    }

    #[test]
    fn rejects_what_cannot_be_stored() {
        let id = Uuid::nil();
        let mut n = sample(b"");
        n.event_type = "";
        assert_eq!(
            encode(1, id, Hash::ZERO, &n),
            Err(EncodeError::EmptyEventType)
        );
        let big = vec![0u8; MAX_RECORD_LEN];
        assert!(matches!(
            encode(1, id, Hash::ZERO, &sample(&big)),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn version_is_checked_before_layout() {
        let (mut stored, _) = encode(1, Uuid::nil(), Hash::ZERO, &sample(b"x")).unwrap();
        stored[5] = 2;
        assert_eq!(Record::parse(&stored), Err(ParseError::UnknownVersion(2)));
        stored.truncate(7);
        assert_eq!(Record::parse(&stored), Err(ParseError::UnknownVersion(2)));
    }

    #[test]
    fn trailing_and_truncated_bytes_are_layout_errors() {
        let (stored, _) = encode(1, Uuid::nil(), Hash::ZERO, &sample(b"xyz")).unwrap();
        let mut longer = stored.clone();
        longer.insert(stored.len() - HASH_LEN, 0);
        assert_eq!(Record::parse(&longer), Err(ParseError::TrailingBytes(1)));
        let mut shorter = stored.clone();
        shorter.remove(stored.len() - HASH_LEN - 1);
        assert_eq!(
            Record::parse(&shorter),
            Err(ParseError::Truncated("payload"))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Record::parse(&bytes);
        }

        #[test]
        fn any_single_byte_change_is_caught(pos in 0usize..200, bit in 0u8..8) {
            let (stored, _) = encode(5, Uuid::from_u128(1), Hash([3; 32]), &sample(b"payload bytes")).unwrap();
            let mut t = stored.clone();
            let pos = pos % t.len();
            t[pos] ^= 1 << bit;
            // Either the layout no longer parses or the stored hash no longer matches.
            match Record::parse(&t) {
                Err(_) => {}
                Ok(r) => prop_assert!(!r.hash_is_valid()),
            }
        }
    }
}
