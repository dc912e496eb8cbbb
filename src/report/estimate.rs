//! "Estimate against actual" (issue 16): the downtime estimate `init` recorded in the plan
//! (`PlanExt::Estimate`) beside what the ledger recorded for the same parts of the window.
//! A plan without an estimate (recorded by an earlier build) has no such section.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use html_escape::encode_text as esc;
use serde::Serialize;

use super::{Downtime, Report, StepRow};
use crate::estimate::{Basis, Estimate, PartKind, show_ms};
use crate::events::StepKey;

/// The section's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateSection {
    /// The estimate as recorded.
    pub recorded: Estimate,
    /// One row per estimated part, then the whole window.
    pub rows: Vec<EstimateRow>,
}

/// One part of the window: estimated and, once the run got there, actual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateRow {
    /// What it is (`dump`, `container`, `docker_init`, `oms_startup`, `window`).
    pub part: &'static str,
    /// The name shown.
    pub title: &'static str,
    /// Estimated milliseconds.
    pub estimated_ms: u64,
    /// `measured`, `assumed` or `earlier_runs` (the whole window: `assumed` if any part
    /// is, `measured` if every part is, else `earlier_runs`).
    pub basis: &'static str,
    /// The basis in words, as shown: `earlier runs (n=3, to 4.2.x)` names how many earlier
    /// runs on the host the figure is the median of, and to which versions.
    pub basis_text: String,
    /// Milliseconds the ledger shows for it; absent when the run has not done it.
    pub actual_ms: Option<i64>,
}

/// The steps whose time makes up a part (node 0's, upgrade steps only).
fn steps_of(kind: PartKind) -> &'static [StepKey] {
    match kind {
        PartKind::Prune => &[StepKey::PruneHeartbeat],
        PartKind::Dump => &[],
        PartKind::Container => &[StepKey::CreateNewContainer, StepKey::StartNewContainer],
        PartKind::DockerInit => &[StepKey::RunDockerInit],
        PartKind::OmsStartup => &[StepKey::ConfirmHealth, StepKey::CheckOnline],
    }
}

fn node0_upgrade(s: &&StepRow) -> bool {
    !s.rollback && s.node.is_none_or(|n| n == 0)
}

/// What the ledger shows for a part: the dumps from the first dump's intent to the last
/// dump's outcome (they may run side by side), the others their steps' attempts added.
/// Also what a later `init` learns from this run (`cli::init::earlier`).
pub fn actual(kind: PartKind, steps: &[StepRow]) -> Option<i64> {
    let rows = steps.iter().filter(node0_upgrade);
    if kind == PartKind::Dump {
        let dumps: Vec<&StepRow> = rows
            .filter(|s| matches!(s.key.base(), StepKey::Dump { .. }))
            .collect();
        let start: DateTime<Utc> = dumps.iter().map(|s| s.started_at).min()?;
        // Until every dump has an outcome, the dumps have no length yet.
        let ends: Option<Vec<DateTime<Utc>>> = dumps.iter().map(|s| s.ended_at).collect();
        let end = ends?.into_iter().max()?;
        return Some((end - start).num_milliseconds());
    }
    let wanted = steps_of(kind);
    let durations: Vec<i64> = rows
        .filter(|s| wanted.contains(&s.key.base()))
        .filter_map(|s| s.duration_ms)
        .collect();
    (!durations.is_empty()).then(|| durations.iter().sum())
}

fn kind_name(kind: PartKind) -> &'static str {
    match kind {
        PartKind::Prune => "prune",
        PartKind::Dump => "dump",
        PartKind::Container => "container",
        PartKind::DockerInit => "docker_init",
        PartKind::OmsStartup => "oms_startup",
    }
}

/// The section, when the plan recorded an estimate.
pub fn section(
    estimate: Option<&Estimate>,
    steps: &[StepRow],
    downtime: Option<&Downtime>,
) -> Option<EstimateSection> {
    let e = estimate?;
    let mut rows: Vec<EstimateRow> = e
        .parts
        .iter()
        .map(|p| EstimateRow {
            part: kind_name(p.kind),
            title: p.kind.title(),
            estimated_ms: p.ms,
            basis: p.basis.as_str(),
            basis_text: p.basis.label(),
            actual_ms: actual(p.kind, steps),
        })
        .collect();
    let (basis, basis_text) = if e.any_assumed() {
        (Basis::Assumed.as_str(), Basis::Assumed.label())
    } else if e.all_measured() {
        (Basis::Measured.as_str(), Basis::Measured.label())
    } else {
        ("earlier_runs", "measured and earlier runs".to_string())
    };
    rows.push(EstimateRow {
        part: "window",
        title: "T1 -> T2 (the whole window)",
        estimated_ms: e.total_ms(),
        basis,
        basis_text,
        // Only a window that ended counts: an ongoing one is not the run's actual.
        actual_ms: downtime.filter(|d| !d.ongoing).map(|d| d.duration_ms),
    });
    Some(EstimateSection {
        recorded: e.clone(),
        rows,
    })
}

/// Actual against estimated, as a signed difference and a ratio.
fn difference(r: &EstimateRow) -> String {
    match r.actual_ms {
        None => "not yet".into(),
        Some(a) => {
            let est = i64::try_from(r.estimated_ms).unwrap_or(i64::MAX);
            let d = a.saturating_sub(est);
            let sign = if d < 0 { "-" } else { "+" };
            let ratio = if est > 0 {
                format!(" ({:.2}x)", a as f64 / est as f64)
            } else {
                String::new()
            };
            format!("{sign}{}{ratio}", show_ms(d.unsigned_abs()))
        }
    }
}

fn shown_actual(r: &EstimateRow) -> String {
    r.actual_ms
        .map(|a| show_ms(a.max(0).unsigned_abs()))
        .unwrap_or_else(|| "—".into())
}

/// The words under the table: what the estimate was computed from.
fn basis_note(s: &EstimateSection) -> String {
    crate::estimate::dump_basis(&s.recorded)
}

/// The Markdown section.
pub fn markdown(o: &mut String, r: &Report) {
    let Some(s) = &r.estimate else { return };
    let _ = writeln!(o, "## Estimate against actual\n");
    let _ = writeln!(
        o,
        "| Part | Estimated | Basis | Actual | Actual - estimated |\n|---|---:|---|---:|---:|"
    );
    for row in &s.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            row.title,
            show_ms(row.estimated_ms),
            super::text::cell(&row.basis_text),
            shown_actual(row),
            difference(row)
        );
    }
    let _ = writeln!(
        o,
        "\nEstimated by `init` before anything changed; `assumed` parts are this tool's assumptions (no public figure exists), `earlier runs` parts the median of what the latest completed upgrades recorded on this host took. {}.\n",
        super::text::cell(&basis_note(s))
    );
}

/// The HTML section.
pub fn html(o: &mut String, r: &Report) {
    let Some(s) = &r.estimate else { return };
    o.push_str("<section id=\"estimate\">\n<h2>Estimate against actual</h2>\n<table>\n<thead><tr><th>Part</th><th>Estimated</th><th>Basis</th><th>Actual</th><th>Actual − estimated</th></tr></thead>\n<tbody>\n");
    for row in &s.rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(row.title),
            esc(&show_ms(row.estimated_ms)),
            esc(&row.basis_text),
            esc(&shown_actual(row)),
            esc(&difference(row))
        );
    }
    let _ = writeln!(
        o,
        "</tbody>\n</table>\n<p>Estimated by <code>init</code> before anything changed; <em>assumed</em> parts are this tool's assumptions (no public figure exists), <em>earlier runs</em> parts the median of what the latest completed upgrades recorded on this host took. {}.</p>\n</section>",
        esc(&basis_note(s))
    );
}
