//! Output helpers shared by the commands: writing files atomically, writing to a stdout
//! that may be a closed pipe (their errors: [`super::error::output_error`]).

use std::io::Write;
use std::path::Path;

use super::CliError;
use super::error::output_error;

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
pub fn emit(out: &mut dyn Write, text: &str) -> Result<bool, CliError> {
    match out.write_all(text.as_bytes()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(output_error("to stdout", e)),
    }
}

/// Writes a file so that it is either complete or absent: `fill` writes a new file under a
/// random temporary name in the same folder (never following or reusing anything planted
/// there), mode 0644 before the umask (reports, exports, checkpoints and public keys hold no
/// secret), which is fsynced and renamed over `path`. See [`crate::safefs::write_atomic`].
pub fn write_atomic<T>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<T, CliError>,
) -> Result<T, CliError> {
    crate::safefs::write_atomic(
        path,
        0o644,
        |e| output_error(&path.display().to_string(), e),
        fill,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_does_not_follow_a_planted_temporary_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        let out = dir.path().join("report.md");
        // The old temporary name was predictable; plant it as a symlink to the victim.
        std::os::unix::fs::symlink(&victim, dir.path().join(".report.md.part")).unwrap();
        write_atomic(&out, |f| {
            f.write_all(b"report\n")
                .map_err(|e| output_error("test", e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
        assert_eq!(std::fs::read(&out).unwrap(), b"report\n");
        let md = std::fs::symlink_metadata(&out).unwrap();
        assert!(md.file_type().is_file());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o022,
            0
        );
    }
}
