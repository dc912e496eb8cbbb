//! The row-hash check that trails a split section's load (issue 16, restore): a split table
//! whose primary key is one integer column is hashed range by range beside its load, on a
//! connection of its own, instead of scanned after it. The trailing result may only ever
//! make a restore faster: a file whose values differ from the recorded facts must fail as
//! the full scan after the load would (rows not in key order: backup_restore_trail_order.rs).

mod backup_helpers;
mod support;

use backup_helpers::*;
use oms_upgrade::dump::{self, DumpArtifact, DumpError, Quiet};

async fn restore_with(artifact: &DumpArtifact) -> Result<dump::RestoreReport, DumpError> {
    dump::restore_database(&support::mysql_target(), artifact, &split_all(), &Quiet).await
}

/// `big` (BIGINT key, many INSERTs) can be trailed; the others cannot (a text key, a key of
/// two columns, no key) and are scanned after their load as before.
async fn seed(db: &str) {
    seed_big(db, "big", 4_000).await;
    exec(
        db,
        "CREATE TABLE named (k VARCHAR(20) PRIMARY KEY, v INT) ENGINE=InnoDB;
         INSERT INTO named SELECT CONCAT('k', seq), seq FROM seq_1_to_2000;
         CREATE TABLE pair (a INT, b INT, v VARCHAR(30), PRIMARY KEY (a, b)) ENGINE=InnoDB;
         INSERT INTO pair SELECT seq % 50, seq, REPEAT('p', seq % 30) FROM seq_1_to_2000;
         CREATE TABLE nopk (a INT, b VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO nopk SELECT seq % 97, CONCAT('b', seq % 13) FROM seq_1_to_2000;",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_table_with_an_integer_key_is_checked_beside_its_load() {
    let db = support::TestDb::create("bk_trail").await;
    seed(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let artifact = dump_with(&db.name, dir.path(), &small_statements()).await;
    let lines = std::fs::read(&artifact.file).unwrap();
    assert!(
        positions(&lines, b"INSERT INTO `big` ").len() > 50,
        "big must have many statements to trail"
    );

    drop_db(&db.name).await;
    let report = restore_with(&artifact).await.expect("restore");
    assert_eq!(report.mode, dump::LoadMode::Tables);
    assert_eq!(report.tables, artifact.tables);
    // Only `big` qualifies: `named`, `pair` and `nopk` were scanned after their load.
    assert_eq!(report.trailed_tables, 1, "{report:?}");
    assert_eq!(before, snapshot(&db.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_value_in_a_trailed_table_fails_the_restore() {
    let db = support::TestDb::create("bk_trailbad").await;
    seed_big(&db.name, "big", 3_000).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &small_statements()).await;
    // One name in the middle of the table changes (same length, so the rows stay in key
    // order and the trail reads every range): the file is resealed, the facts are not.
    rewrite_lines(&mut artifact, |lines| {
        let big = inserts_of(lines, "big");
        let line = &mut lines[big[big.len() / 2]];
        let at = positions(line, b"'name-").first().copied().expect("a name");
        line[at + 1] = b'N';
    });

    drop_db(&db.name).await;
    let err = restore_with(&artifact)
        .await
        .expect_err("a row that differs from the recorded facts fails the restore");
    match &err {
        DumpError::TableMismatch { diffs, .. } => {
            assert_eq!(diffs.len(), 1, "{err}");
            assert_eq!(diffs[0].table, "big", "{err}");
        }
        other => panic!("expected a table mismatch, got {other}"),
    }
}
