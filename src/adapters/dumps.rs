//! The dump engine as the executor sees it: writing a database's dump file, restoring one,
//! and the few file operations on the run's dump folder that go with them (partial files
//! left by a killed dump, the BLAKE3 of a recorded dump, free space). The executor is
//! generic over [`DumpEngine`] so that a simulated world can stand in for the disk and the
//! database; [`HostDumps`] is the real one and only delegates to [`crate::dump`] and
//! [`crate::adapters::fs`].
//!
//! Every method reports what happened and never appends to the ledger: the executor
//! records the intent before calling and the outcome after, so each method's doc says
//! which effects can be left behind when it fails or the process dies inside it.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use crate::adapters::fs::FsError;
use crate::dbconn::DbTarget;
use crate::digest::FileDigest;
use crate::dump::{
    self, DumpArtifact, DumpError, DumpOptions, PartialFile, Progress, RestoreOptions,
    RestoreReport,
};

/// What the executor needs from the dump engine. Methods mirror [`crate::dump`]'s
/// functions one to one, with their typed errors.
pub trait DumpEngine: Send + Sync {
    /// Dumps `database` into `dir/<database>.sql[.zst]` (creating `dir` with mode 0700 if
    /// missing) and returns the file's facts (size, BLAKE3, per-table facts).
    ///
    /// Effects: the dump is written to a `.part` file beside the final name, synced, then
    /// renamed over the final name (an existing file of that name is replaced only then)
    /// and the folder synced. On an error the `.part` is removed and nothing is left under
    /// the final name by this call. A process killed inside it can leave the `.part` (and
    /// spool files) written but not renamed: [`DumpEngine::partial_files`] finds them. The
    /// database is only read.
    fn dump(
        &self,
        target: &DbTarget,
        database: &str,
        dir: &Path,
        opts: &DumpOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<DumpArtifact, DumpError>> + Send;

    /// Verifies `artifact`'s file against its recorded BLAKE3 and names, then drops,
    /// recreates and loads its database, then compares the per-table facts.
    ///
    /// Effects: when the file does not match (an [`dump::ErrorClass::Integrity`] error)
    /// nothing is touched. Otherwise the database is replaced: an error or a crash after
    /// the DROP can leave it dropped and not created, created empty, or half loaded; a
    /// second call from any of those states ends in the same content. A report whose
    /// tables differ from the record is returned as `Ok` (the caller compares).
    fn restore(
        &self,
        target: &DbTarget,
        artifact: &DumpArtifact,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<RestoreReport, DumpError>> + Send;

    /// The partial files (`.part` and spool files an interrupted dump left) directly in
    /// `dir`, regular files only, sorted by path; a missing folder holds none.
    ///
    /// Effects: none (reads the folder listing).
    fn partial_files(&self, dir: &Path) -> io::Result<Vec<PartialFile>>;

    /// Removes one partial file that [`DumpEngine::partial_files`] listed. A file already
    /// gone is an `Err` of kind [`io::ErrorKind::NotFound`] (the caller treats it as done).
    ///
    /// Effects: that one file is unlinked, or nothing is.
    fn remove_partial(&self, path: &Path) -> io::Result<()>;

    /// Size and BLAKE3 (lowercase hex) of the file at `path`, read to its end (how a
    /// recorded dump is checked before a rollback restores it).
    ///
    /// Effects: none.
    fn file_blake3(
        &self,
        path: &Path,
    ) -> impl Future<Output = Result<(u64, String), FsError>> + Send;

    /// Free bytes on the filesystem where `dir` is, or would be created (its nearest
    /// existing ancestor, which is returned with the figure).
    ///
    /// Effects: none.
    fn free_space(&self, dir: &Path) -> Result<(u64, PathBuf), FsError>;

    /// Whether anything exists at `path` on the host (a bind source before the stop, a
    /// dump file a reconciliation reports). A path that cannot be examined counts as
    /// absent, as [`Path::exists`] has it.
    ///
    /// Effects: none.
    fn path_exists(&self, path: &Path) -> bool;
}

/// The real dump engine: [`crate::dump`] against the metadata database, files on this
/// host's disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDumps;

impl DumpEngine for HostDumps {
    async fn dump(
        &self,
        target: &DbTarget,
        database: &str,
        dir: &Path,
        opts: &DumpOptions,
        progress: &dyn Progress,
    ) -> Result<DumpArtifact, DumpError> {
        dump::dump_database(target, database, dir, opts, progress).await
    }

    async fn restore(
        &self,
        target: &DbTarget,
        artifact: &DumpArtifact,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, DumpError> {
        dump::restore_database(target, artifact, opts, progress).await
    }

    fn partial_files(&self, dir: &Path) -> io::Result<Vec<PartialFile>> {
        dump::partial_files(dir)
    }

    fn remove_partial(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    async fn file_blake3(&self, path: &Path) -> Result<(u64, String), FsError> {
        let path = path.to_path_buf();
        let at = path.clone();
        // Hashing a multi-gigabyte dump must not hold up the runtime's workers.
        tokio::task::spawn_blocking(move || {
            FileDigest::of_file(&path)
                .map(|d| (d.size, d.blake3_hex))
                .map_err(|source| FsError {
                    op: "hash",
                    path,
                    source,
                })
        })
        .await
        .unwrap_or_else(|e| {
            Err(FsError {
                op: "hash",
                path: at,
                source: io::Error::other(e),
            })
        })
    }

    fn free_space(&self, dir: &Path) -> Result<(u64, PathBuf), FsError> {
        crate::adapters::fs::free_space_for(dir)
    }

    fn path_exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract the executor's partial-file cleanup and the rollback's dump check rely
    /// on, on the real engine: a missing folder holds no partial file, a file already gone
    /// is `NotFound` (treated as removed), and a missing or changed dump hashes differently.
    #[tokio::test]
    async fn host_dumps_keep_the_contract_the_executor_relies_on() {
        let dir = tempfile::tempdir().unwrap();
        let e = HostDumps;
        assert!(
            e.partial_files(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );

        let part = dir.path().join("rm.sql.part");
        std::fs::write(&part, b"half a dump").unwrap();
        let found = e.partial_files(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].path.as_path(), found[0].size),
            (part.as_path(), 11)
        );
        e.remove_partial(&part).unwrap();
        assert!(!part.exists());
        let again = e.remove_partial(&part).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::NotFound);

        let file = dir.path().join("rm.sql");
        std::fs::write(&file, b"dump").unwrap();
        let (size, hex) = e.file_blake3(&file).await.unwrap();
        assert_eq!((size, hex), (4, blake3::hash(b"dump").to_hex().to_string()));
        assert!(e.file_blake3(&dir.path().join("gone.sql")).await.is_err());
        assert!(e.path_exists(&file));
        assert!(!e.path_exists(&dir.path().join("gone.sql")));
    }
}
