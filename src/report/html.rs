//! The report as one self-contained HTML page: inline CSS, an inline SVG timeline of the
//! steps with T1, T2 and T3 marked and the downtime shaded, no script and no external
//! asset, so it can be mailed, archived or attached to a ticket and still render the same.
//! Every value is escaped; key figures carry stable `id`s (`t1`, `t2`, `t3`, `downtime`,
//! `refetch`, `head-hash`, `verdict`) for tools that read the page.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as esc};

use super::lanes::Markup;
use super::markdown::{headline, lane_title, pretty_json, refetch_line, verdict};
use super::text::{self, clock, duration_ms, short, size, time, time_opt};
use super::{Report, StepResult, StepRow};

pub(crate) const CSS: &str = r#"
:root { --ok:#1b5e20; --bad:#b71c1c; --warn:#e65100; --muted:#616161; --line:#d0d4d9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
       color:#1c1f23; background:#f4f5f7; margin:0; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 40px; }
header.banner { border-radius: 8px; padding: 16px 20px; color: #fff; margin-bottom: 16px; }
header.banner.ok { background: var(--ok); }
header.banner.bad { background: var(--bad); }
header.banner.neutral { background: #37474f; }
header.banner h1 { margin: 0 0 6px; font-size: 22px; }
header.banner p { margin: 4px 0; }
header.banner .verdict { font-weight: 600; }
header.banner code { background: rgba(255,255,255,.15); color:#fff; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px;
          margin: 14px 0; }
h2 { font-size: 17px; margin: 2px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 10px;
         background: none; border: none; padding: 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 18px; font-weight: 600; margin-top: 2px; word-break: break-word; }
.card .s { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid #e6e8eb; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f0f2f4; font-weight: 600; font-size: 13px; }
td.key code, td.who { white-space: nowrap; word-break: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px;
       background:#f0f2f4; border-radius:3px; padding: 0 3px; word-break: break-all; }
pre { background:#f0f2f4; border-radius:6px; padding:8px 10px; overflow-x:auto; font-size:12.5px; margin: 4px 0; }
.res-done { color: var(--ok); font-weight: 600; }
.res-failed, .res-reconciled_failed { color: var(--bad); font-weight: 600; }
.res-in_doubt, .res-reconciled_undecided { color: var(--warn); font-weight: 600; }
.res-reconciled_done, .res-reconciled_not_done { color: #0d47a1; font-weight: 600; }
.mark { display:inline-block; background:#263238; color:#fff; border-radius:3px; padding:0 5px;
        font-size:11px; font-weight:700; }
.warn { border-left: 4px solid var(--warn); background: #fff3e0; padding: 8px 12px; margin: 8px 0; }
.bad { color: var(--bad); font-weight: 600; }
.good { color: var(--ok); font-weight: 600; }
.two { display:grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.muted { color: var(--muted); }
svg { display:block; width:100%; height:auto; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 18px; }
@media print { body { background:#fff; } section { break-inside: avoid; } }
"#;

/// Green only for a verified, completed upgrade; red when the record is not verified or
/// the run failed; neutral for the rest (rolled back, in progress, not planned).
fn banner_class(r: &Report) -> &'static str {
    use crate::replay::Phase;
    match (r.verification.ok, r.outcome.phase) {
        (false, _) | (_, Phase::UpgradeFailed | Phase::RollbackFailed) => "bad",
        (true, Phase::Completed) => "ok",
        _ => "neutral",
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn mono(s: &str) -> String {
    format!("<code>{}</code>", esc(s))
}

/// Renders the report as a self-contained HTML page.
pub fn to_html(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let title = headline(r);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"oms-upgrade {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        attr(&r.rendered_by),
        esc(&title)
    );
    let _ = writeln!(
        o,
        "<header class=\"banner {}\">\n<h1>{}</h1>\n<p id=\"summary\">{}</p>\n<p class=\"verdict\" id=\"verdict\">{}</p>",
        banner_class(r),
        esc(&title),
        esc(&r.outcome.summary),
        esc(&verdict(r))
    );
    if let Some(l) = &r.live {
        let _ = writeln!(
            o,
            "<p class=\"verdict\" id=\"live\">{}</p>",
            esc(&l.banner())
        );
    }
    if let Some(h) = &r.verification.facts.head_hash {
        let _ = writeln!(
            o,
            "<p>Ledger {} · head hash <code id=\"head-hash\">{}</code></p>",
            mono(&r.verification.facts.ledger_id.to_string()),
            esc(h)
        );
    }
    o.push_str("</header>\n");
    cards(&mut o, r);
    timeline(&mut o, r);
    window(&mut o, r);
    super::estimate::html(&mut o, r);
    nodes(&mut o, r);
    run(&mut o, r);
    ha(&mut o, r);
    dumps(&mut o, r);
    containers(&mut o, r);
    problems(&mut o, r);
    remarks(&mut o, r);
    verification(&mut o, r);
    let _ = writeln!(
        o,
        "<footer>Rendered by oms-upgrade {} from the ledger alone · report format {} v{}</footer>\n</main>\n</body>\n</html>",
        esc(&r.rendered_by),
        esc(r.format),
        r.version
    );
    o
}

fn card(o: &mut String, id: &str, k: &str, v: &str, s: &str) {
    let _ = writeln!(
        o,
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" id=\"{}\">{}</div><div class=\"s\">{}</div></div>",
        esc(k),
        attr(id),
        esc(v),
        esc(s)
    );
}

fn cards(o: &mut String, r: &Report) {
    o.push_str("<section class=\"cards\">\n");
    card(o, "phase", "Outcome", &r.outcome.phase.to_string(), "");
    for (id, m) in [
        ("t1", &r.times.t1),
        ("t2", &r.times.t2),
        ("t3", &r.times.t3),
    ] {
        let name = id.to_uppercase();
        let what = match id {
            "t1" => "old container stopped",
            "t2" => "HA re-enabled",
            _ => "new container stopped",
        };
        match m {
            // Which instant it is: for a stop, the request, not when `docker stop` returned.
            Some(m) => card(
                o,
                id,
                &name,
                &time(m.at),
                &format!("{what}: when {}", m.instant),
            ),
            None => card(o, id, &name, "-", what),
        }
    }
    match &r.times.downtime {
        Some(d) => {
            let sub = if d.ongoing {
                format!(
                    "ongoing at the last record; {} min rounded up",
                    d.minutes_rounded_up
                )
            } else {
                format!(
                    "{} min rounded up; ended: {}",
                    d.minutes_rounded_up, d.ended_by
                )
            };
            card(o, "downtime", "Downtime", &d.text, &sub)
        }
        None => card(
            o,
            "downtime",
            "Downtime",
            "none",
            "the old container was not stopped",
        ),
    }
    match &r.ha.refetch {
        Some(d) => {
            let v = match (d.perceive_checkpoint, d.interval_minutes) {
                (None, Some(i)) => format!("{i} min"),
                _ => "perceive checkpoint".into(),
            };
            card(
                o,
                "refetch",
                "Refetch interval",
                &v,
                &format!(
                    "refetchStoreIntervalMin: downtime {} + margin {} min",
                    d.downtime_minutes, d.margin_minutes
                ),
            )
        }
        None => card(
            o,
            "refetch",
            "Refetch interval",
            "-",
            "no refetch decision recorded",
        ),
    }
    o.push_str("</section>\n");
}

/// Geometry of the SVG timeline.
struct Axis {
    start: DateTime<Utc>,
    span_ms: f64,
    left: f64,
    width: f64,
}

impl Axis {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let ms = (t - self.start).num_milliseconds() as f64;
        self.left + (ms / self.span_ms).clamp(0.0, 1.0) * self.width
    }
}

fn bar_color(s: &StepRow) -> &'static str {
    match s.result {
        StepResult::Done if s.rollback => "#6a1b9a",
        StepResult::Done => "#2e7d32",
        StepResult::Failed | StepResult::ReconciledFailed => "#c62828",
        StepResult::ReconciledDone => "#1565c0",
        StepResult::ReconciledNotDone => "#9e9e9e",
        StepResult::InDoubt | StepResult::ReconciledUndecided => "#f9a825",
    }
}

/// The inline SVG: one lane per attempt, bars from intent to outcome, the downtime shaded,
/// vertical lines at T1, T2 and T3, a time axis and a legend.
fn svg_timeline(r: &Report) -> String {
    const W: f64 = 1180.0;
    const LEFT: f64 = 230.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 46.0;
    const ROW: f64 = 22.0;
    let steps = &r.steps;
    let mut first = steps.iter().map(|s| s.started_at).min();
    let mut last = steps
        .iter()
        .map(|s| s.ended_at.unwrap_or(s.started_at))
        .max();
    if let Some(d) = &r.times.downtime {
        first = first.map(|f| f.min(d.start)).or(Some(d.start));
        last = last.map(|l| l.max(d.measured_to)).or(Some(d.measured_to));
    }
    let (Some(start), Some(end)) = (first, last) else {
        return String::new();
    };
    let span_ms = ((end - start).num_milliseconds() as f64).max(1000.0);
    let axis = Axis {
        start,
        span_ms,
        left: LEFT,
        width: W - LEFT - RIGHT,
    };
    // Rows: one per attempt for a single node; for a deployment one lane per node beside
    // the deployment-wide one, each attempt a bar in its node's lane (issue 15).
    let (labels, row_of): (Vec<(String, bool)>, Vec<usize>) = if r.nodes.is_empty() {
        let labels = steps
            .iter()
            .map(|step| {
                let label = if step.attempt > 1 {
                    format!("{} (try {})", step.key, step.attempt)
                } else {
                    step.key.to_string()
                };
                (label, step.rollback)
            })
            .collect();
        (labels, (0..steps.len()).collect())
    } else {
        let mut labels = vec![("deployment-wide".to_string(), false)];
        labels.extend(r.nodes.iter().map(|n| {
            (
                format!("node {} {} ({})", n.node, n.label, n.host_ip),
                false,
            )
        }));
        let row_of = steps
            .iter()
            .map(|step| {
                step.node
                    .and_then(|n| r.nodes.iter().position(|l| l.node == n))
                    .map_or(0, |i| i + 1)
            })
            .collect();
        (labels, row_of)
    };
    let rows_h = labels.len() as f64 * ROW;
    let axis_y = TOP + rows_h + 6.0;
    let h = axis_y + 58.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"Timeline of the steps\" font-family=\"system-ui, sans-serif\" font-size=\"12\">"
    );
    // Lanes.
    for (i, (label, rollback)) in labels.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                "<rect x=\"0\" y=\"{y}\" width=\"{W}\" height=\"{ROW}\" fill=\"#f5f6f8\"/>"
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            y + 15.0,
            if *rollback { "#4a148c" } else { "#263238" },
            esc(label)
        );
    }
    // Downtime band, under the bars.
    if let Some(d) = &r.times.downtime {
        let x1 = axis.x(d.start);
        let x2 = axis.x(d.measured_to).max(x1 + 2.0);
        let _ = writeln!(
            s,
            "<rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e53935\" fill-opacity=\"0.10\" stroke=\"#e53935\" stroke-opacity=\"0.35\"><title>Downtime {}{}</title></rect>",
            TOP - 4.0,
            x2 - x1,
            rows_h + 8.0,
            esc(&d.text),
            if d.ongoing {
                " (ongoing at the last record)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#b71c1c\" text-anchor=\"middle\" font-weight=\"600\">downtime {}</text>",
            (x1 + x2) / 2.0,
            axis_y + 44.0,
            esc(&d.text)
        );
    }
    // Bars.
    for (step, row) in steps.iter().zip(&row_of) {
        let y = TOP + *row as f64 * ROW + 4.0;
        let x1 = axis.x(step.started_at);
        let x2 = match step.ended_at {
            Some(e) => axis.x(e),
            None => axis.left + axis.width,
        };
        let w = (x2 - x1).max(4.0);
        let dash = if step.result == StepResult::InDoubt {
            " stroke=\"#e65100\" stroke-dasharray=\"4 2\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"14\" rx=\"2\" fill=\"{}\"{dash}><title>{}</title></rect>",
            bar_color(step),
            esc(&format!(
                "{} — {} — {} to {} ({}): {}",
                step.key,
                step.result.label(),
                clock(step.started_at),
                step.ended_at.map(clock).unwrap_or_else(|| "?".into()),
                duration_ms(step.duration_ms),
                step.detail
            ))
        );
    }
    // T marks, labels staggered so close marks stay readable.
    let marks = [&r.times.t1, &r.times.t2, &r.times.t3];
    for (i, m) in marks.iter().filter_map(|m| m.as_ref()).enumerate() {
        let x = axis.x(m.at);
        let ly = if i % 2 == 0 { 14.0 } else { 30.0 };
        let anchor = if x > W - 140.0 { "end" } else { "start" };
        let tx = if anchor == "end" { x - 4.0 } else { x + 4.0 };
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#263238\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n\
             <text x=\"{tx:.1}\" y=\"{ly}\" text-anchor=\"{anchor}\" font-weight=\"700\" fill=\"#263238\">{} {}</text>\n",
            ly + 4.0,
            axis_y,
            esc(m.name),
            esc(&clock(m.at))
        );
    }
    // Axis with ticks.
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"#90a4ae\"/>",
        W - RIGHT
    );
    let multi_day = (end - start).num_hours() >= 24;
    for k in 0..=6 {
        let t = start + chrono::Duration::milliseconds((span_ms * k as f64 / 6.0) as i64);
        let x = axis.x(t);
        let label = if multi_day {
            t.format("%m-%d %H:%M").to_string()
        } else {
            clock(t)
        };
        let anchor = match k {
            0 => "start",
            6 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{axis_y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#90a4ae\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#546e7a\">{}</text>\n",
            axis_y + 5.0,
            axis_y + 18.0,
            esc(&label)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"8\" y=\"{:.1}\" fill=\"#546e7a\">UTC, {}</text>",
        axis_y + 18.0,
        start.format("%Y-%m-%d")
    );
    // Legend.
    let legend = [
        ("#2e7d32", "done"),
        ("#6a1b9a", "rollback done"),
        ("#c62828", "failed"),
        ("#1565c0", "reconciled"),
        ("#f9a825", "in doubt"),
    ];
    let mut lx = 8.0;
    for (color, name) in legend {
        let _ = writeln!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#37474f\">{name}</text>",
            axis_y + 35.0,
            lx + 16.0,
            axis_y + 44.0
        );
        lx += 24.0 + 7.0 * name.len() as f64;
    }
    s.push_str("</svg>\n");
    s
}

fn timeline(o: &mut String, r: &Report) {
    o.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    if r.steps.is_empty() {
        o.push_str("<p>No step was run.</p>\n</section>\n");
        return;
    }
    o.push_str(&svg_timeline(r));
    if r.nodes.is_empty() {
        step_table(o, r.steps.iter());
    } else {
        // A deployment: one table per lane (issue 15).
        o.push_str("<h3 id=\"lane-shared\">Deployment-wide</h3>\n");
        step_table(o, r.steps.iter().filter(|s| s.node.is_none()));
        for n in &r.nodes {
            let _ = writeln!(
                o,
                "<h3 id=\"lane-node{}\">{}</h3>",
                n.node,
                esc(&lane_title(n))
            );
            step_table(o, r.steps.iter().filter(|s| s.node == Some(n.node)));
        }
    }
    o.push_str("<p class=\"muted\">Times are UTC. A duration is the outcome record's time minus the intent record's time.</p>\n</section>\n");
}

/// The downtime window's breakdown (issue 16), in its own section.
fn window(o: &mut String, r: &Report) {
    let Some(w) = &r.window else {
        return;
    };
    o.push_str("<section id=\"window\">\n<h2>Downtime window</h2>\n<table>\n<thead><tr><th>Step</th><th>Try</th><th>Gap before</th><th>In window</th><th>Share</th><th>Part</th></tr></thead>\n<tbody>\n");
    for [key, attempt, gap, time, share, part] in super::window::cells(w) {
        let _ = writeln!(
            o,
            "<tr class=\"share-{}\"><td class=\"key\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            attr(&share),
            mono(&key),
            esc(&attempt),
            esc(&gap),
            esc(&time),
            esc(&share),
            esc(&part)
        );
    }
    let _ = writeln!(
        o,
        "</tbody>\n</table>\n<p class=\"muted\">{}</p>\n</section>",
        esc(&super::window::summary(w))
    );
}

fn step_table<'a>(o: &mut String, steps: impl Iterator<Item = &'a StepRow>) {
    o.push_str(
        "<table>\n<thead><tr><th>Step</th><th>Try</th><th>Started</th><th>Ended</th><th>Duration</th><th>Result</th><th>Mark</th><th>Detail</th><th>By</th></tr></thead>\n<tbody>\n",
    );
    for s in steps {
        let marks: String = s
            .marks
            .iter()
            .map(|m| format!("<span class=\"mark\">{}</span> ", esc(m)))
            .collect();
        let result_class = serde_json::to_value(s.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td class=\"key\">{}<br><span class=\"muted\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"res-{}\">{}</td><td>{}</td><td>{}</td><td class=\"who\">{}@{}</td></tr>",
            mono(&s.key.to_string()),
            esc(&s.title),
            s.attempt,
            esc(&clock(s.started_at)),
            esc(&s.ended_at.map(clock).unwrap_or_else(|| "-".into())),
            esc(&duration_ms(s.duration_ms)),
            attr(&result_class),
            esc(s.result.label()),
            marks,
            esc(&s.detail),
            esc(&s.operator),
            esc(&s.host)
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

/// A deployment's nodes, one row each (issue 15): where, which containers, health, init.
fn nodes(o: &mut String, r: &Report) {
    if r.nodes.is_empty() {
        return;
    }
    o.push_str("<section id=\"nodes\">\n<h2>Nodes</h2>\n<table>\n<thead><tr><th>Node</th><th>Region</th><th>Host IP</th><th>Endpoint</th><th>Old container</th><th>New container</th><th>Stopped</th><th>Health</th><th>docker_init.sh</th></tr></thead>\n<tbody>\n");
    let markup = Markup {
        code: &|s| mono(s),
        plain: &|s| esc(s).to_string(),
        health: &|ok| {
            if ok {
                "<span class=\"good\">healthy</span>"
            } else {
                "<span class=\"bad\">not healthy</span>"
            }
            .to_string()
        },
        t1: "<span class=\"mark\">T1</span> first of any node",
    };
    for n in &r.nodes {
        let _ = writeln!(
            o,
            "<tr id=\"node{}\"><td>{}</td></tr>",
            n.node,
            n.cells(&markup).join("</td><td>")
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

fn kv_table(o: &mut String, rows: &[(&str, String)]) {
    o.push_str("<table>\n<tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(
            o,
            "<tr><th style=\"width:220px\">{}</th><td>{v}</td></tr>",
            esc(k)
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

fn run(o: &mut String, r: &Report) {
    o.push_str("<section id=\"run\">\n<h2>Run</h2>\n");
    let mut rows: Vec<(&str, String)> = vec![
        (
            "Run id",
            r.run
                .run_id
                .map(|u| mono(&u.to_string()))
                .unwrap_or_else(|| "-".into()),
        ),
        ("Ledger id", mono(&r.run.ledger_id.to_string())),
        ("Operators", esc(&r.run.operators.join(", ")).to_string()),
        ("Hosts", esc(&r.run.hosts.join(", ")).to_string()),
    ];
    if let Some(at) = r.run.planned_at {
        rows.push((
            "Planned",
            esc(&format!(
                "{} by {} on {}",
                time(at),
                r.run.planned_by.as_deref().unwrap_or("?"),
                r.run.planned_on.as_deref().unwrap_or("?")
            ))
            .to_string(),
        ));
    }
    rows.push((
        "Records",
        esc(&format!(
            "{} ({} to {})",
            r.run.records,
            time_opt(r.run.first_record_at),
            time_opt(r.run.last_record_at)
        ))
        .to_string(),
    ));
    if let Some(p) = &r.plan {
        rows.extend([
            (
                "Source",
                format!(
                    "{} · image {} · {}",
                    esc(&p.source_version),
                    mono(&p.source_image),
                    mono(&p.source_image_id)
                ),
            ),
            (
                "Target",
                format!(
                    "{} · image {}{}",
                    esc(&p.target_version),
                    mono(&p.target_image),
                    p.target_image_id
                        .as_deref()
                        .map(|i| format!(" · {}", mono(i)))
                        .unwrap_or_default()
                ),
            ),
            ("Procedure", esc(&p.procedure).to_string()),
            ("Tool version", esc(&p.tool_version).to_string()),
            ("Plan digest", mono(&p.plan_digest)),
            (
                "Metadata DB",
                format!(
                    "{} · {} {} {}",
                    mono(&p.metadb),
                    mono(&p.db_rm),
                    mono(&p.db_cm),
                    mono(&p.db_cm_hb)
                ),
            ),
            ("Dump folder", mono(&p.dump_dir)),
            ("OMS_HOST_IP", mono(&p.host_ip)),
            ("Health URL", mono(&p.health_url)),
            ("Privileged", yes(p.privileged).to_string()),
        ]);
    }
    kv_table(o, &rows);
    o.push_str("</section>\n");
}

fn ha(o: &mut String, r: &Report) {
    let h = &r.ha;
    o.push_str("<section id=\"ha\">\n<h2>HA (<code>ha.config</code>)</h2>\n");
    if let (Some(m), Some(a)) = (h.mode, h.after_policy) {
        let _ = writeln!(
            o,
            "<p>Changed in <b>{}</b> mode; <code>enable</code> afterwards: {}.</p>",
            text::mode(m),
            match a {
                crate::events::HaAfter::Enable => "true",
                crate::events::HaAfter::KeepPrevious => "as before the run",
            }
        );
    }
    o.push_str("<div class=\"two\">\n<div><h3>Before the run</h3>\n");
    match &h.before_json {
        Some(b) => {
            let _ = writeln!(o, "<pre id=\"ha-before\">{}</pre>", esc(&pretty_json(b)));
        }
        None => o.push_str("<p class=\"muted\">Not read (no HA step ran).</p>\n"),
    }
    o.push_str("</div>\n<div><h3>After (as last written)</h3>\n");
    match &h.after_json {
        Some(a) => {
            let _ = writeln!(o, "<pre id=\"ha-after\">{}</pre>", esc(&pretty_json(a)));
        }
        None => o.push_str("<p class=\"muted\">HA was not switched back on.</p>\n"),
    }
    o.push_str("</div>\n</div>\n");
    if !h.changed_keys.is_empty() {
        o.push_str("<table>\n<thead><tr><th>Changed key</th><th>Before</th><th>After</th></tr></thead>\n<tbody>\n");
        for k in &h.changed_keys {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                mono(&k.key),
                k.before
                    .as_deref()
                    .map(mono)
                    .unwrap_or_else(|| "absent".into()),
                k.after
                    .as_deref()
                    .map(mono)
                    .unwrap_or_else(|| "absent".into())
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !h.changes.is_empty() {
        o.push_str("<table>\n<thead><tr><th>Step</th><th>At</th><th>Action</th><th>Mode</th><th>Attested by</th></tr></thead>\n<tbody>\n");
        for c in &h.changes {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                mono(&c.step.to_string()),
                esc(&time(c.at)),
                esc(c.action),
                if c.written_json.is_none() {
                    " (already off)"
                } else {
                    ""
                },
                text::mode(c.mode),
                esc(c.attestation.as_ref().map_or("-", |a| a.by.as_str()))
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    for c in h.changes.iter().filter(|c| c.refetch.is_some()) {
        let d = c.refetch.as_ref().expect("filtered");
        let _ = writeln!(
            o,
            "<h3>Refetch ({})</h3>\n<p><b>{}</b></p>\n<p class=\"muted\">{}</p>",
            esc(&c.step.to_string()),
            esc(&refetch_line(d)),
            esc(&d.reasoning)
        );
    }
    for w in &h.warnings {
        let _ = writeln!(o, "<div class=\"warn\"><b>Warning:</b> {}</div>", esc(w));
    }
    o.push_str("</section>\n");
}

fn dumps(o: &mut String, r: &Report) {
    o.push_str("<section id=\"dumps\">\n<h2>Dumps</h2>\n");
    if r.dumps.is_empty() {
        o.push_str("<p>No dump was recorded.</p>\n</section>\n");
        return;
    }
    o.push_str("<table>\n<thead><tr><th>DB</th><th>File</th><th>Size</th><th>BLAKE3</th><th>Rows</th><th>File now</th></tr></thead>\n<tbody>\n");
    for d in &r.dumps {
        let now = match &d.file_check {
            Some(c) if c.present && c.matches => "<span class=\"good\">present, matches</span>",
            Some(c) if c.present => "<span class=\"bad\">DIFFERS</span>",
            Some(_) => "<span class=\"bad\">MISSING</span>",
            None => "not checked",
        };
        let _ = writeln!(
            o,
            "<tr><td>{}<br>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{now}</td></tr>",
            esc(d.db.label()),
            mono(&d.database),
            mono(&d.file),
            esc(&size(d.size)),
            mono(&d.blake3),
            d.total_rows
        );
    }
    o.push_str("</tbody>\n</table>\n");
    for d in &r.dumps {
        let _ = writeln!(
            o,
            "<h3>{} ({})</h3>\n<p class=\"muted\">{} dump by {}, charset {} / collation {}, compression {}, recorded {}.</p>",
            esc(d.db.label()),
            mono(&d.database),
            esc(&d.format),
            esc(&d.dumper),
            esc(&d.charset),
            esc(&d.collation),
            esc(&d.compression),
            esc(&time_opt(d.recorded_at))
        );
        o.push_str("<table>\n<thead><tr><th>Table</th><th>Rows</th><th>Checksum</th><th>Method</th></tr></thead>\n<tbody>\n");
        for t in &d.tables {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                mono(&t.name),
                t.rows,
                mono(&t.checksum),
                esc(t.method.word())
            );
        }
        o.push_str("</tbody>\n</table>\n");
        if let Some(c) = &d.rollback_check {
            let _ = writeln!(
                o,
                "<p>Re-hashed by the rollback before any change: {}.</p>",
                if c.ok {
                    "<span class=\"good\">matched</span>"
                } else {
                    "<span class=\"bad\">did not match</span>"
                }
            );
        }
        if let Some(rs) = &d.restore {
            let _ = writeln!(
                o,
                "<p>Restored at {} (BLAKE3 {} verified first); tables match the dump: {}.</p>",
                esc(&time(rs.at)),
                mono(short(&rs.verified_blake3)),
                if rs.tables_match {
                    "<span class=\"good\">yes</span>"
                } else {
                    "<span class=\"bad\">no</span>"
                }
            );
        }
    }
    o.push_str("</section>\n");
}

fn containers(o: &mut String, r: &Report) {
    let c = &r.containers;
    o.push_str("<section id=\"containers\">\n<h2>Containers</h2>\n");
    let Some(old) = &c.old else {
        o.push_str("<p>No plan, so no container was recorded.</p>\n</section>\n");
        return;
    };
    let new = c.new.as_ref();
    let dash = || "-".to_string();
    o.push_str("<table>\n<thead><tr><th></th><th>Old (before)</th><th>New (after)</th></tr></thead>\n<tbody>\n");
    let rows: [(&str, String, String); 7] = [
        (
            "Id",
            mono(&old.id),
            new.map(|n| mono(&n.id)).unwrap_or_else(dash),
        ),
        (
            "Name",
            format!("{} → renamed {}", mono(&old.name), mono(&old.renamed_to)),
            new.map(|n| mono(&n.name)).unwrap_or_else(dash),
        ),
        (
            "Image",
            mono(&old.image),
            new.map(|n| mono(&n.image)).unwrap_or_else(dash),
        ),
        (
            "Image id",
            mono(&old.image_id),
            new.and_then(|n| n.image_id.as_deref().map(mono))
                .unwrap_or_else(dash),
        ),
        (
            "Started",
            dash(),
            new.and_then(|n| n.started_at)
                .map(|t| esc(&time(t)).to_string())
                .unwrap_or_else(dash),
        ),
        (
            "Env",
            old.env
                .iter()
                .map(|e| mono(e))
                .collect::<Vec<_>>()
                .join(" "),
            new.map(|n| n.env.iter().map(|e| mono(e)).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(dash),
        ),
        (
            "Binds equal to old",
            dash(),
            new.map(|n| {
                if n.binds_equal_to_old {
                    "<span class=\"good\">yes</span>".to_string()
                } else {
                    "<span class=\"bad\">no</span>".to_string()
                }
            })
            .unwrap_or_else(dash),
        ),
    ];
    for (k, a, b) in rows {
        let _ = writeln!(o, "<tr><th>{}</th><td>{a}</td><td>{b}</td></tr>", esc(k));
    }
    o.push_str("</tbody>\n</table>\n");
    if !c.binds.is_empty() {
        o.push_str(
            "<table>\n<thead><tr><th>Bind</th><th>Old</th><th>New</th></tr></thead>\n<tbody>\n",
        );
        for b in &c.binds {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                mono(&b.bind),
                yes(b.old),
                if new.is_some() { yes(b.new) } else { "-" }
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !old.labels.is_empty() {
        let labels: Vec<String> = old
            .labels
            .iter()
            .map(|(k, v)| mono(&format!("{k}={v}")))
            .collect();
        let _ = writeln!(o, "<p>Old container labels: {}</p>", labels.join(" "));
    }
    if !c.renames.is_empty() {
        o.push_str("<table>\n<thead><tr><th>Rename</th><th>At</th><th>Container</th><th>From</th><th>To</th></tr></thead>\n<tbody>\n");
        for rn in &c.renames {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                mono(&rn.step.to_string()),
                esc(&time(rn.at)),
                mono(short(&rn.id)),
                mono(&rn.from),
                mono(&rn.to)
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n");
}

fn problems(o: &mut String, r: &Report) {
    o.push_str("<section id=\"problems\">\n<h2>Failures, retries and in-doubt steps</h2>\n");
    if r.failures.is_empty() && r.retries.is_empty() && r.in_doubt.is_empty() {
        o.push_str("<p>None: every step succeeded at its first attempt.</p>\n");
    }
    if !r.failures.is_empty() {
        o.push_str("<table>\n<thead><tr><th>Failed step</th><th>Try</th><th>At</th><th>Retryable</th><th>Kind</th><th>Error</th></tr></thead>\n<tbody>\n");
        for f in &r.failures {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"bad\">{}{}</td></tr>",
                mono(&f.key.to_string()),
                f.attempt,
                esc(&time(f.at)),
                yes(f.retryable),
                f.kind,
                esc(&f.error),
                f.observed
                    .as_deref()
                    .map(|s| format!("<br><span class=\"muted\">observed: {}</span>", esc(s)))
                    .unwrap_or_default()
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !r.retries.is_empty() {
        o.push_str("<table>\n<thead><tr><th>Retried step</th><th>Try</th><th>At</th><th>After</th><th>Result</th></tr></thead>\n<tbody>\n");
        for t in &r.retries {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                mono(&t.key.to_string()),
                t.attempt,
                esc(&time(t.at)),
                esc(t.after.label()),
                esc(t.result.label())
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !r.in_doubt.is_empty() {
        o.push_str("<table>\n<thead><tr><th>In-doubt step</th><th>Try</th><th>Intent</th><th>Resolved</th><th>Found</th><th>Evidence</th></tr></thead>\n<tbody>\n");
        for d in &r.in_doubt {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                mono(&d.key.to_string()),
                d.attempt,
                esc(&time(d.intent_at)),
                d.resolved_at
                    .map(|t| esc(&time(t)).to_string())
                    .unwrap_or_else(|| "<span class=\"bad\">still in doubt</span>".into()),
                esc(d.result.label()),
                esc(d.evidence.as_deref().unwrap_or("-"))
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if let Some(rb) = &r.rollback {
        let _ = writeln!(
            o,
            "<h3>Rollback</h3>\n<p>Requested at {} (seq {}) while {}: <b>{}</b>.</p>\n<p>Steps: {}. Completed: {}.</p>",
            esc(&time(rb.at)),
            rb.seq,
            esc(&rb.from_phase.to_string()),
            esc(&rb.reason),
            rb.steps
                .iter()
                .map(|k| mono(&k.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            yes(rb.completed)
        );
    }
    for p in &r.preflight_failures {
        let _ = writeln!(
            o,
            "<h3>Preflight failed at {} (seq {})</h3>\n<ul>{}</ul>",
            esc(&time(p.at)),
            p.seq,
            p.failed
                .iter()
                .map(|f| format!("<li>{}</li>", esc(f)))
                .collect::<String>()
        );
    }
    o.push_str("</section>\n");
}

fn remarks(o: &mut String, r: &Report) {
    o.push_str("<section id=\"remarks\">\n<h2>Notes and attestations</h2>\n");
    if r.notes.is_empty() && r.attestations.is_empty() {
        o.push_str("<p>None recorded.</p>\n</section>\n");
        return;
    }
    o.push_str("<table>\n<thead><tr><th>At</th><th>Kind</th><th>Who</th><th>Text</th></tr></thead>\n<tbody>\n");
    for n in &r.notes {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>note (seq {})</td><td>{}@{}</td><td>{}</td></tr>",
            esc(&time(n.at)),
            n.seq,
            esc(&n.operator),
            esc(&n.host),
            esc(&n.text)
        );
    }
    for a in &r.attestations {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>attestation ({}, seq {}){}</td><td>{} (recorded by {})</td><td>{}{}</td></tr>",
            esc(&time(a.at)),
            esc(&a.source),
            a.seq,
            a.step
                .map(|k| format!(" step {}", mono(&k.to_string())))
                .unwrap_or_default(),
            esc(&a.by),
            esc(&a.operator),
            esc(&a.statement),
            a.observed_at
                .map(|t| format!(" <span class=\"muted\">(observed {})</span>", esc(&time(t))))
                .unwrap_or_default()
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
}

fn verification(o: &mut String, r: &Report) {
    let v = &r.verification;
    let f = &v.facts;
    o.push_str("<section id=\"verification\">\n<h2>Verification</h2>\n");
    let good = |b: bool, t: &str, n: &str| {
        if b {
            format!("<span class=\"good\">{t}</span>")
        } else {
            format!("<span class=\"bad\">{n}</span>")
        }
    };
    let rows: Vec<(&str, String)> = vec![
        ("Verdict", good(v.ok, "verified", "NOT verified")),
        ("Ledger id", mono(&f.ledger_id.to_string())),
        ("Chain intact", good(f.chain_intact, "yes", "no")),
        ("Records verified", f.records_verified.to_string()),
        (
            "Head",
            format!(
                "seq {} · {}",
                f.head_seq.map_or("-".into(), |s| s.to_string()),
                f.head_hash
                    .as_deref()
                    .map(mono)
                    .unwrap_or_else(|| "-".into())
            ),
        ),
        (
            "Checkpoint",
            match &f.anchor {
                None => "not given".into(),
                Some(a) => format!(
                    "seq {} · {} · {}",
                    a.seq,
                    mono(&a.head),
                    good(a.matched, "matched", "NOT matched")
                ),
            },
        ),
        ("Dumps present and matching", good(v.dumps_ok, "yes", "no")),
    ];
    kv_table(o, &rows);
    if !v.findings.is_empty() {
        o.push_str("<ul>\n");
        for finding in &v.findings {
            let _ = writeln!(o, "<li class=\"bad\">{}</li>", esc(finding));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</section>\n");
}
