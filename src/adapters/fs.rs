//! Small filesystem helpers the preflight and the reconciler need: free space (the
//! "free disk at least twice the databases' size" check), a streaming BLAKE3 of a file
//! (is the dump on disk the one the ledger recorded?), and fsync of a directory (so a
//! rename is durable). The backup engine has its own writer; this stays small.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A filesystem operation failed; says which and on what path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} `{}`: {source}", path.display())]
pub struct FsError {
    /// What was being done (e.g. "read", "fsync directory").
    pub op: &'static str,
    /// The path it was done on.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |source| FsError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes available to this (unprivileged) user on the filesystem holding `path`.
pub fn free_space(path: &Path) -> Result<u64, FsError> {
    fs2::available_space(path).map_err(err("measure free space of", path))
}

/// The nearest folder at or above `p` that exists (where a folder still to be created
/// would take its space from).
pub fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.exists() {
        if !cur.pop() {
            return PathBuf::from("/");
        }
    }
    cur
}

/// Free space at the nearest existing ancestor of `p`, and that folder.
pub fn free_space_for(p: &Path) -> Result<(u64, PathBuf), FsError> {
    let at = existing_ancestor(p);
    free_space(&at).map(|free| (free, at))
}

/// Size and BLAKE3 (hex) of a file, read in 1 MiB blocks (memory stays bounded). Blocking:
/// call it from `spawn_blocking` in async code when the file is large.
pub fn blake3_file(path: &Path) -> Result<(u64, String), FsError> {
    let mut f = std::fs::File::open(path).map_err(err("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Fsyncs a directory, making the creation, rename or removal of its entries durable.
pub fn fsync_dir(path: &Path) -> Result<(), FsError> {
    let d = std::fs::File::open(path).map_err(err("open directory", path))?;
    d.sync_all().map_err(err("fsync directory", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_file_matches_the_in_memory_hash_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (size, hex) = blake3_file(&p).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(hex, blake3::hash(&data).to_hex().to_string());
        fsync_dir(dir.path()).unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
    }

    #[test]
    fn errors_name_the_path() {
        let e = blake3_file(Path::new("/nonexistent/oms-dump.sql")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/oms-dump.sql"), "{e}");
    }
}
