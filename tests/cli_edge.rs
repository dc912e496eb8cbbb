//! The binary's edge behaviour, independent of any command.

use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Regression: `oms-upgrade ... | head` panicked with "failed printing to stdout: Broken
/// pipe". A closed pipe now ends the process quietly by SIGPIPE, as Unix tools do.
#[test]
fn closed_stdout_pipe_ends_quietly() {
    // A pipe whose reading end is already closed: the child's first write hits EPIPE.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    let write_end = unsafe { Stdio::from_raw_fd(fds[1]) };
    let out = Command::new(env!("CARGO_BIN_EXE_oms-upgrade"))
        .arg("--help")
        .stdout(write_end)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}
