//! Shared test support: real services only.
//!
//! Every integration test that needs MariaDB or Docker goes through here. Reachability is
//! checked up front and a missing service is a loud failure naming the command that starts
//! it (`scripts/test`), never a skip. Resources are named per test and cleaned up on drop;
//! a failing test keeps its database for inspection (sqlx's habit).
#![allow(dead_code)]

/// Emulator binary and images, OMS containers, per-test metadata databases and host folders.
pub mod emulator;
/// The consistent-rewrite attacker: re-encodes and re-links a whole ledger.
pub mod forge;
/// A database whose object names are hostile (SQL smuggled through names).
pub mod hostile;
/// A TCP proxy a test can cut and restore (a witness unreachable mid-run).
pub mod proxy;
/// Running the `oms-upgrade` binary in upgrade tests and comparing end states.
pub mod upgrade;
/// A witness database and its least-privileged accounts (issue 14).
pub mod witness;

use std::sync::atomic::{AtomicU32, Ordering};

use oms_upgrade::dbconn::DbTarget;
use oms_upgrade::secret::Secret;

/// Label put on every container a test creates, so cleanup can find them even after a crash.
pub const TEST_LABEL: &str = "oms-upgrade.test";

/// The password user the test setup created (see `scripts/services.sh`).
pub fn mysql_target() -> DbTarget {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    DbTarget {
        host: var("OMS_TEST_MYSQL_HOST", "127.0.0.1"),
        port: var("OMS_TEST_MYSQL_PORT", "3306")
            .parse()
            .expect("OMS_TEST_MYSQL_PORT is a port number"),
        user: var("OMS_TEST_MYSQL_USER", "oms_test"),
        password: Secret::new(var("OMS_TEST_MYSQL_PASSWORD", "oms_test_pw")),
        // The test server has no TLS, and tests open pools on these options directly.
        tls: oms_upgrade::dbconn::TlsSettings::off(),
    }
}

/// A pool on the test server; panics with the setup command if the server is unreachable.
pub async fn mysql_pool() -> mysql_async::Pool {
    let target = mysql_target();
    let pool = mysql_async::Pool::new(target.opts(None));
    match pool.get_conn().await {
        Ok(_) => pool,
        Err(e) => panic!(
            "MariaDB is not reachable at {} ({e}). Start the test services with `scripts/test` \
             (it installs and starts MariaDB and creates the test user).",
            target.display_url()
        ),
    }
}

/// A Docker client with the API version negotiated; panics with the setup command if the
/// engine is unreachable.
pub async fn docker() -> bollard::Docker {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "the Docker engine is not reachable ({e}). Start the test services with `scripts/test` \
             (it installs docker.io and starts dockerd)."
        )
    };
    let d = bollard::Docker::connect_with_local_defaults().unwrap_or_else(|e| fail(&e));
    let d = d.negotiate_version().await.unwrap_or_else(|e| fail(&e));
    d.ping().await.unwrap_or_else(|e| fail(&e));
    d
}

/// A name unique to this test process and call: `<prefix>_<pid>_<n>`, safe as a database
/// or container name.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{}", prefix, std::process::id(), n)
}

/// A database created for one test and dropped when the test passes; kept when it panics so
/// the state can be inspected.
pub struct TestDb {
    /// The database name.
    pub name: String,
}

impl TestDb {
    /// Creates a fresh, uniquely named database (utf8mb4).
    pub async fn create(prefix: &str) -> TestDb {
        let name = unique_name(prefix);
        let pool = mysql_pool().await;
        let mut c = pool.get_conn().await.expect("connection");
        use mysql_async::prelude::Queryable;
        c.query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .expect("create test database");
        drop(c);
        pool.disconnect().await.ok();
        TestDb { name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: keeping database `{}` for inspection",
                self.name
            );
            return;
        }
        admin_blocking(vec![format!("DROP DATABASE IF EXISTS `{}`", self.name)]);
    }
}

/// Runs `statements` as the test server's admin user, ignoring their errors, from any
/// context: Drop may run inside or outside a runtime ([`block_on_aside`]).
pub fn admin_blocking(statements: Vec<String>) {
    block_on_aside(async move {
        let pool = mysql_async::Pool::new(mysql_target().opts(None));
        if let Ok(mut c) = pool.get_conn().await {
            use mysql_async::prelude::Queryable;
            for sql in statements {
                let _ = c.query_drop(sql).await;
            }
        }
        pool.disconnect().await.ok();
    });
}

/// Copies a folder tree (a ledger folder, to make an "older copy" or a twin).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs `fut` to its end on a short-lived runtime of its own on another thread: for
/// cleanups in `Drop`, which may run inside or outside a runtime.
pub fn block_on_aside(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .ok();
}

/// Removes every container carrying [`TEST_LABEL`] with the given value (or any value when
/// `None`). Call at the start and end of container tests.
pub async fn remove_labelled_containers(docker: &bollard::Docker, value: Option<&str>) {
    use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
    let label = match value {
        Some(v) => format!("{TEST_LABEL}={v}"),
        None => TEST_LABEL.to_string(),
    };
    let mut filters = std::collections::HashMap::new();
    filters.insert("label".to_string(), vec![label]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker.list_containers(Some(opts)).await.unwrap_or_default();
    for c in list {
        if let Some(id) = c.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
        }
    }
}

/// A ledger in `root/ledger` holding `n` operator notes, one second apart from a fixed time,
/// written through the library (no upgrade needed); returns the folder and the hashes.
/// Opens a (closed) ledger's sled database directly, as an attacker with the folder would.
/// sled locks its data file, and a child process forked by another test of the same binary
/// holds that lock for a moment (until its exec closes the inherited descriptor), as the
/// ledger's own open allows for with a grace period; this waits up to 5 s the same way.
/// (A CI run failed with `could not acquire lock ... WouldBlock` without it.)
#[allow(dead_code)]
pub fn raw_sled(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).segment_size(8 << 20).open() {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!(
                "open the ledger's sled database {} directly: {e}",
                dir.display()
            ),
        }
    }
}

pub fn ledger_with_notes(
    root: &std::path::Path,
    n: i64,
) -> (std::path::PathBuf, Vec<oms_upgrade::ledger::Hash>) {
    use oms_upgrade::events::{self, Event};
    use oms_upgrade::ledger::{Ledger, NewRecord};
    /// 2026-11-25T10:00:00Z in microseconds.
    const T0: i64 = 1_795_600_800_000_000;
    let run = uuid::Uuid::from_u128(0xfeed);
    let dir = root.join("ledger");
    let mut l = Ledger::open_writer(&dir).unwrap();
    let hashes = (0..n)
        .map(|i| {
            let enc = events::encode(&Event::Note {
                text: format!("note {i}"),
            });
            l.append(NewRecord {
                timestamp_micros: T0 + i * 1_000_000,
                operator: "alice",
                host: "oms-node-1",
                run_id: run,
                event_type: enc.event_type,
                schema_version: enc.schema_version,
                payload: &enc.payload,
            })
            .unwrap()
            .hash
        })
        .collect();
    (dir, hashes)
}

/// Imports the folder `root` as the image `image` (`repo:tag`), as `docker import` would:
/// tests build tiny images from a few files instead of pulling any.
pub async fn import_folder_as_image(client: &bollard::Docker, root: &std::path::Path, image: &str) {
    use bollard::query_parameters::CreateImageOptionsBuilder;
    use futures_util::StreamExt;
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--owner=0", "--group=0", "-cf", "-", "."])
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "tar failed");
    let (repo, tag) = image.rsplit_once(':').expect("an image reference repo:tag");
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    let mut s = client.create_image(
        Some(opts),
        Some(bollard::body_full(tar.stdout.into())),
        None,
    );
    while let Some(r) = s.next().await {
        r.unwrap_or_else(|e| panic!("docker import of {image}: {e}"));
    }
}
