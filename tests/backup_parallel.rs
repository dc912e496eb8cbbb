//! The native dumper's table-level parallelism against the real MariaDB: several
//! connections in one synchronized snapshot give the same bytes as one connection, a
//! consistent dump while transactions move rows between tables, no `.part` or spool file
//! left when the server goes away, and the fallback for a user without LOCK TABLES.

mod backup_helpers;
mod support;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use backup_helpers::*;
use mysql_async::prelude::Queryable;
use oms_upgrade::dump::{self, Compression, DumpError, DumpOptions, Progress, Quiet};

/// The dump engine's log lines (debug and up), captured for the whole test binary; tests
/// look for lines naming their own database.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct W(&'static Mutex<Vec<u8>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "oms_upgrade::dump=debug",
            ))
            .with_ansi(false)
            .with_writer(move || W(buf))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buf
    })
}

/// True when a captured log line contains every one of `parts`.
fn logged(parts: &[&str]) -> bool {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

const PARALLEL: &str = "tables dumped in parallel in one snapshot";
const FALLBACK: &str = "LOCK TABLES was refused";

fn jobs(n: usize) -> DumpOptions {
    DumpOptions {
        jobs: n,
        ..DumpOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_and_four_connections_dump_the_same_bytes() {
    logs();
    let db = support::TestDb::create("bk_par").await;
    load_fixture(&db.name).await;
    // Tables big enough that some sections are spooled and copied in later.
    seed_big(&db.name, "big_a", 6_000).await;
    seed_big(&db.name, "big_b", 9_000).await;
    let target = support::mysql_target();
    for (compression, max_statement_bytes) in
        [(Compression::None, 1 << 20), (Compression::Zstd, 4096)]
    {
        let mut seen = Vec::new();
        for n in [1, 4, 4] {
            let dir = out_dir();
            let opts = DumpOptions {
                compression,
                max_statement_bytes,
                ..jobs(n)
            };
            let a = dump::dump_database(&target, &db.name, dir.path(), &opts, &Quiet)
                .await
                .unwrap_or_else(|e| panic!("jobs={n}: {e}"));
            let name = a.file.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                files_in(dir.path()),
                vec![name],
                "jobs={n}: only the dump is left"
            );
            let bytes = std::fs::read(&a.file).unwrap();
            seen.push((n, a, bytes, dir));
        }
        let (_, first, first_bytes, _) = &seen[0];
        for (n, a, bytes, _) in &seen[1..] {
            assert!(
                bytes == first_bytes,
                "jobs={n} wrote other bytes than jobs=1"
            );
            assert_eq!(a.blake3_hex, first.blake3_hex);
            assert_eq!(a.tables, first.tables, "jobs={n}");
            assert_eq!(a.views, first.views);
            assert_eq!(a.skipped_triggers, first.skipped_triggers);
            assert_eq!(a.charset, first.charset);
        }
    }
    assert!(
        logged(&[PARALLEL, &db.name]),
        "jobs=4 took the parallel path"
    );

    // Several databases in one pool (one lock over all their tables): the same bytes too.
    let other = support::TestDb::create("bk_par2").await;
    load_fixture(&other.name).await;
    let names = vec![db.name.clone(), other.name.clone()];
    let (d1, d4) = (out_dir(), out_dir());
    let m1 = dump::backup(&target, &names, d1.path(), &jobs(1), Arc::new(Quiet))
        .await
        .unwrap();
    let m4 = dump::backup(&target, &names, d4.path(), &jobs(4), Arc::new(Quiet))
        .await
        .unwrap();
    for (a, b) in m1.databases.iter().zip(&m4.databases) {
        assert_eq!(a.database, b.database);
        assert_eq!(a.blake3_hex, b.blake3_hex, "{}", a.database);
        assert_eq!(a.tables, b.tables);
    }
    assert!(logged(&[PARALLEL, &format!("{}, {}", db.name, other.name)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_moving_rows_between_tables_never_show_half_done_in_the_dump() {
    logs();
    let db = support::TestDb::create("bk_cons").await;
    const N: u64 = 2_000;
    // `acct_a` and `zz_b` hold the ids 1..=N between them; the big tables in between make
    // the two be read at different moments, by different connections.
    exec(
        &db.name,
        &format!(
            "CREATE TABLE acct_a (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;
             CREATE TABLE zz_b (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;
             INSERT INTO acct_a SELECT seq, SHA1(seq) FROM seq_1_to_{};
             INSERT INTO zz_b SELECT seq, SHA1(seq) FROM seq_{}_to_{N};",
            N / 2,
            N / 2 + 1
        ),
    )
    .await;
    for t in ["big_1", "big_2", "big_3"] {
        seed_big(&db.name, t, 25_000).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicU64::new(0));
    let deadlocks = Arc::new(AtomicU64::new(0));
    let mover = {
        let (db, stop, moves, deadlocks) = (
            db.name.clone(),
            stop.clone(),
            moves.clone(),
            deadlocks.clone(),
        );
        tokio::spawn(async move {
            let mut c = conn(Some(&db)).await;
            let mut x: u64 = 7;
            while !stop.load(Ordering::SeqCst) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = 1 + (x >> 33) % N;
                let in_a: Option<u64> = c
                    .exec_first("SELECT id FROM acct_a WHERE id = ?", (id,))
                    .await
                    .unwrap();
                let (from, to) = if in_a.is_some() {
                    ("acct_a", "zz_b")
                } else {
                    ("zz_b", "acct_a")
                };
                // Move row `id` to the other table, in one transaction.
                let moved: Result<(), mysql_async::Error> = async {
                    let mut tx = c.start_transaction(mysql_async::TxOpts::default()).await?;
                    tx.exec_drop(
                        format!("INSERT INTO {to} SELECT * FROM {from} WHERE id = ?"),
                        (id,),
                    )
                    .await?;
                    tx.exec_drop(format!("DELETE FROM {from} WHERE id = ?"), (id,))
                        .await?;
                    tx.commit().await
                }
                .await;
                match moved {
                    Ok(()) => {
                        moves.fetch_add(1, Ordering::SeqCst);
                    }
                    // The dump's LOCK TABLES, while it waits for this transaction's write to
                    // one table, makes its write to the other a metadata-lock deadlock: the
                    // server rolls this transaction back, and an application retries it.
                    Err(mysql_async::Error::Server(e)) if e.code == 1213 => {
                        deadlocks.fetch_add(1, Ordering::SeqCst);
                        c.query_drop("ROLLBACK").await.unwrap();
                    }
                    Err(e) => panic!("moving row {id}: {e}"),
                }
            }
            c.disconnect().await.ok();
        })
    };
    while moves.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let target = support::mysql_target();
    let dir = out_dir();
    let mut artifacts = Vec::new();
    for _ in 0..3 {
        let before = moves.load(Ordering::SeqCst);
        let a = dump::dump_database(&target, &db.name, dir.path(), &jobs(3), &Quiet)
            .await
            .expect("dump while rows move");
        let during = moves.load(Ordering::SeqCst) - before;
        assert!(during > 0, "rows moved while the dump ran");
        let rows = |t: &str| a.tables.iter().find(|f| f.name == t).unwrap().rows;
        assert_eq!(
            rows("acct_a") + rows("zz_b"),
            N,
            "the dump saw a move half done ({during} moves during the dump)"
        );
        std::fs::remove_file(&a.file).unwrap();
        artifacts.push(a);
    }
    assert!(logged(&[PARALLEL, &db.name]), "the parallel path ran");

    // The file itself restores to a state with every id in exactly one table.
    let a = dump::dump_database(&target, &db.name, dir.path(), &jobs(3), &Quiet)
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    mover.await.unwrap();
    eprintln!(
        "{} moves, {} of them rolled back as deadlock victims of the dump's LOCK TABLES",
        moves.load(Ordering::SeqCst),
        deadlocks.load(Ordering::SeqCst)
    );
    dump::restore_database(&target, &a, &dump::RestoreOptions::default(), &Quiet)
        .await
        .expect("restore checks the facts");
    let ids = value(
        &db.name,
        "SELECT CONCAT(COUNT(*), ' ', COUNT(DISTINCT id), ' ', MIN(id), ' ', MAX(id)) \
         FROM (SELECT id FROM acct_a UNION ALL SELECT id FROM zz_b) x",
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8(ids).unwrap(), format!("{N} {N} 1 {N}"));
}

/// Kills the connection reading table `table` the first time rows are reported while at
/// least `spools` spool files exist in `dir`.
struct KillWhenSpooling {
    db: String,
    table: String,
    dir: std::path::PathBuf,
    spools: usize,
    fired: AtomicBool,
}

fn spool_files(dir: &Path) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|f| f.ends_with(".spool"))
        .collect()
}

impl Progress for KillWhenSpooling {
    fn advance(&self, _database: &str, _bytes: u64, rows: u64) {
        if rows == 0
            || self.fired.load(Ordering::SeqCst)
            || spool_files(&self.dir).len() < self.spools
        {
            return;
        }
        self.fired.store(true, Ordering::SeqCst);
        let (db, table) = (self.db.clone(), self.table.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = conn(None).await;
                // The spool file can exist a moment before its SELECT reaches the server
                // (seen under load: no reader yet): wait for the reader, a bounded while.
                let mut ids: Vec<u64> = Vec::new();
                for _ in 0..200 {
                    ids = c
                        .exec(
                            "SELECT ID FROM information_schema.PROCESSLIST \
                             WHERE INFO LIKE CONCAT('SELECT %FROM `', ?, '`.`', ?, '`%') \
                             AND ID <> CONNECTION_ID()",
                            (db.clone(), table.clone()),
                        )
                        .await
                        .unwrap();
                    if !ids.is_empty() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                assert_eq!(ids.len(), 1, "exactly one connection reads `{table}`");
                c.query_drop(format!("KILL {}", ids[0])).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_mid_parallel_dump_leaves_no_part_and_no_spool_file() {
    logs();
    let db = support::TestDb::create("bk_pkill").await;
    // Three tables of ~18 MB: one is streamed into the file, two are spooled meanwhile.
    for t in ["big_1", "big_2", "big_3"] {
        seed_big(&db.name, t, 60_000).await;
    }
    let dir = out_dir();
    // Kill the connection streaming into the file, then one writing a spool file.
    for (table, compression) in [("big_1", Compression::None), ("big_3", Compression::Zstd)] {
        let progress = KillWhenSpooling {
            db: db.name.clone(),
            table: table.into(),
            dir: dir.path().to_path_buf(),
            spools: 2,
            fired: AtomicBool::new(false),
        };
        let opts = DumpOptions {
            compression,
            ..jobs(3)
        };
        let err = dump::dump_database(
            &support::mysql_target(),
            &db.name,
            dir.path(),
            &opts,
            &progress,
        )
        .await
        .expect_err("a killed connection must fail the dump");
        assert!(
            progress.fired.load(Ordering::SeqCst),
            "{table}: the kill ran"
        );
        assert!(matches!(err, DumpError::Query { .. }), "{table}: {err:?}");
        assert!(err.to_string().contains(&db.name), "{err}");
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "{table}: no .part and no spool file may be left"
        );
    }
    assert!(logged(&[PARALLEL, &db.name]));
}

/// A user created for one test, dropped at the end.
struct TempUser {
    name: String,
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = conn(None).await;
                for host in ["127.0.0.1", "localhost"] {
                    let _ = c
                        .query_drop(format!("DROP USER IF EXISTS '{name}'@'{host}'"))
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_lock_tables_falls_back_and_dumps_the_same() {
    logs();
    let db = support::TestDb::create("bk_nolock").await;
    load_fixture(&db.name).await;
    seed_big(&db.name, "big", 5_000).await;
    let name = support::unique_name("bk_nolock_user");
    let password = format!("pw-{name}");
    let mut admin = conn(None).await;
    let mut created = true;
    for host in ["127.0.0.1", "localhost"] {
        let r = admin
            .query_drop(format!(
                "CREATE USER '{name}'@'{host}' IDENTIFIED BY '{password}'; \
                 GRANT SELECT, SHOW VIEW, TRIGGER ON `{}`.* TO '{name}'@'{host}'",
                db.name
            ))
            .await;
        if let Err(e) = r {
            eprintln!(
                "SKIPPED: the test user cannot create users or grant ({e}); the fallback for \
                 a user without LOCK TABLES is not tested"
            );
            created = false;
            break;
        }
    }
    let _user = TempUser { name: name.clone() };
    if !created {
        return;
    }
    let mut limited = support::mysql_target();
    limited.user = name.clone();
    limited.password = oms_upgrade::secret::Secret::new(password);

    // The user really cannot lock.
    let mut c = mysql_async::Conn::new(limited.opts(None)).await.unwrap();
    let err = c
        .query_drop(format!("LOCK TABLES `{}`.`big` READ", db.name))
        .await
        .expect_err("no LOCK TABLES privilege");
    match err {
        mysql_async::Error::Server(s) => assert_eq!(s.code, 1044, "{}", s.message),
        other => panic!("expected access denied, got {other}"),
    }
    c.disconnect().await.ok();

    let reference_dir = out_dir();
    let reference = dump::dump_database(
        &support::mysql_target(),
        &db.name,
        reference_dir.path(),
        &jobs(1),
        &Quiet,
    )
    .await
    .unwrap();
    let dir = out_dir();
    let a = dump::dump_database(&limited, &db.name, dir.path(), &jobs(3), &Quiet)
        .await
        .expect("the fallback dumps without LOCK TABLES");
    assert!(logged(&[FALLBACK, &db.name]), "the fallback was logged");
    assert_eq!(a.tables, reference.tables);
    assert_eq!(
        a.blake3_hex, reference.blake3_hex,
        "same bytes as one connection"
    );

    // And it restores (as the admin user) to the same database.
    let before = snapshot(&db.name).await;
    drop_db(&db.name).await;
    dump::restore_database(
        &support::mysql_target(),
        &a,
        &dump::RestoreOptions::default(),
        &Quiet,
    )
    .await
    .expect("restore");
    assert_eq!(snapshot(&db.name).await, before);
}
