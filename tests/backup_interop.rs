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
