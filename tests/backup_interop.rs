//! Interoperability with the stock MariaDB tools, both ways: a native dump loads with the
//! `mariadb` client, and a `mariadb-dump` file loads with the native restore, each giving
//! identical tables (SHOW CREATE and per-table facts).

mod backup_helpers;
mod support;

use std::process::Stdio;

use backup_helpers::*;
use oms_upgrade::digest::FileDigest;
use oms_upgrade::dump::{
    self, Compression, DumpArtifact, DumpOptions, Dumper, Quiet, RestoreOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_dump_loads_with_the_stock_mariadb_client() {
    let db = support::TestDb::create("bk_io1").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let artifact = dump::dump_database(
        &support::mysql_target(),
        &db.name,
        dir.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    recreate_db(&db.name).await;
    let out = client("mariadb")
        .arg(&db.name)
        .stdin(std::fs::File::open(&artifact.file).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run the mariadb client (scripts/test installs mariadb-client)");
    assert!(
        out.status.success(),
        "mariadb client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&db.name).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dump_file_loads_with_the_native_restore() {
    let db = support::TestDb::create("bk_io2").await;
    load_fixture(&db.name).await;
    // mariadb-dump writes FLOAT with 6 significant digits (see backup_roundtrip's external
    // test, which shows the check catching it); without that table it must be exact.
    exec(&db.name, "DROP TABLE t_float").await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let path = dir.path().join("by-mariadb-dump.sql");
    let out = client("mariadb-dump")
        .args(["--single-transaction", "--skip-triggers", "--hex-blob"])
        .arg(&db.name)
        .stdout(std::fs::File::create(&path).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run mariadb-dump (scripts/test installs mariadb-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("/*M!999999\\- enable the sandbox mode */"),
        "this mariadb-dump writes the sandbox line"
    );
    assert!(text.contains("LOCK TABLES"));

    let found = FileDigest::of_file(&path).unwrap();
    let artifact = DumpArtifact {
        database: db.name.clone(),
        file: path,
        size_bytes: found.size,
        blake3_hex: found.blake3_hex,
        format: Dumper::Mysqldump,
        compression: Compression::None,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_bin".into(),
        tables: before.checksum_table.clone(),
        views: vec!["a_top".into(), "z_base".into()],
        skipped_triggers: vec![],
        server_version: String::new(),
    };
    drop_db(&db.name).await;
    dump::restore_database(
        &support::mysql_target(),
        &artifact,
        &RestoreOptions::default(),
        &Quiet,
    )
    .await
    .expect("native restore of a mariadb-dump file");
    assert_eq!(snapshot(&db.name).await, before);
}

/// External mode with a left-out table (the heartbeat rows the prune moved aside): the
/// stock dumper gets `--ignore-table`, so the file, the facts and the restore hold every
/// table but that one. Coverage for the argument's place before `--` (issue 16's review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dump_mode_leaves_out_the_excluded_table() {
    let db = support::TestDb::create("bk_io_ign").await;
    exec(
        &db.name,
        "CREATE TABLE keep (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO keep VALUES (1, 'a'), (2, 'b');
         CREATE TABLE old_rows (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO old_rows VALUES (1, 'gone');",
    )
    .await;
    let dir = out_dir();
    let opts = DumpOptions {
        dumper: Dumper::Mysqldump,
        exclude_tables: vec!["old_rows".into()],
        ..DumpOptions::default()
    };
    let artifact = dump::dump_database(
        &support::mysql_target(),
        &db.name,
        dir.path(),
        &opts,
        &Quiet,
    )
    .await
    .expect("external dump");
    let names: Vec<&str> = artifact.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["keep"]);
    let text = std::fs::read(&artifact.file).unwrap();
    assert!(
        positions(&text, b"old_rows").is_empty(),
        "the left-out table is in the file"
    );
    assert!(!positions(&text, b"INSERT INTO `keep`").is_empty());

    drop_db(&db.name).await;
    let report = dump::restore_database(
        &support::mysql_target(),
        &artifact,
        &RestoreOptions::default(),
        &Quiet,
    )
    .await
    .expect("restore");
    assert_eq!(report.tables, artifact.tables);
}
