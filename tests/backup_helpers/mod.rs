//! Helpers shared by the backup tests: loading the awkward-types fixture, seeding big
//! tables, and taking a "snapshot" of a database (SHOW CREATE of every table and view, and
//! the per-table facts with both checksum methods) to compare before and after.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{self, ChecksumMethod, TableFact};

use crate::support;

/// The awkward-types fixture SQL.
pub const FIXTURE: &str = include_str!("../fixtures/backup_awkward_types.sql");

/// Runs `sql` (any number of statements) with `db` as the default database.
pub async fn exec(db: &str, sql: &str) {
    let mut c = conn(Some(db)).await;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("running SQL on `{db}`: {e}"));
    c.disconnect().await.ok();
}

/// A connection (optionally with a default database); fails loudly when MariaDB is down.
pub async fn conn(db: Option<&str>) -> mysql_async::Conn {
    support::mysql_pool().await; // panics with the setup command when unreachable
    mysql_async::Conn::new(support::mysql_target().opts(db))
        .await
        .expect("connect")
}

/// Loads the fixture into `db`.
pub async fn load_fixture(db: &str) {
    exec(db, FIXTURE).await;
}

/// Fills `db`.`table` with `rows` rows of about 300 bytes each (text, blob, decimal, JSON),
/// generated server-side from the SEQUENCE engine.
pub async fn seed_big(db: &str, table: &str, rows: u64) {
    exec(
        db,
        &format!(
            "CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, \
             payload BLOB, amount DECIMAL(20,4), meta JSON, created DATETIME(6)) ENGINE=InnoDB;
             INSERT INTO `{table}` SELECT seq, CONCAT('name-', seq, '-', SHA1(seq)), \
             UNHEX(SHA2(seq, 512)), seq / 7, CONCAT('{{\"k\": ', seq, ', \"s\": \"', MD5(seq), '\"}}'), \
             FROM_UNIXTIME(1600000000 + seq) FROM seq_1_to_{rows};"
        ),
    )
    .await;
}

/// Everything that must be equal after a round trip.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub creates: BTreeMap<String, String>,
    pub checksum_table: Vec<TableFact>,
    pub blake3_rows: Vec<TableFact>,
}

/// SHOW CREATE of every table and view, plus facts with both checksum methods.
pub async fn snapshot(db: &str) -> Snapshot {
    let mut c = conn(Some(db)).await;
    let names: Vec<(String, String)> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .unwrap();
    let mut creates = BTreeMap::new();
    for (name, kind) in names {
        let what = if kind == "VIEW" { "VIEW" } else { "TABLE" };
        let row: mysql_async::Row = c
            .query_first(format!("SHOW CREATE {what} `{}`", name.replace('`', "``")))
            .await
            .unwrap()
            .unwrap();
        let create: String = row.get(1).unwrap();
        creates.insert(name, create);
    }
    c.disconnect().await.ok();
    let target = support::mysql_target();
    Snapshot {
        creates,
        checksum_table: dump::table_facts_with(&target, db, ChecksumMethod::ChecksumTable)
            .await
            .unwrap(),
        blake3_rows: dump::table_facts_with(&target, db, ChecksumMethod::Blake3Rows)
            .await
            .unwrap(),
    }
}

/// Drops `db`.
pub async fn drop_db(db: &str) {
    let mut c = conn(None).await;
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .unwrap();
    c.disconnect().await.ok();
}

/// Recreates `db` empty (utf8mb4_bin, like `TestDb`).
pub async fn recreate_db(db: &str) {
    let mut c = conn(None).await;
    c.query_drop(format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .unwrap();
    c.disconnect().await.ok();
}

/// One value as the server's text (NULL as None).
pub async fn value(db: &str, sql: &str) -> Option<Vec<u8>> {
    let mut c = conn(Some(db)).await;
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let v: Option<Option<Vec<u8>>> = c.query_first(sql).await.unwrap();
    c.disconnect().await.ok();
    v.flatten()
}

/// File names in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A private (0700) temporary folder for dumps.
pub fn out_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("oms-dump-test")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// The binary, with no password or signing key inherited from the environment.
pub fn bin() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("oms-upgrade").unwrap();
    c.env_remove("OMS_META_PASSWORD")
        .env_remove("OMS_UPGRADE_SIGNING_KEY")
        .env("NO_COLOR", "1");
    c
}

/// The test server as a `--meta-url`.
pub fn url() -> String {
    let t = support::mysql_target();
    format!("mysql://{}@{}:{}", t.user, t.host, t.port)
}

/// The test server's password.
pub fn password() -> String {
    support::mysql_target().password.expose().to_string()
}

/// `oms-upgrade backup` of `db` into `out`, password from the environment.
pub fn backup_cmd(db: &str, out: &Path) -> assert_cmd::Command {
    let mut c = bin();
    c.env("OMS_META_PASSWORD", password()).args([
        "backup",
        "--meta-url",
        &url(),
        "--databases",
        db,
        "--out",
        out.to_str().unwrap(),
    ]);
    c
}

/// Changes the fixture database after its dump so "untouched" is observable: a restore would
/// remove the marker table and bring back the deleted row.
pub async fn mark(db: &str) -> Snapshot {
    exec(
        db,
        "CREATE TABLE zz_marker (x INT); DELETE FROM t_trig WHERE id = 3",
    )
    .await;
    snapshot(db).await
}

/// Dumps `db` into `dir` with `opts` (panics on failure).
pub async fn dump_with(db: &str, dir: &Path, opts: &dump::DumpOptions) -> dump::DumpArtifact {
    dump::dump_database(&support::mysql_target(), db, dir, opts, &dump::Quiet)
        .await
        .unwrap_or_else(|e| panic!("dump of `{db}`: {e}"))
}

/// Restores `artifact` with the default options.
pub async fn restore_quietly(
    artifact: &dump::DumpArtifact,
) -> Result<dump::RestoreReport, dump::DumpError> {
    dump::restore_database(
        &support::mysql_target(),
        artifact,
        &dump::RestoreOptions::default(),
        &dump::Quiet,
    )
    .await
}

/// `mariadb`/`mariadb-dump` (`program`) with the arguments to reach the test server over
/// TCP. The password goes through MYSQL_PWD, never argv.
pub fn client(program: &str) -> std::process::Command {
    let t = support::mysql_target();
    let mut c = std::process::Command::new(program);
    c.arg(format!("--host={}", t.host))
        .arg(format!("--port={}", t.port))
        .arg(format!("--user={}", t.user))
        .arg("--protocol=TCP")
        .env("MYSQL_PWD", t.password.expose());
    c
}

/// Raises the server's max_allowed_packet so a 17 MiB row can be inserted and restored
/// (only lets bigger packets through, so other tests are unaffected).
pub async fn allow_big_packets() {
    let mut c = conn(None).await;
    let max: u64 = c
        .query_first("SELECT @@GLOBAL.max_allowed_packet")
        .await
        .unwrap()
        .unwrap();
    if max < (64 << 20) {
        c.query_drop("SET GLOBAL max_allowed_packet = 67108864")
            .await
            .expect("raising max_allowed_packet (the test user has SUPER)");
    }
    c.disconnect().await.ok();
}

/// Where `needle` starts in `hay`, every time.
pub fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Every section split (threshold one byte), three connections.
pub fn split_all() -> dump::RestoreOptions {
    dump::RestoreOptions {
        jobs: 3,
        split_bytes: 1,
    }
}

/// Small INSERTs (4 KiB), so a table has many statements to share.
pub fn small_statements() -> dump::DumpOptions {
    dump::DumpOptions {
        max_statement_bytes: 4096,
        ..dump::DumpOptions::default()
    }
}

/// Edits the dump file line by line, writes it back and reseals the artifact (size and
/// BLAKE3, not the facts), as someone who rewrote the file and its manifest would.
pub fn rewrite_lines(artifact: &mut dump::DumpArtifact, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let text = std::fs::read(&artifact.file).unwrap();
    let mut lines: Vec<Vec<u8>> = text
        .strip_suffix(b"\n")
        .unwrap_or(&text)
        .split(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    edit(&mut lines);
    let mut altered = lines.join(&b'\n');
    altered.push(b'\n');
    std::fs::write(&artifact.file, &altered).unwrap();
    artifact.size_bytes = altered.len() as u64;
    artifact.blake3_hex = blake3::hash(&altered).to_hex().to_string();
}

/// The indexes of the lines that are INSERTs into `table`.
pub fn inserts_of(lines: &[Vec<u8>], table: &str) -> Vec<usize> {
    let head = format!("INSERT INTO `{table}` ");
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(head.as_bytes()))
        .map(|(i, _)| i)
        .collect()
}
