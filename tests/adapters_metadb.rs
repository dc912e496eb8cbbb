//! The metadata-database adapter against the real MariaDB: `ha.config` compare-and-set
//! keeps unknown keys and refuses to overwrite a concurrent edit, the heartbeat prune
//! keeps exactly the newest row, drop-and-recreate keeps the charset and collation, and
//! login and database errors are typed (a wrong password never shows up in a message).

mod support;

use mysql_async::prelude::Queryable;
use oms_upgrade::adapters::metadb::{DbCharset, MetaDb, MetaDbError, MysqlMetaDb, PruneOptions};
use oms_upgrade::events::ServerFlavour;
use oms_upgrade::haconfig::{HaEdit, edit};
use oms_upgrade::secret::Secret;
use serde_json::json;

/// A stored value as some OMS versions write it: optional keys missing, plus a key this
/// tool does not know.
const STORED_HA: &str = r#"{"enable":true,"enableHost":false,"enableStore":true,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72,"someFutureKey":{"nested":[1,"two"]}}"#;

async fn raw(db: &str) -> mysql_async::Conn {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!("USE `{db}`")).await.unwrap();
    c
}

async fn stored_ha(db: &str) -> Option<String> {
    raw(db)
        .await
        .query_first("SELECT cfg_value FROM oms_normal_config WHERE cfg_name='ha.config'")
        .await
        .unwrap()
}

async fn rm_database() -> support::TestDb {
    let db = support::TestDb::create("mdb_rm").await;
    let mut c = raw(&db.name).await;
    c.query_drop(
        "CREATE TABLE oms_normal_config (cfg_name VARCHAR(128) PRIMARY KEY, cfg_value TEXT)",
    )
    .await
    .unwrap();
    c.exec_drop(
        "INSERT INTO oms_normal_config VALUES ('ha.config', ?), ('other.config', 'x')",
        (STORED_HA,),
    )
    .await
    .unwrap();
    db
}

#[tokio::test]
async fn ha_config_compare_and_set_keeps_unknown_keys_and_is_idempotent() {
    let db = rm_database().await;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();

    let read = meta.read_ha_config(&db.name).await.unwrap().unwrap();
    assert_eq!(read, STORED_HA);
    let disabled = edit(
        &read,
        &HaEdit {
            enable: Some(false),
            ..HaEdit::default()
        },
    )
    .unwrap();
    let out = meta
        .write_ha_config(&db.name, &read, &disabled)
        .await
        .unwrap();
    assert!(!out.already_written);

    let now = stored_ha(&db.name).await.unwrap();
    assert_eq!(now, disabled);
    let mut expected: serde_json::Value = serde_json::from_str(STORED_HA).unwrap();
    expected["enable"] = json!(false);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&now).unwrap(),
        expected,
        "only `enable` changed; unknown and missing keys as they were"
    );

    // A retry of the same write (e.g. after a crash before it was recorded) is reported,
    // not refused.
    let again = meta
        .write_ha_config(&db.name, &read, &disabled)
        .await
        .unwrap();
    assert!(again.already_written);

    // Re-enable with a refetch interval: a key the stored value did not have is added.
    let enabled = edit(
        &disabled,
        &HaEdit {
            enable: Some(true),
            refetch_interval_min: Some(90),
            ..HaEdit::default()
        },
    )
    .unwrap();
    meta.write_ha_config(&db.name, &disabled, &enabled)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stored_ha(&db.name).await.unwrap()).unwrap();
    assert_eq!(v["refetchStoreIntervalMin"], json!(90));
    assert_eq!(v["someFutureKey"], json!({"nested":[1,"two"]}));
    // The neighbouring row is untouched.
    let other: Option<String> = raw(&db.name)
        .await
        .query_first("SELECT cfg_value FROM oms_normal_config WHERE cfg_name='other.config'")
        .await
        .unwrap();
    assert_eq!(other.as_deref(), Some("x"));
    meta.close().await;
}

#[tokio::test]
async fn ha_config_write_detects_a_concurrent_console_edit() {
    let db = rm_database().await;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let read = meta.read_ha_config(&db.name).await.unwrap().unwrap();
    let ours = edit(
        &read,
        &HaEdit {
            enable: Some(false),
            ..HaEdit::default()
        },
    )
    .unwrap();

    // Someone edits ha.config in the console between our read and our write.
    let mut console: serde_json::Value = serde_json::from_str(&read).unwrap();
    console["checkRequestIntervalSec"] = json!(300);
    let theirs = console.to_string();
    raw(&db.name)
        .await
        .exec_drop(
            "UPDATE oms_normal_config SET cfg_value=? WHERE cfg_name='ha.config'",
            (&theirs,),
        )
        .await
        .unwrap();

    match meta.write_ha_config(&db.name, &read, &ours).await {
        Err(MetaDbError::HaConfigChanged {
            expected, found, ..
        }) => {
            assert_eq!(expected, read);
            assert_eq!(found, theirs);
        }
        r => panic!("expected HaConfigChanged, got {r:?}"),
    }
    assert_eq!(
        stored_ha(&db.name).await.as_deref(),
        Some(theirs.as_str()),
        "their edit survives"
    );

    // No row at all: typed.
    raw(&db.name)
        .await
        .query_drop("DELETE FROM oms_normal_config WHERE cfg_name='ha.config'")
        .await
        .unwrap();
    assert_eq!(meta.read_ha_config(&db.name).await.unwrap(), None);
    assert!(matches!(
        meta.write_ha_config(&db.name, &read, &ours).await,
        Err(MetaDbError::HaConfigMissing { .. })
    ));
    meta.close().await;
}

#[tokio::test]
async fn heartbeat_prune_keeps_exactly_the_newest_row() {
    let db = support::TestDb::create("mdb_hb").await;
    let mut c = raw(&db.name).await;
    c.query_drop(
        "CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         gmt_created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, beat VARCHAR(64))",
    )
    .await
    .unwrap();
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();

    // Empty table: nothing to do.
    let empty = meta.prune_heartbeat(&db.name).await.unwrap();
    assert_eq!(
        (
            empty.max_id,
            empty.rows_deleted,
            empty.batches,
            empty.table_missing
        ),
        (None, 0, 0, false)
    );
    assert_eq!(empty.flavour, ServerFlavour::MariaDb);

    let n: u64 = 1000;
    let values = (0..n)
        .map(|i| format!("('beat-{i}')"))
        .collect::<Vec<_>>()
        .join(",");
    c.query_drop(format!(
        "INSERT INTO heatbeat_sequence (beat) VALUES {values}"
    ))
    .await
    .unwrap();
    // Gaps in the ids, as after earlier prunes.
    c.query_drop("DELETE FROM heatbeat_sequence WHERE id IN (3, 500)")
        .await
        .unwrap();
    let max: i64 = c
        .query_first("SELECT MAX(id) FROM heatbeat_sequence")
        .await
        .unwrap()
        .unwrap();

    let out = meta.prune_heartbeat(&db.name).await.unwrap();
    assert_eq!(out.max_id, Some(max));
    assert_eq!(out.rows_deleted, n - 2 - 1);
    let left: Vec<(i64, String)> = c
        .query("SELECT id, beat FROM heatbeat_sequence")
        .await
        .unwrap();
    assert_eq!(left, vec![(max, format!("beat-{}", n - 1))]);

    // Again: idempotent.
    let again = meta.prune_heartbeat(&db.name).await.unwrap();
    assert_eq!(again.max_id, Some(max));
    assert_eq!(again.rows_deleted, 0);
    meta.close().await;
}

/// Regression (issue 12.7): the prune was one DELETE of every row, which OceanBase kills
/// past `ob_query_timeout` and which holds its locks and undo to the end everywhere. Each
/// DELETE statement is seen by a row trigger through `NOW(6)`, which is the statement's
/// start time in every row it touches: one distinct value per statement.
#[tokio::test]
async fn heartbeat_prune_deletes_in_bounded_statements() {
    let db = support::TestDb::create("mdb_hbb").await;
    let mut c = raw(&db.name).await;
    for sql in [
        "CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, beat INT)",
        "CREATE TABLE deleted_by (stmt_at DATETIME(6) NOT NULL)",
        "CREATE TRIGGER seen BEFORE DELETE ON heatbeat_sequence FOR EACH ROW \
         INSERT INTO deleted_by VALUES (NOW(6))",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let n: u64 = 25_000;
    for chunk in 0..(n / 5000) {
        let values = (0..5000)
            .map(|i| format!("({})", chunk * 5000 + i))
            .collect::<Vec<_>>()
            .join(",");
        c.query_drop(format!(
            "INSERT INTO heatbeat_sequence (beat) VALUES {values}"
        ))
        .await
        .unwrap();
    }
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let out = meta.prune_heartbeat(&db.name).await.unwrap();
    let per_statement: Vec<u64> = c
        .query("SELECT COUNT(*) FROM deleted_by GROUP BY stmt_at ORDER BY stmt_at")
        .await
        .unwrap();
    assert_eq!(per_statement.iter().sum::<u64>(), n - 1);
    assert!(
        per_statement.len() >= 3 && per_statement.iter().all(|&k| k <= 10_000),
        "rows deleted per DELETE statement: {per_statement:?}"
    );
    let left: u64 = c
        .query_first("SELECT COUNT(*) FROM heatbeat_sequence")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(out.rows_deleted, n - 1);

    // A smaller batch, with the progress seen after each one; a prune cut short (rows
    // below the newest left) ends in the same one row when run again.
    c.query_drop("INSERT INTO heatbeat_sequence (beat) VALUES (1),(2),(3),(4),(5),(6),(7)")
        .await
        .unwrap();
    let newest: i64 = c
        .query_first("SELECT MAX(id) FROM heatbeat_sequence")
        .await
        .unwrap()
        .unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |rows: u64, batches: u64, _total: u64| seen.lock().unwrap().push((rows, batches));
    let opts = PruneOptions {
        batch_rows: 3,
        flavour: Some(ServerFlavour::MariaDb),
        swap_tag: None,
    };
    let out = meta
        .prune_heartbeat_with(&db.name, opts, &record)
        .await
        .unwrap();
    assert_eq!((out.rows_deleted, out.batches, out.batch_rows), (7, 3, 3));
    assert_eq!(*seen.lock().unwrap(), [(3, 1), (6, 2), (7, 3)]);
    let left: Vec<i64> = c.query("SELECT id FROM heatbeat_sequence").await.unwrap();
    assert_eq!(left, [newest]);
    meta.close().await;
}

/// Regression (issue 12.7): a cm_hb database without the heartbeat table failed the prune
/// (after T1, with OMS stopped). It is reported as such, and nothing is deleted.
#[tokio::test]
async fn heartbeat_prune_reports_a_missing_table() {
    let db = support::TestDb::create("mdb_hbm").await;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let out = meta.prune_heartbeat(&db.name).await;
    assert!(out.is_ok(), "{out:?}");
    let out = out.unwrap();
    assert!(out.table_missing);
    assert_eq!((out.max_id, out.rows_deleted, out.batches), (None, 0, 0));
    meta.close().await;
}

/// The server's flavour is read from what it says it is (MariaDB here; the other
/// flavours are unit-tested on their version strings in `sqltext`).
#[tokio::test]
async fn ping_reports_the_flavour() {
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let info = meta.ping().await.unwrap();
    assert_eq!(info.flavour, ServerFlavour::MariaDb, "{info:?}");
    meta.close().await;
}

#[tokio::test]
async fn drop_and_create_keeps_charset_and_collation() {
    let db = support::TestDb::create("mdb_drop").await;
    let mut c = raw(&db.name).await;
    // Neither the server's default charset nor that charset's default collation.
    c.query_drop(format!(
        "ALTER DATABASE `{}` CHARACTER SET latin1 COLLATE latin1_german1_ci",
        db.name
    ))
    .await
    .unwrap();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t VALUES (1), (2)").await.unwrap();
    drop(c);

    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let want = DbCharset {
        charset: "latin1".into(),
        collation: "latin1_german1_ci".into(),
    };
    assert_eq!(
        meta.database_charset(&db.name).await.unwrap(),
        Some(want.clone())
    );
    assert_eq!(meta.drop_and_create(&db.name).await.unwrap(), want);
    assert_eq!(
        meta.database_charset(&db.name).await.unwrap(),
        Some(want.clone())
    );
    let tables = meta
        .query_scalar(
            "information_schema",
            &format!(
                "SELECT COUNT(*) FROM TABLES WHERE TABLE_SCHEMA = '{}'",
                db.name
            ),
        )
        .await
        .unwrap();
    assert_eq!(tables.as_deref(), Some("0"), "recreated empty");

    // The resumable form recreates a database that a crashed run already dropped.
    raw("information_schema")
        .await
        .query_drop(format!("DROP DATABASE `{}`", db.name))
        .await
        .unwrap();
    assert!(!meta.database_exists(&db.name).await.unwrap());
    assert!(matches!(
        meta.drop_and_create(&db.name).await,
        Err(MetaDbError::UnknownDatabase { name }) if name == db.name
    ));
    meta.recreate_database(&db.name, &want).await.unwrap();
    assert_eq!(meta.database_charset(&db.name).await.unwrap(), Some(want));
    meta.close().await;
}

#[tokio::test]
async fn ping_existence_sizes_and_scalar_queries() {
    let db = support::TestDb::create("mdb_size").await;
    let mut c = raw(&db.name).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(255))")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t VALUES (1, REPEAT('x', 200)), (2, REPEAT('y', 200))")
        .await
        .unwrap();
    c.query_drop("ANALYZE TABLE t").await.unwrap();
    drop(c);

    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    assert!(meta.ping().await.unwrap().version.contains("MariaDB"));
    assert!(meta.database_exists(&db.name).await.unwrap());
    let ghost = support::unique_name("mdb_ghost");
    assert!(!meta.database_exists(&ghost).await.unwrap());

    let sizes = meta
        .database_sizes(&[db.name.clone(), ghost.clone()])
        .await
        .unwrap();
    assert!(sizes[&db.name] > 0, "{sizes:?}");
    assert_eq!(sizes[&ghost], 0);

    assert_eq!(
        meta.query_scalar(&db.name, "SELECT COUNT(*) FROM t")
            .await
            .unwrap()
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        meta.query_scalar(&db.name, "SELECT pad FROM t WHERE id = 3")
            .await
            .unwrap(),
        None
    );
    meta.close().await;
}

#[tokio::test]
async fn wrong_password_is_access_denied_and_never_printed() {
    let mut target = support::mysql_target();
    let wrong = "Wr0ng-pw-7f3a9c";
    target.password = Secret::new(wrong);
    let err = MysqlMetaDb::connect(&target).await.unwrap_err();
    assert!(
        matches!(&err, MetaDbError::AccessDenied { user, .. } if *user == target.user),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("oms_meta_password"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");

    // The lazy client fails the same way on first use.
    let lazy = MysqlMetaDb::new(&target);
    assert!(matches!(
        lazy.read_ha_config("oms_rm").await,
        Err(MetaDbError::AccessDenied { .. })
    ));
}

#[tokio::test]
async fn unknown_database_and_unreachable_server_are_typed() {
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let ghost = support::unique_name("mdb_nodb");
    match meta.read_ha_config(&ghost).await {
        Err(MetaDbError::UnknownDatabase { name }) => assert_eq!(name, ghost),
        r => panic!("expected UnknownDatabase, got {r:?}"),
    }
    assert!(matches!(
        meta.prune_heartbeat(&ghost).await,
        Err(MetaDbError::UnknownDatabase { .. })
    ));
    meta.close().await;

    // Nothing listens on port 1.
    let mut target = support::mysql_target();
    target.host = "127.0.0.1".into();
    target.port = 1;
    match MysqlMetaDb::connect(&target).await {
        Err(e @ MetaDbError::Unreachable { .. }) => {
            assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
            assert!(!e.to_string().contains(target.password.expose()));
        }
        r => panic!("expected Unreachable, got {r:?}"),
    }
}

/// issue 12.5: the cm database's server list as obd's takeover reads it (`host` joined to
/// `resource_group`), with the status column (information only) where the table has one; a database
/// without the tables is an empty list, not an SQL error; hostile values are cut and their
/// control characters replaced.
#[tokio::test]
async fn server_list_reads_host_and_resource_group_as_they_are() {
    let db = support::TestDb::create("mdb_cm").await;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let none = meta.list_servers(&db.name).await.unwrap();
    assert!(!none.host_table && none.servers.is_empty(), "{none:?}");

    let mut c = raw(&db.name).await;
    c.query_drop(
        "CREATE TABLE resource_group (id BIGINT PRIMARY KEY, name VARCHAR(64)); \
         CREATE TABLE host (id BIGINT AUTO_INCREMENT PRIMARY KEY, resource_group_id BIGINT, ip VARCHAR(200)); \
         INSERT INTO resource_group VALUES (7, '100'); \
         INSERT INTO host (resource_group_id, ip) VALUES (7, '10.0.0.2'), (8, '10.0.0.1')",
    )
    .await
    .unwrap();
    let bare = meta.list_servers(&db.name).await.unwrap();
    assert!(bare.host_table && !bare.status_column, "{bare:?}");
    let shown: Vec<(&str, Option<&str>, Option<&str>)> = bare
        .servers
        .iter()
        .map(|s| (s.ip.as_str(), s.group.as_deref(), s.status.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [("10.0.0.1", None, None), ("10.0.0.2", Some("100"), None)]
    );

    c.query_drop("ALTER TABLE host ADD COLUMN status VARCHAR(200) NULL")
        .await
        .unwrap();
    c.query_drop(
        "UPDATE host SET status = 'OFFLINE' WHERE ip = '10.0.0.1'; \
         UPDATE host SET status = CONCAT('ON\\nLINE', REPEAT('x', 100)) WHERE ip = '10.0.0.2'",
    )
    .await
    .unwrap();
    let with = meta.list_servers(&db.name).await.unwrap();
    assert!(with.status_column, "{with:?}");
    assert_eq!(with.servers[0].status.as_deref(), Some("OFFLINE"));
    let odd = with.servers[1].status.as_deref().unwrap();
    assert!(
        odd.starts_with("ON?LINE") && odd.chars().count() == 64,
        "{odd}"
    );
}

/// The heartbeat table as OMS has it (the emulator's columns).
const HEARTBEAT_TABLE_SQL: &str = "CREATE TABLE heatbeat_sequence (id BIGINT NOT NULL \
     AUTO_INCREMENT PRIMARY KEY, gmt_created DATETIME(6) NOT NULL, host_ip VARCHAR(64) NOT NULL, \
     sequence_no BIGINT NOT NULL, KEY idx_gmt (gmt_created)) ENGINE=InnoDB";

/// The run tag of the swap tests: work tables `heatbeat_sequence_oms_upgrade_0a1b2c3d_*`.
const TAG: u32 = 0x0a1b_2c3d;
const KEEP: &str = "heatbeat_sequence_oms_upgrade_0a1b2c3d_keep";
const OLD: &str = "heatbeat_sequence_oms_upgrade_0a1b2c3d_old";

/// Adds `n` heartbeats in statements of 5000 rows.
async fn fill_heartbeats(c: &mut mysql_async::Conn, n: u64) {
    let mut left = n;
    while left > 0 {
        let k = left.min(5000);
        let values = vec!["(NOW(6), '10.0.0.5', 1)"; k as usize].join(",");
        c.query_drop(format!(
            "INSERT INTO heatbeat_sequence (gmt_created, host_ip, sequence_no) VALUES {values}"
        ))
        .await
        .unwrap();
        left -= k;
    }
}

/// A database with a heartbeat table of `n` rows.
async fn heartbeat_database(prefix: &str, n: u64) -> (support::TestDb, mysql_async::Conn) {
    let db = support::TestDb::create(prefix).await;
    let mut c = raw(&db.name).await;
    c.query_drop(HEARTBEAT_TABLE_SQL).await.unwrap();
    fill_heartbeats(&mut c, n).await;
    (db, c)
}

async fn show_create(c: &mut mysql_async::Conn, table: &str) -> String {
    let row: (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{table}`"))
        .await
        .unwrap()
        .unwrap();
    row.1
}

/// Every table of the database, sorted.
async fn tables(c: &mut mysql_async::Conn, db: &str) -> Vec<String> {
    c.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
        (db,),
    )
    .await
    .unwrap()
}

async fn ids(c: &mut mysql_async::Conn) -> Vec<i64> {
    c.query("SELECT id FROM heatbeat_sequence ORDER BY id")
        .await
        .unwrap()
}

fn swap_opts() -> PruneOptions {
    PruneOptions {
        swap_tag: Some(TAG),
        ..PruneOptions::default()
    }
}

/// Regression (issue 16): the prune of a large heartbeat table deleted every row in
/// 10 000-row DELETEs (14 s of the 1 GB demo's 21 s window). With a run tag it swaps in a
/// table holding only the newest row: the same one row left, the same definition (the
/// AUTO_INCREMENT counter included), no DELETE run, and a second run does nothing. The
/// old rows are left in the run's `<old>` table, uncounted (issue 16, second pass: the
/// count and the DROP took 584 ms of the window), until `drop_pruned_heartbeat` counts
/// them exactly and drops the table. The time of both ways is printed.
#[tokio::test]
async fn heartbeat_prune_swaps_a_large_table() {
    let n: u64 = 100_000;
    let (db, mut c) = heartbeat_database("mdb_hbs", n).await;
    // Gaps, and a counter past the newest id (rows written and deleted), as OMS leaves it.
    c.query_drop("DELETE FROM heatbeat_sequence WHERE id IN (7, 5000)")
        .await
        .unwrap();
    c.query_drop("ALTER TABLE heatbeat_sequence AUTO_INCREMENT = 100250")
        .await
        .unwrap();
    let before = show_create(&mut c, "heatbeat_sequence").await;
    assert!(before.contains("AUTO_INCREMENT=100250"), "{before}");
    let newest = n as i64;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let out = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    let swap_time = started.elapsed();
    assert_eq!(out.max_id, Some(newest));
    assert_eq!(
        (out.rows_deleted, out.batches, out.moved_aside),
        (0, 0, true),
        "not pruned by the table swap: {out:?}"
    );
    assert_eq!(ids(&mut c).await, [newest]);
    assert_eq!(show_create(&mut c, "heatbeat_sequence").await, before);
    assert_eq!(tables(&mut c, &db.name).await, ["heatbeat_sequence", OLD]);
    let started = std::time::Instant::now();
    let dropped = meta.drop_pruned_heartbeat(&db.name, OLD).await.unwrap();
    let drop_time = started.elapsed();
    assert_eq!(dropped, Some(n - 2 - 1));
    assert_eq!(tables(&mut c, &db.name).await, ["heatbeat_sequence"]);
    assert_eq!(
        meta.drop_pruned_heartbeat(&db.name, OLD).await.unwrap(),
        None
    );
    // The counter goes on where it was.
    fill_heartbeats(&mut c, 1).await;
    assert_eq!(ids(&mut c).await, [newest, 100_250]);
    c.query_drop("DELETE FROM heatbeat_sequence WHERE id = 100250")
        .await
        .unwrap();
    let again = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.rows_deleted, again.batches, again.moved_aside),
        (0, 0, false)
    );
    assert_eq!(ids(&mut c).await, [newest]);

    // The same table pruned by DELETE batches (no run tag), for the time.
    let (db2, mut c2) = heartbeat_database("mdb_hbd", n).await;
    let started = std::time::Instant::now();
    let out = meta.prune_heartbeat(&db2.name).await.unwrap();
    let delete_time = started.elapsed();
    assert_eq!((out.rows_deleted, out.batches), (n - 1, 10));
    assert_eq!(ids(&mut c2).await, [n as i64]);
    eprintln!(
        "prune of {n} heartbeat rows: swap {} ms (then, after T2, count and drop {} ms), \
         DELETE batches {} ms",
        swap_time.as_millis(),
        drop_time.as_millis(),
        delete_time.as_millis()
    );
    meta.close().await;
}

/// A heartbeat table with a trigger, or in a foreign key, is pruned by DELETE even with a
/// run tag: the trigger sees every deleted row, the foreign key still names the table,
/// and the result is the same one row.
#[tokio::test]
async fn heartbeat_prune_deletes_when_a_trigger_or_foreign_key_is_tied_to_the_table() {
    let n: u64 = 60_000;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();

    let (db, mut c) = heartbeat_database("mdb_hbt", n).await;
    for sql in [
        "CREATE TABLE audit (id BIGINT NOT NULL)",
        "CREATE TRIGGER audited AFTER DELETE ON heatbeat_sequence FOR EACH ROW \
         INSERT INTO audit VALUES (OLD.id)",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let out = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!((out.rows_deleted, out.batches), (n - 1, 6), "{out:?}");
    assert_eq!(ids(&mut c).await, [n as i64]);
    let audited: u64 = c
        .query_first("SELECT COUNT(*) FROM audit")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audited, n - 1);
    assert_eq!(
        tables(&mut c, &db.name).await,
        ["audit", "heatbeat_sequence"]
    );

    // A foreign key from the same database, then from another one: InnoDB's own list of
    // foreign keys is asked (`REFERENTIAL_CONSTRAINTS` unbound to a schema opens every
    // table of the server); the swap declines, and DELETE prunes and applies the key's
    // action.
    for (prefix, other_db) in [("mdb_hbf", false), ("mdb_hbx", true)] {
        let (db, mut c) = heartbeat_database(prefix, n).await;
        let other = match other_db {
            true => Some(support::TestDb::create("mdb_hbxc").await),
            false => None,
        };
        let notes_db = other.as_ref().map_or(db.name.clone(), |o| o.name.clone());
        let mut nc = raw(&notes_db).await;
        nc.query_drop(format!(
            "CREATE TABLE beat_note (beat_id BIGINT, FOREIGN KEY (beat_id) \
             REFERENCES `{}`.heatbeat_sequence (id) ON DELETE SET NULL) ENGINE=InnoDB",
            db.name
        ))
        .await
        .unwrap();
        nc.query_drop("INSERT INTO beat_note VALUES (1), (60000)")
            .await
            .unwrap();
        let out = meta
            .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
            .await
            .unwrap();
        assert_eq!(
            (out.rows_deleted, out.batches),
            (n - 1, 6),
            "{prefix}: {out:?}"
        );
        assert_eq!(ids(&mut c).await, [n as i64]);
        let notes: Vec<Option<i64>> = nc
            .query("SELECT beat_id FROM beat_note ORDER BY beat_id")
            .await
            .unwrap();
        assert_eq!(notes, [None, Some(60_000)], "{prefix}");
        let referenced: Vec<(String, String)> = nc
            .exec(
                "SELECT UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
                (&notes_db,),
            )
            .await
            .unwrap();
        assert_eq!(
            referenced,
            [(db.name.clone(), "heatbeat_sequence".to_string())],
            "{prefix}"
        );
        let mut left = vec!["heatbeat_sequence"];
        if !other_db {
            left.insert(0, "beat_note");
        }
        assert_eq!(tables(&mut c, &db.name).await, left, "{prefix}");
    }
    meta.close().await;
}

/// Kill-safety of the swap: a `_keep` table left by a run killed before its RENAME is
/// dropped by the next prune of the same run, which ends in the same one row; an `_old`
/// one left by a run killed after it is left for `drop_pruned_heartbeat` (issue 16), which
/// still counts every old row.
#[tokio::test]
async fn heartbeat_prune_drops_what_a_killed_swap_left() {
    let n: u64 = 60_000;
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();

    // Killed before the RENAME: the new table exists beside the untouched original.
    let (db, mut c) = heartbeat_database("mdb_hbk", n).await;
    let before = show_create(&mut c, "heatbeat_sequence").await;
    c.query_drop(format!("CREATE TABLE `{KEEP}` LIKE heatbeat_sequence"))
        .await
        .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{KEEP}` SELECT * FROM heatbeat_sequence WHERE id >= {n}"
    ))
    .await
    .unwrap();
    let out = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (out.rows_deleted, out.batches, out.moved_aside),
        (0, 0, true),
        "{out:?}"
    );
    assert_eq!(ids(&mut c).await, [n as i64]);
    assert_eq!(show_create(&mut c, "heatbeat_sequence").await, before);
    assert_eq!(tables(&mut c, &db.name).await, ["heatbeat_sequence", OLD]);
    assert_eq!(
        meta.drop_pruned_heartbeat(&db.name, OLD).await.unwrap(),
        Some(n - 1)
    );

    // Killed after the RENAME: the old table under its work name, the heartbeat table
    // already holding only the newest row.
    let (db, mut c) = heartbeat_database("mdb_hbo", n).await;
    for sql in [
        format!("CREATE TABLE `{KEEP}` LIKE heatbeat_sequence"),
        format!("INSERT INTO `{KEEP}` SELECT * FROM heatbeat_sequence WHERE id >= {n}"),
        format!("RENAME TABLE heatbeat_sequence TO `{OLD}`, `{KEEP}` TO heatbeat_sequence"),
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let out = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (out.max_id, out.rows_deleted, out.batches, out.moved_aside),
        (Some(n as i64), 0, 0, true)
    );
    assert_eq!(ids(&mut c).await, [n as i64]);
    assert_eq!(tables(&mut c, &db.name).await, ["heatbeat_sequence", OLD]);
    assert_eq!(
        meta.drop_pruned_heartbeat(&db.name, OLD).await.unwrap(),
        Some(n - 1)
    );
    assert_eq!(tables(&mut c, &db.name).await, ["heatbeat_sequence"]);
    meta.close().await;
}

/// Tables named like the heartbeat table but not this run's work tables (another run's,
/// an operator's copy) are never touched by the swap or its clean-up.
#[tokio::test]
async fn heartbeat_prune_leaves_look_alike_tables_alone() {
    let n: u64 = 60_000;
    let (db, mut c) = heartbeat_database("mdb_hbl", n).await;
    let others = [
        "heatbeat_sequence_bak",
        "heatbeat_sequence_keep",
        "heatbeat_sequence_oms_upgrade_deadbeef_keep",
        "heatbeat_sequence_oms_upgrade_deadbeef_old",
        "heatbeat_sequence_oms_upgrade_0a1b2c3d_old_copy",
    ];
    for t in others {
        c.query_drop(format!("CREATE TABLE `{t}` (v INT)"))
            .await
            .unwrap();
        c.query_drop(format!("INSERT INTO `{t}` VALUES (1), (2)"))
            .await
            .unwrap();
    }
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let out = meta
        .prune_heartbeat_with(&db.name, swap_opts(), &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (out.rows_deleted, out.batches, out.moved_aside),
        (0, 0, true),
        "{out:?}"
    );
    assert_eq!(ids(&mut c).await, [n as i64]);
    assert_eq!(
        meta.drop_pruned_heartbeat(&db.name, OLD).await.unwrap(),
        Some(n - 1)
    );
    let mut want: Vec<String> = others.iter().map(|t| t.to_string()).collect();
    want.push("heatbeat_sequence".into());
    want.sort();
    assert_eq!(tables(&mut c, &db.name).await, want);
    for t in others {
        let rows: u64 = c
            .query_first(format!("SELECT COUNT(*) FROM `{t}`"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows, 2, "{t}");
    }
    meta.close().await;
}
