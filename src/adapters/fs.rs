//! Small filesystem helpers the preflight and the reconciler need: free space (the
//! "free disk at least twice the databases' size" check) and fsync of a directory (so a
//! rename is durable). A file's size and BLAKE3 is [`crate::digest::FileDigest::of_file`].

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

/// Fsyncs a directory, making the creation, rename or removal of its entries durable.
pub fn fsync_dir(path: &Path) -> Result<(), FsError> {
    let d = std::fs::File::open(path).map_err(err("open directory", path))?;
    d.sync_all().map_err(err("fsync directory", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_and_free_space_of_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        fsync_dir(dir.path()).unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
    }

    #[test]
    fn errors_name_the_path() {
        let e = fsync_dir(Path::new("/nonexistent/oms-dump.sql")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/oms-dump.sql"), "{e}");
    }
}
