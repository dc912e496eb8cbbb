//! External mode: the same dump step done by `mariadb-dump` or `mysqldump`, for operators
//! who want the stock tool's output.
//!
//! The password goes to the child through a `--defaults-extra-file` in a private temporary
//! folder (0700, file 0600, removed when the child is done), never through argv, so `ps`
//! cannot see it. The child's stdout streams through the same hashing writer as the native
//! dump. The dump counts as good only when the exit status is 0, stderr is silent (any
//! line, and `Warning:` lines in particular, fail it: a warning often means an option was
//! ignored), the `-- Dump completed` trailer is there and every table and view has its
//! CREATE. The per-table facts are taken over our own connection, in a snapshot opened just
//! before the child starts: with OMS stopped (as during an upgrade) nothing writes in
//! between; on a live database a write in that gap makes restore report a difference rather
//! than pass silently.
//!
//! SIGINT and SIGTERM are caught while an external dump runs ([`Interrupts`]): the child is
//! killed and waited for, the password file and the `.part` file are removed, and the dump
//! returns [`DumpError::Interrupted`], which the CLI turns into exit code 130 and an upgrade
//! run records as the dump step's failure. The process's own dispositions come back when
//! the last external dump ends.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use mysql_async::prelude::Queryable;
use tokio::io::AsyncReadExt;

use super::artifact::{DumpArtifact, Dumper};
use super::facts;
use super::progress::Progress;
use super::writer::{self, Msg, PartWriter, send};
use super::{DumpError, DumpOptions, connect, query_err};
use crate::dbconn::DbTarget;
use crate::secret::Secret;

/// Program names tried on `PATH` when no `--dumper-path` is given.
pub const DUMPER_NAMES: [&str; 2] = ["mariadb-dump", "mysqldump"];

/// Most stderr kept for an error message.
const STDERR_CAP: usize = 64 << 10;

/// Finds the dumper: `explicit` if given, else the first of [`DUMPER_NAMES`] on `PATH`.
pub fn resolve_program(explicit: Option<&Path>) -> Result<PathBuf, DumpError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in DUMPER_NAMES {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(DumpError::DumperNotFound {
        program: DUMPER_NAMES.join(" or "),
    })
}

/// The arguments given to the dumper. The first one names the defaults file holding the
/// password; the password itself is never among them. `ignore_tables` (exact names in
/// `database`) become `--ignore-table=<database>.<table>`: the dumper keeps that argument
/// whole as the key it looks each `<database>.<table>` up by (MariaDB's
/// `client/mysqldump.c`, `OPT_IGNORE_TABLE`), so a dot inside either name changes nothing.
/// The database name comes after `--`, so a name that starts with `-` (`-A` is
/// `--all-databases`) is never read as an option.
pub fn dumper_args(
    defaults_file: &Path,
    target: &DbTarget,
    flavour: DumperFlavour,
    database: &str,
    ignore_tables: &[String],
) -> Vec<OsString> {
    let mut first = OsString::from("--defaults-extra-file=");
    first.push(defaults_file);
    let mut args = vec![first];
    args.extend(tls_args(&target.tls, flavour));
    args.extend([
        format!("--host={}", target.host).into(),
        format!("--port={}", target.port).into(),
        format!("--user={}", target.user).into(),
        "--protocol=TCP".into(),
        "--single-transaction".into(),
        "--skip-triggers".into(),
        "--skip-dump-date".into(),
        "--hex-blob".into(),
        "--no-tablespaces".into(),
        "--default-character-set=utf8mb4".into(),
    ]);
    args.extend(
        ignore_tables
            .iter()
            .map(|t| format!("--ignore-table={database}.{t}").into()),
    );
    args.extend(["--".into(), database.into()]);
    args
}

/// Which client family the dumper belongs to: their TLS options differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumperFlavour {
    /// MariaDB's `mariadb-dump` (also installed as `mysqldump` on MariaDB systems):
    /// `--ssl`, `--skip-ssl`, `--ssl-ca`, `--ssl-verify-server-cert`.
    MariaDb,
    /// MySQL's `mysqldump`: `--ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA`, `--ssl-ca`.
    MySql,
}

impl DumperFlavour {
    /// The family, from the program's `--version` line (MariaDB's says "MariaDB").
    pub fn from_version_line(line: &str) -> DumperFlavour {
        if line.contains("MariaDB") {
            DumperFlavour::MariaDb
        } else {
            DumperFlavour::MySql
        }
    }

    /// Asks `program --version`.
    async fn detect(program: &Path) -> Result<DumperFlavour, DumpError> {
        let out = tokio::process::Command::new(program)
            .arg("--version")
            .env_clear()
            .envs(child_env())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DumpError::DumperNotFound {
                    program: program.display().to_string(),
                },
                _ => DumpError::io(program, e),
            })?;
        Ok(DumperFlavour::from_version_line(&String::from_utf8_lossy(
            &out.stdout,
        )))
    }
}

/// The dumper's TLS options for `tls`, so the stock tool's connection is protected exactly
/// as our own connections are (`crate::dbconn::TlsSettings`): `off` never encrypts;
/// `preferred` encrypts when the server offers it (verifying against `--meta-ca` when one is
/// given); `required` (or a plan made over TLS, `refuse_plain`) never sends a byte in plain
/// text and, as for our own connections in `required`, verifies the certificate. Without
/// these, the dump of the databases holding migration credentials would follow the client's
/// own defaults, which differ between versions and never verify the server.
fn tls_args(tls: &crate::dbconn::TlsSettings, flavour: DumperFlavour) -> Vec<OsString> {
    use crate::dbconn::TlsMode;
    let ca = tls.ca.as_ref().map(|ca| {
        let mut a = OsString::from("--ssl-ca=");
        a.push(ca);
        a
    });
    let verify = tls.verifies();
    let must_encrypt = tls.mode == TlsMode::Required || tls.refuse_plain;
    let mut args: Vec<OsString> = Vec::new();
    match (flavour, tls.mode) {
        (DumperFlavour::MariaDb, TlsMode::Off) => args.push("--skip-ssl".into()),
        (DumperFlavour::MySql, TlsMode::Off) => args.push("--ssl-mode=DISABLED".into()),
        (DumperFlavour::MariaDb, _) => {
            args.push("--ssl".into());
            // MariaDB's client has no "required without verification": it refuses plain
            // text only when it verifies. A plan made over unverified TLS therefore needs
            // --meta-ca for the stock dumper (the dump fails otherwise, never downgrades).
            if verify || must_encrypt {
                args.push("--ssl-verify-server-cert".into());
            }
        }
        (DumperFlavour::MySql, _) => args.push(
            match (verify, must_encrypt) {
                (true, _) => "--ssl-mode=VERIFY_CA",
                (false, true) => "--ssl-mode=REQUIRED",
                (false, false) => "--ssl-mode=PREFERRED",
            }
            .into(),
        ),
    }
    if tls.mode != TlsMode::Off {
        args.extend(ca);
    }
    args
}

/// A `[client]` option file with the password, in its own 0700 folder; removed on drop.
pub(crate) struct DefaultsFile {
    dir: PathBuf,
    file: PathBuf,
}

impl DefaultsFile {
    pub(crate) fn create(password: &Secret) -> Result<DefaultsFile, DumpError> {
        let dir = std::env::temp_dir().join(format!("oms-upgrade-dump-{}", uuid::Uuid::new_v4()));
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(|e| DumpError::io(&dir, e))?;
        let guard = DefaultsFile {
            file: dir.join("client.cnf"),
            dir,
        };
        let mut escaped = String::new();
        for c in password.expose().chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '"' => escaped.push_str("\\\""),
                '\n' => escaped.push_str("\\n"),
                '\r' => escaped.push_str("\\r"),
                '\t' => escaped.push_str("\\t"),
                c => escaped.push(c),
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&guard.file)
            .map_err(|e| DumpError::io(&guard.file, e))?;
        writeln!(f, "[client]\npassword=\"{escaped}\"")
            .and_then(|_| f.sync_all())
            .map_err(|e| DumpError::io(&guard.file, e))?;
        Ok(guard)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for DefaultsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Catches SIGINT and SIGTERM while at least one guard lives, instead of letting them end
/// the process with a password file, a `.part` file and a child left behind. The previous
/// dispositions are saved by the first guard and put back by the last one.
pub(crate) struct Interrupts(());

/// The signal caught (0: none) since the first live guard was installed.
static CAUGHT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
/// Live guards and the dispositions they replaced.
static INSTALLED: std::sync::Mutex<(usize, Vec<(libc::c_int, libc::sigaction)>)> =
    std::sync::Mutex::new((0, Vec::new()));
const CAUGHT_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: nothing else is safe in a signal handler.
    CAUGHT.store(signal, std::sync::atomic::Ordering::SeqCst);
}

impl Interrupts {
    pub(crate) fn install() -> Interrupts {
        let mut state = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == 0 {
            CAUGHT.store(0, std::sync::atomic::Ordering::SeqCst);
            for sig in CAUGHT_SIGNALS {
                // SAFETY: sigaction with a handler that only stores to an atomic; the old
                // action is kept to be put back.
                unsafe {
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                    libc::sigemptyset(&mut new.sa_mask);
                    new.sa_flags = libc::SA_RESTART;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &new, &mut old) == 0 {
                        state.1.push((sig, old));
                    }
                }
            }
        }
        state.0 += 1;
        Interrupts(())
    }

    /// The signal caught, if any.
    pub(crate) fn caught(&self) -> Option<&'static str> {
        match CAUGHT.load(std::sync::atomic::Ordering::SeqCst) {
            libc::SIGINT => Some("SIGINT"),
            libc::SIGTERM => Some("SIGTERM"),
            _ => None,
        }
    }

    /// Resolves once a signal was caught (polled: a handler can do no more than set a flag).
    pub(crate) async fn wait(&self) -> &'static str {
        loop {
            if let Some(s) = self.caught() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        let mut state = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            for (sig, old) in state.1.drain(..) {
                // SAFETY: puts back the action saved by `install`.
                unsafe {
                    libc::sigaction(sig, &old, std::ptr::null_mut());
                }
            }
        }
    }
}

/// Dumps `database` with the external dumper into `path`. See the module docs.
pub(crate) async fn dump(
    target: &DbTarget,
    database: &str,
    path: &Path,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpArtifact, DumpError> {
    let program = resolve_program(opts.dumper_path.as_deref())?;
    let interrupts = Interrupts::install();
    let interrupted = |signal: &str| DumpError::Interrupted {
        signal: signal.to_string(),
        database: database.to_string(),
    };
    let writer = PartWriter::create(path, opts.compression, opts.overwrite)?;

    // Facts first (and a clear error for a missing database before any child runs).
    let mut conn = connect(target).await?;
    facts::session_setup(&mut conn).await?;
    let server_version = super::native::server_version(&mut conn).await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| query_err(database, "starting the snapshot", e))?;
    let schema = facts::list_dumped(&mut conn, database, opts).await?;
    let mut tables = Vec::new();
    for t in schema.base_tables() {
        tables.push(facts::fact_for(&mut conn, database, t, opts.checksum).await?);
    }
    conn.query_drop("COMMIT").await.ok();
    conn.disconnect().await.ok();
    if let Some(signal) = interrupts.caught() {
        return Err(interrupted(signal)); // the writer's drop removes the `.part`
    }

    let flavour = DumperFlavour::detect(&program).await?;
    let mut defaults = Some(DefaultsFile::create(&target.password)?);
    let program_name = program.display().to_string();
    // issue 16: the tables the options leave out (exact names); the facts above were
    // listed without them already.
    let args = dumper_args(
        defaults.as_ref().expect("just created").path(),
        target,
        flavour,
        database,
        &opts.exclude_tables,
    );
    let mut child = tokio::process::Command::new(&program)
        .args(args)
        // The dumper gets a minimal environment: whatever our own process inherited
        // (OMS_META_PASSWORD above all) must not reach a child's /proc/PID/environ.
        .env_clear()
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DumpError::DumperNotFound {
                program: program_name.clone(),
            },
            _ => DumpError::io(&program, e),
        })?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) if buf.len() < STDERR_CAP => buf.extend_from_slice(&chunk[..n]),
                Ok(_) => {}
            }
        }
        buf
    });

    progress.begin(
        database,
        schema.tables.iter().map(|t| t.estimated_bytes).sum(),
    );
    let (tx, writer_task) = writer::spawn(writer);
    let streamed: Result<(), DumpError> = async {
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let n = tokio::select! {
                r = stdout.read(&mut chunk) => r.map_err(|e| DumpError::io(&program, e))?,
                signal = interrupts.wait() => return Err(interrupted(signal)),
            };
            if n == 0 {
                return Ok(());
            }
            // Output means the child has read its options: the password file can go now,
            // which keeps the window in which a crash could leave it behind short.
            defaults.take();
            chunk.truncate(n);
            progress.advance(database, n as u64, 0);
            send(&tx, chunk).await?;
        }
    }
    .await;
    if streamed.is_err() {
        // Nobody reads its stdout any more: stop the child rather than wait on a full pipe.
        drop(stdout);
        let _ = child.start_kill();
    }
    let status = child.wait().await.map_err(|e| DumpError::io(&program, e));
    drop(defaults);
    let stderr_bytes = stderr_task.await.unwrap_or_default();
    let stderr_text = String::from_utf8_lossy(&stderr_bytes).into_owned();

    let verdict = (|| {
        // A signal explains whatever the child did next (a Ctrl-C reaches it too).
        if let Some(signal) = interrupts.caught() {
            return Err(interrupted(signal));
        }
        streamed?;
        let status = status?;
        if let Some(line) = stderr_text
            .lines()
            .find(|l| l.to_ascii_lowercase().contains("warning"))
        {
            return Err(DumpError::ExternalWarning {
                program: program_name.clone(),
                line: line.trim().to_string(),
            });
        }
        if !status.success() || !stderr_text.trim().is_empty() {
            return Err(DumpError::ExternalFailed {
                program: program_name.clone(),
                status: status.to_string(),
                stderr: stderr_text.trim().to_string(),
            });
        }
        Ok(())
    })();
    let written = match verdict {
        Ok(()) => {
            let expected: Vec<String> = schema.tables.iter().map(|t| t.name.clone()).collect();
            let committed = tx.send(Msg::Commit(expected)).await;
            drop(tx);
            let w = writer::join(writer_task).await;
            if committed.is_err() && w.is_ok() {
                return Err(DumpError::WriterGone);
            }
            w
        }
        Err(e) => {
            drop(tx);
            let w = writer::join(writer_task).await;
            // A disk error cuts the stream; it explains the dumper's broken pipe.
            match (e, w) {
                (DumpError::WriterGone, Err(we)) => Err(we),
                (DumpError::ExternalFailed { .. }, Err(we @ DumpError::DiskFull { .. })) => Err(we),
                (e, _) => Err(e),
            }
        }
    };
    progress.finish(database);
    let written = written?;
    Ok(DumpArtifact {
        database: database.to_string(),
        file: written.path,
        size_bytes: written.size_bytes,
        blake3_hex: written.blake3_hex,
        format: Dumper::Mysqldump,
        compression: opts.compression,
        charset: schema.charset.clone(),
        collation: schema.collation.clone(),
        tables,
        views: schema.views().map(|v| v.name.clone()).collect(),
        skipped_triggers: schema.triggers.clone(),
        server_version,
    })
}

/// The few variables a dumper needs (to find its libraries, locale and time zone); nothing
/// else from our environment is passed on.
fn child_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS options per client family and mode: the same protection as our own
    /// connections, never a plain-text fallback when TLS is required or the plan was made
    /// over TLS, and `--ssl-ca` only with TLS on.
    #[test]
    fn tls_options_follow_the_settings() {
        use crate::dbconn::{TlsMode, TlsSettings};
        let s = |mode, ca: Option<&str>, refuse_plain| TlsSettings {
            mode,
            ca: ca.map(PathBuf::from),
            refuse_plain,
        };
        let args = |t: &TlsSettings, f| -> Vec<String> {
            tls_args(t, f)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        use DumperFlavour::{MariaDb, MySql};
        let cases: &[(TlsSettings, DumperFlavour, &[&str])] = &[
            (
                s(TlsMode::Off, Some("/ca"), false),
                MariaDb,
                &["--skip-ssl"],
            ),
            (
                s(TlsMode::Off, None, false),
                MySql,
                &["--ssl-mode=DISABLED"],
            ),
            (s(TlsMode::Preferred, None, false), MariaDb, &["--ssl"]),
            (
                s(TlsMode::Preferred, None, false),
                MySql,
                &["--ssl-mode=PREFERRED"],
            ),
            (
                s(TlsMode::Preferred, None, true),
                MariaDb,
                &["--ssl", "--ssl-verify-server-cert"],
            ),
            (
                s(TlsMode::Preferred, None, true),
                MySql,
                &["--ssl-mode=REQUIRED"],
            ),
            (
                s(TlsMode::Preferred, Some("/ca"), false),
                MySql,
                &["--ssl-mode=VERIFY_CA", "--ssl-ca=/ca"],
            ),
            (
                s(TlsMode::Required, Some("/ca"), false),
                MariaDb,
                &["--ssl", "--ssl-verify-server-cert", "--ssl-ca=/ca"],
            ),
            (
                s(TlsMode::Required, None, false),
                MySql,
                &["--ssl-mode=VERIFY_CA"],
            ),
        ];
        for (t, f, want) in cases {
            assert_eq!(args(t, *f), *want, "{t:?} {f:?}");
        }
        assert_eq!(
            DumperFlavour::from_version_line(
                "mariadb-dump from 11.8.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)"
            ),
            MariaDb
        );
        assert_eq!(
            DumperFlavour::from_version_line("mysqldump  Ver 8.4.3 for Linux on x86_64"),
            MySql
        );
    }

    #[test]
    fn argv_has_no_password_and_defaults_file_is_private() {
        let target = DbTarget {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "u".into(),
            password: Secret::new("pa\"ss\\word"),
            tls: crate::dbconn::TlsSettings::default(),
        };
        let d = DefaultsFile::create(&target.password).unwrap();
        let args = dumper_args(d.path(), &target, DumperFlavour::MariaDb, "db", &[]);
        assert_eq!(args[args.len() - 2..], ["--", "db"]);
        // Left-out tables are options, before the `--` that ends them.
        let ignoring = dumper_args(
            d.path(),
            &target,
            DumperFlavour::MariaDb,
            "d.b",
            &["t_old".into()],
        );
        assert_eq!(
            ignoring[ignoring.len() - 3..],
            ["--ignore-table=d.b.t_old", "--", "d.b"]
        );
        assert!(
            args[0]
                .to_string_lossy()
                .starts_with("--defaults-extra-file=")
        );
        for a in &args {
            assert!(!a.to_string_lossy().contains("word"), "{a:?}");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(d.path()).unwrap();
        assert_eq!(text, "[client]\npassword=\"pa\\\"ss\\\\word\"\n");
        let path = d.path().to_path_buf();
        drop(d);
        assert!(!path.exists());
    }
}
