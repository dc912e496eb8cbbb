//! Files and folders in places others may reach: the one way this tool creates a folder it
//! writes dumps or a ledger into, creates a new file, and replaces a file atomically.
//!
//! Why: a folder owned by someone else, or one that others may write to, lets them plant
//! a symlink or a file where we are about to write (and root follows it anywhere), or swap
//! a dump after it was checked. So a folder we write into must be a real folder (not a
//! symlink), owned by the invoking user or root, and writable by nobody else; a folder we
//! create is created component by component with `mkdir` (never into a folder that fails
//! that check, which includes world-writable `/tmp` itself: a private folder inside it is
//! fine). New files are opened with `O_CREAT|O_EXCL|O_NOFOLLOW` under a random temporary
//! name, so neither a planted file nor a planted symlink is ever opened.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a folder is not safe to write into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// The path is a symlink; where it points is not checked, so it is not followed.
    Symlink,
    /// Owned by a user other than the invoking one or root.
    Owner,
    /// Group or others may write to it (create, rename or remove its entries).
    Writable,
    /// Group or others may read it, and it will hold secrets (dump folders).
    Readable,
    /// Not a folder.
    NotAFolder,
}

/// A folder is not safe, or a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    /// The folder fails the safety check; the message names it, its owner and mode, and
    /// what to do.
    #[error("{}", unsafe_message(.path, *.uid, *.mode, .why))]
    Unsafe {
        /// The folder.
        path: PathBuf,
        /// Its owner's uid.
        uid: u32,
        /// Its permission bits.
        mode: u32,
        /// What is wrong.
        why: Unsafe,
    },
    /// A filesystem call failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn unsafe_message(path: &Path, uid: u32, mode: u32, why: &Unsafe) -> String {
    let p = path.display();
    let what = format!("{p} (owner uid {uid}, mode {mode:03o})");
    match why {
        Unsafe::Symlink => format!(
            "refusing {p}: it is a symlink, which is not followed; pass the real folder it \
             points to, after checking who owns it"
        ),
        Unsafe::Owner => format!(
            "refusing {what}: it is owned by uid {uid}, neither you (uid {}) nor root, so its \
             owner could replace what is written there; use a folder you own, or have it \
             `chown {}` after checking its content",
            euid(),
            euid()
        ),
        Unsafe::Writable => format!(
            "refusing {what}: group or others may write to it, so they could plant or swap \
             files in it; run `chmod go-w {p}`, or use a private folder (e.g. create one \
             with `mkdir -m 700` and pass a path inside it)"
        ),
        Unsafe::Readable => format!(
            "refusing {what}: group or others may read it, and dumps hold credentials; run \
             `chmod 700 {p}` or use a new folder"
        ),
        Unsafe::NotAFolder => format!("refusing {p}: it exists and is not a folder"),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SafeFsError + 'a {
    move |source| SafeFsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks an existing folder without following a symlink at its last component: a real
/// folder, owned by the invoking user or root, not writable by group or others; with
/// `private`, not readable by them either.
pub fn check_folder(dir: &Path, private: bool) -> Result<(), SafeFsError> {
    let md = std::fs::symlink_metadata(dir).map_err(io_err("inspect", dir))?;
    let mode = md.permissions().mode() & 0o7777;
    let refuse = |why| SafeFsError::Unsafe {
        path: dir.to_path_buf(),
        uid: md.uid(),
        mode,
        why,
    };
    if md.file_type().is_symlink() {
        return Err(refuse(Unsafe::Symlink));
    }
    if !md.is_dir() {
        return Err(refuse(Unsafe::NotAFolder));
    }
    if md.uid() != euid() && md.uid() != 0 {
        return Err(refuse(Unsafe::Owner));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(Unsafe::Writable));
    }
    if private && mode & 0o077 != 0 {
        return Err(refuse(Unsafe::Readable));
    }
    Ok(())
}

/// Makes sure `dir` exists and is safe to write into (see [`check_folder`]). Missing
/// folders are created one `mkdir` at a time with `mode` (made exact, whatever the umask),
/// starting inside the nearest existing ancestor, which must pass the check itself:
/// creating into a folder others may write to (such as `/tmp`) is refused. With `private`
/// the folder must not be readable by group or others. Returns whether it was created.
pub fn ensure_folder(dir: &Path, mode: u32, private: bool) -> Result<bool, SafeFsError> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => return check_folder(dir, private).map(|()| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", dir)(e)),
    }
    let dir = absolute(dir)?;
    // The missing tail, from the nearest existing ancestor down.
    let mut missing = Vec::new();
    let mut base = dir.as_path();
    loop {
        match std::fs::symlink_metadata(base) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(base.to_path_buf());
                base = base.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => return Err(io_err("inspect", base)(e)),
        }
    }
    check_folder(base, false)?;
    for d in missing.iter().rev() {
        let mut b = std::fs::DirBuilder::new();
        b.mode(mode);
        // Not recursive. A folder that appeared between the walk and here (another writer
        // of the same ledger opening it at the same moment, or someone else's plant) is
        // used only if it passes the same check as any existing folder: not a symlink,
        // ours or root's, not writable (nor, if private, readable) by others. Its mode is
        // then left as its creator set it.
        match b.create(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))
                .map_err(io_err("set the mode of", d))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create the folder", d)(e)),
        }
        check_folder(d, private)?;
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync the folder", parent))?;
    Ok(true)
}

/// `dir` made absolute against the current folder, lexically (`.` dropped, `..` kept, so
/// the ancestor walk in [`ensure_folder`] checks the folders the kernel will really use).
fn absolute(dir: &Path) -> Result<PathBuf, SafeFsError> {
    let joined = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io_err("read the current folder for", dir))?
            .join(dir)
    };
    Ok(joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

/// Creates a new file with `mode`, refusing to open anything that already exists at `path`
/// (`O_EXCL`), a symlink included (`O_NOFOLLOW`).
pub fn create_new_file(path: &Path, mode: u32) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A temporary name next to `path` that nobody can predict: `.NAME.<16 hex>.part`.
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path has no file name"))?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(io::Error::other)?;
    let tmp = format!(".{}.{}.part", name.to_string_lossy(), hex::encode(random));
    Ok(match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(tmp),
        _ => PathBuf::from(tmp),
    })
}

/// Writes `path` so that it is either complete or absent: `fill` writes a new file under a
/// random temporary name in the same folder (created with `O_EXCL|O_NOFOLLOW` and `mode`),
/// which is fsynced and renamed over `path` (a symlink at `path` is replaced, not
/// followed), and the folder is fsynced. The temporary file is removed on any error.
pub fn write_atomic<T, E>(
    path: &Path,
    mode: u32,
    io_error: impl Fn(io::Error) -> E,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let tmp = temp_path(path).map_err(&io_error)?;
    let mut f = create_new_file(&tmp, mode).map_err(&io_error)?;
    let result = (|| {
        let value = fill(&mut f)?;
        f.sync_all().map_err(&io_error)?;
        std::fs::rename(&tmp, path).map_err(&io_error)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(&io_error)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::chown;

    const NOBODY: u32 = 65534;

    fn why_of(e: &SafeFsError) -> Option<Unsafe> {
        match e {
            SafeFsError::Unsafe { why, .. } => Some(why.clone()),
            SafeFsError::Io { .. } => None,
        }
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_folder_owned_by_someone_else_is_refused_with_owner_mode_and_advice() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("dumps");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&d, Some(NOBODY), None).unwrap();
        let e = ensure_folder(&d, 0o700, true).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&d.display().to_string()), "{msg}");
        assert!(
            msg.contains("uid 65534") && msg.contains("mode 700"),
            "{msg}"
        );
        assert!(msg.contains("chown"), "{msg}");
    }

    #[test]
    fn creating_into_a_parent_owned_by_someone_else_or_writable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("shared");
        std::fs::create_dir(&parent).unwrap();
        chown(&parent, Some(NOBODY), None).unwrap();
        let e = ensure_folder(&parent.join("dumps"), 0o700, true).unwrap_err();
        assert_eq!(why_of(&e), Some(Unsafe::Owner), "{e}");
        assert!(!parent.join("dumps").exists());

        chown(&parent, Some(0), None).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ensure_folder(&parent.join("a/b"), 0o700, true).unwrap_err();
        assert_eq!(why_of(&e), Some(Unsafe::Writable), "{e}");
        assert!(e.to_string().contains("mode 1777"), "{e}");

        // A private folder inside the sticky, world-writable one is fine.
        let own = parent.join("own");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(ensure_folder(&own.join("x/y"), 0o700, true).unwrap());
        assert_eq!(mode_of(&own.join("x/y")), 0o700);
        assert!(!ensure_folder(&own.join("x/y"), 0o700, true).unwrap());
    }

    #[test]
    fn a_group_writable_or_symlinked_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("ledger");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = check_folder(&d, false).unwrap_err();
        assert_eq!(why_of(&e), Some(Unsafe::Writable), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_folder(&d, false).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = check_folder(&link, false).unwrap_err();
        assert_eq!(why_of(&e), Some(Unsafe::Symlink), "{e}");
    }

    #[test]
    fn new_files_never_open_what_is_already_there() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"x").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_new_file(&link, 0o600).is_err());
        assert!(create_new_file(&victim, 0o600).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"x");
        let a = temp_path(&victim).unwrap();
        assert_ne!(a, temp_path(&victim).unwrap());
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".victim.")
        );
    }
}

/// A folder only this user can enter, under the system's temporary folder, removed with
/// everything in it when dropped (what is copied there is not for other users).
#[derive(Debug)]
pub struct PrivateFolder {
    path: PathBuf,
}

impl PrivateFolder {
    /// Creates `oms-upgrade-<prefix>-<uuid>` under the system's temporary folder, mode
    /// 0700 (`create`, not `create_all`: a name someone planted makes it fail).
    pub fn create(prefix: &str) -> Result<PrivateFolder, String> {
        let path =
            std::env::temp_dir().join(format!("oms-upgrade-{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create a private folder {}: {e}", path.display()))?;
        Ok(PrivateFolder { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateFolder {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(folder = %self.path.display(), error = %e, "could not remove a private temporary folder");
        }
    }
}
