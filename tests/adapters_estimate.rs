//! Issue 16: what `init` measures for the downtime estimate, against the real MariaDB. The
//! databases' sizes and the heartbeat table's rows come from `information_schema`; the read
//! probe stops at its byte budget and well within its time budget, names the largest
//! table, changes nothing, and finds nothing to read in an empty database.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use oms_upgrade::adapters::metadb::MysqlMetaDb;

async fn conn(db: &str) -> mysql_async::Conn {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!("USE `{db}`")).await.unwrap();
    c
}

/// 200 rows of 10,000 bytes in `big`, 3 in `small`, statistics brought up to date.
async fn data_database() -> support::TestDb {
    let db = support::TestDb::create("est_data").await;
    let mut c = conn(&db.name).await;
    c.query_drop("CREATE TABLE big (id INT PRIMARY KEY, v LONGBLOB)")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    for i in 0..200 {
        c.exec_drop("INSERT INTO big VALUES (?, REPEAT('x', 10000))", (i,))
            .await
            .unwrap();
    }
    c.query_drop("INSERT INTO small VALUES (1,'a'),(2,'b'),(3,'c')")
        .await
        .unwrap();
    c.query_drop("ANALYZE TABLE big, small").await.unwrap();
    db
}

async fn checksum(db: &str) -> Vec<(String, Option<u64>)> {
    conn(db)
        .await
        .query("CHECKSUM TABLE big, small")
        .await
        .unwrap()
}

#[tokio::test]
async fn the_probe_reads_the_largest_table_within_its_budget_and_changes_nothing() {
    let db = data_database().await;
    let hb = support::TestDb::create("est_hb").await;
    let empty = support::TestDb::create("est_empty").await;
    {
        let mut c = conn(&hb.name).await;
        c.query_drop(
            "CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)",
        )
        .await
        .unwrap();
        c.query_drop("INSERT INTO heatbeat_sequence (v) SELECT seq FROM seq_1_to_500")
            .await
            .unwrap();
        c.query_drop("ANALYZE TABLE heatbeat_sequence")
            .await
            .unwrap();
    }
    let meta = MysqlMetaDb::connect(&support::mysql_target())
        .await
        .unwrap();
    let before = checksum(&db.name).await;

    let names = vec![db.name.clone(), empty.name.clone(), hb.name.clone()];
    let measured = meta.measure_databases(&names).await.unwrap();
    assert_eq!(
        measured.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(measured[0].tables, 2);
    assert!(
        measured[0].data_bytes >= 2_000_000,
        "200 rows of 10 kB: {:?}",
        measured[0]
    );
    assert_eq!((measured[1].tables, measured[1].data_bytes), (0, 0));
    assert_eq!(meta.heartbeat_rows(&hb.name).await.unwrap(), 500);
    assert_eq!(meta.heartbeat_rows(&empty.name).await.unwrap(), 0);

    // A 64 KiB budget: a few rows of `big`, stopped at the budget, not the whole table.
    let started = Instant::now();
    let probe = meta
        .read_probe(&names, 64 << 10, Duration::from_secs(1))
        .await
        .unwrap()
        .expect("rows to probe");
    assert!(started.elapsed() < Duration::from_secs(2), "{probe:?}");
    assert_eq!(probe.table, format!("{}.big", db.name));
    assert!(
        probe.bytes >= 64 << 10 && probe.bytes < (64 << 10) + 2 * 10_010,
        "{probe:?}"
    );
    assert!(probe.rows < 200 && probe.micros > 0, "{probe:?}");
    assert!(probe.bytes_per_sec().is_some());

    // Nothing to read: no probe.
    assert_eq!(
        meta.read_probe(
            std::slice::from_ref(&empty.name),
            64 << 10,
            Duration::from_secs(1)
        )
        .await
        .unwrap(),
        None
    );
    assert_eq!(
        checksum(&db.name).await,
        before,
        "the probe changed nothing"
    );
    meta.close().await;
}
