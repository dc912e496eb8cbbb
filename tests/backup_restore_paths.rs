//! The restore's fast paths against the real MariaDB: rows go in through `LOAD DATA LOCAL`
//! when the server allows it and through the dump's own INSERTs when it does not, tables are
//! loaded section by section in parallel, and a file whose sections do not check out is
//! loaded in order. Every path must give back exactly the dumped database.

mod backup_helpers;
mod support;

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{self, DumpOptions, Quiet, RestoreOptions};

async fn com_load() -> u64 {
    let mut c = conn(None).await;
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Com_load'")
        .await
        .unwrap();
    c.disconnect().await.ok();
    row.unwrap().1
}

/// Puts `local_infile` back even when the test fails half way.
struct LocalInfile;
impl Drop for LocalInfile {
    fn drop(&mut self) {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(exec("mysql", "SET GLOBAL local_infile = 1"));
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_go_in_by_load_data_or_by_insert_with_the_same_result() {
    let db = support::TestDb::create("bk_ld").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let target = support::mysql_target();
    let artifact = dump::dump_database(
        &target,
        &db.name,
        dir.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .expect("dump");
    let opts = RestoreOptions { jobs: 4 };

    // Allowed (MariaDB's default): the server counts LOAD DATA statements.
    exec("mysql", "SET GLOBAL local_infile = 1").await;
    let loads_before = com_load().await;
    drop_db(&db.name).await;
    dump::restore_database(&target, &artifact, &opts, &Quiet)
        .await
        .expect("restore with LOAD DATA");
    assert!(
        com_load().await > loads_before,
        "restore did not use LOAD DATA"
    );
    assert_eq!(before, snapshot(&db.name).await);

    // Refused: the same file goes in through its INSERTs, with the same result.
    let _reset = LocalInfile;
    exec("mysql", "SET GLOBAL local_infile = 0").await;
    drop_db(&db.name).await;
    dump::restore_database(&target, &artifact, &opts, &Quiet)
        .await
        .expect("restore with INSERTs");
    assert_eq!(before, snapshot(&db.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_sections_do_not_check_out_is_loaded_in_order() {
    let db = support::TestDb::create("bk_sec").await;
    exec(
        &db.name,
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         CREATE TABLE b (id INT PRIMARY KEY, w TEXT);
         INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_500;
         INSERT INTO b SELECT seq, REPEAT('b', seq % 50) FROM seq_1_to_500;
         CREATE VIEW v_ab AS SELECT a.id, a.v, b.w FROM a JOIN b USING (id);",
    )
    .await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let target = support::mysql_target();
    let opts = DumpOptions {
        max_statement_bytes: 2048,
        ..DumpOptions::default()
    };
    let mut artifact = dump::dump_database(&target, &db.name, dir.path(), &opts, &Quiet)
        .await
        .expect("dump");

    // Move one of a's INSERT lines into b's section: still a valid file for the client (a
    // exists by then), but b's section now holds a statement of another table.
    let text = String::from_utf8(std::fs::read(&artifact.file).unwrap()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let a_insert = lines
        .iter()
        .position(|l| l.starts_with("INSERT INTO `a` "))
        .expect("an INSERT for a");
    let moved = lines.remove(a_insert);
    let b_create = lines
        .iter()
        .position(|l| l.starts_with("CREATE TABLE `b`"))
        .unwrap();
    let b_create_end = b_create
        + lines[b_create..]
            .iter()
            .position(|l| l.ends_with(';'))
            .unwrap();
    lines.insert(b_create_end + 1, moved);
    let altered = lines.join("\n") + "\n";
    std::fs::write(&artifact.file, &altered).unwrap();
    // Recorded as if a dumper had written it so: the checksum matches, the layout does not.
    artifact.size_bytes = altered.len() as u64;
    artifact.blake3_hex = blake3::hash(altered.as_bytes()).to_hex().to_string();

    drop_db(&db.name).await;
    let report = dump::restore_database(&target, &artifact, &RestoreOptions { jobs: 3 }, &Quiet)
        .await
        .expect("restore falls back to the file's order");
    assert_eq!(report.tables, artifact.tables);
    assert_eq!(before, snapshot(&db.name).await);
}
