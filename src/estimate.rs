//! The downtime estimate `init` records in the plan (issue 16, "Plan the window"), pure.
//!
//! What `init` measured arrives as values (the three databases' sizes from
//! `information_schema`, a short read-throughput probe of the metadata DB); this module turns
//! them into the time the node is expected to be down between T1 and T2: the dumps, plus
//! the new container's create and start, `docker_init.sh`, and OMS's own start-up. The
//! public record gives no figure for the last three (the brief says only that
//! `docker_init.sh` "takes minutes"), so they are named assumptions below, recorded and
//! shown as `assumed`, never as measured. The report sets the estimate against what the
//! ledger recorded (`report::estimate`).
//!
//! Must never: do I/O or read the clock (durations arrive measured).

use serde::Serialize;

/// Heartbeat rows the `prune-heartbeat` step deletes per second, assumed. No public figure
/// exists; this is what one run of this tool's 1 GB demo showed on a 2-core machine
/// (MariaDB 10.11 on the same host, batches of 10,000 rows): 3,161,952 rows in 15.5 s. A
/// production metadata server may be faster or slower.
pub const ASSUMED_PRUNE_ROWS_PER_SEC: u64 = 200_000;

/// The prune by table swap inside the window, assumed: a table of at least
/// [`crate::heartbeat::HEARTBEAT_SWAP_MIN_ROWS`] rows is pruned by swapping in a table that
/// holds only the newest row (docs/prune.md). Since issue 16 the old rows are neither
/// counted nor dropped in the window (`drop-pruned-heartbeat` does both after T2), so what
/// is left (a few `information_schema` reads, `CREATE TABLE ... LIKE`, one row copied, one
/// `RENAME TABLE`) does not grow with the rows. A table with a trigger or a foreign key is
/// pruned by DELETE batches instead, which this estimate does not know beforehand (it then
/// comes out low).
pub const ASSUMED_SWAP_MS: u64 = 50;

/// Docker's create plus start of the new container, assumed: the image is already on the
/// host (the preflight checks it) and nothing is published about how long OMS's container
/// takes to be created and started. An assumption of this tool, not a measurement.
pub const ASSUMED_CONTAINER_MS: u64 = 5_000;

/// `docker_init.sh`, assumed. The brief says only "It takes minutes"; no figure is
/// published per version, so the same figure stands for every version. An assumption of
/// this tool, not a measurement.
pub const ASSUMED_DOCKER_INIT_MS: u64 = 180_000;

/// OMS's start-up after `docker_init.sh` until its health endpoint answers healthy (and the
/// supervisor's programs run), assumed: no figure is published for any version. An
/// assumption of this tool, not a measurement.
pub const ASSUMED_OMS_STARTUP_MS: u64 = 60_000;

/// The assumed time of the prune of `rows` heartbeat rows inside the window: by table swap
/// from [`crate::heartbeat::HEARTBEAT_SWAP_MIN_ROWS`] rows on ([`ASSUMED_SWAP_MS`]), else
/// by DELETE batches ([`ASSUMED_PRUNE_ROWS_PER_SEC`]).
pub fn prune_ms(rows: u64) -> u64 {
    if rows >= crate::heartbeat::HEARTBEAT_SWAP_MIN_ROWS {
        ASSUMED_SWAP_MS
    } else {
        let ms = u128::from(rows) * 1000 / u128::from(ASSUMED_PRUNE_ROWS_PER_SEC);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

/// Where a figure of the estimate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Computed from what `init` measured on this node.
    Measured,
    /// One of this module's named assumptions (no public figure exists).
    Assumed,
    /// The median of what earlier completed upgrades on this host took for the part
    /// ([`EarlierRun`], [`from_earlier_runs`]).
    EarlierRuns {
        /// How many runs the median is over.
        runs: u32,
        /// Which target versions they went to: the exact version (`3.3.1`), its release
        /// line (`3.3.x`) or its major version (`3.x`).
        version: String,
    },
}

impl Basis {
    /// The basis as a code: `measured`, `assumed` or `earlier_runs`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Basis::Measured => "measured",
            Basis::Assumed => "assumed",
            Basis::EarlierRuns { .. } => "earlier_runs",
        }
    }

    /// The words shown beside a figure: `measured`, `assumed`, or
    /// `earlier runs (n=3, to 4.2.x)`.
    pub fn label(&self) -> String {
        match self {
            Basis::EarlierRuns { runs, version } => {
                format!("earlier runs (n={runs}, to {version})")
            }
            other => other.as_str().to_string(),
        }
    }
}

/// How many of the latest matching earlier runs a learned figure is the median of: enough
/// that one slow run (a cold page cache, a busy host) does not move it, few enough that
/// a host's recent behaviour counts more than its distant past.
pub const EARLIER_RUNS_USED: usize = 5;

/// One earlier upgrade recorded on this host, as the shell read it from a verified ledger
/// of a completed run: what each part of its window actually took (the same figures its
/// report's "Estimate against actual" shows as actual).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierRun {
    /// The version it upgraded to.
    pub target: crate::versions::Version,
    /// Its last record's time: which runs are the latest.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Milliseconds each part took (parts the ledger has no figure for are absent).
    pub parts: Vec<(PartKind, u64)>,
}

impl EarlierRun {
    fn part(&self, kind: PartKind) -> Option<u64> {
        self.parts
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, ms)| *ms)
    }
}

/// How close an earlier run's target is to this one's, closest first.
#[derive(Debug, Clone, Copy)]
enum Closeness {
    Exact,
    Line,
    Major,
}

impl Closeness {
    fn fits(self, run: crate::versions::Version, target: crate::versions::Version) -> bool {
        let line = run.major == target.major && run.minor == target.minor;
        match self {
            Closeness::Exact => run == target,
            Closeness::Line => line,
            Closeness::Major => run.major == target.major,
        }
    }

    /// The group's name: `3.3.1`, `3.3.x` or `3.x`.
    fn name(self, t: crate::versions::Version) -> String {
        match self {
            Closeness::Exact => format!("{}.{}.{}", t.major, t.minor, t.patch),
            Closeness::Line => format!("{}.{}.x", t.major, t.minor),
            Closeness::Major => format!("{}.x", t.major),
        }
    }
}

/// The figure for `kind` learned from earlier runs to `target`: the median of the latest
/// [`EARLIER_RUNS_USED`] runs that recorded the part, from the closest group that has any
/// (same version, same release line, same major; see [`Basis::EarlierRuns`]). A median,
/// not a mean: one run far off (a retried `docker_init.sh`, a host under load) does not
/// move it. `None`: no earlier run of the major version recorded the part.
pub fn from_earlier_runs(
    kind: PartKind,
    target: crate::versions::Version,
    runs: &[EarlierRun],
) -> Option<(u64, Basis)> {
    for group in [Closeness::Exact, Closeness::Line, Closeness::Major] {
        let mut found: Vec<(&chrono::DateTime<chrono::Utc>, u64)> = runs
            .iter()
            .filter(|r| group.fits(r.target, target))
            .filter_map(|r| r.part(kind).map(|ms| (&r.finished_at, ms)))
            .collect();
        if found.is_empty() {
            continue;
        }
        // The latest first (a tie keeps the order given).
        found.sort_by_key(|f| std::cmp::Reverse(*f.0));
        found.truncate(EARLIER_RUNS_USED);
        let mut ms: Vec<u64> = found.iter().map(|(_, ms)| *ms).collect();
        ms.sort_unstable();
        let mid = ms.len() / 2;
        let median = if ms.len() % 2 == 1 {
            ms[mid]
        } else {
            // The two middle figures' mean, rounded up (never below either's floor).
            let (a, b) = (u128::from(ms[mid - 1]), u128::from(ms[mid]));
            u64::try_from((a + b).div_ceil(2)).unwrap_or(u64::MAX)
        };
        let runs = u32::try_from(ms.len()).unwrap_or(u32::MAX);
        let version = group.name(target);
        return Some((median, Basis::EarlierRuns { runs, version }));
    }
    None
}

/// One database as `information_schema` described it at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbMeasure {
    /// The database's name.
    pub name: String,
    /// Tables (base tables only).
    pub tables: u64,
    /// Rows (InnoDB's estimate, `TABLE_ROWS`).
    pub rows: u64,
    /// `DATA_LENGTH` summed: what the dump reads.
    pub data_bytes: u64,
    /// `INDEX_LENGTH` summed: not dumped, shown for the size on disk.
    pub index_bytes: u64,
}

/// A short read of one table's rows through the text protocol the native dumper uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadProbe {
    /// `database.table` read (the largest by data size).
    pub table: String,
    /// Bytes of the values received.
    pub bytes: u64,
    /// Rows received.
    pub rows: u64,
    /// How long the read took, in microseconds (from sending the query to the last row
    /// kept).
    pub micros: u64,
}

impl ReadProbe {
    /// Bytes per second, when the probe read anything in a measurable time.
    pub fn bytes_per_sec(&self) -> Option<u64> {
        if self.bytes == 0 || self.micros == 0 {
            return None;
        }
        u64::try_from(u128::from(self.bytes) * 1_000_000 / u128::from(self.micros)).ok()
    }
}

/// What a part of the window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// The heartbeat prune (`prune-heartbeat`), before the dumps.
    Prune,
    /// The three dumps.
    Dump,
    /// The new container's create and start.
    Container,
    /// `docker_init.sh`.
    DockerInit,
    /// OMS's start-up until healthy.
    OmsStartup,
}

impl PartKind {
    /// The name shown.
    pub fn title(self) -> &'static str {
        match self {
            PartKind::Prune => "heartbeat prune",
            PartKind::Dump => "dumps",
            PartKind::Container => "container create + start",
            PartKind::DockerInit => "docker_init.sh",
            PartKind::OmsStartup => "OMS start-up until healthy",
        }
    }
}

/// One part of the estimated window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// What it is.
    pub kind: PartKind,
    /// Its estimated length in milliseconds.
    pub ms: u64,
    /// Where the figure comes from.
    pub basis: Basis,
}

/// The downtime estimate for this node, as recorded in the plan (`PlanExt::Estimate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// The three databases as measured.
    pub databases: Vec<DbMeasure>,
    /// The heartbeat database (`cm_hb`'s name).
    pub heartbeat_db: String,
    /// Rows of its heartbeat table (`heatbeat_sequence`) that the prune deletes before the
    /// dumps (all but one), as `TABLE_ROWS` estimates them.
    pub heartbeat_rows: u64,
    /// The read probe, when it ran (absent: the databases held no rows to read, or the
    /// probe failed; then the dump part is absent too).
    pub probe: Option<ReadProbe>,
    /// The native dumper's connections at planning (`DumpOptions::jobs`). The dump part is
    /// computed for one connection at the probed rate: more connections can shorten it on a
    /// server with cores to spare, the dumper's own work (formatting, hashing, fsync)
    /// lengthens it.
    pub dump_jobs: u32,
    /// The parts, in the order they happen.
    pub parts: Vec<Part>,
}

impl Estimate {
    /// The whole window (T1 -> T2) in milliseconds: the parts added.
    pub fn total_ms(&self) -> u64 {
        self.parts.iter().fold(0u64, |t, p| t.saturating_add(p.ms))
    }

    /// The part of a kind, when estimated.
    pub fn part(&self, kind: PartKind) -> Option<&Part> {
        self.parts.iter().find(|p| p.kind == kind)
    }

    /// Bytes the dumps read: `DATA_LENGTH` of the three databases less the heartbeat
    /// table's share of its database (the prune empties it before the dumps).
    pub fn data_bytes(&self) -> u64 {
        let all = self
            .databases
            .iter()
            .fold(0u64, |t, d| t.saturating_add(d.data_bytes));
        all.saturating_sub(self.pruned_bytes())
    }

    /// The heartbeat table's share of its database's data, by rows.
    fn pruned_bytes(&self) -> u64 {
        match self.databases.iter().find(|d| d.name == self.heartbeat_db) {
            Some(hb) if hb.rows > 0 => {
                let share = u128::from(hb.data_bytes)
                    * u128::from(self.heartbeat_rows.min(hb.rows))
                    / u128::from(hb.rows);
                u64::try_from(share).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// True when every part is measured.
    pub fn all_measured(&self) -> bool {
        self.parts.iter().all(|p| p.basis == Basis::Measured)
    }

    /// True when some part is one of this module's assumptions.
    pub fn any_assumed(&self) -> bool {
        self.parts.iter().any(|p| p.basis == Basis::Assumed)
    }

    /// Replaces each assumed container, `docker_init.sh` and start-up figure with what
    /// earlier runs on this host to `target` took ([`from_earlier_runs`]); a part no
    /// earlier run recorded keeps its assumption. The dump and the prune are not learned:
    /// the dump is measured on this node, and the prune depends on this node's rows.
    pub fn learn(&mut self, target: crate::versions::Version, runs: &[EarlierRun]) {
        for p in &mut self.parts {
            let learnable = matches!(
                p.kind,
                PartKind::Container | PartKind::DockerInit | PartKind::OmsStartup
            );
            if !learnable || p.basis != Basis::Assumed {
                continue;
            }
            if let Some((ms, basis)) = from_earlier_runs(p.kind, target, runs) {
                p.ms = ms;
                p.basis = basis;
            }
        }
    }
}

/// Milliseconds to read `bytes` at `per_sec` bytes a second, rounded up.
fn read_ms(bytes: u64, per_sec: u64) -> u64 {
    let ms = (u128::from(bytes) * 1000).div_ceil(u128::from(per_sec.max(1)));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The estimate from what `init` measured: the dump part from the databases' data size at
/// the probed rate (on one connection; see [`Estimate::dump_jobs`]), the other parts from
/// the named assumptions. `heartbeat` is the heartbeat database's name and its heartbeat
/// table's rows. Every procedure prunes and runs `docker_init.sh` (`steps`).
pub fn estimate(
    databases: Vec<DbMeasure>,
    heartbeat: (&str, u64),
    probe: Option<ReadProbe>,
    dump_jobs: u32,
) -> Estimate {
    let (heartbeat_db, heartbeat_rows) = heartbeat;
    let mut e = Estimate {
        databases,
        heartbeat_db: heartbeat_db.to_string(),
        heartbeat_rows,
        probe,
        dump_jobs,
        parts: Vec::new(),
    };
    let mut parts = vec![Part {
        kind: PartKind::Prune,
        ms: prune_ms(heartbeat_rows),
        basis: Basis::Assumed,
    }];
    if let Some(rate) = e.probe.as_ref().and_then(ReadProbe::bytes_per_sec) {
        parts.push(Part {
            kind: PartKind::Dump,
            ms: read_ms(e.data_bytes(), rate),
            basis: Basis::Measured,
        });
    }
    parts.push(Part {
        kind: PartKind::Container,
        ms: ASSUMED_CONTAINER_MS,
        basis: Basis::Assumed,
    });
    parts.push(Part {
        kind: PartKind::DockerInit,
        ms: ASSUMED_DOCKER_INIT_MS,
        basis: Basis::Assumed,
    });
    parts.push(Part {
        kind: PartKind::OmsStartup,
        ms: ASSUMED_OMS_STARTUP_MS,
        basis: Basis::Assumed,
    });
    e.parts = parts;
    e
}

/// A duration in milliseconds as people read it: `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn show_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => {
            let s = ms.div_ceil(1000);
            format!("{} min {:02} s", s / 60, s % 60)
        }
    }
}

/// What the dump part was computed from, in words.
pub fn dump_basis(e: &Estimate) -> String {
    let size = format!(
        "{} of data (the heartbeat rows the prune deletes left out)",
        crate::units::human_bytes(e.data_bytes())
    );
    match (
        &e.probe,
        e.probe.as_ref().and_then(ReadProbe::bytes_per_sec),
    ) {
        (Some(p), Some(rate)) => format!(
            "dump: {size} at {}/s read from {} ({} rows, {} in {}), one connection of {}",
            crate::units::human_bytes(rate),
            p.table,
            p.rows,
            crate::units::human_bytes(p.bytes),
            show_ms(p.micros / 1000),
            e.dump_jobs
        ),
        _ => format!("dump: {size}; no rows to probe, so no dump time is estimated"),
    }
}

/// The estimate as lines of text (`plan`, `init`): the total, each part with its basis, and
/// what the dump part was computed from.
pub fn lines(e: &Estimate) -> Vec<String> {
    let mut out = vec![format!(
        "Estimated downtime (T1 -> T2) for this node: {}{}",
        show_ms(e.total_ms()),
        if e.any_assumed() {
            " (parts marked `assumed` are this tool's assumptions: no public figure exists)"
        } else {
            ""
        }
    )];
    for p in &e.parts {
        out.push(format!(
            "  {:<28} {:>14}  {}",
            p.kind.title(),
            show_ms(p.ms),
            p.basis.label()
        ));
    }
    out.push(format!("  {}", dump_basis(e)));
    out.push(
        if e.heartbeat_rows >= crate::heartbeat::HEARTBEAT_SWAP_MIN_ROWS {
            format!(
                "  heartbeat prune: ~{} rows moved aside by a table swap in an assumed {} ms \
                 (counted and dropped after T2)",
                e.heartbeat_rows, ASSUMED_SWAP_MS
            )
        } else {
            format!(
                "  heartbeat prune: ~{} rows at an assumed {} rows/s (DELETE batches)",
                e.heartbeat_rows, ASSUMED_PRUNE_ROWS_PER_SEC
            )
        },
    );
    for d in &e.databases {
        out.push(format!(
            "    {}: {} tables, ~{} rows, data {}, indexes {}",
            d.name,
            d.tables,
            d.rows,
            crate::units::human_bytes(d.data_bytes),
            crate::units::human_bytes(d.index_bytes)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str, data: u64) -> DbMeasure {
        DbMeasure {
            name: name.into(),
            tables: 3,
            rows: 100,
            data_bytes: data,
            index_bytes: data / 4,
        }
    }

    fn probe(bytes: u64, micros: u64) -> ReadProbe {
        ReadProbe {
            table: "cm.oms_task".into(),
            bytes,
            rows: 10,
            micros,
        }
    }

    #[test]
    fn the_dump_part_is_the_data_at_the_probed_rate() {
        // 100 MB/s probed; 1 GB of data (indexes not dumped): 10 s.
        let e = estimate(
            vec![
                db("rm", 200_000_000),
                db("cm", 700_000_000),
                db("hb", 100_000_000),
            ],
            ("hb", 0),
            Some(probe(50_000_000, 500_000)),
            3,
        );
        let dump = e.part(PartKind::Dump).unwrap();
        assert_eq!((dump.ms, dump.basis.clone()), (10_000, Basis::Measured));
        assert_eq!(e.data_bytes(), 1_000_000_000);
        assert_eq!(
            e.total_ms(),
            10_000 + ASSUMED_CONTAINER_MS + ASSUMED_DOCKER_INIT_MS + ASSUMED_OMS_STARTUP_MS
        );
        assert_eq!(e.part(PartKind::Prune).unwrap().ms, 0);
        assert!(!e.all_measured());
    }

    #[test]
    fn a_slower_probe_gives_a_longer_dump_rounded_up() {
        let fast = estimate(
            vec![db("rm", 1_000_001)],
            ("hb", 0),
            Some(probe(1_000, 1_000)),
            3,
        );
        let slow = estimate(
            vec![db("rm", 1_000_001)],
            ("hb", 0),
            Some(probe(1_000, 2_000)),
            3,
        );
        assert_eq!(fast.part(PartKind::Dump).unwrap().ms, 1_001);
        assert_eq!(slow.part(PartKind::Dump).unwrap().ms, 2_001);
    }

    #[test]
    fn every_part_not_measured_is_labelled_assumed() {
        let e = estimate(vec![db("rm", 10)], ("hb", 0), Some(probe(10, 10)), 3);
        let kinds: Vec<_> = e.parts.iter().map(|p| (p.kind, p.basis.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (PartKind::Prune, Basis::Assumed),
                (PartKind::Dump, Basis::Measured),
                (PartKind::Container, Basis::Assumed),
                (PartKind::DockerInit, Basis::Assumed),
                (PartKind::OmsStartup, Basis::Assumed),
            ]
        );
        let text = lines(&e).join("\n");
        assert!(text.contains("docker_init.sh"), "{text}");
        // The headline, four parts and the prune's rate.
        assert_eq!(text.matches("assumed").count(), 6, "{text}");
    }

    #[test]
    fn without_a_usable_probe_there_is_no_dump_part() {
        for p in [None, Some(probe(0, 10)), Some(probe(10, 0))] {
            let e = estimate(vec![db("rm", 10)], ("hb", 0), p, 3);
            assert!(e.part(PartKind::Dump).is_none());
            assert!(lines(&e).join("\n").contains("no dump time is estimated"));
        }
    }

    #[test]
    fn huge_figures_do_not_overflow() {
        let p = probe(u64::MAX, 1);
        assert_eq!(p.bytes_per_sec(), None);
        let e = estimate(
            vec![db("rm", u64::MAX)],
            ("hb", 0),
            Some(probe(1, 1_000_000)),
            1,
        );
        assert_eq!(e.part(PartKind::Dump).unwrap().ms, u64::MAX);
    }

    /// The heartbeat rows the prune deletes are not dumped: their share of `cm_hb`'s data
    /// is left out of the dump part, and the prune gets its own (assumed) part.
    #[test]
    fn the_pruned_heartbeat_rows_are_not_dumped_but_pruned() {
        let mut hb = db("hb", 100_000_000);
        hb.rows = 1_000_000;
        let e = estimate(
            vec![db("rm", 50_000_000), db("cm", 50_000_000), hb],
            ("hb", 999_999),
            // 1 MB/s.
            Some(probe(1_000_000, 1_000_000)),
            3,
        );
        // 100 MB plus the heartbeat database's one row left of a million: 100.0001 MB.
        assert_eq!(e.data_bytes(), 100_000_100);
        assert_eq!(e.part(PartKind::Dump).unwrap().ms, 100_001);
        let prune = e.part(PartKind::Prune).unwrap();
        assert_eq!(
            (prune.ms, prune.basis.clone()),
            (ASSUMED_SWAP_MS, Basis::Assumed)
        );
        // Below the swap's threshold the prune deletes in batches, at the slower rate.
        let small = estimate(vec![db("hb", 1000)], ("hb", 40_000), None, 3);
        assert_eq!(
            small.part(PartKind::Prune).unwrap().ms,
            40_000 * 1000 / ASSUMED_PRUNE_ROWS_PER_SEC
        );
        // Statistics that count more heartbeat rows than the database holds leave nothing.
        let mut hb = db("hb", 100);
        hb.rows = 10;
        assert_eq!(
            estimate(vec![hb.clone()], ("hb", 50), None, 3).data_bytes(),
            0
        );
        // Only the heartbeat database's data is left out.
        assert_eq!(estimate(vec![hb], ("other", 50), None, 3).data_bytes(), 100);
    }

    fn earlier(target: (u16, u16, u16), minute: u32, parts: &[(PartKind, u64)]) -> EarlierRun {
        use chrono::TimeZone;
        EarlierRun {
            target: crate::versions::Version::new(target.0, target.1, target.2),
            finished_at: chrono::Utc
                .with_ymd_and_hms(2026, 1, 1, 10, minute, 0)
                .unwrap(),
            parts: parts.to_vec(),
        }
    }

    const V331: crate::versions::Version = crate::versions::Version::new(3, 3, 1);

    fn learned(runs: &[EarlierRun]) -> Vec<(PartKind, u64, String)> {
        let mut e = estimate(vec![db("rm", 10)], ("hb", 0), Some(probe(10, 10)), 3);
        e.learn(V331, runs);
        e.parts
            .iter()
            .map(|p| (p.kind, p.ms, p.basis.label()))
            .collect()
    }

    /// Runs to the same version count first, and only they when there are any.
    #[test]
    fn earlier_runs_to_the_same_version_give_the_median() {
        let runs = [
            earlier((3, 3, 1), 1, &[(PartKind::DockerInit, 100_000)]),
            earlier((3, 3, 1), 2, &[(PartKind::DockerInit, 120_000)]),
            earlier((3, 3, 1), 3, &[(PartKind::DockerInit, 110_000)]),
            // Closer in time, but another version: not used while the same version has runs.
            earlier((3, 3, 2), 4, &[(PartKind::DockerInit, 1_000)]),
        ];
        assert_eq!(
            from_earlier_runs(PartKind::DockerInit, V331, &runs),
            Some((
                110_000,
                Basis::EarlierRuns {
                    runs: 3,
                    version: "3.3.1".into()
                }
            ))
        );
        // An even count: the middle two's mean, rounded up.
        assert_eq!(
            from_earlier_runs(PartKind::DockerInit, V331, &runs[..2]),
            Some((
                110_000,
                Basis::EarlierRuns {
                    runs: 2,
                    version: "3.3.1".into()
                }
            ))
        );
    }

    /// Without a run to the same version: the same release line, then the same major
    /// version, then the assumption; a part is learned only from runs that recorded it.
    #[test]
    fn earlier_runs_fall_back_to_the_line_the_major_then_the_assumption() {
        let line = [
            earlier((3, 3, 0), 1, &[(PartKind::Container, 4_000)]),
            earlier((3, 1, 0), 2, &[(PartKind::Container, 9_000)]),
        ];
        assert_eq!(
            from_earlier_runs(PartKind::Container, V331, &line),
            Some((
                4_000,
                Basis::EarlierRuns {
                    runs: 1,
                    version: "3.3.x".into()
                }
            ))
        );
        let major = [earlier((3, 1, 0), 2, &[(PartKind::Container, 9_000)])];
        assert_eq!(
            from_earlier_runs(PartKind::Container, V331, &major),
            Some((
                9_000,
                Basis::EarlierRuns {
                    runs: 1,
                    version: "3.x".into()
                }
            ))
        );
        let other_major = [earlier((4, 3, 1), 2, &[(PartKind::Container, 9_000)])];
        assert_eq!(
            from_earlier_runs(PartKind::Container, V331, &other_major),
            None
        );
        // Learned where a run recorded the part; the rest stays assumed, and the dump stays
        // measured.
        assert_eq!(
            learned(&major),
            vec![
                (PartKind::Prune, 0, "assumed".into()),
                (PartKind::Dump, 1, "measured".into()),
                (
                    PartKind::Container,
                    9_000,
                    "earlier runs (n=1, to 3.x)".into()
                ),
                (
                    PartKind::DockerInit,
                    ASSUMED_DOCKER_INIT_MS,
                    "assumed".into()
                ),
                (
                    PartKind::OmsStartup,
                    ASSUMED_OMS_STARTUP_MS,
                    "assumed".into()
                ),
            ]
        );
    }

    /// One run far off (a retried docker_init.sh, a loaded host) does not move the figure,
    /// and only the latest EARLIER_RUNS_USED runs count.
    #[test]
    fn an_outlier_or_an_old_run_does_not_move_the_figure() {
        let mut runs: Vec<EarlierRun> = [60_000, 3_600_000, 62_000]
            .iter()
            .enumerate()
            .map(|(i, ms)| earlier((3, 3, 1), 10 + i as u32, &[(PartKind::OmsStartup, *ms)]))
            .collect();
        assert_eq!(
            from_earlier_runs(PartKind::OmsStartup, V331, &runs).map(|f| f.0),
            Some(62_000)
        );
        // Five newer runs at 30 s: the three older ones no longer count.
        for m in 20..25 {
            runs.push(earlier((3, 3, 1), m, &[(PartKind::OmsStartup, 30_000)]));
        }
        assert_eq!(
            from_earlier_runs(PartKind::OmsStartup, V331, &runs),
            Some((
                30_000,
                Basis::EarlierRuns {
                    runs: EARLIER_RUNS_USED as u32,
                    version: "3.3.1".into()
                }
            ))
        );
    }

    /// No earlier run: every figure as before, all labelled assumed.
    #[test]
    fn without_earlier_runs_the_assumptions_stand() {
        for kind in [
            PartKind::Container,
            PartKind::DockerInit,
            PartKind::OmsStartup,
        ] {
            assert_eq!(from_earlier_runs(kind, V331, &[]), None);
        }
        let plain = estimate(vec![db("rm", 10)], ("hb", 0), Some(probe(10, 10)), 3);
        let mut e = plain.clone();
        e.learn(V331, &[]);
        assert_eq!(e, plain);
        // A run that recorded none of the parts (it stopped before the container) teaches
        // nothing either.
        e.learn(V331, &[earlier((3, 3, 1), 1, &[])]);
        assert_eq!(e, plain);
    }

    #[test]
    fn durations_read_as_people_read_them() {
        assert_eq!(show_ms(850), "850 ms");
        assert_eq!(show_ms(12_340), "12.3 s");
        assert_eq!(show_ms(245_000), "4 min 05 s");
    }
}
