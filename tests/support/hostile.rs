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
