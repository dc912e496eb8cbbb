//! The executor's view of the ledger: decoded events in, validated events out.
//!
//! Every event goes through [`State::check`] before it is appended, so nothing the core
//! would reject ever reaches the ledger, and the in-memory state is only advanced after
//! the ledger has made the record durable. The state is rebuilt from the ledger on open:
//! nothing about a run is remembered anywhere else.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::events::{self, Event, Finding, PreflightCheck, Recorded};
use crate::ledger::{Ledger, LedgerError, LedgerView, NewRecord, Record};
use crate::redact::redact;
use crate::replay::{Rejection, State};

/// Why the journal could not load or record.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The ledger itself failed (busy, missing, not durable, ...).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A stored record's payload does not decode as an event.
    #[error("ledger record {seq} cannot be decoded ({detail}); run `oms-upgrade ledger verify`")]
    Undecodable {
        /// The record.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// A stored record does not fit the run's history (the ledger was edited or mixes runs).
    #[error(
        "ledger record {seq} does not fit the run's history: {rejection}; run `oms-upgrade ledger verify`"
    )]
    Inconsistent {
        /// The record.
        seq: u64,
        /// What the core said.
        rejection: Rejection,
    },
    /// The hash chain is broken: the record was altered, so nothing may act on it.
    #[error(
        "the ledger's hash chain is broken at record {seq}: {detail}; nothing was done. Run `oms-upgrade ledger verify`"
    )]
    Broken {
        /// The first bad record.
        seq: u64,
        /// What is wrong there.
        detail: String,
    },
    /// The event to record is not permitted in the current state.
    #[error("refused to record {event}: {rejection}")]
    Rejected {
        /// Event type name.
        event: &'static str,
        /// What the core said.
        rejection: Rejection,
    },
}

/// The ledger opened for writing, with the state replayed from it.
pub struct Journal {
    ledger: Ledger,
    state: State,
    operator: String,
    host: String,
}

impl Journal {
    /// Opens (creating if absent) the ledger in `dir` for writing and replays it.
    pub fn open(dir: &Path, operator: &str, host: &str) -> Result<Journal, JournalError> {
        Self::from_ledger(Ledger::open_writer(dir)?, operator, host)
    }

    /// Opens an existing ledger for writing and replays it.
    pub fn open_existing(dir: &Path, operator: &str, host: &str) -> Result<Journal, JournalError> {
        Self::from_ledger(Ledger::open_existing_writer(dir)?, operator, host)
    }

    fn from_ledger(ledger: Ledger, operator: &str, host: &str) -> Result<Journal, JournalError> {
        let (_, state) = replay_view(ledger.view())?;
        Ok(Journal {
            ledger,
            state,
            operator: operator.to_string(),
            host: host.to_string(),
        })
    }

    /// The state as of the last durable record.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Who records (operator name).
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The ledger folder.
    pub fn dir(&self) -> &Path {
        self.ledger.dir()
    }

    /// The underlying ledger (for checkpoints).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Checks `event` against the state, appends it durably, then advances the state.
    pub fn record(
        &mut self,
        run_id: Uuid,
        at: DateTime<Utc>,
        event: Event,
    ) -> Result<u64, JournalError> {
        let event = masked(event);
        self.state
            .check(run_id, &event)
            .map_err(|rejection| JournalError::Rejected {
                event: event.type_name(),
                rejection,
            })?;
        let enc = events::encode(&event);
        let rec = self.ledger.append(NewRecord {
            timestamp_micros: at.timestamp_micros(),
            operator: &self.operator,
            host: &self.host,
            run_id,
            event_type: enc.event_type,
            schema_version: enc.schema_version,
            payload: &enc.payload,
        })?;
        let recorded = Recorded {
            seq: rec.seq,
            at,
            operator: self.operator.clone(),
            host: self.host.clone(),
            run_id,
            event,
        };
        // check() passed, so apply() can only fail on a core bug; surface it rather than hide it.
        self.state
            .apply(&recorded)
            .map_err(|rejection| JournalError::Inconsistent {
                seq: rec.seq,
                rejection,
            })?;
        Ok(rec.seq)
    }
}

/// Decodes one ledger record into the core's view.
pub fn to_recorded(rec: &Record) -> Result<Recorded, JournalError> {
    let event = events::decode(&rec.event_type, rec.schema_version, &rec.payload).map_err(|e| {
        JournalError::Undecodable {
            seq: rec.seq,
            detail: e.to_string(),
        }
    })?;
    let at = Utc
        .timestamp_micros(rec.timestamp_micros)
        .single()
        .ok_or_else(|| JournalError::Undecodable {
            seq: rec.seq,
            detail: "timestamp out of range".into(),
        })?;
    Ok(Recorded {
        seq: rec.seq,
        at,
        operator: rec.operator.clone(),
        host: rec.host.clone(),
        run_id: rec.run_id,
        event,
    })
}

/// Replays a ledger read-only (for `status`, `plan`, reports): the records and the state.
pub fn replay_dir(dir: &Path) -> Result<(Vec<Recorded>, State), JournalError> {
    replay_view(crate::ledger::LedgerReader::open(dir)?.view())
}

/// `event` with secrets masked in its free text ([`crate::redact`]): failure messages and
/// evidence quote what children and servers said, a rollback's reason is often such a
/// failure, and a note is typed by hand. Every event passes here on its way to the ledger,
/// so nothing is recorded unmasked whoever builds it. Structured facts are masked where
/// they are made (container env in [`events::record_env`], `docker_init.sh`'s output by
/// the executor), and the plan is left alone: its digest is computed by its builder.
fn masked(event: Event) -> Event {
    let text = |s: String| match redact(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(m) => m,
    };
    match event {
        Event::StepFailed {
            key,
            error,
            retryable,
            facts,
        } => Event::StepFailed {
            key,
            error: text(error),
            retryable,
            facts,
        },
        Event::StepReconciled {
            key,
            finding,
            evidence,
        } => Event::StepReconciled {
            key,
            finding: match finding {
                Finding::Failed { error, retryable } => Finding::Failed {
                    error: text(error),
                    retryable,
                },
                other => other,
            },
            evidence: text(evidence),
        },
        Event::PreflightFailed { checks } => Event::PreflightFailed {
            checks: checks
                .into_iter()
                .map(|c| PreflightCheck {
                    detail: text(c.detail),
                    ..c
                })
                .collect(),
        },
        Event::RollbackRequested { reason } => Event::RollbackRequested {
            reason: text(reason),
        },
        Event::Note { text: note } => Event::Note { text: text(note) },
        other => other,
    }
}

/// Verifies the whole hash chain, then replays it. Nothing (writer or reader) acts on, or
/// shows, a state built from an altered record: a run has tens of records, so the extra
/// pass costs nothing next to what acting on a forged history could.
fn replay_view(view: &LedgerView) -> Result<(Vec<Recorded>, State), JournalError> {
    let report = crate::ledger::verify_chain(view, None)?;
    if let Some(p) = report.problem {
        return Err(JournalError::Broken {
            seq: p.seq,
            detail: p.detail,
        });
    }
    let mut state = State::new();
    let mut all = Vec::new();
    for rec in view.records() {
        let recorded = to_recorded(&rec?)?;
        state
            .apply(&recorded)
            .map_err(|rejection| JournalError::Inconsistent {
                seq: recorded.seq,
                rejection,
            })?;
        all.push(recorded);
    }
    Ok((all, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::samples;

    /// A new journal in `dir` holding the sample plan, and the run's id.
    fn planned(dir: &Path) -> (Journal, Uuid) {
        let plan = samples::plan();
        let run_id = plan.run_id;
        let mut j = Journal::open(dir, "op", "host").unwrap();
        j.record(run_id, samples::t0(), Event::planned(plan))
            .unwrap();
        (j, run_id)
    }

    /// A writer (and a reader) refuses a ledger whose chain was altered behind its back (here: one byte
    /// of the plan's payload, rewritten through sled's own API so sled's CRCs stay valid).
    #[test]
    fn altered_ledger_is_refused_before_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, run_id) = planned(dir.path());
            j.record(run_id, samples::t0(), Event::Note { text: "ok".into() })
                .unwrap();
            assert!(
                Journal::open(dir.path(), "op", "host").is_err(),
                "one writer at a time"
            );
        }
        assert!(Journal::open(dir.path(), "op", "host").is_ok());
        {
            let db = sled::Config::new()
                .path(dir.path())
                .segment_size(8 << 20)
                .open()
                .unwrap();
            let records = db.open_tree("records").unwrap();
            let mut v = records.get(1u64.to_be_bytes()).unwrap().unwrap().to_vec();
            let i = v.len() - 40;
            v[i] ^= 1;
            records.insert(1u64.to_be_bytes(), v).unwrap();
            db.flush().unwrap();
        }
        match Journal::open(dir.path(), "op", "host") {
            Err(JournalError::Broken { seq, .. }) => assert_eq!(seq, 1),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("an altered ledger was accepted"),
        }
        // Readers (`status`, `plan`) refuse it too rather than show a forged history.
        match replay_dir(dir.path()) {
            Err(JournalError::Broken { seq, .. }) => assert_eq!(seq, 1),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("an altered ledger was shown"),
        }
    }

    /// Regression (issue 10): a failure's text (which quotes a child's output) and the
    /// evidence of a reconciliation went into the ledger as they were, secrets included.
    #[test]
    fn recorded_text_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, run_id) = planned(dir.path());
        let key = events::StepKey::DisableHa;
        j.record(run_id, samples::t0(), Event::StepIntent { key })
            .unwrap();
        j.record(
            run_id,
            samples::t0(),
            Event::StepFailed {
                key,
                error: "exec failed: mysql -uroot -pfail-pw-1 said: url=mysql://oms:fail-pw-2@h"
                    .into(),
                retryable: true,
                facts: None,
            },
        )
        .unwrap();
        j.record(
            run_id,
            samples::t0(),
            Event::RollbackRequested {
                reason: "the step failed: password=fail-pw-3".into(),
            },
        )
        .unwrap();
        let stored: Vec<u8> = j
            .ledger()
            .view()
            .records()
            .flat_map(|r| r.unwrap().payload)
            .collect();
        let stored = String::from_utf8_lossy(&stored);
        for pw in ["fail-pw-1", "fail-pw-2", "fail-pw-3"] {
            assert!(!stored.contains(pw), "{pw} stored");
        }
        assert!(
            stored.contains("-p*** said: url=mysql://oms:***@h"),
            "{stored}"
        );
    }
}
