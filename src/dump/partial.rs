//! Files a dump writes only while it runs: `<file>.part` (the dump being written, see
//! [`super::writer`]) and the parallel dump's hidden `.<database>.<index>.spool` sections.
//! A dump that ends in any way but a crash removes its own; these find what a crash left, so
//! the run can remove them (recording which) and `ledger verify --artifacts` can list them.

use std::io;
use std::path::{Path, PathBuf};

/// True when `name` is a file name a running dump writes: `<anything>.part`, or
/// `.<database>.<index>.spool` (any database, decimal index).
pub fn is_partial_name(name: &str) -> bool {
    if name.len() > ".part".len() && name.ends_with(".part") {
        return true;
    }
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".spool"))
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(db, index)| {
            !db.is_empty() && !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
        })
}

/// A partial file found in a dump folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes when it was listed.
    pub size: u64,
}

/// The partial files directly in `dir` (regular files only: a symlink or folder with such a
/// name is not ours and is left alone), sorted by path. A missing folder holds none.
pub fn partial_files(dir: &Path) -> io::Result<Vec<PartialFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !is_partial_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let meta = entry.metadata()?;
        if meta.file_type().is_file() {
            out.push(PartialFile {
                path: entry.path(),
                size: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::writer::SpoolFile;

    #[test]
    fn names_the_writers_use_are_partial() {
        let spool = SpoolFile::path_for(Path::new("/d"), "oms_rm", 12);
        let name = spool.file_name().unwrap().to_string_lossy().into_owned();
        assert!(is_partial_name(&name), "{name}");
        assert!(is_partial_name("oms_rm.sql.zst.part"));
        assert!(is_partial_name(".a.b.0.spool"));
        for complete in [
            "oms_rm.sql",
            "oms_rm.sql.zst",
            "manifest.json",
            ".part",
            ".oms_rm.spool",
            ".oms_rm.x.spool",
            "..1.spool",
        ] {
            assert!(!is_partial_name(complete), "{complete}");
        }
    }

    #[test]
    fn lists_only_regular_partial_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.sql"), b"done").unwrap();
        std::fs::write(dir.path().join("a.sql.part"), b"half").unwrap();
        std::fs::write(dir.path().join(".a.3.spool"), b"s").unwrap();
        std::fs::create_dir(dir.path().join("b.sql.part")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("c.sql.part")).unwrap();
        let found = partial_files(dir.path()).unwrap();
        assert_eq!(
            found,
            vec![
                PartialFile {
                    path: dir.path().join(".a.3.spool"),
                    size: 1
                },
                PartialFile {
                    path: dir.path().join("a.sql.part"),
                    size: 4
                },
            ]
        );
        assert!(
            partial_files(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}
