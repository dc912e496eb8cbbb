//! The restore's paths against the real MariaDB: tables are loaded section by section in
//! parallel, and a file whose sections do not check out is loaded in order. Every path must
//! give back exactly the dumped database.

mod backup_helpers;
mod support;

use backup_helpers::*;
use oms_upgrade::dump::{self, DumpOptions, Quiet, RestoreOptions};

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
    let report = dump::restore_database(
        &target,
        &artifact,
        &RestoreOptions {
            jobs: 3,
            ..RestoreOptions::default()
        },
        &Quiet,
    )
    .await
    .expect("restore falls back to the file's order");
    assert_eq!(report.tables, artifact.tables);
    assert_eq!(before, snapshot(&db.name).await);
}
