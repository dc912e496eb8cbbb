//! A split table whose rows are not in key order in the file (issue 16, restore): the check
//! that trails the load must notice that the ranges it hashed were not final, give up, and
//! leave the decision to the full scan after the load, so the same rows restore and check
//! out. The `restore:trail-first` failpoint holds the load back until the trail read its
//! first range (otherwise a fast load could finish before the trail reads anything, and
//! the trail would then read every row in order); this binary holds one test, so the
//! process-wide failpoint serves it alone.
#![cfg(feature = "failpoints")]

mod backup_helpers;
mod support;

use backup_helpers::*;
use oms_upgrade::dump::{self, DumpError, Quiet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_out_of_key_order_are_checked_by_the_full_scan() {
    let _scenario = fail::FailScenario::setup();
    let db = support::TestDb::create("bk_trailord").await;
    seed_big(&db.name, "big", 3_000).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &small_statements()).await;
    // The first INSERT of `big` moves to the end of its section: the same rows, but the
    // first statement now run holds rows 17 onwards, and rows 1 to 16 come in last.
    rewrite_lines(&mut artifact, |lines| {
        let big = inserts_of(lines, "big");
        assert!(big.len() > 20, "{} INSERTs", big.len());
        let first = lines.remove(big[0]);
        lines.insert(*big.last().unwrap(), first);
    });

    fail::cfg("restore:trail-first", "return").unwrap();
    drop_db(&db.name).await;
    let report = dump::restore_database(&support::mysql_target(), &artifact, &split_all(), &Quiet)
        .await
        .expect("the same rows restore, whatever their order in the file");
    assert_eq!(report.mode, dump::LoadMode::Tables);
    assert_eq!(report.split_tables, 1, "{report:?}");
    // The trail hashed rows 17.. as the first ones, then never saw rows 1 to 16: it gave up,
    // and the scan after the load found the right rows.
    assert_eq!(report.trailed_tables, 0, "{report:?}");
    assert_eq!(report.tables, artifact.tables);
    assert_eq!(before, snapshot(&db.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_below_what_the_trail_hashed_fails_the_restore() {
    let _scenario = fail::FailScenario::setup();
    let db = support::TestDb::create("bk_trailextra").await;
    seed_big(&db.name, "big", 3_000).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &small_statements()).await;
    // One more statement at the end of `big`'s section inserts a row with key 0, below every
    // row the trail has hashed by then. The file is resealed, the facts are not: the rows the
    // trail reads in key order are exactly the recorded ones, so only its count of what the
    // statements inserted can tell that the table holds one row more.
    rewrite_lines(&mut artifact, |lines| {
        let big = inserts_of(lines, "big");
        // `INSERT INTO `big` (<columns>) VALUES (1,...),(2,...)...;` -> its first row, key 0.
        let first = &lines[big[0]];
        let values = b"VALUES (1,";
        let at = first
            .windows(values.len())
            .position(|w| w == values)
            .unwrap();
        let end = first.windows(3).position(|w| w == b"),(").unwrap();
        let mut extra = first[..at].to_vec();
        extra.extend_from_slice(b"VALUES (0,");
        extra.extend_from_slice(&first[at + values.len()..=end]);
        extra.push(b';');
        lines.insert(*big.last().unwrap() + 1, extra);
    });

    fail::cfg("restore:trail-first", "return").unwrap();
    drop_db(&db.name).await;
    let err = dump::restore_database(&support::mysql_target(), &artifact, &split_all(), &Quiet)
        .await
        .expect_err("a table with a row the dump did not have fails the restore");
    match &err {
        DumpError::TableMismatch { diffs, .. } => {
            assert_eq!(diffs.len(), 1, "{err}");
            assert_eq!(diffs[0].table, "big", "{err}");
            assert!(diffs[0].actual.contains("3001"), "{err}");
        }
        other => panic!("expected a table mismatch, got {other}"),
    }
}
