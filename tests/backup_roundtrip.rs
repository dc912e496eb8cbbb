//! Round trips of the awkward-types fixture through the backup engine against the real
//! MariaDB: dump -> drop -> restore gives identical SHOW CREATE output and identical
//! per-table facts (both `CHECKSUM TABLE` and the BLAKE3 row hash) for every table.

mod backup_helpers;
mod support;

use backup_helpers::*;
use oms_upgrade::dump::{
    self, ChecksumMethod, Compression, DumpOptions, Dumper, Quiet, RestoreOptions,
};

async fn round_trip(opts: DumpOptions) -> (support::TestDb, dump::DumpArtifact, Vec<u8>) {
    let db = support::TestDb::create("bk_rt").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let target = support::mysql_target();

    let artifact = dump::dump_database(&target, &db.name, dir.path(), &opts, &Quiet)
        .await
        .expect("dump");
    // The facts recorded in the snapshot are the facts of the live database.
    let expected = match opts.checksum {
        Some(ChecksumMethod::ChecksumTable) => &before.checksum_table,
        _ => &before.blake3_rows,
    };
    assert_eq!(&artifact.tables, expected);
    assert_eq!(
        artifact.views,
        vec!["a_top".to_string(), "z_base".to_string()]
    );
    assert_eq!(
        artifact.skipped_triggers,
        vec!["t_trig.trg_audit".to_string()]
    );
    assert_eq!(artifact.compression, opts.compression);
    dump::verify_artifact(&artifact).expect("fresh artifact verifies");
    let bytes = std::fs::read(&artifact.file).unwrap();
    assert_eq!(artifact.size_bytes, bytes.len() as u64);
    assert_eq!(
        artifact.blake3_hex,
        blake3::hash(&bytes).to_hex().to_string()
    );
    assert_eq!(
        files_in(dir.path()),
        vec![
            artifact
                .file
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        ]
    );

    drop_db(&db.name).await;
    let report = dump::restore_database(&target, &artifact, &RestoreOptions::default(), &Quiet)
        .await
        .expect("restore");
    assert_eq!(&report.tables, expected);
    let after = snapshot(&db.name).await;
    assert_eq!(before, after, "round trip changed the database");
    assert_eq!(
        &dump::verify_database(&target, &artifact).await.unwrap(),
        expected
    );

    // Spot checks on values a checksum could in theory miss.
    assert_eq!(
        value(&db.name, "SELECT vc FROM t_types WHERE id = 2")
            .await
            .unwrap(),
        "emoji 😀 and 𝄞 and 中文".as_bytes()
    );
    assert_eq!(
        value(&db.name, "SELECT vc FROM t_types WHERE id = 1").await,
        Some(vec![])
    );
    assert_eq!(
        value(&db.name, "SELECT vc FROM t_types WHERE id = 3").await,
        None
    );
    assert_eq!(
        value(&db.name, "SELECT HEX(bin8) FROM t_types WHERE id = 2")
            .await
            .unwrap(),
        b"00FF27225C0A0D1A"
    );
    assert_eq!(
        value(
            &db.name,
            "SELECT CAST(f AS DOUBLE) FROM t_float WHERE id = 1"
        )
        .await
        .unwrap(),
        b"3.1415927410125732"
    );
    assert_eq!(
        value(&db.name, "SELECT ts6 FROM t_types WHERE id = 2")
            .await
            .unwrap(),
        b"2038-01-19 03:14:07.999999"
    );
    assert_eq!(
        value(&db.name, "SELECT label FROM t_autoinc WHERE id = 0")
            .await
            .unwrap(),
        b"zero"
    );
    // The trigger did not fire during the load (and is not restored: by design).
    assert_eq!(
        value(&db.name, "SELECT COUNT(*) FROM t_audit")
            .await
            .unwrap(),
        b"3"
    );
    assert_eq!(
        value(
            &db.name,
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        )
        .await
        .unwrap(),
        b"0"
    );
    (db, artifact, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_round_trip_is_identical() {
    let (_db, artifact, bytes) = round_trip(DumpOptions::default()).await;
    assert_eq!(artifact.format, Dumper::Native);
    assert!(
        artifact
            .tables
            .iter()
            .all(|t| t.checksum_method == ChecksumMethod::Blake3Rows),
        "the native dumper hashes the rows it writes by default"
    );
    // Not UTF-8 as a whole: binary values are their own bytes (`_binary'..'`, escaped).
    assert!(bytes.windows(8).any(|w| w == b"_binary'"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.trim_end().ends_with(dump::TRAILER));
    // Generated columns are not in the INSERT column list.
    let insert = text
        .lines()
        .find(|l| l.starts_with("INSERT INTO `t_gen`"))
        .unwrap();
    assert!(
        insert.starts_with("INSERT INTO `t_gen` (`id`,`price`,`qty`) VALUES"),
        "{insert}"
    );
    // No clock reading in the file: the same content dumps to the same bytes.
    assert!(!text.contains("Dump completed on"));
    assert!(!text.contains(&support::mysql_target().password.expose().to_string()));

    // verify_database notices one changed byte in one row.
    let db = &artifact.database;
    exec(db, "UPDATE t_types SET tx = CONCAT(tx, 'x') WHERE id = 5").await;
    match dump::verify_database(&support::mysql_target(), &artifact).await {
        Err(dump::DumpError::TableMismatch { diffs, .. }) => {
            assert_eq!(diffs.len(), 1);
            assert_eq!(diffs[0].table, "t_types");
        }
        other => panic!("expected a mismatch on t_types, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_and_checksum_table_round_trip_is_identical() {
    let opts = DumpOptions {
        compression: Compression::Zstd,
        checksum: Some(ChecksumMethod::ChecksumTable),
        max_statement_bytes: 4096, // many statements, and rows bigger than one statement
        ..DumpOptions::default()
    };
    let (_db, artifact, bytes) = round_trip(opts).await;
    assert!(artifact.file.to_string_lossy().ends_with(".sql.zst"));
    let sql = zstd::decode_all(&bytes[..]).unwrap();
    assert!(
        String::from_utf8_lossy(&sql)
            .trim_end()
            .ends_with(dump::TRAILER)
    );
    assert!(
        artifact
            .tables
            .iter()
            .all(|t| t.checksum_method == ChecksumMethod::ChecksumTable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_content_dumps_to_the_same_bytes() {
    let db = support::TestDb::create("bk_det").await;
    load_fixture(&db.name).await;
    let target = support::mysql_target();
    let (d1, d2) = (out_dir(), out_dir());
    let a = dump::dump_database(
        &target,
        &db.name,
        d1.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    let b = dump::dump_database(
        &target,
        &db.name,
        d2.path(),
        &DumpOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(a.blake3_hex, b.blake3_hex);
    assert_eq!(a.tables, b.tables);
    // Tables dumped in parallel are assembled in the same order as over one connection.
    for jobs in [1, 4] {
        let d = out_dir();
        let c = dump::dump_database(
            &target,
            &db.name,
            d.path(),
            &DumpOptions {
                jobs,
                ..DumpOptions::default()
            },
            &Quiet,
        )
        .await
        .unwrap();
        assert_eq!(a.blake3_hex, c.blake3_hex, "jobs={jobs}");
        assert_eq!(a.tables, c.tables, "jobs={jobs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_several_databases_writes_a_manifest_and_restores_them_all() {
    let dbs = [
        support::TestDb::create("bk_m1").await,
        support::TestDb::create("bk_m2").await,
        support::TestDb::create("bk_m3").await,
    ];
    for d in &dbs {
        load_fixture(&d.name).await;
    }
    seed_big(&dbs[1].name, "big", 20_000).await;
    let names: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
    let mut before = Vec::new();
    for n in &names {
        before.push(snapshot(n).await);
    }
    let dir = out_dir();
    let target = support::mysql_target();
    let opts = DumpOptions {
        jobs: 2,
        ..DumpOptions::default()
    };
    let manifest = dump::backup(
        &target,
        &names,
        dir.path(),
        &opts,
        std::sync::Arc::new(Quiet),
    )
    .await
    .expect("backup");
    assert_eq!(
        manifest
            .databases
            .iter()
            .map(|a| a.database.clone())
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(manifest.source, target.display_url());
    let loaded = dump::Manifest::load(dir.path()).unwrap();
    assert_eq!(loaded, manifest, "manifest.json reads back as written");
    let raw = std::fs::read_to_string(dir.path().join(dump::MANIFEST_FILE)).unwrap();
    assert!(
        !raw.contains(dir.path().to_str().unwrap()),
        "paths in the manifest are relative"
    );
    assert!(!raw.contains(target.password.expose()));
    use std::os::unix::fs::PermissionsExt;
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    for n in &names {
        drop_db(n).await;
    }
    let reports = dump::restore(
        &target,
        &loaded,
        &[],
        &RestoreOptions {
            jobs: 3,
            ..RestoreOptions::default()
        },
        std::sync::Arc::new(Quiet),
    )
    .await
    .expect("restore");
    assert_eq!(reports.len(), 3);
    for (n, b) in names.iter().zip(&before) {
        assert_eq!(&snapshot(n).await, b, "database {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mode_round_trip_flags_only_mariadb_dumps_float_loss() {
    let db = support::TestDb::create("bk_ext").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let target = support::mysql_target();
    let opts = DumpOptions {
        dumper: dump::Dumper::Mysqldump,
        ..DumpOptions::default()
    };
    let artifact = dump::dump_database(&target, &db.name, dir.path(), &opts, &Quiet)
        .await
        .expect("external dump");
    assert_eq!(artifact.format, Dumper::Mysqldump);
    assert_eq!(artifact.tables, before.checksum_table);
    let text = std::fs::read_to_string(&artifact.file).unwrap();
    assert!(text.contains("-- MariaDB dump"));

    drop_db(&db.name).await;
    let err = dump::restore_database(&target, &artifact, &RestoreOptions::default(), &Quiet)
        .await
        .expect_err("mariadb-dump prints FLOAT with 6 digits, so t_float must differ");
    match &err {
        dump::DumpError::TableMismatch { diffs, .. } => {
            let tables: Vec<&str> = diffs.iter().map(|d| d.table.as_str()).collect();
            assert_eq!(tables, vec!["t_float"], "{err}");
        }
        other => panic!("expected a table mismatch, got {other}"),
    }
    let after = snapshot(&db.name).await;
    assert_eq!(before.creates, after.creates);
    for (b, a) in before.checksum_table.iter().zip(&after.checksum_table) {
        if b.name != "t_float" {
            assert_eq!(b, a);
        }
    }
}
