//! issue 16, second pass: what earlier upgrades on this host took, for `init`'s estimate.
//!
//! The ledgers looked at are the folders beside this run's ledger (one ledger records one
//! upgrade, so a host's next upgrade gets a new `--ledger`, e.g.
//! `/var/lib/oms-upgrade/ledger-2` beside the default `/var/lib/oms-upgrade/ledger`).
//! Each is read from a private copy (`LedgerReader::open_copy`: the original is never
//! locked or written), its chain verified from seq 1, and replayed; only a completed
//! upgrade planned on this host counts. A folder that is not a ledger, a broken chain, a
//! record that does not decode and a run of another host are skipped with a debug log:
//! learning is a refinement of the estimate, never a reason for `init` to fail. What a run
//! took per part is what its own report shows as actual (`report::estimate::actual`); the
//! choice among the runs is the pure core's (`estimate::from_earlier_runs`).

use std::path::{Path, PathBuf};

use crate::estimate::{EarlierRun, PartKind};
use crate::ledger::{LedgerReader, verify};
use crate::replay::Phase;

/// At most this many folders beside the ledger are looked at (newest first), so a
/// crowded folder cannot make `init` slow.
pub const MAX_LEDGERS_READ: usize = 64;

/// The parts an earlier run can teach (the dump is measured on this node, the prune
/// depends on this node's rows).
const LEARNED: [PartKind; 3] = [
    PartKind::Container,
    PartKind::DockerInit,
    PartKind::OmsStartup,
];

/// The completed upgrades planned on `host` that the ledgers beside `ledger` record.
pub fn earlier_runs(ledger: &Path, host: &str) -> Vec<EarlierRun> {
    candidates(ledger)
        .into_iter()
        .filter_map(|dir| match read(&dir, host) {
            Ok(run) => Some(run),
            Err(why) => {
                tracing::debug!(ledger = %dir.display(), %why, "not learned from");
                None
            }
        })
        .collect()
}

/// The folders beside `ledger` that look like ledgers (sled's `conf` and `db` are
/// regular files there), newest first by their `db`'s modification time, at most
/// [`MAX_LEDGERS_READ`]. `ledger` itself is left out.
fn candidates(ledger: &Path) -> Vec<PathBuf> {
    // `--ledger ledger-2` names a folder in the working directory, whose parent is "".
    let ledger = std::path::absolute(ledger).unwrap_or_else(|_| ledger.to_path_buf());
    let Some(parent) = ledger.parent() else {
        return Vec::new();
    };
    let own = std::fs::canonicalize(&ledger).unwrap_or_else(|_| ledger.clone());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let regular = |p: PathBuf| {
        std::fs::symlink_metadata(&p)
            .ok()
            .filter(|m| m.file_type().is_file())
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| std::fs::canonicalize(p).map_or(true, |c| c != own))
        // A folder others may write to (or owned by someone else) could hold a forged
        // ledger whose chain verifies: what it teaches is not this host's record.
        .filter(|p| match crate::safefs::check_folder(p, false) {
            Ok(()) => true,
            Err(why) => {
                tracing::debug!(ledger = %p.display(), %why, "not learned from");
                false
            }
        })
        .filter_map(|p| {
            regular(p.join("conf"))?;
            let db = regular(p.join("db"))?;
            Some((db.modified().ok()?, p))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.truncate(MAX_LEDGERS_READ);
    found.into_iter().map(|(_, p)| p).collect()
}

/// One ledger's run, when it is a verified, completed upgrade planned on `host`.
fn read(dir: &Path, host: &str) -> Result<EarlierRun, String> {
    let reader = LedgerReader::open_copy(dir).map_err(|e| e.to_string())?;
    // The copy's chain was verified; the payloads are decoded by the same walk the report
    // makes, so a record that does not decode is a problem here too.
    let checked =
        verify(reader.view(), None, &crate::events::EventDecoder).map_err(|e| e.to_string())?;
    if let Some(p) = &checked.problem {
        return Err(format!("does not verify at seq {}: {}", p.seq, p.detail));
    }
    let history = crate::history::load(reader.view(), crate::history::Verify::ByCaller)
        .map_err(|e| e.to_string())?;
    let state = &history.state;
    let plan = state.plan().ok_or("no plan")?;
    if state.phase() != Phase::Completed {
        return Err(format!("not a completed upgrade ({})", state.phase()));
    }
    let report = crate::report::build(
        &history.records,
        state,
        crate::report::Verification::from_verify_report(&checked, Vec::new()),
    );
    // Another host's ledger (copied here) says nothing about this host's Docker.
    let planned_on = report.run.planned_on.as_deref();
    if planned_on != Some(host) {
        return Err(format!(
            "planned on another host ({})",
            planned_on.unwrap_or("unknown")
        ));
    }
    let parts: Vec<(PartKind, u64)> = LEARNED
        .iter()
        .filter_map(|k| {
            let ms = crate::report::estimate::actual(*k, &report.steps)?;
            Some((*k, u64::try_from(ms).ok()?))
        })
        .collect();
    Ok(EarlierRun {
        target: plan.target_version,
        finished_at: history.records.last().ok_or("no records")?.at,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only folders holding sled's `conf` and `db` as regular files are read, and this
    /// run's own ledger never.
    #[test]
    fn candidates_are_the_ledger_like_folders_beside_this_one() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, files: &[&str]| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), b"x").unwrap();
            }
            d
        };
        let own = make("ledger", &["conf", "db"]);
        let earlier = make("ledger-1", &["conf", "db"]);
        make("backups", &[]);
        make("half", &["conf"]);
        let linked = make("linked", &["conf"]);
        std::os::unix::fs::symlink(earlier.join("db"), linked.join("db")).unwrap();
        std::fs::write(tmp.path().join("a-file"), b"x").unwrap();
        let shared = make("shared", &["conf", "db"]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(candidates(&own), vec![earlier.clone()]);
        // A ledger folder not created yet (the first `init` on it) has the same neighbours.
        let mut found = candidates(&tmp.path().join("ledger-9"));
        found.sort();
        assert_eq!(found, vec![own, earlier.clone()]);
        // Not a ledger, or unreadable: nothing learned, no error.
        assert!(earlier_runs(&tmp.path().join("ledger-9"), "h").is_empty());
        assert!(candidates(Path::new("/")).is_empty());
    }
}
