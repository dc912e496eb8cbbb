//! Performing one step through the adapters. Each arm turns adapter results into the
//! step's facts; nothing here decides whether the step may run.

use std::path::Path;
use std::time::Duration;

use crate::adapters::clock::Backoff;
use crate::adapters::docker::{ContainerSpec, DockerError, HostSettings, binds_equal, env_set};
use crate::adapters::metadb::DbCharset;
use crate::adapters::{Clock, Docker, DumpEngine, Health, MetaDb};
use crate::digest::FileDigest;
use crate::dump;
use crate::events::FailureKind;
use crate::events::PreflightCheck;
use crate::events::{
    self, Attestation, ContainerStopped, DumpArtifact, DumpCheck, HaDisabled, HaEnabled, HaMode,
    MetaDb as Db, NamedState, NewContainer, Restored, StepFacts, TableFact,
};
use crate::haconfig::{self, HaEdit};
use crate::steps::{
    self, HaDisableSpec, HaEnableSpec, HealthSpec, NewContainerSpec, PreStopSpec, RenameSpec,
    RestartPolicySpec, Step, StopSpec,
};

use super::init::init_facts;
use super::{Executor, StepError};

impl<D: Docker, M: MetaDb, H: Health, C: Clock, E: DumpEngine> Executor<'_, D, M, H, C, E> {
    /// Performs `step` and returns its facts. Errors say whether a retry may help.
    pub(super) async fn perform(&self, step: &Step) -> Result<StepFacts, StepError> {
        match step {
            // Another node's or region's step: the single-node step, on that node's
            // engine and with that node's records (`super::here`).
            Step::OnNode { node, inner } => {
                Box::pin(super::HERE.scope((*node, None), self.perform(inner))).await
            }
            Step::InRegion { region, inner } => {
                Box::pin(super::HERE.scope((super::here().0, Some(*region)), self.perform(inner)))
                    .await
            }
            Step::DisableHa(spec) | Step::RollbackDisableHa(spec) => self.disable_ha(spec).await,
            #[cfg(any(test, feature = "sim-bugs"))]
            Step::StopNewContainer(spec)
                if super::here().0 != events::NodeIx::PRIMARY
                    && crate::sim::planted::is(crate::sim::planted::Bug::StopNewOnlyOnNodeZero) =>
            {
                // The planted bug: another node's new container is left running.
                Ok(StepFacts::Skipped {
                    reason: format!("planted: `{}` left as it is", spec.name),
                })
            }
            Step::StopOldContainer(spec) | Step::StopNewContainer(spec) => {
                self.stop(spec, super::scoped(step.key())).await
            }
            Step::PruneHeartbeat(spec) => {
                let opts = crate::adapters::metadb::PruneOptions {
                    batch_rows: self.opts.prune_batch_rows,
                    flavour: spec.flavour,
                    // The swap's work tables are named after the run, so a resumed run
                    // finds (and drops) what a killed one left.
                    // (the id's first 4 bytes, its first 8 hex digits).
                    swap_tag: self.run_id().ok().map(|id| id.as_fields().0),
                };
                let observer = self.observer;
                let database = spec.database.clone();
                let progress = move |rows: u64, batches: u64, total: u64| {
                    observer.pruned(&database, rows, batches, total)
                };
                // Safe to perform again after a kill mid-prune (see the adapter): the
                // reconciliation finds it not done and it runs again from the start.
                let out = self
                    .ad
                    .metadb
                    .prune_heartbeat_with(&spec.database, opts, &progress)
                    .await
                    .map_err(retry)?;
                // After T1 a missing table does not stop the run: there is nothing to
                // prune, and the dumps that follow record what the database holds.
                let warning = out.table_missing.then(|| {
                    format!(
                        "{}.{} does not exist: nothing was pruned; check drc_cm_heartbeat_db in config.yaml names the heartbeat database",
                        spec.database, spec.table
                    )
                });
                Ok(StepFacts::HeartbeatPruned {
                    max_id: out.max_id,
                    rows_deleted: out.rows_deleted,
                    batches: Some(out.batches),
                    // issue 16: `batch_rows` 0 (never a batch size: at least 1) marks a
                    // table swap, whose rows `drop-pruned-heartbeat` counts after T2
                    // (ledger-schema/EVENTS.md): no stored-format change.
                    batch_rows: Some(if out.moved_aside { 0 } else { out.batch_rows }),
                    warning,
                })
            }
            Step::DropPrunedHeartbeat(spec) | Step::RollbackDropPrunedHeartbeat(spec) => {
                // The prune named its `<old>` table after the run the same way.
                let tag = self.run_id().map_err(retry)?.as_fields().0;
                let table = crate::sqltext::HeartbeatSwap::for_run(tag).old;
                // Safe to perform again: an attempt killed after its DROP finds no table
                // and records that (`rows: None`), one killed before it counts again.
                let rows = self
                    .ad
                    .metadb
                    .drop_pruned_heartbeat(&spec.database, &table)
                    .await
                    .map_err(retry)?;
                Ok(StepFacts::PrunedHeartbeatDropped { table, rows })
            }
            Step::Dump(spec) => {
                self.check_dump_space(spec).await?;
                let progress = self.observer.progress();
                // issue 16: the heartbeat dump leaves out exactly this run's `<old>` table
                // (the rows the prune's swap moved aside, dropped after T2), by its name.
                let mut opts = self.opts.dump.clone();
                if spec.db == events::MetaDb::CmHb
                    && let Ok(id) = self.run_id()
                {
                    let old = crate::sqltext::HeartbeatSwap::for_run(id.as_fields().0).old;
                    opts.exclude_tables.push(old);
                }
                let a = self
                    .dumps
                    .dump(
                        &self.ad.db,
                        &spec.database,
                        Path::new(&spec.dir),
                        &opts,
                        &*progress,
                    )
                    .await
                    .map_err(|e| match e {
                        // The engine's advice is for `backup`; a run's folder is fixed by its plan.
                        dump::DumpError::DiskFull { path } => StepError::retry(format!(
                            "no space left while writing {}; the partial file was removed. {}",
                            path.display(),
                            free_space_advice(&spec.dir)
                        )),
                        e => retry(e),
                    })?;
                Ok(StepFacts::DumpWritten(artifact_fact(spec.db, &a)))
            }
            Step::RenameOldContainer(spec)
            | Step::RenameNewAside(spec)
            | Step::RenameOldBack(spec) => self.rename(spec).await,
            Step::CreateNewContainer(spec) => self.create(spec).await,
            Step::OldRestartOff(spec) | Step::RollbackRestartPolicy(spec) => {
                self.set_restart_policy(spec, super::scoped(step.key()))
                    .await
            }
            Step::StartNewContainer(c) => {
                let target = c.id.as_deref().unwrap_or(&c.name);
                let out = self.docker()?.start(target).await.map_err(retry)?;
                let info = self.docker()?.inspect(target).await.map_err(retry)?;
                let id = info.map(|i| i.id).unwrap_or_else(|| target.to_string());
                Ok(StepFacts::NewContainerStarted {
                    id,
                    started_at: out.started_at,
                })
            }
            Step::CheckSupervisor(spec) => self.check_supervisor(spec).await,
            Step::RunDockerInit(spec) => {
                // A session started with the same command that still runs (an attempt whose
                // reconciliation could not look, or one started by hand) is never joined
                // by a second: two migrations at once on one metadata set.
                let running = super::init::init_sessions(self.docker()?, spec)
                    .await
                    .map_err(|e| {
                        StepError::retry(format!(
                            "cannot tell whether docker_init.sh already runs in {}, so it was not started: {e}",
                            spec.container
                        ))
                    })?;
                if let Some(s) = running.first() {
                    return Err(StepError::fatal(format!(
                        "docker_init.sh is already running in {} (exec {}{}), started by an earlier attempt or by hand; a second one was not started. Wait for it to end, read {}/docker_init.log, then roll back with `oms-upgrade rollback`",
                        spec.container,
                        s.id,
                        s.pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
                        spec.log_dir
                    ))
                    .of(FailureKind::Refused));
                }
                let timeout = Duration::from_secs(spec.timeout_secs.into());
                let out = self
                    .docker()?
                    .exec_in(
                        &spec.container,
                        spec.argv.clone(),
                        vec![],
                        Some(spec.working_dir.clone()),
                        Some(timeout),
                    )
                    .await
                    // An exec we lost track of may still be running: never retry it blindly.
                    .map_err(fatal)?;
                Ok(StepFacts::DockerInit(init_facts(
                    spec,
                    out.exit_code,
                    &out.output_tail,
                    &out.output_blake3,
                )))
            }
            Step::ConfirmHealth(spec) | Step::ConfirmOldHealth(spec) => {
                let h = self.wait_healthy(spec).await?;
                Ok(StepFacts::Health(h))
            }
            Step::CheckOnline(spec) => self.check_online(spec).await,
            #[cfg(any(test, feature = "sim-bugs"))]
            Step::RollbackEnableHa(spec)
                if crate::sim::planted::is(crate::sim::planted::Bug::RollbackNotIdempotent) =>
            {
                // The planted bug: HA's switch is flipped rather than set, so performing the
                // step again undoes it.
                let current = self.read_ha(&spec.database).await?;
                let flipped = if current.contains("\"enable\":true") {
                    current.replace("\"enable\":true", "\"enable\":false")
                } else {
                    current.replace("\"enable\":false", "\"enable\":true")
                };
                self.ad
                    .metadb
                    .write_ha_config(&spec.database, &current, &flipped)
                    .await
                    .map_err(retry)?;
                Ok(StepFacts::HaEnabled(HaEnabled {
                    enabled_at: self.ad.clock.now(),
                    previous_json: current,
                    written_json: flipped,
                    refetch: None,
                    mode: spec.mode,
                    attestation: None,
                }))
            }
            Step::EnableHa(spec) | Step::RollbackEnableHa(spec) => self.enable_ha(spec).await,
            Step::Complete | Step::RollbackComplete => Ok(StepFacts::Completed),
            Step::PreStopCheck(spec) => self.pre_stop_check(spec).await,
            Step::RollbackVerifyDumps(artifacts) => {
                verify_recorded_dumps(&self.dumps, artifacts).await
            }
            Step::RecreateDatabase(spec) => {
                // The recorded charset, not the live one: after a crash between DROP and
                // CREATE there is no live database to read it from.
                let charset = DbCharset {
                    charset: spec.charset.clone(),
                    collation: spec.collation.clone(),
                };
                self.ad
                    .metadb
                    .recreate_database(&spec.database, &charset)
                    .await
                    .map_err(retry)?;
                Ok(StepFacts::DatabaseRecreated {
                    db: spec.db,
                    database: spec.database.clone(),
                })
            }
            Step::Restore(spec) => {
                let a = engine_artifact(&spec.artifact);
                let progress = self.observer.progress();
                let report = self
                    .dumps
                    .restore(
                        &self.ad.db,
                        &a,
                        &dump::RestoreOptions::default(),
                        &*progress,
                    )
                    .await
                    .map_err(|e| match e.class() {
                        // A file that no longer matches will not match on a retry either.
                        dump::ErrorClass::Integrity => fatal(e).of(FailureKind::Integrity),
                        _ => retry(e),
                    })?;
                let tables = table_facts(&report.tables);
                let tables_match = tables == spec.artifact.tables;
                Ok(StepFacts::Restored(Restored {
                    db: spec.db,
                    database: spec.database.clone(),
                    file: spec.artifact.file.clone(),
                    verified_blake3: spec.artifact.blake3_hex.clone(),
                    tables,
                    tables_match,
                }))
            }
            Step::RestartOldContainer(r) => {
                let c = &r.container;
                let target = c.id.as_deref().unwrap_or(&c.name);
                // The timeout the step carries is the one `plan` prints.
                let timeout = Duration::from_secs(r.timeout_secs.into());
                self.docker()?
                    .restart(target, timeout)
                    .await
                    .map_err(retry)?;
                Ok(StepFacts::ContainerRestarted {
                    id: target.to_string(),
                    name: c.name.clone(),
                })
            }
        }
    }

    /// `start-new` to run (again) before `step`, when `step` execs into the new container
    /// and that container is found stopped (someone ran `docker stop` after it was started,
    /// e.g. between `run --until docker-init` and the next `run`). The core decides whether
    /// a second start may be recorded now ([`crate::replay::State::may_start_new_again`]).
    pub(super) async fn start_first(&self, step: &Step) -> Option<Step> {
        if !matches!(step, Step::RunDockerInit(_) | Step::CheckSupervisor(_)) {
            return None;
        }
        let state = self.journal.state();
        let (node, _, _) = step.scoped();
        let key = events::StepKey::StartNewContainer.on_node(node);
        if !state.may_start_new_again(key) {
            return None;
        }
        let start = state.step(key).ok()?;
        let Step::StartNewContainer(c) = start.scoped().2 else {
            return None;
        };
        let target = c.id.as_deref().unwrap_or(&c.name);
        // Cannot tell: let the step itself run and say what it finds.
        let docker = self.docker_of(node).ok()?;
        let info = docker.inspect(target).await.ok()??;
        let stopped = matches!(
            info.status,
            crate::adapters::docker::ContainerStatus::Created
                | crate::adapters::docker::ContainerStatus::Exited { .. }
        );
        stopped.then_some(start)
    }

    async fn stop(&self, spec: &StopSpec, key: events::StepKey) -> Result<StepFacts, StepError> {
        let target = spec.id.as_deref().unwrap_or(&spec.name);
        if self
            .docker()?
            .inspect(target)
            .await
            .map_err(retry)?
            .is_none()
        {
            return Ok(StepFacts::Skipped {
                reason: format!("no container `{target}` exists: nothing to stop"),
            });
        }
        // T1 / T3 is the moment the stop is requested: OMS shuts down from then on, which
        // can take up to the stop timeout before `docker stop` returns, and the refetch
        // window must cover all of it.
        let requested_now = self.ad.clock.now();
        let earlier = self.journal.state().earlier_attempt_at(key);
        let out = self
            .docker()?
            .stop(target, Duration::from_secs(spec.timeout_secs.into()))
            .await
            .map_err(retry)?;
        // When the stop returned; Docker's own `FinishedAt` is kept beside it.
        let stopped_at = self.ad.clock.now();
        let stop_requested_at =
            stop_requested_at(requested_now, earlier, out.already_stopped, out.finished_at);
        let id = match &spec.id {
            Some(id) => id.clone(),
            None => self
                .docker()?
                .inspect(target)
                .await
                .map_err(retry)?
                .map(|i| i.id)
                .unwrap_or_default(),
        };
        Ok(StepFacts::ContainerStopped(ContainerStopped {
            id,
            stopped_at,
            stop_requested_at: Some(stop_requested_at),
            docker_finished_at: out.finished_at,
            exit_code: out.exit_code,
            already_stopped: out.already_stopped,
        }))
    }

    async fn rename(&self, spec: &RenameSpec) -> Result<StepFacts, StepError> {
        let from = self
            .docker()?
            .inspect(spec.id.as_deref().unwrap_or(&spec.from))
            .await
            .map_err(retry)?;
        let holder = match from {
            Some(info) if Some(&info.id) != spec.never_id.as_ref() => info,
            _ => {
                // Already renamed (the target name is held by this container) or nothing to move.
                return match self.docker()?.inspect(&spec.to).await.map_err(retry)? {
                    Some(info) if spec.id.as_ref().is_none_or(|id| *id == info.id) => {
                        Ok(StepFacts::ContainerRenamed {
                            id: info.id,
                            from: spec.from.clone(),
                            to: spec.to.clone(),
                        })
                    }
                    _ => Ok(StepFacts::Skipped {
                        reason: format!("no container holds `{}`: nothing to rename", spec.from),
                    }),
                };
            }
        };
        if holder.name == spec.to {
            return Ok(StepFacts::ContainerRenamed {
                id: holder.id,
                from: spec.from.clone(),
                to: spec.to.clone(),
            });
        }
        self.docker()?
            .rename(&holder.name, &spec.to)
            .await
            .map_err(retry)?;
        Ok(StepFacts::ContainerRenamed {
            id: holder.id,
            from: spec.from.clone(),
            to: spec.to.clone(),
        })
    }

    async fn create(&self, spec: &NewContainerSpec) -> Result<StepFacts, StepError> {
        // The tag is what `docker ps` should show, but the plan vouches for the image id:
        // the tag must still name it before the container is created, and the container
        // must run it after (a re-tag in between is caught there).
        if let Some(planned) = &spec.image_id {
            let now = self
                .docker()?
                .inspect_image(&spec.image)
                .await
                .map_err(retry)?;
            if let Some(problem) = image_problem(&spec.image, planned, now.as_ref().map(|i| &i.id))
            {
                return Err(StepError::retry(problem).of(FailureKind::Refused));
            }
        }
        let live = self.inherited_live(spec).await?;
        let docker_spec = container_spec(spec, live);
        let id = match self.docker()?.create(&docker_spec).await {
            Ok(id) => id,
            Err(e @ DockerError::NameConflict { .. }) => self.own_holder(spec, e).await?,
            Err(e) => return Err(retry(e)),
        };
        if let Some(planned) = &spec.image_id {
            let info = self.docker()?.inspect(&id).await.map_err(retry)?;
            let got = info.as_ref().map(|i| i.image_id.clone());
            if got.as_deref() != Some(planned.as_str()) {
                // Our own container, created a moment ago and never started: removing it
                // leaves the name free for the retry.
                let removed = self.docker()?.remove(&id, true).await;
                return Err(StepError::retry(format!(
                    "the new container {id} was created from image {} but the plan names {planned} for {}; it was removed{}. Re-tag the image (`docker tag {planned} {}`), then `oms-upgrade run` again",
                    got.as_deref().unwrap_or("(unknown)"),
                    spec.image,
                    match removed {
                        Ok(_) => String::new(),
                        Err(e) => format!(" (removal failed: {e}; remove it by hand)"),
                    },
                    spec.image
                ))
                .of(FailureKind::Refused));
            }
        }
        self.new_container_facts(&id).await
    }

    /// The id of the container holding the new container's name when it is the one this
    /// run's `create-new` made, else `conflict` as the step's failure. An earlier attempt
    /// may have created it and still failed: its create took effect but the call did not
    /// return (the engine created the container, the client timed out or lost the
    /// connection), or a call after the create failed. Docker then answers every later
    /// create of the name with 409 Conflict, so without this the step fails forever. The
    /// container carries this run's id label, which nothing else puts on a container; it
    /// is taken as this attempt's, and checked as a fresh one is.
    async fn own_holder(
        &self,
        spec: &NewContainerSpec,
        conflict: DockerError,
    ) -> Result<String, StepError> {
        match self.docker()?.inspect(&spec.name).await.map_err(retry)? {
            Some(info) if spec.made_by_this_run(&info.labels) => Ok(info.id),
            _ => Err(retry(conflict)),
        }
    }

    /// The inherited values, raw, from the old container (`None` for plans that recorded
    /// none). Docker never changes a container's configuration after creation except
    /// through `docker update` (resources, restart policy), so what the old container shows
    /// now is what `init` recorded; that is checked on every comparable field before its
    /// withheld values (secrets) are used.
    async fn inherited_live(
        &self,
        spec: &NewContainerSpec,
    ) -> Result<Option<crate::inherit::Live>, StepError> {
        let Some(recorded) = &spec.inherited else {
            return Ok(None);
        };
        let old = self
            .docker()?
            .inspect(&spec.old_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "the old container {} is gone, so the settings the new container inherits (its env, secrets among them) cannot be read; nothing was created. Roll back with `oms-upgrade rollback`",
                    spec.old_id
                ))
                .of(FailureKind::Refused)
            })?;
        crate::inherit::live(recorded, &spec.inherited_env(), &old)
            .map(Some)
            .map_err(|diffs| {
                StepError::fatal(format!(
                    "the old container {} no longer shows the settings recorded at init ({}); nothing was created. Roll back with `oms-upgrade rollback`",
                    spec.old_id,
                    diffs
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
                .of(FailureKind::Refused)
            })
    }

    /// Sets a container's restart policy and reads it back. For `old-restart-off` the
    /// policy before is what the rollback puts back: a policy already `no` when the plan
    /// recorded another one was set by an earlier attempt of this step, so the recorded
    /// one counts.
    async fn set_restart_policy(
        &self,
        spec: &RestartPolicySpec,
        key: events::StepKey,
    ) -> Result<StepFacts, StepError> {
        use crate::inherit::{restart_of, same_policy, setting_of};
        let target = spec.container.id.as_deref().unwrap_or(&spec.container.name);
        let gone = || {
            StepError::fatal(format!(
                "the old container {target} no longer exists, so its restart policy cannot be set"
            ))
            .of(FailureKind::Refused)
        };
        let info = self
            .docker()?
            .inspect(target)
            .await
            .map_err(retry)?
            .ok_or_else(gone)?;
        let mut before = restart_of(&info.host.restart);
        if key.base() == events::StepKey::OldRestartOff
            && before.is_no()
            && let Some(plan) = self.node_plan()
            && let Some(planned) = plan.container_settings()
        {
            before = planned.restart.clone();
        }
        self.docker()?
            .set_restart_policy(target, &setting_of(&spec.policy))
            .await
            .map_err(retry)?;
        let after = self
            .docker()?
            .inspect(target)
            .await
            .map_err(retry)?
            .ok_or_else(gone)?;
        let after = restart_of(&after.host.restart);
        if !same_policy(&after, &spec.policy) {
            return Err(StepError::retry(format!(
                "Docker reports the restart policy of {target} as {after} after setting it to {}",
                spec.policy
            )));
        }
        Ok(StepFacts::RestartPolicySet {
            id: info.id,
            before,
            after,
        })
    }

    /// Everything `init` checked that may have changed since, checked again right before
    /// T1 (the step after this stops the old container). Changes nothing; a failure names
    /// what changed and may be retried once it is fixed.
    async fn pre_stop_check(&self, spec: &PreStopSpec) -> Result<StepFacts, StepError> {
        let mut checks = Vec::new();
        let mut add = |name: &str, problem: Option<String>, fine: String| {
            checks.push(PreflightCheck {
                name: name.into(),
                ok: problem.is_none(),
                detail: problem.unwrap_or(fine),
            })
        };

        let found = self.docker()?.inspect_image(&spec.image).await;
        match (&found, &spec.image_id) {
            (Err(e), _) => add(
                "image",
                Some(format!("cannot inspect {}: {e}", spec.image)),
                String::new(),
            ),
            (Ok(img), Some(planned)) => {
                let problem = image_problem(&spec.image, planned, img.as_ref().map(|i| &i.id));
                add(
                    "image",
                    problem,
                    format!("{} is still {planned}", spec.image),
                );
            }
            (Ok(None), None) => add(
                "image",
                Some(format!(
                    "target image {} is no longer present; load it again (`docker load -i ...`)",
                    spec.image
                )),
                String::new(),
            ),
            (Ok(Some(img)), None) => add(
                "image",
                None,
                format!("{} present ({})", spec.image, img.id),
            ),
        }

        for b in &spec.binds {
            let src = steps::bind_source(b);
            let exists = self.dumps.path_exists(Path::new(src));
            add(
                "binds",
                (!exists).then(|| {
                    format!("bind source {src} no longer exists on this host (it did at init)")
                }),
                format!("{src} exists"),
            );
        }

        match self.ad.metadb.ping().await {
            Err(e) => {
                add("metadb", Some(format!("metadata DB: {e}")), String::new());
                add(
                    "disk",
                    Some("cannot size the databases: the metadata DB is unreachable".into()),
                    String::new(),
                );
            }
            Ok(_) => {
                add("metadb", None, "metadata DB reachable".into());
                let disk = match self.ad.metadb.database_sizes(&spec.databases).await {
                    Err(e) => Err(format!("cannot size the databases: {e}")),
                    Ok(sizes) => disk_room(&self.dumps, &spec.backup_dir, sizes.values().sum()),
                };
                match disk {
                    Ok(fine) => add("disk", None, fine),
                    Err(problem) => add("disk", Some(problem), String::new()),
                }
            }
        }

        let h = &spec.health;
        let timeout = Duration::from_secs(h.timeout_secs.into());
        let healthy = self
            .ad
            .health
            .wait_healthy_on(&self.ad.clock, &h.url, timeout, self.opts.health_poll)
            .await;
        match healthy {
            Ok(r) if r.healthy => add("health", None, format!("{} is healthy", h.url)),
            Ok(_) => add(
                "health",
                Some(format!("the old node at {} is not healthy", h.url)),
                String::new(),
            ),
            Err(e) => add(
                "health",
                Some(format!("the old node at {}: {e}", h.url)),
                String::new(),
            ),
        }

        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.detail.clone())
            .collect();
        let facts = StepFacts::PreStopChecked { checks };
        if failed.is_empty() {
            return Ok(facts);
        }
        Err(StepError {
            message: format!(
                "changed since init: {}; the old container was not stopped",
                failed.join("; ")
            ),
            retryable: true,
            facts: Some(facts),
            kind: FailureKind::Refused,
        })
    }

    /// A dump needs room for its file and the spool of a parallel dump (each at most the
    /// database's size): checked before each dump, as other files may have filled the disk
    /// since `init`.
    async fn check_dump_space(&self, spec: &steps::DumpSpec) -> Result<(), StepError> {
        let size: u64 = self
            .ad
            .metadb
            .database_sizes(std::slice::from_ref(&spec.database))
            .await
            .map_err(retry)?
            .values()
            .sum();
        disk_room(&self.dumps, &spec.dir, size)
            .map(|_| ())
            .map_err(|problem| {
                StepError::retry(format!("{problem}. {}", free_space_advice(&spec.dir)))
            })
    }

    /// Facts of the new container as Docker reports it, with the proof that its binds are
    /// the old container's.
    pub(super) async fn new_container_facts(&self, id: &str) -> Result<StepFacts, StepError> {
        let info = self
            .docker()?
            .inspect(id)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                StepError::retry(format!(
                    "container {id} vanished right after it was created"
                ))
            })?;
        let plan = self.node_plan();
        let plan = plan.as_ref();
        // Found on reconciliation (the normal path checked it already): a container of
        // this run on another image than the planned one is not the planned upgrade.
        if let Some(planned) = plan.and_then(|p| p.target_image_id.as_ref())
            && *planned != info.image_id
        {
            return Err(StepError::retry(format!(
                "container {} ({}) runs image {}, not the planned {planned}; remove it (`docker rm {}`), then `oms-upgrade run` again",
                info.name, info.id, info.image_id, info.id
            )));
        }
        let old_binds = plan
            .map(|p| p.old_container.binds.clone())
            .unwrap_or_default();
        let equal = binds_equal(&old_binds, &info.binds);
        Ok(StepFacts::NewContainerCreated(NewContainer {
            id: info.id.clone(),
            name: info.name.clone(),
            image: info.image.clone(),
            image_id: Some(info.image_id.clone()),
            binds: info.binds.clone(),
            env: events::record_env(&info.env),
            old_binds,
            binds_equal_to_old: equal,
        }))
    }

    /// `supervisorctl status` in the new container, again after pauses of 20 ms doubling up
    /// to [`ExecOptions::status_poll`] (issue 16: a coarse fixed interval was slack in the
    /// downtime window) while programs are still coming up (STARTING, or supervisord not answering yet),
    /// until every program is RUNNING or `spec.timeout_secs` ran out. A program FATAL,
    /// EXITED or BACKOFF ends the wait at once: supervisord gave up on it or it stopped,
    /// and waiting will not change that.
    ///
    /// [`ExecOptions::status_poll`]: super::ExecOptions::status_poll
    async fn check_supervisor(&self, spec: &steps::ExecSpec) -> Result<StepFacts, StepError> {
        let started = self.ad.clock.monotonic();
        let bound = Duration::from_secs(spec.timeout_secs.into());
        let backoff = Backoff::fine(self.opts.status_poll);
        let mut polls = 0u32;
        loop {
            polls += 1;
            let out = self
                .docker()?
                .exec(
                    &spec.container,
                    spec.argv.clone(),
                    vec![],
                    Some(Duration::from_secs(60)),
                )
                .await
                .map_err(retry)?;
            let mut programs = parse_supervisor(&out.output_tail);
            let all_running = out.exit_code == 0
                && !programs.is_empty()
                && programs.iter().all(|p| p.state == "RUNNING");
            let given_up: Vec<String> = programs
                .iter()
                .filter(|p| SUPERVISOR_GIVEN_UP.contains(&p.state.as_str()))
                .map(|p| format!("{} is {}", p.name, p.state))
                .collect();
            let elapsed = self.ad.clock.elapsed_since(started);
            let pause = backoff.pause(polls - 1);
            if all_running || !given_up.is_empty() || elapsed + pause > bound {
                bound_programs(&mut programs);
                let facts = StepFacts::SupervisorPolled(events::SupervisorPoll {
                    programs,
                    all_running,
                    polls,
                    elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    timeout_secs: spec.timeout_secs,
                });
                if given_up.is_empty() {
                    // RUNNING, or the wait ran out: the facts say which (a `done` with a
                    // program not RUNNING is a contradiction the executor records as failed).
                    return Ok(facts);
                }
                return Err(StepError {
                    message: format!(
                        "supervisor program(s) will not come up by themselves: {} (after {polls} polls in {:.1} s); nothing was changed by this check. Read /home/admin/logs/supervisord.log and /home/admin/logs/supervisor/ in {}, start the program with `docker exec {} supervisorctl start NAME` and run again, or roll back with `oms-upgrade rollback`",
                        given_up.join(", "),
                        elapsed.as_secs_f64(),
                        spec.container,
                        spec.container
                    ),
                    retryable: true,
                    facts: Some(facts),
                    kind: FailureKind::Service,
                });
            }
            self.ad.clock.sleep(pause).await;
        }
    }

    /// Every server the cm database's `host` table lists must be Online: its `status` when
    /// the table has that column, else its own health endpoint (the plan's health URL with
    /// the server's IP, as obd's OMS `health_check` asks every server). Asked again after
    /// pauses of 20 ms doubling up to [`ExecOptions::status_poll`] until all are Online or the health timeout ran out,
    /// since OMS notices a server back only after a while.
    ///
    /// [`ExecOptions::status_poll`]: super::ExecOptions::status_poll
    async fn check_online(&self, spec: &steps::OnlineSpec) -> Result<StepFacts, StepError> {
        let started = self.ad.clock.monotonic();
        let bound = Duration::from_secs(spec.health.timeout_secs.into());
        let backoff = Backoff::fine(self.opts.status_poll);
        let mut made = 0u32;
        loop {
            let pause = backoff.pause(made);
            let list = self
                .ad
                .metadb
                .list_servers(&spec.database)
                .await
                .map_err(retry)?;
            if !list.host_table {
                return Err(StepError::retry(format!(
                    "the cm database `{}` has no `host` table with an `ip` column, so the servers OMS keeps cannot be listed and none was checked. Check that `{}` is OMS's drc_cm_db, and in the OMS console (OPS & Monitoring > Server) that every server is Online",
                    spec.database, spec.database
                )));
            }
            if list.servers.len() > crate::sqltext::MAX_SERVERS {
                return Err(StepError::retry(format!(
                    "the cm database `{}` lists more than {} servers in `host`; none was checked",
                    spec.database,
                    crate::sqltext::MAX_SERVERS
                )));
            }
            let mut nodes = Vec::with_capacity(list.servers.len());
            for s in &list.servers {
                // Only each server's own health decides (as obd's `health_check.py` asks
                // every server): the public record names no status column in `host`, so
                // one that exists is recorded beside the answer, as information only.
                let (mut state, online) = self.server_health(&spec.health.url, &s.ip).await;
                if list.status_column {
                    state.push_str("; host.status ");
                    state.push_str(s.status.as_deref().unwrap_or("NULL"));
                }
                nodes.push((
                    NamedState {
                        name: match &s.group {
                            Some(g) => format!("{} (resource group {g})", s.ip),
                            None => s.ip.clone(),
                        },
                        state,
                    },
                    online,
                ));
            }
            let all_online = !nodes.is_empty() && nodes.iter().all(|(_, ok)| *ok);
            if all_online || self.ad.clock.elapsed_since(started) + pause > bound {
                if nodes.is_empty() {
                    return Err(StepError::retry(format!(
                        "the cm database `{}` lists no server in `host`; OMS registers every node there, so this node is not registered. Check in the OMS console (OPS & Monitoring > Server)",
                        spec.database
                    )));
                }
                let offline: Vec<String> = nodes
                    .iter()
                    .filter(|(_, ok)| !*ok)
                    .map(|(n, _)| format!("{}: {}", n.name, n.state))
                    .collect();
                let facts = StepFacts::NodesOnline {
                    nodes: nodes.into_iter().map(|(n, _)| n).collect(),
                    all_online,
                };
                if offline.is_empty() {
                    return Ok(facts);
                }
                // HA stays off: enabling it while a server is down is what the guide's
                // check prevents. Checking again is harmless once the server answers.
                return Err(StepError {
                    message: format!(
                        "not every server the cm database `{}` lists answers healthy at its health URL within {} s: {}. Start OMS on those servers, or remove a server that is gone in the OMS console (OPS & Monitoring > Server), then run again",
                        spec.database,
                        spec.health.timeout_secs,
                        offline.join("; ")
                    ),
                    retryable: true,
                    facts: Some(facts),
                    kind: FailureKind::Service,
                });
            }
            self.ad.clock.sleep(pause).await;
            made = made.saturating_add(1);
        }
    }

    /// One server's health at the plan's health URL with its IP (scheme, port and path kept):
    /// `("Online (health)", true)` or what was wrong.
    async fn server_health(&self, url: &str, ip: &str) -> (String, bool) {
        let u = match server_health_url(url, ip) {
            Ok(u) => u,
            Err(why) => return (format!("Unknown ({why})"), false),
        };
        match self.ad.health.check(u.as_str()).await {
            Ok(r) if r.healthy => ("Online (health)".into(), true),
            Ok(r) => (format!("Offline (health: {})", r.reason), false),
            Err(e) => (format!("Offline (health: {e})"), false),
        }
    }

    async fn wait_healthy(&self, spec: &HealthSpec) -> Result<events::Health, StepError> {
        let timeout = Duration::from_secs(spec.timeout_secs.into());
        let report = self
            .ad
            .health
            .wait_healthy_on(&self.ad.clock, &spec.url, timeout, self.opts.health_poll)
            .await
            .map_err(retry)?;
        Ok(events::Health {
            url: spec.url.clone(),
            healthy: report.healthy,
            body_blake3: blake3::hash(report.body_excerpt.as_bytes())
                .to_hex()
                .to_string(),
            container_id: spec.container.id.clone(),
        })
    }

    async fn read_ha(&self, database: &str) -> Result<String, StepError> {
        self.ad
            .metadb
            .read_ha_config(database)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "`ha.config` is missing from {database}.oms_normal_config"
                ))
                .of(FailureKind::Refused)
            })
    }

    async fn disable_ha(&self, spec: &HaDisableSpec) -> Result<StepFacts, StepError> {
        let current = self.read_ha(&spec.database).await?;
        let new = spec.apply(&current).map_err(fatal)?;
        // HA found off after an attempt in doubt may be that attempt's own write: HA's
        // earlier value is then `init`'s reading, if it had HA on (issue 13; an operator
        // who switched HA off between `init` and `run` is the case this cannot tell apart,
        // docs/simulation.md "HA's value before the run").
        let previous = match (&new, self.journal.state().ha_reading_lost()) {
            (None, Some(at_init)) if spec.apply(at_init).ok().flatten().is_some() => {
                at_init.to_string()
            }
            _ => current.clone(),
        };
        let (written, attestation) = match (&new, spec.mode) {
            (None, _) => (None, None),
            (Some(json), HaMode::Sql) => {
                if let Err(e) = self
                    .ad
                    .metadb
                    .write_ha_config(&spec.database, &current, json)
                    .await
                {
                    // The write may have committed before the call failed (the connection
                    // lost after the commit, a read-back that timed out): the value read
                    // before it goes with the failure, so a rollback knows HA's earlier
                    // state and switches it back on instead of leaving it off.
                    let mut failed = retry(e);
                    failed.facts = Some(StepFacts::HaDisabled(HaDisabled {
                        previous_json: current,
                        written_json: Some(json.clone()),
                        mode: spec.mode,
                        attestation: None,
                    }));
                    return Err(failed);
                }
                (Some(json.clone()), None)
            }
            (Some(_), HaMode::Manual) => {
                let att = self.manual_ha(&spec.database, &spec.edit(), None).await?;
                (Some(self.read_ha(&spec.database).await?), Some(att))
            }
        };
        Ok(StepFacts::HaDisabled(HaDisabled {
            previous_json: previous,
            written_json: written,
            mode: spec.mode,
            attestation,
        }))
    }

    async fn enable_ha(&self, spec: &HaEnableSpec) -> Result<StepFacts, StepError> {
        // Read again: docker_init.sh may have migrated ha.config since the upgrade began.
        let current = self.read_ha(&spec.database).await?;
        let now = self.ad.clock.now();
        let write = spec.apply(&current, now).map_err(fatal)?;
        let attestation = match spec.mode {
            HaMode::Sql => {
                self.ad
                    .metadb
                    .write_ha_config(&spec.database, &current, &write.json)
                    .await
                    .map_err(retry)?;
                None
            }
            HaMode::Manual => Some(self.manual_ha(&spec.database, &write.edit, None).await?),
        };
        let written_json = match spec.mode {
            HaMode::Sql => write.json,
            HaMode::Manual => self.read_ha(&spec.database).await?,
        };
        let enabled_at = match spec.mode {
            HaMode::Sql => now,
            HaMode::Manual => self.ad.clock.now(),
        };
        // By hand the operator may set a larger interval than computed (accepted by
        // `haconfig::meets`): the decision records the value they set.
        let refetch = match (spec.mode, write.decision) {
            (HaMode::Manual, Some(d)) => {
                let set = haconfig::HaConfig::parse(&written_json)
                    .and_then(|c| c.refetch_interval_min())
                    .map_err(fatal)?;
                Some(set.and_then(|n| d.operator_set(n)).unwrap_or(d))
            }
            (_, d) => d,
        };
        Ok(StepFacts::HaEnabled(HaEnabled {
            enabled_at,
            previous_json: current,
            written_json,
            refetch,
            mode: spec.mode,
            attestation,
        }))
    }

    /// Manual HA mode: show the console instructions, then poll the stored value until it
    /// matches; the operator's change is recorded as an attestation.
    async fn manual_ha(
        &self,
        database: &str,
        edit: &HaEdit,
        step: Option<events::StepKey>,
    ) -> Result<Attestation, StepError> {
        self.observer.instruct(&steps::manual_instructions(edit));
        let started = self.ad.clock.monotonic();
        loop {
            let current = self.read_ha(database).await?;
            if haconfig::meets(&current, edit).map_err(fatal)? {
                return Ok(Attestation {
                    by: self.journal.operator().to_string(),
                    statement: format!(
                        "changed ha.config in the OMS console: {}",
                        steps::manual_instructions(edit)
                    ),
                    step,
                    observed_at: Some(self.ad.clock.now()),
                });
            }
            if self.ad.clock.elapsed_since(started) >= self.opts.manual_timeout {
                return Err(StepError::retry(format!(
                    "ha.config was not changed within {:?}; the stored value is still {current}",
                    self.opts.manual_timeout
                )));
            }
            self.ad.clock.sleep(self.opts.manual_poll).await;
        }
    }
}

/// T1/T3 as recorded: the instant just before this attempt's stop request; or the first
/// attempt's intent when an earlier attempt of the step may already have asked for the stop
/// (it failed or was cut short); or Docker's `FinishedAt` when the container was found
/// already stopped before that (the shutdown began no later). Always the earliest
/// candidate: a window that starts too early refetches a little more, one that starts too
/// late loses data.
pub(super) fn stop_requested_at(
    now: chrono::DateTime<chrono::Utc>,
    earlier_attempt: Option<chrono::DateTime<chrono::Utc>>,
    already_stopped: bool,
    docker_finished_at: Option<chrono::DateTime<chrono::Utc>>,
) -> chrono::DateTime<chrono::Utc> {
    let mut t = earlier_attempt.map_or(now, |e| e.min(now));
    if already_stopped && let Some(f) = docker_finished_at {
        t = t.min(f);
    }
    t
}

/// What is wrong with the target image now, given the id the plan recorded for `tag`
/// (`None`: nothing, it still names the planned image).
fn image_problem(tag: &str, planned: &str, now: Option<&String>) -> Option<String> {
    match now {
        Some(id) if id == planned => None,
        Some(id) => Some(format!(
            "{tag} now names image {id}, not {planned} as planned at init; re-tag the planned image (`docker tag {planned} {tag}`) or plan again with `oms-upgrade init` on a new ledger"
        )),
        None => Some(format!(
            "target image {tag} (planned as {planned}) is no longer present; load it again (`docker load -i ...`) so that {tag} is {planned}, or plan again with `oms-upgrade init` on a new ledger"
        )),
    }
}

/// Enough free space where `dir` is (or will be created) for twice `size` bytes: the
/// detail when there is, the problem when there is not.
fn disk_room(dumps: &impl DumpEngine, dir: &str, size: u64) -> Result<String, String> {
    use crate::units::human_bytes;
    let (free, at) = dumps
        .free_space(Path::new(dir))
        .map_err(|e| e.to_string())?;
    if free >= size.saturating_mul(2) {
        Ok(format!(
            "{} free at {}, the databases take {}",
            human_bytes(free),
            at.display(),
            human_bytes(size)
        ))
    } else {
        Err(format!(
            "only {} free at {}; need twice the databases' {}",
            human_bytes(free),
            at.display(),
            human_bytes(size)
        ))
    }
}

/// What to do when a run's dump folder is full: its place is fixed by the plan (and the
/// ledger records the files' paths), so the room must be made there.
fn free_space_advice(dir: &str) -> String {
    format!(
        "Free space on the filesystem of the run's dump folder {dir} (the plan fixes where the dumps go), then `oms-upgrade run` again"
    )
}

pub(super) fn retry(e: impl std::fmt::Display) -> StepError {
    StepError::retry(e.to_string())
}

pub(super) fn fatal(e: impl std::fmt::Display) -> StepError {
    StepError::fatal(e.to_string())
}

/// The plan's health URL with one listed server's IP in place of its host (scheme, port
/// and path kept).
fn server_health_url(url: &str, ip: &str) -> Result<reqwest::Url, String> {
    // `host.ip` comes from the database: a name there would send the probe wherever the
    // row says, so only an address is taken.
    let addr: std::net::IpAddr = ip.parse().map_err(|_| {
        format!(
            "host.ip {ip:?} is not an IP address; check this server in the OMS console (OPS & Monitoring > Server)"
        )
    })?;
    let mut u = reqwest::Url::parse(url).map_err(|e| format!("health URL {url}: {e}"))?;
    u.set_ip_host(addr)
        .map_err(|()| format!("health URL {url} takes no IP host"))?;
    Ok(u)
}

/// Most programs recorded from `supervisorctl status` (OMS runs about ten); the output of
/// a container is hostile input, and a ledger record holds at most 64 KiB.
const MAX_PROGRAMS_RECORDED: usize = 200;

/// Keeps the first [`MAX_PROGRAMS_RECORDED`] programs and says how many more there were.
fn bound_programs(programs: &mut Vec<NamedState>) {
    if programs.len() > MAX_PROGRAMS_RECORDED {
        let more = programs.len() - MAX_PROGRAMS_RECORDED;
        programs.truncate(MAX_PROGRAMS_RECORDED);
        programs.push(NamedState {
            name: format!("[cut to fit the ledger: {more} more programs not recorded]"),
            state: "-".into(),
        });
    }
}

/// supervisord's process states (supervisord.org, "Subprocesses", Process States).
const SUPERVISOR_STATES: &[&str] = &[
    "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN",
];

/// States a program does not leave by itself: FATAL (supervisord gave up starting it),
/// EXITED (it ended), BACKOFF (it keeps exiting right after its start).
const SUPERVISOR_GIVEN_UP: &[&str] = &["FATAL", "EXITED", "BACKOFF"];

/// `supervisorctl status` lines: `name   STATE   details`. Lines whose second word is not
/// a supervisord state (e.g. `unix:///tmp/supervisor.sock no such file` while supervisord
/// itself is still starting) are not programs.
fn parse_supervisor(output: &str) -> Vec<NamedState> {
    output
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let state = it.next()?;
            SUPERVISOR_STATES.contains(&state).then(|| NamedState {
                name: name.to_string(),
                state: state.to_string(),
            })
        })
        .collect()
}

/// The Docker form of the new container: the runbook's values, and, when the plan
/// recorded them, the old container's inherited settings (`live`, raw): its env first (the
/// runbook's variables replace theirs), its host settings with the old policy.
fn container_spec(spec: &NewContainerSpec, live: Option<crate::inherit::Live>) -> ContainerSpec {
    let (mut env, mut host) = match live {
        Some(l) => (l.env, l.host),
        None => (Vec::new(), HostSettings::default()),
    };
    for (k, v) in &spec.env {
        env = env_set(&env, k, v);
    }
    host.restart = crate::inherit::setting_of(&spec.restart);
    ContainerSpec {
        name: spec.name.clone(),
        image: spec.image.clone(),
        binds: spec.binds.clone(),
        env,
        labels: spec.labels.clone(),
        network_mode: spec.network_mode.clone(),
        privileged: spec.privileged,
        pids_limit: Some(spec.pids_limit),
        ulimits: spec.ulimits.clone(),
        cmd: None,
        host,
    }
}

/// `rollback-verify-dumps`: every recorded dump file is still the one the ledger recorded.
/// Nothing is changed, so a failure is retryable once the original files are back.
async fn verify_recorded_dumps(
    dumps: &impl DumpEngine,
    artifacts: &[DumpArtifact],
) -> Result<StepFacts, StepError> {
    let mut checks = Vec::new();
    let mut bad = Vec::new();
    for a in artifacts {
        let found = dumps
            .file_blake3(Path::new(&a.file))
            .await
            .ok()
            .map(|(size, blake3_hex)| FileDigest { size, blake3_hex });
        let ok = match &found {
            Some(d) => match d.check(a.size, &a.blake3_hex) {
                Ok(()) => true,
                Err(m) => {
                    bad.push(format!("{} {m}", a.file));
                    false
                }
            },
            None => {
                bad.push(format!("{} is missing or unreadable", a.file));
                false
            }
        };
        checks.push(DumpCheck {
            db: a.db,
            file: a.file.clone(),
            ok,
            found_blake3: found.map(|d| d.blake3_hex),
        });
    }
    let facts = StepFacts::DumpsVerified { checks };
    if bad.is_empty() {
        return Ok(facts);
    }
    // Nothing was changed yet. Checking again is harmless, so once the original
    // files are put back the rollback can go on.
    Err(StepError {
        message: format!(
            "refusing to restore: {}; nothing was changed",
            bad.join("; ")
        ),
        retryable: true,
        facts: Some(facts),
        kind: FailureKind::Integrity,
    })
}

fn table_facts(tables: &[dump::TableFact]) -> Vec<TableFact> {
    tables
        .iter()
        .map(|t| TableFact {
            name: t.name.clone(),
            rows: t.rows,
            checksum: t.checksum.clone(),
            method: t.checksum_method,
        })
        .collect()
}

/// The backup engine's artifact as the ledger records it.
pub(super) fn artifact_fact(db: Db, a: &dump::DumpArtifact) -> DumpArtifact {
    DumpArtifact {
        db,
        database: a.database.clone(),
        file: a.file.display().to_string(),
        size: a.size_bytes,
        blake3_hex: a.blake3_hex.clone(),
        // Both dumpers write SQL text (compressed or not).
        format: events::FileFormat::Sql,
        compression: a.compression,
        dumper: a.format,
        charset: a.charset.clone(),
        collation: a.collation.clone(),
        tables: table_facts(&a.tables),
        views: a.views.clone(),
    }
}

/// The recorded artifact as the backup engine needs it for a restore.
pub(super) fn engine_artifact(a: &DumpArtifact) -> dump::DumpArtifact {
    // Every recorded format is one the engine restores; a new one will not compile here
    // until it says how.
    let events::FileFormat::Sql = a.format;
    dump::DumpArtifact {
        database: a.database.clone(),
        file: a.file.clone().into(),
        size_bytes: a.size,
        blake3_hex: a.blake3_hex.clone(),
        format: a.dumper,
        compression: a.compression,
        charset: a.charset.clone(),
        collation: a.collation.clone(),
        tables: a
            .tables
            .iter()
            .map(|t| dump::TableFact {
                name: t.name.clone(),
                rows: t.rows,
                checksum: t.checksum.clone(),
                checksum_method: t.method,
            })
            .collect(),
        views: a.views.clone(),
        skipped_triggers: vec![],
        server_version: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dumpkind::{ChecksumMethod, Compression, Dumper};

    /// The largest outcomes taken from a container's output (the 64 KiB an exec keeps) fit
    /// one ledger record: the docker_init log behind a marker naming the whole log's BLAKE3,
    /// supervisor programs cut to a bounded list that says how many were left out.
    #[test]
    fn outcomes_from_container_output_fit_one_record() {
        let fits = |key: events::StepKey, facts: StepFacts| {
            let enc = events::encode(&events::Event::StepDone { key, facts });
            assert!(
                enc.payload.len() < crate::ledger::record::MAX_RECORD_LEN / 2,
                "{key}: {} bytes",
                enc.payload.len()
            );
        };
        let output = "步骤 ERROR 1235 (0A000) line\n".repeat(3000);
        let spec = steps::InitSpec {
            container: "oms".into(),
            argv: vec!["bash".into(), "/root/docker_init.sh".into()],
            success_marker: "全部初始化步骤执行成功".into(),
            harmless_errors: vec!["ERROR 1235 (0A000)".into()],
            log_dir: "/home/admin/logs".into(),
            working_dir: "/root".into(),
            timeout_secs: 60,
        };
        let whole = "ab".repeat(32);
        let f = init_facts(&spec, 0, &output, &whole);
        assert!(
            f.log_tail.starts_with("[cut to fit the ledger: "),
            "{}",
            &f.log_tail[..80]
        );
        assert!(f.log_tail.contains(&whole));
        assert!(output.ends_with(f.log_tail.rsplit("] ").next().unwrap()));
        fits(events::StepKey::RunDockerInit, StepFacts::DockerInit(f));

        let status = "program_with_a_long_name_0000 RUNNING pid 1, uptime 0:01:00\n".repeat(1100);
        let mut programs = parse_supervisor(&status[..64 * 1024]);
        bound_programs(&mut programs);
        assert_eq!(programs.len(), MAX_PROGRAMS_RECORDED + 1);
        assert!(
            programs
                .last()
                .unwrap()
                .name
                .contains("more programs not recorded")
        );
        fits(
            events::StepKey::CheckSupervisor,
            StepFacts::SupervisorChecked {
                programs,
                all_running: true,
            },
        );
    }

    /// issue 12.5: only `name STATE ...` lines with a supervisord state are programs; what
    /// supervisorctl prints while supervisord itself is not up yet is not.
    #[test]
    fn supervisor_lines_are_programs_only_with_a_known_state() {
        let out = "unix:///tmp/supervisor.sock no such file\n\
                   oms_console   STARTING  \n\
                   oms_drc_cm    FATAL     Exited too quickly (process log may have details)\n\
                   nginx         RUNNING   pid 12, uptime 0:00:05\n";
        let got: Vec<(String, String)> = parse_supervisor(out)
            .into_iter()
            .map(|p| (p.name, p.state))
            .collect();
        assert_eq!(
            got,
            [
                ("oms_console".to_string(), "STARTING".to_string()),
                ("oms_drc_cm".to_string(), "FATAL".to_string()),
                ("nginx".to_string(), "RUNNING".to_string()),
            ]
        );
        assert!(
            SUPERVISOR_GIVEN_UP.contains(&"FATAL") && !SUPERVISOR_GIVEN_UP.contains(&"STARTING")
        );
    }

    /// The cm database's `host.ip` is outside input: only an IP address becomes the host
    /// a health probe is sent to, never a name or anything that reshapes the URL.
    #[test]
    fn a_server_health_url_takes_only_an_ip_address() {
        let base = "https://10.0.0.5:8089/oms/health";
        let ok = |ip| server_health_url(base, ip).map(|u| u.to_string());
        assert_eq!(ok("10.0.0.7").unwrap(), "https://10.0.0.7:8089/oms/health");
        assert_eq!(ok("fd00::7").unwrap(), "https://[fd00::7]:8089/oms/health");
        for hostile in [
            "evil.example",
            "10.0.0.7:1/x?",
            "",
            "10.0.0.7 ",
            "user@evil",
        ] {
            let r = ok(hostile);
            assert!(r.is_err(), "{hostile:?} became {r:?}");
            assert!(r.unwrap_err().contains("IP"), "{hostile:?}");
        }
    }

    /// T1/T3 is the earliest moment the stop may have begun: this attempt's request, an
    /// earlier attempt's intent, or Docker's `FinishedAt` for a container found stopped.
    #[test]
    fn stop_request_instant_is_the_earliest_candidate() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap();
        assert_eq!(
            stop_requested_at(now, None, false, Some(now + Duration::seconds(90))),
            now
        );
        let earlier = now - Duration::minutes(3);
        assert_eq!(stop_requested_at(now, Some(earlier), false, None), earlier);
        let finished = now - Duration::hours(1);
        assert_eq!(stop_requested_at(now, None, true, Some(finished)), finished);
        // Not already stopped: Docker's time is after the request and does not count.
        assert_eq!(stop_requested_at(now, None, false, Some(finished)), now);
    }

    /// Regression: the rollback's restore rebuilt the engine's artifact without the views the
    /// dump recorded, so restoring a database with a view failed its own table check.
    #[test]
    fn recorded_artifact_round_trips_to_the_engine() {
        let engine = dump::DumpArtifact {
            database: "oms_rm".into(),
            file: "/b/oms_rm.sql.zst".into(),
            size_bytes: 42,
            blake3_hex: "ab".repeat(32),
            format: Dumper::Native,
            compression: Compression::Zstd,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_bin".into(),
            tables: vec![dump::TableFact {
                name: "t".into(),
                rows: 3,
                checksum: "cd".repeat(32),
                checksum_method: ChecksumMethod::Blake3Rows,
            }],
            views: vec!["v_projects".into()],
            skipped_triggers: vec![],
            server_version: String::new(),
        };
        let back = engine_artifact(&artifact_fact(Db::Rm, &engine));
        assert_eq!(back, engine);
    }

    /// Regression (issue 10): docker_init.sh's output went into the ledger as it was, a
    /// password on a client command line or in a URL included. The marker and the
    /// harmless errors are still judged on the real output.
    #[test]
    fn docker_init_tail_is_masked_before_it_is_recorded() {
        let spec = crate::steps::InitSpec {
            container: "oms".into(),
            argv: vec!["bash".into(), "/root/docker_init.sh".into()],
            success_marker: "DONE".into(),
            harmless_errors: vec!["Duplicate column".into()],
            log_dir: "/home/admin/logs".into(),
            working_dir: "/root".into(),
            timeout_secs: 60,
        };
        let output = "mysql -h10.0.0.9 -P3306 -uroot -ptail-pw-1 -e 'select 1'\n\
                      url=jdbc:mysql://oms:tail-pw-2@10.0.0.9/oms\n\
                      Duplicate column 'x'\nDONE\n";
        let facts = init_facts(&spec, 0, output, "00");
        assert!(facts.marker_seen);
        assert_eq!(facts.harmless_errors, ["Duplicate column"]);
        assert!(
            facts.log_tail.contains("-uroot -p*** -e"),
            "{}",
            facts.log_tail
        );
        assert!(
            facts.log_tail.contains("jdbc:mysql://oms:***@10.0.0.9/oms"),
            "{}",
            facts.log_tail
        );
        for pw in ["tail-pw-1", "tail-pw-2"] {
            assert!(!facts.log_tail.contains(pw), "{}", facts.log_tail);
        }
    }
}

#[cfg(test)]
mod verify_dumps_tests {
    use super::*;
    use crate::adapters::HostDumps;

    /// issue 13: the check before a rollback restores compares the size as well as the
    /// BLAKE3, and says which of the two differs.
    #[tokio::test]
    async fn a_recorded_size_that_differs_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oms_rm.sql");
        std::fs::write(&file, b"CREATE TABLE t (id INT);\n").unwrap();
        let p = crate::events::samples::plan();
        let mut a = crate::events::samples::artifact(&p, Db::Rm);
        a.file = file.display().to_string();
        a.size = 25;
        a.blake3_hex = blake3::hash(b"CREATE TABLE t (id INT);\n")
            .to_hex()
            .to_string();
        assert!(
            verify_recorded_dumps(&HostDumps, &[a.clone()])
                .await
                .is_ok()
        );

        a.size = 26;
        let e = verify_recorded_dumps(&HostDumps, &[a]).await.unwrap_err();
        assert!(
            e.kind == FailureKind::Integrity && e.retryable,
            "{}",
            e.message
        );
        assert!(
            e.message.contains("25 bytes") && e.message.contains("recorded 26"),
            "{}",
            e.message
        );
        let Some(StepFacts::DumpsVerified { checks }) = e.facts else {
            panic!("no facts")
        };
        assert!(!checks[0].ok);
    }
}
