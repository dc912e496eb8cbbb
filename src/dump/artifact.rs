//! What a dump *is*, as recorded facts: the artifact of one database (file, size, BLAKE3,
//! per-table row counts and checksums) and the `manifest.json` that lists the artifacts of
//! one `backup` run.
//!
//! These types are the contract with the rest of the tool: the upgrade records a
//! [`DumpArtifact`] in the ledger, and a rollback hands the same value back to
//! [`super::restore_database`]. They hold content facts only (no clock readings), so the
//! same database content dumped twice gives equal artifacts apart from the path.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DumpError;
use super::writer;
use crate::digest::FileDigest;
pub use crate::dumpkind::{ChecksumMethod, Compression, Dumper};

/// Row count and content checksum of one base table, taken inside the dump's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFact {
    /// Table name.
    pub name: String,
    /// `COUNT(*)` in the snapshot.
    pub rows: u64,
    /// The checksum as text: decimal for `CHECKSUM TABLE`, hex for BLAKE3.
    pub checksum: String,
    /// How `checksum` was computed.
    pub checksum_method: ChecksumMethod,
}

/// The facts of one database's dump. Serializable; holds no secret and no clock reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpArtifact {
    /// Database name.
    pub database: String,
    /// Where the dump file is (absolute when written by `dump_database`).
    pub file: PathBuf,
    /// Size of the file on disk in bytes.
    pub size_bytes: u64,
    /// BLAKE3 of the file's bytes on disk, lowercase hex.
    pub blake3_hex: String,
    /// Which dumper wrote it (`format` in `manifest.json`).
    pub format: Dumper,
    /// Encoding of the bytes on disk.
    pub compression: Compression,
    /// The database's default character set, used when restore recreates it.
    pub charset: String,
    /// The database's default collation, used when restore recreates it.
    pub collation: String,
    /// Per base table facts, sorted by name.
    pub tables: Vec<TableFact>,
    /// Views in the dump, sorted.
    pub views: Vec<String>,
    /// Triggers that exist in the database but are deliberately not dumped (`table.trigger`).
    pub skipped_triggers: Vec<String>,
    /// The server's version string at dump time.
    pub server_version: String,
}

impl DumpArtifact {
    /// Total rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Compares what was read from the file with the recorded size and BLAKE3 (both).
    pub(crate) fn check_digest(&self, found: &FileDigest) -> Result<(), DumpError> {
        found
            .check(self.size_bytes, &self.blake3_hex)
            .map_err(|m| DumpError::ChecksumMismatch {
                path: self.file.clone(),
                expected: format!("{} bytes, blake3 {}", self.size_bytes, self.blake3_hex),
                actual: format!("{} bytes, blake3 {}", m.found.size, m.found.blake3_hex),
            })
    }
}

/// Re-hashes the artifact's file and compares size and BLAKE3 with the recorded ones.
///
/// Every restore calls this first and touches no database when it fails.
pub fn verify_artifact(artifact: &DumpArtifact) -> Result<(), DumpError> {
    let found =
        FileDigest::of_file(&artifact.file).map_err(|e| DumpError::io(&artifact.file, e))?;
    artifact.check_digest(&found)
}

/// Reads `dir/manifest.json` without following a symlink in its place: its bytes are what
/// a signature is checked against and what [`Manifest::from_bytes`] parses.
pub fn read_manifest_bytes(dir: &Path) -> Result<Vec<u8>, DumpError> {
    read_in_folder(dir, MANIFEST_FILE)
}

/// Reads the file `name` in `dir`, refusing a symlink (`O_NOFOLLOW`).
pub fn read_in_folder(dir: &Path, name: &str) -> Result<Vec<u8>, DumpError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => DumpError::Manifest {
                path: path.clone(),
                reason: "it is a symlink, which is not followed".into(),
            },
            _ => DumpError::io(&path, e),
        })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| DumpError::io(&path, e))?;
    Ok(bytes)
}

/// Where `file` (from a manifest) really is, if it is a regular file inside the folder
/// `root` (canonical); else why not.
fn inside(root: &Path, file: &Path) -> Result<PathBuf, &'static str> {
    use std::path::Component;
    if file.is_absolute() {
        return Err("is an absolute path");
    }
    if file
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("climbs out of the folder with `..`");
    }
    let joined = root.join(file);
    let md = std::fs::symlink_metadata(&joined).map_err(|_| "does not exist")?;
    if md.file_type().is_symlink() {
        return Err("is a symlink (which could point outside the folder)");
    }
    if !md.is_file() {
        return Err("is not a regular file");
    }
    // A folder on the way could still be a symlink: compare where it resolves.
    let real = std::fs::canonicalize(&joined).map_err(|_| "cannot be resolved")?;
    if !real.starts_with(root) {
        return Err("resolves to a place outside the folder");
    }
    Ok(real)
}

/// Longest charset or collation name accepted (the server's own limit is 32 and 64).
const MAX_NAME: usize = 64;

/// Whether `s` can be a charset or collation name: 1 to 64 of `[A-Za-z0-9_]`, so it can be
/// put into `CREATE DATABASE ... CHARACTER SET .. COLLATE ..` as it is.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Refuses an artifact whose charset or collation is not a plain name ([`is_plain_name`]).
/// Restore splices them into SQL, so every path to a restore checks them first.
pub fn check_names(a: &DumpArtifact) -> Result<(), DumpError> {
    for (what, value) in [("charset", &a.charset), ("collation", &a.collation)] {
        if !is_plain_name(value) {
            return Err(DumpError::BadInput {
                what: format!(
                    "the {what} recorded for `{}`, `{value}`, is not a plain name (1 to \
                     {MAX_NAME} letters, digits or _); refusing to put it into SQL",
                    a.database
                ),
            });
        }
    }
    Ok(())
}

/// Refuses, before anything is dropped, a charset or collation the target server does not
/// know, or a collation that does not belong to its charset: `CREATE DATABASE` would fail
/// only after `DROP DATABASE` ran. The names go to the server as parameters.
pub async fn check_names_known(
    target: &crate::dbconn::DbTarget,
    artifacts: &[&DumpArtifact],
) -> Result<(), DumpError> {
    use mysql_async::prelude::Queryable;
    let mut conn = super::connect(target).await?;
    let mut result = Ok(());
    for a in artifacts {
        check_names(a)?;
        let found: Result<Option<String>, _> = conn
            .exec_first(
                "SELECT CHARACTER_SET_NAME FROM information_schema.COLLATIONS \
                 WHERE COLLATION_NAME = ?",
                (a.collation.as_str(),),
            )
            .await;
        let why = match found {
            Err(e) => {
                result = Err(super::query_err(&a.database, "looking up its collation", e));
                break;
            }
            Ok(None) => "the server does not know that collation".to_string(),
            Ok(Some(cs)) if cs.eq_ignore_ascii_case(&a.charset) => continue,
            Ok(Some(cs)) => format!("on this server that collation belongs to charset `{cs}`"),
        };
        result = Err(DumpError::BadInput {
            what: format!(
                "`{}` was dumped with charset `{}` and collation `{}`, but {why}; nothing was \
                 changed",
                a.database, a.charset, a.collation
            ),
        });
        break;
    }
    let _ = conn.disconnect().await;
    result
}

/// Name of the manifest file inside a backup folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the manifest layout; bumped on incompatible changes.
pub const MANIFEST_VERSION: u32 = 1;

/// `manifest.json`: what one `backup` run wrote. Artifact paths are stored relative to the
/// manifest's folder so the folder can be moved; [`Manifest::load`] makes them absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// Version of oms-upgrade that wrote it.
    pub tool_version: String,
    /// The server dumped, as `mysql://user@host:port` (never a password).
    pub source: String,
    /// One artifact per database, in the order they were asked for.
    pub databases: Vec<DumpArtifact>,
}

impl Manifest {
    /// Reads `dir/manifest.json` (see [`Manifest::from_bytes`]).
    pub fn load(dir: &Path) -> Result<Manifest, DumpError> {
        Manifest::from_bytes(dir, &read_manifest_bytes(dir)?)
    }

    /// Parses the bytes of `dir/manifest.json` and checks what the manifest could use to do
    /// harm, since it vouches for nothing but itself unless it is signed: every artifact's
    /// file must be a relative path to a regular file inside `dir` (no absolute path, no
    /// `..`, no symlink out of the folder: resolved and compared with `dir`), and every
    /// charset and collation a plain name (see [`check_names`]). Artifact paths come back
    /// absolute.
    pub fn from_bytes(dir: &Path, bytes: &[u8]) -> Result<Manifest, DumpError> {
        let path = dir.join(MANIFEST_FILE);
        let bad = |reason: String| DumpError::Manifest {
            path: path.clone(),
            reason,
        };
        let mut m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.manifest_version != MANIFEST_VERSION {
            return Err(bad(format!(
                "manifest version {} is not supported (this build reads {MANIFEST_VERSION})",
                m.manifest_version
            )));
        }
        let root = std::fs::canonicalize(dir).map_err(|e| DumpError::io(dir, e))?;
        for a in &mut m.databases {
            check_names(a).map_err(|what| bad(what.to_string()))?;
            a.file = inside(&root, &a.file).map_err(|why| {
                bad(format!(
                    "the file of `{}`, `{}`, {why}; a backup folder's manifest may only name \
                     files inside the folder",
                    a.database,
                    a.file.display()
                ))
            })?;
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically (`.part`, fsync, rename, fsync dir), mode 0600,
    /// with artifact paths made relative to `dir`.
    pub fn store(&self, dir: &Path) -> Result<PathBuf, DumpError> {
        let mut rel = self.clone();
        for a in &mut rel.databases {
            if let Ok(stripped) = a.file.strip_prefix(dir) {
                a.file = stripped.to_path_buf();
            }
        }
        let mut json = serde_json::to_vec_pretty(&rel).map_err(|e| DumpError::Manifest {
            path: dir.join(MANIFEST_FILE),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        let path = dir.join(MANIFEST_FILE);
        writer::write_file_atomic(&path, &json)?;
        Ok(path)
    }

    /// The artifact of `database`, if the manifest has one.
    pub fn artifact(&self, database: &str) -> Option<&DumpArtifact> {
        self.databases.iter().find(|a| a.database == database)
    }
}
