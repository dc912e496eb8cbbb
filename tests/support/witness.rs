//! A witness database for one test: the tables created by the test's admin user, and
//! accounts granted exactly what `witness init` prints (the writer: INSERT and SELECT; the
//! auditor: SELECT), dropped when the test ends.

use mysql_async::prelude::Queryable;
use oms_upgrade::dbconn::DbTarget;
use oms_upgrade::ledger::{LedgerReader, Record};
use oms_upgrade::secret::Secret;
use oms_upgrade::witness::MysqlWitness;
use oms_upgrade::witness::schema;

/// An account created for one test, dropped when the test ends.
pub struct TempUser {
    /// The user name.
    pub name: String,
    /// Its password.
    pub password: String,
}

const USER_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

impl TempUser {
    /// Creates `prefix_...` on both local hosts and runs `grant(account)` for each.
    pub async fn create(prefix: &str, grant: impl Fn(&str) -> String) -> TempUser {
        let name = super::unique_name(prefix);
        let password = format!("pw-{name}");
        let mut admin = admin().await;
        for host in USER_HOSTS {
            let account = schema::account(&name, host).unwrap();
            admin
                .query_drop(format!("CREATE USER {account} IDENTIFIED BY '{password}'"))
                .await
                .unwrap_or_else(|e| panic!("the test user cannot create users ({e})"));
            admin.query_drop(grant(&account)).await.unwrap();
        }
        TempUser { name, password }
    }

    /// The test server as this user.
    pub fn target(&self) -> DbTarget {
        let mut t = super::mysql_target();
        t.user = self.name.clone();
        t.password = Secret::new(self.password.clone());
        t
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        super::block_on_aside(async move {
            let mut c = admin().await;
            for host in USER_HOSTS {
                let _ = c
                    .query_drop(format!("DROP USER IF EXISTS '{name}'@'{host}'"))
                    .await;
            }
        });
    }
}

/// A connection as the test's admin user.
pub async fn admin() -> mysql_async::Conn {
    mysql_async::Conn::new(super::mysql_target().opts(None))
        .await
        .expect("the test server answers (start it with scripts/test)")
}

/// A witness database with the tables created by the admin, and a writer granted exactly
/// what `witness init` prints.
pub async fn witness_db(prefix: &str) -> (super::TestDb, TempUser) {
    let db = super::TestDb::create(prefix).await;
    MysqlWitness::new(super::mysql_target(), db.name.clone())
        .create_schema()
        .await
        .unwrap();
    let name = db.name.clone();
    let writer = TempUser::create("wit_w", |account| schema::writer_grant(&name, account)).await;
    (db, writer)
}

/// Every record of the ledger in `dir`.
pub fn records_of(dir: &std::path::Path) -> Vec<Record> {
    let r = LedgerReader::open(dir).unwrap();
    r.records().map(Result::unwrap).collect()
}
