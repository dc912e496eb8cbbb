//! zstd dumps restore table by table in parallel (issue 16): the native dumper writes one
//! zstd frame per section, restore finds the frames while it verifies the file and loads
//! each table's frame on its own connection. Files written before (one frame) still
//! restore, in file order; the framed file is still one valid zstd stream for `zstd -d`.

mod backup_helpers;
mod support;

use std::sync::Arc;

use backup_helpers::*;
use oms_upgrade::dump::{self, Compression, DumpOptions, LoadMode, Quiet, RestoreOptions};

fn zstd_jobs(n: usize) -> DumpOptions {
    DumpOptions {
        compression: Compression::Zstd,
        jobs: n,
        ..DumpOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_dump_of_several_databases_restores_table_by_table() {
    let one = support::TestDb::create("bk_zpar").await;
    seed_big(&one.name, "big", 20_000).await;
    seed_big(&one.name, "mid", 3_000).await;
    exec(
        &one.name,
        "CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         INSERT INTO small SELECT seq, CONCAT('s', seq) FROM seq_1_to_50;
         CREATE TABLE empty_one (id INT PRIMARY KEY);
         CREATE VIEW v_small AS SELECT id, v FROM small;",
    )
    .await;
    let two = support::TestDb::create("bk_zpar2").await;
    load_fixture(&two.name).await;
    let names = vec![one.name.clone(), two.name.clone()];
    let before = [snapshot(&one.name).await, snapshot(&two.name).await];
    let target = support::mysql_target();

    let dir = out_dir();
    let manifest = dump::backup(&target, &names, dir.path(), &zstd_jobs(4), Arc::new(Quiet))
        .await
        .expect("zstd backup");
    // Still one zstd stream for the stock tool, holding exactly what a plain dump holds.
    let plain = out_dir();
    let plain_artifact = dump_with(&one.name, plain.path(), &DumpOptions::default()).await;
    let framed = &manifest.databases[0];
    let out = std::process::Command::new("zstd")
        .arg("-dc")
        .arg(&framed.file)
        .output()
        .expect("zstd -dc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout,
        std::fs::read(&plain_artifact.file).unwrap(),
        "zstd -d gives the plain dump's bytes"
    );

    drop_db(&one.name).await;
    drop_db(&two.name).await;
    let reports = dump::restore(
        &target,
        &manifest,
        &names,
        &RestoreOptions {
            jobs: 4,
            ..RestoreOptions::default()
        },
        Arc::new(Quiet),
    )
    .await
    .expect("parallel restore of the zstd dumps");
    for (r, a) in reports.iter().zip(&manifest.databases) {
        assert_eq!(
            r.mode,
            LoadMode::Tables,
            "{} took the table-by-table path",
            r.database
        );
        assert_eq!(r.tables, a.tables);
    }
    assert_eq!(before[0], snapshot(&one.name).await);
    assert_eq!(before[1], snapshot(&two.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_frame_zstd_dump_still_restores_in_file_order() {
    let db = support::TestDb::create("bk_zold").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &zstd_jobs(2)).await;
    // What earlier versions wrote: the same SQL in one frame.
    let sql = zstd::decode_all(&std::fs::read(&artifact.file).unwrap()[..]).unwrap();
    let one_frame = zstd::encode_all(&sql[..], 3).unwrap();
    std::fs::write(&artifact.file, &one_frame).unwrap();
    artifact.size_bytes = one_frame.len() as u64;
    artifact.blake3_hex = blake3::hash(&one_frame).to_hex().to_string();

    drop_db(&db.name).await;
    let report = dump::restore_database(
        &support::mysql_target(),
        &artifact,
        &RestoreOptions {
            jobs: 4,
            ..RestoreOptions::default()
        },
        &Quiet,
    )
    .await
    .expect("a one-frame zstd file restores");
    assert_eq!(report.mode, LoadMode::InOrder);
    assert_eq!(report.tables, artifact.tables);
    assert_eq!(before, snapshot(&db.name).await);
}

/// The peak RSS (KiB) of `oms-upgrade restore --jobs 4` of a zstd dump holding a table of
/// more than 100 MB of SQL stays bounded: sections are decompressed as they stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_big_zstd_dump_in_parallel_keeps_memory_bounded() {
    let db = support::TestDb::create("bk_zrss").await;
    // 520,000 rows: binary values are escaped, not hex, so a row is ~220 bytes of SQL.
    seed_big(&db.name, "huge", 520_000).await;
    seed_big(&db.name, "other", 30_000).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    backup_cmd(&db.name, dir.path())
        .args(["--compress", "zstd", "--jobs", "4"])
        .assert()
        .success();
    drop_db(&db.name).await;

    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M"])
        .arg(assert_cmd::cargo::cargo_bin("oms-upgrade"))
        .args(["--json", "restore", "--meta-url", &url(), "--from"])
        .arg(dir.path())
        .args(["--yes", "--jobs", "4"])
        .env_remove("OMS_UPGRADE_SIGNING_KEY")
        .env("OMS_META_PASSWORD", password())
        .output()
        .expect("run restore under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "restore failed: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["databases"][0]["mode"], "tables", "{v}");
    let sql: u64 = v["databases"][0]["sql_bytes"].as_u64().unwrap();
    assert!(
        sql > 100 << 20,
        "the dump holds more than 100 MiB of SQL: {sql}"
    );
    let rss_kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    eprintln!("restore of {sql} bytes of SQL (zstd, --jobs 4): peak RSS {rss_kib} KiB");
    assert!(rss_kib < 100 * 1024, "peak RSS {rss_kib} KiB");
    assert_eq!(before, snapshot(&db.name).await);
}
