//! A big table read in primary-key ranges over several connections of the dump's snapshot
//! (`DumpOptions::split_table_bytes`, `src/dump/ranges.rs`) against the real MariaDB: the
//! same file bytes and facts as one read, the one snapshot kept by every range (a write
//! committed after the snapshot, before a range is read ahead, is in no range), and no
//! range file left when a range's read fails.

mod backup_helpers;
mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use backup_helpers::*;
use oms_upgrade::dump::{self, Compression, DumpArtifact, DumpOptions, Quiet};

/// Key ranges read (the `dump:range-ahead` failpoint), over the test binary.
static AHEAD: AtomicU64 = AtomicU64::new(0);
/// SQL the failpoint runs once (with the `mariadb` client, committed before it returns).
static WRITE: Mutex<Option<(String, String)>> = Mutex::new(None);
/// Symlinks the failpoint plants once, at every range file name not taken yet:
/// (dump folder, database, the file they point to).
static PLANT: Mutex<Option<(std::path::PathBuf, String, std::path::PathBuf)>> = Mutex::new(None);
/// Serializes the tests: the failpoint and its counter are global.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn setup_failpoint() {
    fail::cfg_callback("dump:range-ahead", || {
        AHEAD.fetch_add(1, Ordering::SeqCst);
        if let Some((dir, db, victim)) = PLANT.lock().unwrap().take() {
            // Every name a range file of this dump can take: `.<db>.<section>-<range>.spool`.
            for section in 0..8 {
                for range in 0..32 {
                    let link = dir.join(format!(".{db}.{section}-{range}.spool"));
                    if std::fs::symlink_metadata(&link).is_err() {
                        std::os::unix::fs::symlink(&victim, &link).unwrap();
                    }
                }
            }
        }
        if let Some((db, sql)) = WRITE.lock().unwrap().take() {
            let out = client("mariadb")
                .arg(&db)
                .arg("-e")
                .arg(&sql)
                .output()
                .expect("running mariadb");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    })
    .unwrap();
}

fn opts(split: Option<u64>, compression: Compression) -> DumpOptions {
    DumpOptions {
        jobs: 3,
        split_table_bytes: split,
        compression,
        max_statement_bytes: 64 << 10,
        ..DumpOptions::default()
    }
}

/// Dumps `db` into a fresh folder; returns the file's bytes, the artifact and how many
/// ranges were read ahead.
async fn dump_bytes(db: &str, opts: &DumpOptions) -> (Vec<u8>, DumpArtifact, u64) {
    let dir = out_dir();
    let before = AHEAD.load(Ordering::SeqCst);
    let a = dump_with(db, dir.path(), opts).await;
    let ahead = AHEAD.load(Ordering::SeqCst) - before;
    let bytes = std::fs::read(&a.file).unwrap();
    let left = files_in(dir.path());
    assert!(
        !left
            .iter()
            .any(|f| f.ends_with(".spool") || f.ends_with(".part")),
        "no spool or part file is left: {left:?}"
    );
    (bytes, a, ahead)
}

async fn seed(db: &str) {
    seed_big(db, "big", 40_000).await;
    exec(
        db,
        // Negative and sparse keys, a composite key (never split) and a tiny table.
        "CREATE TABLE neg (id INT PRIMARY KEY, v VARBINARY(200)) ENGINE=InnoDB;
         INSERT INTO neg SELECT CAST(seq AS SIGNED) * 37 - 400000, RANDOM_BYTES(150) FROM seq_1_to_20000;
         INSERT INTO neg VALUES (-2147483648, x'00275c0a'), (2147483647, NULL);
         CREATE TABLE pair (a INT, b INT, v VARCHAR(100), PRIMARY KEY (a, b)) ENGINE=InnoDB;
         INSERT INTO pair SELECT seq % 100, seq, SHA2(seq, 256) FROM seq_1_to_20000;
         CREATE TABLE zz_tiny (id TINYINT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
         INSERT INTO zz_tiny VALUES (1, 'a'), (2, NULL);",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_read_in_key_ranges_gives_the_same_bytes_and_facts_as_one_read() {
    let _one = ONE_AT_A_TIME.lock().await;
    let _scenario = fail::FailScenario::setup();
    setup_failpoint();
    let db = support::TestDb::create("bk_ranges").await;
    seed(&db.name).await;
    for compression in [Compression::None, Compression::Zstd] {
        let (one, one_a, one_ahead) = dump_bytes(&db.name, &opts(None, compression)).await;
        assert_eq!(one_ahead, 0, "split off reads no range ahead");
        let (split, split_a, ahead) = dump_bytes(&db.name, &opts(Some(1), compression)).await;
        if compression == Compression::None {
            assert!(
                ahead > 0,
                "with the threshold at 1 byte the table is read in key ranges"
            );
        } else {
            // Range files hold raw row packets: a compressed dump writes no such spool.
            assert_eq!(
                ahead, 0,
                "{compression:?}: a compressed dump read key ranges"
            );
        }
        assert!(one == split, "{compression:?}: the files differ");
        assert_eq!(one_a.tables, split_a.tables, "{compression:?}: facts");
        assert_eq!(one_a.blake3_hex, split_a.blake3_hex);
    }
    // And against the one-connection path (`--jobs 1`).
    let (single, single_a, _) = dump_bytes(
        &db.name,
        &DumpOptions {
            jobs: 1,
            ..opts(Some(1), Compression::None)
        },
    )
    .await;
    let (split, split_a, _) = dump_bytes(&db.name, &opts(Some(1), Compression::None)).await;
    assert!(single == split, "the files differ from --jobs 1");
    assert_eq!(single_a.tables, split_a.tables);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_committed_after_the_snapshot_is_in_no_key_range() {
    let _one = ONE_AT_A_TIME.lock().await;
    let _scenario = fail::FailScenario::setup();
    setup_failpoint();
    let db = support::TestDb::create("bk_rangesnap").await;
    seed(&db.name).await;
    let (before, before_a, _) = dump_bytes(&db.name, &opts(None, Compression::None)).await;

    // Before the first range read ahead runs its query (the snapshot is open): rows of
    // every range change, one goes, one comes after the last key, and a tiny table changes.
    *WRITE.lock().unwrap() = Some((
        db.name.clone(),
        "UPDATE big SET name = 'after' WHERE id % 997 = 0;
         DELETE FROM big WHERE id = 39000;
         INSERT INTO big (id, name) VALUES (40001, 'new');
         UPDATE neg SET v = 'after' WHERE id > 0;
         UPDATE zz_tiny SET v = 'after';"
            .to_string(),
    ));
    let (during, during_a, ahead) = dump_bytes(&db.name, &opts(Some(1), Compression::None)).await;
    assert!(
        WRITE.lock().unwrap().is_none(),
        "the write ran during the dump"
    );
    assert!(ahead > 0, "ranges were read ahead");
    assert!(
        before == during,
        "the dump holds rows written after its snapshot"
    );
    assert_eq!(before_a.tables, during_a.tables);

    // The write did change the dumped rows: a dump now differs in every table it touched.
    let (after, after_a, _) = dump_bytes(&db.name, &opts(Some(1), Compression::None)).await;
    assert!(after != before);
    for t in ["big", "neg", "zz_tiny"] {
        let f = |a: &DumpArtifact| a.tables.iter().find(|f| f.name == t).unwrap().clone();
        assert_ne!(f(&before_a), f(&after_a), "{t} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_that_fails_leaves_no_range_file_and_no_dump() {
    let _one = ONE_AT_A_TIME.lock().await;
    let _scenario = fail::FailScenario::setup();
    let db = support::TestDb::create("bk_rangefail").await;
    seed(&db.name).await;
    for nth in [0, 3, 8] {
        // The range reads before the `nth` succeed; that one fails as a lost server would.
        fail::cfg("dump:range-ahead", &format!("{nth}*off->return")).unwrap();
        let dir = out_dir();
        let r = dump::dump_database(
            &support::mysql_target(),
            &db.name,
            dir.path(),
            &opts(Some(1), Compression::None),
            &Quiet,
        )
        .await;
        let e = r.expect_err("a failed range read fails the dump");
        let left = files_in(dir.path());
        assert!(
            left.is_empty(),
            "after {e} at range read {nth}: {left:?} left"
        );
    }
}

/// Range files are ours by name: a symlink planted at a range file's name while the dump
/// runs (after its cleanup of leftovers, before the range is claimed) is replaced, never
/// written through, so the file it points to is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_at_a_range_files_name_is_not_written_through() {
    let _one = ONE_AT_A_TIME.lock().await;
    let _scenario = fail::FailScenario::setup();
    setup_failpoint();
    let db = support::TestDb::create("bk_rangelink").await;
    seed(&db.name).await;
    let (one, _, _) = dump_bytes(&db.name, &opts(None, Compression::None)).await;

    let dir = out_dir();
    let victim_dir = out_dir();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    // Planted when the first range is read: the later ranges are not claimed yet.
    *PLANT.lock().unwrap() = Some((dir.path().to_path_buf(), db.name.clone(), victim.clone()));
    let before = AHEAD.load(Ordering::SeqCst);
    let a = dump_with(&db.name, dir.path(), &opts(Some(1), Compression::None)).await;
    assert!(AHEAD.load(Ordering::SeqCst) > before, "no range was read");
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    assert!(std::fs::read(&a.file).unwrap() == one, "the files differ");
}
