//! The fleet view: every ledger on the witness, verified and summarised from the witness
//! rows alone (no node, no ledger folder), for `oms-upgrade fleet list|verify|report|export`.
//!
//! [`check_fleet`] is pure. Per ledger it walks the witness rows in seq order and checks
//! each one: two rows at one seq are a **fork**; the stored bytes go through the ledger's
//! own [`Verifier`] (format, BLAKE3 of the body, seq, ledger id, previous-hash chain,
//! payload decoding: the checks of `ledger verify`, `ledger-schema/RECORD.md` 2.3); and the
//! row's hash column must equal the hash the bytes prove. The records that passed are then
//! decoded and replayed by the read side ([`crate::history::from_records`]) and summarised
//! with the per-run report's own builder ([`crate::report::build`]), so a fleet figure (T1,
//! T2, T3, the downtime, the phase) is the figure that run's report shows.
//!
//! Rows alone cannot show a database administrator who rewrote a ledger's rows
//! consistently (re-hashed chain) or deleted its tail: [`state`] keeps the last verified
//! head per ledger outside the database and refuses a witness that does not extend it.
//! [`render`] draws the fleet document in the per-run report's style, and [`export_lines`]
//! writes the export `ledger-schema/verify_export.py` checks without this code.
//!
//! [`read_witness`] is the only part that talks to anything, through the [`Witness`] trait.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::events::EventDecoder;
use crate::history;
use crate::ledger::export::{export_header_for, export_line};
use crate::ledger::record::Record;
use crate::ledger::store::seq_key;
use crate::ledger::verify::Verifier;
use crate::ledger::{Hash, PayloadDecoder};
use crate::replay::Phase;
use crate::report::{self, ChainProblem, Downtime, Verification};
use crate::witness::{Witness, WitnessError, WitnessLedger, WitnessRecord};

pub mod render;
pub mod state;

/// One ledger as the witness holds it: its ledger row and every record row, ordered by
/// seq then hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRows {
    /// The ledger row.
    pub ledger: WitnessLedger,
    /// Every record row of the ledger.
    pub rows: Vec<WitnessRecord>,
}

/// Reads every ledger the witness knows with all its rows.
pub async fn read_witness<W: Witness>(w: &W) -> Result<Vec<LedgerRows>, WitnessError> {
    let mut out = Vec::new();
    for ledger in w.ledgers().await? {
        let mut rows = w.records(ledger.ledger_id, 0).await?;
        // The contract orders them; sorting again costs nothing and makes the fork and
        // gap checks independent of an adapter's ORDER BY.
        rows.sort_by_key(|r| (r.seq, r.hash));
        out.push(LedgerRows { ledger, rows });
    }
    Ok(out)
}

/// What the fleet check found wrong with one ledger's rows: the first problem in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetProblem {
    /// The first bad seq.
    pub seq: u64,
    /// `fork`, `hash_column_mismatch`, `no_records`, `history_inconsistent`, or one of
    /// `ledger verify`'s kinds (`hash_mismatch`, `broken_link`, `gap`, ...; RECORD.md 2.3).
    pub kind: String,
    /// What exactly, with the hashes involved.
    pub detail: String,
}

/// A ledger's run, as its verified records tell it (figures from the per-run report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerSummary {
    /// The run id.
    pub run_id: Option<Uuid>,
    /// Version before.
    pub source_version: Option<String>,
    /// Version upgraded to.
    pub target_version: Option<String>,
    /// The replayed phase.
    pub phase: Phase,
    /// One sentence saying what happened (the report's).
    pub outcome: String,
    /// T1: the old container's stop.
    pub t1: Option<DateTime<Utc>>,
    /// T2: HA re-enabled after the upgrade.
    pub t2: Option<DateTime<Utc>>,
    /// T3: the new container's stop by the rollback.
    pub t3: Option<DateTime<Utc>>,
    /// The downtime.
    pub downtime: Option<Downtime>,
    /// Who recorded the plan.
    pub planned_by: Option<String>,
    /// Every operator that wrote a record.
    pub operators: Vec<String>,
    /// Every host a record was written from.
    pub hosts: Vec<String>,
    /// Time of the first record.
    pub first_record_at: Option<DateTime<Utc>>,
    /// Time of the last record.
    pub last_record_at: Option<DateTime<Utc>>,
}

/// One ledger checked from the witness rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerCheck {
    /// The ledger id.
    pub ledger_id: Uuid,
    /// The node that first pushed it.
    pub node: String,
    /// Record rows the witness holds for it (a fork counts twice).
    pub rows: u64,
    /// Records that passed every check, from seq 1.
    pub verified: u64,
    /// Seq of the last record that passed.
    pub head_seq: Option<u64>,
    /// Its hash, hex.
    pub head_hash: Option<String>,
    /// The first problem in the rows, `None` when they verify.
    pub problem: Option<FleetProblem>,
    /// What the state file (`fleet verify --state`) says of this ledger, when one was given.
    pub state: Option<state::StateFinding>,
    /// The run, from the records that passed (`None` when they do not replay).
    pub summary: Option<LedgerSummary>,
    /// The hash of each verified record, seq 1 first (for the state file's check).
    #[serde(skip)]
    pub chain: Vec<Hash>,
}

impl LedgerCheck {
    /// Rows verified and, with a state file, extending it.
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.state.as_ref().is_none_or(|s| s.ok)
    }

    /// "verified", or the first reason it is not, in a few words (tables).
    pub fn status(&self) -> String {
        match (&self.problem, &self.state) {
            (Some(p), _) => format!("FAILED: {} at seq {}", p.kind, p.seq),
            (None, Some(s)) if !s.ok => format!("FAILED: state {}", s.kind),
            _ => "verified".to_string(),
        }
    }
}

/// Every ledger on the witness, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetCheck {
    /// One entry per ledger, ordered by ledger id.
    pub ledgers: Vec<LedgerCheck>,
    /// Ledgers the state file knows that the witness no longer holds.
    pub missing: Vec<state::StateFinding>,
}

impl FleetCheck {
    /// Every ledger verified (and extending the state file, when one was given).
    pub fn ok(&self) -> bool {
        self.ledgers.iter().all(LedgerCheck::ok) && self.missing.is_empty()
    }

    /// How many ledgers failed (a ledger missing from the witness counts).
    pub fn failed(&self) -> usize {
        self.ledgers.iter().filter(|l| !l.ok()).count() + self.missing.len()
    }
}

/// Checks every ledger (pure).
pub fn check_fleet(all: &[LedgerRows]) -> FleetCheck {
    FleetCheck {
        ledgers: all.iter().map(check_ledger).collect(),
        missing: Vec::new(),
    }
}

/// Checks one ledger's rows and summarises the records that passed (pure).
pub fn check_ledger(l: &LedgerRows) -> LedgerCheck {
    let id = l.ledger.ledger_id;
    let decoder = EventDecoder;
    let mut verifier = Verifier::new(id, None, Some(&decoder as &dyn PayloadDecoder));
    let mut records: Vec<Record> = Vec::new();
    let mut problem = None;
    let rows = &l.rows;
    let mut i = 0;
    while i < rows.len() {
        let row = &rows[i];
        let same_seq: Vec<&WitnessRecord> =
            rows[i..].iter().take_while(|r| r.seq == row.seq).collect();
        if same_seq.len() > 1 {
            let hashes: Vec<String> = same_seq.iter().map(|r| r.hash.to_hex()).collect();
            problem = Some(FleetProblem {
                seq: row.seq,
                kind: "fork".into(),
                detail: format!(
                    "the witness holds {} different records at seq {} ({}): two histories \
                     were written under this ledger id",
                    same_seq.len(),
                    row.seq,
                    hashes.join(", ")
                ),
            });
            break;
        }
        i += 1;
        if row.ledger_id != id {
            problem = Some(FleetProblem {
                seq: row.seq,
                kind: "wrong_ledger_id".into(),
                detail: format!("the row is filed under ledger {}", row.ledger_id),
            });
            break;
        }
        if !verifier.push(&seq_key(row.seq), &row.stored) {
            break;
        }
        // The verifier has just parsed these bytes; a second parse cannot fail.
        let Ok(rec) = Record::parse(&row.stored) else {
            break;
        };
        if rec.hash != row.hash {
            problem = Some(FleetProblem {
                seq: row.seq,
                kind: "hash_column_mismatch".into(),
                detail: format!(
                    "the row's hash column is {}, its stored bytes hash to {}",
                    row.hash, rec.hash
                ),
            });
            break;
        }
        records.push(rec);
    }
    let report = verifier.finish();
    let problem = problem
        .or_else(|| {
            report.problem.as_ref().map(|p| FleetProblem {
                seq: p.seq,
                kind: p.kind.as_str().to_string(),
                detail: p.detail.clone(),
            })
        })
        .or_else(|| {
            rows.is_empty().then(|| FleetProblem {
                seq: 1,
                kind: "no_records".into(),
                detail: "the witness knows this ledger but holds none of its records".into(),
            })
        });
    let chain: Vec<Hash> = records.iter().map(|r| r.hash).collect();
    let head = records.last().map(|r| (r.seq, r.hash));
    let (summary, history_problem) = summarize(id, &records, head, problem.as_ref());
    LedgerCheck {
        ledger_id: id,
        node: l.ledger.node.clone(),
        rows: rows.len() as u64,
        verified: records.len() as u64,
        head_seq: head.map(|h| h.0),
        head_hash: head.map(|h| h.1.to_hex()),
        problem: problem.or(history_problem),
        state: None,
        summary,
        chain,
    }
}

/// Replays the verified records and summarises them with the per-run report's builder;
/// a history that does not replay is a problem of its own.
fn summarize(
    id: Uuid,
    records: &[Record],
    head: Option<(u64, Hash)>,
    problem: Option<&FleetProblem>,
) -> (Option<LedgerSummary>, Option<FleetProblem>) {
    if records.is_empty() {
        return (None, None);
    }
    let h = match history::from_records(records) {
        Ok(h) => h,
        Err(e) => {
            let seq = match &e {
                history::HistoryError::Undecodable { seq, .. }
                | history::HistoryError::Inconsistent { seq, .. }
                | history::HistoryError::Broken { seq, .. } => *seq,
                history::HistoryError::Ledger(_) => 1,
            };
            let p = FleetProblem {
                seq,
                kind: "history_inconsistent".into(),
                detail: e.to_string(),
            };
            return (None, Some(p));
        }
    };
    let verification = Verification {
        ledger_id: id,
        chain_intact: problem.is_none(),
        records_verified: records.len() as u64,
        head_seq: head.map(|h| h.0),
        head_hash: head.map(|h| h.1.to_hex()),
        problem: problem.map(|p| ChainProblem {
            seq: p.seq,
            kind: p.kind.clone(),
            detail: p.detail.clone(),
        }),
        anchor: None,
        // The dump files are on the nodes, not on the witness.
        dumps: Vec::new(),
    };
    let r = report::build(&h.records, &h.state, verification);
    let summary = LedgerSummary {
        run_id: r.run.run_id,
        source_version: r.plan.as_ref().map(|p| p.source_version.clone()),
        target_version: r.plan.as_ref().map(|p| p.target_version.clone()),
        phase: r.outcome.phase,
        outcome: r.outcome.summary.clone(),
        t1: r.times.t1.as_ref().map(|m| m.at),
        t2: r.times.t2.as_ref().map(|m| m.at),
        t3: r.times.t3.as_ref().map(|m| m.at),
        downtime: r.times.downtime.clone(),
        planned_by: r.run.planned_by.clone(),
        operators: r.run.operators.clone(),
        hosts: r.run.hosts.clone(),
        first_record_at: r.run.first_record_at,
        last_record_at: r.run.last_record_at,
    };
    (Some(summary), None)
}

/// The export of one ledger from its witness rows, in the `ledger export` format
/// (`ledger-schema/RECORD.md` section 4): a header line, then one line per row in (seq,
/// hash) order with the exact stored bytes, forks included (an export is evidence). The
/// lines of several ledgers, one after the other, are a fleet export.
pub fn export_lines(l: &LedgerRows) -> Vec<Value> {
    let mut out = vec![export_header_for(l.ledger.ledger_id)];
    out.extend(
        l.rows
            .iter()
            .map(|r| export_line(&seq_key(r.seq), &r.stored, &EventDecoder)),
    );
    out
}

#[cfg(test)]
mod tests;
