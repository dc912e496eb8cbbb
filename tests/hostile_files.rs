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

fn bin() -> Command {
    let mut c = Command::cargo_bin("oms-upgrade").unwrap();
    c.env_remove("OMS_META_PASSWORD")
        .env_remove("OMS_UPGRADE_SIGNING_KEY")
        .env("NO_COLOR", "1");
    c
}

fn url() -> String {
    let t = support::mysql_target();
    format!("mysql://{}@{}:{}", t.user, t.host, t.port)
}

fn password() -> String {
    support::mysql_target().password.expose().to_string()
}

fn backup_cmd(db: &str, out: &Path) -> Command {
    let mut c = bin();
    c.env("OMS_META_PASSWORD", password()).args([
        "backup",
        "--meta-url",
        &url(),
        "--databases",
        db,
        "--out",
        out.to_str().unwrap(),
    ]);
    c
}

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
