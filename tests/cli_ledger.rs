//! `oms-upgrade ledger ...` as a user runs it: output formats, checkpoints, exports checked
//! by the Python verifier, and bad input (one-line error, a hint, the documented exit code).
//! Integrity under tampering, crashes and concurrency is in `ledger_integrity.rs`.

mod support;

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use oms_upgrade::ledger::{Anchor, Hash, Ledger};

fn oms(dir: &Path) -> assert_cmd::Command {
    let mut c = cargo_bin_cmd!("oms-upgrade");
    c.env_remove("OMS_UPGRADE_LEDGER")
        .env("RUST_LOG", "off")
        .arg("--ledger")
        .arg(dir)
        .arg("ledger");
    c
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A bad-input failure: exit code, exactly one `error:` line and one `hint:` line.
fn assert_one_line_error(out: &std::process::Output, code: i32, says: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "want `error:` + `hint:`, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(says), "{err}");
    assert!(lines[1].starts_with("hint: "), "{err}");
}

/// A temp folder holding a ledger of `n` notes (see `support::ledger_with_notes`).
fn ledger_with_notes(n: i64) -> (tempfile::TempDir, PathBuf, Vec<Hash>) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hashes) = support::ledger_with_notes(tmp.path(), n);
    (tmp, dir, hashes)
}

#[test]
fn verify_reports_count_and_head_in_text_and_json() {
    let (_t, dir, hashes) = ledger_with_notes(3);
    let out = oms(&dir).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("OK: 3 records, chain intact, payloads decoded"),
        "{text}"
    );
    assert!(text.contains(&format!("seq 3  {}", hashes[2])), "{text}");

    let out = oms(&dir).args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 3);
    assert_eq!(v["head_seq"], 3);
    assert_eq!(v["head_hash"], hashes[2].to_hex());
    assert_eq!(v["problem"], serde_json::Value::Null);
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn broken_ledger_exits_3_with_the_first_bad_seq() {
    let (_t, dir, _) = ledger_with_notes(4);
    {
        let db = support::raw_sled(&dir);
        let t = db.open_tree("records").unwrap();
        t.remove(2u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let out = oms(&dir).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.contains("BROKEN at seq 2: gap"), "{text}");
    assert!(text.contains("1 records before it"), "{text}");
    assert!(
        stderr(&out).contains("hint: keep the ledger folder"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn log_shows_a_timeline_and_json_lines() {
    let (_t, dir, hashes) = ledger_with_notes(2);
    let out = oms(&dir).arg("log").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for header in ["SEQ", "TIME (UTC)", "ACTOR", "EVENT", "HASH"] {
        assert!(text.contains(header), "{text}");
    }
    assert!(text.contains("2026-11-25T10:00:01.000000Z"), "{text}");
    assert!(text.contains("alice@oms-node-1"), "{text}");
    assert!(text.contains("note v1"), "{text}");
    assert!(text.contains(&hashes[1].short()), "{text}");

    let out = oms(&dir).args(["log", "--json"]).output().unwrap();
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["time"], "2026-11-25T10:00:01.000000Z");
    assert_eq!(lines[1]["event_type"], "note");
    assert_eq!(lines[1]["operator"], "alice");
    assert_eq!(lines[1]["hash"], hashes[1].to_hex());
    assert_eq!(lines[1]["prev_hash"], hashes[0].to_hex());
    assert_eq!(lines[1]["payload_error"], serde_json::Value::Null);
}

#[test]
fn export_matches_the_schema_and_the_python_verifier_agrees() {
    let (t, dir, hashes) = ledger_with_notes(3);
    // To stdout.
    let out = oms(&dir).arg("export").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "a header and one line per record");
    assert_eq!(lines[0]["format"], "oms-upgrade-ledger-export");
    assert_eq!(lines[3]["seq"], 3);
    assert_eq!(lines[3]["hash"], hashes[2].to_hex());
    assert_eq!(lines[3]["decoded"]["event_type"], "note");
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(lines[3]["stored"].as_str().unwrap())
        .unwrap();
    assert_eq!(&stored[stored.len() - 32..], &hashes[2].0);

    // To a file; the Python verifier (which also validates each line against the JSON
    // Schema when jsonschema is installed, as it is in the test venv) agrees.
    let file = t.path().join("export.jsonl");
    let out = oms(&dir)
        .args(["export", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("exported 3 records"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let py = std::env::var("OMS_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python").into());
    let schema_check = std::process::Command::new(&py)
        .args(["-c", "import jsonschema"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {py} ({e}); run `scripts/test` to set up the venv"));
    assert!(
        schema_check.success(),
        "the test venv lacks jsonschema; run `scripts/test`"
    );
    let out = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-schema/verify_export.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("OK: 3 records, head seq 3 {}", hashes[2])),
        "{}",
        stdout(&out)
    );
}

#[test]
fn checkpoint_prints_pasteable_text_and_verify_checks_against_it() {
    let (t, dir, hashes) = ledger_with_notes(3);
    let out = oms(&dir).arg("checkpoint").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("oms-upgrade-checkpoint v1\n"), "{text}");
    let anchor = Anchor::parse(&text, "stdout").unwrap();
    assert_eq!((anchor.seq, anchor.head), (3, hashes[2]));

    let file = t.path().join("ticket").join("checkpoint.txt");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = oms(&dir)
        .args(["checkpoint", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    let out = oms(&dir)
        .args(["verify", "--anchor"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("anchor:  seq 3 {} matches", hashes[2])));

    let out = oms(&dir).args(["checkpoint", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["seq"], 3);
    assert_eq!(v["text"], text);
}

#[test]
fn checkpoint_of_an_empty_ledger_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    drop(Ledger::open_writer(&dir).unwrap());
    let out = oms(&dir).arg("checkpoint").output().unwrap();
    assert_one_line_error(&out, 5, "has no records yet");
    // An empty ledger itself verifies.
    let out = oms(&dir).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("OK: 0 records"));
}

#[test]
fn a_missing_ledger_folder_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nowhere");
    for cmd in ["verify", "log", "export", "checkpoint"] {
        let out = oms(&dir).arg(cmd).output().unwrap();
        assert_one_line_error(&out, 5, "no ledger at");
        assert!(stderr(&out).contains("--ledger"), "{}", stderr(&out));
    }
    assert!(!dir.exists(), "a read-only command created the folder");
}

#[test]
fn a_folder_that_is_not_a_ledger_is_bad_input_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = oms(&dir).arg("verify").output().unwrap();
    assert_one_line_error(&out, 5, "is not an oms-upgrade ledger");
    assert!(stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["notes.txt"], "the folder was changed");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = oms(&empty).arg("log").output().unwrap();
    assert_one_line_error(&out, 5, "the folder is empty");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = oms(&file).arg("export").output().unwrap();
    assert_one_line_error(&out, 5, "not a folder");

    // A sled database that oms-upgrade did not create.
    let foreign = tmp.path().join("foreign");
    drop(sled::open(&foreign).unwrap());
    let out = oms(&foreign).arg("verify").output().unwrap();
    assert_one_line_error(&out, 5, "is not an oms-upgrade ledger");
}

#[test]
fn an_unreadable_or_invalid_anchor_is_bad_input() {
    let (t, dir, _) = ledger_with_notes(1);
    let missing = t.path().join("no-such-checkpoint.txt");
    let out = oms(&dir)
        .args(["verify", "--anchor"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_one_line_error(&out, 5, "cannot read checkpoint file");
    assert!(stderr(&out).contains("--anchor"));

    // A folder given as the file (unreadable as text even for root).
    let out = oms(&dir)
        .args(["verify", "--anchor"])
        .arg(t.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, 5, "cannot read checkpoint file");

    for (content, says) in [
        (&b"\xff\xfe not text"[..], "cannot read checkpoint file"),
        (b"hello\n", "is not a valid checkpoint"),
        (b"oms-upgrade-checkpoint v9\n", "checkpoint format `v9`"),
    ] {
        let bad = t.path().join("bad.txt");
        std::fs::write(&bad, content).unwrap();
        let out = oms(&dir)
            .args(["verify", "--anchor"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_one_line_error(&out, 5, says);
    }
}

#[test]
fn errors_in_json_mode_are_one_json_object() {
    let tmp = tempfile::tempdir().unwrap();
    let out = oms(&tmp.path().join("nowhere"))
        .args(["verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 5);
    assert!(v["error"]["hint"].as_str().unwrap().contains("--ledger"));
}

#[test]
fn default_ledger_folder_comes_from_the_environment() {
    let (_t, dir, _) = ledger_with_notes(1);
    let out = cargo_bin_cmd!("oms-upgrade")
        .env("OMS_UPGRADE_LEDGER", &dir)
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&dir.display().to_string()));
}

/// The account name of this process's real uid, as the system's user database says.
fn account_of_real_uid() -> String {
    let uid = unsafe { libc::getuid() };
    let pw = unsafe { libc::getpwuid(uid) };
    assert!(!pw.is_null(), "the test's uid {uid} has no passwd entry");
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// The operator of the last record, with the binary run under an empty environment plus
/// `env` (as under a service manager, where USER and LOGNAME are unset).
fn operator_recorded_with(env: &[(&str, &str)]) -> String {
    let (_t, dir, _) = ledger_with_notes(1);
    let mut note = cargo_bin_cmd!("oms-upgrade");
    note.env_clear()
        .envs(env.iter().copied())
        .arg("--ledger")
        .arg(&dir)
        .args(["note", "who ran this"]);
    let out = note.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = oms(&dir).arg("export").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("decoded").cloned())
        .filter(|v| v["operator"].is_string())
        .collect();
    assert_eq!(records.len(), 2, "the note written before and ours: {text}");
    records[1]["operator"].as_str().unwrap().to_string()
}

/// Regression: with USER and LOGNAME unset the record said the operator was "unknown".
/// It is the real uid's account, and the sudo caller beside it when there is one.
#[test]
fn operator_is_the_real_account_never_unknown() {
    let me = account_of_real_uid();
    assert_eq!(operator_recorded_with(&[]), me);
    assert_eq!(
        operator_recorded_with(&[("SUDO_USER", "alice")]),
        format!("alice (sudo as {me})")
    );
    // USER is only what the environment claims: the account of the uid wins.
    assert_eq!(operator_recorded_with(&[("USER", "mallory")]), me);
}

/// Regression: a non-root operator's default ledger was under /var/lib, where they cannot
/// create folders. Without --ledger it is now in their XDG state folder. (Run as `nobody`
/// when the tests run as root.)
#[test]
fn a_non_root_operator_defaults_to_the_xdg_state_folder() {
    use std::os::unix::process::CommandExt;
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_oms-upgrade"));
    c.env_clear().env("HOME", home.path()).arg("status");
    if unsafe { libc::getuid() } == 0 {
        c.uid(65534).gid(65534);
    }
    let out = c.output().unwrap();
    let want = home.path().join(".local/state/oms-upgrade/ledger");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("no ledger at {}", want.display())),
        "{}",
        stderr(&out)
    );
}
