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
//! Parsing tolerates what pasting does to text (indentation, CRLF, blank lines, `#` comment
//! lines). The version line is checked first; only then are unknown fields rejected, so a
//! later version can add fields (such as a signature block) without confusing this one.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::record::Hash;

/// First line of a version-1 checkpoint.
pub const ANCHOR_HEADER: &str = "oms-upgrade-checkpoint v1";

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

    /// Parses the text form; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Anchor, AnchorError> {
        let invalid = |reason: String| AnchorError::Invalid {
            origin: origin.to_string(),
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some(ANCHOR_HEADER) => {}
            Some(l) if l.starts_with(HEADER_PREFIX) => {
                return Err(invalid(format!(
                    "it is checkpoint format `{}`, this oms-upgrade reads only `v1`",
                    &l[HEADER_PREFIX.len()..]
                )));
            }
            _ => {
                return Err(invalid(format!(
                    "the first line must be `{ANCHOR_HEADER}` (as printed by `oms-upgrade ledger checkpoint`)"
                )));
            }
        }
        let (mut id, mut seq, mut head) = (None, None, None);
        for line in lines {
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("line `{line}` is not `field: value`")))?;
            let value = value.trim();
            let slot_taken = |name: &str| invalid(format!("field `{name}` appears twice"));
            match key.trim() {
                "ledger-id" => {
                    let v = Uuid::parse_str(value)
                        .map_err(|_| invalid(format!("ledger-id `{value}` is not a UUID")))?;
                    if id.replace(v).is_some() {
                        return Err(slot_taken("ledger-id"));
                    }
                }
                "seq" => {
                    let v = value
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| {
                            invalid(format!("seq `{value}` is not a positive integer"))
                        })?;
                    if seq.replace(v).is_some() {
                        return Err(slot_taken("seq"));
                    }
                }
                "head" => {
                    let v = Hash::from_hex(value).ok_or_else(|| {
                        invalid(format!("head `{value}` is not 64 hex characters"))
                    })?;
                    if head.replace(v).is_some() {
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

    /// Reads and parses a checkpoint file.
    pub fn read_file(path: &Path) -> Result<Anchor, AnchorError> {
        let text = std::fs::read_to_string(path).map_err(|source| AnchorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Anchor::parse(&text, &format!("checkpoint file {}", path.display()))
    }
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
        let v2 = sample()
            .to_text()
            .replace(" v1", " v2")
            .replace("seq", "signature");
        let err = Anchor::parse(&v2, "t").unwrap_err().to_string();
        assert!(err.contains("format `v2`"), "{err}");
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
}
