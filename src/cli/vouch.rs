//! What vouches for a backup folder's `manifest.json`, which in turn vouches for the dumps'
//! BLAKE3: a signature by the operator's Ed25519 key (`manifest.json.sig`), or nothing but
//! the manifest itself. (On the rollback path the ledger vouches; that path never reads a
//! manifest.)
//!
//! The signature reuses the signed checkpoint of `src/ledger/sign.rs` unchanged, so the
//! same keys, key ids and checker apply: `manifest.json.sig` is a version 2 checkpoint whose
//! ledger id is [`MANIFEST_SIGNATURE_ID`] (a fixed id no ledger has: ledgers get random
//! version 4 ids), seq 1, and whose head is BLAKE3 in derive-key mode with
//! [`MANIFEST_DIGEST_CONTEXT`] over the exact bytes of `manifest.json`. Changing one byte
//! of the manifest changes the head; changing the head breaks the signature.

use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CliError, ExitKind};
use crate::ledger::sign::{PublicKey, SignatureProblem, SigningKey, verify_checkpoint};
use crate::ledger::{Anchor, Checkpoint, Hash};

/// The signature file next to `manifest.json`.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// The ledger id a manifest signature carries (the bytes spell `oms-manifest.jso`; version
/// nibble 6, so never equal to a ledger's random v4 id).
pub const MANIFEST_SIGNATURE_ID: Uuid = Uuid::from_u128(0x6f6d732d_6d61_6e69_6665_73742e6a736f);

/// BLAKE3 derive-key context of the manifest digest that is signed.
pub const MANIFEST_DIGEST_CONTEXT: &str = "oms-upgrade 2026-11-27 manifest.json digest v1";

/// What vouched for the manifest's hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voucher {
    /// A signature over `manifest.json` that verified with the given key.
    Signature {
        /// The key's id.
        key_id: String,
        /// When it was signed (the signer's clock).
        signed_at: DateTime<Utc>,
    },
    /// Nothing but the manifest itself.
    ManifestOnly,
}

impl Voucher {
    /// One line for the terminal.
    pub fn describe(&self) -> String {
        match self {
            Voucher::Signature { key_id, signed_at } => format!(
                "the dumps' BLAKE3 are vouched for by the signature over manifest.json of key-id \
                 {key_id} (signed {})",
                signed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Voucher::ManifestOnly => "the dumps' BLAKE3 are vouched for by nothing but \
                                      manifest.json itself (unsigned)"
                .to_string(),
        }
    }

    /// The JSON form: `{"kind": "signature", "key_id", "signed_at"}` or
    /// `{"kind": "manifest_only"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Voucher::Signature { key_id, signed_at } => serde_json::json!({
                "kind": "signature",
                "key_id": key_id,
                "signed_at": signed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }),
            Voucher::ManifestOnly => serde_json::json!({ "kind": "manifest_only" }),
        }
    }
}

fn digest(manifest: &[u8]) -> Hash {
    Hash(blake3::derive_key(MANIFEST_DIGEST_CONTEXT, manifest))
}

/// The text of `manifest.json.sig` for these manifest bytes.
pub fn sign(key: &SigningKey, manifest: &[u8], time: DateTime<Utc>) -> String {
    let anchor = Anchor {
        ledger_id: MANIFEST_SIGNATURE_ID,
        seq: 1,
        head: digest(manifest),
    };
    format!(
        "# Signature of manifest.json by oms-upgrade: a signed checkpoint whose head is\n\
         # BLAKE3(derive-key \"{MANIFEST_DIGEST_CONTEXT}\", manifest.json).\n\
         # Check it with `oms-upgrade restore --from DIR --pubkey KEYFILE.pub`.\n{}",
        key.sign_checkpoint(anchor, time).to_text()
    )
}

/// Decides what vouches for `manifest` (the bytes of `dir/manifest.json`): checks
/// `dir/manifest.json.sig` against `pubkey`. A signature without a key, a key without a
/// signature, and a signature that does not verify are refusals; neither is
/// [`Voucher::ManifestOnly`].
pub fn check(dir: &Path, manifest: &[u8], pubkey: Option<&PublicKey>) -> Result<Voucher, CliError> {
    let sig_path = dir.join(SIGNATURE_FILE);
    let sig = match std::fs::symlink_metadata(&sig_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(
            crate::dump::read_in_folder(dir, SIGNATURE_FILE)
                .map_err(|e| CliError::new(ExitKind::Input, e.to_string()))?,
        ),
    };
    let integrity = |why: String| {
        CliError::new(
            ExitKind::Integrity,
            format!("{}: {why}; nothing was changed", sig_path.display()),
        )
        .hint(
            "restore from a backup whose signature verifies, or check that --pubkey is the key \
             the backup was signed with",
        )
    };
    match (sig, pubkey) {
        (None, None) => Ok(Voucher::ManifestOnly),
        (None, Some(_)) => Err(CliError::new(
            ExitKind::Refused,
            format!(
                "--pubkey was given but {} has no signature ({SIGNATURE_FILE} is missing); \
                 refusing to restore from an unsigned manifest when a signed one was expected",
                dir.display()
            ),
        )
        .hint("use the signed backup, or leave out --pubkey to trust the manifest alone")),
        (Some(_), None) => Err(CliError::new(
            ExitKind::Refused,
            format!(
                "{} is signed ({SIGNATURE_FILE}) but no --pubkey was given to check it; \
                 refusing to trust its hashes unchecked",
                dir.display()
            ),
        )
        .hint("pass --pubkey KEYFILE.pub (written by `oms-upgrade ledger keygen`)")),
        (Some(text), Some(key)) => {
            let text = String::from_utf8_lossy(&text);
            let checkpoint = Checkpoint::parse(&text, &sig_path.display().to_string())
                .map_err(|e| integrity(e.to_string()))?;
            let anchor = checkpoint.anchor();
            if anchor.ledger_id != MANIFEST_SIGNATURE_ID || anchor.seq != 1 {
                return Err(integrity(
                    "it is a ledger checkpoint, not a signature of manifest.json".into(),
                ));
            }
            let signed = verify_checkpoint(&checkpoint, key).map_err(|p| {
                integrity(match p {
                    SignatureProblem::Unsigned => "it holds no signature".into(),
                    SignatureProblem::KeyMismatch {
                        checkpoint_key_id,
                        given_key_id,
                    } => format!(
                        "manifest.json was signed by key-id {checkpoint_key_id}, not by the \
                         given key (key-id {given_key_id})"
                    ),
                    SignatureProblem::BadSignature { key_id } => format!(
                        "the signature does not verify with key-id {key_id}: the signature \
                         file was changed or forged"
                    ),
                })
            })?;
            if signed.anchor.head != digest(manifest) {
                return Err(integrity(
                    "manifest.json was changed after it was signed (its digest differs from \
                     the signed one)"
                        .into(),
                ));
            }
            Ok(Voucher::Signature {
                key_id: signed.key_id.clone(),
                signed_at: signed.time,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_same_bytes_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed(&[7; 32]);
        let other = SigningKey::from_seed(&[8; 32]);
        let manifest = b"{\"manifest_version\": 1}\n";
        let time = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        std::fs::write(dir.path().join(SIGNATURE_FILE), sign(&key, manifest, time)).unwrap();
        let v = check(dir.path(), manifest, Some(&key.public())).unwrap();
        assert_eq!(
            v,
            Voucher::Signature {
                key_id: key.public().key_id(),
                signed_at: time
            }
        );
        let e = check(
            dir.path(),
            b"{\"manifest_version\": 2}\n",
            Some(&key.public()),
        );
        assert_eq!(e.unwrap_err().kind, ExitKind::Integrity);
        let e = check(dir.path(), manifest, Some(&other.public())).unwrap_err();
        assert!(e.message.contains("not by the given key"), "{}", e.message);
        assert_eq!(
            check(dir.path(), manifest, None).unwrap_err().kind,
            ExitKind::Refused
        );
    }
}
