//! What a `docker_init.sh` run leaves behind, read the same way by the step that starts it
//! and by the reconciliation of an in-doubt start: the exec sessions still running it, and
//! the facts its output gives. Below both, so neither imports the other.

use crate::adapters::Docker;
use crate::adapters::docker::ExecInfo;
use crate::events;
use crate::redact::redact;
use crate::steps::InitSpec;

/// Exec sessions running in the init container that were started with the init command
/// (by an attempt we lost track of, or by hand). Shared with the step's start, which must
/// not start a second one.
pub(super) async fn init_sessions<D: Docker>(
    docker: &D,
    spec: &InitSpec,
) -> Result<Vec<ExecInfo>, String> {
    Ok(docker
        .running_execs(&spec.container)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.argv == spec.argv)
        .collect())
}

/// The step's facts from a finished run's exit code and output (masked before its tail is
/// kept).
pub(super) fn init_facts(
    spec: &InitSpec,
    exit_code: i64,
    output: &str,
    output_blake3: &str,
) -> events::DockerInit {
    events::DockerInit {
        exit_code,
        marker_seen: output
            .lines()
            .any(|l| l.contains(spec.success_marker.as_str())),
        log_file: Some(format!("{}/docker_init.log", spec.log_dir)),
        log_blake3: output_blake3.to_string(),
        // Masked before cutting, so a secret is not cut in half (and so unrecognisable) at
        // the tail's start.
        log_tail: events::tail_marked(&redact(output), events::LOG_TAIL_MAX_BYTES, output_blake3),
        harmless_errors: spec
            .harmless_errors
            .iter()
            .filter(|e| output.contains(e.as_str()))
            .cloned()
            .collect(),
    }
}
