//! A database whose object names are hostile: tables, columns, views and triggers named with
//! newlines, carriage returns, backticks, quotes, `*/`, `--`, `;`, `#`, non-ASCII text and
//! the full 64 characters, some of them carrying SQL that would run if a name ever left its
//! quoted identifier (the mysqldump CVE-2016-5483 class). If any of that SQL runs, it
//! creates the database named by [`Hostile::witness`], so a test can prove that nothing but
//! the dump's own statements was executed.

use mysql_async::prelude::Queryable;

/// What [`create_hostile_names`] made.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// The database that the smuggled statements would create; it must never exist.
    pub witness: String,
    /// The base tables created.
    pub tables: Vec<String>,
    /// The views created.
    pub views: Vec<String>,
    /// The triggers created.
    pub triggers: Vec<String>,
}

fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Table names that break a line-oriented reader; `smuggle` is a statement ending in `;#`
/// that must never run.
pub fn hostile_table_names(smuggle: &str) -> Vec<String> {
    let long: String = std::iter::repeat_n('l', 59)
        .chain("\n;`'\"".chars())
        .collect();
    assert_eq!(long.chars().count(), 64);
    vec![
        format!("nl\n{smuggle}"),
        "cr\rx".into(),
        "bt`x``y".into(),
        "sq'x".into(),
        "dq\"x".into(),
        "cm*/x/*y".into(),
        "dd-- x".into(),
        "semi;x".into(),
        "h#x".into(),
        "ünïcødé_中文".into(),
        "m\n-- Table `sq'x`".into(),
        "m\n-- Tables end".into(),
        long,
    ]
}

/// Creates the hostile tables (with hostile column names and hostile values), views and
/// triggers in `db` (which must exist and be empty). See the module docs.
pub async fn create_hostile_names(db: &str) -> Hostile {
    let witness = format!("{}_pw", db);
    assert!(
        witness
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "the witness name must need no quoting: {witness}"
    );
    let smuggle = format!("CREATE DATABASE {witness};#");
    assert!(
        smuggle.len() < 60,
        "database name too long for the payloads: {db}"
    );
    let mut c = mysql_async::Conn::new(crate::support::mysql_target().opts(Some(db)))
        .await
        .expect("connect");
    let tables = hostile_table_names(&smuggle);
    let long_col: String = std::iter::repeat_n('c', 60)
        .chain("\r*/#".chars())
        .collect();
    let cols = [
        format!("c\n{smuggle}"),
        "c`q".to_string(),
        "c'q".to_string(),
        "c\"q".to_string(),
        "c*/q".to_string(),
        "c-- q".to_string(),
        "c;q".to_string(),
        "c\rq".to_string(),
        "é中".to_string(),
        long_col,
    ];
    for (i, t) in tables.iter().enumerate() {
        let col_defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} VARCHAR(40)", q(c)))
            .collect();
        c.query_drop(format!(
            "CREATE TABLE {} (id INT PRIMARY KEY, {}, KEY {} ({})) ENGINE=InnoDB",
            q(t),
            col_defs.join(", "),
            q(&format!("k\n{i};")),
            q(&cols[0]),
        ))
        .await
        .unwrap_or_else(|e| panic!("create table {t:?}: {e}"));
        let names: Vec<String> = cols.iter().map(|c| q(c)).collect();
        c.query_drop(format!(
            "INSERT INTO {} (id, {}) VALUES (1, 'a\\nb', '`x`', '''', '\"', '*/', '-- x', ';', '\\r', 'ü', '{smuggle_esc}'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            q(t),
            names.join(", "),
            smuggle_esc = smuggle.replace('\'', "''"),
        ))
        .await
        .unwrap_or_else(|e| panic!("insert into {t:?}: {e}"));
    }
    let views = vec![format!("v\n{smuggle}"), "v`'\"*/--;".to_string()];
    for (i, v) in views.iter().enumerate() {
        c.query_drop(format!(
            "CREATE VIEW {} AS SELECT id, {} FROM {}",
            q(v),
            q(&cols[i]),
            q(&tables[i])
        ))
        .await
        .unwrap_or_else(|e| panic!("create view {v:?}: {e}"));
    }
    let triggers = vec![format!("tr\n{smuggle}"), "tr`'\"*/--;".to_string()];
    for (i, tr) in triggers.iter().enumerate() {
        c.query_drop(format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW SET NEW.id = NEW.id",
            q(tr),
            q(&tables[i + 1])
        ))
        .await
        .unwrap_or_else(|e| panic!("create trigger {tr:?}: {e}"));
    }
    c.disconnect().await.ok();
    Hostile {
        witness,
        tables,
        views,
        triggers,
    }
}

/// True when the witness database exists, i.e. a smuggled statement ran.
pub async fn witness_exists(h: &Hostile) -> bool {
    let mut c = mysql_async::Conn::new(crate::support::mysql_target().opts(None))
        .await
        .expect("connect");
    let n: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&h.witness,),
        )
        .await
        .expect("query");
    c.disconnect().await.ok();
    n.unwrap_or(0) > 0
}

/// Drops the witness database (so a failed run does not poison the next one).
pub async fn drop_witness(h: &Hostile) {
    let mut c = mysql_async::Conn::new(crate::support::mysql_target().opts(None))
        .await
        .expect("connect");
    c.query_drop(format!("DROP DATABASE IF EXISTS {}", h.witness))
        .await
        .ok();
    c.disconnect().await.ok();
}

/// Serializes the users of the server's general log within one test binary.
static GENERAL_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server's general log, on (into `mysql.general_log`) while this lives in a test.
pub struct GeneralLog {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    since: String,
    previous: (String, String),
}

impl GeneralLog {
    /// Turns the general log on, remembering how it was.
    pub async fn start() -> GeneralLog {
        let turn = GENERAL_LOG.lock().await;
        let mut c = mysql_async::Conn::new(crate::support::mysql_target().opts(None))
            .await
            .expect("connect");
        let previous: (String, String) = c
            .query_first("SELECT @@GLOBAL.log_output, IF(@@GLOBAL.general_log, 'ON', 'OFF')")
            .await
            .expect("read the log settings")
            .expect("one row");
        let since: String = c
            .query_first("SELECT CAST(NOW(6) AS CHAR)")
            .await
            .expect("now")
            .expect("one row");
        // Only into the table, and the table emptied first when nobody had the log on: the
        // log takes every session of the shared server while it is on (a parallel test's
        // gigabyte restore included), and a copy in the FILE or rows of earlier runs made
        // the read below scan gigabytes (8.6 GB once, a test of 3 s taking 24 minutes).
        if previous.1 == "OFF" {
            c.query_drop("TRUNCATE TABLE mysql.general_log")
                .await
                .expect("empty the general log table");
        }
        c.query_drop("SET GLOBAL log_output = 'TABLE', general_log = ON")
            .await
            .expect("turn the general log on (needs SUPER)");
        c.disconnect().await.ok();
        GeneralLog {
            _turn: turn,
            since,
            previous,
        }
    }

    /// Every statement (queries and executed prepared statements) logged since
    /// [`GeneralLog::start`] by a session that mentioned `needle` in any of its commands,
    /// then the log put back as it was.
    pub async fn stop_and_read(self, needle: &str) -> Vec<String> {
        let mut c = mysql_async::Conn::new(crate::support::mysql_target().opts(None))
            .await
            .expect("connect");
        let rows: Vec<Vec<u8>> = c
            .exec(
                "SELECT argument FROM mysql.general_log \
                 WHERE event_time >= ? AND command_type IN ('Query', 'Execute') \
                 AND thread_id <> CONNECTION_ID() AND thread_id IN ( \
                   SELECT thread_id FROM mysql.general_log \
                   WHERE event_time >= ? AND INSTR(argument, ?) > 0) \
                 ORDER BY event_time",
                (&self.since, &self.since, needle),
            )
            .await
            .expect("read the general log");
        c.query_drop(format!(
            "SET GLOBAL general_log = {}, log_output = '{}'",
            self.previous.1, self.previous.0
        ))
        .await
        .expect("put the log settings back");
        c.disconnect().await.ok();
        rows.into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .collect()
    }
}

/// True for a statement a dump load may run on database `db`: settings, reads, the
/// database's own drop and create, and table and view DDL and rows. Anything else (a
/// statement smuggled out of a name) is not.
pub fn is_load_statement(stmt: &str, db: &str) -> bool {
    let s = stmt.trim_start();
    let up = s.to_ascii_uppercase();
    const HEADS: [&str; 18] = [
        "SET ",
        "SET\n",
        "SELECT ",
        "SHOW ",
        "USE ",
        "DROP TABLE IF EXISTS ",
        "CREATE TABLE ",
        "INSERT INTO ",
        "ALTER TABLE ",
        "CREATE OR REPLACE ",
        "CHECKSUM TABLE ",
        "COMMIT",
        "START TRANSACTION",
        "/*!",
        "/*M!",
        "LOCK TABLES ",
        "UNLOCK TABLES",
        "ROLLBACK",
    ];
    HEADS.iter().any(|h| up.starts_with(h))
        || s == format!("DROP DATABASE IF EXISTS `{db}`")
        || s.starts_with(&format!("CREATE DATABASE `{db}` CHARACTER SET "))
}
