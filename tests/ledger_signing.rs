//! Signed checkpoints as a user runs them: `ledger keygen`, `ledger checkpoint --sign`,
//! `ledger verify --anchor FILE --pubkey KEY`, and the independent Python verifier
//! (`ledger-schema/verify_export.py --anchor FILE --pubkey KEY`) reaching the same verdict
//! on a valid checkpoint and on every kind of forgery.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use support::ledger_with_notes;

use assert_cmd::cargo::cargo_bin_cmd;

fn oms(dir: &Path) -> assert_cmd::Command {
    let mut c = cargo_bin_cmd!("oms-upgrade");
    c.env_remove("OMS_UPGRADE_LEDGER")
        .env_remove("OMS_UPGRADE_SIGNING_KEY")
        .env("RUST_LOG", "off")
        .arg("--ledger")
        .arg(dir)
        .arg("ledger");
    c
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// `ledger keygen --out KEYFILE`; returns the public key text.
fn keygen(ledger: &Path, keyfile: &Path) -> String {
    let out = oms(ledger)
        .args(["--json", "keygen", "--out"])
        .arg(keyfile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json(&out)["public_key"].as_str().unwrap().to_string()
}

fn python() -> String {
    std::env::var("OMS_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").into())
}

/// The Python verifier on `export` with `--json` and the given extra arguments.
fn py_verify(export: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let py = python();
    let has_crypto = std::process::Command::new(&py)
        .args(["-c", "import blake3, cryptography"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {py} ({e}); run `scripts/test` to set up the venv"));
    assert!(
        has_crypto.success(),
        "the test venv lacks blake3 or cryptography; run `scripts/test` (or \
         `bash -c 'source scripts/services.sh; ensure_python'`)"
    );
    std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/verify_export.py"))
        .arg(export)
        .arg("--json")
        .args(args)
        .output()
        .unwrap()
}

/// Both verifiers on one checkpoint and key: (binary exit, binary problem kind, python
/// exit, python problem kind), with the two required to agree.
fn both_verdicts(
    ledger: &Path,
    export: &Path,
    checkpoint: &Path,
    pubkey: &str,
) -> (i32, Option<String>) {
    let bin = oms(ledger)
        .args(["--json", "verify", "--anchor"])
        .arg(checkpoint)
        .args(["--pubkey", pubkey])
        .output()
        .unwrap();
    let py = py_verify(
        export,
        &[
            "--anchor".as_ref(),
            checkpoint.as_os_str(),
            "--pubkey".as_ref(),
            pubkey.as_ref(),
        ],
    );
    let kind = |v: &serde_json::Value| v["problem"]["kind"].as_str().map(str::to_string);
    let (b, p) = (json(&bin), json(&py));
    let verdict = (bin.status.code().unwrap(), kind(&b));
    assert_eq!(
        verdict,
        (py.status.code().unwrap(), kind(&p)),
        "the binary and verify_export.py disagree on {}:\nbinary: {b}\npython: {p}\n{}",
        checkpoint.display(),
        stderr(&py)
    );
    assert_eq!(b["exit_code"], p["exit_code"]);
    verdict
}

#[test]
fn keygen_writes_a_private_key_0600_and_the_public_key_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("ops.key");
    let out = oms(tmp.path())
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private key mode {mode:o}");
    let pubfile = tmp.path().join("ops.key.pub");
    let public = std::fs::read_to_string(&pubfile).unwrap();
    let line = public.lines().find(|l| l.starts_with("ed25519:")).unwrap();
    assert_eq!(line.len(), "ed25519:".len() + 64, "{public}");
    assert!(text.contains(line), "keygen prints the public key:\n{text}");
    let private = std::fs::read_to_string(&key).unwrap();
    let secret = private.lines().find(|l| l.starts_with("secret:")).unwrap();
    let secret_hex = secret.trim_start_matches("secret:").trim();
    assert!(
        !text.contains(secret_hex) && !public.contains(secret_hex),
        "the secret leaked"
    );

    // A second keygen onto the same file is refused and leaves the key as it was.
    let out = oms(tmp.path())
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);

    // OMS_UPGRADE_SIGNING_KEY names the default location.
    let env_key = tmp.path().join("env.key");
    let out = oms(tmp.path())
        .env("OMS_UPGRADE_SIGNING_KEY", &env_key)
        .arg("keygen")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env_key.exists() && tmp.path().join("env.key.pub").exists());
}

#[test]
fn signed_checkpoint_passes_and_every_forgery_is_rejected_by_both_verifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, hashes) = ledger_with_notes(tmp.path(), 3);
    let key = tmp.path().join("ops.key");
    let public = keygen(&ledger, &key);
    let other_key = tmp.path().join("other.key");
    let other_public = keygen(&ledger, &other_key);
    let export = tmp.path().join("export.jsonl");
    let out = oms(&ledger)
        .args(["export", "--out"])
        .arg(&export)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let cp = tmp.path().join("ticket.checkpoint");
    let out = oms(&ledger)
        .args(["checkpoint", "--sign"])
        .arg(&key)
        .arg("--out")
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&cp).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "oms-upgrade-checkpoint v2", "{text}");
    assert_eq!(lines[2], "seq: 3");
    assert_eq!(lines[3], format!("head: {}", hashes[2]));
    assert!(
        lines[4].starts_with("time: 20") && lines[4].ends_with('Z'),
        "{text}"
    );
    assert!(lines[5].starts_with("key-id: ") && lines[6].starts_with("signature: "));

    // Valid: both verifiers pass, with the key as a file and as text.
    let pubfile = tmp.path().join("ops.key.pub");
    let pubfile = pubfile.to_str().unwrap();
    assert_eq!(both_verdicts(&ledger, &export, &cp, pubfile), (0, None));
    assert_eq!(both_verdicts(&ledger, &export, &cp, &public), (0, None));
    let out = oms(&ledger)
        .args(["verify", "--anchor"])
        .arg(&cp)
        .args(["--pubkey", &public])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("signature valid"), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("anchor:  seq 3 {} matches", hashes[2])));

    // Forgeries: each file is the valid one with one thing changed.
    let forged = |name: &str, body: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let sig_line = lines[6];
    let mut sig = hex::decode(sig_line.trim_start_matches("signature: ")).unwrap();
    sig[0] ^= 0x80;
    let time_digit_changed = {
        let t = lines[4];
        let last_digit = t.len() - 2; // before the `Z`
        let d = t.as_bytes()[last_digit];
        let new = if d == b'9' { '0' } else { (d + 1) as char };
        format!("{}{new}Z", &t[..last_digit])
    };
    let cases = [
        (
            "wrong key",
            text.clone(),
            other_public.as_str(),
            "key_mismatch",
        ),
        (
            "altered seq",
            text.replace("seq: 3", "seq: 2"),
            &public,
            "bad_signature",
        ),
        (
            "altered head",
            text.replace(&hashes[2].to_hex(), &hashes[1].to_hex()),
            &public,
            "bad_signature",
        ),
        (
            "altered time",
            text.replace(lines[4], &time_digit_changed),
            &public,
            "bad_signature",
        ),
        (
            "signature bytes flipped",
            text.replace(sig_line, &format!("signature: {}", hex::encode(&sig))),
            &public,
            "bad_signature",
        ),
    ];
    for (i, (what, body, key, kind)) in cases.into_iter().enumerate() {
        let p = forged(&format!("forged-{i}.checkpoint"), body);
        let (code, got) = both_verdicts(&ledger, &export, &p, key);
        assert_eq!((code, got.as_deref()), (3, Some(kind)), "{what}");
        let out = oms(&ledger)
            .args(["verify", "--anchor"])
            .arg(&p)
            .args(["--pubkey", key])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains(&format!("REJECTED: {kind}")),
            "{what}: {}",
            stdout(&out)
        );
    }

    // Made by another key that claims our key id: the key id matches, the signature not.
    let other_cp = tmp.path().join("other.checkpoint");
    let out = oms(&ledger)
        .args(["checkpoint", "--sign"])
        .arg(&other_key)
        .arg("--out")
        .arg(&other_cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let other_text = std::fs::read_to_string(&other_cp).unwrap();
    let our_id = &lines[5]["key-id: ".len()..];
    let their_id_line = other_text.lines().nth(5).unwrap();
    let claims_ours = forged(
        "claims-ours.checkpoint",
        other_text.replace(their_id_line, &format!("key-id: {our_id}")),
    );
    assert_eq!(
        both_verdicts(&ledger, &export, &claims_ours, &public),
        (3, Some("bad_signature".into()))
    );

    // An unsigned checkpoint does not pass when a signature is required...
    let v1 = tmp.path().join("v1.checkpoint");
    let out = oms(&ledger)
        .args(["checkpoint", "--out"])
        .arg(&v1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        both_verdicts(&ledger, &export, &v1, &public),
        (3, Some("unsigned_checkpoint".into()))
    );
    // ...but keeps working as before without --pubkey, in both verifiers.
    let out = oms(&ledger)
        .args(["verify", "--anchor"])
        .arg(&v1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let py = py_verify(&export, &["--anchor".as_ref(), v1.as_os_str()]);
    assert_eq!(py.status.code(), Some(0), "{}", stdout(&py));

    // A signed checkpoint without --pubkey is still an anchor; the output says the
    // signature was not checked.
    let out = oms(&ledger)
        .args(["verify", "--anchor"])
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("signature NOT checked"),
        "{}",
        stdout(&out)
    );
    let py = py_verify(&export, &["--anchor".as_ref(), cp.as_os_str()]);
    assert_eq!(py.status.code(), Some(0), "{}", stdout(&py));
}

#[test]
fn a_valid_signature_does_not_excuse_a_ledger_that_no_longer_matches() {
    // The checkpoint is genuine, but the ledger it is checked against is another one (a
    // replaced folder): the signature passes and the anchor check fails, in both verifiers.
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_notes(tmp.path(), 2);
    let key = tmp.path().join("ops.key");
    let public = keygen(&ledger, &key);
    let cp = tmp.path().join("cp");
    let out = oms(&ledger)
        .args(["checkpoint", "--sign"])
        .arg(&key)
        .arg("--out")
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let other_root = tmp.path().join("other");
    std::fs::create_dir(&other_root).unwrap();
    let (replaced, _) = ledger_with_notes(&other_root, 2);
    let export = tmp.path().join("replaced.jsonl");
    let out = oms(&replaced)
        .args(["export", "--out"])
        .arg(&export)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        both_verdicts(&replaced, &export, &cp, &public),
        (3, Some("anchor_ledger_mismatch".into()))
    );
}

#[test]
fn bad_keys_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_notes(tmp.path(), 1);
    let key = tmp.path().join("ops.key");
    keygen(&ledger, &key);

    // A private key others may read is refused, nothing is written.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cp = tmp.path().join("cp");
    let out = oms(&ledger)
        .args(["checkpoint", "--sign"])
        .arg(&key)
        .arg("--out")
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!cp.exists());

    // --pubkey without --anchor, a public key that is not one, a missing key file.
    let out = oms(&ledger)
        .args(["verify", "--pubkey", "ed25519:00"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("--anchor"), "{}", stderr(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = oms(&ledger)
        .args(["checkpoint", "--sign"])
        .arg(&key)
        .arg("--out")
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for bad in ["ed25519:1234", "/nonexistent/key.pub"] {
        let out = oms(&ledger)
            .args(["verify", "--anchor"])
            .arg(&cp)
            .args(["--pubkey", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    }
    // The private key file given as --pubkey is not a public key.
    let out = oms(&ledger)
        .args(["verify", "--anchor"])
        .arg(&cp)
        .arg("--pubkey")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}
