//! The test harness itself: services are reachable and per-test databases work.

mod support;

use mysql_async::prelude::Queryable;

#[tokio::test]
async fn mariadb_reachable_and_test_db_is_created_and_dropped() {
    let db = support::TestDb::create("smoke").await;
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    let found: Option<String> = c
        .exec_first(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
            (db.name.clone(),),
        )
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(db.name.as_str()));
    let name = db.name.clone();
    drop(db);
    let gone: Option<String> = c
        .exec_first(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await
        .unwrap();
    assert_eq!(gone, None, "TestDb drops its database when the test passes");
}

#[tokio::test]
async fn docker_engine_reachable() {
    let d = support::docker().await;
    let v = d.version().await.unwrap();
    assert!(v.api_version.is_some());
}
