//! Words and numbers for people, shared by the Markdown and HTML renderers and by the
//! report's own one-line step details: step titles, fact summaries, times, durations and
//! sizes. Formatting only; every value comes from the ledger.

use chrono::{DateTime, Duration, Utc};

use crate::events::{HaMode, StepFacts, StepKey};

/// issue 16: how a table swap's prune line ends; the report adds `: N` from
/// `drop-pruned-heartbeat`'s facts once that step has run.
pub const SWAPPED_ROWS_COUNTED: &str = "counted and dropped after T2";

/// What a step does, in a few words.
pub fn title(key: StepKey) -> String {
    match key {
        StepKey::DisableHa => "Disable HA".into(),
        StepKey::StopOldContainer => "Stop old container".into(),
        StepKey::PruneHeartbeat => "Prune heartbeat table".into(),
        StepKey::Dump { db } => format!("Dump {db} database"),
        StepKey::RenameOldContainer => "Rename old container aside".into(),
        StepKey::CreateNewContainer => "Create new container".into(),
        StepKey::StartNewContainer => "Start new container".into(),
        StepKey::CheckSupervisor => "Check supervisor programs".into(),
        StepKey::RunDockerInit => "Run docker_init.sh".into(),
        StepKey::ConfirmHealth => "Confirm OMS health".into(),
        StepKey::CheckOnline => "Check machines Online".into(),
        StepKey::EnableHa => "Re-enable HA".into(),
        StepKey::DropPrunedHeartbeat => "Drop the pruned heartbeat rows".into(),
        StepKey::RollbackDropPrunedHeartbeat => "Drop the pruned heartbeat rows (rollback)".into(),
        StepKey::Complete => "Upgrade complete".into(),
        StepKey::RollbackVerifyDumps => "Re-verify dumps".into(),
        StepKey::RollbackDisableHa => "Disable HA (rollback)".into(),
        StepKey::StopNewContainer => "Stop new container".into(),
        StepKey::RenameNewAside => "Rename new container aside".into(),
        StepKey::RenameOldBack => "Give old container its name back".into(),
        StepKey::RecreateDatabase { db } => format!("Drop and recreate {db}"),
        StepKey::Restore { db } => format!("Restore {db} dump"),
        StepKey::RestartOldContainer => "Restart old container".into(),
        StepKey::ConfirmOldHealth => "Confirm old container health".into(),
        StepKey::RollbackEnableHa => "Re-enable HA (rollback)".into(),
        StepKey::RollbackComplete => "Rollback complete".into(),
        StepKey::PreStopCheck => "Check again before stopping".into(),
        StepKey::OldRestartOff => "Old container's restart policy off".into(),
        StepKey::RollbackRestartPolicy => "Old container's restart policy back".into(),
        StepKey::Node { node, step } => format!("{} ({node})", title(step.base())),
        StepKey::Region { region, step } => format!("{} ({region})", title(step.base())),
    }
}

/// A time as `2024-05-01 04:00:00 UTC`, with milliseconds when the record has a fraction
/// of a second (`04:00:00.707`); the JSON form keeps the recorded microseconds.
pub fn time(t: DateTime<Utc>) -> String {
    format!("{} {} UTC", t.format("%Y-%m-%d"), clock(t))
}

/// A time of day as `04:00:00` (or `04:00:00.707`), for compact tables whose date is shown
/// elsewhere.
pub fn clock(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_millis() == 0 {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M:%S%.3f").to_string()
    }
}

/// An optional time, `-` when absent.
pub fn time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// A duration for people: `350 ms`, `4.2 s`, `12 min 5 s`, `1 h 0 min 12 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.num_milliseconds();
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let s = ms / 1000;
    if ms < 1000 {
        format!("{sign}{ms} ms")
    } else if s < 60 {
        format!("{sign}{}.{} s", s, (ms % 1000) / 100)
    } else if s < 3600 {
        format!("{sign}{} min {} s", s / 60, s % 60)
    } else {
        format!("{sign}{} h {} min {} s", s / 3600, (s % 3600) / 60, s % 60)
    }
}

/// An optional duration in milliseconds, `-` when absent.
pub fn duration_ms(ms: Option<i64>) -> String {
    ms.map(|m| duration(super::ms(m)))
        .unwrap_or_else(|| "-".into())
}

/// Bytes for people, exact count kept: `4.0 MiB (4194304 bytes)`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit} ({bytes} bytes)")
}

/// The first 12 characters of an id or hash (the full value is in the JSON form and in
/// the containers and dumps sections).
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// `sql` or `manual`.
pub fn mode(m: HaMode) -> &'static str {
    match m {
        HaMode::Sql => "sql",
        HaMode::Manual => "manual",
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// One line saying what a step found or did.
pub fn facts(f: &StepFacts) -> String {
    match f {
        StepFacts::HaDisabled(h) => {
            let mut s = match &h.written_json {
                Some(_) => format!("enable=false written ({} mode)", mode(h.mode)),
                None => "HA was already off; nothing written".into(),
            };
            if let Some(a) = &h.attestation {
                s.push_str(&format!("; attested by {}", a.by));
            }
            s
        }
        StepFacts::ContainerStopped(c) => {
            let mut s = match c.stop_requested_at {
                Some(r) => format!(
                    "container {} stop requested at {}, stopped at {}",
                    short(&c.id),
                    time(r),
                    time(c.stopped_at)
                ),
                None => format!(
                    "container {} stopped at {}",
                    short(&c.id),
                    time(c.stopped_at)
                ),
            };
            if let Some(f) = c.docker_finished_at {
                s.push_str(&format!("; Docker FinishedAt {}", time(f)));
            }
            if let Some(code) = c.exit_code {
                s.push_str(&format!("; exit code {code}"));
            }
            if c.already_stopped {
                s.push_str("; it was already stopped");
            }
            s
        }
        StepFacts::HeartbeatPruned {
            max_id,
            rows_deleted,
            batches,
            batch_rows,
            warning,
        } => {
            let mut s = match (max_id, warning) {
                // issue 16: a swap renamed the rows aside; they are counted after T2.
                (Some(m), _) if *batch_rows == Some(0) => format!(
                    "kept max(id) {m}; rows moved aside by a table swap; {SWAPPED_ROWS_COUNTED}"
                ),
                (Some(m), _) => format!("kept max(id) {m}; {rows_deleted} rows deleted"),
                (None, Some(_)) => "nothing deleted".into(),
                (None, None) => "heartbeat table was empty; nothing deleted".into(),
            };
            match (batches, batch_rows) {
                // No DELETE ran, yet rows went: the table swap (docs/prune.md).
                (Some(0), _) if *rows_deleted > 0 => {
                    s.push_str(" by a table swap (the newest row kept in a new table)");
                }
                (_, Some(0)) => {}
                (Some(b), Some(n)) => s.push_str(&format!(" in {b} batch(es) of at most {n} rows")),
                _ => {}
            }
            if let Some(w) = warning {
                s.push_str(&format!("; WARNING: {w}"));
            }
            s
        }
        StepFacts::PrunedHeartbeatDropped { table, rows } => match rows {
            Some(n) => format!(
                "{n} heartbeat rows moved aside by the prune counted in {table} and dropped"
            ),
            None => format!(
                "no {table}: nothing to drop (the prune deleted in batches, or an earlier attempt dropped it)"
            ),
        },
        StepFacts::DumpWritten(a) => format!(
            "{}: {}, BLAKE3 {}, {} tables, {} rows",
            a.file,
            size(a.size),
            short(&a.blake3_hex),
            a.tables.len(),
            a.tables.iter().map(|t| t.rows).sum::<u64>()
        ),
        StepFacts::ContainerRenamed { id, from, to } => {
            format!("{} renamed {from} -> {to}", short(id))
        }
        StepFacts::NewContainerCreated(n) => format!(
            "{} ({}) from {}; binds equal to the old container's: {}",
            n.name,
            short(&n.id),
            n.image,
            yes(n.binds_equal_to_old)
        ),
        StepFacts::NewContainerStarted { id, started_at } => match started_at {
            Some(t) => format!("{} started at {}", short(id), time(*t)),
            None => format!("{} started", short(id)),
        },
        StepFacts::SupervisorChecked {
            programs,
            all_running,
        } => format!(
            "{} programs; all RUNNING: {}",
            programs.len(),
            yes(*all_running)
        ),
        StepFacts::SupervisorPolled(p) => format!(
            "{} programs; all RUNNING: {} after {} polls in {:.1} s",
            p.programs.len(),
            yes(p.all_running),
            p.polls,
            p.elapsed_ms as f64 / 1000.0
        ),
        StepFacts::DockerInit(d) => {
            let mut s = format!(
                "exit code {}; success marker seen: {}; log {} BLAKE3 {}",
                d.exit_code,
                yes(d.marker_seen),
                d.log_file.as_deref().unwrap_or("(none)"),
                short(&d.log_blake3)
            );
            if !d.harmless_errors.is_empty() {
                s.push_str(&format!(
                    "; known-harmless errors: {}",
                    d.harmless_errors.join(", ")
                ));
            }
            s
        }
        StepFacts::Health(h) => format!("{} healthy: {}", h.url, yes(h.healthy)),
        StepFacts::NodesOnline { nodes, all_online } => {
            format!("{} machines; all Online: {}", nodes.len(), yes(*all_online))
        }
        StepFacts::HaEnabled(h) => {
            let mut s = format!("HA enabled, confirmed at {}", time(h.enabled_at));
            match h.refetch.as_ref() {
                Some(d) => match (d.perceive_checkpoint, d.interval_minutes) {
                    (Some(true), Some(i)) => s.push_str(&format!(
                        "; perceiveStoreClientCheckpoint = true, refetchStoreIntervalMin = {i} (default)"
                    )),
                    (_, None) => s.push_str("; perceiveStoreClientCheckpoint = true"),
                    (_, Some(i)) => s.push_str(&format!("; refetchStoreIntervalMin = {i}")),
                },
                None => s.push_str("; no downtime to cover"),
            }
            if let Some(a) = &h.attestation {
                s.push_str(&format!("; attested by {}", a.by));
            }
            s
        }
        StepFacts::DumpsVerified { checks } => {
            let bad = checks.iter().filter(|c| !c.ok).count();
            if bad == 0 {
                format!("{} dumps re-hashed: all match the record", checks.len())
            } else {
                format!(
                    "{} dumps re-hashed: {bad} missing or different",
                    checks.len()
                )
            }
        }
        StepFacts::DatabaseRecreated { database, .. } => {
            format!("{database} dropped and recreated")
        }
        StepFacts::Restored(r) => format!(
            "{} restored from {} (BLAKE3 {} verified first); tables match the dump: {}",
            r.database,
            r.file,
            short(&r.verified_blake3),
            yes(r.tables_match)
        ),
        StepFacts::ContainerRestarted { id, name } => {
            format!("{name} ({}) restarted", short(id))
        }
        StepFacts::Completed => "-".into(),
        StepFacts::Skipped { reason } => format!("nothing to do: {reason}"),
        StepFacts::RestartPolicySet { id, before, after } => format!(
            "restart policy of container {}: {before} -> {after}",
            short(id)
        ),
        StepFacts::PreStopChecked { checks } => {
            let bad: Vec<&str> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.detail.as_str())
                .collect();
            if bad.is_empty() {
                format!("{} checks passed", checks.len())
            } else {
                format!(
                    "{} of {} checks failed: {}",
                    bad.len(),
                    checks.len(),
                    bad.join("; ")
                )
            }
        }
    }
}

/// Escapes text for a table cell: pipes would end the cell and newlines the row.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// Text inside an inline code span; backticks inside cannot be escaped in Markdown, so
/// they are replaced with a look-alike.
pub(crate) fn code(s: &str) -> String {
    format!("`{}`", cell(&s.replace('`', "'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::milliseconds(350)), "350 ms");
        assert_eq!(duration(Duration::milliseconds(4_250)), "4.2 s");
        assert_eq!(duration(Duration::seconds(725)), "12 min 5 s");
        assert_eq!(duration(Duration::seconds(3612)), "1 h 0 min 12 s");
        assert_eq!(duration(Duration::seconds(-2)), "-2.0 s");
    }

    #[test]
    fn times_show_milliseconds_only_when_recorded() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap();
        assert_eq!(time(t), "2024-05-01 04:00:00 UTC");
        assert_eq!(
            time(t + Duration::microseconds(707_400)),
            "2024-05-01 04:00:00.707 UTC"
        );
        assert_eq!(clock(t + Duration::milliseconds(5)), "04:00:00.005");
    }

    #[test]
    fn sizes_keep_the_exact_count() {
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size(4096), "4.0 KiB (4096 bytes)");
        assert_eq!(size(3 * 1024 * 1024 + 1), "3.0 MiB (3145729 bytes)");
    }

    #[test]
    fn short_ids_drop_the_digest_prefix() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
