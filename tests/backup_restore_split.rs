//! One table's rows loaded over several connections (issue 16, restore): a section of at
//! least `split_bytes` has its INSERTs shared by the connections that have no whole table
//! left. Forced here with a threshold of one byte, so every section is split. The result
//! must be exactly what `--jobs 1` gives, and a failure in the middle of a split section
//! must stop every connection with a true message.

mod backup_helpers;
mod support;

use backup_helpers::*;
use oms_upgrade::dump::{self, DumpArtifact, DumpError, Quiet, RestoreOptions};

/// A database with a big table (secondary index), a table without a primary key (and a
/// secondary index), an AUTO_INCREMENT table whose counter is past its last row, a child
/// table with a foreign key to the big one, and the usual fixture (all types, a view).
async fn seed(db: &str) {
    load_fixture(db).await;
    seed_big(db, "big", 6_000).await;
    exec(
        db,
        "ALTER TABLE big ADD KEY k_name (name);
         CREATE TABLE nopk (a INT, b VARCHAR(20), KEY kb (b)) ENGINE=InnoDB;
         INSERT INTO nopk SELECT seq % 97, CONCAT('b', seq % 13) FROM seq_1_to_5000;
         CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;
         INSERT INTO ai (v) SELECT seq FROM seq_1_to_3000;
         DELETE FROM ai WHERE id > 2990;
         CREATE TABLE child (id INT PRIMARY KEY, big_id BIGINT, note VARCHAR(40),
           CONSTRAINT fk_big FOREIGN KEY (big_id) REFERENCES big (id)) ENGINE=InnoDB;
         INSERT INTO child SELECT seq, seq, REPEAT('c', seq % 40) FROM seq_1_to_4000;",
    )
    .await;
}

async fn restore_with(
    artifact: &DumpArtifact,
    opts: &RestoreOptions,
) -> Result<dump::RestoreReport, DumpError> {
    dump::restore_database(&support::mysql_target(), artifact, opts, &Quiet).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_restore_gives_what_jobs_1_gives() {
    let db = support::TestDb::create("bk_split").await;
    seed(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let artifact = dump_with(&db.name, dir.path(), &small_statements()).await;

    drop_db(&db.name).await;
    let split = restore_with(&artifact, &split_all()).await.expect("split");
    assert_eq!(split.mode, dump::LoadMode::Tables);
    // The big tables' INSERTs were shared (the helpers finish their own tables first).
    assert!(split.split_tables > 0, "{split:?}");
    assert_eq!(split.tables, artifact.tables);
    let after_split = snapshot(&db.name).await;
    // SHOW CREATE TABLE carries the AUTO_INCREMENT counter (past the last row): the CREATE
    // sets it, and rows with explicit ids (from any connection) never lower it.
    assert!(
        before.creates["ai"].contains("AUTO_INCREMENT="),
        "{}",
        before.creates["ai"]
    );
    assert_eq!(before, after_split);

    drop_db(&db.name).await;
    let one = restore_with(
        &artifact,
        &RestoreOptions {
            jobs: 1,
            split_bytes: 1,
        },
    )
    .await
    .expect("jobs 1");
    assert_eq!(one.split_tables, 0, "--jobs 1 loads every table alone");
    assert_eq!(one.tables, split.tables);
    assert_eq!(one.statements, split.statements);
    assert_eq!(one.sql_bytes, split.sql_bytes);
    assert_eq!(before, snapshot(&db.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_key_in_a_split_section_stops_every_connection() {
    let db = support::TestDb::create("bk_splitdup").await;
    seed_big(&db.name, "big", 6_000).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &small_statements()).await;

    // The 100th INSERT of `big` is planted again right after itself: its ids are taken.
    // Bytes, not text: binary values are written as escaped raw bytes (`_binary'..'`).
    let text = std::fs::read(&artifact.file).unwrap();
    let inserts: Vec<usize> = positions(&text, b"\nINSERT INTO `big` ")
        .into_iter()
        .map(|i| i + 1)
        .collect();
    assert!(inserts.len() > 300, "{} INSERTs", inserts.len());
    let dup_start = inserts[100];
    let dup_end = dup_start + positions(&text[dup_start..], b";\n")[0] + 2;
    let planted = [
        &text[..dup_end],
        &text[dup_start..dup_end],
        &text[dup_end..],
    ]
    .concat();
    std::fs::write(&artifact.file, &planted).unwrap();
    artifact.size_bytes = planted.len() as u64;
    artifact.blake3_hex = blake3::hash(&planted).to_hex().to_string();
    // Statements of the section before the planted copy: DROP, CREATE, 101 INSERTs.
    let section = *positions(&text, b"\n-- Table ").last().unwrap();
    let before_copy = positions(&text[section..dup_end], b";\n").len() as u64;

    let err = restore_with(&artifact, &split_all())
        .await
        .expect_err("a duplicate key");
    let DumpError::Statement {
        number,
        offset,
        excerpt,
        source,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    // The message names the statement that collided, by its number in the section and its
    // byte: the planted copy, or the original when the copy ran first on another connection
    // (both are sent at once; whichever comes second fails).
    assert!(source.to_string().contains("Duplicate entry"), "{err}");
    assert!(
        [
            (before_copy + 1, dup_end as u64),
            (before_copy, dup_start as u64)
        ]
        .contains(&(*number, *offset)),
        "{err}"
    );
    assert!(excerpt.starts_with("INSERT INTO `big`"), "{excerpt}");
    // The other connections stopped: past the copy, each of the two others can at most
    // finish the statement it had and one it took before the error was posted; two more
    // for slack. The rows of exactly those INSERTs bound what is in, far from all 6000.
    let ends: Vec<usize> = inserts
        .iter()
        .map(|&i| i + positions(&text[i..], b";\n")[0])
        .collect();
    let allowed = 101 + 2 * 2 + 2;
    let bound: u64 = inserts
        .iter()
        .zip(&ends)
        .take(allowed)
        .map(|(&a, &b)| positions(&text[a..b], b"),(").len() as u64 + 1)
        .sum();
    let rows: u64 = String::from_utf8(
        value(&db.name, "SELECT COUNT(*) FROM big")
            .await
            .expect("a count"),
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!(
        rows <= bound && bound < 6_000,
        "{rows} rows in, at most {bound} allowed"
    );
}

/// A split section holding a statement of another table does not check out: the database
/// is loaded in file order, and comes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_section_that_does_not_check_out_is_loaded_in_order() {
    let db = support::TestDb::create("bk_splitord").await;
    seed_big(&db.name, "big", 3_000).await;
    exec(
        &db.name,
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_500;",
    )
    .await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &small_statements()).await;
    // One INSERT of `a` moves to the end of `big`'s section, after its rows (tables are
    // dumped in name order, so `a` exists by then in file order).
    rewrite_lines(&mut artifact, |lines| {
        let moved = lines.remove(inserts_of(lines, "a")[0]);
        let big_last = *inserts_of(lines, "big").last().unwrap();
        lines.insert(big_last + 1, moved);
    });

    drop_db(&db.name).await;
    let report = restore_with(&artifact, &split_all())
        .await
        .expect("falls back to the file's order");
    assert_eq!(report.mode, dump::LoadMode::InOrder);
    assert_eq!(report.tables, artifact.tables);
    assert_eq!(before, snapshot(&db.name).await);
}
