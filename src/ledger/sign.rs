//! Ed25519 keys that sign checkpoints, and the check of a signed checkpoint.
//!
//! An unsigned checkpoint proves the ledger was not cut short, but only as long as the
//! checkpoint itself is trusted; whoever can edit the ledger folder can often edit a
//! checkpoint file kept next to it. A signature by a key the operator keeps elsewhere
//! closes that gap: a checkpoint whose seq, head, time or ledger id was changed, or that
//! was made by another key, no longer verifies with the operator's public key.
//!
//! Text forms (documented in `ledger-schema/RECORD.md`, section 3):
//! - public key: `ed25519:` and 64 hex characters (the 32-byte Ed25519 public key);
//! - key id: the first 8 bytes of the public key's BLAKE3 hash, 16 hex characters;
//! - private key file: `oms-upgrade-signing-key v1`, then `secret: ` and 64 hex characters
//!   (the 32-byte Ed25519 seed); `#` comment lines allowed. Written with mode 0600, and
//!   refused when group or others may read it.
//!
//! The time of a checkpoint comes from the caller; nothing here reads the clock.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer};
use zeroize::Zeroizing;

use super::anchor::{Anchor, Checkpoint, KEY_ID_HEX_LEN, SignedCheckpoint};

/// Prefix of a public key's text form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// First line of a private key file.
pub const KEY_FILE_HEADER: &str = "oms-upgrade-signing-key v1";

/// Why a key cannot be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (e.g. "cannot read the signing key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The private key file exists already; overwriting it would lose the key.
    #[error("{} exists already; refusing to overwrite a key", .0.display())]
    Exists(PathBuf),
    /// Group or others may read the private key file.
    #[error(
        "the signing key {} is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The text is not a key in the expected form.
    #[error("{origin} is not {expected}: {reason}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// What was expected there.
        expected: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// Why a signed checkpoint is not accepted. Each has a stable kind name (`kind`), the
/// same in `ledger verify --json` and `verify_export.py --json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// A public key was given but the checkpoint carries no signature (version 1).
    #[error(
        "the checkpoint is not signed (format v1) but a public key was given; take a signed \
         one with `oms-upgrade ledger checkpoint --sign KEYFILE`"
    )]
    Unsigned,
    /// The checkpoint names another key than the one given.
    #[error(
        "the checkpoint was signed by key {checkpoint_key_id}, not by the given key \
         {given_key_id}"
    )]
    KeyMismatch {
        /// The key id the checkpoint names.
        checkpoint_key_id: String,
        /// The given public key's id.
        given_key_id: String,
    },
    /// The signature does not verify: the signed lines were changed after signing, or the
    /// signature was not made by this key.
    #[error(
        "the signature does not verify with key {key_id}: the checkpoint's ledger-id, seq, \
         head or time was changed after signing, or the signature is forged"
    )]
    BadSignature {
        /// The given public key's id.
        key_id: String,
    },
}

impl SignatureProblem {
    /// Stable kind name: `unsigned_checkpoint`, `key_mismatch`, `bad_signature`.
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureProblem::Unsigned => "unsigned_checkpoint",
            SignatureProblem::KeyMismatch { .. } => "key_mismatch",
            SignatureProblem::BadSignature { .. } => "bad_signature",
        }
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// The text form: `ed25519:` and 64 hex characters.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", hex::encode(self.0.as_bytes()))
    }

    /// The key id: the first 8 bytes of BLAKE3 of the 32 key bytes, in hex.
    pub fn key_id(&self) -> String {
        let h = blake3::hash(self.0.as_bytes());
        hex::encode(&h.as_bytes()[..KEY_ID_HEX_LEN / 2])
    }

    /// Parses the text form; blank and `#` lines around it are ignored, so a `.pub` file
    /// with a comment reads too. `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PublicKey, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            origin: origin.to_string(),
            expected: "an oms-upgrade public key (`ed25519:` and 64 hex characters)",
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| invalid("it is empty".into()))?;
        if lines.next().is_some() {
            return Err(invalid("it has more than one line".into()));
        }
        let hex_part = line
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or_else(|| invalid(format!("it does not start with `{PUBLIC_KEY_PREFIX}`")))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| invalid("the key is not 64 hex characters".into()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| invalid("the bytes are not an Ed25519 public key".into()))
    }

    /// A command-line `--pubkey` value: the key text itself when it starts with
    /// `ed25519:`, else the path of a file holding it.
    pub fn from_arg(arg: &str) -> Result<PublicKey, KeyError> {
        if arg.trim_start().starts_with(PUBLIC_KEY_PREFIX) {
            return PublicKey::parse(arg, "the --pubkey value");
        }
        let path = Path::new(arg);
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            what: "cannot read the public key file",
            path: path.to_path_buf(),
            source,
        })?;
        PublicKey::parse(&text, &format!("public key file {}", path.display()))
    }
}

/// A private key that signs checkpoints. Its bytes are wiped from memory when dropped.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey(key-id {}, secret withheld)",
            self.public().key_id()
        )
    }
}

impl SigningKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// A key from its 32-byte seed (tests and tools that derive keys).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Parses a private key file's text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SigningKey, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            origin: origin.to_string(),
            expected: "an oms-upgrade signing key (as written by `oms-upgrade ledger keygen`)",
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(invalid(format!(
                "the first line must be `{KEY_FILE_HEADER}`"
            )));
        }
        let secret = lines
            .next()
            .and_then(|l| l.strip_prefix("secret:"))
            .map(str::trim)
            .ok_or_else(|| invalid("the second line must be `secret: <64 hex>`".into()))?;
        if lines.next().is_some() {
            return Err(invalid("unexpected lines after `secret`".into()));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret, seed.as_mut())
            .map_err(|_| invalid("the secret is not 64 hex characters".into()))?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// Reads a private key file, refusing one that group or others may read.
    pub fn read_file(path: &Path) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io {
            what: "cannot read the signing key",
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        SigningKey::parse(&text, &format!("signing key file {}", path.display()))
    }

    /// The private key file's text (holds the secret: write it only to a 0600 file).
    fn file_text(&self) -> Zeroizing<String> {
        let public = self.public();
        Zeroizing::new(format!(
            "{KEY_FILE_HEADER}\n\
             # Ed25519 key that signs oms-upgrade checkpoints. Keep it secret.\n\
             # public key: {} (key-id {})\n\
             secret: {}\n",
            public.to_text(),
            public.key_id(),
            hex::encode(self.0.to_bytes())
        ))
    }

    /// Writes the key to a new file with mode 0600 (fsynced); an existing file is
    /// [`KeyError::Exists`] and stays untouched.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            what: "cannot write the signing key",
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_path_buf()),
                _ => io(e),
            })?;
        f.write_all(self.file_text().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Signs a checkpoint of `anchor` taken at `time`.
    pub fn sign_checkpoint(&self, anchor: Anchor, time: DateTime<Utc>) -> SignedCheckpoint {
        let message = SignedCheckpoint::message_for(&anchor, time);
        let signature = self.0.sign(&message).to_bytes();
        SignedCheckpoint::new(anchor, time, self.public().key_id(), signature)
    }
}

/// Checks a checkpoint against `key`: it must be signed, name `key`'s id, and its signature
/// must verify (strict Ed25519) over its signed lines as they stand.
pub fn verify_checkpoint<'a>(
    checkpoint: &'a Checkpoint,
    key: &PublicKey,
) -> Result<&'a SignedCheckpoint, SignatureProblem> {
    let Checkpoint::Signed(signed) = checkpoint else {
        return Err(SignatureProblem::Unsigned);
    };
    let key_id = key.key_id();
    if signed.key_id != key_id {
        return Err(SignatureProblem::KeyMismatch {
            checkpoint_key_id: signed.key_id.clone(),
            given_key_id: key_id,
        });
    }
    key.0
        .verify_strict(&signed.message(), &Signature::from_bytes(&signed.signature))
        .map(|()| signed)
        .map_err(|_| SignatureProblem::BadSignature { key_id })
}

/// Where `run` and `rollback` write the signed checkpoint: next to the ledger folder (not
/// inside it, so that replacing the folder does not replace the checkpoint), named after it:
/// `/var/lib/oms-upgrade/ledger` -> `/var/lib/oms-upgrade/ledger.checkpoint`.
pub fn signed_checkpoint_path(ledger_dir: &Path) -> PathBuf {
    let name = ledger_dir
        .file_name()
        .map_or_else(|| "ledger".into(), |n| n.to_string_lossy().into_owned());
    let parent = match ledger_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!("{name}.checkpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Hash;
    use uuid::Uuid;

    fn anchor() -> Anchor {
        Anchor {
            ledger_id: Uuid::from_u128(0x5b0c9f4e_8f1a_4d7e_9c51_0e6f2a3b4c5d),
            seq: 42,
            head: Hash([0xab; 32]),
        }
    }

    fn time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parse(text: &str) -> Checkpoint {
        Checkpoint::parse(text, "t").unwrap()
    }

    #[test]
    fn valid_signature_passes_and_every_forgery_fails() {
        let key = SigningKey::from_seed(&[1; 32]);
        let other = SigningKey::from_seed(&[2; 32]);
        let text = key.sign_checkpoint(anchor(), time()).to_text();
        let pk = key.public();
        assert!(verify_checkpoint(&parse(&text), &pk).is_ok());

        let kind = |t: &str, k: &PublicKey| verify_checkpoint(&parse(t), k).unwrap_err().kind();
        assert_eq!(kind(&text, &other.public()), "key_mismatch");
        let head = anchor().head.to_hex();
        for (from, to) in [
            ("seq: 42", "seq: 43"),
            (head.as_str(), &"cd".repeat(32)),
            ("10:00:00.500000Z", "10:00:01.500000Z"),
            ("ledger-id: 5b", "ledger-id: 6b"),
        ] {
            assert_eq!(kind(&text.replace(from, to), &pk), "bad_signature", "{to}");
        }
        // One bit of the signature flipped.
        let sig_line = text.lines().last().unwrap();
        let mut sig = hex::decode(sig_line.trim_start_matches("signature: ")).unwrap();
        sig[10] ^= 0x01;
        let flipped = text.replace(sig_line, &format!("signature: {}", hex::encode(&sig)));
        assert_eq!(kind(&flipped, &pk), "bad_signature");
        // Signed by another key that claims our key id.
        let forged = other
            .sign_checkpoint(anchor(), time())
            .to_text()
            .replace(&other.public().key_id(), &pk.key_id());
        assert_eq!(kind(&forged, &pk), "bad_signature");
        // Unsigned.
        assert_eq!(kind(&anchor().to_text(), &pk), "unsigned_checkpoint");
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let key = SigningKey::generate().unwrap();
        let back = SigningKey::parse(&key.file_text(), "t").unwrap();
        assert_eq!(back.public(), key.public());
        let pk = key.public();
        assert_eq!(PublicKey::parse(&pk.to_text(), "t").unwrap(), pk);
        assert_eq!(PublicKey::from_arg(&pk.to_text()).unwrap(), pk);
        assert_eq!(pk.key_id().len(), KEY_ID_HEX_LEN);
        assert_ne!(
            SigningKey::generate().unwrap().public(),
            pk,
            "fresh randomness"
        );
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.to_bytes())));
        for bad in [
            "",
            "ed25519:zz",
            "ssh-ed25519 AAAA",
            "ed25519:00\ned25519:00",
        ] {
            assert!(PublicKey::parse(bad, "t").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = SigningKey::generate().unwrap();
        key.write_new_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(SigningKey::read_file(&path).unwrap().public(), key.public());
        let again = SigningKey::generate().unwrap().write_new_file(&path);
        assert!(matches!(again, Err(KeyError::Exists(_))), "{again:?}");
        assert_eq!(SigningKey::read_file(&path).unwrap().public(), key.public());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::read_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
