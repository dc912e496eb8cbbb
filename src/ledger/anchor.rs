//! Checkpoints ("anchors"): the ledger id, a sequence number and the hash of the record at
//! that sequence number, in a small text form meant to be pasted into a change ticket or
//! kept anywhere outside the ledger folder.
//!
//! A chain can only prove that its records agree with each other; an anchor kept elsewhere
//! is what proves the ledger was not cut short or swapped for an older copy since the
//! checkpoint was taken. Text form, version 1 (`ledger-schema/RECORD.md`, "Checkpoints"):
//!
//! ```text
//! oms-upgrade-checkpoint v1
//! ledger-id: 5b0c9f4e-8f1a-4d7e-9c51-0e6f2a3b4c5d
//! seq: 42
//! head: <64 hex characters>
//! ```
//!
//! A *signed* checkpoint (version 2) adds the time it was taken and an Ed25519 signature
//! by the operator's key (`src/ledger/sign.rs`), so that whoever keeps it can also prove
//! that the checkpoint itself was not edited:
//!
//! ```text
//! oms-upgrade-checkpoint v2
//! ledger-id: 5b0c9f4e-8f1a-4d7e-9c51-0e6f2a3b4c5d
//! seq: 42
//! head: <64 hex characters>
//! time: 2026-11-25T10:00:00.123456Z
//! key-id: <16 hex characters>
//! signature: <128 hex characters>
//! ```
//!
//! The signature covers exactly the first five lines (as text, see [`signing_message`]);
//! `key-id` and `signature` trail them. This module knows the text; the cryptography is in
//! `sign`.
//!
//! Parsing tolerates what pasting does to text (indentation, CRLF, blank lines, `#` comment
//! lines). The version line is checked first; only then are unknown fields rejected, so a
//! later version can add fields without confusing this one. Version 2 is strict about the
//! order of its lines, so that the signed bytes are the lines as they stand.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::record::Hash;

/// First line of a version-1 checkpoint.
pub const ANCHOR_HEADER: &str = "oms-upgrade-checkpoint v1";

/// First line of a version-2 (signed) checkpoint.
pub const SIGNED_HEADER: &str = "oms-upgrade-checkpoint v2";

/// Domain separation for checkpoint signatures: the signed message is this text, one NUL
/// byte, then the signed lines. A signature made by the same key for any other purpose
/// cannot pass as a checkpoint signature.
pub const SIGNATURE_CONTEXT: &str = "oms-upgrade 2026-11-25 checkpoint signature v2";

/// Length of a key id in hex characters (the first 8 bytes of the public key's BLAKE3).
pub const KEY_ID_HEX_LEN: usize = 16;

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

const HEADER_PREFIX: &str = "oms-upgrade-checkpoint ";

/// A checkpoint: the record at `seq` in ledger `ledger_id` has hash `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The ledger's id.
    pub ledger_id: Uuid,
    /// Sequence number of the checkpointed record (at least 1).
    pub seq: u64,
    /// Hash of the record at `seq`.
    pub head: Hash,
}

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The file cannot be read.
    #[error("cannot read checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a checkpoint this build understands.
    #[error("{origin} is not a valid checkpoint: {reason}")]
    Invalid {
        /// Where the text came from (a file path or "the checkpoint text").
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl Anchor {
    /// The text form (four lines, each ending in a newline).
    pub fn to_text(&self) -> String {
        format!(
            "{ANCHOR_HEADER}\nledger-id: {}\nseq: {}\nhead: {}\n",
            self.ledger_id.hyphenated(),
            self.seq,
            self.head.to_hex()
        )
    }

    /// Parses the text form (version 1, or the anchor part of a signed version 2, whose
    /// signature is not checked here); `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Anchor, AnchorError> {
        Checkpoint::parse(text, origin).map(|c| *c.anchor())
    }

    /// Reads and parses a checkpoint file (see [`Anchor::parse`]).
    pub fn read_file(path: &Path) -> Result<Anchor, AnchorError> {
        Checkpoint::read_file(path).map(|c| *c.anchor())
    }
}

/// A checkpoint as read from text: unsigned (version 1) or signed (version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Version 1: the anchor alone.
    Unsigned(Anchor),
    /// Version 2: the anchor, its time and a signature (not yet checked).
    Signed(SignedCheckpoint),
}

/// A signed (version 2) checkpoint. Whether the signature is valid is for
/// `sign::verify_checkpoint` to say; this type only holds the text's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it anchors.
    pub anchor: Anchor,
    /// When the checkpoint was taken (given by the caller's clock).
    pub time: DateTime<Utc>,
    /// Which key signed it: [`KEY_ID_HEX_LEN`] lower-case hex characters.
    pub key_id: String,
    /// The Ed25519 signature over [`SignedCheckpoint::message`].
    pub signature: [u8; SIGNATURE_LEN],
    /// The signed lines exactly as they stand (trimmed, each ending in `\n`).
    signed_lines: String,
}

impl SignedCheckpoint {
    /// The five signed lines for `anchor` taken at `time`, as the writer lays them out.
    pub fn signed_lines_for(anchor: &Anchor, time: DateTime<Utc>) -> String {
        format!(
            "{SIGNED_HEADER}\nledger-id: {}\nseq: {}\nhead: {}\ntime: {}\n",
            anchor.ledger_id.hyphenated(),
            anchor.seq,
            anchor.head.to_hex(),
            time.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
    }

    /// The bytes a signer signs for `anchor` at `time` (see [`signing_message`]).
    pub fn message_for(anchor: &Anchor, time: DateTime<Utc>) -> Vec<u8> {
        signing_message(&Self::signed_lines_for(anchor, time))
    }

    /// Assembles a checkpoint from a signature made over [`SignedCheckpoint::message_for`].
    pub fn new(
        anchor: Anchor,
        time: DateTime<Utc>,
        key_id: String,
        signature: [u8; SIGNATURE_LEN],
    ) -> SignedCheckpoint {
        SignedCheckpoint {
            anchor,
            time,
            key_id,
            signature,
            signed_lines: Self::signed_lines_for(&anchor, time),
        }
    }

    /// The exact bytes the signature must verify against.
    pub fn message(&self) -> Vec<u8> {
        signing_message(&self.signed_lines)
    }

    /// The text form: the signed lines, then `key-id` and `signature`.
    pub fn to_text(&self) -> String {
        format!(
            "{}key-id: {}\nsignature: {}\n",
            self.signed_lines,
            self.key_id,
            hex::encode(self.signature)
        )
    }
}

/// The message a checkpoint signature covers: [`SIGNATURE_CONTEXT`], one NUL byte, then the
/// signed lines (`oms-upgrade-checkpoint v2`, `ledger-id`, `seq`, `head`, `time`), each
/// trimmed and ending in one LF.
pub fn signing_message(signed_lines: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + 1 + signed_lines.len());
    m.extend_from_slice(SIGNATURE_CONTEXT.as_bytes());
    m.push(0);
    m.extend_from_slice(signed_lines.as_bytes());
    m
}

impl Checkpoint {
    /// The anchor, signed or not.
    pub fn anchor(&self) -> &Anchor {
        match self {
            Checkpoint::Unsigned(a) => a,
            Checkpoint::Signed(s) => &s.anchor,
        }
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        match self {
            Checkpoint::Unsigned(a) => a.to_text(),
            Checkpoint::Signed(s) => s.to_text(),
        }
    }

    /// Parses checkpoint text of version 1 or 2; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Checkpoint, AnchorError> {
        let invalid = |reason: String| AnchorError::Invalid {
            origin: origin.to_string(),
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some(ANCHOR_HEADER) => parse_v1(lines, &invalid).map(Checkpoint::Unsigned),
            Some(SIGNED_HEADER) => parse_v2(lines.collect(), &invalid).map(Checkpoint::Signed),
            Some(l) if l.starts_with(HEADER_PREFIX) => Err(invalid(format!(
                "it is checkpoint format `{}`, this oms-upgrade reads only `v1` and `v2`",
                &l[HEADER_PREFIX.len()..]
            ))),
            _ => Err(invalid(format!(
                "the first line must be `{ANCHOR_HEADER}` or `{SIGNED_HEADER}` (as printed by \
                 `oms-upgrade ledger checkpoint`)"
            ))),
        }
    }

    /// Reads and parses a checkpoint file.
    pub fn read_file(path: &Path) -> Result<Checkpoint, AnchorError> {
        let text = std::fs::read_to_string(path).map_err(|source| AnchorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::parse(&text, &format!("checkpoint file {}", path.display()))
    }
}

fn parse_ledger_id(
    value: &str,
    invalid: &dyn Fn(String) -> AnchorError,
) -> Result<Uuid, AnchorError> {
    Uuid::parse_str(value).map_err(|_| invalid(format!("ledger-id `{value}` is not a UUID")))
}

fn parse_seq(value: &str, invalid: &dyn Fn(String) -> AnchorError) -> Result<u64, AnchorError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| invalid(format!("seq `{value}` is not a positive integer")))
}

fn parse_head(value: &str, invalid: &dyn Fn(String) -> AnchorError) -> Result<Hash, AnchorError> {
    Hash::from_hex(value).ok_or_else(|| invalid(format!("head `{value}` is not 64 hex characters")))
}

fn parse_v1<'a>(
    lines: impl Iterator<Item = &'a str>,
    invalid: &dyn Fn(String) -> AnchorError,
) -> Result<Anchor, AnchorError> {
    let (mut id, mut seq, mut head) = (None, None, None);
    for line in lines {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("line `{line}` is not `field: value`")))?;
        let value = value.trim();
        let slot_taken = |name: &str| invalid(format!("field `{name}` appears twice"));
        match key.trim() {
            "ledger-id" => {
                if id.replace(parse_ledger_id(value, invalid)?).is_some() {
                    return Err(slot_taken("ledger-id"));
                }
            }
            "seq" => {
                if seq.replace(parse_seq(value, invalid)?).is_some() {
                    return Err(slot_taken("seq"));
                }
            }
            "head" => {
                if head.replace(parse_head(value, invalid)?).is_some() {
                    return Err(slot_taken("head"));
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown field `{other}` (v1 has ledger-id, seq, head)"
                )));
            }
        }
    }
    let missing = |name: &str| invalid(format!("field `{name}` is missing"));
    Ok(Anchor {
        ledger_id: id.ok_or_else(|| missing("ledger-id"))?,
        seq: seq.ok_or_else(|| missing("seq"))?,
        head: head.ok_or_else(|| missing("head"))?,
    })
}

/// The fields of a version-2 checkpoint after its header, in their only allowed order.
const V2_FIELDS: [&str; 6] = ["ledger-id", "seq", "head", "time", "key-id", "signature"];

fn parse_v2(
    lines: Vec<&str>,
    invalid: &dyn Fn(String) -> AnchorError,
) -> Result<SignedCheckpoint, AnchorError> {
    if lines.len() != V2_FIELDS.len() {
        return Err(invalid(format!(
            "a v2 checkpoint has exactly these lines after its first, in this order: {}; \
             found {} lines",
            V2_FIELDS.join(", "),
            lines.len()
        )));
    }
    let mut values = Vec::with_capacity(V2_FIELDS.len());
    for (line, name) in lines.iter().zip(V2_FIELDS) {
        let value = line
            .split_once(':')
            .filter(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
            .ok_or_else(|| {
                invalid(format!(
                    "line `{line}` should be `{name}: ...` (v2 lines are: {})",
                    V2_FIELDS.join(", ")
                ))
            })?;
        values.push(value);
    }
    let anchor = Anchor {
        ledger_id: parse_ledger_id(values[0], invalid)?,
        seq: parse_seq(values[1], invalid)?,
        head: parse_head(values[2], invalid)?,
    };
    let time = parse_time(values[3]).ok_or_else(|| {
        invalid(format!(
            "time `{}` is not a UTC time like 2026-11-25T10:00:00.123456Z",
            values[3]
        ))
    })?;
    let key_id = values[4];
    if key_id.len() != KEY_ID_HEX_LEN || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "key-id `{key_id}` is not {KEY_ID_HEX_LEN} hex characters"
        )));
    }
    let mut signature = [0u8; SIGNATURE_LEN];
    hex::decode_to_slice(values[5], &mut signature).map_err(|_| {
        invalid(format!(
            "signature is not {} hex characters",
            2 * SIGNATURE_LEN
        ))
    })?;
    let signed_lines: String = std::iter::once(SIGNED_HEADER)
        .chain(lines[..4].iter().copied())
        .flat_map(|l| [l, "\n"])
        .collect();
    Ok(SignedCheckpoint {
        anchor,
        time,
        key_id: key_id.to_ascii_lowercase(),
        signature,
        signed_lines,
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, nothing else: a narrow form that every verifier
/// reads the same way.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let body = s.strip_suffix('Z')?;
    let (secs, frac) = match body.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (body, None),
    };
    let shape_ok = secs.len() == 19
        && secs.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
        && frac.is_none_or(|f| (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return None;
    }
    NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Anchor {
        Anchor {
            ledger_id: Uuid::from_u128(0x5b0c9f4e_8f1a_4d7e_9c51_0e6f2a3b4c5d),
            seq: 42,
            head: Hash([0xab; 32]),
        }
    }

    #[test]
    fn text_round_trips_and_survives_pasting() {
        let a = sample();
        assert_eq!(Anchor::parse(&a.to_text(), "t").unwrap(), a);
        let pasted = format!(
            "\r\n  # change ticket OPS-1\r\n{}",
            a.to_text()
                .lines()
                .map(|l| format!("    {l}\r\n"))
                .collect::<String>()
        );
        assert_eq!(Anchor::parse(&pasted, "t").unwrap(), a);
    }

    #[test]
    fn version_is_checked_before_fields() {
        let v3 = sample()
            .to_text()
            .replace(" v1", " v3")
            .replace("seq", "signature");
        let err = Anchor::parse(&v3, "t").unwrap_err().to_string();
        assert!(err.contains("format `v3`"), "{err}");
        let extra = format!("{}signature: abc\n", sample().to_text());
        let err = Anchor::parse(&extra, "t").unwrap_err().to_string();
        assert!(err.contains("unknown field `signature`"), "{err}");
    }

    #[test]
    fn rejects_bad_values() {
        let t = sample().to_text();
        for (from, to, expect) in [
            ("seq: 42", "seq: 0", "positive integer"),
            ("seq: 42", "seq: -1", "positive integer"),
            ("head: ab", "head: zz", "64 hex"),
            ("ledger-id: 5b", "ledger-id: x5b", "not a UUID"),
            ("seq: 42\n", "", "`seq` is missing"),
            ("seq: 42\n", "seq: 42\nseq: 43\n", "appears twice"),
        ] {
            let err = Anchor::parse(&t.replace(from, to), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{from} -> {to}: {err}");
        }
        assert!(Anchor::parse("hello", "t").is_err());
    }

    fn signed_sample() -> SignedCheckpoint {
        let time = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        SignedCheckpoint::new(
            sample(),
            time,
            "0123456789abcdef".into(),
            [7; SIGNATURE_LEN],
        )
    }

    #[test]
    fn signed_text_round_trips_and_survives_pasting() {
        let s = signed_sample();
        let text = s.to_text();
        assert_eq!(
            text.lines().next(),
            Some(SIGNED_HEADER),
            "version line first: {text}"
        );
        assert!(
            text.contains("\ntime: 2026-11-25T10:00:00.123456Z\n"),
            "{text}"
        );
        assert_eq!(
            Checkpoint::parse(&text, "t").unwrap(),
            Checkpoint::Signed(s.clone())
        );
        let pasted = format!(
            "# OPS-1\r\n{}",
            text.lines()
                .map(|l| format!("  {l} \r\n\r\n"))
                .collect::<String>()
        );
        let Checkpoint::Signed(back) = Checkpoint::parse(&pasted, "t").unwrap() else {
            panic!("not signed")
        };
        assert_eq!(
            back.message(),
            s.message(),
            "pasting changes no signed byte"
        );
        // The anchor part reads as an anchor too (e.g. for `report --anchor`).
        assert_eq!(Anchor::parse(&text, "t").unwrap(), sample());
    }

    #[test]
    fn signed_message_is_context_nul_and_the_five_lines() {
        let s = signed_sample();
        let m = s.message();
        let (ctx, rest) = m.split_at(SIGNATURE_CONTEXT.len());
        assert_eq!(ctx, SIGNATURE_CONTEXT.as_bytes());
        assert_eq!(rest[0], 0);
        let lines = std::str::from_utf8(&rest[1..]).unwrap();
        assert_eq!(lines.lines().count(), 5);
        assert!(s.to_text().starts_with(lines));
        assert!(!lines.contains("key-id") && !lines.contains("signature"));
        // The signed bytes are the lines as they stand: a changed spelling of the same
        // value changes them (and so fails the signature), it is not normalised away.
        let respelled = s.to_text().replace("seq: 42", "seq: 042");
        let Checkpoint::Signed(r) = Checkpoint::parse(&respelled, "t").unwrap() else {
            panic!("not signed")
        };
        assert_eq!(r.anchor, s.anchor);
        assert_ne!(r.message(), s.message());
    }

    #[test]
    fn signed_format_is_strict() {
        let t = signed_sample().to_text();
        for (from, to, expect) in [
            (
                "time: 2026-11-25T10:00:00.123456Z",
                "time: 2026-11-25 10:00:00Z",
                "not a UTC time",
            ),
            (
                "time: 2026-11-25T10:00:00.123456Z",
                "time: 2026-11-25T10:00:00+00:00",
                "not a UTC time",
            ),
            (
                "time: 2026-11-25T10:00:00.123456Z",
                "time: 2026-13-25T10:00:00Z",
                "not a UTC time",
            ),
            ("key-id: 0123456789abcdef", "key-id: 0123", "not 16 hex"),
            ("signature: 0707", "signature: zz07", "not 128 hex"),
            (
                "time: 2026-11-25T10:00:00.123456Z\n",
                "",
                "exactly these lines",
            ),
            ("seq: 42\nhead", "head", "exactly these lines"),
        ] {
            let err = Checkpoint::parse(&t.replace(from, to), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{from} -> {to}: {err}");
        }
        // Same lines, another order: rejected, not reordered.
        let swapped = t
            .replacen("seq: 42\n", "", 1)
            .replace("time:", "seq: 42\ntime:");
        let err = Checkpoint::parse(&swapped, "t").unwrap_err().to_string();
        assert!(err.contains("should be `seq: ...`"), "{err}");
        // A v1 file with v2's extra fields is still rejected as v1.
        let err = Anchor::parse(&format!("{}time: x\n", sample().to_text()), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `time`"), "{err}");
    }
}
