//! The one error path of the CLI edge: every typed library error becomes a [`CliError`]
//! here (message, hint, exit kind, and the error's source chain), through `From` impls,
//! so a command writes `?` and the classification lives in one place.
//!
//! Exit codes are documented in the README ("Exit codes"); [`ExitKind::code`] is the table.

use std::process::ExitCode;

use crate::adapters::{DockerError, HealthError, MetaDbError};
use crate::dump::{DumpError, ErrorClass};
use crate::events::{FailureKind, StepKey};
use crate::executor::{ExecError, JournalError};
use crate::history::HistoryError;
use crate::ledger::sign::KeyError;
use crate::ledger::{AnchorError, LedgerError};
use crate::replay::Rejection;
use crate::witness::{TargetError, WitnessError};

/// How a failure is classified; each kind has one exit code, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A bug or an unexpected condition inside oms-upgrade.
    Internal,
    /// A record, checkpoint, dump file or live state does not match what was recorded.
    Integrity,
    /// The ledger is held by another running oms-upgrade.
    Busy,
    /// Bad input or configuration: a missing file, a folder that is not a ledger, bad values.
    Input,
    /// Docker, the metadata database or OMS itself failed or could not be reached.
    Service,
    /// The request is understood but refused: step not permitted, preflight failed, declined.
    Refused,
    /// SIGINT or SIGTERM stopped the command (a dump: its child, partial file and password
    /// file are gone).
    Interrupted,
}

impl ExitKind {
    /// Every kind, for the documentation test that keeps the README's table true.
    pub const ALL: [ExitKind; 7] = [
        ExitKind::Internal,
        ExitKind::Integrity,
        ExitKind::Busy,
        ExitKind::Input,
        ExitKind::Service,
        ExitKind::Refused,
        ExitKind::Interrupted,
    ];

    /// The process exit code for this kind.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Internal => 1,
            ExitKind::Integrity => 3,
            ExitKind::Busy => 4,
            ExitKind::Input => 5,
            ExitKind::Service => 6,
            ExitKind::Refused => 7,
            ExitKind::Interrupted => 130,
        }
    }

    /// The kind whose exit code is `code` (a child oms-upgrade's, as `demo` sees it).
    pub fn from_code(code: u8) -> Option<ExitKind> {
        ExitKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The exit kind of a step failure of `kind`: the ledger's failure record decides it,
    /// not the step's name. A failure recorded before kinds were recorded (an old ledger)
    /// counts as a service failure, as every step failure did then.
    pub fn of_failure(kind: FailureKind) -> ExitKind {
        match kind {
            FailureKind::Integrity => ExitKind::Integrity,
            FailureKind::Refused => ExitKind::Refused,
            FailureKind::Service | FailureKind::Unrecorded => ExitKind::Service,
        }
    }
}

/// An error at the CLI edge: what happened, what to do next, the exit kind, and the chain
/// of underlying errors that the message does not already say.
#[derive(Debug)]
pub struct CliError {
    /// Exit classification.
    pub kind: ExitKind,
    /// One line saying what happened.
    pub message: String,
    /// What the user should do next, if we know.
    pub hint: Option<String>,
    /// The source chain, outermost first (`caused by:` lines; `causes` in `--json`).
    pub causes: Vec<String>,
}

impl CliError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            hint: None,
            causes: Vec::new(),
        }
    }

    /// A new error of `kind` whose message is `e`'s, keeping `e`'s source chain.
    pub fn from_error(kind: ExitKind, e: &(dyn std::error::Error + 'static)) -> Self {
        CliError::new(kind, e.to_string()).caused_by(e.source())
    }

    /// Adds a hint line ("Hint: ...").
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Keeps the chain starting at `source`. A cause whose text the message (or an earlier
    /// cause) already contains is left out: thiserror messages often quote their source,
    /// and the same words twice are noise, not evidence.
    pub fn caused_by(mut self, source: Option<&(dyn std::error::Error + 'static)>) -> Self {
        let mut next = source;
        while let Some(e) = next {
            let text = e.to_string();
            let said =
                self.message.contains(&text) || self.causes.iter().any(|c| c.contains(&text));
            if !said && !text.is_empty() {
                self.causes.push(text);
            }
            next = e.source();
        }
        self
    }

    /// Prints the error (stderr; with `json`, also the JSON object on stdout) and returns
    /// the process exit code of its kind.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            println!("{}", self.to_json());
        }
        eprintln!("error: {}", self.message);
        for c in &self.causes {
            eprintln!("caused by: {c}");
        }
        if let Some(h) = &self.hint {
            eprintln!("hint: {h}");
        }
        ExitCode::from(self.kind.code())
    }

    /// The `--json` form of the error.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": false,
            "error": {
                "kind": format!("{:?}", self.kind),
                "message": self.message,
                "hint": self.hint,
                "causes": self.causes,
            },
            "exit_code": self.kind.code(),
        })
    }
}

impl From<JournalError> for CliError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Ledger(l) => l.into(),
            JournalError::History(h) => h.into(),
            e @ JournalError::Rejected { .. } => CliError::from_error(ExitKind::Internal, &e),
            e @ JournalError::TooLarge { .. } => CliError::from_error(ExitKind::Input, &e).hint(
                "shorten the text given (a note, a reason, an attestation); if oms-upgrade produced \
                 the record itself, report it: the step's outcome is not recorded yet, and the next \
                 `oms-upgrade run` checks the step against reality first",
            ),
            e @ JournalError::Witness {
                source: crate::witness::WitnessError::Fork { .. },
                ..
            } => CliError::from_error(ExitKind::Integrity, &e).hint(
                "the run stopped and pushes nothing further: two histories were written under \
                 this ledger id (another ledger folder, or a copy of this one, was pushed to the \
                 witness). `oms-upgrade ledger verify --witness URL` names where they part",
            ),
            e @ JournalError::Witness {
                when: crate::executor::WitnessWhen::CatchUp { .. },
                ..
            } => CliError::from_error(ExitKind::Service, &e).hint(
                "nothing was done: under the witness policy `required` nothing is recorded or \
                 changed while the witness lacks a record of this ledger. Run the same command \
                 again when the witness is back (it pushes the missing records first)",
            ),
            e @ JournalError::Witness { .. } => CliError::from_error(ExitKind::Service, &e).hint(
                "the command stopped right after that record, before acting on it (witness \
                 policy `required`). Run it again when the witness is back: the missing records \
                 are pushed first, and a step whose intent is recorded is checked against \
                 reality before anything is repeated",
            ),
        }
    }
}

impl From<HistoryError> for CliError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Ledger(l) => l.into(),
            e @ (HistoryError::Undecodable { .. }
            | HistoryError::Inconsistent { .. }
            | HistoryError::Broken { .. }) => CliError::from_error(ExitKind::Integrity, &e)
                .hint("run `oms-upgrade ledger verify` to see where the record is damaged"),
        }
    }
}

impl From<ExecError> for CliError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Journal(j) => j.into(),
            e @ ExecError::NotPlanned => CliError::new(ExitKind::Refused, e.to_string()),
            ExecError::StepFailed {
                key,
                error,
                retryable,
                kind,
            } => step_failed(key, &error, retryable, kind),
            ExecError::Blocked { reason } => {
                CliError::new(ExitKind::Refused, reason).hint("`oms-upgrade status` shows the run")
            }
            e @ ExecError::Declined { .. } => CliError::new(ExitKind::Refused, e.to_string())
                .hint("pass --yes to run without asking"),
            ExecError::RollbackRefused(r) => {
                CliError::new(ExitKind::Refused, format!("rollback refused: {r}"))
                    .hint("`oms-upgrade status` shows the run")
            }
        }
    }
}

/// A failed step: the exit code follows the kind its failure record carries; the hint says
/// what may be done next.
fn step_failed(key: StepKey, error: &str, retryable: bool, kind: FailureKind) -> CliError {
    let exit = ExitKind::of_failure(kind);
    // The check right before T1 found that something `init` relied on has changed.
    if key == StepKey::PreStopCheck && retryable {
        return CliError::new(exit, format!("refusing to stop the old container: {error}")).hint(
            "fix what the message names, then `oms-upgrade run` checks again; or `oms-upgrade rollback` to abandon the run (it puts HA back as it was)",
        );
    }
    let again = if key.is_rollback() {
        "oms-upgrade rollback"
    } else {
        "oms-upgrade run"
    };
    let hint = match (kind, retryable, key.is_rollback()) {
        (FailureKind::Integrity, true, _) => format!(
            "the dumps must be exactly what the ledger recorded: put the original files back, then `{again}` checks them again"
        ),
        (FailureKind::Integrity, false, _) => format!(
            "step {key} may not be retried: the content does not match the record; restore by hand from a verified copy and record it with `oms-upgrade note`"
        ),
        (FailureKind::Refused, true, _) => format!(
            "the failure is recorded; put back what the message says the plan expects, then `{again}` tries the step again{}",
            if key.is_rollback() { "" } else { " (or `oms-upgrade rollback`)" }
        ),
        (_, true, false) => "the failure is recorded; fix the cause, then `oms-upgrade run` retries the step (or `oms-upgrade rollback`)".to_string(),
        (_, true, true) => "the failure is recorded; fix the cause, then `oms-upgrade rollback` retries the step".to_string(),
        (_, false, false) => format!(
            "step {key} may not be retried; `oms-upgrade rollback` undoes the upgrade"
        ),
        (_, false, true) => format!(
            "rollback step {key} may not be retried: fix it by hand, then record what you did with `oms-upgrade note`"
        ),
    };
    CliError::new(exit, format!("step {key} failed ({kind}): {error}")).hint(hint)
}

impl From<LedgerError> for CliError {
    fn from(e: LedgerError) -> Self {
        let (kind, hint) = match &e {
            LedgerError::Missing { .. } => (
                ExitKind::Input,
                format!(
                    "pass --ledger DIR (or set OMS_UPGRADE_LEDGER) to the folder an upgrade recorded \
                     into; the default is {}",
                    super::dirs::here().ledger.display()
                ),
            ),
            LedgerError::NotALedger { .. } => (
                ExitKind::Input,
                "point --ledger at a ledger folder: one that contains sled's `conf` and `db` files"
                    .to_string(),
            ),
            LedgerError::Busy { .. } => (
                ExitKind::Busy,
                "wait for that run to finish and retry; sled 0.34 cannot open a database read-only, \
                 so this command needs the ledger to itself (`status`, `plan`, `report`, \
                 `ledger log` and `ledger verify` read a verified copy meanwhile)"
                    .to_string(),
            ),
            LedgerError::LiveUnreadable { .. } => (
                ExitKind::Busy,
                "retry in a moment (the run's appends tore every copy), or wait for the run to \
                 finish; the ledger itself was not touched"
                    .to_string(),
            ),
            LedgerError::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                (
                    ExitKind::Input,
                    "sled needs write access to the folder even to read it; copy the folder somewhere \
                     writable and point --ledger at the copy"
                        .to_string(),
                )
            }
            LedgerError::Store {
                source: sled::Error::Corruption { .. },
                ..
            }
            | LedgerError::DamagedHead { .. }
            | LedgerError::Conflict { .. }
            | LedgerError::Malformed { .. } => (
                ExitKind::Integrity,
                "keep the ledger folder untouched as evidence; `oms-upgrade ledger export` shows \
                 every stored record"
                    .to_string(),
            ),
            LedgerError::Encode { .. } => (
                ExitKind::Input,
                "this is a bug in the caller of the ledger; please report it".to_string(),
            ),
            LedgerError::UnsafeFolder(crate::safefs::SafeFsError::Unsafe { .. }) => (
                ExitKind::Input,
                "keep ledgers in a folder only you (or root) can change, e.g. the default /var/lib/\
                 oms-upgrade/ledger"
                    .to_string(),
            ),
            _ => (
                ExitKind::Internal,
                "check the folder's permissions and free disk space, then retry with -v".to_string(),
            ),
        };
        CliError::from_error(kind, &e).hint(hint)
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        let (kind, hint) = match &e {
            KeyError::Exists(_) => (
                ExitKind::Input,
                "pass another --out, or keep using the existing key",
            ),
            KeyError::TooOpen { .. } => (
                ExitKind::Input,
                "a private key must be readable by its owner only",
            ),
            KeyError::Io { .. } => (
                ExitKind::Input,
                "check the path and that it is readable (or, when writing, that the folder exists)",
            ),
            KeyError::Invalid { .. } => (
                ExitKind::Input,
                "use the files `oms-upgrade ledger keygen` wrote, unchanged; a public key may also \
                 be given as `ed25519:<64 hex>`",
            ),
            KeyError::Random(_) => (
                ExitKind::Internal,
                "retry; the kernel's random source failed",
            ),
        };
        CliError::from_error(kind, &e).hint(hint)
    }
}

impl From<AnchorError> for CliError {
    /// A checkpoint (`--anchor`) that cannot be used: bad input.
    fn from(e: AnchorError) -> Self {
        let hint = match &e {
            AnchorError::Io { .. } => "check the path given to --anchor and that it is readable",
            AnchorError::Invalid { .. } => {
                "use the text printed by `oms-upgrade ledger checkpoint`, unchanged"
            }
        };
        CliError::from_error(ExitKind::Input, &e).hint(hint)
    }
}

impl From<DumpError> for CliError {
    /// An engine error, with the exit kind its class implies.
    fn from(e: DumpError) -> Self {
        let kind = match e.class() {
            _ if matches!(e, DumpError::Interrupted { .. }) => ExitKind::Interrupted,
            ErrorClass::Input => ExitKind::Input,
            ErrorClass::Service => ExitKind::Service,
            ErrorClass::Integrity => ExitKind::Integrity,
            ErrorClass::Internal => ExitKind::Internal,
        };
        let hint = match &e {
            DumpError::ChecksumMismatch { .. } => {
                Some("restore from another backup, or dump again if the source still exists")
            }
            DumpError::FileChanged { .. } => Some(
                "something wrote to the dump file during the restore; keep it away from other \
                 writers and restore again",
            ),
            DumpError::TableMismatch { .. } => Some(
                "the database now holds what the file loaded, which differs from what was dumped; \
                 investigate before using it",
            ),
            DumpError::Manifest { .. } => {
                Some("--from must be a folder written by `oms-upgrade backup`")
            }
            _ => None,
        };
        let err = CliError::from_error(kind, &e);
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<MetaDbError> for CliError {
    /// A refused login or TLS setup is configuration to fix (do not retry); a server that
    /// cannot do the TLS the plan requires is a refusal; anything else may come back.
    fn from(e: MetaDbError) -> Self {
        let kind = match e {
            MetaDbError::TlsUnavailable { .. } => ExitKind::Refused,
            MetaDbError::Tls { .. } | MetaDbError::AccessDenied { .. } => ExitKind::Input,
            _ => ExitKind::Service,
        };
        let mut err = CliError::from_error(kind, &e);
        err.message = format!("metadata DB: {}", err.message);
        err
    }
}

impl From<WitnessError> for CliError {
    /// A witness that cannot be reached may come back (a service failure); one that refuses
    /// the login, a privilege or finds no tables is configuration to fix; a fork or a
    /// malformed row is evidence about the record.
    fn from(e: WitnessError) -> Self {
        let (kind, hint) = match &e {
            WitnessError::Unreachable { .. } => (
                ExitKind::Service,
                "check that the witness server is running and reachable; under \
                 --witness-policy best-effort a run goes on, and `oms-upgrade ledger push` \
                 catches the witness up later",
            ),
            WitnessError::Refused { .. } => (
                ExitKind::Input,
                "create the tables with `oms-upgrade witness init` (as a user with CREATE on \
                 the witness database), and have a DBA run the GRANT statements it prints for \
                 the writer (INSERT, SELECT); check the user and password \
                 (OMS_WITNESS_PASSWORD or --witness-password-file)",
            ),
            WitnessError::Fork { .. } => (
                ExitKind::Integrity,
                "two histories were written under one ledger id; both are kept on the witness \
                 as evidence. Find which node wrote the other (`ledger verify --witness`) \
                 before going on",
            ),
            WitnessError::Malformed { .. } => (
                ExitKind::Integrity,
                "a witness row was written by something other than oms-upgrade; ask the \
                 witness database's administrator who altered it",
            ),
        };
        CliError::from_error(kind, &e).hint(hint)
    }
}

impl From<TargetError> for CliError {
    /// A witness URL is input to fix.
    fn from(e: TargetError) -> Self {
        let hint = match e {
            TargetError::MetadataDatabase { .. } => {
                "create a database of its own for the witness (e.g. oms_witness) and name it \
                 in the URL"
            }
            _ => "give --witness (or OMS_UPGRADE_WITNESS) as mysql://USER@HOST:PORT/DB",
        };
        CliError::from_error(ExitKind::Input, &e).hint(hint)
    }
}

impl From<DockerError> for CliError {
    /// The engine's messages already say what to do.
    fn from(e: DockerError) -> Self {
        CliError::from_error(ExitKind::Service, &e)
    }
}

impl From<HealthError> for CliError {
    /// The health endpoint's messages already say what to do.
    fn from(e: HealthError) -> Self {
        CliError::from_error(ExitKind::Service, &e)
    }
}

impl From<Rejection> for CliError {
    /// A record the pure core refused: nothing was recorded. A decision without a reason
    /// is bad input; anything else is a refusal of what the ledger holds.
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::BadResolution { .. } => CliError::new(ExitKind::Input, r.to_string())
                .hint("nothing was recorded; give a reason"),
            _ => CliError::new(ExitKind::Refused, r.to_string()).hint(
                "nothing was recorded; `oms-upgrade status` shows the run and the step awaiting a decision, if any",
            ),
        }
    }
}

/// An output that cannot be written.
pub fn output_error(what: &str, e: std::io::Error) -> CliError {
    CliError::new(ExitKind::Internal, format!("cannot write {what}: {e}"))
        .hint("check that the output location exists, is writable and has free space")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(key: StepKey, retryable: bool, kind: FailureKind) -> CliError {
        ExecError::StepFailed {
            key,
            error: "x".into(),
            retryable,
            kind,
        }
        .into()
    }

    /// Regression (issue 13): a failed step exited as a service failure (6) whatever it
    /// was, unless its key or an integrity flag said otherwise; now the kind its record
    /// carries decides, for every step.
    #[test]
    fn a_failed_step_exits_with_the_code_of_its_recorded_kind() {
        for key in StepKey::all() {
            for retryable in [true, false] {
                let code = |k| failed(key, retryable, k).kind.code();
                assert_eq!(code(FailureKind::Integrity), 3, "{key}");
                assert_eq!(code(FailureKind::Refused), 7, "{key}");
                assert_eq!(code(FailureKind::Service), 6, "{key}");
                assert_eq!(code(FailureKind::Unrecorded), 6, "{key}");
            }
        }
        let e = failed(StepKey::CreateNewContainer, true, FailureKind::Refused);
        assert!(e.message.contains("(refused)"), "{}", e.message);
        assert!(e.hint.unwrap().contains("oms-upgrade run"));
    }

    /// Every exit kind has the code the README's table documents, with a row there.
    #[test]
    fn exit_codes_are_the_documented_ones() {
        let readme = include_str!("../../README.md");
        let table = &readme[readme.find("## Exit codes").expect("an exit code section")..];
        let codes: Vec<u8> = ExitKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, [1, 3, 4, 5, 6, 7, 130]);
        for k in ExitKind::ALL {
            assert_eq!(ExitKind::from_code(k.code()), Some(k));
        }
        assert_eq!(ExitKind::from_code(0), None);
        assert_eq!(ExitKind::from_code(2), None);
        for code in codes {
            assert!(
                table.contains(&format!("\n| {code} | ")),
                "exit code {code} is not in the README's table"
            );
        }
    }

    /// One error per exit kind, through the `From` impls the commands use.
    #[test]
    fn each_exit_kind_is_reached_through_a_typed_error() {
        let io = || std::io::Error::other("boom");
        let cases: [(CliError, ExitKind); 8] = [
            (
                JournalError::Rejected {
                    event: "note",
                    rejection: Rejection::SeqNotIncreasing { last: 2, found: 1 },
                }
                .into(),
                ExitKind::Internal,
            ),
            (
                failed(
                    StepKey::Restore {
                        db: crate::events::MetaDb::Rm,
                    },
                    false,
                    FailureKind::Integrity,
                ),
                ExitKind::Integrity,
            ),
            (
                LedgerError::Busy {
                    path: "/l".into(),
                    holder: "pid 1".into(),
                }
                .into(),
                ExitKind::Busy,
            ),
            (
                LedgerError::LiveUnreadable {
                    path: "/l".into(),
                    holder: "pid 1".into(),
                    attempts: 5,
                    last: "torn".into(),
                }
                .into(),
                ExitKind::Busy,
            ),
            (
                AnchorError::Io {
                    path: "/a".into(),
                    source: io(),
                }
                .into(),
                ExitKind::Input,
            ),
            (
                DockerError::EngineUnreachable { detail: "d".into() }.into(),
                ExitKind::Service,
            ),
            (ExecError::NotPlanned.into(), ExitKind::Refused),
            (
                DumpError::Interrupted {
                    signal: "SIGINT".into(),
                    database: "rm".into(),
                }
                .into(),
                ExitKind::Interrupted,
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind, kind, "{}", err.message);
        }
    }

    /// The source chain is kept, without repeating what the message already says.
    #[test]
    fn the_source_chain_is_kept_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Middle);
        #[derive(Debug, thiserror::Error)]
        #[error("middle: {0}")]
        struct Middle(#[source] std::io::Error);
        let e = Outer(Middle(std::io::Error::other("disk on fire")));
        let c = CliError::from_error(ExitKind::Internal, &e);
        assert_eq!(c.message, "outer");
        assert_eq!(c.causes, ["middle: disk on fire"]);
        let v = c.to_json();
        assert_eq!(v["error"]["causes"][0], "middle: disk on fire");
        assert_eq!(v["exit_code"], 1);
    }

    /// Issue 14: what a witness failure becomes at the edge. A fork is an integrity
    /// failure (3) under either policy; a witness that cannot be reached is a service
    /// failure (6), and the message says truthfully whether anything was recorded.
    #[test]
    fn witness_failures_have_their_exit_codes_and_say_what_was_done() {
        use crate::executor::WitnessWhen;
        use crate::witness::WitnessError;
        let away = || WitnessError::Unreachable {
            target: "mysql://w@h:3306/wit".into(),
            reason: "connection refused".into(),
        };
        let e = CliError::from(JournalError::Witness {
            when: WitnessWhen::CatchUp { local_head: 7 },
            source: away(),
        });
        assert_eq!(e.kind, ExitKind::Service);
        assert!(e.message.contains("nothing was recorded"), "{}", e.message);
        assert!(e.message.contains("connection refused"), "{}", e.message);
        assert!(e.hint.unwrap().contains("nothing was done"));
        let e = CliError::from(JournalError::Witness {
            when: WitnessWhen::Record { seq: 8 },
            source: away(),
        });
        assert_eq!(e.kind, ExitKind::Service);
        assert!(
            e.message
                .contains("record 8 is durable in the local ledger"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("nothing was"), "{}", e.message);
        let e = CliError::from(JournalError::Witness {
            when: WitnessWhen::Record { seq: 8 },
            source: WitnessError::Fork {
                ledger_id: uuid::Uuid::nil(),
                seq: 8,
                ours: crate::ledger::Hash::ZERO,
                theirs: vec![crate::ledger::Hash([1; 32])],
            },
        });
        assert_eq!(e.kind, ExitKind::Integrity);
        assert!(e.message.contains("fork"), "{}", e.message);
    }
}
