//! Resolving an in-doubt step (an intent with no outcome: the process died in between)
//! by looking at reality. The finding is recorded as `step.reconciled`; a step whose
//! effect is found is never performed again, and a step found not done runs again only
//! because running it again is safe (each such case says why below).

use std::time::Duration;

use crate::adapters::docker::ExecInfo;
use crate::adapters::{Clock, Docker, DumpEngine, Health, MetaDb};
use chrono::{DateTime, Utc};

use crate::events::{ContainerStopped, FailureKind, Finding, StepFacts, StepKey};
use crate::steps::{InitSpec, Step};

use super::Executor;
use super::init::{init_facts, init_sessions};

impl<D: Docker, M: MetaDb, H: Health, C: Clock, E: DumpEngine> Executor<'_, D, M, H, C, E> {
    /// What reality says about an in-doubt `step`, and the evidence.
    pub(super) async fn inspect(&self, step: &Step) -> (Finding, String) {
        #[cfg(any(test, feature = "sim-bugs"))]
        if crate::sim::planted::is(crate::sim::planted::Bug::InDoubtIsNotStarted) {
            return (Finding::NotDone, "planted bug: not looked at".into());
        }
        match self.inspect_inner(step).await {
            Ok(found) => found,
            // A docker_init.sh that cannot be looked at may have run: running it again on
            // a guess is what must never happen, so an operator decides.
            Err(e) if matches!(step, Step::RunDockerInit(_)) => undecided(
                &format!("its effect could not be inspected: {e}"),
                "inspection failed".into(),
            ),
            Err(e) => (
                Finding::Failed {
                    error: format!("cannot tell whether the step took effect: {e}"),
                    retryable: true,
                    kind: FailureKind::Service,
                },
                "inspection failed".into(),
            ),
        }
    }

    async fn inspect_inner(&self, step: &Step) -> Result<(Finding, String), String> {
        let not_done = |why: &str| Ok((Finding::NotDone, why.to_string()));
        match step {
            // Another node's or region's step: looked at on that node's engine, against
            // that node's records (`super::here`).
            Step::OnNode { node, inner } => {
                Box::pin(super::HERE.scope((*node, None), self.inspect_inner(inner))).await
            }
            Step::InRegion { region, inner } => {
                Box::pin(
                    super::HERE.scope((super::here().0, Some(*region)), self.inspect_inner(inner)),
                )
                .await
            }
            // Reading and compare-and-set writing ha.config again is harmless, and the
            // step's facts need the value read at that moment anyway. The value a lost
            // `disable-ha` read before its write is not: the retry takes `init`'s reading
            // when it finds HA off (`State::ha_reading_lost`).
            Step::DisableHa(_)
            | Step::RollbackDisableHa(_)
            | Step::EnableHa(_)
            | Step::RollbackEnableHa(_) => not_done(
                "ha.config edits are compare-and-set writes of a value read at the time: safe to perform again",
            ),
            // Read-only checks, or deletes that leave the same rows however often they run.
            Step::PruneHeartbeat(_)
            | Step::DropPrunedHeartbeat(_)
            | Step::RollbackDropPrunedHeartbeat(_)
            | Step::CheckSupervisor(_)
            | Step::ConfirmHealth(_)
            | Step::ConfirmOldHealth(_)
            | Step::CheckOnline(_)
            | Step::RollbackVerifyDumps(_)
            | Step::PreStopCheck(_)
            | Step::Complete
            | Step::RollbackComplete => {
                not_done("idempotent or read-only step: safe to perform again")
            }
            // With OMS stopped the database does not change, and an unrecorded file is not
            // trusted: the dump is written again to `.part` and atomically replaces it.
            Step::Dump(spec) => {
                let exists = self.dumps.path_exists(std::path::Path::new(&spec.file));
                not_done(&format!(
                    "dump file {} {}; its checksum was never recorded, so it is written again",
                    spec.file,
                    if exists { "exists" } else { "is absent" }
                ))
            }
            // Dropping and recreating again, or restoring again, ends in the same content
            // from every state a crash leaves: the database dropped and not created (the
            // recreate takes the charset recorded with the dump, not the live one), created
            // empty, or half loaded (the restore drops and recreates it before loading).
            Step::RecreateDatabase(_) | Step::Restore(_) => not_done(
                "drop/recreate and restore replace the whole database: safe to perform again",
            ),
            Step::StopOldContainer(spec) | Step::StopNewContainer(spec) => {
                let target = spec.id.as_deref().unwrap_or(&spec.name);
                match self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect(target)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok((
                        Finding::Done(Box::new(StepFacts::Skipped {
                            reason: format!("no container `{target}` exists"),
                        })),
                        format!("docker inspect {target}: no such container"),
                    )),
                    Some(info) if !info.status.is_running() => {
                        let at = info.finished_at.unwrap_or_else(|| self.ad.clock.now());
                        Ok((
                            Finding::Done(Box::new(StepFacts::ContainerStopped(
                                ContainerStopped {
                                    id: info.id.clone(),
                                    // The stop happened while we were away: Docker's own stop time
                                    // is the best evidence of T1/T3.
                                    stopped_at: at,
                                    // The stop was asked for after the first intent of the
                                    // step, at the earliest: T1/T3 counts from there.
                                    stop_requested_at: self
                                        .journal
                                        .state()
                                        .attempts()
                                        .iter()
                                        .find(|a| a.key == super::scoped(step.key()))
                                        .map(|a| a.intent_at),
                                    docker_finished_at: info.finished_at,
                                    exit_code: match info.status {
                                        crate::adapters::docker::ContainerStatus::Exited {
                                            code,
                                        } => Some(code),
                                        _ => None,
                                    },
                                    already_stopped: false,
                                },
                            ))),
                            format!(
                                "docker inspect {target}: not running, finished at {:?}",
                                info.finished_at
                            ),
                        ))
                    }
                    Some(_) => not_done(&format!("docker inspect {target}: still running")),
                }
            }
            Step::RenameOldContainer(spec)
            | Step::RenameNewAside(spec)
            | Step::RenameOldBack(spec) => {
                let to = self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect(&spec.to)
                    .await
                    .map_err(|e| e.to_string())?;
                match to {
                    Some(info) if spec.id.as_ref().is_none_or(|id| *id == info.id) => Ok((
                        Finding::Done(Box::new(StepFacts::ContainerRenamed {
                            id: info.id.clone(),
                            from: spec.from.clone(),
                            to: spec.to.clone(),
                        })),
                        format!(
                            "docker inspect {}: container {} holds the name",
                            spec.to, info.id
                        ),
                    )),
                    _ => not_done(&format!(
                        "no container of this run is named {} yet",
                        spec.to
                    )),
                }
            }
            Step::CreateNewContainer(spec) => {
                match self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect(&spec.name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(info) if spec.made_by_this_run(&info.labels) => {
                        let facts = self
                            .new_container_facts(&info.id)
                            .await
                            .map_err(|e| e.message)?;
                        Ok((
                            Finding::Done(Box::new(facts)),
                            format!(
                                "docker inspect {}: created by this run ({})",
                                spec.name, info.id
                            ),
                        ))
                    }
                    Some(info) => Err(format!(
                        "a container named {} exists but was not created by this run (id {})",
                        spec.name, info.id
                    )),
                    None => not_done(&format!("no container named {}", spec.name)),
                }
            }
            Step::StartNewContainer(c)
            | Step::RestartOldContainer(crate::steps::RestartSpec { container: c, .. }) => {
                let target = c.id.as_deref().unwrap_or(&c.name);
                match self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect(target)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(info) if info.status.is_running() => {
                        let facts = match step {
                            Step::StartNewContainer(_) => StepFacts::NewContainerStarted {
                                id: info.id.clone(),
                                started_at: info.started_at,
                            },
                            _ => StepFacts::ContainerRestarted {
                                id: info.id.clone(),
                                name: c.name.clone(),
                            },
                        };
                        Ok((
                            Finding::Done(Box::new(facts)),
                            format!("docker inspect {target}: running"),
                        ))
                    }
                    _ => not_done(&format!("docker inspect {target}: not running")),
                }
            }
            Step::RunDockerInit(spec) => self.inspect_init(spec).await,
            // Setting a policy again is harmless; what Docker shows now says whether the
            // lost attempt got that far.
            Step::OldRestartOff(spec) | Step::RollbackRestartPolicy(spec) => {
                use crate::inherit::{restart_of, same_policy};
                let target = spec.container.id.as_deref().unwrap_or(&spec.container.name);
                let Some(info) = self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect(target)
                    .await
                    .map_err(|e| e.to_string())?
                else {
                    return Ok((
                        Finding::Failed {
                            error: format!(
                                "the old container {target} no longer exists, so its restart policy cannot be set"
                            ),
                            retryable: false,
                            kind: FailureKind::Refused,
                        },
                        format!("docker inspect {target}: no such container"),
                    ));
                };
                let now = restart_of(&info.host.restart);
                if !same_policy(&now, &spec.policy) {
                    return not_done(&format!(
                        "docker inspect {target}: restart policy {now}, not yet {}: setting it is harmless to repeat",
                        spec.policy
                    ));
                }
                // The policy before: for `old-restart-off` the one recorded at init; for
                // the rollback's step, the `no` the upgrade left.
                let before = match step {
                    Step::OldRestartOff(_) => self
                        .node_plan()
                        .as_ref()
                        .and_then(|p| p.container_settings())
                        .map(|c| c.restart.clone())
                        .unwrap_or_else(crate::events::RestartPolicy::no),
                    _ => crate::events::RestartPolicy::no(),
                };
                if same_policy(&before, &spec.policy) {
                    return not_done(&format!(
                        "docker inspect {target}: restart policy {now}, which it had before the step too, so reality cannot tell whether the step ran: setting it again is harmless"
                    ));
                }
                Ok((
                    Finding::Done(Box::new(StepFacts::RestartPolicySet {
                        id: info.id.clone(),
                        before,
                        after: now.clone(),
                    })),
                    format!("docker inspect {target}: HostConfig.RestartPolicy is {now}"),
                ))
            }
        }
    }

    /// `docker_init.sh` must not be interrupted and must not be run twice blindly. The exec
    /// lives in the container, so it may still be running after we died: wait for it
    /// (bounded by the step's timeout, counted from the intent), then judge by its logs.
    /// "Running" is the engine's record of the exec session started with the step's
    /// command, not a name in the process list: a script that `exec`s into another program
    /// keeps its session (and its pid) but changes its name.
    ///
    /// A real node names its log `docker_init.log.<YYYY-MM-DD.HH:MM:SS>` (obdiag's OMS log
    /// gatherer), so every `docker_init*` file in the logs folder is evidence, whatever its
    /// name ([`judge_init_logs`]). Only two findings are proofs: "done" (the plain
    /// `docker_init.log`, rewritten by each run, changed since the intent and ends with the
    /// success marker) and "never started" (no file of the family changed since the intent,
    /// every one readable, clocks consistent, no session seen). Anything else is
    /// [`Finding::Undecided`]: the step waits for an operator's recorded decision.
    async fn inspect_init(&self, spec: &InitSpec) -> Result<(Finding, String), String> {
        let intent_at = self
            .journal
            .state()
            .attempts()
            .last()
            .filter(|a| a.key == super::scoped(StepKey::RunDockerInit) && a.outcome.is_none())
            .map(|a| a.intent_at);
        let waited = self.wait_init_sessions(spec, intent_at).await?;
        if let Some(w) = &waited
            && w.still_running
        {
            return Ok((
                Finding::Failed {
                    error: format!(
                        "docker_init.sh is still running in {} after the step's {} s timeout ({}): it must not be interrupted or run twice; find out why it hangs (its logs are {}/docker_init*), then roll back with `oms-upgrade rollback`",
                        spec.container,
                        spec.timeout_secs,
                        w.describe(),
                        spec.log_dir
                    ),
                    retryable: false,
                    kind: FailureKind::Service,
                },
                format!("still running after waiting: {}", w.describe()),
            ));
        }
        let waited_note = waited
            .as_ref()
            .map(|w| format!("; {}", w.describe()))
            .unwrap_or_default();
        let Some(intent_at) = intent_at else {
            return Ok(undecided(
                "the step's intent time is not known, so no log can be placed before or after it",
                format!("no open intent for docker-init{waited_note}"),
            ));
        };
        let listing = match self.list_init_logs(spec).await {
            Ok(l) => l,
            Err(e) => {
                return Ok(undecided(
                    &format!("the logs folder {} could not be listed", spec.log_dir),
                    format!("{e}{waited_note}"),
                ));
            }
        };
        let now = self.ad.clock.now();
        let judged = judge_init_logs(&listing, intent_at, now, waited.is_some());
        let evidence = |extra: &str| {
            format!(
                "intent at {}; {}: {}{extra}{waited_note}",
                intent_at.to_rfc3339(),
                spec.log_dir,
                describe_logs(&listing, intent_at)
            )
        };
        match judged {
            LogJudgement::NeverStarted => Ok((
                Finding::NotDone,
                evidence(
                    ": no docker_init log changed since the intent, docker_init.sh never started",
                ),
            )),
            LogJudgement::Doubt(why) => Ok(undecided(&why, evidence(""))),
            LogJudgement::ReadPlain => {
                let log = format!("{}/{PLAIN_INIT_LOG}", spec.log_dir);
                let out = match self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .exec(
                        &spec.container,
                        vec!["cat".into(), "--".into(), log.clone()],
                        vec![],
                        Some(Duration::from_secs(30)),
                    )
                    .await
                {
                    Ok(o) if o.exit_code == 0 => o,
                    Ok(o) => {
                        return Ok(undecided(
                            &format!("{log} changed since the intent but could not be read"),
                            evidence(&format!(": cat exited {}", o.exit_code)),
                        ));
                    }
                    Err(e) => {
                        return Ok(undecided(
                            &format!("{log} changed since the intent but could not be read"),
                            evidence(&format!(": {e}")),
                        ));
                    }
                };
                // The log is the judge. The session's exit code is not: when the client
                // attached to an exec dies, the engine ends the session's record with 126
                // ("attach failed") whatever the process later returns (Docker 20.10).
                let facts = init_facts(spec, 0, &out.output_tail, &out.output_blake3);
                if facts.marker_seen {
                    Ok((
                        Finding::Done(Box::new(StepFacts::DockerInit(facts))),
                        evidence(&format!(": {log} ends with the success marker")),
                    ))
                } else {
                    Ok(undecided(
                        &format!(
                            "{log} changed since the intent but has no success marker: docker_init.sh started and was interrupted or failed, or is another run's"
                        ),
                        evidence(""),
                    ))
                }
            }
        }
    }

    /// Every `docker_init*` entry of the logs folder with its modification and status-change
    /// times (seconds), as the container sees them. Names are never put in a command.
    async fn list_init_logs(&self, spec: &InitSpec) -> Result<Vec<InitLogEntry>, String> {
        let script = format!(
            "cd {} || exit 3; for f in docker_init*; do [ -e \"$f\" ] || [ -L \"$f\" ] || continue; stat -c '%Y %Z %n' -- \"$f\" 2>/dev/null || printf '? ? %s\\n' \"$f\"; done",
            crate::steps::q(&spec.log_dir)
        );
        let out = self
            .docker()
            .map_err(|e| e.to_string())?
            .exec(
                &spec.container,
                sh(&script),
                vec![],
                Some(Duration::from_secs(30)),
            )
            .await
            .map_err(|e| e.to_string())?;
        if out.exit_code != 0 {
            return Err(format!(
                "listing {} exited {}: {}",
                spec.log_dir,
                out.exit_code,
                out.output_tail.trim()
            ));
        }
        // Only the output's tail is kept: a listing longer than that would hide files.
        if out.output_bytes > crate::adapters::docker::EXEC_OUTPUT_TAIL_BYTES as u64 {
            return Err(format!(
                "the listing of {} is {} bytes, more than can be read whole",
                spec.log_dir, out.output_bytes
            ));
        }
        Ok(parse_init_listing(&out.output_tail))
    }
}

/// The log a run of `docker_init.sh` rewrites, in the emulator's plain naming.
const PLAIN_INIT_LOG: &str = "docker_init.log";

/// A container's clock ahead of ours by more than this makes every time comparison doubtful.
const CLOCK_SLACK_SECS: i64 = 5;

fn undecided(why: &str, evidence: String) -> (Finding, String) {
    (
        Finding::Undecided {
            why: why.to_string(),
        },
        evidence,
    )
}

/// One `docker_init*` file in the logs folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InitLogEntry {
    name: String,
    /// Modification and status-change times (seconds since the epoch); `None`: unreadable.
    times: Option<(i64, i64)>,
}

impl InitLogEntry {
    /// The later of its modification and status-change times: a rename (a rotation) moves
    /// the status-change time, not the modification time.
    fn changed(&self) -> Option<i64> {
        self.times.map(|(m, c)| m.max(c))
    }
}

/// Parses `<mtime> <ctime> <name>` lines (`? ? <name>` for one that could not be read).
fn parse_init_listing(text: &str) -> Vec<InitLogEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let m = parts.next().and_then(|v| v.parse::<i64>().ok());
            let c = parts.next().and_then(|v| v.parse::<i64>().ok());
            let name = parts.next().unwrap_or(l).to_string();
            InitLogEntry {
                name,
                times: m.zip(c),
            }
        })
        .collect()
}

/// What the `docker_init*` files say about an interrupted attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LogJudgement {
    /// Nothing of the family changed since the intent: the script never started.
    NeverStarted,
    /// The plain log changed since the intent: its content decides.
    ReadPlain,
    /// Neither can be proven.
    Doubt(String),
}

/// Judges the listing against the intent time (`now` and whether a session of the init
/// command was seen are the other evidence). A time in the intent's own second counts as
/// after it: a tie proves nothing.
fn judge_init_logs(
    listing: &[InitLogEntry],
    intent_at: DateTime<Utc>,
    now: DateTime<Utc>,
    session_seen: bool,
) -> LogJudgement {
    let since = intent_at.timestamp();
    if let Some(e) = listing.iter().find(|e| e.times.is_none()) {
        return LogJudgement::Doubt(format!("the time of {} could not be read", e.name));
    }
    if let Some(e) = listing.iter().find(|e| {
        e.changed()
            .is_some_and(|t| t > now.timestamp() + CLOCK_SLACK_SECS)
    }) {
        return LogJudgement::Doubt(format!(
            "{} is dated after now ({}): the container's clock and this host's disagree, so no time can be compared",
            e.name,
            now.to_rfc3339()
        ));
    }
    let after: Vec<&InitLogEntry> = listing
        .iter()
        .filter(|e| e.changed().is_some_and(|t| t >= since))
        .collect();
    if after.is_empty() {
        return if session_seen {
            LogJudgement::Doubt(
                "a session of docker_init.sh ran after the intent, yet no docker_init log changed"
                    .into(),
            )
        } else {
            LogJudgement::NeverStarted
        };
    }
    if after.iter().any(|e| e.name == PLAIN_INIT_LOG) {
        return LogJudgement::ReadPlain;
    }
    let names: Vec<&str> = after.iter().map(|e| e.name.as_str()).collect();
    LogJudgement::Doubt(format!(
        "{} changed since the intent: docker_init.sh started, and which run a rotated log belongs to (this attempt's, an earlier one moved aside, one started by hand) and whether it completed cannot be proven from its name and times",
        names.join(", ")
    ))
}

/// The listing for the evidence: each name, when it last changed, before or after the intent.
fn describe_logs(listing: &[InitLogEntry], intent_at: DateTime<Utc>) -> String {
    if listing.is_empty() {
        return "no docker_init log".into();
    }
    listing
        .iter()
        .map(|e| match e.changed() {
            Some(t) => format!(
                "{} (changed {}, {})",
                e.name,
                DateTime::from_timestamp(t, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_else(|| t.to_string()),
                if t >= intent_at.timestamp() {
                    "since the intent"
                } else {
                    "before the intent"
                }
            ),
            None => format!("{} (time unreadable)", e.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<D: Docker, M: MetaDb, H: Health, C: Clock, E: DumpEngine> Executor<'_, D, M, H, C, E> {
    /// Waits while exec sessions started with the init command run in the init container,
    /// until `intent_at` + the step's timeout (at least a short grace when that has already
    /// passed, so a finishing session is not missed). `None`: none was running.
    async fn wait_init_sessions(
        &self,
        spec: &InitSpec,
        intent_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InitWait>, String> {
        let running = init_sessions(self.docker().map_err(|e| e.to_string())?, spec).await?;
        if running.is_empty() {
            return Ok(None);
        }
        let timeout = chrono::Duration::seconds(spec.timeout_secs.into());
        let now = self.ad.clock.now();
        let left = intent_at
            .map(|at| at + timeout - now)
            .unwrap_or(timeout)
            .to_std()
            .unwrap_or_default()
            .max(INIT_WAIT_GRACE);
        let started = self.ad.clock.monotonic();
        let mut watched = running.clone();
        let mut exit_code = None;
        loop {
            let mut still = Vec::new();
            for s in &watched {
                match self
                    .docker()
                    .map_err(|e| e.to_string())?
                    .inspect_exec(&s.id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(now) if now.running => still.push(now),
                    Some(now) => exit_code = exit_code.or(now.exit_code),
                    None => {}
                }
            }
            let done = still.is_empty();
            let waited = self.ad.clock.elapsed_since(started);
            if done || waited >= left {
                return Ok(Some(InitWait {
                    sessions: running,
                    waited,
                    still_running: !done,
                    exit_code: if done && exit_code.is_some() {
                        exit_code
                    } else {
                        None
                    },
                }));
            }
            watched = still;
            self.ad.clock.sleep(Duration::from_millis(500)).await;
        }
    }
}

/// However late a resume comes, a running init gets at least this long to finish.
const INIT_WAIT_GRACE: Duration = Duration::from_secs(10);

/// What waiting for running init sessions found; its description goes in the evidence.
struct InitWait {
    sessions: Vec<ExecInfo>,
    waited: Duration,
    still_running: bool,
    exit_code: Option<i64>,
}

impl InitWait {
    fn describe(&self) -> String {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .map(|s| match s.pid {
                Some(pid) => format!("exec {} (pid {pid})", short(&s.id)),
                None => format!("exec {}", short(&s.id)),
            })
            .collect();
        format!(
            "{} of docker_init.sh was running; waited {:.1} s{}",
            ids.join(", "),
            self.waited.as_secs_f64(),
            match (self.still_running, self.exit_code) {
                (true, _) => ", still running".to_string(),
                (false, Some(code)) => format!(" for it to end (engine's exit code {code})"),
                (false, None) => " for it to end".to_string(),
            }
        )
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 500_000_000).unwrap()
    }

    fn entry(name: &str, m: i64, c: i64) -> InitLogEntry {
        InitLogEntry {
            name: name.into(),
            times: Some((m, c)),
        }
    }

    #[test]
    fn the_listing_is_parsed_with_unreadable_entries_kept() {
        let l = parse_init_listing(
            "1700000000 1700000005 docker_init.log.2026-01-04.10:42:11\n? ? docker_init odd name\n",
        );
        assert_eq!(
            l,
            vec![
                entry(
                    "docker_init.log.2026-01-04.10:42:11",
                    1_700_000_000,
                    1_700_000_005
                ),
                InitLogEntry {
                    name: "docker_init odd name".into(),
                    times: None
                }
            ]
        );
    }

    #[test]
    fn only_an_untouched_family_proves_never_started() {
        let intent = at(1000);
        let now = at(1100);
        let old = [
            entry("docker_init.log", 900, 900),
            entry("docker_init.log.x", 800, 800),
        ];
        assert_eq!(
            judge_init_logs(&old, intent, now, false),
            LogJudgement::NeverStarted
        );
        assert_eq!(
            judge_init_logs(&[], intent, now, false),
            LogJudgement::NeverStarted
        );
        // A session ran, yet nothing was logged: not a proof of anything.
        assert!(matches!(
            judge_init_logs(&old, intent, now, true),
            LogJudgement::Doubt(_)
        ));
        let unreadable = InitLogEntry {
            name: "docker_init.log".into(),
            times: None,
        };
        let doubts: [(&str, Vec<InitLogEntry>, &str); 5] = [
            (
                "a rotated log written since the intent, whatever it says",
                vec![
                    entry("docker_init.log", 900, 900),
                    entry("docker_init.log.2026-01-04.10:42:11", 1010, 1010),
                ],
                "docker_init.log.2026-01-04.10:42:11",
            ),
            (
                "moved aside since the intent: the status-change time says so",
                vec![entry("docker_init.log.1", 900, 1001)],
                "docker_init.log.1",
            ),
            (
                "the intent's own second is not before it",
                vec![entry("docker_init.log.1", 1000, 1000)],
                "docker_init.log.1",
            ),
            ("an unreadable time", vec![unreadable], "could not be read"),
            (
                "a clock ahead of ours",
                vec![entry("docker_init.log.9", 5000, 5000)],
                "clock",
            ),
        ];
        for (case, listing, said) in doubts {
            match judge_init_logs(&listing, intent, now, false) {
                LogJudgement::Doubt(w) => assert!(w.contains(said), "{case}: {w}"),
                other => panic!("{case}: {other:?}"),
            }
        }
        // The plain log rewritten since the intent: its content decides.
        let plain = [
            entry("docker_init.log", 1050, 1050),
            entry("docker_init_20260104104211.log", 1050, 1050),
        ];
        assert_eq!(
            judge_init_logs(&plain, intent, now, false),
            LogJudgement::ReadPlain
        );
    }
}
