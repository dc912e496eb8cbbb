//! The downtime window's breakdown (issue 16): where the time between T1 (the old OMS
//! stopped) and T2 (HA re-enabled; or the downtime's recorded end) went, step by step,
//! from the ledger alone.
//!
//! The window is cut into consecutive parts that cover it exactly, so they always sum to
//! its length: for each step attempt in it, in record order, the *gap* before its intent
//! (the previous outcome record, or T1, to this intent record: appending and fsyncing the
//! outcome, replaying the state, choosing the next step, connecting) and the attempt
//! itself (intent record to outcome record, clipped to the window; an attempt overlapping
//! an earlier one counts only from where that one ended), then the *tail* from the last
//! outcome to the end. Each attempt is classified: **external** when its time is spent by
//! something the tool waits on (the old OMS shutting down, the dumps and restores,
//! Docker creating and starting a container, `docker_init.sh`, OMS's own start-up as the
//! health, supervisor and server waits see it) or the **tool's own** (everything else:
//! HA writes, renames, restart policy, the heartbeat prune, checks). The tool's share is
//! the gaps, the tail and its own steps.
//!
//! A wait that ends on a poll sees the awaited change up to one pause late; that slack is
//! the tool's latency hidden inside an external part. [`Window::polling_slack_ms`] bounds
//! it with the pause schedule of this build ([`Backoff`]).
//!
//! Pure: built from the report's step rows and the downtime's start and end.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::adapters::clock::{Backoff, HEALTH_POLL_CAP, STATUS_POLL_CAP};
use crate::events::StepKey;

use super::StepRow;

/// Whose time a part of the window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Share {
    /// Spent by what the tool waits on (OMS, Docker, the dumps, `docker_init.sh`).
    External,
    /// The tool's own.
    Tool,
}

impl Share {
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            Share::External => "external",
            Share::Tool => "tool",
        }
    }
}

/// What an external step waits on, or `None` for the tool's own steps; and the pause
/// schedule of the steps that poll.
fn external_part(key: StepKey) -> Option<(&'static str, Option<Backoff>)> {
    let health = Some(Backoff::fine(HEALTH_POLL_CAP));
    let status = Some(Backoff::fine(STATUS_POLL_CAP));
    Some(match key.base() {
        StepKey::StopOldContainer | StepKey::StopNewContainer => {
            ("OMS shut-down (docker stop)", None)
        }
        StepKey::Dump { .. } => ("dump", None),
        StepKey::Restore { .. } => ("restore", None),
        StepKey::CreateNewContainer => ("container create", None),
        StepKey::StartNewContainer | StepKey::RestartOldContainer => ("container start", None),
        StepKey::RunDockerInit => ("docker_init.sh", None),
        StepKey::ConfirmHealth | StepKey::ConfirmOldHealth => ("OMS start-up (health)", health),
        StepKey::CheckSupervisor => ("OMS start-up (supervisor programs)", status),
        StepKey::CheckOnline => ("OMS start-up (servers Online)", status),
        _ => return None,
    })
}

/// How a step's time is counted: its share and what it is.
pub fn classify(key: StepKey) -> (Share, &'static str) {
    match external_part(key) {
        Some((part, _)) => (Share::External, part),
        None => (Share::Tool, "tool's own"),
    }
}

/// One step attempt in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowRow {
    /// The step.
    pub key: StepKey,
    /// Which attempt.
    pub attempt: u32,
    /// The node whose lane the step is in (deployments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    /// From the previous outcome record (or the window's start) to this intent record,
    /// milliseconds: the tool's.
    pub gap_ms: i64,
    /// The attempt's time inside the window, milliseconds.
    pub in_window_ms: i64,
    /// Whose time the attempt is.
    pub share: Share,
    /// What it is (`dump`, `OMS start-up (health)`, `tool's own`, ...).
    pub part: &'static str,
    /// For waits that poll: the most of `in_window_ms` that can be polling slack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_slack_ms: Option<i64>,
}

/// The window's breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Its start (T1).
    pub start: DateTime<Utc>,
    /// Its end (T2, or the downtime's recorded end).
    pub end: DateTime<Utc>,
    /// `end - start`, milliseconds: the sum of every gap, every row and the tail.
    pub total_ms: i64,
    /// Every attempt with time in the window, in record order.
    pub rows: Vec<WindowRow>,
    /// From the last outcome record in the window to its end, milliseconds: the tool's.
    pub tail_ms: i64,
    /// Sum of the gaps and the tail.
    pub gaps_ms: i64,
    /// Sum of the tool's own steps.
    pub tool_steps_ms: i64,
    /// The tool's share: gaps, tail and its own steps.
    pub tool_ms: i64,
    /// The external steps.
    pub external_ms: i64,
    /// The most of `external_ms` that can be polling slack (pauses of this build).
    pub polling_slack_ms: i64,
}

/// The breakdown of the window `[start, end]` over the report's `steps`; `None` when the
/// window is empty or reversed.
pub fn breakdown(steps: &[StepRow], start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Window> {
    if end <= start {
        return None;
    }
    // Each part is the difference of its ends' whole milliseconds since the start, not
    // its own length rounded: records carry microseconds, and rounding each part would
    // lose up to a millisecond per part, while these differences telescope to the total.
    let pos = |t: DateTime<Utc>| (t - start).num_milliseconds();
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| pos(b) - pos(a);
    let mut cursor = start;
    let mut rows = Vec::new();
    let mut ordered: Vec<&StepRow> = steps.iter().collect();
    ordered.sort_by_key(|s| s.intent_seq);
    for s in ordered {
        // An attempt without an outcome (in doubt) took no recorded time; what followed
        // it until the next record is a gap.
        let ended = s.ended_at.unwrap_or(s.started_at);
        if ended <= start || s.started_at >= end {
            continue;
        }
        let from = s.started_at.clamp(start, end).max(cursor);
        let to = ended.clamp(start, end).max(from);
        let (share, part) = classify(s.key);
        let slack = external_part(s.key).and_then(|(_, b)| b).map(|b| {
            let waited = (to - from).to_std().unwrap_or(StdDuration::ZERO);
            i64::try_from(b.slack_bound(waited).as_millis()).unwrap_or(i64::MAX)
        });
        rows.push(WindowRow {
            key: s.key,
            attempt: s.attempt,
            node: s.node,
            gap_ms: ms(cursor, from),
            in_window_ms: ms(from, to),
            share,
            part,
            polling_slack_ms: slack,
        });
        cursor = to;
    }
    let tail_ms = ms(cursor, end);
    let sum = |share: Share| -> i64 {
        rows.iter()
            .filter(|r| r.share == share)
            .map(|r| r.in_window_ms)
            .sum()
    };
    let gaps_ms = rows.iter().map(|r| r.gap_ms).sum::<i64>() + tail_ms;
    let tool_steps_ms = sum(Share::Tool);
    Some(Window {
        start,
        end,
        total_ms: pos(end),
        tail_ms,
        gaps_ms,
        tool_steps_ms,
        tool_ms: gaps_ms + tool_steps_ms,
        external_ms: sum(Share::External),
        polling_slack_ms: rows.iter().filter_map(|r| r.polling_slack_ms).sum(),
        rows,
    })
}

/// The table's rows as cells (step, try, gap, time, share, part), for both renderers.
pub(super) fn cells(w: &Window) -> Vec<[String; 6]> {
    let d = |ms: i64| super::text::duration(super::ms(ms));
    let mut out: Vec<[String; 6]> = w
        .rows
        .iter()
        .map(|r| {
            let part = match r.polling_slack_ms {
                Some(s) if s > 0 => format!("{} (up to {} of it polling slack)", r.part, d(s)),
                _ => r.part.to_string(),
            };
            [
                r.key.to_string(),
                r.attempt.to_string(),
                d(r.gap_ms),
                d(r.in_window_ms),
                r.share.label().to_string(),
                part,
            ]
        })
        .collect();
    out.push([
        "(to the end)".into(),
        String::new(),
        d(w.tail_ms),
        String::new(),
        Share::Tool.label().into(),
        "last outcome record to the window's end".into(),
    ]);
    out
}

/// The one-paragraph summary under the table.
pub(super) fn summary(w: &Window) -> String {
    let d = |ms: i64| super::text::duration(super::ms(ms));
    format!(
        "{} from {} to {}: external {} (of which up to {} can be polling slack with this \
         build's pauses: 20 ms doubling up to {} ms for health, {} ms for supervisor and \
         servers), the tool's own {} = gaps between steps {} + its own steps {}. A gap runs \
         from the previous outcome record (or the start) to the next intent record; a step \
         from its intent record to its outcome record.",
        d(w.total_ms),
        super::text::clock(w.start),
        super::text::clock(w.end),
        d(w.external_ms),
        d(w.polling_slack_ms),
        HEALTH_POLL_CAP.as_millis(),
        STATUS_POLL_CAP.as_millis(),
        d(w.tool_ms),
        d(w.gaps_ms),
        d(w.tool_steps_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{MetaDb, NodeIx, NodeStep};
    use crate::report::StepResult;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    fn row(key: StepKey, seq: u64, from: i64, to: Option<i64>) -> StepRow {
        StepRow {
            key,
            title: String::new(),
            rollback: false,
            attempt: 1,
            intent_seq: seq,
            started_at: at(from),
            outcome_seq: to.map(|_| seq + 1),
            ended_at: to.map(at),
            duration_ms: to.map(|t| t - from),
            result: StepResult::Done,
            marks: vec![],
            detail: String::new(),
            operator: String::new(),
            host: String::new(),
            node: None,
        }
    }

    /// Every gap, every row's time in the window and the tail.
    fn sum_of_parts(w: &Window) -> i64 {
        w.rows
            .iter()
            .map(|r| r.gap_ms + r.in_window_ms)
            .sum::<i64>()
            + w.tail_ms
    }

    /// A single-node run: T1 inside stop-old, T2 inside enable-ha.
    fn run() -> Vec<StepRow> {
        vec![
            row(StepKey::DisableHa, 10, -100, Some(-80)),
            row(StepKey::StopOldContainer, 12, -5, Some(95)),
            row(StepKey::PruneHeartbeat, 14, 97, Some(150)),
            row(StepKey::Dump { db: MetaDb::Rm }, 16, 151, Some(500)),
            row(StepKey::RenameOldContainer, 18, 510, Some(520)),
            row(StepKey::CreateNewContainer, 20, 522, Some(600)),
            row(StepKey::StartNewContainer, 22, 601, Some(700)),
            row(StepKey::RunDockerInit, 24, 702, Some(900)),
            row(StepKey::ConfirmHealth, 26, 905, Some(1405)),
            row(StepKey::EnableHa, 28, 1407, Some(1430)),
            row(StepKey::Complete, 30, 1432, Some(1432)),
        ]
    }

    #[test]
    fn the_parts_cover_the_window_exactly() {
        let w = breakdown(&run(), at(0), at(1420)).unwrap();
        assert_eq!(w.total_ms, 1420);
        let parts = sum_of_parts(&w);
        assert_eq!(parts, w.total_ms);
        assert_eq!(w.tool_ms + w.external_ms, w.total_ms);
        // disable-ha ended before T1 and complete starts after T2: not in the window.
        let keys: Vec<String> = w.rows.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "stop-old",
                "prune-heartbeat",
                "dump-rm",
                "rename-old",
                "create-new",
                "start-new",
                "docker-init",
                "confirm-health",
                "enable-ha"
            ]
        );
        // stop-old counts from T1, enable-ha up to T2.
        assert_eq!((w.rows[0].gap_ms, w.rows[0].in_window_ms), (0, 95));
        assert_eq!(w.rows[8].in_window_ms, 13);
        assert_eq!(w.tail_ms, 0);
        // Gaps: 2 + 1 + 10 + 2 + 1 + 2 + 5 + 2.
        assert_eq!(w.gaps_ms, 25);
        // Tool steps: prune 53, rename 10, enable-ha 13.
        assert_eq!(w.tool_steps_ms, 76);
        assert_eq!(w.tool_ms, 101);
        // The 500 ms health wait: 20+40+80+100+100+100 fit, so up to one 100 ms pause.
        assert_eq!(w.rows[7].polling_slack_ms, Some(100));
        assert_eq!(w.polling_slack_ms, 100);
    }

    /// Issue 16: the prune's count and DROP (`drop-pruned-heartbeat`, 584 ms for 3.16 M
    /// rows) run after T2 and are no part of the window or of the tool's share.
    #[test]
    fn the_drop_of_the_pruned_rows_is_outside_the_window() {
        let mut steps = run();
        steps.pop();
        steps.push(row(StepKey::DropPrunedHeartbeat, 30, 1431, Some(2015)));
        steps.push(row(StepKey::Complete, 32, 2016, Some(2016)));
        let w = breakdown(&steps, at(0), at(1420)).unwrap();
        assert!(
            w.rows.iter().all(|r| r.key != StepKey::DropPrunedHeartbeat),
            "{w:?}"
        );
        assert_eq!(w, breakdown(&run(), at(0), at(1420)).unwrap());
    }

    #[test]
    fn every_step_is_classified_as_the_issue_lists_it() {
        use StepKey as K;
        let external = [
            K::StopOldContainer,
            K::Dump { db: MetaDb::Cm },
            K::CreateNewContainer,
            K::StartNewContainer,
            K::RunDockerInit,
            K::ConfirmHealth,
            K::CheckSupervisor,
            K::CheckOnline,
            K::Restore { db: MetaDb::Rm },
            K::RestartOldContainer,
            K::ConfirmOldHealth,
            K::StopNewContainer,
            K::Node {
                node: NodeIx(2),
                step: NodeStep::StartNew,
            },
        ];
        for k in external {
            assert_eq!(classify(k).0, Share::External, "{k}");
        }
        let own = [
            K::DisableHa,
            K::PruneHeartbeat,
            K::RenameOldContainer,
            K::OldRestartOff,
            K::EnableHa,
            K::RecreateDatabase { db: MetaDb::CmHb },
            K::RollbackEnableHa,
            K::DropPrunedHeartbeat,
            K::RollbackDropPrunedHeartbeat,
            K::Node {
                node: NodeIx(1),
                step: NodeStep::RenameOld,
            },
        ];
        for k in own {
            assert_eq!(classify(k), (Share::Tool, "tool's own"), "{k}");
        }
        assert_eq!(classify(K::ConfirmHealth).1, "OMS start-up (health)");
    }

    #[test]
    fn overlapping_and_in_doubt_attempts_still_sum_to_the_window() {
        let mut steps = vec![
            row(StepKey::StopOldContainer, 1, -1, Some(50)),
            // Two nodes' starts side by side: the second counts from where the first ended.
            row(StepKey::StartNewContainer, 3, 60, Some(200)),
            row(
                StepKey::Node {
                    node: NodeIx(1),
                    step: NodeStep::StartNew,
                },
                4,
                61,
                Some(260),
            ),
            // In doubt (the process died): its time until the next record is a gap.
            row(StepKey::EnableHa, 6, 270, None),
        ];
        steps[2].node = Some(1);
        let w = breakdown(&steps, at(0), at(300)).unwrap();
        let parts = sum_of_parts(&w);
        assert_eq!(parts, 300);
        assert_eq!(w.rows[2].gap_ms, 0);
        assert_eq!(w.rows[2].in_window_ms, 60);
        assert_eq!(w.rows[2].node, Some(1));
        assert_eq!((w.rows[3].gap_ms, w.rows[3].in_window_ms), (10, 0));
        assert_eq!(w.tail_ms, 30);
        assert_eq!(w.tool_ms, 10 + 10 + 30);
    }

    #[test]
    fn parts_of_fractional_milliseconds_still_sum_to_the_window() {
        // Records carry microseconds: 0.6 ms parts must not each round down to 0.
        let us = |u: i64| at(0) + chrono::Duration::microseconds(u);
        let mut steps = Vec::new();
        for i in 0..10 {
            let mut r = row(StepKey::RenameOldContainer, 10 + 2 * i, 0, Some(0));
            r.started_at = us(600 + 1200 * i as i64);
            r.ended_at = Some(us(1200 + 1200 * i as i64));
            steps.push(r);
        }
        let w = breakdown(&steps, at(0), us(12_300)).unwrap();
        assert_eq!(w.total_ms, 12);
        assert_eq!(w.gaps_ms + w.tool_steps_ms + w.external_ms, 12);
        let parts = sum_of_parts(&w);
        assert_eq!(parts, 12);
    }

    #[test]
    fn an_empty_window_has_no_breakdown_and_the_table_ends_with_the_tail() {
        assert!(breakdown(&run(), at(10), at(10)).is_none());
        let w = breakdown(&run(), at(0), at(2000)).unwrap();
        let c = cells(&w);
        assert_eq!(c.len(), w.rows.len() + 1);
        assert_eq!(c.last().unwrap()[2], "568 ms");
        assert!(summary(&w).contains("the tool's own"));
    }
}
