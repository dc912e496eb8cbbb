//! TLS to the metadata database (issue 10): a second MariaDB with TLS, started by the test
//! on a free port with its own data folder and its own CA (about 6 s), next to the shared
//! test MariaDB, which has no TLS.
//!
//! The TLS server's user is created `REQUIRE SSL`, so the server itself refuses any
//! plain-text login: a success against it is proof that the connection was encrypted.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oms_upgrade::adapters::{MetaDb, MetaDbError, MysqlMetaDb};
use oms_upgrade::dbconn::{DbTarget, TlsMode, TlsSettings};
use oms_upgrade::secret::Secret;
use support::emulator as emu;
use support::upgrade::{cli, init_args, json_of, ok, show};

const TLS_USER: &str = "oms_tls";
const TLS_PASSWORD: &str = "tls-pw-Vb6";

/// A mariadbd with TLS on a free port; killed and removed on drop.
struct TlsServer {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", show(&out));
}

impl TlsServer {
    fn start() -> TlsServer {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("oms-tls-db-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // A private CA and a server certificate for 127.0.0.1 signed by it.
        let ssl = |args: &[&str]| run(Command::new("openssl").current_dir(d).args(args));
        std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        self_signed_ca(d, "oms-upgrade test CA", "ca");
        ssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        // A private tmpdir: a starting mariadbd deletes every `#sql*` file in its tmpdir
        // (leftovers of "its" last run), which, in the shared /tmp, are the in-flight
        // temporary tables of the suite's main server. That broke a CI run with
        // "Error on delete of '/tmp/#sql-temptable-….MAI'".
        std::fs::create_dir(d.join("tmp")).unwrap();
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .args([
                "--auth-root-authentication-method=socket",
                "--user=root",
                "--skip-test-db",
            ]));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = |name: &str| d.join(name).display().to_string();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
            ])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"])
            .arg(format!("--port={port}"))
            .arg(format!("--datadir={}", p("data")))
            .arg(format!("--tmpdir={}", p("tmp")))
            .arg(format!("--socket={}", p("sock")))
            .arg(format!("--pid-file={}", p("pid")))
            .arg(format!("--log-error={}", p("err.log")))
            .arg(format!("--ssl-ca={}", p("ca.pem")))
            .arg(format!("--ssl-cert={}", p("server.pem")))
            .arg(format!("--ssl-key={}", p("server.key")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = TlsServer { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.root_sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(server.dir.path().join("err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
            .root_sql(&format!(
                "CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{TLS_PASSWORD}' REQUIRE SSL; \
                 GRANT ALL ON *.* TO '{TLS_USER}'@'%'"
            ))
            .unwrap();
        eprintln!("TLS MariaDB up on port {port} in {:?}", started.elapsed());
        server
    }

    /// Runs SQL as root over the Unix socket.
    fn root_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-uroot", "-N", "-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn target(&self, mode: TlsMode, ca: Option<&Path>) -> DbTarget {
        DbTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            user: TLS_USER.into(),
            password: Secret::new(TLS_PASSWORD),
            tls: TlsSettings {
                mode,
                ca: ca.map(Path::to_path_buf),
                refuse_plain: false,
            },
        }
    }
}

/// `init --json` with `overrides`.
async fn init_json(node: &emu::OmsNode, backups: &Path, overrides: &[(&str, &str)]) -> Vec<String> {
    let mut args = init_args(node, backups, overrides).await;
    args.insert(0, "--json".into());
    args
}

/// The adapter against a TLS server: `required` with the CA verifies and encrypts;
/// `required` without it refuses the certificate with a message naming --meta-ca;
/// `preferred` without it encrypts unverified; `off` is refused by the server (REQUIRE SSL).
#[tokio::test(flavor = "multi_thread")]
async fn adapter_modes_against_a_tls_server() {
    let server = TlsServer::start();
    let ca = server.ca();

    let db = MysqlMetaDb::connect(&server.target(TlsMode::Required, Some(&ca)))
        .await
        .unwrap();
    let state = db.tls_state().await.unwrap();
    assert!(state.encrypted && state.verified, "{state:?}");
    assert!(
        state.version.as_deref().unwrap_or("").starts_with("TLSv1."),
        "{state:?}"
    );
    assert!(state.to_string().contains("verified against"), "{state}");
    db.close().await;

    let err = MysqlMetaDb::connect(&server.target(TlsMode::Required, None))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaDbError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--meta-ca"), "{err}");

    let db = MysqlMetaDb::connect(&server.target(TlsMode::Preferred, None))
        .await
        .unwrap();
    let state = db.tls_state().await.unwrap();
    assert!(state.encrypted && !state.verified, "{state:?}");
    db.close().await;

    let err = MysqlMetaDb::connect(&server.target(TlsMode::Off, None))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaDbError::AccessDenied { .. }), "{err:?}");
}

/// `init` against the shared MariaDB (no TLS): `required` refuses before anything is
/// recorded but the failed preflight; the default (`preferred`) plans, recording
/// `encrypted: false`. Then `init --meta-tls required --meta-ca` against the TLS server
/// (same node, its config.yaml copied and pointed there) plans with `encrypted: true`,
/// shown by `status` and `plan`; and `backup` over TLS works (the user requires it).
#[tokio::test(flavor = "multi_thread")]
async fn init_records_whether_the_metadata_connection_is_encrypted() {
    let node = emu::start_old_oms().await;
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");

    // No TLS on the shared server: `required` refuses, and only the failure is recorded.
    let ledger = tmp.path().join("required");
    let args = init_json(&node, &backups, &[("--meta-tls", "required")]).await;
    let out = cli(&ledger).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let text = show(&out);
    assert!(text.contains("offers no TLS"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    let status = json_of(&ok(cli(&ledger).args(["--json", "status"])).stdout);
    assert_eq!(status["phase"], "not planned", "{status}");
    assert_eq!(status["preflight_failures"], 1, "{status}");

    // The default, `preferred`: planned, not encrypted.
    let ledger = tmp.path().join("preferred");
    ok(cli(&ledger).args(init_json(&node, &backups, &[]).await));
    let status = json_of(&ok(cli(&ledger).args(["--json", "status"])).stdout);
    assert_eq!(status["metadb_tls"]["encrypted"], false, "{status}");
    assert_eq!(status["metadb_tls"]["mode"], "preferred", "{status}");
    let plan = String::from_utf8(ok(cli(&ledger).arg("plan")).stdout).unwrap();
    assert!(
        plan.contains("Metadata DB connection: not encrypted (--meta-tls preferred)"),
        "{plan}"
    );

    // The TLS server, holding the node's three databases and its ha.config.
    let server = TlsServer::start();
    let dbs = node.databases();
    let ha = emu::scalar_text(&format!(
        "select cfg_value from `{}`.oms_normal_config where cfg_name='ha.config'",
        dbs.rm
    ))
    .await
    .unwrap();
    server
        .root_sql(&format!(
            "CREATE DATABASE `{rm}`; CREATE DATABASE `{cm}`; CREATE DATABASE `{hb}`; \
             CREATE TABLE `{rm}`.oms_normal_config (cfg_name VARCHAR(128) PRIMARY KEY, cfg_value TEXT); \
             INSERT INTO `{rm}`.oms_normal_config VALUES ('ha.config', '{ha}')",
            rm = dbs.rm,
            cm = dbs.cm,
            hb = dbs.cm_hb,
            ha = ha.replace('\'', "''"),
        ))
        .unwrap();
    let mut config = node.host.config.clone();
    config.oms_meta_port = server.port;
    config.oms_meta_user = TLS_USER.into();
    config.oms_meta_password = Secret::new(TLS_PASSWORD);
    let config_path = tmp.path().join("tls-config.yaml");
    config.write(&config_path).unwrap();
    let ca = server.ca().display().to_string();
    let ledger = tmp.path().join("tls");
    let args = init_json(
        &node,
        &backups,
        &[
            ("--oms-config", config_path.to_str().unwrap()),
            ("--meta-tls", "required"),
            ("--meta-ca", &ca),
        ],
    )
    .await;
    let out = ok(cli(&ledger).args(&args));
    let checks = json_of(&out.stdout)["checks"].to_string();
    assert!(checks.contains("metadb-tls"), "{checks}");
    let status = json_of(&ok(cli(&ledger).args(["--json", "status"])).stdout);
    assert_eq!(status["metadb_tls"]["encrypted"], true, "{status}");
    assert_eq!(status["metadb_tls"]["verified"], true, "{status}");
    let text = String::from_utf8(ok(cli(&ledger).arg("status")).stdout).unwrap();
    assert!(
        text.contains("Metadata DB connection: encrypted (TLSv1."),
        "{text}"
    );

    // The native dump's connections follow the same options.
    let out = ok(cli(&ledger)
        .env("OMS_META_PASSWORD", TLS_PASSWORD)
        .args(["--json", "backup", "--meta-url"])
        .arg(format!("mysql://{TLS_USER}@127.0.0.1:{}", server.port))
        .args([
            "--meta-tls",
            "required",
            "--meta-ca",
            &ca,
            "--databases",
            &dbs.rm,
            "--out",
        ])
        .arg(tmp.path().join("tls-backup")));
    assert!(json_of(&out.stdout)["ok"] == true, "{}", show(&out));
}

/// Against the shared server (no TLS): `preferred` falls back to plain text and says so;
/// once a plan was made over TLS (`refuse_plain`, what `run` uses then), the same server is
/// refused instead of downgrading the run; the native dump's connection follows.
#[tokio::test(flavor = "multi_thread")]
async fn no_tls_server_falls_back_only_when_allowed() {
    let mut target = support::mysql_target();
    target.tls = TlsSettings::default();
    let db = MysqlMetaDb::connect(&target).await.unwrap();
    let state = db.tls_state().await.unwrap();
    assert!(!state.encrypted, "{state:?}");
    assert_eq!(state.to_string(), "not encrypted (--meta-tls preferred)");
    db.ping().await.unwrap();
    db.close().await;
    let (_, encrypted) = target.connect(None).await.unwrap();
    assert!(!encrypted);

    target.tls.refuse_plain = true;
    let err = MysqlMetaDb::connect(&target).await.unwrap_err();
    assert!(matches!(err, MetaDbError::TlsUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    assert!(target.connect(None).await.is_err());
}

/// A self-signed CA named `cn` in `dir`: `<stem>.key` and `<stem>.pem`; returns the latter.
fn self_signed_ca(dir: &Path, cn: &str, stem: &str) -> PathBuf {
    let (key, pem) = (format!("{stem}.key"), format!("{stem}.pem"));
    let subject = format!("/CN={cn}");
    run(Command::new("openssl").current_dir(dir).args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
        "-keyout", &key, "-out", &pem,
    ]));
    dir.join(pem)
}

/// The stock dumper (`--dumper mysqldump`) protects its connection as our own connections
/// do: with `required` it verifies the server's certificate against `--meta-ca`. Shown with
/// the real `mariadb-dump` behind a wrapper that hands it a CA that did not sign the
/// server's certificate in place of the one we pass (our own connections, which take the
/// facts, keep the right one): the dump is refused, so an interceptor's certificate would
/// be too. Before this, the dumper was given no TLS option at all and followed its own
/// defaults, which never verify the server: the same run succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn the_external_dumper_verifies_the_server_in_required_mode() {
    use oms_upgrade::dump::{self, DumpOptions};
    let server = TlsServer::start();
    server
        .root_sql(
            "CREATE DATABASE ext_tls; CREATE TABLE ext_tls.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO ext_tls.t VALUES (1,'a'),(2,'b')",
        )
        .unwrap();
    let out = tempfile::Builder::new()
        .prefix("oms-ext-tls")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let real = which("mariadb-dump");
    let stranger = self_signed_ca(server.dir.path(), "not the server's CA", "stranger");
    let wrapper = out.path().join("dumper-with-another-ca");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\nargs=()\nfor a in \"$@\"; do case \"$a\" in --ssl-ca=*) args+=(\"--ssl-ca={}\");; *) args+=(\"$a\");; esac; done\nexec {} \"${{args[@]}}\"\n",
            stranger.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let target = server.target(TlsMode::Required, Some(&server.ca()));
    let dump_with = |name: &str, program: &Path| {
        let dir = out.path().join(name);
        let opts = DumpOptions {
            dumper: dump::Dumper::Mysqldump,
            dumper_path: Some(program.to_path_buf()),
            ..DumpOptions::default()
        };
        let target = target.clone();
        async move { dump::dump_database(&target, "ext_tls", &dir, &opts, &dump::Quiet).await }
    };

    let good = dump_with("good", &real)
        .await
        .unwrap_or_else(|e| panic!("required with the server's CA: {e}"));
    assert_eq!(good.tables.len(), 1);

    let err = dump_with("stranger", &wrapper)
        .await
        .expect_err("the dumper accepted a certificate that its CA did not sign");
    assert!(
        matches!(err, dump::DumpError::ExternalFailed { .. }),
        "{err:?}"
    );
}

/// `program`'s path on PATH.
fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}
