//! Resolving an in-doubt step (an intent with no outcome: the process died in between)
//! by looking at reality. The finding is recorded as `step.reconciled`; a step whose
//! effect is found is never performed again, and a step found not done runs again only
//! because running it again is safe (each such case says why below).

use std::time::Duration;

use crate::adapters::docker::ExecInfo;
use crate::adapters::{Clock, Docker, Health, MetaDb};
use chrono::{DateTime, Utc};

use crate::events::{ContainerStopped, Finding, StepFacts, StepKey};
use crate::steps::{InitSpec, Step};

use super::Executor;
use super::perform::init_facts;

impl<D: Docker, M: MetaDb, H: Health, C: Clock> Executor<'_, D, M, H, C> {
    /// What reality says about an in-doubt `step`, and the evidence.
    pub(super) async fn inspect(&self, step: &Step) -> (Finding, String) {
        match self.inspect_inner(step).await {
            Ok(found) => found,
            Err(e) => (
                Finding::Failed {
                    error: format!("cannot tell whether the step took effect: {e}"),
                    retryable: true,
                },
                "inspection failed".into(),
            ),
        }
    }

    async fn inspect_inner(&self, step: &Step) -> Result<(Finding, String), String> {
        let not_done = |why: &str| Ok((Finding::NotDone, why.to_string()));
        match step {
            // Reading and compare-and-set writing ha.config again is harmless, and the
            // step's facts need the value read at that moment anyway.
            Step::DisableHa(_)
            | Step::RollbackDisableHa(_)
            | Step::EnableHa(_)
            | Step::RollbackEnableHa(_) => not_done(
                "ha.config edits are compare-and-set writes of a value read at the time: safe to perform again",
            ),
            // Read-only checks, or deletes that leave the same rows however often they run.
            Step::PruneHeartbeat(_)
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
                let exists = std::path::Path::new(&spec.file).exists();
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
                    .ad
                    .docker
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
                    .ad
                    .docker
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
                let run_label = spec.labels.get(crate::steps::labels::RUN_ID);
                match self
                    .ad
                    .docker
                    .inspect(&spec.name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(info) if info.labels.get(crate::steps::labels::RUN_ID) == run_label => {
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
            Step::StartNewContainer(c) | Step::RestartOldContainer(c) => {
                let target = c.id.as_deref().unwrap_or(&c.name);
                match self
                    .ad
                    .docker
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
                    .ad
                    .docker
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
                        .journal
                        .state()
                        .plan()
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
    /// (bounded by the step's timeout, counted from the intent), then judge by its log.
    /// "Running" is the engine's record of the exec session started with the step's
    /// command, not a name in the process list: a script that `exec`s into another program
    /// keeps its session (and its pid) but changes its name.
    async fn inspect_init(&self, spec: &InitSpec) -> Result<(Finding, String), String> {
        let log = format!("{}/docker_init.log", spec.log_dir);
        let intent_at = self
            .journal
            .state()
            .attempts()
            .last()
            .filter(|a| a.key == StepKey::RunDockerInit && a.outcome.is_none())
            .map(|a| a.intent_at);
        let waited = self.wait_init_sessions(spec, intent_at).await?;
        if let Some(w) = &waited
            && w.still_running
        {
            return Ok((
                Finding::Failed {
                    error: format!(
                        "docker_init.sh is still running in {} after the step's {} s timeout ({}): it must not be interrupted or run twice; find out why it hangs (its log is {log}), then roll back with `oms-upgrade rollback`",
                        spec.container,
                        spec.timeout_secs,
                        w.describe()
                    ),
                    retryable: false,
                },
                format!("still running after waiting: {}", w.describe()),
            ));
        }
        let waited_note = waited
            .as_ref()
            .map(|w| format!("; {}", w.describe()))
            .unwrap_or_default();
        // The logs folder is the old container's too: a docker_init.log from the fresh
        // install (or an earlier upgrade) ends with the same success marker. Only a log
        // written after this attempt's intent speaks for it; with none, the script never
        // started (it rewrites the log first thing), so running it now is its first run.
        let written = self.log_written_at(spec, &log).await?;
        if let Some(intent_at) = intent_at {
            match written {
                None => {
                    return Ok((
                        Finding::NotDone,
                        format!("{log} does not exist: docker_init.sh never started{waited_note}"),
                    ));
                }
                Some(at) if at < intent_at => {
                    return Ok((
                        Finding::NotDone,
                        format!(
                            "{log} was last written at {at}, before this attempt began ({intent_at}): docker_init.sh never started{waited_note}"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let out = self
            .ad
            .docker
            .exec(
                &spec.container,
                sh(&format!("cat {log}")),
                vec![],
                Some(Duration::from_secs(30)),
            )
            .await
            .map_err(|e| e.to_string())?;
        // The log is the judge. The session's exit code is not: when the client attached
        // to an exec dies, the engine ends the session's record with 126 ("attach failed")
        // whatever the process later returns (seen with Docker 20.10), so it is only evidence.
        let facts = init_facts(
            spec,
            if out.exit_code == 0 { 0 } else { -1 },
            &out.output_tail,
            &out.output_blake3,
        );
        if facts.marker_seen {
            Ok((
                Finding::Done(Box::new(StepFacts::DockerInit(facts))),
                format!("{log} ends with the success marker{waited_note}"),
            ))
        } else {
            Ok((
                Finding::Failed {
                    error: format!(
                        "docker_init.sh was interrupted or failed: {log} has no success marker; it must not be re-run blindly, roll back with `oms-upgrade rollback`"
                    ),
                    retryable: false,
                },
                format!("{log} without the success marker{waited_note}"),
            ))
        }
    }
}

impl<D: Docker, M: MetaDb, H: Health, C: Clock> Executor<'_, D, M, H, C> {
    /// Waits while exec sessions started with the init command run in the init container,
    /// until `intent_at` + the step's timeout (at least a short grace when that has already
    /// passed, so a finishing session is not missed). `None`: none was running.
    async fn wait_init_sessions(
        &self,
        spec: &InitSpec,
        intent_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InitWait>, String> {
        let running = init_sessions(&self.ad.docker, spec).await?;
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
        let started = tokio::time::Instant::now();
        let deadline = started + left;
        let mut watched = running.clone();
        let mut exit_code = None;
        loop {
            let mut still = Vec::new();
            for s in &watched {
                match self
                    .ad
                    .docker
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
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(Some(InitWait {
                    sessions: running,
                    waited: started.elapsed(),
                    still_running: !done,
                    exit_code: if done && exit_code.is_some() {
                        exit_code
                    } else {
                        None
                    },
                }));
            }
            watched = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// When `log` was last modified inside the init container (`None`: it does not exist).
    async fn log_written_at(
        &self,
        spec: &InitSpec,
        log: &str,
    ) -> Result<Option<DateTime<Utc>>, String> {
        let out = self
            .ad
            .docker
            .exec(
                &spec.container,
                sh(&format!("stat -c %y {log} 2>/dev/null || echo absent")),
                vec![],
                Some(Duration::from_secs(30)),
            )
            .await
            .map_err(|e| e.to_string())?;
        let text = out.output_tail.trim();
        if text == "absent" || text.is_empty() {
            return Ok(None);
        }
        // `2024-11-25 11:44:42.671125488 +0000` (GNU and busybox stat alike).
        DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z")
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("cannot read the time of {log} from `{text}`: {e}"))
    }
}

/// However late a resume comes, a running init gets at least this long to finish.
const INIT_WAIT_GRACE: Duration = Duration::from_secs(10);

/// Exec sessions running in the init container that were started with the init command
/// (by an attempt we lost track of, or by hand). Shared with the step's start, which must
/// not start a second one.
pub(super) async fn init_sessions<D: Docker>(
    docker: &D,
    spec: &InitSpec,
) -> Result<Vec<ExecInfo>, String> {
    Ok(docker
        .running_execs(&spec.container)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.argv == spec.argv)
        .collect())
}

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
