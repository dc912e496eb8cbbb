//! TLS to the metadata database at the edge: the `--meta-tls` / `--meta-ca` flags, and how
//! `init` records whether its connection was encrypted.
//!
//! The record is an attestation by `oms-upgrade` appended right after `run.planned` (the
//! frozen plan has no field for it, and an attestation needs no new stored form): a line
//! people can read, then `tls=` and the facts as JSON. `run` and `rollback` reconnect with
//! the recorded mode and CA, and refuse a plain-text connection when the plan was made
//! over TLS, so a server that stops offering TLS (or someone stripping it) cannot
//! downgrade a run halfway. `status` and `plan` show the line.

use std::path::PathBuf;

use super::{CliError, ExitKind};
use crate::adapters::TlsState;
use crate::dbconn::{TlsMode, TlsSettings};
use crate::events::Attestation;
use crate::replay::State;

/// Who the attestation is by.
pub const ATTESTER: &str = "oms-upgrade";
/// What starts the statement.
const PREFIX: &str = "metadata DB connection: ";
/// What precedes the JSON facts.
const TAG: &str = " tls=";

/// The TLS flags of the commands that connect to the metadata database.
#[derive(Debug, Clone, clap::Args)]
pub struct MetaTlsArgs {
    /// TLS to the metadata database: `required` (TLS with a verified certificate, or no
    /// connection), `preferred` (TLS when the server offers it; its certificate verified
    /// only against --meta-ca, else accepted unverified), `off`.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = TlsMode::Preferred)]
    pub meta_tls: TlsMode,
    /// CA certificate (PEM) the metadata database's certificate must verify against (a
    /// private CA or the server's self-signed certificate).
    #[arg(long, value_name = "FILE")]
    pub meta_ca: Option<PathBuf>,
}

impl MetaTlsArgs {
    /// The settings, after checking the CA file can be read.
    pub fn settings(&self) -> Result<TlsSettings, CliError> {
        tls_settings(self.meta_tls, self.meta_ca.as_deref(), "--meta")
    }
}

/// TLS settings from a mode and an optional CA file, after checking the CA can be read and
/// is not given with mode `off`. `flag` is the flags' prefix in messages (`--meta` for
/// `--meta-tls`/`--meta-ca`, `--witness` for the witness's).
pub fn tls_settings(
    mode: TlsMode,
    ca: Option<&std::path::Path>,
    flag: &str,
) -> Result<TlsSettings, CliError> {
    let ca = match ca {
        None => None,
        Some(_) if mode == TlsMode::Off => {
            return Err(CliError::new(
                ExitKind::Input,
                format!("{flag}-ca was given with {flag}-tls off"),
            )
            .hint(format!(
                "drop {flag}-ca, or pass {flag}-tls required (or preferred)"
            )));
        }
        Some(path) => {
            let abs = std::fs::canonicalize(path)
                .and_then(|p| std::fs::read(&p).map(|_| p))
                .map_err(|e| {
                    CliError::new(
                        ExitKind::Input,
                        format!("cannot read the CA file {}: {e}", path.display()),
                    )
                    .hint(format!("pass a readable PEM file with {flag}-ca"))
                })?;
            Some(abs)
        }
    };
    Ok(TlsSettings {
        mode,
        ca,
        refuse_plain: false,
    })
}

/// The attestation `init` records after the plan.
pub fn attestation(tls: &TlsState, at: chrono::DateTime<chrono::Utc>) -> Attestation {
    let facts = serde_json::to_string(tls).unwrap_or_default();
    Attestation {
        by: ATTESTER.into(),
        statement: format!("{PREFIX}{tls}{TAG}{facts}"),
        step: None,
        observed_at: Some(at),
    }
}

/// What `init` recorded about its connection, if it did (ledgers from before have none).
pub fn recorded(state: &State) -> Option<TlsState> {
    state.attestations().iter().rev().find_map(|a| {
        let s = &a.body.statement;
        if a.body.by != ATTESTER || !s.starts_with(PREFIX) {
            return None;
        }
        // The first `tls=` whose rest is the JSON facts (a CA path may hold `tls=` too).
        s.match_indices(TAG)
            .find_map(|(i, _)| serde_json::from_str(&s[i + TAG.len()..]).ok())
    })
}

/// The readable half of the recorded line.
pub fn shown(tls: &TlsState) -> String {
    tls.to_string()
}

/// The settings `run` and `rollback` reconnect with: the recorded mode and CA, and no
/// plain-text fallback when `init`'s connection was encrypted. Without a record, the
/// default ([`TlsMode::Preferred`]).
pub fn for_run(state: &State) -> TlsSettings {
    match recorded(state) {
        Some(t) => TlsSettings {
            mode: t.mode,
            ca: t.ca.map(PathBuf::from),
            refuse_plain: t.encrypted,
        },
        None => TlsSettings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back() {
        let tls = TlsState {
            mode: TlsMode::Required,
            encrypted: true,
            verified: true,
            ca: Some("/etc/oms/ca tls=.pem".into()),
            version: Some("TLSv1.3".into()),
        };
        let a = attestation(&tls, chrono::Utc::now());
        assert!(
            a.statement.starts_with(
                "metadata DB connection: encrypted (TLSv1.3, certificate verified against /etc/oms/ca tls=.pem; --meta-tls required) tls={"
            ),
            "{}",
            a.statement
        );
        let mut state = State::new();
        let plan = crate::events::samples::plan();
        let rec = |seq, event| crate::events::Recorded {
            seq,
            at: chrono::Utc::now(),
            operator: "op".into(),
            host: "h".into(),
            run_id: plan.run_id,
            event,
        };
        state
            .apply(&rec(1, crate::events::Event::planned(plan.clone())))
            .unwrap();
        assert_eq!(recorded(&state), None);
        state
            .apply(&rec(2, crate::events::Event::Attestation(a)))
            .unwrap();
        assert_eq!(recorded(&state), Some(tls));
        assert!(for_run(&state).refuse_plain);
    }
}
