//! The executor's view of the ledger: decoded events in, validated events out.
//!
//! Every event goes through [`State::check`] before it is appended, so nothing the core
//! would reject ever reaches the ledger, and the in-memory state is only advanced after
//! the ledger has made the record durable. The state is rebuilt from the ledger on open,
//! through the one read side ([`crate::history::load`], chain verified first): nothing
//! about a run is remembered anywhere else.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::{self, Event, Finding, PreflightCheck, Recorded};
use crate::history::{self, HistoryError, Verify};
use crate::ledger::record::MAX_RECORD_LEN;
use crate::ledger::{Ledger, LedgerError, NewRecord};
use crate::redact::redact;
use crate::replay::{Rejection, State};
use crate::witness::bridge::{CatchUp, Mirror};
use crate::witness::{WitnessError, WitnessPolicy};

/// Why the journal could not load or record.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The ledger itself failed (busy, missing, not durable, ...).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger's history cannot be read: a record does not decode or fit the run, or
    /// the chain is broken ([`crate::history`]).
    #[error(transparent)]
    History(HistoryError),
    /// The event's record would exceed the ledger's record cap; nothing was appended.
    #[error(
        "the {event} record would be {len} bytes, over the ledger's {max}-byte cap for one \
         record; nothing was appended"
    )]
    TooLarge {
        /// Event type name.
        event: &'static str,
        /// The record's encoded length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The event to record is not permitted in the current state.
    #[error("refused to record {event}: {rejection}")]
    Rejected {
        /// Event type name.
        event: &'static str,
        /// What the core said.
        rejection: Rejection,
    },
    /// The witness (issue 14) did not take what it had to: a fork (under either policy),
    /// or, under the `required` policy, any failure. `when` says whether a record was
    /// appended locally first.
    #[error("{when}: {source}")]
    Witness {
        /// At which point.
        when: WitnessWhen,
        /// What the witness said.
        #[source]
        source: WitnessError,
    },
}

/// When the witness failed the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessWhen {
    /// Bringing the witness up to the local ledger when the journal was opened; nothing
    /// was recorded. `local_head` is the local ledger's last seq.
    CatchUp {
        /// The local ledger's last seq.
        local_head: u64,
    },
    /// Pushing a record that is durable in the local ledger (up to `seq`).
    Record {
        /// The last seq appended locally.
        seq: u64,
    },
}

impl std::fmt::Display for WitnessWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessWhen::CatchUp { local_head } => write!(
                f,
                "the witness could not be brought up to this ledger (head seq {local_head}) \
                 before acting; nothing was recorded"
            ),
            WitnessWhen::Record { seq } => write!(
                f,
                "record {seq} is durable in the local ledger but the witness does not hold it"
            ),
        }
    }
}

impl From<HistoryError> for JournalError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Ledger(l) => JournalError::Ledger(l),
            other => JournalError::History(other),
        }
    }
}

/// The ledger opened for writing, with the state replayed from it.
pub struct Journal {
    ledger: Ledger,
    state: State,
    operator: String,
    host: String,
    /// The witness every record is pushed to after its local append (issue 14).
    mirror: Option<Mirror>,
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
        let state = history::load(ledger.view(), Verify::Chain)?.state;
        Ok(Journal {
            ledger,
            state,
            operator: operator.to_string(),
            host: host.to_string(),
            mirror: None,
        })
    }

    /// From now on, every record is pushed to `mirror`'s witness after its local append.
    /// First the witness is brought up to the local ledger (every record it lacks is
    /// pushed), so that nothing is recorded or done while it is behind: under the
    /// `required` policy a witness that cannot be reached is an error here
    /// ([`WitnessWhen::CatchUp`]: nothing was recorded); under `best-effort` it is a
    /// warning and the journal goes on. A fork is an error under both.
    pub fn attach_mirror(&mut self, mut mirror: Mirror) -> Result<Option<CatchUp>, JournalError> {
        let local_head = self.ledger.head().map_or(0, |(seq, _)| seq);
        let result = mirror.catch_up(self.ledger.view());
        let policy = mirror.policy();
        self.mirror = Some(mirror);
        match result {
            Ok(c) => Ok(Some(c)),
            Err(e) if policy == WitnessPolicy::BestEffort && !is_fork(&e) => {
                if let Some(m) = &mut self.mirror {
                    m.warn_once(&e);
                }
                Ok(None)
            }
            Err(source) => Err(JournalError::Witness {
                when: WitnessWhen::CatchUp { local_head },
                source,
            }),
        }
    }

    /// The witness this journal pushes to, if any.
    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref()
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
    ///
    /// An outcome whose per-table facts would not fit one record is recorded as
    /// `step.tables` slices followed by the outcome ([`events::split_outcome`]), in one
    /// atomic batch: after a crash either all of them are stored or none. Free text taken
    /// from programs (error messages, evidence) is cut to fit, with a marker and the BLAKE3
    /// of the whole ([`events::bound_text`]). Every record is checked against the state and
    /// against the record cap before anything is appended, so an event that cannot be
    /// recorded is a typed error ([`JournalError::TooLarge`]) that leaves the ledger as it
    /// was. Returns the last record's seq.
    ///
    /// With a witness attached ([`Journal::attach_mirror`]), the records are then pushed
    /// to it (with any it still lacks). [`JournalError::Witness`] with
    /// [`WitnessWhen::Record`] means the record IS durable locally (and the state
    /// advanced) but the witness does not hold it: under `required` the caller must not
    /// act on it; the next journal opened with the witness pushes it first.
    pub fn record(
        &mut self,
        run_id: Uuid,
        at: DateTime<Utc>,
        event: Event,
    ) -> Result<u64, JournalError> {
        let batch = events::split_outcome(events::bound_text(masked(event)));
        let first_seq = self.ledger.head().map_or(1, |(seq, _)| seq + 1);
        let mut next = self.state.clone();
        let mut encoded = Vec::with_capacity(batch.len());
        for (i, event) in batch.into_iter().enumerate() {
            next.check(run_id, &event)
                .map_err(|rejection| JournalError::Rejected {
                    event: event.type_name(),
                    rejection,
                })?;
            let enc = events::encode(&event);
            let len = crate::ledger::record::encoded_len(&new_record(
                (&self.operator, &self.host),
                run_id,
                at,
                &enc,
            ));
            if len > MAX_RECORD_LEN {
                return Err(JournalError::TooLarge {
                    event: enc.event_type,
                    len,
                    max: MAX_RECORD_LEN,
                });
            }
            let recorded = Recorded {
                seq: first_seq + i as u64,
                at,
                operator: self.operator.clone(),
                host: self.host.clone(),
                run_id,
                event,
            };
            // check() passed, so apply() can only fail on a core bug; surface it.
            next.apply(&recorded).map_err(|rejection| {
                JournalError::History(HistoryError::Inconsistent {
                    seq: recorded.seq,
                    rejection,
                })
            })?;
            encoded.push(enc);
        }
        self.witness_caught_up(first_seq - 1)?;
        let news: Vec<NewRecord<'_>> = encoded
            .iter()
            .map(|enc| new_record((&self.operator, &self.host), run_id, at, enc))
            .collect();
        let appended = match news.as_slice() {
            [one] => vec![self.ledger.append(*one)?],
            many => self.ledger.append_batch(many)?,
        };
        let last = appended.last().map_or(first_seq, |r| r.seq);
        debug_assert_eq!(last + 1, first_seq + news.len() as u64);
        self.state = next;
        self.ship(appended, last)?;
        Ok(last)
    }

    /// Under `required`, nothing new is appended while the witness is known to lack an
    /// earlier record (a push of this journal failed): the records it lacks are pushed
    /// first, and if that fails too the new record is refused, so the witness is never
    /// more than the in-flight record behind. `local_head` is the last durable seq.
    fn witness_caught_up(&mut self, local_head: u64) -> Result<(), JournalError> {
        let Some(mirror) = &mut self.mirror else {
            return Ok(());
        };
        if mirror.policy() != WitnessPolicy::Required || mirror.witnessed() >= local_head {
            return Ok(());
        }
        mirror
            .catch_up(self.ledger.view())
            .map(|_| ())
            .map_err(|source| JournalError::Witness {
                when: WitnessWhen::CatchUp { local_head },
                source,
            })
    }

    /// Pushes just-appended records to the witness, if one is attached, under its policy.
    fn ship(
        &mut self,
        appended: Vec<crate::ledger::Record>,
        last: u64,
    ) -> Result<(), JournalError> {
        let Some(mirror) = &mut self.mirror else {
            return Ok(());
        };
        match mirror.ship(self.ledger.view(), appended) {
            Ok(()) => Ok(()),
            Err(e) if mirror.policy() == WitnessPolicy::BestEffort && !is_fork(&e) => {
                mirror.warn_once(&e);
                Ok(())
            }
            Err(source) => Err(JournalError::Witness {
                when: WitnessWhen::Record { seq: last },
                source,
            }),
        }
    }
}

/// A fork stops every run, whatever the policy: two histories under one ledger id.
fn is_fork(e: &WitnessError) -> bool {
    matches!(e, WitnessError::Fork { .. })
}

/// The record for an encoded event, as the journal appends it.
fn new_record<'a>(
    (operator, host): (&'a str, &'a str),
    run_id: Uuid,
    at: DateTime<Utc>,
    enc: &'a events::Encoded,
) -> NewRecord<'a> {
    NewRecord {
        timestamp_micros: at.timestamp_micros(),
        operator,
        host,
        run_id,
        event_type: enc.event_type,
        schema_version: enc.schema_version,
        payload: &enc.payload,
    }
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
            kind,
        } => Event::StepFailed {
            key,
            error: text(error),
            retryable,
            facts,
            kind,
        },
        Event::StepReconciled {
            key,
            finding,
            evidence,
        } => Event::StepReconciled {
            key,
            finding: match finding {
                Finding::Failed {
                    error,
                    retryable,
                    kind,
                } => Finding::Failed {
                    error: text(error),
                    retryable,
                    kind,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{FailureKind, MetaDb, StepFacts, StepKey, samples};
    use crate::replay::Outcome;
    use crate::replay::build::Records;

    /// Issue 10, item 11: the facts of a dump of 2,000 tables (about 200 KB) are recorded
    /// however many tables there are, and replay gives them back whole and in order.
    #[test]
    fn a_dump_of_two_thousand_tables_is_recorded_and_replayed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Records::planned(samples::plan());
        rec.done_until(StepKey::Dump { db: MetaDb::Cm });
        rec.intent(StepKey::Dump { db: MetaDb::Cm }).unwrap();
        let run_id = rec.run_id();
        let mut j = Journal::open(dir.path(), "op", "host").unwrap();
        for r in &rec.events {
            j.record(run_id, r.at, r.event.clone()).unwrap();
        }
        let StepFacts::DumpWritten(mut a) = rec.facts(StepKey::Dump { db: MetaDb::Cm }) else {
            panic!("not a dump")
        };
        a.tables = samples::many_tables(2000);
        let want = a.tables.clone();
        let key = StepKey::Dump { db: MetaDb::Cm };
        j.record(
            run_id,
            rec.now,
            Event::StepDone {
                key,
                facts: StepFacts::DumpWritten(a),
            },
        )
        .unwrap_or_else(|e| panic!("the dump's outcome was not recorded: {e}"));
        assert_eq!(j.state().artifact(MetaDb::Cm).unwrap().tables, want);
        drop(j);
        let history::History {
            records: recorded,
            state,
        } = history::load_dir(dir.path(), Verify::Chain).unwrap();
        assert_eq!(state.artifact(MetaDb::Cm).unwrap().tables, want);
        assert!(
            recorded
                .iter()
                .filter(|r| matches!(r.event, Event::StepTables { .. }))
                .count()
                >= 2,
            "the facts were split over several records"
        );
    }

    /// A journal in `dir` with the sample plan recorded.
    fn planned(dir: &Path) -> (Journal, Uuid) {
        let plan = samples::plan();
        let run_id = plan.run_id;
        let mut j = Journal::open(dir, "op", "host").unwrap();
        j.record(run_id, samples::t0(), Event::planned(plan))
            .unwrap();
        (j, run_id)
    }

    /// An event whose record would exceed the cap is a typed error, raised before anything
    /// is appended; the ledger stays usable.
    #[test]
    fn an_oversized_record_is_refused_before_the_append() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, run_id) = planned(dir.path());
        let head = j.ledger().head();
        let big = Event::Note {
            text: "x".repeat(70 * 1024),
        };
        match j.record(run_id, samples::t0(), big) {
            Err(JournalError::TooLarge { event, len, max }) => {
                assert_eq!(event, "note");
                assert!(len > max);
            }
            other => panic!("not refused as too large: {other:?}"),
        }
        assert_eq!(j.ledger().head(), head, "nothing was appended");
        j.record(run_id, samples::t0(), Event::Note { text: "ok".into() })
            .unwrap();
        // Free text from a program (here a 100 KiB error) is cut to fit, behind a marker
        // with the whole text's hash, and recorded.
        let key = StepKey::DisableHa;
        j.record(run_id, samples::t0(), Event::StepIntent { key })
            .unwrap();
        let error = "e".repeat(100 * 1024);
        j.record(
            run_id,
            samples::t0(),
            Event::StepFailed {
                key,
                error: error.clone(),
                retryable: true,
                facts: None,
                kind: FailureKind::Service,
            },
        )
        .unwrap();
        let Some(Outcome::Failed { error: kept, .. }) = &j.state().attempts()[0].outcome else {
            panic!("no failure recorded")
        };
        assert!(kept.len() < 9 * 1024, "{}", kept.len());
        assert!(kept.contains(&blake3::hash(error.as_bytes()).to_hex().to_string()));
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
        history::tests::flip_stored_byte(dir.path(), 1);
        match Journal::open(dir.path(), "op", "host") {
            Err(JournalError::History(HistoryError::Broken { seq, .. })) => assert_eq!(seq, 1),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("an altered ledger was accepted"),
        }
        // Readers (`status`, `plan`) refuse it too rather than show a forged history.
        match history::load_dir(dir.path(), Verify::Chain) {
            Err(HistoryError::Broken { seq, .. }) => assert_eq!(seq, 1),
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
                kind: FailureKind::Service,
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
