//! The fleet document in the per-run report's style (its CSS, its time and duration
//! spellings, its table-cell escaping): a terminal table for `fleet list`, and Markdown,
//! self-contained HTML and JSON for `fleet report`. Pure: the same check renders the same
//! document (no clock is read; the document names the witness and every head hash).

use std::collections::BTreeMap;
use std::fmt::Write;

use html_escape::encode_text as esc;
use serde_json::{Value, json};

use super::{FleetCheck, LedgerCheck};
use crate::report::html::CSS;
use crate::report::markdown::{cell, code};
use crate::report::text::{duration_ms, short, time_opt};

/// The `format` field of the fleet report's JSON form.
pub const FLEET_REPORT_FORMAT: &str = "oms-upgrade-fleet-report";
/// Its version.
pub const FLEET_REPORT_VERSION: u32 = 1;

/// The fleet as JSON (`fleet report --format json`, `fleet list --json`, `fleet verify
/// --json`).
pub fn to_json(fleet: &FleetCheck, witness: &str) -> Value {
    json!({
        "format": FLEET_REPORT_FORMAT,
        "version": FLEET_REPORT_VERSION,
        "rendered_by": env!("CARGO_PKG_VERSION"),
        "witness": witness,
        "ok": fleet.ok(),
        "ledger_count": fleet.ledgers.len(),
        "failed": fleet.failed(),
        "ledgers": fleet.ledgers,
        "missing": fleet.missing,
    })
}

/// The cells of one ledger's row, shared by every form: node, ledger, versions, phase,
/// T1, T2, T3, downtime, run by, status.
fn row(l: &LedgerCheck) -> [String; 10] {
    let s = l.summary.as_ref();
    let versions = match s.and_then(|s| s.source_version.as_ref().zip(s.target_version.as_ref())) {
        Some((a, b)) => format!("{a} → {b}"),
        None => "-".into(),
    };
    [
        l.node.clone(),
        short(&l.ledger_id.to_string()).to_string(),
        versions,
        // A ledger that fails is summarised from the records before the problem only:
        // its phase says so, so nobody reads it as where the run ended.
        match (s, &l.problem) {
            (None, _) => "-".into(),
            (Some(s), None) => s.phase.to_string(),
            (Some(s), Some(_)) => format!("{} (records 1-{} only)", s.phase, l.verified),
        },
        time_opt(s.and_then(|s| s.t1)),
        time_opt(s.and_then(|s| s.t2)),
        time_opt(s.and_then(|s| s.t3)),
        duration_ms(s.and_then(|s| s.downtime.as_ref()).map(|d| d.duration_ms)),
        s.and_then(|s| s.planned_by.clone())
            .or_else(|| s.map(|s| s.operators.join(", ")))
            .unwrap_or_else(|| "-".into()),
        l.status(),
    ]
}

const HEADERS: [&str; 10] = [
    "Node", "Ledger", "Versions", "Phase", "T1", "T2", "T3", "Downtime", "Run by", "Status",
];

/// One sentence: how many ledgers, how many verified.
pub fn headline(fleet: &FleetCheck) -> String {
    let n = fleet.ledgers.len();
    if fleet.ok() {
        format!("OMS upgrade fleet: {n} ledger(s), all verified")
    } else {
        format!(
            "OMS upgrade fleet: {n} ledger(s), {} NOT verified",
            fleet.failed()
        )
    }
}

/// Every reason a ledger failed, one line each.
fn findings(fleet: &FleetCheck) -> Vec<String> {
    let mut out = Vec::new();
    for l in &fleet.ledgers {
        if let Some(p) = &l.problem {
            out.push(format!(
                "ledger {} (node {}): {} at seq {}: {}",
                l.ledger_id, l.node, p.kind, p.seq, p.detail
            ));
        }
        if let Some(s) = l.state.as_ref().filter(|s| !s.ok) {
            out.push(format!(
                "ledger {} (node {}): state file: {}: {}",
                l.ledger_id, l.node, s.kind, s.detail
            ));
        }
    }
    for m in &fleet.missing {
        out.push(format!(
            "ledger {}: state file: {}: {}",
            m.ledger_id, m.kind, m.detail
        ));
    }
    out
}

/// How many ledgers end in each phase.
fn phases(fleet: &FleetCheck) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in &fleet.ledgers {
        let p = l
            .summary
            .as_ref()
            .map_or("unreadable".to_string(), |s| s.phase.to_string());
        *m.entry(p).or_insert(0) += 1;
    }
    m
}

/// A plain-text table for the terminal (`fleet list`).
pub fn to_table(fleet: &FleetCheck) -> String {
    let rows: Vec<[String; 10]> = fleet.ledgers.iter().map(row).collect();
    let mut width = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut o = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (c, w) in cells.iter().zip(width) {
            let _ = write!(l, "{c:<w$}  ");
        }
        o.push_str(l.trim_end());
        o.push('\n');
    };
    line(&HEADERS.map(String::from));
    for r in &rows {
        line(r);
    }
    let _ = writeln!(o, "\n{}", headline(fleet));
    for f in findings(fleet) {
        let _ = writeln!(o, "  {f}");
    }
    o
}

/// The fleet report as Markdown, for a change board's ticket.
pub fn to_markdown(fleet: &FleetCheck, witness: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", headline(fleet));
    let _ = writeln!(
        o,
        "Every ledger on the witness {}, verified from the witness rows alone (hash chain, \
         hash column, forks{}).\n",
        code(witness),
        if fleet.ledgers.iter().any(|l| l.state.is_some()) {
            ", and the state file's recorded heads"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "| Phase | Ledgers |\n|---|---:|");
    for (p, n) in phases(fleet) {
        let _ = writeln!(o, "| {} | {n} |", cell(&p));
    }
    let _ = writeln!(o, "\n## Ledgers\n");
    let _ = writeln!(o, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(HEADERS.len()));
    for l in &fleet.ledgers {
        let cells: Vec<String> = row(l).iter().map(|c| cell(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(o, "\n## Heads\n");
    let _ = writeln!(
        o,
        "| Ledger | Records | Head seq | Head hash |\n|---|---:|---:|---|"
    );
    for l in &fleet.ledgers {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            code(&l.ledger_id.to_string()),
            l.verified,
            l.head_seq.map_or("-".into(), |s| s.to_string()),
            l.head_hash.as_deref().map_or("-".into(), code)
        );
    }
    let f = findings(fleet);
    if !f.is_empty() {
        let _ = writeln!(o, "\n## Findings\n");
        for x in f {
            let _ = writeln!(o, "- {}", cell(&x));
        }
    }
    o
}

/// The fleet report as one self-contained HTML page (the per-run report's CSS, no script).
pub fn to_html(fleet: &FleetCheck, witness: &str) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let title = headline(fleet);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    let class = if fleet.ok() { "ok" } else { "bad" };
    let _ = writeln!(
        o,
        "<header class=\"banner {class}\"><h1>{}</h1><p>Witness <code>{}</code>; every ledger \
         verified from the witness rows alone.</p><p class=\"verdict\" id=\"verdict\">{}</p></header>",
        esc(&title),
        esc(witness),
        if fleet.ok() {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        }
    );
    o.push_str("<section class=\"cards\">");
    for (p, n) in phases(fleet) {
        let _ = write!(
            o,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{n}</div></div>",
            esc(&p)
        );
    }
    o.push_str("</section>\n<section><h2>Ledgers</h2><table><thead><tr>");
    for h in HEADERS {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("</tr></thead><tbody>\n");
    for l in &fleet.ledgers {
        let _ = write!(o, "<tr id=\"ledger-{}\">", l.ledger_id);
        for (i, c) in row(l).iter().enumerate() {
            let class = match (i, l.ok()) {
                (9, true) => " class=\"good\"",
                (9, false) => " class=\"bad\"",
                _ => "",
            };
            let _ = write!(o, "<td{class}>{}</td>", esc(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></section>\n<section><h2>Heads</h2><table><thead><tr>\
                <th>Ledger</th><th>Records</th><th>Head seq</th><th>Head hash</th></tr></thead><tbody>\n");
    for l in &fleet.ledgers {
        let _ = writeln!(
            o,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td><code>{}</code></td></tr>",
            l.ledger_id,
            l.verified,
            l.head_seq.map_or("-".into(), |s| s.to_string()),
            esc(l.head_hash.as_deref().unwrap_or("-"))
        );
    }
    o.push_str("</tbody></table></section>\n");
    let f = findings(fleet);
    if !f.is_empty() {
        o.push_str("<section><h2>Findings</h2><ul>");
        for x in f {
            let _ = write!(o, "<li class=\"bad\">{}</li>", esc(&x));
        }
        o.push_str("</ul></section>\n");
    }
    let _ = write!(
        o,
        "<footer>oms-upgrade {}</footer>\n</main>\n</body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION"))
    );
    o
}
