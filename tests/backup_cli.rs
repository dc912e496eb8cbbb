//! `oms-upgrade backup` and `oms-upgrade restore` as a user runs them: exit codes, JSON
//! output, the confirmation rule, file modes, and the password kept out of argv and logs.

mod backup_helpers;
mod support;

use std::os::unix::fs::PermissionsExt;

use backup_helpers::*;

fn json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_with_confirmation_rules_and_json() {
    let db = support::TestDb::create("bk_cli").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let parent = out_dir();
    let out = parent.path().join("new-folder");

    let a = backup_cmd(&db.name, &out).arg("--json").assert().success();
    let v = json(&a.get_output().stdout);
    assert_eq!(v["ok"], true);
    let art = &v["manifest"]["databases"][0];
    assert_eq!(art["database"], db.name.as_str());
    assert_eq!(art["format"], "native");
    assert_eq!(
        art["tables"].as_array().unwrap().len(),
        before.checksum_table.len()
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in std::fs::read_dir(&out).unwrap() {
        assert_eq!(
            f.unwrap().metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A second backup into the same folder is refused rather than overwriting.
    backup_cmd(&db.name, &out).assert().code(5);

    exec(&db.name, "CREATE TABLE zz_marker (x INT)").await;
    let marked = snapshot(&db.name).await;
    // stdin is not a terminal: no --yes, no restore.
    let a = bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "restore",
            "--from",
            out.to_str().unwrap(),
            "--meta-url",
            &url(),
        ])
        .assert()
        .code(7);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        snapshot(&db.name).await,
        marked,
        "a refused restore touched the database"
    );

    let a = bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "--json",
            "restore",
            "--meta-url",
            &url(),
            "--from",
            out.to_str().unwrap(),
            "--yes",
        ])
        .assert()
        .success();
    let v = json(&a.get_output().stdout);
    assert_eq!(v["ok"], true);
    assert_eq!(v["databases"][0]["database"], db.name.as_str());
    assert_eq!(snapshot(&db.name).await, before);

    // Text summaries.
    let a = bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "restore",
            "--meta-url",
            &url(),
            "--from",
            out.to_str().unwrap(),
            "--yes",
            "--databases",
            &db.name,
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        text.contains("all match") && text.contains(&db.name),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_have_the_documented_exit_codes() {
    let db = support::TestDb::create("bk_clie").await;
    load_fixture(&db.name).await;
    let parent = out_dir();
    let out = parent.path().join("o");

    // No password anywhere.
    let a = bin()
        .args([
            "backup",
            "--meta-url",
            &url(),
            "--databases",
            &db.name,
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .code(5);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("OMS_META_PASSWORD"));
    // A password in the URL is refused and not echoed.
    let t = support::mysql_target();
    let a = bin()
        .args([
            "backup",
            "--meta-url",
            &format!("mysql://{}:s3cr3t-in-url@{}:{}", t.user, t.host, t.port),
        ])
        .args(["--databases", &db.name, "--out", out.to_str().unwrap()])
        .assert()
        .code(5);
    assert!(!String::from_utf8_lossy(&a.get_output().stderr).contains("s3cr3t-in-url"));
    // Wrong password: the server refuses (Service), in JSON too.
    let a = bin()
        .env("OMS_META_PASSWORD", "wrong-password")
        .args([
            "--json",
            "backup",
            "--meta-url",
            &url(),
            "--databases",
            &db.name,
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .code(6);
    let v = json(&a.get_output().stdout);
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("access denied")
    );
    // Unknown database.
    let a = backup_cmd("bk_cli_no_such_db", &out).assert().code(5);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("bk_cli_no_such_db"));
    assert_eq!(files_in(&out), Vec::<String>::new());
    // Password from a file.
    let pw = parent.path().join("pw");
    std::fs::write(&pw, format!("{}\n", password())).unwrap();
    bin()
        .args([
            "backup",
            "--meta-url",
            &url(),
            "--databases",
            &db.name,
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "--compress",
            "zstd",
        ])
        .assert()
        .success();
    // An altered dump: Integrity.
    let file = out.join(format!("{}.sql.zst", db.name));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(&file, bytes).unwrap();
    let a = bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "restore",
            "--from",
            out.to_str().unwrap(),
            "--yes",
            "--meta-url",
            &url(),
        ])
        .assert()
        .code(3);
    assert!(
        String::from_utf8_lossy(&a.get_output().stderr)
            .contains("does not match its recorded checksum")
    );
    // Not a backup folder.
    bin()
        .env("OMS_META_PASSWORD", password())
        .args([
            "restore",
            "--meta-url",
            &url(),
            "--from",
            parent.path().to_str().unwrap(),
            "--yes",
        ])
        .assert()
        .code(5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_size_limit_fails_the_backup_and_leaves_nothing() {
    let db = support::TestDb::create("bk_fsz").await;
    load_fixture(&db.name).await;
    seed_big(&db.name, "big", 15_000).await;
    let parent = out_dir();
    let out = parent.path().join("o");
    let bin_path = assert_cmd::cargo::cargo_bin("oms-upgrade");
    // RLIMIT_FSIZE of about 1 MB, with SIGXFSZ ignored so writes fail with EFBIG instead of
    // killing the process: the equivalent of a full disk without mounting anything.
    let a = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 2048; trap '' XFSZ; exec \"$@\"")
        .arg("sh")
        .arg(&bin_path)
        .args([
            "backup",
            "--meta-url",
            &url(),
            "--databases",
            &db.name,
            "--out",
            out.to_str().unwrap(),
        ])
        .env("OMS_META_PASSWORD", password())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(6), "{err}");
    assert!(err.contains("no space left"), "{err}");
    assert_eq!(files_in(&out), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_stays_out_of_logs_and_output() {
    let db = support::TestDb::create("bk_log").await;
    load_fixture(&db.name).await;
    let parent = out_dir();
    let out = parent.path().join("o");
    for dumper in ["native", "mysqldump"] {
        let dir = out.join(dumper);
        let a = backup_cmd(&db.name, &dir)
            .args(["-vv", "--dumper", dumper])
            .env("RUST_LOG", "trace")
            .assert()
            .success();
        let all = [a.get_output().stdout.clone(), a.get_output().stderr.clone()].concat();
        let all = String::from_utf8_lossy(&all);
        assert!(all.contains("dump written"), "trace logging was on");
        assert!(
            !all.contains(&password()),
            "the password appeared in the output or logs"
        );
        for f in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(&password()));
        }
    }
}
