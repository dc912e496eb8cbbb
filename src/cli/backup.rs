//! `oms-upgrade backup` and `oms-upgrade restore`: the backup engine (`crate::dump`) on the
//! command line.
//!
//! The password never comes from argv: it is read from `OMS_META_PASSWORD` or from the file
//! named by `--password-file`. `restore` replaces databases, so it asks for confirmation on a
//! terminal and refuses to run unattended without `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::error::output_error;
use super::output::write_atomic;
use super::{CliError, CmdResult, Ctx, ExitKind, vouch};
use crate::dbconn::DbTarget;
use crate::dump::{self, DumpError};
use crate::ledger::sign::{PublicKey, SigningKey};
use crate::secret::Secret;

pub use crate::dbconn::PASSWORD_ENV;

/// Which program writes the dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumperArg {
    /// Built-in dumper over the MySQL protocol: one snapshot per database, no client binaries.
    Native,
    /// `mariadb-dump` (or `mysqldump`) with --single-transaction --skip-triggers.
    Mysqldump,
}

/// Compression of the dump files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressArg {
    /// zstd; the checksum is over the compressed bytes on disk.
    Zstd,
}

/// Arguments of `backup`.
///
/// Writes one dump per database plus `manifest.json` (sizes, BLAKE3, per-table row counts and
/// checksums) into a private folder. The password comes from OMS_META_PASSWORD or
/// --password-file, never from the command line.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The metadata database server, `mysql://USER@HOST:PORT` (no password in it).
    #[arg(long, value_name = "URL")]
    pub meta_url: String,
    /// TLS to the metadata database.
    #[command(flatten)]
    pub tls: super::metatls::MetaTlsArgs,
    /// Databases to dump, comma-separated (e.g. rm_db,cm_db,cm_hb_db).
    #[arg(long, value_delimiter = ',', required = true, value_name = "DB,...")]
    pub databases: Vec<String>,
    /// Output folder; created with mode 700, must not be readable by others.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Connections dumping at the same time. Native: tables in parallel, all in one snapshot
    /// (taken under a brief LOCK TABLES ... READ; without that privilege, one snapshot per
    /// database, databases in parallel). mysqldump: databases in parallel.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub jobs: usize,
    /// Which dumper writes the files.
    #[arg(long, value_enum, default_value_t = DumperArg::Native)]
    pub dumper: DumperArg,
    /// Path of the external dumper (default: mariadb-dump, then mysqldump, on PATH).
    #[arg(long, value_name = "PATH")]
    pub dumper_path: Option<PathBuf>,
    /// Compress the dump files.
    #[arg(long, value_enum, value_name = "ALGO")]
    pub compress: Option<CompressArg>,
    /// Read the password from this file (first line) instead of OMS_META_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Replace dump files and the manifest already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Sign manifest.json with this Ed25519 key (from `ledger keygen`), writing
    /// manifest.json.sig; default: $OMS_UPGRADE_SIGNING_KEY, if set.
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
}

/// Arguments of `restore`.
///
/// Verifies every dump's BLAKE3 against manifest.json, then drops, recreates and reloads each
/// database and checks every table's row count and checksum. Asks for confirmation unless
/// --yes.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup folder written by `backup` (holds manifest.json).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Only these databases (comma-separated); default: all in the manifest.
    #[arg(long, value_delimiter = ',', value_name = "DB,...")]
    pub databases: Vec<String>,
    /// Server to restore into, `mysql://USER@HOST:PORT`. Without it, the server named in
    /// manifest.json is used only after a yes typed on a terminal that names it.
    #[arg(long, value_name = "URL")]
    pub meta_url: Option<String>,
    /// Check manifest.json.sig with this public key (file from `ledger keygen`, or
    /// `ed25519:<hex>`); required when the backup is signed.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<String>,
    /// TLS to the metadata database.
    #[command(flatten)]
    pub tls: super::metatls::MetaTlsArgs,
    /// Connections loading at the same time: tables of native dumps in parallel, other dumps
    /// one database per connection.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub jobs: usize,
    /// A table section of a native dump of at least this many MiB has its rows loaded by
    /// several of the --jobs connections at once (those with no whole table left).
    #[arg(long, default_value_t = dump::DEFAULT_SPLIT_BYTES >> 20, value_name = "MIB")]
    pub split_mb: u64,
    /// Read the password from this file (first line) instead of OMS_META_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Do not ask before dropping the databases (required when stdin is not a terminal).
    /// Does not confirm a target server taken from manifest.json: pass --meta-url for that.
    #[arg(long)]
    pub yes: bool,
}

/// Runs `backup`.
pub fn run_backup(args: BackupArgs, ctx: &Ctx) -> CmdResult {
    let (host, port, user) = parse_meta_url(&args.meta_url)?;
    let password = read_password(args.password_file.as_deref())?;
    let target = DbTarget {
        host,
        port,
        user,
        password,
        tls: args.tls.settings()?,
    };
    if args.jobs == 0 {
        return Err(CliError::new(ExitKind::Input, "--jobs must be at least 1"));
    }
    if args.dumper_path.is_some() && args.dumper != DumperArg::Mysqldump {
        return Err(CliError::new(
            ExitKind::Input,
            "--dumper-path only applies to --dumper mysqldump",
        ));
    }
    // A bad key is reported before anything is dumped.
    let key = super::ledger::load_signing_key(args.sign.as_deref())?;
    let opts = dump::DumpOptions {
        dumper: match args.dumper {
            DumperArg::Native => dump::Dumper::Native,
            DumperArg::Mysqldump => dump::Dumper::Mysqldump,
        },
        dumper_path: args.dumper_path.clone(),
        compression: match args.compress {
            Some(CompressArg::Zstd) => dump::Compression::Zstd,
            None => dump::Compression::None,
        },
        jobs: args.jobs,
        overwrite: args.overwrite,
        ..dump::DumpOptions::default()
    };
    let progress = if ctx.json {
        std::sync::Arc::new(dump::Quiet)
    } else {
        dump::for_terminal("dump")
    };
    let started = Instant::now();
    let rt = super::runtime()?;
    let manifest = rt
        .block_on(dump::backup(
            &target,
            &args.databases,
            &args.out,
            &opts,
            progress,
        ))
        .map_err(CliError::from)?;
    let elapsed = started.elapsed();
    let out = std::fs::canonicalize(&args.out).unwrap_or(args.out.clone());
    let signed_by = sign_manifest(&out, key.as_ref())?;
    if ctx.json {
        let v = serde_json::json!({
            "ok": true,
            "manifest_path": out.join(dump::MANIFEST_FILE),
            "signed_by_key_id": signed_by,
            "elapsed_ms": elapsed.as_millis() as u64,
            "manifest": manifest,
        });
        println!("{v}");
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "Database", "File", "Size", "Tables", "Rows", "BLAKE3", "Dumper",
        ]);
        for a in &manifest.databases {
            t.add_row(vec![
                a.database.clone(),
                a.file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                crate::units::human_bytes(a.size_bytes),
                a.tables.len().to_string(),
                a.total_rows().to_string(),
                a.blake3_hex[..16].to_string(),
                format!("{:?}", a.format).to_lowercase(),
            ]);
        }
        println!("{t}");
        let total: u64 = manifest.databases.iter().map(|a| a.size_bytes).sum();
        println!(
            "Wrote {} in {:.1}s to {} (manifest: {}).",
            crate::units::human_bytes(total),
            elapsed.as_secs_f64(),
            out.display(),
            dump::MANIFEST_FILE
        );
        match &signed_by {
            Some(id) => println!(
                "Signed manifest.json with key-id {id} ({}).",
                vouch::SIGNATURE_FILE
            ),
            None => println!(
                "manifest.json is not signed: sign backups with --sign KEYFILE (or \
                 {}) so a restore can check it with --pubkey.",
                super::ledger::SIGNING_KEY_ENV
            ),
        }
        for a in &manifest.databases {
            if !a.skipped_triggers.is_empty() {
                // Names come from the server and may hold control characters (a newline, a
                // terminal escape): shown escaped.
                let names: Vec<String> = a
                    .skipped_triggers
                    .iter()
                    .map(|t| t.escape_debug().to_string())
                    .collect();
                println!(
                    "Note: `{}` has triggers that are not dumped (by design): {}",
                    a.database,
                    names.join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs the manifest just written in `dir` (its bytes as stored) into
/// `manifest.json.sig`; without a key, removes a signature left by an earlier backup into
/// the same folder, which would no longer match. Returns the key id.
fn sign_manifest(dir: &Path, key: Option<&SigningKey>) -> Result<Option<String>, CliError> {
    let sig_path = dir.join(vouch::SIGNATURE_FILE);
    let Some(key) = key else {
        return match std::fs::remove_file(&sig_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(output_error(&sig_path.display().to_string(), e))
            }
            _ => Ok(None),
        };
    };
    let bytes = dump::read_manifest_bytes(dir).map_err(CliError::from)?;
    let text = vouch::sign(key, &bytes, chrono::Utc::now());
    write_atomic(&sig_path, |f| {
        f.write_all(text.as_bytes())
            .map_err(|e| output_error(&sig_path.display().to_string(), e))
    })?;
    Ok(Some(key.public().key_id()))
}

/// The server to restore into: `--meta-url`, or the manifest's source once the operator
/// typed yes on a terminal to a question naming it. A folder's own file never picks the
/// server unattended.
fn restore_target(
    args: &RestoreArgs,
    manifest: &dump::Manifest,
) -> Result<(String, u16, String), CliError> {
    if let Some(u) = &args.meta_url {
        return parse_meta_url(u);
    }
    let (host, port, user) = parse_meta_url(&manifest.source).map_err(|e| {
        CliError::new(
            ExitKind::Input,
            format!("the manifest's source is unusable: {}", e.message),
        )
        .hint("pass --meta-url mysql://USER@HOST:PORT")
    })?;
    let named = format!("{user}@{host}:{port}");
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            ExitKind::Refused,
            format!(
                "no --meta-url given, and the only server named is {named}, taken from {} in \
                 the backup folder; refusing to restore into a server the folder chose without \
                 confirmation; nothing was changed",
                dump::MANIFEST_FILE
            ),
        )
        .hint(format!(
            "pass --meta-url mysql://{named} to confirm that server (stdin is not a terminal)"
        )));
    }
    ask_yes(&format!(
        "No --meta-url given. {} names the server {named}.\nRestore into {host}:{port}?",
        dump::MANIFEST_FILE
    ))?;
    Ok((host, port, user))
}

/// Asks `question` on the terminal; anything but `yes` declines the restore.
fn ask_yes(question: &str) -> Result<(), CliError> {
    eprint!("{question}\nType yes to continue: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    if line.trim() != "yes" {
        return Err(CliError::new(
            ExitKind::Refused,
            "restore declined; nothing was changed",
        ));
    }
    Ok(())
}

/// Runs `restore`.
pub fn run_restore(args: RestoreArgs, ctx: &Ctx) -> CmdResult {
    // What vouches for the manifest is settled on its exact bytes before anything in it is
    // used: its paths, charsets and server are only read from bytes that passed.
    let pubkey = args
        .pubkey
        .as_deref()
        .map(PublicKey::from_arg)
        .transpose()
        .map_err(|e| {
            CliError::new(ExitKind::Input, e.to_string())
                .hint("pass the KEYFILE.pub written by `oms-upgrade ledger keygen`")
        })?;
    let bytes = dump::read_manifest_bytes(&args.from).map_err(CliError::from)?;
    let voucher = vouch::check(&args.from, &bytes, pubkey.as_ref())?;
    let manifest = dump::Manifest::from_bytes(&args.from, &bytes).map_err(CliError::from)?;
    if voucher == vouch::Voucher::ManifestOnly {
        eprintln!(
            "warning: only manifest.json itself vouches for the dumps' BLAKE3: whoever could \
             change the dump files could have changed it too. Sign backups (backup --sign \
             KEYFILE) and restore with --pubkey to close that gap."
        );
    }
    let (host, port, user) = restore_target(&args, &manifest)?;
    if args.jobs == 0 {
        return Err(CliError::new(ExitKind::Input, "--jobs must be at least 1"));
    }
    let password = read_password(args.password_file.as_deref())?;
    let target = DbTarget {
        host,
        port,
        user,
        password,
        tls: args.tls.settings()?,
    };
    let chosen: Vec<&dump::DumpArtifact> = if args.databases.is_empty() {
        manifest.databases.iter().collect()
    } else {
        let mut v = Vec::new();
        for d in &args.databases {
            v.push(manifest.artifact(d).ok_or_else(|| {
                CliError::from(DumpError::NotInManifest {
                    database: d.clone(),
                    available: manifest
                        .databases
                        .iter()
                        .map(|a| a.database.clone())
                        .collect(),
                })
            })?);
        }
        v
    };
    // Check the files before asking anything: an altered dump is refused outright.
    for a in &chosen {
        dump::verify_artifact(a).map_err(CliError::from)?;
    }
    let rt = super::runtime()?;
    // Names the server does not know would fail only after the DROP.
    rt.block_on(dump::check_names_known(&target, &chosen))
        .map_err(CliError::from)?;
    if !args.yes {
        let names: Vec<String> = chosen.iter().map(|a| format!("`{}`", a.database)).collect();
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(
                ExitKind::Refused,
                format!(
                    "restore would drop and recreate {} on {}; refusing without confirmation",
                    names.join(", "),
                    target.display_url()
                ),
            )
            .hint("stdin is not a terminal: pass --yes to confirm"));
        }
        ask_yes(&format!(
            "This drops and recreates {} on {} from {}.",
            names.join(", "),
            target.display_url(),
            args.from.display()
        ))?;
    }
    let dbs: Vec<String> = chosen.iter().map(|a| a.database.clone()).collect();
    let opts = dump::RestoreOptions {
        jobs: args.jobs,
        split_bytes: args.split_mb.saturating_mul(1 << 20),
    };
    let progress = if ctx.json {
        std::sync::Arc::new(dump::Quiet)
    } else {
        dump::for_terminal("restore")
    };
    let started = Instant::now();
    let reports = rt
        .block_on(dump::restore(&target, &manifest, &dbs, &opts, progress))
        .map_err(CliError::from)?;
    let elapsed = started.elapsed();
    if ctx.json {
        let v = serde_json::json!({
            "ok": true,
            "target": target.display_url(),
            "vouched_by": voucher.to_json(),
            "elapsed_ms": elapsed.as_millis() as u64,
            "databases": reports,
        });
        println!("{v}");
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "Database",
            "Statements",
            "SQL bytes",
            "Tables",
            "Rows",
            "Table checks",
        ]);
        for r in &reports {
            t.add_row(vec![
                r.database.clone(),
                r.statements.to_string(),
                crate::units::human_bytes(r.sql_bytes),
                r.tables.len().to_string(),
                r.tables.iter().map(|f| f.rows).sum::<u64>().to_string(),
                "all match".to_string(),
            ]);
        }
        println!("{t}");
        println!(
            "Restored {} database(s) into {} in {:.1}s; every table's row count and checksum match the dump.",
            reports.len(),
            target.display_url(),
            elapsed.as_secs_f64()
        );
        println!("Trust: {}.", voucher.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `mysql://USER@HOST[:PORT]`; a password in the URL is refused (it would be in argv).
pub fn parse_meta_url(url: &str) -> Result<(String, u16, String), CliError> {
    let bad = |why: &str| {
        CliError::new(ExitKind::Input, format!("bad --meta-url: {why}"))
            .hint("use the form mysql://USER@HOST:PORT")
    };
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| bad("it must start with mysql://"))?;
    let rest = rest.trim_end_matches('/');
    let (user, hostport) = rest
        .rsplit_once('@')
        .ok_or_else(|| bad("it has no USER@ part"))?;
    if user.contains(':') {
        return Err(CliError::new(
            ExitKind::Input,
            "--meta-url must not contain a password (it would be visible to every user in the \
             process list)",
        )
        .hint(format!(
            "remove it from the URL and set {PASSWORD_ENV} or use --password-file"
        )));
    }
    if user.is_empty() {
        return Err(bad("the user is empty"));
    }
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        None => 3306,
    };
    Ok((host, port, user.to_string()))
}

/// The password from `--password-file` (first line) or `OMS_META_PASSWORD`.
pub fn read_password(file: Option<&Path>) -> Result<Secret, CliError> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| {
            CliError::new(
                ExitKind::Input,
                format!("cannot read --password-file {}: {e}", f.display()),
            )
        })?;
        let first = text.lines().next().unwrap_or("");
        return Ok(Secret::new(first));
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(p) => Ok(Secret::new(p)),
        Err(_) => Err(
            CliError::new(ExitKind::Input, "no password for the metadata database").hint(format!(
                "set {PASSWORD_ENV} or pass --password-file FILE (never on the command line)"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_url_forms() {
        assert_eq!(
            parse_meta_url("mysql://oms@10.0.0.1:2881").unwrap(),
            ("10.0.0.1".into(), 2881, "oms".into())
        );
        assert_eq!(
            parse_meta_url("mysql://root@db").unwrap(),
            ("db".into(), 3306, "root".into())
        );
        assert_eq!(
            parse_meta_url("mysql://u@[::1]:3307/").unwrap(),
            ("::1".into(), 3307, "u".into())
        );
        let e = parse_meta_url("mysql://u:pw@h:1").unwrap_err();
        assert_eq!(e.kind, ExitKind::Input);
        assert!(e.message.contains("password") && !e.message.contains("pw@"));
        assert!(parse_meta_url("http://u@h").is_err());
        assert!(parse_meta_url("mysql://h:1").is_err());
        assert!(parse_meta_url("mysql://u@h:x").is_err());
    }
}
