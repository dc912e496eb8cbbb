//! What every mode of the emulator shares: where its files are, a logger that writes to
//! stdout (the container log) and to files under the mounted logs folder, the config file and
//! the connection to the metadata database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use oms_upgrade::omsconfig::{CONTAINER_CONFIG_PATH, OmsConfig};

/// The container paths the emulator uses, each overridable by an environment variable so
/// the emulator can also run on the host (the seeder always does).
#[derive(Debug, Clone)]
pub struct Paths {
    /// OMS config file (`OMS_EMU_CONFIG`, default `/home/admin/conf/config.yaml`).
    pub config: PathBuf,
    /// Logs folder (`OMS_EMU_LOGS_DIR`, default `/home/admin/logs`).
    pub logs: PathBuf,
    /// Store folder (`OMS_EMU_STORE_DIR`, default `/home/ds/store`).
    pub store: PathBuf,
    /// Run folder (`OMS_EMU_RUN_DIR`, default `/home/ds/run`).
    pub run: PathBuf,
}

impl Paths {
    /// Reads the overrides from the environment.
    pub fn from_env() -> Paths {
        let p = |k: &str, d: &str| PathBuf::from(std::env::var(k).unwrap_or_else(|_| d.into()));
        Paths {
            config: p("OMS_EMU_CONFIG", CONTAINER_CONFIG_PATH),
            logs: p("OMS_EMU_LOGS_DIR", "/home/admin/logs"),
            store: p("OMS_EMU_STORE_DIR", "/home/ds/store"),
            run: p("OMS_EMU_RUN_DIR", "/home/ds/run"),
        }
    }
}

/// The OMS version this process plays: `OMS_EMU_VERSION`, baked into the image.
pub fn version_from_env() -> Result<String, String> {
    let v = std::env::var("OMS_EMU_VERSION").map_err(|_| {
        "OMS_EMU_VERSION is not set: the emulator image sets it; on the host, export it".to_string()
    })?;
    if crate::schema::index_of(&v).is_none() {
        return Err(format!(
            "OMS_EMU_VERSION={v} is not a version the emulator knows ({})",
            crate::schema::VERSIONS.join(", ")
        ));
    }
    Ok(v)
}

/// Timestamped log lines to stdout and to zero or more files. Cloning shares the files.
#[derive(Clone)]
pub struct Logger {
    files: Arc<Mutex<Vec<std::fs::File>>>,
}

impl Logger {
    /// Opens (appending, creating) every file it can; a file that cannot be opened is
    /// reported on stdout, since a lost mount must be visible rather than fatal.
    pub fn new(paths: &[PathBuf]) -> Logger {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for p in paths {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                Ok(f) => files.push(f),
                Err(e) => problems.push(format!("cannot open log file {}: {e}", p.display())),
            }
        }
        let l = Logger {
            files: Arc::new(Mutex::new(files)),
        };
        for p in problems {
            l.warn(&p);
        }
        l
    }

    fn write(&self, level: &str, msg: &str) {
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f");
        let line = format!("[{ts}] [{level}] {msg}\n");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        if let Ok(mut files) = self.files.lock() {
            for f in files.iter_mut() {
                let _ = f.write_all(line.as_bytes());
                let _ = f.flush();
            }
        }
    }

    /// An informational line.
    pub fn info(&self, msg: &str) {
        self.write("INFO", msg);
    }

    /// A warning line.
    pub fn warn(&self, msg: &str) {
        self.write("WARN", msg);
    }

    /// An error line.
    pub fn error(&self, msg: &str) {
        self.write("ERROR", msg);
    }
}

/// Loads the OMS config, with an error line fit for a service log.
pub fn load_config(path: &Path) -> Result<OmsConfig, String> {
    OmsConfig::load(path).map_err(|e| format!("invalid OMS config: {e}"))
}

/// A small pool on the metadata database (no default schema: every query names its
/// database), checked by one round trip so that unreachable servers and wrong credentials
/// show up at start-up, as in a real service.
pub async fn connect(cfg: &OmsConfig) -> Result<mysql_async::Pool, String> {
    let target = cfg.db_target();
    // Plain text: the emulated OMS is not the tool, and the test server has no TLS.
    let opts = mysql_async::OptsBuilder::from_opts(target.plain_opts(None))
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(mysql_async::PoolConstraints::new(0, 6).expect("0 <= 6")),
        )
        .init(vec!["SET time_zone = '+00:00'".to_string()]);
    let pool = mysql_async::Pool::new(opts);
    let what = target.display_url();
    let check = async {
        let mut c = pool.get_conn().await?;
        c.query_drop("SELECT 1").await
    };
    match tokio::time::timeout(Duration::from_secs(15), check).await {
        Ok(Ok(())) => Ok(pool),
        Ok(Err(e)) => Err(format!("cannot connect to the metadata DB {what}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to the metadata DB {what}: no answer within 15 s"
        )),
    }
}

/// Backquotes an identifier (database or table name).
pub fn q(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}
