//! Issue 10, hostile input on disk: folders owned by someone else or writable by others,
//! and a backup folder whose `manifest.json` tries to vouch for itself.

mod backup_helpers;
mod support;

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use assert_cmd::Command;
use backup_helpers::*;

/// The uid of `nobody`: "someone else" for tests that run as root.
const NOBODY: u32 = 65534;

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_a_folder_owned_by_someone_else_or_a_parent_others_may_write() {
    let db = support::TestDb::create("hf_owner").await;
    load_fixture(&db.name).await;
    let parent = out_dir();

    // An existing private folder, but owned by another user.
    let theirs = parent.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o700);
    chown(&theirs, Some(NOBODY), None).unwrap();
    let a = backup_cmd(&db.name, &theirs).assert().code(5);
    let err = stderr(&a);
    assert!(
        err.contains(&theirs.display().to_string()) && err.contains("uid 65534"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);

    // A new folder to be created directly inside a sticky, world-writable one (like /tmp).
    let shared = parent.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let a = backup_cmd(&db.name, &shared.join("dumps")).assert().code(5);
    let err = stderr(&a);
    assert!(err.contains("mode 1777") && err.contains("write"), "{err}");
    assert!(!shared.join("dumps").exists());

    // A symlink standing in for the folder is not followed.
    let real = parent.path().join("real");
    std::fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let a = backup_cmd(&db.name, &link).assert().code(5);
    assert!(stderr(&a).contains("symlink"), "{}", stderr(&a));

    // A private folder of ours inside the shared one is fine.
    let ours = shared.join("ours");
    std::fs::create_dir(&ours).unwrap();
    chmod(&ours, 0o700);
    backup_cmd(&db.name, &ours.join("dumps")).assert().success();
}

#[test]
fn a_ledger_folder_owned_by_someone_else_or_writable_by_others_is_not_opened_for_writing() {
    use oms_upgrade::ledger::Ledger;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    chown(&dir, Some(NOBODY), None).unwrap();
    let e = Ledger::open_writer(&dir).unwrap_err().to_string();
    assert!(
        e.contains("uid 65534") && e.contains(&dir.display().to_string()),
        "{e}"
    );

    chown(&dir, Some(0), None).unwrap();
    chmod(&dir, 0o775);
    let e = Ledger::open_writer(&dir).unwrap_err().to_string();
    assert!(e.contains("mode 775") && e.contains("chmod go-w"), "{e}");

    // Created into a parent that others may write to: refused, nothing created.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    assert!(Ledger::open_writer(shared.join("ledger")).is_err());
    assert!(!shared.join("ledger").exists());

    chmod(&dir, 0o755);
    Ledger::open_writer(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// A manifest that vouches for itself.

/// A backed-up database changed since (a marker table), so a restore that ran shows.
struct Marked {
    db: support::TestDb,
    parent: tempfile::TempDir,
    /// The backup folder.
    out: std::path::PathBuf,
    /// The dump file's name in it.
    file: String,
    /// The database as it is now, after the backup.
    marked: Snapshot,
}

async fn marked_backup(prefix: &str) -> Marked {
    let db = support::TestDb::create(prefix).await;
    load_fixture(&db.name).await;
    let parent = out_dir();
    let out = parent.path().join("b");
    backup_cmd(&db.name, &out).assert().success();
    let file = format!("{}.sql", db.name);
    exec(&db.name, "CREATE TABLE zz_marker (x INT)").await;
    let marked = snapshot(&db.name).await;
    Marked {
        db,
        parent,
        out,
        file,
        marked,
    }
}

fn restore_cmd(from: &Path) -> Command {
    let mut c = bin();
    c.env("OMS_META_PASSWORD", password()).args([
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--yes",
    ]);
    c
}

/// `restore --yes` into the test server, confirmed with `--meta-url`.
fn restore_to_test_server(from: &Path) -> Command {
    let mut c = restore_cmd(from);
    c.args(["--meta-url", &url()]);
    c
}

/// Edits `manifest.json` in `dir` through its JSON.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_manifest_paths_that_leave_the_folder() {
    let Marked {
        db,
        parent,
        out,
        file,
        marked,
    } = marked_backup("hf_paths").await;
    // The same bytes outside the folder, so the recorded BLAKE3 matches wherever it points.
    let outside = parent.path().join("outside.sql");
    std::fs::copy(out.join(&file), &outside).unwrap();

    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("..", "../outside.sql".into()),
        ("absolute", outside.to_str().unwrap().into()),
    ];
    for (what, path) in cases {
        edit_manifest(&out, |v| v["databases"][0]["file"] = path.clone());
        let a = restore_to_test_server(&out).assert().code(5);
        let err = stderr(&a);
        assert!(
            err.contains("outside") || err.contains("inside"),
            "{what}: {err}"
        );
        assert_eq!(
            snapshot(&db.name).await,
            marked,
            "{what}: the database was touched"
        );
    }
    // A symlink inside the folder that points out of it.
    edit_manifest(&out, |v| v["databases"][0]["file"] = file.clone().into());
    std::fs::remove_file(out.join(&file)).unwrap();
    std::os::unix::fs::symlink(&outside, out.join(&file)).unwrap();
    let a = restore_to_test_server(&out).assert().code(5);
    assert!(stderr(&a).contains("symlink"), "{}", stderr(&a));
    assert_eq!(snapshot(&db.name).await, marked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_charset_and_collation_names_that_are_not_plain_or_not_known() {
    let Marked {
        db,
        out,
        marked,
        parent: _kept,
        ..
    } = marked_backup("hf_charset").await;

    edit_manifest(&out, |v| {
        v["databases"][0]["charset"] = "utf8mb4; DROP DATABASE x".into()
    });
    let a = restore_to_test_server(&out).assert().code(5);
    let err = stderr(&a);
    assert!(
        err.contains("utf8mb4; DROP DATABASE x") && err.contains("charset"),
        "{err}"
    );
    assert_eq!(snapshot(&db.name).await, marked);

    // A plain name the server does not know: refused before anything is dropped.
    edit_manifest(&out, |v| {
        v["databases"][0]["charset"] = "utf8mb4".into();
        v["databases"][0]["collation"] = "no_such_collation".into();
    });
    let a = restore_to_test_server(&out).assert().code(5);
    let err = stderr(&a);
    assert!(err.contains("no_such_collation"), "{err}");
    assert_eq!(snapshot(&db.name).await, marked, "the database was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_takes_the_target_server_from_the_manifest_only_when_confirmed() {
    let Marked {
        db,
        out,
        marked,
        parent: _kept,
        ..
    } = marked_backup("hf_target").await;
    // --yes confirms dropping databases, not a server named by the folder's own file.
    let a = restore_cmd(&out).assert().code(7);
    let err = stderr(&a);
    let t = support::mysql_target();
    assert!(
        err.contains(&format!("{}:{}", t.host, t.port)) && err.contains("--meta-url"),
        "{err}"
    );
    assert_eq!(snapshot(&db.name).await, marked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_manifest_is_checked_and_the_restore_says_what_vouched() {
    let db = support::TestDb::create("hf_signed").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let parent = out_dir();
    let keys = parent.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = keys.join("k");
    let other = keys.join("other");
    for k in [&key, &other] {
        bin()
            .args(["ledger", "keygen", "--out", k.to_str().unwrap()])
            .assert()
            .success();
    }
    let pubkey = |k: &Path| format!("{}.pub", k.display());
    let out = parent.path().join("signed");
    backup_cmd(&db.name, &out)
        .env("OMS_UPGRADE_SIGNING_KEY", &key)
        .assert()
        .success();
    assert!(out.join("manifest.json.sig").exists());

    // The right key: restored, and the output says the signature vouched.
    let a = restore_to_test_server(&out)
        .args(["--pubkey", &pubkey(&key)])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        text.contains("signature") && text.contains("key-id"),
        "{text}"
    );
    assert_eq!(snapshot(&db.name).await, before);

    // No --pubkey for a signed manifest, or the wrong key: refused.
    let a = restore_to_test_server(&out).assert().code(7);
    assert!(stderr(&a).contains("--pubkey"), "{}", stderr(&a));
    let a = restore_to_test_server(&out)
        .args(["--pubkey", &pubkey(&other)])
        .assert()
        .code(3);
    assert!(stderr(&a).contains("key"), "{}", stderr(&a));

    // A tampered manifest no longer verifies.
    edit_manifest(&out, |v| {
        v["databases"][0]["tables"][0]["rows"] = 999.into()
    });
    let a = restore_to_test_server(&out)
        .args(["--pubkey", &pubkey(&key)])
        .assert()
        .code(3);
    assert!(stderr(&a).contains("manifest.json"), "{}", stderr(&a));

    // Unsigned: restored, with a warning that only the manifest vouches for the hashes.
    let plain = parent.path().join("plain");
    backup_cmd(&db.name, &plain).assert().success();
    let a = restore_to_test_server(&plain).assert().success();
    let err = stderr(&a);
    assert!(
        err.contains("warning") && err.contains("only manifest.json"),
        "{err}"
    );
    let a = bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "--json",
            "restore",
            "--from",
            plain.to_str().unwrap(),
            "--yes",
        ])
        .args(["--meta-url", &url()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(v["vouched_by"]["kind"], "manifest_only");
    // --pubkey given for an unsigned manifest: refused (the operator expected a signature).
    restore_to_test_server(&plain)
        .args(["--pubkey", &pubkey(&key)])
        .assert()
        .code(7);
}

/// `restore --from DIR --yes` without `--meta-url`, run on a terminal (`script` gives it
/// one) that answers `answer`; returns the exit code and everything the terminal showed.
fn restore_on_a_terminal(from: &Path, answer: &str) -> (Option<i32>, String) {
    let bin = assert_cmd::cargo::cargo_bin("oms-upgrade");
    let cmdline = format!("{} restore --from {} --yes", bin.display(), from.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("OMS_META_PASSWORD", password())
        .env_remove("OMS_UPGRADE_SIGNING_KEY")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{answer}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("run under script(1)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_manifests_server_is_used_only_after_a_yes_naming_it() {
    let Marked {
        db,
        out,
        marked,
        parent: _kept,
        ..
    } = marked_backup("hf_tty").await;
    let t = support::mysql_target();
    let named = format!("{}:{}", t.host, t.port);

    let (code, text) = restore_on_a_terminal(&out, "no");
    assert_eq!(code, Some(7), "{text}");
    assert!(text.contains(&named) && text.contains("declined"), "{text}");
    assert_eq!(snapshot(&db.name).await, marked);

    let (code, text) = restore_on_a_terminal(&out, "yes");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&named), "{text}");
    assert_ne!(snapshot(&db.name).await, marked, "the restore did not run");
}
