//! Issue 14, the witness store on a real MariaDB: `witness init` creates the tables and
//! prints the grants; a least-privileged writer (INSERT and SELECT only, created here as
//! the test's admin user with the very GRANT text the tool prints) pushes the records of a
//! real ledger; a push is idempotent; a second history under one ledger id is kept beside
//! the first and reported as a fork; the server itself refuses the writer an UPDATE, a
//! DELETE or a REPLACE; and the SQL the adapter issues is only INSERT and SELECT.

mod support;

use mysql_async::prelude::Queryable;
use oms_upgrade::secret::Secret;
use oms_upgrade::witness::mysql::{self as wm, STATEMENTS};
use oms_upgrade::witness::schema;
use oms_upgrade::witness::{MysqlWitness, Witness, WitnessCheckpoint, WitnessError};

use support::forge;
use support::upgrade::{bin, json_of, show};
use support::witness::{TempUser, admin, records_of, witness_db};

async fn count_rows(db: &str) -> u64 {
    let mut c = mysql_async::Conn::new(support::mysql_target().opts(Some(db)))
        .await
        .unwrap();
    c.query_first("SELECT COUNT(*) FROM `witness_records`")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privileged_writer_pushes_idempotently_and_a_fork_is_kept_and_reported() {
    let (db, writer) = witness_db("wit_push").await;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hashes) = support::ledger_with_notes(tmp.path(), 6);
    let records = records_of(&dir);
    let id = records[0].ledger_id;
    let w = MysqlWitness::new(writer.target(), db.name.clone());

    // In two pushes, as a run does (a prefix first, then the rest and the prefix again).
    let first = w.push("node-a", &records[..2]).await.unwrap();
    assert_eq!((first.inserted, first.already_there), (2, 0));
    let all = w.push("node-a", &records).await.unwrap();
    assert_eq!((all.inserted, all.already_there), (4, 2));
    let again = w.push("node-a", &records).await.unwrap();
    assert_eq!((again.inserted, again.already_there), (0, 6), "idempotent");
    assert_eq!(count_rows(&db.name).await, 6, "no duplicate rows");

    assert_eq!(w.head(id).await.unwrap(), Some((6, vec![hashes[5]])));
    let rows = w.records(id, 1).await.unwrap();
    assert_eq!(rows.len(), 6);
    for (row, rec) in rows.iter().zip(&records) {
        assert_eq!(
            (row.seq, row.hash, &row.stored),
            (rec.seq, rec.hash, &rec.stored)
        );
        assert_eq!(row.node, "node-a");
        assert_eq!(
            oms_upgrade::ledger::record::hash_body(&row.stored[..row.stored.len() - 32]),
            row.hash,
            "a row's hash is BLAKE3 derive-key of its stored body"
        );
    }
    assert_eq!(w.records(id, 5).await.unwrap().len(), 2);
    let ledgers = w.ledgers().await.unwrap();
    assert_eq!(ledgers.len(), 1);
    assert_eq!(
        (ledgers[0].ledger_id, ledgers[0].node.as_str()),
        (id, "node-a")
    );

    // Signed checkpoints: idempotent per text, two texts at one seq both kept.
    let cp = |text: &str| WitnessCheckpoint {
        ledger_id: id,
        seq: 6,
        head: hashes[5],
        text: text.to_string(),
    };
    w.push_checkpoint(&cp("checkpoint one\n")).await.unwrap();
    w.push_checkpoint(&cp("checkpoint one\n")).await.unwrap();
    w.push_checkpoint(&cp("checkpoint two\n")).await.unwrap();
    let cps = w.checkpoints(id).await.unwrap();
    assert_eq!(cps.len(), 2, "{cps:?}");
    assert!(cps.contains(&cp("checkpoint one\n")));

    // A second history under the same ledger id, parting from the first at seq 4.
    forge::rewrite_chain(&dir, |r| {
        if r.seq >= 4 {
            r.operator = "mallory".into();
        }
    });
    let forked = records_of(&dir);
    assert_eq!(
        forked[2].hash, records[2].hash,
        "the histories share seq 1-3"
    );
    assert_ne!(forked[3].hash, records[3].hash);
    let err = w.push("node-b", &forked).await.unwrap_err();
    match &err {
        WitnessError::Fork {
            ledger_id,
            seq,
            ours,
            theirs,
        } => {
            assert_eq!((*ledger_id, *seq, *ours), (id, 4, forked[3].hash));
            assert_eq!(theirs, &vec![records[3].hash]);
        }
        other => panic!("expected a fork, got {other:?}"),
    }
    assert!(err.to_string().contains("fork"), "{err}");
    // Kept as evidence: the first history whole, plus the other's record at seq 4 and
    // nothing after it.
    assert_eq!(count_rows(&db.name).await, 7);
    let at4: Vec<_> = w
        .records(id, 4)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.seq == 4)
        .collect();
    assert_eq!(at4.len(), 2);
    assert!(
        at4.iter()
            .any(|r| r.node == "node-b" && r.stored == forked[3].stored)
    );
    let (seq, heads) = w.head(id).await.unwrap().unwrap();
    assert_eq!((seq, heads), (6, vec![hashes[5]]));
    // Pushing the other history again still reports the fork (nothing is hidden by a
    // retry).
    assert!(matches!(
        w.push("node-b", &forked).await,
        Err(WitnessError::Fork { seq: 4, .. })
    ));
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_the_writer_every_change_to_a_row() {
    let (db, writer) = witness_db("wit_ro").await;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = support::ledger_with_notes(tmp.path(), 2);
    let w = MysqlWitness::new(writer.target(), db.name.clone());
    w.push("node-a", &records_of(&dir)).await.unwrap();
    w.close().await;

    let mut c = mysql_async::Conn::new(writer.target().opts(Some(&db.name)))
        .await
        .unwrap();
    for sql in [
        "UPDATE `witness_records` SET `node` = 'x'",
        "DELETE FROM `witness_records`",
        "REPLACE INTO `witness_ledgers` (`ledger_id`, `node`, `first_pushed_utc`) \
         VALUES (REPEAT('a', 16), 'x', NOW())",
        "INSERT INTO `witness_ledgers` (`ledger_id`, `node`, `first_pushed_utc`) \
         VALUES (REPEAT('b', 16), 'x', NOW()) ON DUPLICATE KEY UPDATE `node` = 'y'",
        "TRUNCATE TABLE `witness_records`",
        "DROP TABLE `witness_records`",
        "ALTER TABLE `witness_records` ADD COLUMN `x` INT",
    ] {
        match c.query_drop(sql).await {
            Err(mysql_async::Error::Server(s)) => {
                // ER_TABLEACCESS_DENIED_ERROR (MySQL and MariaDB).
                assert_eq!(s.code, 1142, "{sql}: {s}");
            }
            other => panic!("the server let the writer run {sql}: {other:?}"),
        }
    }
    let n: u64 = c
        .query_first("SELECT COUNT(*) FROM `witness_records` WHERE `node` = 'node-a'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2, "every row as pushed");
    c.disconnect().await.ok();
}

/// The source of the adapter without its unit tests.
fn adapter_source() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/witness/mysql.rs");
    let text = std::fs::read_to_string(path).unwrap();
    text.split("#[cfg(test)]").next().unwrap().to_string()
}

#[test]
fn the_adapter_issues_only_insert_and_select() {
    for sql in STATEMENTS.iter().chain(schema::CREATE_ALL.iter()) {
        let upper = sql.to_ascii_uppercase();
        assert!(
            upper.starts_with("INSERT INTO `")
                || upper.starts_with("SELECT ")
                || upper.starts_with("CREATE TABLE IF NOT EXISTS `"),
            "{sql}"
        );
        for word in [
            "UPDATE",
            "DELETE",
            "REPLACE",
            "DUPLICATE",
            "TRUNCATE",
            "DROP",
        ] {
            assert!(!upper.contains(word), "{word} in {sql}");
        }
    }
    // Grep: outside comments, the adapter's source spells none of the forbidden words.
    let code: String = adapter_source()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_uppercase();
    for word in [
        "UPDATE",
        "DELETE",
        "REPLACE",
        "DUPLICATE KEY",
        "TRUNCATE",
        "DROP ",
    ] {
        assert!(!code.contains(word), "{word} in src/witness/mysql.rs");
    }
    // Every statement it hands the driver is one of the listed consts (or the schema's,
    // or the parameter of the one helper that is called with them).
    let listed = [
        ("SELECT_LEDGER", wm::SELECT_LEDGER),
        ("INSERT_LEDGER", wm::INSERT_LEDGER),
        ("SELECT_HASHES", wm::SELECT_HASHES),
        ("INSERT_RECORD", wm::INSERT_RECORD),
        ("SELECT_HEAD", wm::SELECT_HEAD),
        ("SELECT_RECORDS", wm::SELECT_RECORDS),
        ("SELECT_LEDGERS", wm::SELECT_LEDGERS),
        ("INSERT_CHECKPOINT", wm::INSERT_CHECKPOINT),
        ("SELECT_CHECKPOINTS", wm::SELECT_CHECKPOINTS),
    ];
    let mut values: Vec<&str> = listed.iter().map(|(_, v)| *v).collect();
    let mut all = STATEMENTS.to_vec();
    values.sort();
    all.sort();
    assert_eq!(values, all, "the list below names every statement");
    let source = adapter_source();
    let mut calls = 0;
    for method in [
        ".exec(",
        ".exec_drop(",
        ".exec_first(",
        ".exec_iter(",
        ".exec_batch(",
        ".query(",
        ".query_drop(",
        ".query_first(",
        ".query_iter(",
    ] {
        for (at, _) in source.match_indices(method) {
            let arg: String = source[at + method.len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            calls += 1;
            assert!(
                listed.iter().any(|(n, _)| *n == arg) || arg == "sql",
                "{method}{arg}...: a statement that is not a listed const"
            );
        }
    }
    assert!(calls >= 9, "found {calls} driver calls");
    // `sql` is bound only from the schema list and the insert helper's `&'static str`.
    assert!(source.contains("for sql in CREATE_ALL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_privilege_failures_are_typed() {
    // Nothing listens on port 1.
    let mut nowhere = support::mysql_target();
    nowhere.port = 1;
    let w = MysqlWitness::new(nowhere, "oms_witness".into());
    let e = w.head(uuid::Uuid::nil()).await.unwrap_err();
    assert!(matches!(e, WitnessError::Unreachable { .. }), "{e:?}");

    // No tables yet.
    let db = support::TestDb::create("wit_none").await;
    let name = db.name.clone();
    let writer = TempUser::create("wit_w", |account| schema::writer_grant(&name, account)).await;
    let w = MysqlWitness::new(writer.target(), db.name.clone());
    let e = w.ledgers().await.unwrap_err();
    assert!(matches!(e, WitnessError::Refused { .. }), "{e:?}");
    // The writer cannot create them either (it has no CREATE).
    let e = w.create_schema().await.unwrap_err();
    assert!(matches!(e, WitnessError::Refused { .. }), "{e:?}");

    // A wrong password.
    let mut wrong = writer.target();
    wrong.password = Secret::new("not-the-password");
    let e = MysqlWitness::new(wrong, db.name.clone())
        .ledgers()
        .await
        .unwrap_err();
    assert!(matches!(e, WitnessError::Refused { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("not-the-password"), "{e}");
}

/// `witness init` with the witness in `OMS_UPGRADE_WITNESS` (`mysql://user@test-server/db`).
fn witness_cli(db: &str, user: &str, password: &str) -> std::process::Command {
    let t = support::mysql_target();
    let mut c = std::process::Command::new(bin());
    c.env(
        "OMS_UPGRADE_WITNESS",
        format!("mysql://{user}@{}:{}/{db}", t.host, t.port),
    )
    .env("OMS_WITNESS_PASSWORD", password)
    .args(["witness", "init", "--witness-tls", "off"]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_init_creates_the_tables_and_prints_the_grants_it_needs() {
    let db = support::TestDb::create("wit_init").await;
    let t = support::mysql_target();
    let pw = t.password.expose().to_string();
    let out = witness_cli(&db.name, &t.user, &pw)
        .args(["--writer-user", "w1", "--user-host", "10.0.0.%"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "GRANT INSERT, SELECT ON `{}`.* TO 'w1'@'10.0.0.%';",
            db.name
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "GRANT SELECT ON `{}`.* TO 'oms_witness_auditor'@'10.0.0.%';",
            db.name
        )),
        "{text}"
    );
    assert!(!text.contains(&pw), "no password in the output");
    let mut c = admin().await;
    let tables: Vec<String> = c
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME",
            (db.name.as_str(),),
        )
        .await
        .unwrap();
    assert_eq!(
        tables,
        ["witness_checkpoints", "witness_ledgers", "witness_records"]
    );

    // Again: nothing changes, and --json says the same.
    let out = witness_cli(&db.name, &t.user, &pw)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let j = json_of(&out.stdout);
    assert_eq!(j["tables"][1], "witness_records");
    assert!(
        j["writer_grant"]
            .as_str()
            .unwrap()
            .starts_with("GRANT INSERT, SELECT ON")
    );

    // One of OMS's metadata databases, a password in the URL, a hostile user name:
    // refused before anything is sent (exit 5).
    for (args, said) in [
        (
            vec!["--witness", "mysql://u@127.0.0.1:3306/oms_rm"],
            "metadata",
        ),
        (
            vec!["--witness", "mysql://u:pw@127.0.0.1:3306/x"],
            "password",
        ),
        (vec!["--writer-user", "w'; DROP"], "cannot be used"),
    ] {
        let out = witness_cli(&db.name, &t.user, &pw)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(said),
            "{args:?}: {}",
            show(&out)
        );
    }
    // No password anywhere: refused with a hint naming where it goes.
    let out = witness_cli(&db.name, &t.user, &pw)
        .env_remove("OMS_WITNESS_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OMS_WITNESS_PASSWORD"));
}

// ---------------------------------------------------------------------------------------
// The tamper matrix (issue 14): each case detected by `ledger verify --witness`, run as the
// binary, with no manual anchor. The witness is written by `ledger push` as the
// least-privileged writer.

/// A witness database, its writer, and a ledger folder of `n` notes.
struct Matrix {
    db: support::TestDb,
    writer: TempUser,
    tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Matrix {
    async fn new(prefix: &str, n: i64) -> Matrix {
        let (db, writer) = witness_db(prefix).await;
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = support::ledger_with_notes(tmp.path(), n);
        Matrix {
            db,
            writer,
            tmp,
            dir,
        }
    }

    /// The witness URL for the writer.
    fn url(&self) -> String {
        let t = support::mysql_target();
        format!(
            "mysql://{}@{}:{}/{}",
            self.writer.name, t.host, t.port, self.db.name
        )
    }

    /// `oms-upgrade --json ledger <args>` on ledger folder `dir`, against the witness.
    fn ledger(&self, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(bin())
            .env("OMS_UPGRADE_LEDGER", dir)
            .env("OMS_UPGRADE_HOST", "node-under-test")
            .env("OMS_UPGRADE_WITNESS", self.url())
            .env("OMS_WITNESS_PASSWORD", &self.writer.password)
            .env_remove("OMS_UPGRADE_SIGNING_KEY")
            .args(["--json", "ledger"])
            .args(args)
            .args(["--witness-tls", "off"])
            .output()
            .unwrap()
    }

    /// Makes a signing key in the test folder; returns the public key.
    fn keygen(&self) -> String {
        let out = std::process::Command::new(bin())
            .env("OMS_UPGRADE_LEDGER", &self.dir)
            .args(["--json", "ledger", "keygen", "--out"])
            .arg(self.tmp.path().join("ops.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        json_of(&out.stdout)["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Writes a signed checkpoint of the head beside the ledger folder, as `run` does with
    /// a key; returns its path.
    fn sign_checkpoint(&self) -> std::path::PathBuf {
        let cp = oms_upgrade::ledger::sign::signed_checkpoint_path(&self.dir);
        let out = std::process::Command::new(bin())
            .env("OMS_UPGRADE_LEDGER", &self.dir)
            .args(["ledger", "checkpoint", "--sign"])
            .arg(self.tmp.path().join("ops.key"))
            .arg("--out")
            .arg(&cp)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        cp
    }

    fn push(&self, dir: &std::path::Path) -> serde_json::Value {
        let out = self.ledger(dir, &["push"]);
        assert!(out.status.success(), "{}", show(&out));
        json_of(&out.stdout)
    }

    /// `ledger verify --witness`: the exit code and the `witness` part of the JSON.
    fn verify(&self, dir: &std::path::Path, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        let out = self.ledger(dir, &args);
        let v = json_of(&out.stdout);
        (out.status.code().unwrap(), v)
    }
}

/// Appends `n` notes tagged `tag` through the library (as a later command would).
fn append_notes(dir: &std::path::Path, n: u64, tag: &str) {
    use oms_upgrade::events::{self, Event};
    use oms_upgrade::ledger::{Ledger, NewRecord};
    let mut l = Ledger::open_writer(dir).unwrap();
    for i in 0..n {
        let enc = events::encode(&Event::Note {
            text: format!("{tag} {i}"),
        });
        l.append(NewRecord {
            timestamp_micros: 1_795_700_000_000_000 + i as i64,
            operator: "bob",
            host: "oms-node-1",
            run_id: uuid::Uuid::from_u128(0xbeef),
            event_type: enc.event_type,
            schema_version: enc.schema_version,
            payload: &enc.payload,
        })
        .unwrap();
    }
}

/// Removes the records from `from_seq` on, through sled's own API (the attacker who cuts
/// the tail).
fn truncate(dir: &std::path::Path, from_seq: u64) {
    use oms_upgrade::ledger::store::{RECORDS_TREE, seq_key};
    let db = support::raw_sled(dir);
    let t = db.open_tree(RECORDS_TREE).unwrap();
    let mut seq = from_seq;
    while t.remove(seq_key(seq)).unwrap().is_some() {
        seq += 1;
    }
    db.flush().unwrap();
}

use support::copy_dir;

/// `ledger verify` on `dir` without a witness: what the chain alone says.
fn verify_alone(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin())
        .env("OMS_UPGRADE_LEDGER", dir)
        .env_remove("OMS_UPGRADE_WITNESS")
        .args(["ledger", "verify"])
        .output()
        .unwrap()
}

fn difference(v: &serde_json::Value) -> (&str, u64) {
    let d = &v["witness"]["difference"];
    (
        d["kind"].as_str().unwrap_or("none"),
        d["seq"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_locally_truncated_ledger_is_caught_and_so_is_the_checkpoint_it_outran() {
    let m = Matrix::new("wit_trunc", 6).await;
    // A signed checkpoint beside the ledger folder, as `run` writes it with a key.
    let public = m.keygen();
    m.sign_checkpoint();

    let pushed = m.push(&m.dir);
    assert_eq!(
        (pushed["inserted"].as_u64(), pushed["witness_head"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(pushed["checkpoint"]["pushed"], true, "{pushed}");
    let (code, v) = m.verify(&m.dir, &["--pubkey", &public]);
    assert_eq!((code, difference(&v)), (0, ("none", 0)), "{v}");
    assert_eq!(
        v["witness"]["checkpoints"][0]["signature_verified"], true,
        "{v}"
    );

    truncate(&m.dir, 5);
    // Alone, verify cannot tell (a shorter consistent chain).
    let out = verify_alone(&m.dir);
    assert!(out.status.success(), "{}", show(&out));
    let (code, v) = m.verify(&m.dir, &["--pubkey", &public]);
    assert_eq!((code, difference(&v)), (3, ("local_behind", 5)), "{v}");
    // A push from the cut ledger adds nothing and says the witness is ahead (exit 3).
    let out = m.ledger(&m.dir, &["push"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let p = json_of(&out.stdout);
    assert_eq!(
        (p["ok"].as_bool(), p["witness_ahead"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(p["inserted"], 0, "{p}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{}",
        show(&out)
    );
    assert!(
        v["witness"]["difference"]["detail"]
            .as_str()
            .unwrap()
            .contains("truncated, or replaced by an older copy"),
        "{v}"
    );
    assert!(
        v["witness"]["checkpoints"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("no longer holds"),
        "{v}"
    );
    // The text form names it too, with the witness given as a flag.
    let out = std::process::Command::new(bin())
        .env("OMS_UPGRADE_LEDGER", &m.dir)
        .env_remove("OMS_UPGRADE_WITNESS")
        .env("OMS_WITNESS_PASSWORD", &m.writer.password)
        .args([
            "ledger",
            "verify",
            "--witness-tls",
            "off",
            "--witness",
            &m.url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("witness:   DIFFERS at seq 5"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_consistent_local_rewrite_is_caught() {
    let m = Matrix::new("wit_rewrite", 5).await;
    m.push(&m.dir);
    forge::rewrite_chain(&m.dir, |r| {
        if r.seq >= 3 {
            r.operator = "mallory".into();
        }
    });
    // Alone, verify passes the forged chain (the documented limit).
    let out = verify_alone(&m.dir);
    assert!(out.status.success(), "{}", show(&out));
    let (code, v) = m.verify(&m.dir, &[]);
    assert_eq!((code, difference(&v)), (3, ("rewritten", 3)), "{v}");
    assert_eq!(v["witness"]["difference"]["consistent_rehash"], true, "{v}");
    assert_eq!(v["witness"]["matched"], 2, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_ledger_rolled_back_to_an_older_copy_is_caught() {
    let m = Matrix::new("wit_older", 4).await;
    m.push(&m.dir);
    let old = m.tmp.path().join("old-copy");
    copy_dir(&m.dir, &old);
    append_notes(&m.dir, 3, "later");
    assert_eq!(m.push(&m.dir)["inserted"], 3);
    // The older copy put back in place of the folder.
    std::fs::remove_dir_all(&m.dir).unwrap();
    copy_dir(&old, &m.dir);
    let (code, v) = m.verify(&m.dir, &[]);
    assert_eq!((code, difference(&v)), (3, ("local_behind", 5)), "{v}");
    assert_eq!(v["witness"]["witness_head"], 7, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_fork_two_ledgers_with_one_id_both_pushed_is_caught() {
    let m = Matrix::new("wit_fork", 3).await;
    let twin = m.tmp.path().join("twin");
    copy_dir(&m.dir, &twin);
    append_notes(&m.dir, 2, "first");
    append_notes(&twin, 2, "second");
    m.push(&m.dir);
    // The twin's push stops at the fork (exit 3), its record kept beside the first.
    let out = m.ledger(&twin, &["push"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fork"),
        "{}",
        show(&out)
    );
    for dir in [&m.dir, &twin] {
        let (code, v) = m.verify(dir, &[]);
        assert_eq!((code, difference(&v)), (3, ("forked", 4)), "{v}");
        assert_eq!(
            v["witness"]["difference"]["witness_hashes"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "{v}"
        );
    }
    assert_eq!(
        count_rows(&m.db.name).await,
        6,
        "5 + the twin's record at seq 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_records_missing_on_the_witness_are_named_and_push_catches_up() {
    let m = Matrix::new("wit_lag", 3).await;
    // Never pushed: everything is missing.
    let (code, v) = m.verify(&m.dir, &[]);
    assert_eq!(
        (code, difference(&v)),
        (0, ("missing_on_witness", 1)),
        "{v}"
    );
    m.push(&m.dir);
    append_notes(&m.dir, 2, "unpushed");
    let (code, v) = m.verify(&m.dir, &[]);
    // Lag is named; under best-effort it is not tampering (exit 0, ok stays true).
    assert_eq!(
        (code, difference(&v)),
        (0, ("missing_on_witness", 4)),
        "{v}"
    );
    assert_eq!(v["witness"]["ok"], true, "{v}");
    let out = m.ledger(&m.dir, &["push"]);
    let again = json_of(&out.stdout);
    assert_eq!(
        (again["inserted"].as_u64(), again["already_there"].as_u64()),
        (Some(2), Some(3))
    );
    let (code, v) = m.verify(&m.dir, &[]);
    assert_eq!((code, difference(&v)), (0, ("none", 0)), "{v}");
    assert_eq!(v["witness"]["matched"], 5, "{v}");
    assert_eq!(count_rows(&m.db.name).await, 5, "no duplicate rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_push_refuses_a_broken_chain_and_pushes_nothing() {
    let m = Matrix::new("wit_broken", 4).await;
    {
        use oms_upgrade::ledger::store::{RECORDS_TREE, seq_key};
        let db = support::raw_sled(&m.dir);
        let t = db.open_tree(RECORDS_TREE).unwrap();
        let mut v = t.get(seq_key(2)).unwrap().unwrap().to_vec();
        v[60] ^= 1;
        t.insert(seq_key(2), v).unwrap();
        db.flush().unwrap();
    }
    let out = m.ledger(&m.dir, &["push"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was pushed"));
    assert_eq!(count_rows(&m.db.name).await, 0);
}

/// ledger-schema/WITNESS.md lists every statement the adapter runs, verbatim.
#[test]
fn witness_md_lists_the_exact_sql() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ledger-schema/WITNESS.md"
    ))
    .unwrap();
    for sql in STATEMENTS.iter().chain(schema::CREATE_ALL.iter()) {
        assert!(doc.contains(sql), "WITNESS.md lacks:\n{sql}");
    }
    for grant in [
        schema::writer_grant("oms_witness", "'oms_witness_writer'@'%'"),
        schema::auditor_grant("oms_witness", "'oms_witness_auditor'@'%'"),
    ] {
        assert!(doc.contains(&grant), "WITNESS.md lacks:\n{grant}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_verify_say_when_the_witness_cannot_be_reached_or_refuses() {
    let m = Matrix::new("wit_down", 2).await;
    let t = support::mysql_target();
    let run = |url: String, args: &[&str]| {
        std::process::Command::new(bin())
            .env("OMS_UPGRADE_LEDGER", &m.dir)
            .env("OMS_UPGRADE_WITNESS", url)
            .env("OMS_WITNESS_PASSWORD", &m.writer.password)
            .args(["ledger"])
            .args(args)
            .args(["--witness-tls", "off"])
            .output()
            .unwrap()
    };
    // Nothing listens on port 1: exit 6, nothing claimed.
    let nowhere = format!("mysql://{}@{}:1/{}", m.writer.name, t.host, m.db.name);
    for args in [&["push"][..], &["verify"][..]] {
        let out = run(nowhere.clone(), args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be reached"),
            "{}",
            show(&out)
        );
    }
    // A database without the tables: refused (exit 5), the hint names `witness init`.
    let empty = support::TestDb::create("wit_empty").await;
    let out = run(
        format!(
            "mysql://{}@{}:{}/{}",
            m.writer.name, t.host, t.port, empty.name
        ),
        &["push"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("witness init"),
        "{}",
        show(&out)
    );
    assert_eq!(count_rows(&m.db.name).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_signed_checkpoint_put_back_beside_the_ledger_is_caught() {
    let m = Matrix::new("wit_oldcp", 4).await;
    let public = m.keygen();
    let cp = m.sign_checkpoint();
    let old = std::fs::read_to_string(&cp).unwrap();
    m.push(&m.dir);
    append_notes(&m.dir, 2, "later");
    m.sign_checkpoint();
    assert_eq!(m.push(&m.dir)["checkpoint"]["seq"], 6);
    let (code, v) = m.verify(&m.dir, &["--pubkey", &public]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["witness"]["local_checkpoint"]["problem"], false, "{v}");
    // The older (genuine, signed) checkpoint put back: the chain and the records agree with
    // the witness, but the witness knows a newer checkpoint.
    std::fs::write(&cp, old).unwrap();
    let (code, v) = m.verify(&m.dir, &["--pubkey", &public]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(difference(&v), ("none", 0), "{v}");
    assert_eq!(v["witness"]["local_checkpoint"]["problem"], true, "{v}");
    assert!(
        v["witness"]["local_checkpoint"]["detail"]
            .as_str()
            .unwrap()
            .contains("replaced by an older one"),
        "{v}"
    );
}

/// A ledger whose `witness_ledgers` row a database administrator deleted is still listed
/// (from its records): the fleet view must not lose a ledger because one index row went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_whose_ledgers_row_was_deleted_is_still_listed() {
    let (db, writer) = witness_db("wit_lrow").await;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = support::ledger_with_notes(tmp.path(), 3);
    let records = records_of(&dir);
    let id = records[0].ledger_id;
    let w = MysqlWitness::new(writer.target(), db.name.clone());
    w.push("node-a", &records).await.unwrap();
    let mut admin = support::witness::admin().await;
    admin
        .query_drop(format!("DELETE FROM `{}`.`witness_ledgers`", db.name))
        .await
        .unwrap();
    let ledgers = w.ledgers().await.unwrap();
    assert_eq!(
        ledgers
            .iter()
            .map(|l| (l.ledger_id, l.node.as_str()))
            .collect::<Vec<_>>(),
        vec![(id, "node-a")],
        "listed from its records"
    );
}

/// While a run holds the ledger, `ledger verify --witness` reads a live copy as of seq N,
/// and the run has gone on appending and pushing: witness rows past N are records appended
/// after the read, not a ledger cut short. (The holder here holds a folder whose writer
/// pushed 3 more records elsewhere, which makes "appended after the read" certain; the
/// verify that follows the release compares everything.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_read_is_compared_with_the_witness_only_up_to_the_seq_it_read() {
    let m = Matrix::new("wit_live", 4).await;
    m.push(&m.dir);
    let behind = m.tmp.path().join("behind");
    copy_dir(&m.dir, &behind);
    append_notes(&m.dir, 3, "later");
    assert_eq!(m.push(&m.dir)["inserted"], 3);

    let holder = oms_upgrade::ledger::Ledger::open_writer(&behind).unwrap();
    let (code, v) = m.verify(&behind, &[]);
    assert_eq!(v["live"], true, "{v}");
    assert_eq!((code, difference(&v)), (0, ("none", 0)), "{v}");
    drop(holder);
    let (code, v) = m.verify(&behind, &[]);
    assert_eq!((code, difference(&v)), (3, ("local_behind", 5)), "{v}");
}
