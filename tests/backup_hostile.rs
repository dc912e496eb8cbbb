//! Hostile input to the dump engine (issue 10): object names that carry SQL or break a
//! line-oriented reader must round-trip exactly and execute nothing but the dump's own
//! statements, whichever loader reads the dump (the native restore or the stock client).

mod backup_helpers;
mod support;

use std::process::Stdio;

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::digest::FileDigest;
use oms_upgrade::dump::{self, DumpArtifact, DumpOptions, Quiet};
use support::hostile::{self, Hostile};

/// Loads `artifact`'s file with the stock `mariadb` client into a fresh `db`.
async fn load_with_client(db: &str, artifact: &DumpArtifact) -> Result<(), String> {
    // One statement per query, so the general log check sees each on its own.
    let mut c = conn(None).await;
    for sql in [
        format!("DROP DATABASE IF EXISTS `{db}`"),
        format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
    ] {
        c.query_drop(sql).await.unwrap();
    }
    c.disconnect().await.ok();
    let out = client("mariadb")
        .arg(db)
        .stdin(std::fs::File::open(&artifact.file).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run the mariadb client");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Native restore, then the stock client: both must give `before` and run nothing
/// smuggled. The server's general log shows every statement the loading sessions ran.
async fn both_loaders_round_trip(db: &str, h: &Hostile, artifact: &DumpArtifact) {
    let before = snapshot(db).await;
    let log = hostile::GeneralLog::start().await;
    let restored = restore_quietly(artifact).await;
    let restored_snapshot = snapshot(db).await;
    let client_loaded = load_with_client(db, artifact).await;
    let client_snapshot = snapshot(db).await;
    let statements = log.stop_and_read(db).await;
    let foreign: Vec<&String> = statements
        .iter()
        .filter(|s| !hostile::is_load_statement(s, db))
        .collect();
    assert!(
        foreign.is_empty(),
        "statements other than the dump's own ran: {foreign:?}"
    );
    assert!(
        !hostile::witness_exists(h).await,
        "SQL smuggled through a name ran"
    );
    restored.expect("native restore");
    client_loaded.expect("mariadb client");
    assert!(
        statements.iter().any(|s| s.starts_with("INSERT INTO")),
        "the general log saw the loads"
    );
    assert_eq!(restored_snapshot, before, "native restore");
    hostile::drop_witness(h).await;
    assert_eq!(client_snapshot, before, "mariadb client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_name_cannot_smuggle_sql_into_a_native_dump() {
    let db = support::TestDb::create("bk_hn1").await;
    let witness = format!("{}_pw", db.name);
    let trigger = format!("tr\nCREATE DATABASE {witness};#");
    exec(
        &db.name,
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE TRIGGER `{}` BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id;",
            trigger
        ),
    )
    .await;
    let h = Hostile {
        witness,
        tables: vec!["t".into()],
        views: vec![],
        triggers: vec![trigger],
    };
    let dir = out_dir();
    let artifact = dump_with(&db.name, dir.path(), &DumpOptions::default()).await;
    both_loaders_round_trip(&db.name, &h, &artifact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_through_a_native_dump() {
    let db = support::TestDb::create("bk_hn2").await;
    let h = hostile::create_hostile_names(&db.name).await;
    let dir = out_dir();
    let artifact = dump_with(&db.name, dir.path(), &DumpOptions::default()).await;
    assert_eq!(artifact.tables.len(), h.tables.len());
    assert_eq!(artifact.views.len(), h.views.len());
    assert_eq!(artifact.skipped_triggers.len(), h.triggers.len());
    both_loaders_round_trip(&db.name, &h, &artifact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_through_mariadb_dump() {
    let db = support::TestDb::create("bk_hn3").await;
    let h = hostile::create_hostile_names(&db.name).await;
    let dir = out_dir();
    let opts = DumpOptions {
        dumper: dump::Dumper::Mysqldump,
        ..DumpOptions::default()
    };
    let artifact = dump_with(&db.name, dir.path(), &opts).await;
    both_loaders_round_trip(&db.name, &h, &artifact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_2_dump_still_restores() {
    let db = support::TestDb::create("bk_hn4").await;
    load_fixture(&db.name).await;
    let before = snapshot(&db.name).await;
    let dir = out_dir();
    let mut artifact = dump_with(&db.name, dir.path(), &DumpOptions::default()).await;
    // The fixture's names have no line breaks, so its format 3 file differs from the format 2
    // file of the same content only in the format line.
    // Bytes, not text: binary values are their own bytes (`_binary'..'`), not UTF-8.
    let mut v2 = std::fs::read(&artifact.file).unwrap();
    let (v3_line, v2_line) = (b"-- Format: 3 (sections)\n", b"-- Format: 2 (sections)\n");
    let at = v2
        .windows(v3_line.len())
        .position(|w| w == v3_line)
        .expect("a format line");
    v2[at..at + v2_line.len()].copy_from_slice(v2_line);
    std::fs::write(&artifact.file, v2).unwrap();
    let found = FileDigest::of_file(&artifact.file).unwrap();
    artifact.size_bytes = found.size;
    artifact.blake3_hex = found.blake3_hex;
    recreate_db(&db.name).await;
    restore_quietly(&artifact).await.expect("format 2 restore");
    assert_eq!(snapshot(&db.name).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_named_like_an_option_is_dumped_as_a_name_by_mariadb_dump() {
    // `-A` is mariadb-dump's --all-databases: as a bare last argument it would dump every
    // database on the server under this one's name.
    let name = format!("-A{}", std::process::id());
    let mut c = conn(None).await;
    use mysql_async::prelude::Queryable;
    c.query_drop(format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`;
         CREATE TABLE `{name}`.t (id INT PRIMARY KEY); INSERT INTO `{name}`.t VALUES (7);"
    ))
    .await
    .unwrap();
    let dir = out_dir();
    let opts = DumpOptions {
        dumper: dump::Dumper::Mysqldump,
        ..DumpOptions::default()
    };
    let r = dump::dump_database(&support::mysql_target(), &name, dir.path(), &opts, &Quiet).await;
    let text = r
        .as_ref()
        .ok()
        .map(|a| std::fs::read_to_string(&a.file).unwrap());
    c.query_drop(format!("DROP DATABASE `{name}`"))
        .await
        .unwrap();
    c.disconnect().await.ok();
    let artifact = r.expect("dump of a database named like an option");
    let text = text.unwrap();
    assert!(
        !text.contains("CREATE DATABASE"),
        "the dumper took the name for an option and dumped every database"
    );
    assert!(
        text.contains("INSERT INTO `t` VALUES") && text.contains("(7)"),
        "{text}"
    );
    assert_eq!(artifact.tables.len(), 1);
}
