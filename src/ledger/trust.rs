//! Whether a ledger still extends the last signed checkpoint kept beside it.
//!
//! The record hash uses a published context, so whoever can write the ledger folder can
//! rewrite every record and recompute every hash: the chain then agrees with itself and
//! `verify` without a checkpoint passes. What such a person cannot make is a checkpoint
//! signed by a key they do not hold. `run` and `rollback` therefore, when a key is
//! configured, read the signed checkpoint written beside the ledger (by a previous `run`,
//! `rollback` or `ledger checkpoint --sign`), check its signature, and require that the
//! ledger holds, at the checkpoint's sequence number, the record with the checkpoint's
//! hash. Records after it are the ones the tool appended since (or a crash left): they are
//! accepted, and the next checkpoint covers them.

use std::path::{Path, PathBuf};

use super::anchor::{AnchorError, Checkpoint, SignedCheckpoint};
use super::error::LedgerError;
use super::record::Hash;
use super::sign::{PublicKey, SignatureProblem, verify_checkpoint};
use super::store::LedgerView;
use super::verify::{ProblemKind, verify_chain};

/// Why a ledger is not trusted against its signed checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The checkpoint file exists but cannot be read or is not a checkpoint.
    #[error(transparent)]
    Unreadable(#[from] AnchorError),
    /// The checkpoint is not signed by the configured key, or its signature fails.
    #[error("the signed checkpoint {} is not accepted: {problem}", path.display())]
    Signature {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with its signature.
        problem: SignatureProblem,
    },
    /// The ledger does not extend the checkpoint: it was rewritten, cut or replaced.
    #[error(
        "the ledger does not extend its last signed checkpoint {}: the checkpoint (key-id \
         {key_id}) says record seq {seq} has hash {head}; {detail}",
        path.display()
    )]
    Diverges {
        /// The checkpoint file.
        path: PathBuf,
        /// The checkpoint's sequence number.
        seq: u64,
        /// The checkpoint's head hash.
        head: Hash,
        /// The key that signed it.
        key_id: String,
        /// What the ledger holds instead.
        kind: ProblemKind,
        /// The ledger's side, in words (its hash at `seq`, its last seq, its id).
        detail: String,
    },
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Checks the ledger in `view` against the signed checkpoint in `path` with `key`.
///
/// `Ok(None)` when there is no file at `path` (whether that is acceptable is the caller's
/// decision: it depends on what the ledger records); `Ok(Some(checkpoint))` when the
/// signature verifies and the ledger holds the checkpointed record at its sequence number.
pub fn check_extends(
    view: &LedgerView,
    path: &Path,
    key: &PublicKey,
) -> Result<Option<SignedCheckpoint>, TrustError> {
    let checkpoint = match Checkpoint::read_file(path) {
        Err(AnchorError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        other => other?,
    };
    let signed = verify_checkpoint(&checkpoint, key)
        .map_err(|problem| TrustError::Signature {
            path: path.to_path_buf(),
            problem,
        })?
        .clone();
    let report = verify_chain(view, Some(&signed.anchor))?;
    if let Some(p) = report.problem {
        let ledger_head = match report.head {
            Some((seq, hash)) => format!("seq {seq} hash {hash}"),
            None => "no record".into(),
        };
        return Err(TrustError::Diverges {
            path: path.to_path_buf(),
            seq: signed.anchor.seq,
            head: signed.anchor.head,
            key_id: signed.key_id.clone(),
            kind: p.kind,
            detail: format!(
                "{} (the ledger's last intact record: {ledger_head})",
                p.detail
            ),
        });
    }
    Ok(Some(signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::sign::SigningKey;
    use crate::ledger::{Anchor, Ledger, NewRecord};
    use uuid::Uuid;

    fn note(l: &mut Ledger, text: &str) -> Hash {
        l.append(NewRecord {
            timestamp_micros: 1,
            operator: "op",
            host: "h",
            run_id: Uuid::from_u128(1),
            event_type: "note",
            schema_version: 1,
            payload: text.as_bytes(),
        })
        .unwrap()
        .hash
    }

    #[test]
    fn accepts_an_extension_and_refuses_a_fork_a_cut_and_a_foreign_key() {
        let tmp = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed(&[9; 32]);
        let other = SigningKey::from_seed(&[8; 32]);
        let cp = tmp.path().join("ledger.checkpoint");
        let mut l = Ledger::open_writer(tmp.path().join("ledger")).unwrap();
        assert!(
            check_extends(l.view(), &cp, &key.public())
                .unwrap()
                .is_none()
        );
        let h2 = {
            note(&mut l, "a");
            note(&mut l, "b")
        };
        let anchor = Anchor {
            ledger_id: l.ledger_id(),
            seq: 2,
            head: h2,
        };
        let time = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        std::fs::write(&cp, key.sign_checkpoint(anchor, time).to_text()).unwrap();
        note(&mut l, "c");
        assert!(
            check_extends(l.view(), &cp, &key.public())
                .unwrap()
                .is_some()
        );
        match check_extends(l.view(), &cp, &other.public()) {
            Err(TrustError::Signature { .. }) => {}
            r => panic!("a foreign key was accepted: {r:?}"),
        }
        // A checkpoint past the ledger's end: cut, or replaced by an older copy.
        let ahead = Anchor { seq: 9, ..anchor };
        std::fs::write(&cp, key.sign_checkpoint(ahead, time).to_text()).unwrap();
        match check_extends(l.view(), &cp, &key.public()) {
            Err(TrustError::Diverges { kind, .. }) => {
                assert_eq!(kind, ProblemKind::TailShorterThanAnchor)
            }
            r => panic!("a cut ledger was accepted: {r:?}"),
        }
        // Another history at seq 2.
        let fork = Anchor {
            head: Hash([1; 32]),
            ..anchor
        };
        std::fs::write(&cp, key.sign_checkpoint(fork, time).to_text()).unwrap();
        let e = check_extends(l.view(), &cp, &key.public()).unwrap_err();
        assert!(
            matches!(
                &e,
                TrustError::Diverges {
                    kind: ProblemKind::HeadMismatchAnchor,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("seq 2"), "{e}");
    }
}
