//! Failure cases of the backup engine against the real MariaDB. Each must end with a clear
//! error and leave no file that looks complete (no final name, no `.part` either), and a
//! restore that refuses must not have touched the database.

mod backup_helpers;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{
    self, DumpError, DumpOptions, ErrorClass, Progress, Quiet, RestoreOptions,
};
use oms_upgrade::secret::Secret;

/// Kills the dump's connection from another session the first time rows are reported, i.e.
/// while the server is still streaming a big table.
struct KillMidStream {
    db: String,
    fired: AtomicBool,
}

impl Progress for KillMidStream {
    fn advance(&self, _database: &str, _bytes: u64, rows: u64) {
        if rows == 0 || self.fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let db = self.db.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut c = conn(None).await;
                let ids: Vec<u64> = c
                    .exec(
                        "SELECT ID FROM information_schema.PROCESSLIST \
                         WHERE INFO LIKE CONCAT('SELECT %FROM `', ?, '`.`big`%') AND ID <> CONNECTION_ID()",
                        (db,),
                    )
                    .await
                    .unwrap();
                assert_eq!(ids.len(), 1, "exactly one dump connection streams `big`");
                c.query_drop(format!("KILL {}", ids[0])).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_mid_dump_fails_and_leaves_no_file() {
    let db = support::TestDb::create("bk_kill").await;
    load_fixture(&db.name).await;
    // ~45 MB: far more than socket buffers hold, so the kill lands mid-stream.
    seed_big(&db.name, "big", 150_000).await;
    let dir = out_dir();
    let progress = KillMidStream {
        db: db.name.clone(),
        fired: AtomicBool::new(false),
    };
    for compression in [dump::Compression::None, dump::Compression::Zstd] {
        progress.fired.store(false, Ordering::SeqCst);
        let opts = DumpOptions {
            compression,
            ..DumpOptions::default()
        };
        let err = dump::dump_database(
            &support::mysql_target(),
            &db.name,
            dir.path(),
            &opts,
            &progress,
        )
        .await
        .expect_err("a killed connection must fail the dump");
        assert!(progress.fired.load(Ordering::SeqCst));
        assert!(matches!(err, DumpError::Query { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Service);
        assert!(err.to_string().contains(&db.name), "{err}");
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "no file may be left behind"
        );
    }
}

/// A 1 MiB tmpfs mounted for the test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        let args = [
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0700",
            "tmpfs",
            path.as_str(),
        ];
        let ok = std::process::Command::new("mount")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
            || std::process::Command::new("sudo")
                .arg("-n")
                .arg("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a 1 MiB tmpfs at {path}: this test needs root (or password-less sudo) \
             to fill a disk for real; the RLIMIT_FSIZE variant is in backup_cli.rs"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let p = self.dir.path().to_str().unwrap().to_string();
        if !std::process::Command::new("umount")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = std::process::Command::new("sudo")
                .args(["-n", "umount", &p])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_the_dump_and_frees_the_space() {
    let db = support::TestDb::create("bk_full").await;
    load_fixture(&db.name).await;
    seed_big(&db.name, "big", 15_000).await; // ~4.5 MB of SQL
    let disk = SmallDisk::mount();
    for dumper in [dump::Dumper::Native, dump::Dumper::Mysqldump] {
        let opts = DumpOptions {
            dumper,
            ..DumpOptions::default()
        };
        let err = dump::dump_database(
            &support::mysql_target(),
            &db.name,
            disk.path(),
            &opts,
            &Quiet,
        )
        .await
        .expect_err("the dump does not fit in 1 MiB");
        assert!(
            matches!(err, DumpError::DiskFull { .. }),
            "{dumper:?}: {err:?}"
        );
        assert!(err.to_string().contains("no space left"), "{err}");
        assert_eq!(files_in(disk.path()), Vec::<String>::new(), "{dumper:?}");
    }
    // The space really came back: a small dump fits now.
    exec(&db.name, "DROP TABLE big").await;
    dump::dump_database(
        &support::mysql_target(),
        &db.name,
        disk.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .expect("after cleanup a small dump fits");
}

async fn dumped_fixture(prefix: &str) -> (support::TestDb, tempfile::TempDir, dump::DumpArtifact) {
    let db = support::TestDb::create(prefix).await;
    load_fixture(&db.name).await;
    let dir = out_dir();
    let a = dump::dump_database(
        &support::mysql_target(),
        &db.name,
        dir.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    (db, dir, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_altered_dump_is_refused_before_touching_the_database() {
    let (db, _dir, artifact) = dumped_fixture("bk_alt").await;
    let marked = mark(&db.name).await;
    let original = std::fs::read(&artifact.file).unwrap();
    let mut altered = original.clone();
    let i = altered.len() / 2;
    altered[i] ^= 0x01;
    for (what, bytes) in [
        ("truncated", original[..original.len() - 100].to_vec()),
        ("one bit flipped", altered),
        (
            "appended to",
            [original.clone(), b"DROP TABLE t_types;\n".to_vec()].concat(),
        ),
    ] {
        std::fs::write(&artifact.file, &bytes).unwrap();
        let err = dump::restore_database(
            &support::mysql_target(),
            &artifact,
            &RestoreOptions::default(),
            &Quiet,
        )
        .await
        .expect_err(what);
        assert!(
            matches!(err, DumpError::ChecksumMismatch { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Integrity);
        assert!(err.to_string().contains("Nothing was changed"), "{err}");
        assert!(matches!(
            dump::verify_artifact(&artifact),
            Err(DumpError::ChecksumMismatch { .. })
        ));
        assert_eq!(
            snapshot(&db.name).await,
            marked,
            "{what}: the database was touched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_restore_checks_every_file_before_touching_any_database() {
    let dbs = [
        support::TestDb::create("bk_mf1").await,
        support::TestDb::create("bk_mf2").await,
    ];
    for d in &dbs {
        load_fixture(&d.name).await;
    }
    let names: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
    let dir = out_dir();
    let manifest = dump::backup(
        &support::mysql_target(),
        &names,
        dir.path(),
        &DumpOptions::default(),
        std::sync::Arc::new(Quiet),
    )
    .await
    .unwrap();
    let marked = [mark(&names[0]).await, mark(&names[1]).await];
    // Only the second file is altered; the first database must not be restored either.
    let f = &manifest.databases[1].file;
    let mut bytes = std::fs::read(f).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(f, bytes).unwrap();
    let err = dump::restore(
        &support::mysql_target(),
        &manifest,
        &[],
        &RestoreOptions::default(),
        std::sync::Arc::new(Quiet),
    )
    .await
    .expect_err("altered file");
    assert!(matches!(err, DumpError::ChecksumMismatch { .. }), "{err:?}");
    assert_eq!(snapshot(&names[0]).await, marked[0]);
    assert_eq!(snapshot(&names[1]).await, marked[1]);
    let err = dump::restore(
        &support::mysql_target(),
        &manifest,
        &["nope".into()],
        &RestoreOptions::default(),
        std::sync::Arc::new(Quiet),
    )
    .await
    .expect_err("unknown database");
    assert!(matches!(err, DumpError::NotInManifest { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_missing_database_are_clear_errors() {
    let db = support::TestDb::create("bk_cred").await;
    load_fixture(&db.name).await;
    let dir = out_dir();
    let mut bad = support::mysql_target();
    bad.password = Secret::new("definitely-wrong-password");
    for dumper in [dump::Dumper::Native, dump::Dumper::Mysqldump] {
        let opts = DumpOptions {
            dumper,
            ..DumpOptions::default()
        };
        let err = dump::dump_database(&bad, &db.name, dir.path(), &opts, &Quiet)
            .await
            .expect_err("bad password");
        assert!(matches!(err, DumpError::AccessDenied { .. }), "{err:?}");
        assert!(!err.to_string().contains("definitely-wrong-password"));
        assert!(err.to_string().contains("OMS_META_PASSWORD"), "{err}");

        let err = dump::dump_database(
            &support::mysql_target(),
            "bk_no_such_db_here",
            dir.path(),
            &opts,
            &Quiet,
        )
        .await
        .expect_err("missing database");
        assert!(matches!(err, DumpError::NoSuchDatabase { .. }), "{err:?}");
        assert!(err.to_string().contains("bk_no_such_db_here"));
        assert_eq!(files_in(dir.path()), Vec::<String>::new());
    }
    // Restore with a wrong password: refused by the server, nothing dropped.
    let a = dump::dump_database(
        &support::mysql_target(),
        &db.name,
        dir.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    let before = snapshot(&db.name).await;
    let err = dump::restore_database(&bad, &a, &RestoreOptions::default(), &Quiet)
        .await
        .expect_err("bad password");
    assert!(matches!(err, DumpError::AccessDenied { .. }), "{err:?}");
    assert_eq!(snapshot(&db.name).await, before);
}

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

async fn external_with(
    dumper: &Path,
    db: &str,
    dir: &Path,
) -> Result<dump::DumpArtifact, DumpError> {
    let opts = DumpOptions {
        dumper: dump::Dumper::Mysqldump,
        dumper_path: Some(dumper.to_path_buf()),
        ..DumpOptions::default()
    };
    dump::dump_database(&support::mysql_target(), db, dir, &opts, &Quiet).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_dumper_warnings_truncation_and_exit_status_fail_the_dump() {
    let db = support::TestDb::create("bk_extf").await;
    load_fixture(&db.name).await;
    let bin = tempfile::tempdir().unwrap();
    let dir = out_dir();

    let warn = script(
        bin.path(),
        "warns",
        "echo \"mariadb-dump: Warning: option 'net_buffer_length': value 100 adjusted to 4096\" >&2\nexec mariadb-dump \"$@\"",
    );
    let err = external_with(&warn, &db.name, dir.path())
        .await
        .expect_err("warning");
    assert!(matches!(err, DumpError::ExternalWarning { .. }), "{err:?}");
    assert!(err.to_string().contains("net_buffer_length"), "{err}");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());

    let cut = script(
        bin.path(),
        "cuts",
        "mariadb-dump \"$@\" 2>/dev/null | head -c 3000",
    );
    let err = external_with(&cut, &db.name, dir.path())
        .await
        .expect_err("truncated output");
    assert!(matches!(err, DumpError::Incomplete { .. }), "{err:?}");
    assert!(err.to_string().contains("Dump completed"), "{err}");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());

    let fails = script(bin.path(), "fails", "mariadb-dump \"$@\"\nexit 2");
    let err = external_with(&fails, &db.name, dir.path())
        .await
        .expect_err("exit status");
    assert!(matches!(err, DumpError::ExternalFailed { .. }), "{err:?}");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());

    let missing = bin.path().join("no-such-dumper");
    let err = external_with(&missing, &db.name, dir.path())
        .await
        .expect_err("missing dumper");
    assert!(matches!(err, DumpError::DumperNotFound { .. }), "{err:?}");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_dumper_never_sees_the_password_in_argv_or_env() {
    let db = support::TestDb::create("bk_argv").await;
    load_fixture(&db.name).await;
    let bin = tempfile::tempdir().unwrap();
    let spy = bin.path().join("spy.txt");
    // Records its argv as the kernel shows it to `ps` (/proc/PID/cmdline), its environment,
    // and the defaults file's mode, then becomes the real dumper.
    let wrapper = script(
        bin.path(),
        "spy-dump",
        &format!(
            "{{ tr '\\0' ' ' < /proc/$$/cmdline; echo; env; for a in \"$@\"; do case \"$a\" in --defaults-extra-file=*) f=${{a#--defaults-extra-file=}}; echo \"DEFAULTS=$f\"; stat -c 'MODE=%a' \"$f\";; esac; done; }} > {}\nexec mariadb-dump \"$@\"",
            spy.display()
        ),
    );
    let dir = out_dir();
    let a = external_with(&wrapper, &db.name, dir.path())
        .await
        .expect("external dump through the spy");
    let seen = std::fs::read_to_string(&spy).unwrap();
    let password = support::mysql_target().password.expose().to_string();
    let cmdline = seen.lines().next().unwrap();
    assert!(cmdline.contains("--defaults-extra-file="), "{cmdline}");
    assert!(
        cmdline.contains("--single-transaction") && cmdline.contains("--skip-triggers"),
        "{cmdline}"
    );
    assert!(
        !seen.contains(&password),
        "the password leaked to the dumper's argv or env:\n{seen}"
    );
    assert!(seen.contains("MODE=600"), "{seen}");
    let defaults = seen
        .lines()
        .find_map(|l| l.strip_prefix("DEFAULTS="))
        .unwrap();
    assert!(
        !Path::new(defaults).exists(),
        "the defaults file is removed after the dump"
    );
    let text = std::fs::read_to_string(&a.file).unwrap();
    assert!(!text.contains(&password), "password in the dump's comments");
}
