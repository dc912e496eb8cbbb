//! A dump file changed between its verification and its load (issue 10): swapped under its
//! path, rewritten in place (same inode) or truncated. Only verified bytes may run, and a
//! message that says nothing was changed must be true. The change is made at the
//! `restore:verified` failpoint, after every file's BLAKE3 matched and before anything was
//! sent; this binary holds one test, so the process-wide failpoint serves it alone.
#![cfg(feature = "failpoints")]

mod backup_helpers;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use backup_helpers::*;
use oms_upgrade::dump::{self, Compression, DumpArtifact, DumpError, DumpOptions};

/// What the failpoint does next (taken once).
static ACTION: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(None);

fn at_verified(f: impl FnOnce() + Send + 'static) {
    *ACTION.lock().unwrap() = Some(Box::new(f));
}

/// The SQL (uncompressed) an attacker puts in: it creates the witness database.
fn attack_sql(witness: &str, original_sql: &[u8]) -> Vec<u8> {
    [
        format!("CREATE DATABASE {witness};\n").into_bytes(),
        original_sql.to_vec(),
    ]
    .concat()
}

fn encode(compression: Compression, sql: &[u8]) -> Vec<u8> {
    match compression {
        Compression::None => sql.to_vec(),
        Compression::Zstd => zstd::encode_all(sql, 3).unwrap(),
    }
}

fn decode(compression: Compression, bytes: &[u8]) -> Vec<u8> {
    match compression {
        Compression::None => bytes.to_vec(),
        Compression::Zstd => zstd::decode_all(bytes).unwrap(),
    }
}

/// Rewrites `path` in place: same inode, new content.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap()),
        ino
    );
}

async fn exists(db: &str) -> bool {
    value(
        "mysql",
        &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"),
    )
    .await
    .is_some()
}

async fn restore(artifact: &DumpArtifact) -> Result<(), DumpError> {
    restore_quietly(artifact).await.map(|_| ())
}

fn opts(dumper: dump::Dumper, compression: Compression) -> DumpOptions {
    DumpOptions {
        dumper,
        compression,
        ..DumpOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_verification_runs_none_of_the_changed_bytes() {
    let _scenario = fail::FailScenario::setup();
    fail::cfg_callback("restore:verified", || {
        if let Some(f) = ACTION.lock().unwrap().take() {
            f()
        }
    })
    .unwrap();
    let kinds = [
        ("native", dump::Dumper::Native, Compression::None),
        ("native zstd", dump::Dumper::Native, Compression::Zstd),
        ("mariadb-dump", dump::Dumper::Mysqldump, Compression::None),
    ];
    for (kind, dumper, compression) in kinds {
        let db = support::TestDb::create("bk_chg").await;
        let witness = format!("{}_pw", db.name);
        load_fixture(&db.name).await;
        // mariadb-dump writes FLOAT with 6 significant digits (see backup_interop).
        exec(&db.name, "DROP TABLE t_float").await;
        let original = snapshot(&db.name).await;
        let dir = out_dir();
        let artifact = dump_with(&db.name, dir.path(), &opts(dumper, compression)).await;
        let stored = std::fs::read(&artifact.file).unwrap();
        let attack = encode(
            compression,
            &attack_sql(&witness, &decode(compression, &stored)),
        );
        let marked = mark(&db.name).await;

        // Rewritten in place after the check, and truncated after the check: nothing runs,
        // the database is untouched, and the error says so.
        let path: PathBuf = artifact.file.clone();
        let half = stored[..stored.len() / 2].to_vec();
        for (what, bytes) in [("rewritten in place", attack.clone()), ("truncated", half)] {
            let p = path.clone();
            at_verified(move || rewrite_in_place(&p, &bytes));
            let err = restore(&artifact).await.expect_err(what);
            std::fs::write(&path, &stored).unwrap();
            assert!(
                !exists(&witness).await,
                "{kind}, {what}: the attacker's SQL ran"
            );
            assert!(
                matches!(err, DumpError::FileChanged { .. }),
                "{kind}, {what}: {err:?}"
            );
            assert!(
                err.to_string().contains("Nothing was changed"),
                "{kind}, {what}: {err}"
            );
            assert_eq!(
                snapshot(&db.name).await,
                marked,
                "{kind}, {what}: the database was touched"
            );
        }

        // Swapped under the path after the check: the verified file is the one restored.
        let p = path.clone();
        let a = attack.clone();
        at_verified(move || {
            let tmp = p.with_extension("swap");
            std::fs::write(&tmp, &a).unwrap();
            std::fs::rename(&tmp, &p).unwrap();
        });
        restore(&artifact).await.expect("swapped after the check");
        assert!(
            !exists(&witness).await,
            "{kind}, swapped: the attacker's SQL ran"
        );
        assert_eq!(snapshot(&db.name).await, original, "{kind}, swapped");
        std::fs::write(&path, &stored).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_found_halfway_says_what_was_loaded() {
    let _scenario = fail::FailScenario::setup();
    let db = support::TestDb::create("bk_chg2").await;
    seed_big(&db.name, "big", 20_000).await;
    let dir = out_dir();
    let artifact = dump_with(&db.name, dir.path(), &DumpOptions::default()).await;
    let stored = std::fs::read(&artifact.file).unwrap();
    assert!(stored.len() > 4 << 20, "the dump spans many pieces");
    // The last bytes change: everything before them may run, they may not.
    let mut changed = stored.clone();
    let n = changed.len();
    let tail = b"DO 1; -- changed after checks\n";
    changed[n - tail.len()..].copy_from_slice(tail);
    let p = artifact.file.clone();
    at_verified(move || rewrite_in_place(&p, &changed));
    fail::cfg_callback("restore:verified", || {
        if let Some(f) = ACTION.lock().unwrap().take() {
            f()
        }
    })
    .unwrap();
    let err = restore(&artifact).await.expect_err("changed at the end");
    let text = err.to_string();
    assert!(matches!(err, DumpError::FileChanged { .. }), "{err:?}");
    assert!(!text.contains("Nothing was changed"), "{text}");
    assert!(
        text.contains(&format!("`{}` was dropped and recreated and", db.name)),
        "{text}"
    );
}
