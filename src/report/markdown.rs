//! The report as Markdown, for pasting into a change ticket: a verdict line, a summary
//! table with the key figures, then one section per subject. Plain GitHub-flavoured
//! Markdown (tables, fenced code), no HTML.

use std::fmt::Write;

use super::lanes::Markup;
use super::text::{self, clock, duration_ms, short, size, time, time_opt};
pub(crate) use super::text::{cell, code};
use super::{NodeLane, Report, StepResult, StepRow};

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A fenced block whose fence is longer than any backtick run inside.
fn fenced(out: &mut String, lang: &str, body: &str) {
    let longest = body
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max(2);
    let fence = "`".repeat(longest + 1);
    let _ = writeln!(out, "{fence}{lang}\n{}\n{fence}\n", body.trim_end());
}

/// Pretty-prints a JSON text, or returns it unchanged when it is not JSON.
pub(super) fn pretty_json(s: &str) -> String {
    serde_json::from_str::<serde_json::Value>(s)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| s.to_string())
}

/// The headline: what, which versions, where it ended.
pub(super) fn headline(r: &Report) -> String {
    match &r.plan {
        Some(p) => format!(
            "OMS upgrade {} → {}: {}",
            p.source_version, p.target_version, r.outcome.phase
        ),
        None => format!("OMS upgrade (not planned): {}", r.outcome.phase),
    }
}

/// The verification verdict in one line.
pub(super) fn verdict(r: &Report) -> String {
    let v = &r.verification;
    let f = &v.facts;
    let chain = if f.chain_intact {
        format!(
            "chain intact ({} records, head seq {})",
            f.records_verified,
            f.head_seq.unwrap_or_default()
        )
    } else {
        let p = f.problem.as_ref();
        format!(
            "CHAIN BROKEN at seq {} ({})",
            p.map_or(0, |p| p.seq),
            p.map_or("", |p| p.kind.as_str())
        )
    };
    let anchor = match &f.anchor {
        None => "no checkpoint given".to_string(),
        Some(a) if a.matched => format!("checkpoint at seq {} matched", a.seq),
        Some(a) => format!("checkpoint at seq {} NOT matched", a.seq),
    };
    let good = f.dumps.iter().filter(|d| d.present && d.matches).count();
    let dumps = if f.dumps.is_empty() {
        "no dumps recorded".to_string()
    } else {
        format!("dumps {good}/{} present and matching", f.dumps.len())
    };
    format!(
        "{}: {chain}; {anchor}; {dumps}",
        if v.ok { "VERIFIED" } else { "NOT VERIFIED" }
    )
}

/// Renders the report as Markdown.
pub fn to_markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", headline(r));
    let _ = writeln!(o, "> {}\n", r.outcome.summary);
    let _ = writeln!(o, "**{}**\n", verdict(r));
    if let Some(l) = &r.live {
        let _ = writeln!(o, "> **{}**\n", l.banner());
    }
    if let Some(h) = &r.verification.facts.head_hash {
        let _ = writeln!(
            o,
            "Ledger `{}`, head hash `{h}`.\n",
            r.verification.facts.ledger_id
        );
    }
    summary(&mut o, r);
    timeline(&mut o, r);
    window(&mut o, r);
    super::estimate::markdown(&mut o, r);
    nodes(&mut o, r);
    ha(&mut o, r);
    dumps(&mut o, r);
    containers(&mut o, r);
    problems(&mut o, r);
    remarks(&mut o, r);
    verification(&mut o, r);
    let _ = writeln!(
        o,
        "---\nRendered by oms-upgrade {} from the ledger alone (report format {} v{}).",
        r.rendered_by, r.format, r.version
    );
    o
}

fn summary(o: &mut String, r: &Report) {
    let _ = writeln!(o, "## Summary\n\n| | |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "| {k} | {} |", cell(&v));
    };
    row(
        "Run",
        r.run
            .run_id
            .map(|u| u.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    row("Ledger", r.run.ledger_id.to_string());
    row("Phase", r.outcome.phase.to_string());
    if let Some(p) = &r.plan {
        row(
            "Source",
            format!(
                "{} — image {} ({})",
                p.source_version,
                p.source_image,
                short(&p.source_image_id)
            ),
        );
        row(
            "Target",
            format!(
                "{} — image {}{}",
                p.target_version,
                p.target_image,
                p.target_image_id
                    .as_deref()
                    .map(|i| format!(" ({})", short(i)))
                    .unwrap_or_default()
            ),
        );
        row("Procedure", p.procedure.clone());
        row("Tool version", p.tool_version.clone());
        row(
            "Metadata DB",
            format!("{} — {}, {}, {}", p.metadb, p.db_rm, p.db_cm, p.db_cm_hb),
        );
    }
    row("Operators", r.run.operators.join(", "));
    row("Hosts", r.run.hosts.join(", "));
    if let Some(at) = r.run.planned_at {
        row(
            "Planned",
            format!(
                "{} by {} on {}",
                time(at),
                r.run.planned_by.as_deref().unwrap_or("?"),
                r.run.planned_on.as_deref().unwrap_or("?")
            ),
        );
    }
    row(
        "Records",
        format!(
            "{} ({} to {})",
            r.run.records,
            time_opt(r.run.first_record_at),
            time_opt(r.run.last_record_at)
        ),
    );
    for m in [&r.times.t1, &r.times.t2, &r.times.t3] {
        let Some(m) = m else { continue };
        let returned = m
            .stop_returned_at
            .filter(|t| *t != m.at)
            .map(|t| format!("; stop returned {}", time(t)))
            .unwrap_or_default();
        let docker = m
            .docker_finished_at
            .map(|t| format!("; Docker FinishedAt {}", time(t)))
            .unwrap_or_default();
        row(
            m.name,
            format!(
                "{} ({}, seq {}): when {}{returned}{docker}",
                time(m.at),
                m.step,
                m.seq,
                m.instant
            ),
        );
    }
    if let Some(d) = &r.times.downtime {
        let end = match d.end {
            Some(e) => time(e),
            None => format!("ongoing at the last record, {}", time(d.measured_to)),
        };
        row(
            "Downtime",
            format!(
                "{} ({} min rounded up): {} to {end} — {}",
                d.text,
                d.minutes_rounded_up,
                time(d.start),
                d.ended_by
            ),
        );
    }
    if let Some(d) = &r.ha.refetch {
        row("Refetch", refetch_line(d));
    }
    let _ = writeln!(o);
}

pub(super) fn refetch_line(d: &crate::refetch::RefetchDecision) -> String {
    match (d.perceive_checkpoint, d.interval_minutes) {
        (None, Some(i)) => format!(
            "refetchStoreIntervalMin = {i} (downtime {} min + margin {} min)",
            d.downtime_minutes, d.margin_minutes
        ),
        (_, Some(i)) => format!(
            "perceiveStoreClientCheckpoint = true, refetchStoreIntervalMin = {i} (its default) \
             (downtime {} min)",
            d.downtime_minutes
        ),
        (_, None) => format!(
            "perceiveStoreClientCheckpoint = true (downtime {} min)",
            d.downtime_minutes
        ),
    }
}

fn timeline(o: &mut String, r: &Report) {
    let _ = writeln!(o, "## Timeline\n");
    if r.steps.is_empty() {
        let _ = writeln!(o, "No step was run.\n");
        return;
    }
    if r.nodes.is_empty() {
        step_table(o, r.steps.iter());
    } else {
        // A deployment: one lane per node beside the deployment-wide one (issue 15).
        let _ = writeln!(
            o,
            "One lane per node; deployment-wide steps (HA, heartbeat and dumps, check-online, \
             completion) in their own lane.\n"
        );
        let _ = writeln!(o, "### Deployment-wide\n");
        step_table(o, r.steps.iter().filter(|s| s.node.is_none()));
        for n in &r.nodes {
            let _ = writeln!(o, "\n### {}\n", cell(&lane_title(n)));
            step_table(o, r.steps.iter().filter(|s| s.node == Some(n.node)));
        }
    }
    if let Some(first) = r.steps.first() {
        let _ = writeln!(
            o,
            "\nTimes are UTC on {}; durations are outcome record time minus intent record time.\n",
            first.started_at.format("%Y-%m-%d")
        );
    }
}

/// The downtime window's breakdown (issue 16), in its own section.
fn window(o: &mut String, r: &Report) {
    let Some(w) = &r.window else {
        return;
    };
    let _ = writeln!(
        o,
        "## Downtime window

| Step | Try | Gap before | In window | Share | Part |
|---|---|---|---|---|---|"
    );
    for [key, attempt, gap, time, share, part] in super::window::cells(w) {
        let _ = writeln!(
            o,
            "| {} | {attempt} | {gap} | {time} | {share} | {} |",
            code(&key),
            cell(&part)
        );
    }
    let _ = writeln!(
        o,
        "
{}
",
        cell(&super::window::summary(w))
    );
}

/// A node lane's heading: `Node 1: oms-b (region hz, 10.0.0.2, ssh://root@10.0.0.2)`.
pub(super) fn lane_title(n: &NodeLane) -> String {
    format!(
        "Node {}: {} (region {}, {}, {})",
        n.node, n.label, n.region_name, n.host_ip, n.endpoint
    )
}

fn step_table<'a>(o: &mut String, steps: impl Iterator<Item = &'a StepRow>) {
    let _ = writeln!(
        o,
        "| Step | Try | Started | Ended | Duration | Result | Mark | Detail |\n|---|---|---|---|---|---|---|---|"
    );
    let mut any = false;
    for s in steps {
        any = true;
        let _ = writeln!(
            o,
            "| {} {} | {} | {} | {} | {} | {} | {} | {} |",
            code(&s.key.to_string()),
            cell(&s.title),
            s.attempt,
            clock(s.started_at),
            s.ended_at.map(clock).unwrap_or_else(|| "-".into()),
            duration_ms(s.duration_ms),
            if s.result == StepResult::Done {
                s.result.label().to_string()
            } else {
                format!("**{}**", s.result.label())
            },
            s.marks.join(" "),
            cell(&s.detail)
        );
    }
    if !any {
        let _ = writeln!(o, "| - | | | | | not started | | |");
    }
}

/// A deployment's nodes, one row each (issue 15): where, which containers, health, init.
fn nodes(o: &mut String, r: &Report) {
    if r.nodes.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Nodes\n");
    let _ = writeln!(
        o,
        "| Node | Region | Host IP | Endpoint | Old container | New container | Stopped | Health | docker_init.sh |\n|---|---|---|---|---|---|---|---|---|"
    );
    let markup = Markup {
        code: &|s| code(s),
        plain: &|s| cell(s),
        health: &|ok| if ok { "healthy" } else { "**not healthy**" }.to_string(),
        t1: "(**T1**, first of any node)",
    };
    for n in &r.nodes {
        let _ = writeln!(o, "| {} |", n.cells(&markup).join(" | "));
    }
    let _ = writeln!(o);
}

fn ha(o: &mut String, r: &Report) {
    let h = &r.ha;
    let _ = writeln!(o, "## HA (`ha.config`)\n");
    if let (Some(m), Some(a)) = (h.mode, h.after_policy) {
        let _ = writeln!(
            o,
            "Changed in **{}** mode; `enable` afterwards: {}.\n",
            text::mode(m),
            match a {
                crate::events::HaAfter::Enable => "true",
                crate::events::HaAfter::KeepPrevious => "as before the run",
            }
        );
    }
    match &h.before_json {
        Some(b) => {
            let _ = writeln!(o, "Before the run:\n");
            fenced(o, "json", &pretty_json(b));
        }
        None => {
            let _ = writeln!(o, "`ha.config` was not read (no HA step ran).\n");
        }
    }
    if let Some(a) = &h.after_json {
        let _ = writeln!(o, "After (as last written):\n");
        fenced(o, "json", &pretty_json(a));
    }
    if !h.changed_keys.is_empty() {
        let _ = writeln!(o, "| Key | Before | After |\n|---|---|---|");
        for k in &h.changed_keys {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                code(&k.key),
                k.before
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "absent".into()),
                k.after
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "absent".into())
            );
        }
        let _ = writeln!(o);
    }
    if !h.changes.is_empty() {
        let _ = writeln!(
            o,
            "| Step | At | Action | Mode | Attested by |\n|---|---|---|---|---|"
        );
        for c in &h.changes {
            let _ = writeln!(
                o,
                "| {} | {} | {}{} | {} | {} |",
                code(&c.step.to_string()),
                time(c.at),
                c.action,
                if c.written_json.is_none() {
                    " (already off)"
                } else {
                    ""
                },
                text::mode(c.mode),
                c.attestation
                    .as_ref()
                    .map(|a| cell(&a.by))
                    .unwrap_or_else(|| "-".into())
            );
        }
        let _ = writeln!(o);
    }
    for c in h.changes.iter().filter(|c| c.refetch.is_some()) {
        let d = c.refetch.as_ref().expect("filtered");
        let _ = writeln!(
            o,
            "**Refetch ({}):** {}.\n\n{}\n",
            c.step,
            refetch_line(d),
            d.reasoning
        );
    }
    for w in &h.warnings {
        let _ = writeln!(o, "> **Warning:** {w}\n");
    }
}

fn dumps(o: &mut String, r: &Report) {
    let _ = writeln!(o, "## Dumps\n");
    if r.dumps.is_empty() {
        let _ = writeln!(o, "No dump was recorded.\n");
        return;
    }
    let _ = writeln!(
        o,
        "| DB | Database | File | Size | BLAKE3 | Rows | File now |\n|---|---|---|---|---|---|---|"
    );
    for d in &r.dumps {
        let now = match &d.file_check {
            Some(c) if c.present && c.matches => "present, matches".to_string(),
            Some(c) if c.present => "**DIFFERS**".to_string(),
            Some(_) => "**MISSING**".to_string(),
            None => "not checked".to_string(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            d.db,
            code(&d.database),
            code(&d.file),
            size(d.size),
            code(&d.blake3),
            d.total_rows,
            now
        );
    }
    let _ = writeln!(o);
    for d in &r.dumps {
        let _ = writeln!(
            o,
            "### {} (`{}`)\n\n{} dump by {}, charset {} / collation {}, compression {}, recorded {}.\n",
            d.db,
            d.database,
            d.format,
            d.dumper,
            d.charset,
            d.collation,
            d.compression,
            time_opt(d.recorded_at)
        );
        let _ = writeln!(o, "| Table | Rows | Checksum | Method |\n|---|---|---|---|");
        for t in &d.tables {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                code(&t.name),
                t.rows,
                code(&t.checksum),
                cell(t.method.word())
            );
        }
        let _ = writeln!(o);
        if let Some(c) = &d.rollback_check {
            let _ = writeln!(
                o,
                "Re-hashed by the rollback before any change: {}.\n",
                if c.ok { "matched" } else { "**did not match**" }
            );
        }
        if let Some(rs) = &d.restore {
            let _ = writeln!(
                o,
                "Restored at {} (BLAKE3 `{}` verified first); tables match the dump: {}.\n",
                time(rs.at),
                rs.verified_blake3,
                yes(rs.tables_match)
            );
        }
    }
}

fn containers(o: &mut String, r: &Report) {
    let c = &r.containers;
    let _ = writeln!(o, "## Containers\n");
    let Some(old) = &c.old else {
        let _ = writeln!(o, "No plan, so no container was recorded.\n");
        return;
    };
    let new = c.new.as_ref();
    let _ = writeln!(o, "| | Old (before) | New (after) |\n|---|---|---|");
    let mut row = |k: &str, a: String, b: Option<String>| {
        let _ = writeln!(
            o,
            "| {k} | {} | {} |",
            cell(&a),
            cell(&b.unwrap_or_else(|| "-".into()))
        );
    };
    row("Id", old.id.clone(), new.map(|n| n.id.clone()));
    row("Name", old.name.clone(), new.map(|n| n.name.clone()));
    row("Image", old.image.clone(), new.map(|n| n.image.clone()));
    row(
        "Image id",
        old.image_id.clone(),
        new.and_then(|n| n.image_id.clone()),
    );
    row("Renamed to", old.renamed_to.clone(), None);
    row(
        "Started",
        "-".into(),
        new.and_then(|n| n.started_at).map(time),
    );
    row("Env", old.env.join(" "), new.map(|n| n.env.join(" ")));
    row(
        "Binds equal",
        "-".into(),
        new.map(|n| yes(n.binds_equal_to_old).to_string()),
    );
    let _ = writeln!(o);
    if !c.binds.is_empty() {
        let _ = writeln!(o, "| Bind | Old | New |\n|---|---|---|");
        for b in &c.binds {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                code(&b.bind),
                yes(b.old),
                if new.is_some() { yes(b.new) } else { "-" }
            );
        }
        let _ = writeln!(o);
    }
    if !old.labels.is_empty() {
        let labels: Vec<String> = old.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(o, "Old container labels: {}.\n", code(&labels.join(", ")));
    }
    if !c.renames.is_empty() {
        let _ = writeln!(
            o,
            "| Rename | At | Container | From | To |\n|---|---|---|---|---|"
        );
        for rn in &c.renames {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                code(&rn.step.to_string()),
                time(rn.at),
                code(short(&rn.id)),
                code(&rn.from),
                code(&rn.to)
            );
        }
        let _ = writeln!(o);
    }
}

fn problems(o: &mut String, r: &Report) {
    let _ = writeln!(o, "## Failures, retries and in-doubt steps\n");
    if r.failures.is_empty() && r.retries.is_empty() && r.in_doubt.is_empty() {
        let _ = writeln!(o, "None: every step succeeded at its first attempt.\n");
    }
    if !r.failures.is_empty() {
        let _ = writeln!(
            o,
            "| Failed step | Try | At | Retryable | Kind | Error |\n|---|---|---|---|---|---|"
        );
        for f in &r.failures {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {}{} |",
                code(&f.key.to_string()),
                f.attempt,
                time(f.at),
                yes(f.retryable),
                f.kind,
                cell(&f.error),
                f.observed
                    .as_deref()
                    .map(|s| format!(" (observed: {})", cell(s)))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(o);
    }
    if !r.retries.is_empty() {
        let _ = writeln!(
            o,
            "| Retried step | Try | At | After | Result |\n|---|---|---|---|---|"
        );
        for t in &r.retries {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                code(&t.key.to_string()),
                t.attempt,
                time(t.at),
                t.after.label(),
                t.result.label()
            );
        }
        let _ = writeln!(o);
    }
    if !r.in_doubt.is_empty() {
        let _ = writeln!(
            o,
            "| In-doubt step | Try | Intent | Resolved | Found | Evidence |\n|---|---|---|---|---|---|"
        );
        for d in &r.in_doubt {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                code(&d.key.to_string()),
                d.attempt,
                time(d.intent_at),
                d.resolved_at
                    .map(time)
                    .unwrap_or_else(|| "**still in doubt**".into()),
                d.result.label(),
                cell(d.evidence.as_deref().unwrap_or("-"))
            );
        }
        let _ = writeln!(o);
    }
    if let Some(rb) = &r.rollback {
        let _ = writeln!(
            o,
            "**Rollback** requested at {} (seq {}) while {}: {}. Steps: {}. Completed: {}.\n",
            time(rb.at),
            rb.seq,
            rb.from_phase,
            rb.reason,
            rb.steps
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            yes(rb.completed)
        );
    }
    for p in &r.preflight_failures {
        let _ = writeln!(
            o,
            "**Preflight failed** at {} (seq {}): {}.\n",
            time(p.at),
            p.seq,
            p.failed.join("; ")
        );
    }
}

fn remarks(o: &mut String, r: &Report) {
    let _ = writeln!(o, "## Notes and attestations\n");
    if r.notes.is_empty() && r.attestations.is_empty() {
        let _ = writeln!(o, "None recorded.\n");
        return;
    }
    for n in &r.notes {
        let _ = writeln!(
            o,
            "- {} — note by {} on {} (seq {}): {}",
            time(n.at),
            n.operator,
            n.host,
            n.seq,
            cell(&n.text)
        );
    }
    for a in &r.attestations {
        let _ = writeln!(
            o,
            "- {} — attestation by {} (recorded by {}, {}, seq {}){}{}: {}",
            time(a.at),
            a.by,
            a.operator,
            a.source,
            a.seq,
            a.step.map(|k| format!(", step {k}")).unwrap_or_default(),
            a.observed_at
                .map(|t| format!(", observed {}", time(t)))
                .unwrap_or_default(),
            cell(&a.statement)
        );
    }
    let _ = writeln!(o);
}

fn verification(o: &mut String, r: &Report) {
    let v = &r.verification;
    let f = &v.facts;
    let _ = writeln!(o, "## Verification\n\n| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| Verdict | **{}** |",
        if v.ok { "verified" } else { "NOT verified" }
    );
    let _ = writeln!(o, "| Ledger id | {} |", code(&f.ledger_id.to_string()));
    let _ = writeln!(o, "| Chain intact | {} |", yes(f.chain_intact));
    let _ = writeln!(o, "| Records verified | {} |", f.records_verified);
    let _ = writeln!(
        o,
        "| Head | seq {} hash {} |",
        f.head_seq.map_or("-".into(), |s| s.to_string()),
        f.head_hash
            .as_deref()
            .map(code)
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        o,
        "| Checkpoint | {} |",
        match &f.anchor {
            None => "not given".to_string(),
            Some(a) => format!(
                "seq {} head {}: {}",
                a.seq,
                code(&a.head),
                if a.matched {
                    "matched"
                } else {
                    "**NOT matched**"
                }
            ),
        }
    );
    let _ = writeln!(o, "| Dumps present and matching | {} |", yes(v.dumps_ok));
    let _ = writeln!(o);
    for finding in &v.findings {
        let _ = writeln!(o, "- **{}**", cell(finding));
    }
    if !v.findings.is_empty() {
        let _ = writeln!(o);
    }
}
