//! Output helpers shared by the commands: writing files atomically, writing to a stdout
//! that may be a closed pipe, and the errors of both.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CliError, ExitKind};
use crate::ledger::AnchorError;

/// A checkpoint (`--anchor`) that cannot be used, as bad input with a hint.
pub fn anchor_error(e: AnchorError) -> CliError {
    let hint = match &e {
        AnchorError::Io { .. } => "check the path given to --anchor and that it is readable",
        AnchorError::Invalid { .. } => {
            "use the text printed by `oms-upgrade ledger checkpoint`, unchanged"
        }
    };
    CliError::new(ExitKind::Input, e.to_string()).hint(hint)
}

/// An output that cannot be written.
pub fn output_error(what: &str, e: std::io::Error) -> CliError {
    CliError::new(ExitKind::Internal, format!("cannot write {what}: {e}"))
        .hint("check that the output location exists, is writable and has free space")
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
pub fn emit(out: &mut dyn Write, text: &str) -> Result<bool, CliError> {
    match out.write_all(text.as_bytes()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(output_error("to stdout", e)),
    }
}

/// Writes a file so that it is either complete or absent: `fill` writes a temporary file in
/// the same folder, which is fsynced and then renamed over `path`.
pub fn write_atomic<T>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let io = |e: std::io::Error| output_error(&path.display().to_string(), e);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path has no file name")))?;
    let tmp = dir.join(format!(".{}.part", name.to_string_lossy()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let value = fill(&mut f)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
