//! [`SimDumps`]: the dump engine over the simulated [`World`]. A dump writes its file to
//! `<dir>/<database>.sql.part` and renames it over the final name, as the real engine does,
//! so a fault between the two leaves the `.part` written and not renamed; a restore drops,
//! recreates and loads the database, so a fault inside it leaves the database dropped and
//! not created, created empty, or half loaded. Loads and drops are irreversible actions in
//! the world's action log.
//!
//! A dump file's text is derived from the database's simulated state (deterministic, so an
//! uninterrupted run and one that dumped again after a crash leave the same bytes); what a
//! restore loads is found by the BLAKE3 of the file as it is on the simulated disk, so a
//! file altered after its dump no longer loads.

use std::io;
use std::path::{Path, PathBuf};

use super::adapters::{Gate, await_point, gate};
use super::world::{
    ActionKind, Adapter, DumpErrorKind, ErrorKind, SharedWorld, SimDatabase, World, lock,
};
use crate::adapters::DumpEngine;
use crate::adapters::fs::FsError;
use crate::dbconn::DbTarget;
use crate::dump::{
    ChecksumMethod, DumpArtifact, DumpError, DumpOptions, Dumper, PartialFile, Progress,
    RestoreOptions, RestoreReport, TableFact, is_partial_name,
};

/// The simulated dump engine: a handle on the shared world.
#[derive(Debug, Clone)]
pub struct SimDumps {
    /// The world it reads and writes.
    pub world: SharedWorld,
}

fn dump_error(kind: ErrorKind, target: &str) -> DumpError {
    let io_error = || DumpError::Io {
        path: PathBuf::from(target),
        source: io::Error::other("simulated: connection reset by peer"),
    };
    match kind {
        ErrorKind::Dump(k) => match k {
            DumpErrorKind::Io => io_error(),
            DumpErrorKind::DiskFull => DumpError::DiskFull {
                path: PathBuf::from(target),
            },
            DumpErrorKind::AccessDenied => DumpError::AccessDenied {
                url: "mysql://sim@127.0.0.1:3306".into(),
                message: "simulated".into(),
            },
            DumpErrorKind::NoSuchDatabase => DumpError::NoSuchDatabase {
                database: target.into(),
            },
        },
        _ => io_error(),
    }
}

/// The dump text of a database in its simulated state.
fn dump_text(database: &str, db: &SimDatabase) -> String {
    format!("-- simulated dump of `{database}`\n{db:?}\n")
}

/// The per-table facts of a database in its simulated state: one pseudo-table whose rows
/// are the size and whose checksum covers the whole state.
fn table_facts(db: &SimDatabase) -> Vec<TableFact> {
    vec![TableFact {
        name: "sim_state".into(),
        rows: db.size,
        checksum: blake3::hash(format!("{db:?}").as_bytes())
            .to_hex()
            .to_string(),
        checksum_method: ChecksumMethod::Blake3Rows,
    }]
}

fn hash_hex(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// The restore's effect, cut after `parts` of its three parts (drop, create, load) when
/// given; the full restore otherwise.
fn load(w: &mut World, database: &str, content: &SimDatabase, parts: Option<u32>) {
    let parts = parts.unwrap_or(3);
    if parts >= 1 && w.databases.remove(database).is_some() {
        w.act(ActionKind::Drop {
            db: database.into(),
        });
    }
    if parts >= 2 {
        let mut empty = SimDatabase::empty();
        empty.charset = content.charset.clone();
        w.databases.insert(database.into(), empty);
        w.act(ActionKind::Create {
            db: database.into(),
        });
    }
    if parts >= 3 {
        w.act(ActionKind::Restore {
            db: database.into(),
        });
        if parts == 3 {
            w.databases.insert(database.into(), content.clone());
        } else {
            // Half loaded: some rows are in, the rest never came.
            let mut half = content.clone();
            half.size /= 2;
            half.ha_config = None;
            w.databases.insert(database.into(), half);
        }
    }
}

impl DumpEngine for SimDumps {
    async fn dump(
        &self,
        _target: &DbTarget,
        database: &str,
        dir: &Path,
        opts: &DumpOptions,
        _progress: &dyn Progress,
    ) -> Result<DumpArtifact, DumpError> {
        await_point(&self.world).await;
        let out = {
            let mut guard = lock(&self.world);
            let w: &mut World = &mut guard;
            let file = dir.join(format!("{database}{}", opts.compression.suffix()));
            let part = PathBuf::from(format!("{}.part", path_text(&file)));
            let (cut, after) = match gate(w, Adapter::Dumps, "dump", database) {
                Gate::Fail(k) | Gate::Cut(0, k) => return Err(dump_error(k, database)),
                Gate::Cut(_, k) => (Some(k), None),
                Gate::Go(after) => (None, after),
            };
            match w.databases.get(database).cloned() {
                None => Err(DumpError::NoSuchDatabase {
                    database: database.into(),
                }),
                Some(db) => {
                    let text = dump_text(database, &db);
                    w.write_file(&path_text(&part), text.clone());
                    if let Some(k) = cut {
                        // Written and synced, never renamed: the `.part` stays.
                        return Err(dump_error(k, database));
                    }
                    w.files.remove(&path_text(&part));
                    w.write_file(&path_text(&file), text.clone());
                    let blake3_hex = hash_hex(&text);
                    w.dump_contents.insert(blake3_hex.clone(), db.clone());
                    let artifact = DumpArtifact {
                        database: database.into(),
                        file,
                        size_bytes: text.len() as u64,
                        blake3_hex,
                        format: Dumper::Native,
                        compression: opts.compression,
                        charset: db.charset.charset.clone(),
                        collation: db.charset.collation.clone(),
                        tables: table_facts(&db),
                        views: vec![],
                        skipped_triggers: vec![],
                        server_version: w.server.1.clone(),
                    };
                    match after {
                        Some(k) => Err(dump_error(k, database)),
                        None => Ok(artifact),
                    }
                }
            }
        };
        await_point(&self.world).await;
        out
    }

    async fn restore(
        &self,
        _target: &DbTarget,
        artifact: &DumpArtifact,
        _opts: &RestoreOptions,
        _progress: &dyn Progress,
    ) -> Result<RestoreReport, DumpError> {
        await_point(&self.world).await;
        let out = {
            let mut guard = lock(&self.world);
            let w: &mut World = &mut guard;
            let database = artifact.database.as_str();
            let (cut, after) = match gate(w, Adapter::Dumps, "restore", database) {
                Gate::Fail(k) | Gate::Cut(0, k) => return Err(dump_error(k, database)),
                Gate::Cut(parts, k) => (Some(parts), Some(k)),
                Gate::Go(after) => (None, after),
            };
            let found = w
                .files
                .get(&path_text(&artifact.file))
                .map(|f| (f.content.len() as u64, hash_hex(&f.content)));
            let content = found
                .as_ref()
                .and_then(|(_, h)| w.dump_contents.get(h).cloned());
            match (found, content) {
                (None, _) => Err(DumpError::Io {
                    path: artifact.file.clone(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                }),
                (Some((size, hex)), Some(content))
                    if size == artifact.size_bytes && hex == artifact.blake3_hex =>
                {
                    load(w, database, &content, cut);
                    match after {
                        Some(k) => Err(dump_error(k, database)),
                        None => Ok(RestoreReport {
                            database: database.into(),
                            statements: 1,
                            sql_bytes: size,
                            tables: table_facts(&content),
                            mode: Default::default(),
                            split_tables: 0,
                            trailed_tables: 0,
                        }),
                    }
                }
                (Some((size, hex)), _) => Err(DumpError::ChecksumMismatch {
                    path: artifact.file.clone(),
                    expected: format!("{} bytes, {}", artifact.size_bytes, artifact.blake3_hex),
                    actual: format!("{size} bytes, {hex}"),
                }),
            }
        };
        await_point(&self.world).await;
        out
    }

    fn partial_files(&self, dir: &Path) -> io::Result<Vec<PartialFile>> {
        let w = lock(&self.world);
        let prefix = format!("{}/", path_text(dir).trim_end_matches('/'));
        Ok(w.files
            .iter()
            .filter_map(|(p, f)| {
                let name = p.strip_prefix(&prefix)?;
                (!name.contains('/') && is_partial_name(name)).then(|| PartialFile {
                    path: PathBuf::from(p),
                    size: f.content.len() as u64,
                })
            })
            .collect())
    }

    fn remove_partial(&self, path: &Path) -> io::Result<()> {
        let mut w = lock(&self.world);
        match w.files.remove(&path_text(path)) {
            Some(_) => Ok(()),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    async fn file_blake3(&self, path: &Path) -> Result<(u64, String), FsError> {
        await_point(&self.world).await;
        let out = {
            let w = lock(&self.world);
            match w.files.get(&path_text(path)) {
                Some(f) => Ok((f.content.len() as u64, hash_hex(&f.content))),
                None => Err(FsError {
                    op: "open",
                    path: path.to_path_buf(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                }),
            }
        };
        await_point(&self.world).await;
        out
    }

    fn free_space(&self, dir: &Path) -> Result<(u64, PathBuf), FsError> {
        Ok((lock(&self.world).free_bytes, dir.to_path_buf()))
    }

    fn path_exists(&self, path: &Path) -> bool {
        let w = lock(&self.world);
        let p = path_text(path);
        let under = format!("{}/", p.trim_end_matches('/'));
        w.host_paths.contains(&p)
            || w.files.contains_key(&p)
            || w.files.keys().any(|k| k.starts_with(&under))
    }
}
